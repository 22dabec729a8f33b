"""OnnxFaceModel: an exported face transform run by onnxruntime, for VideoConverter.

`VideoConverter(OnnxFaceModel("ab.onnx"), config)` converts a video with a file
written by `python -m faceswap_gan export` (`faceswap_gan.export`), without building
the Keras model: this module imports only numpy and onnxruntime (TensorFlow is not
needed to swap; the rest of the converter still imports it for MTCNN detection).

It reads both export formats: "onnx" (input `face` RGB [-1, 1], outputs `alpha`,
`rgb`) and "dfm" (input `in_face:0` BGR [0, 1], outputs `out_face_mask:0`,
`out_celeb_face:0`, `out_celeb_face_mask:0`), converting the ranges so that `swap`
returns what `FaceSwapGAN.swap` returns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from faceswap_gan.errors import FaceswapError

DIRECTIONS = ("AtoB", "BtoA")
INFERENCE_BATCH = 8  # faces per run, as FaceSwapGAN's INFERENCE_BATCH


class OnnxFaceModel:
    """One direction of a FaceSwapGAN, from an exported ONNX (or .dfm) file.

    Offers what `converter.transformer.FaceTransformer` uses of a `FaceSwapGAN`:
    `image_size` and `swap(faces, direction, batch_size)`.

    Args:
        path: str | Path. A file written by `faceswap_gan.export.export_model`
            (its metadata gives the format, direction and size).
        providers: onnxruntime execution providers; None = CPU
            (`["CPUExecutionProvider"]`); e.g. `["CUDAExecutionProvider",
            "CPUExecutionProvider"]` with onnxruntime-gpu.
        threads: int | None. onnxruntime intra-op threads (None: its default, one per
            core).

    Attributes:
        image_size: int. Side S of the faces the graph takes, pixels.
        direction: str. "AtoB" or "BtoA", the one direction the file holds.
        format: str. "onnx" or "dfm".

    Raises:
        FaceswapError: the file is missing, not an ONNX model, or has none of the two
            formats' input names.
    """

    def __init__(self, path, providers=None, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FaceswapError(
                f"ONNX model {path} does not exist; write one with "
                "`python -m faceswap_gan export`."
            )
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own exception types.
            raise FaceswapError(f"{path} is not a loadable ONNX model: {error}")
        meta = self.session.get_modelmeta().custom_metadata_map
        inputs = self.session.get_inputs()
        name = inputs[0].name if inputs else None
        if name == "face":
            self.format = "onnx"
        elif name == "in_face:0":
            self.format = "dfm"
        else:
            raise FaceswapError(
                f"{path}: input {name!r} is neither 'face' (--format onnx) nor "
                "'in_face:0' (--format dfm); export it with faceswap_gan export."
            )
        self.path, self.input_name = path, name
        self.image_size = int(inputs[0].shape[1])
        self.direction = meta.get("faceswap_gan.direction", "AtoB")

    def swap(self, faces, direction: str = "AtoB", batch_size: int = INFERENCE_BATCH):
        """Swaps faces as `FaceSwapGAN.swap` does, for the file's direction.

        Args:
            faces: `(N, S, S, 3)` float32 RGB in [-1, 1] (N may be 0).
            direction: must be the exported direction (`self.direction`).
            batch_size: int >= 1. Faces per onnxruntime run.

        Returns:
            (alpha `(N, S, S, 1)` in [0, 1], rgb `(N, S, S, 3)` in [-1, 1], masked
            `(N, S, S, 3)` = alpha * rgb + (1 - alpha) * faces), numpy float32.

        Raises:
            FaceswapError: `direction` is not the exported one.
            ValueError: unknown direction, wrong shape or `batch_size < 1`.
        """
        if direction not in DIRECTIONS:
            raise ValueError(
                f"direction must be one of {DIRECTIONS}; got {direction!r}."
            )
        if direction != self.direction:
            raise FaceswapError(
                f"{self.path} holds the {self.direction} transform; export "
                f"--direction {direction} for {direction}."
            )
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size!r}.")
        faces = np.asarray(faces, dtype=np.float32)
        size = self.image_size
        if faces.ndim != 4 or faces.shape[1:] != (size, size, 3):
            raise ValueError(
                f"faces must be (B, {size}, {size}, 3) float32 in [-1, 1]; got "
                f"shape {faces.shape}."
            )
        alpha = np.empty((len(faces), size, size, 1), np.float32)
        rgb = np.empty((len(faces), size, size, 3), np.float32)
        for start in range(0, len(faces), int(batch_size)):
            chunk = faces[start : start + int(batch_size)]
            stop = start + len(chunk)
            if self.format == "onnx":
                alpha[start:stop], rgb[start:stop] = self.session.run(
                    None, {self.input_name: chunk}
                )
            else:  # BGR [0, 1] in and out
                bgr = np.ascontiguousarray((chunk[..., ::-1] + 1.0) * 0.5)
                _, celeb, mask = self.session.run(None, {self.input_name: bgr})
                alpha[start:stop] = mask
                rgb[start:stop] = celeb[..., ::-1] * 2.0 - 1.0
        return alpha, rgb, alpha * rgb + (1 - alpha) * faces
