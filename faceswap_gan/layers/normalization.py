"""Normalisation factory with honest names, and the hybrid normalisation.

The original's labels were swapped (REFERENCE 1.10 item 1): its "instancenorm" was a
per-sample whole-tensor (layer-norm-like) normalisation and its "layernorm" was a true
per-channel instance norm. Here each name means what it says (DESIGN section 3).
"""

import keras
from keras import ops

from faceswap_gan.config import NORMS


@keras.saving.register_keras_serializable(package="faceswap_gan")
class HybridNormalization(keras.layers.Layer):
    """faceswap-GAN's "hybrid" norm: the first half of the channels goes through a 1x1
    conv, the second half is instance-normalised; the halves are concatenated.

    Input shape `(batch, H, W, C)` with even `C` -> output shape `(batch, H, W, C)`.

    Args:
        weight_decay: float. L2 factor on the 1x1 kernel. Defaults to `1e-4`.
    """

    def __init__(self, weight_decay=1e-4, **kwargs):
        super().__init__(**kwargs)
        self.weight_decay = float(weight_decay)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        if channels % 2:
            raise ValueError(
                f"hybrid norm needs an even channel count; got {channels}."
            )
        half = channels // 2
        half_shape = (*input_shape[:-1], half)
        reg = keras.regularizers.L2(self.weight_decay) if self.weight_decay else None
        self.conv = keras.layers.Conv2D(
            half,
            1,
            kernel_initializer="he_normal",
            kernel_regularizer=reg,
            name=f"{self.name}_conv",
            dtype=self.dtype_policy,
        )
        self.instance = keras.layers.GroupNormalization(
            groups=-1, name=f"{self.name}_in", dtype=self.dtype_policy
        )
        self.conv.build(half_shape)
        self.instance.build(half_shape)

    def call(self, inputs):
        half = ops.shape(inputs)[-1] // 2
        return ops.concatenate(
            [self.conv(inputs[..., :half]), self.instance(inputs[..., half:])], axis=-1
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "weight_decay": self.weight_decay}


def normalization(kind: str, name: str) -> keras.layers.Layer:
    """Returns a normalisation layer for `(batch, H, W, C)` feature maps.

    Args:
        kind: str. "instancenorm" (per sample and channel over H, W: GroupNorm with
            groups=-1), "layernorm" (per sample over H, W, C with per-channel scale and
            offset: GroupNorm with one group), "groupnorm" (16 groups), "batchnorm",
            "hybrid" (`HybridNormalization`) or "none" (identity).
        name: str. Layer name.

    Raises:
        ValueError: `kind` is not one of `NORMS`.
    """
    if kind == "instancenorm":
        return keras.layers.GroupNormalization(groups=-1, name=name)
    if kind == "layernorm":
        return keras.layers.GroupNormalization(groups=1, name=name)
    if kind == "groupnorm":
        return keras.layers.GroupNormalization(groups=16, name=name)
    if kind == "batchnorm":
        return keras.layers.BatchNormalization(name=name)
    if kind == "hybrid":
        return HybridNormalization(name=name)
    if kind == "none":
        return keras.layers.Identity(name=name)
    raise ValueError(f"Unknown normalization {kind!r}; expected one of {NORMS}.")
