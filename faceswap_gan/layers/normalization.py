"""Normalisation factory with honest names, faceswap-GAN v2.2's own instance norm, and
the hybrid normalisation.

The original's labels did not say what they computed (REFERENCE 1.2): its
"instancenorm" was keras-contrib `InstanceNormalization(axis=None)`, a per-sample
normalisation over H, W **and** C with one scalar gamma and beta, and its "layernorm"
was `GroupNormalization(group=f)` on f channels, a per-channel instance norm. Here each
plain name means what it says (DESIGN section 3) and v2.2's layer keeps its own name,
"instancenorm_v22", so that the presets that claim v2.2 compute what v2.2 computed.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="faceswap_gan")
class V22InstanceNormalization(keras.layers.Layer):
    """faceswap-GAN v2.2's "instancenorm": keras-contrib `InstanceNormalization()` with
    its default `axis=None`.

    `y = gamma * (x - mean) / (std + epsilon) + beta`, where mean and std are taken per
    sample over every non-batch axis (H, W and C together) and gamma, beta are single
    scalars (initialised to 1 and 0). Note that epsilon is added to the standard
    deviation, not to the variance, as keras-contrib does.

    Input shape `(batch, ...)` -> same shape and dtype.

    Args:
        epsilon: float. Added to the standard deviation. Defaults to `1e-3`
            (keras-contrib's default).

    Reference:
        - keras-team/keras-contrib `keras_contrib/layers/normalization/
          instancenormalization.py`; shaoanlu/faceswap-GAN `networks/
          instance_normalization.py` (a copy), used as `InstanceNormalization()`.
    """

    def __init__(self, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        self.gamma = self.add_weight(shape=(1,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(1,), initializer="zeros", name="beta")

    def call(self, inputs):
        # Statistics in float32 (under mixed precision a float16 variance can come
        # out negative or overflow); the result in the input's dtype.
        x = ops.cast(inputs, "float32")
        axes = tuple(range(1, len(inputs.shape)))
        mean = ops.mean(x, axis=axes, keepdims=True)
        std = ops.sqrt(ops.maximum(ops.var(x, axis=axes, keepdims=True), 0.0))
        out = self.gamma * (x - mean) / (std + self.epsilon) + self.beta
        return ops.cast(out, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="faceswap_gan")
class HybridNormalization(keras.layers.Layer):
    """faceswap-GAN v2.2's "hybrid" norm (`normalization(x, 'hybrid', group)` in
    `networks/nn_blocks.py`): the first `group // 2` channels go through a 1x1 conv
    (he_normal, L2, bias) to `group // 2` channels, the remaining `C - group // 2`
    channels through `V22InstanceNormalization` (per sample over H, W and those
    channels, scalar gamma and beta); the two parts are concatenated.

    v2.2's blocks call it with `group = f`, the block's width. In `conv_block` the
    tensor has f channels, so the split is half and half; inside `upscale_ps` the
    tensor has 4f channels (before the pixel shuffle), so only f/2 of them go through
    the conv and 3.5f through the instance norm.

    Input shape `(batch, H, W, C)` -> output shape `(batch, H, W, C)`.

    Args:
        group: int or None. v2.2's `group` argument (even); `None` means `C`.
        weight_decay: float. L2 factor on the 1x1 kernel. Defaults to `1e-4`.

    Raises:
        ValueError: `group` is odd or larger than `C`.
    """

    def __init__(self, group=None, weight_decay=1e-4, **kwargs):
        super().__init__(**kwargs)
        self.group = None if group is None else int(group)
        self.weight_decay = float(weight_decay)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        group = channels if self.group is None else self.group
        if group % 2 or group > channels:
            raise ValueError(
                f"hybrid norm needs an even group <= the channel count; got group "
                f"{group} for {channels} channels."
            )
        self.split = group // 2
        conv_shape = (*input_shape[:-1], self.split)
        reg = keras.regularizers.L2(self.weight_decay) if self.weight_decay else None
        self.conv = keras.layers.Conv2D(
            self.split,
            1,
            kernel_initializer="he_normal",
            kernel_regularizer=reg,
            name=f"{self.name}_conv",
            dtype=self.dtype_policy,
        )
        self.instance = V22InstanceNormalization(
            name=f"{self.name}_in", dtype=self.dtype_policy
        )
        self.conv.build(conv_shape)
        self.instance.build((*input_shape[:-1], channels - self.split))

    def call(self, inputs):
        # One split (its gradient is one concat) rather than two slices, whose
        # gradients each write a zero-filled full-size tensor (StridedSliceGrad).
        first, rest = ops.split(inputs, [self.split], axis=-1)
        return ops.concatenate([self.conv(first), self.instance(rest)], axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "group": self.group,
            "weight_decay": self.weight_decay,
        }


def normalization(kind: str, name: str, group: int | None = None) -> keras.layers.Layer:
    """Returns a normalisation layer for `(batch, H, W, C)` feature maps.

    Args:
        kind: str. "instancenorm" (per sample and channel over H, W: GroupNorm with
            groups=-1), "instancenorm_v22" (`V22InstanceNormalization`: what v2.2
            called instancenorm, per sample over H, W and C with scalar gamma/beta),
            "layernorm" (per sample over H, W, C with per-channel scale and offset:
            GroupNorm with one group), "groupnorm" (16 groups), "batchnorm", "hybrid"
            (`HybridNormalization(group)`) or "none" (identity).
        name: str. Layer name.
        group: int or None. Only for "hybrid": v2.2's `group` (the block width f);
            `None` means the channel count.

    Raises:
        ValueError: `kind` is not a key of `NORMALIZATIONS`.
    """
    if kind not in NORMALIZATIONS:
        raise ValueError(
            f"Unknown normalization {kind!r}; expected one of {tuple(NORMALIZATIONS)}."
        )
    return NORMALIZATIONS[kind](name, group)


# kind -> (name, group) -> layer; `faceswap_gan.config.NORMS` offers exactly these
# (tests/test_layering.py checks it).
NORMALIZATIONS = {
    "instancenorm": lambda name, _: keras.layers.GroupNormalization(-1, name=name),
    "instancenorm_v22": lambda name, _: V22InstanceNormalization(name=name),
    "layernorm": lambda name, _: keras.layers.GroupNormalization(1, name=name),
    "groupnorm": lambda name, _: keras.layers.GroupNormalization(16, name=name),
    "batchnorm": lambda name, _: keras.layers.BatchNormalization(name=name),
    "hybrid": lambda name, group: HybridNormalization(group, name=name),
    "none": lambda name, _: keras.layers.Identity(name=name),
}
