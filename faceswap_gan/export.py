"""Export a trained face transform to ONNX, and DeepFaceLive's / FaceFusion's `.dfm`.

The exported graph is `FaceSwapGAN.swap` for one direction: the shared encoder and the
target decoder's last output (AtoB: decoder_B, BtoA: decoder_A), split into the alpha
mask and the RGB face. It is converted by tf2onnx (`tf2onnx.convert.from_function`,
github.com/onnx/tensorflow-onnx) from the traced inference model, and runs with
onnxruntime without TensorFlow or Keras (`converter.onnx_backend.OnnxFaceModel`).

Two formats:

- `onnx` (this project's layout, same ranges as `FaceSwapGAN.swap`):
  input `face` `(N, S, S, 3)` float32 RGB in [-1, 1] (an aligned crop, as
  `faceswap_gan.images.to_model_range` makes it); outputs `alpha` `(N, S, S, 1)`
  float32 in [0, 1] and `rgb` `(N, S, S, 3)` float32 RGB in [-1, 1].
- `dfm` (what DeepFaceLive's DFMModel and FaceFusion's deep_swapper load): input
  `in_face:0` `(N, S, S, 3)` float32 **BGR** in [0, 1], NHWC; outputs, in this order,
  `out_face_mask:0` `(N, S, S, 1)`, `out_celeb_face:0` `(N, S, S, 3)` BGR in [0, 1],
  `out_celeb_face_mask:0` `(N, S, S, 1)` in [0, 1]. Where that comes from:

  - DeepFaceLab `models/Model_SAEHD/Model.py` `export_dfm` (L700-756 at 46fc239):
    placeholder `in_face` `(None, res, res, 3)` NHWC; `tf.identity` outputs
    `out_face_mask` (the dst decoder's mask of the input face), `out_celeb_face`,
    `out_celeb_face_mask`, converted by tf2onnx with `input_names=['in_face:0']`,
    `output_names=['out_face_mask:0','out_celeb_face:0','out_celeb_face_mask:0']`
    (L742-756). DFL's faces are BGR in [0, 1] (`ChannelType.BGR` samples, L678).
  - DeepFaceLive `modelhub/DFLive/DFMModel.py` (fc7b787): the first input's name
    must contain `in_face` and its `shape[1:3]` is the model's (height, width)
    (L98-101); `convert` resizes the face to that size, `.ch(3).to_ufloat32()` (uint8
    / 255, L135; `xlib/image/ImageProcessor.py` L850-860), runs
    `{'in_face:0': img}` and unpacks the outputs by position as
    `out_face_mask, out_celeb, out_celeb_mask` (L138). A second input `morph_value:0`
    is optional (L103-106); this export has none. DeepFaceLive's frames are BGR
    (OpenCV), and `FaceMerger.py` multiplies the two masks (L217-231).
  - FaceFusion `facefusion/processors/modules/deep_swapper/core.py` (33cc6b4):
    model size from the input named exactly `in_face:0` (L267-274); the crop (BGR,
    `cv2.warpAffine` of an OpenCV frame) is unsharpened
    (`addWeighted(crop, 1.75, GaussianBlur(crop, sigma 2), -0.75)`), / 255, float32
    NHWC (L395-399); outputs unpacked as `target_mask, face, source_mask` (L380); the
    face x 255 clipped to uint8 (L402-405); the mask is the minimum of the two masks
    (L408-416).

  This model has no separate mask of the input face, so `out_face_mask` is all ones:
  DeepFaceLive's product and FaceFusion's minimum then both equal the swap's alpha
  (`out_celeb_face_mask`), the mask this project's converter blends with.

The hosts crop faces with their own alignment (FaceFusion: the 5-point
`dfl_whole_face` template; DeepFaceLive: its landmark aligner, coverage 2.2 by
default), so a model trained on this project's default crops sees differently framed
faces there. `extract --alignment dfl_whole_face` makes training crops framed as
FaceFusion frames them, `--alignment deepfacelive` as DeepFaceLive does with a
68-point marker (`faceswap_gan.faces.alignment`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from faceswap_gan.errors import FaceswapError

FORMATS = ("onnx", "dfm")
SUFFIXES = {"onnx": ".onnx", "dfm": ".dfm"}
DIRECTIONS = ("AtoB", "BtoA")
OPSET = 17
# Tensor names of each format: (inputs, outputs in graph order).
NAMES = {
    "onnx": (("face",), ("alpha", "rgb")),
    "dfm": (
        ("in_face:0",),
        ("out_face_mask:0", "out_celeb_face:0", "out_celeb_face_mask:0"),
    ),
}


@dataclass
class ExportReport:
    """What `export_model` wrote.

    Attributes:
        path: Path. The ONNX file.
        format: str. "onnx" or "dfm".
        direction: str. "AtoB" or "BtoA".
        image_size: int. Side S of the face the graph takes and returns, pixels.
        inputs: tuple[str, ...]. Input tensor names.
        outputs: tuple[str, ...]. Output tensor names, in graph order.
        bytes: int. File size.
    """

    path: Path
    format: str
    direction: str
    image_size: int
    inputs: tuple
    outputs: tuple
    bytes: int


def check_options(output, direction: str, format: str) -> Path:
    """Checks the export options before any model is loaded.

    Returns:
        Path. `output` as a Path.

    Raises:
        FaceswapError: unknown format or direction, or an output suffix that does not
            match the format (`.onnx` for onnx, `.dfm` for dfm).
    """
    if format not in FORMATS:
        raise FaceswapError(f"format must be one of {FORMATS}; got {format!r}.")
    if direction not in DIRECTIONS:
        raise FaceswapError(
            f"direction must be one of {DIRECTIONS}; got {direction!r}."
        )
    output = Path(output)
    if output.suffix.lower() != SUFFIXES[format]:
        raise FaceswapError(
            f"--output of --format {format} must end in {SUFFIXES[format]}; "
            f"got {output.name!r}."
        )
    return output


def _rename(graph, names: dict) -> None:
    """Renames tensors of an ONNX graph (inputs, outputs and every node's uses)."""
    for value in list(graph.input) + list(graph.output):
        value.name = names.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]


