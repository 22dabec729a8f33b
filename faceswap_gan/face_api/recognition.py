"""Keras 3 port of face-api's `FaceRecognitionNet` (dlib's ResNet-34-like embedder).

Shape path for a `(B, 150, 150, 3)` RGB input in `[0, 255]`:
`(x - mean) / 255 -> conv 7x7/2 valid 32 -> 72x72 -> max-pool 3/2 -> 35x35x32
-> 3 residual -> down 17x17x64 + 3 residual -> down 8x8x128 + 2 residual
-> down 4x4x256 + 2 residual -> down 2x2x256 -> global mean -> fc 256 -> 128`
(the 128-d embedding, not normalised).

Reference:
    - @vladmandic/face-api 1.7.15 (MIT), `src/faceRecognitionNet/`.
    - D. King, dlib `dlib_face_recognition_resnet_model_v1` (public domain), the model
      face-api ports: http://dlib.net/face_recognition.py.html
"""

from pathlib import Path

import keras

from faceswap_gan.face_api.layers import ChannelAffine, SubtractMeanRGB, ZeroPadChannels
from faceswap_gan.face_api.weights import assign_weights, load_weight_map

RECOGNITION_INPUT_SIZE = 150
RECOGNITION_MODEL_NAME = "face_recognition_model"
MEAN_RGB = (122.782, 117.001, 104.298)
# Outputs of the last residual block at each scale, deepest (smallest) first:
# (B, 4, 4, 256), (B, 8, 8, 128), (B, 17, 17, 64), (B, 35, 35, 32).
RECOGNITION_FEATURE_LAYERS = (
    "conv256_2_out",
    "conv128_2_out",
    "conv64_3_out",
    "conv32_3_out",
)

# (block name, filters, number of plain residual blocks after the down block).
_STAGES = (("conv64", 64, 3), ("conv128", 128, 2), ("conv256", 256, 2))


def _conv(x, filters, kernel, strides, relu, name):
    """Conv + bias, per-channel affine, optional ReLU (face-api `convLayer`)."""
    padding = "valid" if strides == 2 else "same"
    x = keras.layers.Conv2D(filters, kernel, strides, padding, name=f"{name}_conv")(x)
    x = ChannelAffine(name=f"{name}_scale")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def residual_block(x, name):
    """Two 3x3 convs plus identity shortcut, then ReLU: `(B, H, W, C)` -> same shape."""
    filters = x.shape[-1]
    out = _conv(x, filters, 3, 1, True, f"{name}_conv1")
    out = _conv(out, filters, 3, 1, False, f"{name}_conv2")
    out = keras.layers.Add(name=f"{name}_add")([out, x])
    return keras.layers.ReLU(name=f"{name}_out")(out)


def residual_down_block(x, filters, name):
    """Strided residual block: `(B, H, W, C)` -> `(B, ceil((H - 1) / 2), ..., filters)`.

    The main path is a valid 3x3/2 conv (then a 3x3 conv); the shortcut is a 2x2 average
    pool padded with zero channels. Where the conv output is one pixel smaller than the
    pooled shortcut, face-api appends a zero row and column to it (`residualDown`).
    """
    out = _conv(x, filters, 3, 2, True, f"{name}_conv1")
    out = _conv(out, filters, 3, 1, False, f"{name}_conv2")
    pooled = keras.layers.AveragePooling2D(2, 2, "valid", name=f"{name}_pool")(x)
    if pooled.shape[1] != out.shape[1]:
        out = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"{name}_pad")(out)
    if pooled.shape[-1] != filters:
        pooled = ZeroPadChannels(
            filters - pooled.shape[-1], name=f"{name}_pad_channels"
        )(pooled)
    out = keras.layers.Add(name=f"{name}_add")([pooled, out])
    return keras.layers.ReLU(name=f"{name}_out")(out)


def build_recognition_model() -> keras.Model:
    """Builds the face-recognition net with random weights (see the module docstring).

    Returns:
        `keras.Model` named `"face_recognition"`: input `(B, 150, 150, 3)` float32
        RGB in `[0, 255]`, output `(B, 128)` float32 embedding.
    """
    size = RECOGNITION_INPUT_SIZE
    inputs = keras.Input((size, size, 3), name="image")
    x = SubtractMeanRGB(MEAN_RGB, name="normalize")(inputs)  # (B, 150, 150, 3)
    x = _conv(x, 32, 7, 2, True, "conv32_down")  # (B, 72, 72, 32)
    x = keras.layers.MaxPooling2D(3, 2, "valid", name="conv32_pool")(
        x
    )  # (B, 35, 35, 32)
    for index in range(1, 4):
        x = residual_block(x, f"conv32_{index}")
    for stage, filters, repeats in _STAGES:
        x = residual_down_block(x, filters, f"{stage}_down")
        for index in range(1, repeats + 1):
            x = residual_block(x, f"{stage}_{index}")
    x = residual_down_block(x, 256, "conv256_down_out")  # (B, 2, 2, 256)
    x = keras.layers.GlobalAveragePooling2D(name="global_mean")(x)  # (B, 256)
    outputs = keras.layers.Dense(128, use_bias=False, name="fc")(x)  # (B, 128)
    return keras.Model(inputs, outputs, name="face_recognition")


def load_recognition_model(weights_dir: str | Path | None = None) -> keras.Model:
    """Face-recognition net with face-api's pretrained (dequantised) weights.

    Input: `(B, 150, 150, 3)` float32 RGB in `[0, 255]`, a dlib-style face chip (see
    `faceswap_gan.faces.identity`); mean subtraction and `/255` happen inside the model.
    Output: `(B, 128)` float32 embedding; L2 distance < 0.6 means the same person.
    `RECOGNITION_FEATURE_LAYERS` name four inner layers for multi-scale features.
    Gradients flow to the input.

    Args:
        weights_dir: folder with `face_recognition_model-weights_manifest.json` and
            its `.bin`; `None` for the copy vendored in
            `faceswap_gan/data/weights/face_api`.

    Returns:
        `keras.Model` (not compiled).

    Raises:
        FileNotFoundError: the weights are missing.
        ValueError: the weights do not fit the architecture.
    """
    weight_map = load_weight_map(weights_dir, RECOGNITION_MODEL_NAME)
    model = build_recognition_model()
    assign_weights(model, weight_map)
    return model
