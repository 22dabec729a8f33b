"""Networks of faceswap-GAN v2.2 and the FaceSwapGAN model."""

from faceswap_gan.models.gan import DIRECTIONS, NETWORKS, FaceSwapGAN
from faceswap_gan.models.networks import (
    build_decoder,
    build_discriminator,
    build_encoder,
    encoder_output_channels,
)

__all__ = [
    "DIRECTIONS",
    "NETWORKS",
    "FaceSwapGAN",
    "build_decoder",
    "build_discriminator",
    "build_encoder",
    "encoder_output_channels",
]
