"""Reads TF.js weight manifests and quantised `.bin` shards of @vladmandic/face-api.

A TF.js manifest (`<model>-weights_manifest.json`) is a list of groups; each group names
its shard files (`paths`, concatenated in order) and its tensors (`weights`, stored back
to back in that order). A quantised tensor holds one `uint8` (or `uint16`) code `q` per
value, and the float value is `q * scale + min` with the tensor's `scale` and `min`.

The Keras ports in this package name their layers after the manifest paths: the tensor
`conv32_1/conv1/conv/filters` is the `filters` parameter of layer `conv32_1_conv1_conv`.
`assign_weights` uses that rule and checks that every tensor and every model variable is
used exactly once.

Reference:
    - TF.js weights format: https://www.tensorflow.org/js/guide/save_load
    - @vladmandic/face-api 1.7.15, `src/common/extractWeightEntryFactory.ts` (MIT).
"""

import json
from pathlib import Path

import keras
import numpy as np

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "data" / "weights" / "face_api"

_DTYPES = {
    "float32": np.float32,
    "int32": np.int32,
    "uint8": np.uint8,
    "uint16": np.uint16,
}

# Manifest parameter names in the order of each Keras layer's `weights` list.
_PARAM_ORDER = {
    "Conv2D": ("filters", "bias"),
    "SeparableConv2D": ("depthwise_filter", "pointwise_filter", "bias"),
    "Dense": ("weights", "bias"),
    "ChannelAffine": ("weights", "biases"),
}


def resolve_weights_dir(weights_dir: str | Path | None) -> Path:
    """Returns `weights_dir`, or the vendored folder when it is `None`.

    Raises:
        FileNotFoundError: the folder does not exist.
    """
    folder = WEIGHTS_DIR if weights_dir is None else Path(weights_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"face-api weights folder {folder} does not exist.")
    return folder


def dequantize(codes: np.ndarray, quantization: dict) -> np.ndarray:
    """TF.js affine dequantisation: `value = q * scale + min`, as float32.

    Args:
        codes: integer array of quantised codes (`uint8` or `uint16`).
        quantization: dict with float `scale` and `min` (a manifest entry's
            `quantization`).

    Returns:
        float32 array of the same shape.
    """
    scale = np.float32(quantization["scale"])
    offset = np.float32(quantization["min"])
    return codes.astype(np.float32) * scale + offset


def load_weight_map(weights_dir: str | Path | None, model_name: str) -> dict:
    """Reads all tensors of one face-api model, dequantised.

    Args:
        weights_dir: folder holding `<model_name>-weights_manifest.json` and its shards;
            `None` for the vendored `faceswap_gan/data/weights/face_api`.
        model_name: e.g. `"face_recognition_model"` or `"face_landmark_68_model"`.

    Returns:
        dict manifest name -> float32 array of the manifest's shape, in manifest order.

    Raises:
        FileNotFoundError: a manifest or shard is missing.
        ValueError: the shards are shorter or longer than the manifest says, or a dtype
            is not supported.
    """
    folder = resolve_weights_dir(weights_dir)
    manifest = json.loads((folder / f"{model_name}-weights_manifest.json").read_text())
    tensors = {}
    for group in manifest:
        buffer = b"".join((folder / path).read_bytes() for path in group["paths"])
        offset = 0
        for entry in group["weights"]:
            quant = entry.get("quantization")
            dtype = np.dtype(_DTYPES[quant["dtype"] if quant else entry["dtype"]])
            count = int(np.prod(entry["shape"], dtype=np.int64))
            end = offset + count * dtype.itemsize
            if end > len(buffer):
                raise ValueError(f"{group['paths']} end before tensor {entry['name']}.")
            values = np.frombuffer(buffer, dtype, count, offset)
            values = dequantize(values, quant) if quant else values.astype(np.float32)
            tensors[entry["name"]] = values.reshape(entry["shape"])
            offset = end
        if offset != len(buffer):
            raise ValueError(f"{group['paths']}: {len(buffer) - offset} unused bytes.")
    return tensors


def layer_param(manifest_name: str) -> tuple[str, str]:
    """Maps a manifest name to `(keras layer name, parameter name)`.

    `"dense0/conv1/bias"` -> `("dense0_conv1", "bias")`; a name without `/` (the
    recognition net's `"fc"`) is a bias-free dense layer -> `("fc", "weights")`.
    """
    if "/" not in manifest_name:
        return manifest_name, "weights"
    prefix, param = manifest_name.rsplit("/", 1)
    return prefix.replace("/", "_"), param


def assign_weights(model: keras.Model, weight_map: dict) -> None:
    """Sets every weighted layer of `model` from `weight_map`, by name.

    Args:
        model: a face-api port whose layer names follow `layer_param`.
        weight_map: dict manifest name -> array, as `load_weight_map` returns.

    Raises:
        ValueError: a tensor has no layer, a layer has no tensor, or shapes differ.
    """
    by_layer = {}
    for name, value in weight_map.items():
        layer_name, param = layer_param(name)
        by_layer.setdefault(layer_name, {})[param] = value
    weighted = [layer for layer in model.layers if layer.weights]
    missing = [layer.name for layer in weighted if layer.name not in by_layer]
    extra = sorted(set(by_layer) - {layer.name for layer in weighted})
    if missing or extra:
        raise ValueError(
            f"Layers without weights: {missing}; tensors without a layer: {extra}."
        )
    for layer in weighted:
        params = by_layer[layer.name]
        order = _PARAM_ORDER[type(layer).__name__][: len(layer.weights)]
        if set(order) != set(params):
            raise ValueError(f"Layer {layer.name} needs {order}; got {sorted(params)}.")
        layer.set_weights([params[key] for key in order])
