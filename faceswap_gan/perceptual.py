"""Frozen face-recognition nets that give multi-scale features for the perceptual loss.

faceswap-GAN v2.2 compares real and generated faces in the feature space of a face
recogniser (`build_pl_model` in `networks/faceswap_gan_model.py`). Two backends:

- "vggface": keras-vggface's VGGFace2 ResNet-50, as the original
  (`faceswap_gan.vggface`). Its weights (`rcmalli_vggface_tf_notop_resnet50.h5`) come
  from keras-vggface's GitHub release: the keras-vggface code is MIT, the VGGFace2
  models are from the Visual Geometry Group (Oxford) for non-commercial research use.
  They are not vendored: pass the file's path (or "vggface" to download it).
- "face_api" (default): dlib's ResNet-34-like 128-d face embedder (D. King, public
  domain) as ported by @vladmandic/face-api (MIT), `faceswap_gan.face_api`. Its weights
  are vendored in `faceswap_gan/data/weights/face_api` (with the MIT LICENSE), so
  this backend works offline.

The instance normalisation, L2 distance and per-scale weights `w_pl` belong to the loss
(`faceswap_gan.losses`); this module only gives the features.
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import ops

from faceswap_gan.config import PERCEPTUAL_BACKENDS
from faceswap_gan.errors import FaceswapError
from faceswap_gan.face_api import RECOGNITION_INPUT_SIZE, load_recognition_model
from faceswap_gan.vggface import VGGFACE_INPUT_SHAPE, build_vggface_resnet50

VGGFACE_MEAN_BGR = (91.4953, 103.8827, 131.0912)  # keras-vggface utils, version=2
# Features, deepest first (the order of w_pl), and the index faceswap-GAN took from
# keras-vggface's `model.layers` (same order in `build_vggface_resnet50`, tested):
VGGFACE_FEATURE_LAYERS = (
    "conv5_3_relu",  # [-2]: (B, 7, 7, 2048), last block output
    "conv3_4_relu",  # [78]: (B, 28, 28, 512)
    "conv2_3_relu",  # [36]: (B, 55, 55, 256)
    "conv1_7x7_s2",  # [1]: (B, 112, 112, 64), the first conv before its BN
)
VGGFACE_FEATURE_LAYERS_BEFORE_ACTIVATION = (
    "conv5_3_add",  # [-3]: (B, 7, 7, 2048)
    "conv3_4_add",  # [77]: (B, 28, 28, 512)
    "conv2_3_add",  # [35]: (B, 55, 55, 256)
    "conv2_1_add",  # [15]: (B, 55, 55, 256); the original named it "out_size112"
)
# face_api layers at the relative scales nearest VGGFace's (deepest first, the order of
# w_pl); sizes for its 150 px input. Why these: see `build_perceptual_model`.
FACE_API_FEATURE_LAYERS = (
    "conv256_2_out",  # (B, 4, 4, 256): 1/37.5, for VGGFace's 7/224 = 1/32
    "conv64_3_out",  # (B, 17, 17, 64): 1/8.8, for 28/224 = 1/8
    "conv32_3_out",  # (B, 35, 35, 32): 1/4.3, for 55/224 = 1/4.1
    "conv32_down_conv",  # (B, 72, 72, 32): 1/2.08, for 112/224 = 1/2; first conv
)


def _vggface_features(
    weights: str | Path | None, before_activ: bool
) -> tuple[keras.Model, tuple[int, int]]:
    model = build_vggface_resnet50(weights)
    names = (
        VGGFACE_FEATURE_LAYERS_BEFORE_ACTIVATION
        if before_activ
        else VGGFACE_FEATURE_LAYERS
    )
    outputs = [model.get_layer(name).output for name in names]
    return keras.Model(model.input, outputs), VGGFACE_INPUT_SHAPE[:2]


def _face_api_features(
    weights: str | Path | None,
) -> tuple[keras.Model, tuple[int, int]]:
    model = load_recognition_model(weights)
    outputs = [model.get_layer(name).output for name in FACE_API_FEATURE_LAYERS]
    size = RECOGNITION_INPUT_SIZE
    return keras.Model(model.input, outputs), (size, size)


def build_perceptual_model(
    backend: str = "face_api",
    before_activ: bool = False,
    weights: str | Path | None = None,
) -> keras.Model:
    """Builds a frozen model mapping faces to 4 feature maps, deepest first.

    The input is resized (bilinear, no antialiasing, half-pixel centres; TF1's
    `resize_images` of the original used corner-aligned sampling) to the net's size and
    converted to its pixel convention inside the model, so gradients reach the input:

    - "vggface": resize to 224, `(x + 1) * 127.5` -> BGR -> minus
      `VGGFACE_MEAN_BGR`. Outputs (B, 7, 7, 2048), (B, 28, 28, 512), (B, 55, 55, 256),
      (B, 112, 112, 64) (layers `VGGFACE_FEATURE_LAYERS`); with `before_activ`, the
      pre-ReLU sums `VGGFACE_FEATURE_LAYERS_BEFORE_ACTIVATION`, whose last map is
      (B, 55, 55, 256): faceswap-GAN's index 15 is conv2_1's sum, not a 112 map.
    - "face_api": resize to 150, `(x + 1) * 127.5` (RGB 0..255; the net subtracts its
      mean). Outputs (B, 4, 4, 256), (B, 17, 17, 64), (B, 35, 35, 32),
      (B, 72, 72, 32) (layers `FACE_API_FEATURE_LAYERS`).

    The i-th output is weighted by `w_pl[i]` in the loss (faceswap-GAN v2.2:
    `w_pl[0]` -> 7x7, `w_pl[1]` -> 28, `w_pl[2]` -> 55, `w_pl[3]` -> 112).

    face_api layers. v2.2's weights were tuned for VGGFace's maps at 1/32, 1/8, ~1/4
    and 1/2 of its input, so face_api gives the maps whose size relative to ITS input
    is nearest (in log scale) to those. The net's distinct map sizes at 150 px are 72
    (first conv, 7x7/2 valid: 1/2.08, not 75), 35 (after the 3/2 max-pool and the
    32-channel blocks: 1/4.3), 17 (1/8.8), 8 (1/18.75), 4 (1/37.5) and 2 (1/75):

    | w_pl | VGGFace (224 px)         | rel.  | face_api (150 px)           | rel.   |
    |------|--------------------------|-------|-----------------------------|--------|
    | [0]  | conv5_3_relu  7x7x2048   | 1/32  | conv256_2_out  4x4x256      | 1/37.5 |
    | [1]  | conv3_4_relu  28x28x512  | 1/8   | conv64_3_out  17x17x64      | 1/8.8  |
    | [2]  | conv2_3_relu  55x55x256  | 1/4.1 | conv32_3_out  35x35x32      | 1/4.3  |
    | [3]  | conv1_7x7_s2 112x112x64  | 1/2   | conv32_down_conv 72x72x32   | 1/2.08 |

    At 1/32 the 4 px map (log distance 0.16) beats the 8 px one (0.53); the 8 px map
    (1/18.75) is nearest to none of the four, so it is not used. (Until this choice the
    backend took 4, 8, 17 and 35 px maps, i.e. 1/37, 1/19, 1/8.8, 1/4.3, so w_pl[1..3]
    weighted maps 2.1-2.3x coarser than v2.2 meant.) Where VGGFace takes the
    last block output of a stage (after ReLU), face_api takes its last block output
    too; for the 1/2 map VGGFace takes its first conv before its BatchNorm and ReLU,
    and face_api likewise its first conv before the per-channel affine that stands for
    dlib's batch norm and before the ReLU. (A per-channel instance normalisation would
    cancel that affine; a normalisation over H, W and C together, v2.2's, would not.)
    `w_pl` is kept for face_api: on the bundled real faces
    (`benchmarks/perceptual_scales.py`; blurred copy, other person, same person in
    another frame; 64 and 128 px; either normalisation) each scale's share of the
    weighted loss stays within 10x of the share `w_pl` gives it (the deepest 4 px map
    carries 0.13-0.31x its intended share, the others 0.44-1.43x), so no re-weighting
    is supported. VGGFace's own figures could not be measured here (its weights cannot
    be downloaded offline).

    Args:
        backend: str. One of `PERCEPTUAL_BACKENDS`; see the module docstring for where
            each one's weights come from and their licences.
        before_activ: bool. vggface only: take the features before the ReLUs, as
            faceswap-GAN's `PL_before_activ=True`.
        weights: None | str | Path. vggface: None gives RANDOM weights (for tests),
            "vggface" downloads keras-vggface's file, or a path to it. face_api: None
            gives the vendored weights, or a folder with face-api's manifest + .bin.

    Returns:
        A `keras.Model` with `trainable=False`: input (B, S, S, 3) float32 RGB in
        [-1, 1], any S; output a list of 4 float32 feature maps (shapes above).

    Raises:
        ValueError: unknown `backend`, or `before_activ=True` with "face_api".
        FileNotFoundError, RuntimeError: weights missing or not downloadable.
    """
    if backend not in PERCEPTUAL_BACKENDS:
        raise FaceswapError(
            f"Unknown perceptual backend {backend!r}; expected one of "
            f"{PERCEPTUAL_BACKENDS}."
        )
    if backend == "vggface":
        features, size = _vggface_features(weights, before_activ)
    elif before_activ:
        raise FaceswapError(
            "before_activ=True is only defined for the 'vggface' backend; the "
            "'face_api' features are block outputs after ReLU."
        )
    else:
        features, size = _face_api_features(weights)
    features.trainable = False

    images = keras.Input((None, None, 3), name="images")  # (B, S, S, 3) in [-1, 1]
    x = ops.image.resize(images, size, interpolation="bilinear")  # (B, h, w, 3)
    x = (x + 1.0) * 127.5  # RGB in [0, 255]
    if backend == "vggface":
        x = ops.flip(x, axis=-1) - ops.array(VGGFACE_MEAN_BGR)  # BGR minus means
    model = keras.Model(images, features(x), name=f"perceptual_{backend}")
    model.trainable = False
    return model