def to_onnx(model, direction: str = "AtoB", format: str = "onnx", opset: int = OPSET):
    """Converts one direction of a FaceSwapGAN's swap to an ONNX model in memory.

    Args:
        model: a built `faceswap_gan.models.FaceSwapGAN`.
        direction: "AtoB" (decoder_B on A's faces) or "BtoA" (decoder_A).
        format: "onnx" or "dfm" (module docstring: names, layouts, ranges).
        opset: ONNX opset (17 default; onnxruntime >= 1.14 runs it).

    Returns:
        onnx.ModelProto with the batch dimension free, the face side fixed, and
        metadata `faceswap_gan.format`, `.direction`, `.image_size`.

    Raises:
        FaceswapError: unknown direction or format.
    """
    import keras
    import onnx
    import tensorflow as tf
    import tf2onnx

    if format not in FORMATS:
        raise FaceswapError(f"format must be one of {FORMATS}; got {format!r}.")
    if direction not in DIRECTIONS:
        raise FaceswapError(
            f"direction must be one of {DIRECTIONS}; got {direction!r}."
        )
    size = int(model.image_size)
    decoder = model.decoder_B if direction == "AtoB" else model.decoder_A
    inputs = keras.Input((size, size, 3))
    final = decoder(model.encoder(inputs))
    final = final[-1] if isinstance(final, (list, tuple)) else final
    net = keras.Model(inputs, final)  # as FaceSwapGAN.transform's inference model

    spec = (tf.TensorSpec((None, size, size, 3), tf.float32, name="face"),)
    if format == "onnx":

        @tf.function(input_signature=spec)
        def graph(face):
            out = net(face, training=False)
            return {"alpha": out[..., :1], "rgb": out[..., 1:]}

    else:

        @tf.function(input_signature=spec)
        def graph(face):
            rgb_in = tf.reverse(face, axis=[-1]) * 2.0 - 1.0  # BGR [0,1] -> model
            out = net(rgb_in, training=False)
            alpha = out[..., :1]
            celeb = (tf.reverse(out[..., 1:], axis=[-1]) + 1.0) * 0.5
            return {
                "out_face_mask": tf.ones_like(alpha),
                "out_celeb_face": celeb,
                "out_celeb_face_mask": alpha,
            }

    proto, _ = tf2onnx.convert.from_function(graph, input_signature=spec, opset=opset)
    in_names, out_names = NAMES[format]
    # tf2onnx names the graph's input "face" and its outputs after the dict keys;
    # rename them to the format's names and put the outputs in the format's order.
    got_out = [o.name for o in proto.graph.output]
    wanted = {n.split(":")[0]: n for n in out_names}
    if sorted(got_out) != sorted(wanted):
        raise RuntimeError(f"tf2onnx outputs {got_out}; expected {list(wanted)}.")
    _rename(proto.graph, {"face": in_names[0], **wanted})
    order = {name: i for i, name in enumerate(out_names)}
    outputs = sorted(proto.graph.output, key=lambda o: order[o.name])
    del proto.graph.output[:]
    proto.graph.output.extend(outputs)
    for key, value in (
        ("faceswap_gan.format", format),
        ("faceswap_gan.direction", direction),
        ("faceswap_gan.image_size", str(size)),
    ):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    return proto


def export_model(
    model,
    output: str | Path,
    direction: str = "AtoB",
    format: str = "onnx",
    overwrite: bool = False,
    opset: int = OPSET,
) -> ExportReport:
    """Exports one direction of a trained model to an ONNX (or .dfm) file.

    Args:
        model: a `FaceSwapGAN`, or a run / checkpoint folder (str or Path) loaded
            with `faceswap_gan.checkpoints.load_model`.
        output: file to write; must end in `.onnx` (format "onnx") or `.dfm`.
            Written atomically (`files.atomic_output`): a failed export leaves no
            file and keeps an earlier one.
        direction: "AtoB" or "BtoA".
        format: "onnx" or "dfm" (module docstring).
        overwrite: replace an existing `output` (refused otherwise).
        opset: ONNX opset.

    Returns:
        ExportReport.

    Raises:
        FaceswapError: bad direction, format or suffix; `output` exists without
            `overwrite` or is a folder; `model`'s checkpoint cannot be loaded.
        FileNotFoundError: `model` is a path that does not exist or holds no
            checkpoint (`load_model`).
        OSError: the file cannot be written.
    """
    from faceswap_gan.files import atomic_output

    output = check_options(output, direction, format)
    if output.is_dir():
        raise FaceswapError(f"--output {output} is a folder; give a file name.")
    if output.exists() and not overwrite:
        raise FaceswapError(
            f"--output {output} exists; pass --overwrite to replace it."
        )
    if isinstance(model, (str, os.PathLike)):
        from faceswap_gan.checkpoints import load_model

        model = load_model(model)
    proto = to_onnx(model, direction, format, opset)
    with atomic_output(output) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    return ExportReport(
        path=output,
        format=format,
        direction=direction,
        image_size=int(model.image_size),
        inputs=tuple(i.name for i in proto.graph.input),
        outputs=tuple(o.name for o in proto.graph.output),
        bytes=output.stat().st_size,
    )
