"""faceswap-GAN v2.2 on Keras 3: train a GAN autoencoder that swaps two people's faces.

The public surface a notebook needs; everything else is imported by module path.
Names resolve lazily so that `import faceswap_gan.images` does not load TensorFlow.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "ArchConfig": "faceswap_gan.config",
    "LossConfig": "faceswap_gan.config",
    "LossWeights": "faceswap_gan.config",
    "TrainConfig": "faceswap_gan.config",
    "PRESETS": "faceswap_gan.config",
    "FaceSwapGAN": "faceswap_gan.models.gan",
    "load_model": "faceswap_gan.checkpoints",
    "train": "faceswap_gan.training",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'faceswap_gan' has no attribute {name!r}")
