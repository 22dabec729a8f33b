"""Custom Keras 3 layers of faceswap-GAN (all `keras.ops`, all serialisable)."""

from faceswap_gan.layers.normalization import (
    HybridNormalization,
    V22InstanceNormalization,
    normalization,
)
from faceswap_gan.layers.padding import ReflectionPadding2D
from faceswap_gan.layers.pixel_shuffle import ICNR, PixelShuffle
from faceswap_gan.layers.self_attention import SelfAttention2D

__all__ = [
    "HybridNormalization",
    "ICNR",
    "PixelShuffle",
    "ReflectionPadding2D",
    "SelfAttention2D",
    "V22InstanceNormalization",
    "normalization",
]
