"""SAGAN self-attention over the spatial positions of a feature map."""

import keras
from keras import ops

# What `SelfAttention2D(fused=None)` is built with: False = the explicit matmul /
# softmax / matmul (measured as fast or faster on CPU; benchmarks/model_speed.py).
FUSED_DEFAULT = False


@keras.saving.register_keras_serializable(package="faceswap_gan")
class SelfAttention2D(keras.layers.Layer):
    """Self-attention block of SAGAN, without the max-pool (as faceswap-GAN v2.2).

    f = Conv1x1(C/8)(x), g = Conv1x1(C/8)(x), h = Conv1x1(C)(x);
    s = g f^T (softmax over the last axis); o = s h; out = gamma * o + x,
    with the learnable scalar `gamma` initialised to 0 (the block starts as identity).

    Input shape `(batch, H, W, C)` -> output shape `(batch, H, W, C)`, `C >= squeeze`.

    The scores are not scaled by 1/sqrt(d) (SAGAN's formula, unlike a Transformer's).

    Args:
        squeeze: int. Channel reduction of f and g. Defaults to `8`.
        weight_decay: float. L2 factor on the three 1x1 kernels. Defaults to `1e-4`.
        fused: bool | None. Compute softmax(g f^T) h with
            `keras.ops.dot_product_attention` (scale 1.0; layout (B, HW, 1 head, d),
            softmax in float32 also under mixed precision) instead of the explicit
            matmul / softmax / matmul. Both give the same outputs (within float
            rounding) and the same weights; None (default): `FUSED_DEFAULT` at
            construction.
            On the TensorFlow backend the Keras op is not a fused kernel (an
            einsum / softmax / einsum graph); its train step measured 0.83-1.01x
            the explicit one's speed on CPU (benchmarks/model_speed.py docstring,
            `--attention explicit fused`), so the default stays explicit.

    Reference:
        - [Zhang et al., 2019, Self-Attention GANs](https://arxiv.org/abs/1805.08318)
    """

    def __init__(self, squeeze=8, weight_decay=1e-4, fused=None, **kwargs):
        super().__init__(**kwargs)
        self.squeeze = int(squeeze)
        self.weight_decay = float(weight_decay)
        if fused is not None and not isinstance(fused, bool):
            raise ValueError(f"fused must be True, False or None; got {fused!r}.")
        self.fused = FUSED_DEFAULT if fused is None else fused

    def build(self, input_shape):
        channels = int(input_shape[-1])
        if channels // self.squeeze < 1:
            raise ValueError(
                f"SelfAttention2D needs >= {self.squeeze} channels; got {channels}."
            )
        reg = keras.regularizers.L2(self.weight_decay) if self.weight_decay else None

        def conv(filters, name):
            layer = keras.layers.Conv2D(
                filters,
                1,
                kernel_initializer="glorot_uniform",  # v2.2: Keras' default
                kernel_regularizer=reg,
                name=f"{self.name}_{name}",
                dtype=self.dtype_policy,
            )
            layer.build(input_shape)
            return layer

        self.query = conv(channels // self.squeeze, "f")
        self.key = conv(channels // self.squeeze, "g")
        self.value = conv(channels, "h")
        self.gamma = self.add_weight(shape=(), initializer="zeros", name="gamma")

    def call(self, inputs):
        if self.fused:
            return self._call_fused(inputs)
        _, h, w, c = ops.shape(inputs)
        f = ops.reshape(
            self.query(inputs), (-1, h * w, c // self.squeeze)
        )  # (B, HW, C/8)
        g = ops.reshape(
            self.key(inputs), (-1, h * w, c // self.squeeze)
        )  # (B, HW, C/8)
        v = ops.reshape(self.value(inputs), (-1, h * w, c))  # (B, HW, C)
        attention = ops.softmax(
            ops.matmul(g, ops.transpose(f, (0, 2, 1))), axis=-1
        )  # (B, HW, HW)
        o = ops.reshape(ops.matmul(attention, v), (-1, h, w, c))  # (B, H, W, C)
        return ops.cast(self.gamma, o.dtype) * o + inputs

    def _call_fused(self, inputs):
        _, h, w, c = ops.shape(inputs)
        d = c // self.squeeze
        # keras.ops.dot_product_attention: (B, T, heads, H) with one head; query g,
        # key f, value h; scale 1.0 keeps SAGAN's unscaled scores.
        g = ops.reshape(self.key(inputs), (-1, h * w, 1, d))
        f = ops.reshape(self.query(inputs), (-1, h * w, 1, d))
        v = ops.reshape(self.value(inputs), (-1, h * w, 1, c))
        o = ops.dot_product_attention(g, f, v, scale=1.0)  # (B, HW, 1, C)
        o = ops.reshape(o, (-1, h, w, c))
        return ops.cast(self.gamma, o.dtype) * o + inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "squeeze": self.squeeze,
            "weight_decay": self.weight_decay,
            "fused": self.fused,
        }
