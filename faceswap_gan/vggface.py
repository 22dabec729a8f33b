"""VGGFace2 ResNet-50 (keras-vggface, no top) rebuilt in Keras 3.

The architecture is `RESNET50(include_top=False)` of keras-vggface
(rcmalli/keras-vggface, `keras_vggface/models.py`): a ResNet-50 with bias-free
convolutions, BatchNormalization (epsilon 1e-3) after each, input 224x224x3 BGR minus
the VGGFace2 means, and the final `AveragePooling2D(7, name="avg_pool")` kept even
without the classifier. keras-vggface itself no longer imports on Keras 3.

Layer names are keras-vggface's, e.g. `conv1/7x7_s2`, `conv2_1_1x1_reduce/bn`, with one
change forced by Keras 3, which rejects "/" in layer names: every "/" becomes "_"
(`keras_layer_name`). The loader maps the names back, so the published Keras-2 weight
file `rcmalli_vggface_tf_notop_resnet50.h5` loads by name. Layers keras-vggface left
unnamed (activations, adds, the max pool) get names here: `conv1_relu`, `pool1`,
`conv{stage}_{block}_add` and `conv{stage}_{block}_relu` (the block output).

Weights: trained on VGGFace2 (Cao et al., 2018) by its authors in Caffe, converted to
Keras by R. C. Malli; keras-vggface code is MIT-licensed, and the VGGFace2 models are
released by the Visual Geometry Group, University of Oxford, for non-commercial
research use (see the VGGFace2 page). This project does not vendor them.

Reference:
    - [He et al., 2016](https://arxiv.org/abs/1512.03385), ResNet.
    - [Cao et al., 2018](https://arxiv.org/abs/1710.08092), VGGFace2.
    - keras-vggface: https://github.com/rcmalli/keras-vggface
"""

from __future__ import annotations

from pathlib import Path

import h5py
import keras
import numpy as np

from faceswap_gan.errors import FaceswapError

VGGFACE_WEIGHTS_URL = (
    "https://github.com/rcmalli/keras-vggface/releases/download/v2.0/"
    "rcmalli_vggface_tf_notop_resnet50.h5"
)
VGGFACE_INPUT_SHAPE = (224, 224, 3)
BATCH_NORM_EPSILON = 1e-3  # Keras 2 default, used by keras-vggface's RESNET50.
# (stage, number of blocks, (filters1, filters2, filters3)); block 1 is the conv block.
RESNET50_STAGES = (
    (2, 3, (64, 64, 256)),
    (3, 4, (128, 128, 512)),
    (4, 6, (256, 256, 1024)),
    (5, 3, (512, 512, 2048)),
)


def keras_layer_name(vggface_name: str) -> str:
    """keras-vggface layer name -> the name in this Keras 3 model ("/" -> "_")."""
    return vggface_name.replace("/", "_")


def vggface_weight_layer_names() -> list[str]:
    """keras-vggface names of the 106 layers with weights (53 Conv2D + 53 BN)."""
    names = ["conv1/7x7_s2", "conv1/7x7_s2/bn"]
    for stage, blocks, _ in RESNET50_STAGES:
        for block in range(1, blocks + 1):
            prefix = f"conv{stage}_{block}"
            convs = ["_1x1_reduce", "_3x3", "_1x1_increase"]
            convs += ["_1x1_proj"] if block == 1 else []
            for conv in convs:
                names += [prefix + conv, prefix + conv + "/bn"]
    return names


def _conv_bn(x, filters, kernel_size, vggface_name, strides=1):
    """Bias-free Conv2D + BatchNormalization named like keras-vggface."""
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same" if kernel_size > 1 else "valid",
        use_bias=False,
        name=keras_layer_name(vggface_name),
    )(x)
    return keras.layers.BatchNormalization(
        axis=-1, epsilon=BATCH_NORM_EPSILON, name=keras_layer_name(vggface_name + "/bn")
    )(x)


def _bottleneck_block(x, filters, stage, block, strides=1):
    """keras-vggface `resnet_conv_block` (block 1) / `resnet_identity_block`.

    (B, H, W, C) -> (B, H / strides, W / strides, filters[2]).
    """
    prefix = f"conv{stage}_{block}"
    filters1, filters2, filters3 = filters
    # keras-vggface puts the stride on the first 1x1 conv (Caffe style), not the 3x3.
    y = _conv_bn(x, filters1, 1, prefix + "_1x1_reduce", strides=strides)
    y = keras.layers.Activation("relu", name=f"{prefix}_1x1_reduce_relu")(y)
    y = _conv_bn(y, filters2, 3, prefix + "_3x3")
    y = keras.layers.Activation("relu", name=f"{prefix}_3x3_relu")(y)
    y = _conv_bn(y, filters3, 1, prefix + "_1x1_increase")
    if block == 1:
        x = _conv_bn(x, filters3, 1, prefix + "_1x1_proj", strides=strides)
    y = keras.layers.Add(name=f"{prefix}_add")([y, x])
    return keras.layers.Activation("relu", name=f"{prefix}_relu")(y)


