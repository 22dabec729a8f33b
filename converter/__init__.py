"""Video conversion with a trained faceswap_gan model, configured by ConverterConfig.

Modules: `config` (ConverterConfig and its enums), `smoothing` (Kalman/EMA box tracks),
`color` (colour corrections), `video` (PyAV streaming I/O), `blending`, `transformer`
(FaceTransformer) and `pipeline` (VideoConverter). Import them by module path.
"""
