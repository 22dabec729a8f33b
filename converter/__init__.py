"""Video conversion with a trained faceswap_gan model (configured by ConverterConfig)."""