def build_vggface_resnet50(weights: str | Path | None = None) -> keras.Model:
    """Builds keras-vggface's ResNet-50 without top, optionally with its weights.

    Shape path: 224x224x3 -> conv1 7x7/2 112x112x64 -> maxpool 3x3/2 55x55x64 ->
    stage 2 55x55x256 -> stage 3 28x28x512 -> stage 4 14x14x1024 -> stage 5 7x7x2048
    (`conv5_3_relu`) -> `avg_pool` 1x1x2048. 23,561,152 parameters (of which 53,120
    BatchNormalization moving statistics).

    Args:
        weights: None | str | Path. None: random initial weights. A path: a Keras-2
            HDF5 weight file in keras-vggface's layout (`rcmalli_vggface_tf_notop_
            resnet50.h5`), loaded by layer name. "vggface": download that file from
            keras-vggface's GitHub release with `keras.utils.get_file` (cached in
            `~/.keras/models/vggface`).

    Returns:
        A `keras.Model` named "vggface_resnet50": input (B, 224, 224, 3) float32, BGR
        in 0..255 minus the means (91.4953, 103.8827, 131.0912); output
        (B, 1, 1, 2048) float32.

    Raises:
        FileNotFoundError: `weights` is a path that does not exist.
        RuntimeError: `weights="vggface"` and the download failed.
        ValueError: the file lacks layers or weights, or has wrong shapes.
    """
    path = None if weights is None else _resolve_weights(weights)  # fail fast
    inputs = keras.Input(VGGFACE_INPUT_SHAPE, name="image_bgr")
    x = _conv_bn(inputs, 64, 7, "conv1/7x7_s2", strides=2)  # (B, 112, 112, 64)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1")(x)  # (B, 55, 55, 64)
    for stage, blocks, filters in RESNET50_STAGES:
        for block in range(1, blocks + 1):
            strides = 2 if block == 1 and stage > 2 else 1
            x = _bottleneck_block(x, filters, stage, block, strides=strides)
    outputs = keras.layers.AveragePooling2D(7, name="avg_pool")(x)  # (B, 1, 1, 2048)
    model = keras.Model(inputs, outputs, name="vggface_resnet50")
    if path is not None:
        load_vggface_weights(model, path)
    return model


def _resolve_weights(weights: str | Path) -> Path:
    if str(weights) == "vggface":
        try:
            path = keras.utils.get_file(
                VGGFACE_WEIGHTS_URL.rsplit("/", 1)[-1],
                VGGFACE_WEIGHTS_URL,
                cache_subdir="models/vggface",
            )
        except Exception as error:  # get_file raises bare Exception on URL errors.
            raise FaceswapError(
                f"Could not download the VGGFace weights from {VGGFACE_WEIGHTS_URL} "
                f"({error}). Download rcmalli_vggface_tf_notop_resnet50.h5 elsewhere "
                "and pass its path as `weights`."
            ) from error
        return Path(path)
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"VGGFace weight file not found: {path}. Pass None (random), 'vggface' "
            "(download) or the path of rcmalli_vggface_tf_notop_resnet50.h5."
        )
    return path


def _decode(name) -> str:
    return name.decode("utf8") if isinstance(name, bytes) else str(name)


def _short_weight_name(weight_name: str) -> str:
    """'conv1/7x7_s2/bn/moving_mean:0' -> 'moving_mean'."""
    return weight_name.rsplit("/", 1)[-1].split(":", 1)[0]


def _layer_values(group: h5py.Group, variable_names: list[str]) -> dict:
    """{variable name: array} of one layer's group, by weight name, else by position.

    Keras 2 itself loaded by position; names like `conv1/7x7_s2/kernel:0` are matched
    first in case a file lists the weights in another order.
    """
    weight_names = [_decode(w) for w in group.attrs["weight_names"]]
    arrays = [np.asarray(group[w]) for w in weight_names]
    by_name = dict(zip(map(_short_weight_name, weight_names), arrays, strict=True))
    if set(variable_names) <= set(by_name) or len(arrays) != len(variable_names):
        return by_name
    return dict(zip(variable_names, arrays, strict=True))


def load_vggface_weights(model: keras.Model, path: str | Path) -> None:
    """Loads a Keras-2 `save_weights` HDF5 file into `model` by keras-vggface name.

    Layout read (Keras 2 `save_weights_to_hdf5_group`): root attribute `layer_names`;
    one group per layer (its path is the layer name, so "/" nests groups) with
    attribute `weight_names` such as `conv1/7x7_s2/kernel:0`, each naming a dataset
    relative to that group (matched by the last name part, else by position). A file
    saved with `model.save` (group `model_weights`) works too. Layers in the file that
    the model lacks (e.g. `classifier`) are ignored.

    Args:
        model: keras.Model. Built by `build_vggface_resnet50`.
        path: str | Path. The HDF5 file.

    Raises:
        ValueError: the file is not a Keras-2 weight file, lacks some layers of the
            model, or has weights missing or of the wrong shape (all named).
    """
    problems, assignments = [], []
    with h5py.File(path, "r") as file:
        root = file
        if "layer_names" not in root.attrs and "model_weights" in root:
            root = root["model_weights"]
        if "layer_names" not in root.attrs:
            raise FaceswapError(
                f"{path} is not a Keras-2 HDF5 weight file: no 'layer_names' attribute."
            )
        file_layers = {_decode(name) for name in root.attrs["layer_names"]}
        for name in vggface_weight_layer_names():
            if name not in file_layers:
                problems.append(f"layer {name!r} missing from the file")
                continue
            variables = model.get_layer(keras_layer_name(name)).weights
            values = _layer_values(root[name], [v.name for v in variables])
            for variable in variables:
                value = values.get(variable.name)
                if value is None:
                    problems.append(f"{name}: no weight {variable.name!r} in the file")
                elif tuple(value.shape) != tuple(variable.shape):
                    problems.append(
                        f"{name}/{variable.name}: file shape {value.shape}, "
                        f"model expects {tuple(variable.shape)}"
                    )
                else:
                    assignments.append((variable, value))
    if problems:  # Nothing is assigned unless the whole file fits.
        raise FaceswapError(
            f"Cannot load VGGFace weights from {path}: " + "; ".join(problems)
        )
    for variable, value in assignments:
        variable.assign(value)
