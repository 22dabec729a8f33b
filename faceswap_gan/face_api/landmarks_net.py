"""Keras 3 port of face-api's `FaceLandmark68Net` (68 iBUG points from a 112x112 crop).

Shape path for a `(B, 112, 112, 3)` RGB input in `[0, 255]`:
`(x - mean) / 255 -> dense block 32 -> 56x56 -> dense block 64 -> 28x28
-> dense block 128 -> 14x14 -> dense block 256 -> 7x7 -> avg-pool 7 -> 256 -> fc 136`
= 68 (x, y) pairs in the unit square of the (square) input crop. Each dense block is a
strided conv (a plain 3x3 conv in the first block, depthwise-separable after) and three
separable convs, each fed the ReLU of the sum of all earlier outputs of the block.

Reference:
    - @vladmandic/face-api 1.7.15 (MIT), `src/faceLandmarkNet/`,
      `src/faceFeatureExtractor/denseBlock.ts`, `src/common/depthwiseSeparableConv.ts`.
"""

from pathlib import Path

import keras

from faceswap_gan.face_api.layers import SubtractMeanRGB
from faceswap_gan.face_api.recognition import MEAN_RGB
from faceswap_gan.face_api.weights import assign_weights, load_weight_map

LANDMARK_INPUT_SIZE = 112
LANDMARK_MODEL_NAME = "face_landmark_68_model"


def dense_block(x, filters, first, name):
    """face-api `denseBlock4`: `(B, H, W, C)` -> `(B, H / 2, W / 2, filters)`."""
    if first:
        conv = keras.layers.Conv2D(filters, 3, 2, "same", name=f"{name}_conv0")
    else:
        conv = keras.layers.SeparableConv2D(filters, 3, 2, "same", name=f"{name}_conv0")
    outputs = [keras.layers.ReLU(name=f"{name}_relu0")(conv(x))]
    for index in range(1, 4):
        if index == 1:
            inputs = outputs[0]
        else:
            total = keras.layers.Add(name=f"{name}_sum{index}")(outputs)
            inputs = keras.layers.ReLU(name=f"{name}_relu{index}")(total)
        conv = keras.layers.SeparableConv2D(
            filters, 3, 1, "same", name=f"{name}_conv{index}"
        )
        outputs.append(conv(inputs))
    total = keras.layers.Add(name=f"{name}_sum4")(outputs)
    return keras.layers.ReLU(name=f"{name}_out")(total)


def build_landmark_model() -> keras.Model:
    """Builds the 68-point landmark net with random weights (see module docstring).

    Returns:
        `keras.Model` named `"face_landmark_68"`: input `(B, 112, 112, 3)` float32
        RGB in `[0, 255]`, output `(B, 136)` float32 (x0, y0, x1, y1, ...) in the unit
        square.
    """
    size = LANDMARK_INPUT_SIZE
    inputs = keras.Input((size, size, 3), name="image")
    x = SubtractMeanRGB(MEAN_RGB, name="normalize")(inputs)
    for index, filters in enumerate((32, 64, 128, 256)):
        x = dense_block(x, filters, index == 0, f"dense{index}")  # (B, 7, 7, 256) last
    x = keras.layers.AveragePooling2D(7, 2, "valid", name="pool")(x)  # (B, 1, 1, 256)
    x = keras.layers.Flatten(name="flatten")(x)  # (B, 256)
    outputs = keras.layers.Dense(136, name="fc")(x)  # (B, 136)
    return keras.Model(inputs, outputs, name="face_landmark_68")


def load_landmark_model(weights_dir: str | Path | None = None) -> keras.Model:
    """68-point landmark net with face-api's pretrained (dequantised) weights.

    Input: `(B, 112, 112, 3)` float32 RGB in `[0, 255]`: a face crop (face-api uses the
    detector box, zero-padded to a square, centred; see
    `faceswap_gan.faces.landmarks`). Output: `(B, 136)` float32, the 68 iBUG points as
    interleaved (x, y) in the unit square of the input crop (0 = left/top edge).

    Args:
        weights_dir: folder with `face_landmark_68_model-weights_manifest.json` and
            its `.bin`; `None` for the copy vendored in
            `faceswap_gan/data/weights/face_api`.

    Returns:
        `keras.Model` (not compiled).

    Raises:
        FileNotFoundError: the weights are missing.
        ValueError: the weights do not fit the architecture.
    """
    weight_map = load_weight_map(weights_dir, LANDMARK_MODEL_NAME)
    model = build_landmark_model()
    assign_weights(model, weight_map)
    return model
