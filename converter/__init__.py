"""Video conversion with a trained faceswap_gan model, configured by ConverterConfig.

Modules: `config` (ConverterConfig and its enums), `color` (colour corrections),
`blending`, `transformer` (FaceTransformer), `pipeline` (VideoConverter) and `stability`
(box jitter of a converted video). Box tracks are in `faceswap_gan.faces.tracking` and
video I/O in `faceswap_gan.video`. Import them by module path.
"""
