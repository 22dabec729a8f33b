"""Keras 3 ports of two nets of @vladmandic/face-api 1.7.15 (MIT), with its weights.

- `load_recognition_model`: dlib's 128-d face-recognition ResNet (150x150 RGB chip).
- `load_landmark_model`: the 68-point iBUG landmark net (112x112 RGB crop).

The uint8-quantised weights are vendored in `faceswap_gan/data/weights/face_api`.
"""

from faceswap_gan.face_api.landmarks_net import (
    LANDMARK_INPUT_SIZE,
    build_landmark_model,
    load_landmark_model,
)
from faceswap_gan.face_api.recognition import (
    RECOGNITION_FEATURE_LAYERS,
    RECOGNITION_INPUT_SIZE,
    build_recognition_model,
    load_recognition_model,
)
from faceswap_gan.face_api.weights import WEIGHTS_DIR, load_weight_map

__all__ = [
    "LANDMARK_INPUT_SIZE",
    "RECOGNITION_FEATURE_LAYERS",
    "RECOGNITION_INPUT_SIZE",
    "WEIGHTS_DIR",
    "build_landmark_model",
    "build_recognition_model",
    "load_landmark_model",
    "load_recognition_model",
    "load_weight_map",
]
