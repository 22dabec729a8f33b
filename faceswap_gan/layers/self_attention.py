"""SAGAN self-attention over the spatial positions of a feature map."""

import keras
import tensorflow as tf
from keras import ops

# What `SelfAttention2D(fused=None)` is built with: False = the explicit matmul /
# softmax / matmul (measured as fast or faster on CPU; benchmarks/model_speed.py).
FUSED_DEFAULT = False
# What `SelfAttention2D(custom_gradient=None)` is built with: True = the explicit
# attention is `attention` (per query block, its own backward pass).
CUSTOM_GRADIENT_DEFAULT = True


def attention_autodiff(q, k, v):
    """softmax(q k^T) v, with TensorFlow's automatic gradient.

    Args:
        q: `(B, N, d)` queries. k: `(B, M, d)` keys. v: `(B, M, C)` values; one
            float dtype (float32, or float16/bfloat16 under mixed precision).

    Returns:
        `(B, N, C)`, the dtype of `v`. The softmax is over the M keys, the scores
        are not scaled (SAGAN's formula).
    """
    return tf.matmul(tf.nn.softmax(tf.matmul(q, k, transpose_b=True)), v)


# Scores per query block of `attention`: 2**21 (8 MiB of float32 per image). At
# 64x64 positions that is 512 queries against the 4096 keys.
BLOCK_SCORES = 2**21


def query_blocks(queries: int, keys: int) -> list[tuple[int, int]]:
    """(start, stop) of the query blocks `attention` works on: `BLOCK_SCORES // keys`
    queries each (at least 1), the last one shorter; `[(0, queries)]` when the
    sizes are not known when tracing (None)."""
    if queries is None or keys is None:
        return [(0, queries)]
    rows = max(1, BLOCK_SCORES // keys)
    return [(i, min(i + rows, queries)) for i in range(0, queries, rows)]


@tf.custom_gradient
def attention(q, k, v):
    """softmax(q k^T) v, computed per block of queries, with a hand-written
    backward pass; values as `attention_autodiff` (same shapes, dtypes and math),
    gradients equal to its within float rounding.

    The (B, N, M) score and softmax maps are what costs on a CPU: each pass over
    them streams 4 N M bytes per image (64 MiB at 64x64 positions) through memory,
    and TensorFlow's gradient keeps the whole map of every attention of a step for
    the backward pass. This is FlashAttention's algorithm (Dao et al., 2022,
    https://arxiv.org/abs/2205.14135, algorithm 1 and appendix B.2) with one
    simplification: each block holds `query_blocks` rows of queries against all
    keys, so each row's softmax is the exact one, with no running maximum. Only
    q, k, v and the output o are kept for the backward pass, which recomputes each
    block's P = softmax(q k^T) and, with the incoming gradient dO:

    - dV = sum over blocks of P^T dO, computed as (dO^T P)^T: a (C, n) x (n, M)
      product, whose long axis oneDNN walks faster than P's transpose;
    - dS = P * (dO V^T - D) with D = rowsum(dO * o), the softmax gradient without
      TensorFlow's rowsum(dP * P) over the whole map; the "- D" is folded into the
      matmul as an extra column, [dO, -D] [V, 1]^T, which saves a subtraction pass;
    - dq = dS k per block, dk = sum over blocks of dS^T q, as (q^T dS)^T.

    Args:
        q: `(B, N, d)` queries. k: `(B, M, d)` keys. v: `(B, M, C)` values; one
            float dtype. N and M must be known when the function is traced for it
            to work per block (otherwise one block).

    Returns:
        `(B, N, C)`, the dtype of `v`.

    Raises:
        ValueError (from TensorFlow) on inputs of other ranks or mismatched sizes.

    `benchmarks/attention_cost.py` times it against `attention_autodiff`.
    """
    blocks = query_blocks(q.shape[1], k.shape[1])

    def probabilities(start, stop):  # (B, n, M): this block's softmax rows
        return tf.nn.softmax(tf.matmul(q[:, start:stop], k, transpose_b=True))

    o = tf.concat([tf.matmul(probabilities(*b), v) for b in blocks], axis=1)

    def grad(do):
        d = tf.reduce_sum(do * o, axis=-1, keepdims=True)  # (B, N, 1)
        left = tf.concat([do, -d], axis=-1)  # (B, N, C + 1)
        right = tf.concat([v, tf.ones_like(v[..., :1])], axis=-1)  # (B, M, C + 1)
        dq, dk_t, dv_t = [], 0, 0
        for start, stop in blocks:
            p = probabilities(start, stop)
            dv_t += tf.matmul(do[:, start:stop], p, transpose_a=True)  # (B, C, M)
            ds = p * tf.matmul(left[:, start:stop], right, transpose_b=True)
            dq.append(tf.matmul(ds, k))  # (B, n, d)
            dk_t += tf.matmul(q[:, start:stop], ds, transpose_a=True)  # (B, d, M)
        return (
            tf.concat(dq, axis=1),
            tf.transpose(dk_t, (0, 2, 1)),
            tf.transpose(dv_t, (0, 2, 1)),
        )

    return o, grad


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
        custom_gradient: bool | None. How the explicit attention is computed:
            True, by `attention`, per block of queries with a hand-written
            backward pass that recomputes the maps (the same outputs and gradients
            within float rounding, without the (B, HW, HW) maps kept for the
            backward pass); False, `attention_autodiff`, whole maps and
            TensorFlow's automatic gradient. None (default):
            `CUSTOM_GRADIENT_DEFAULT` at construction. Not used when `fused`.

    Reference:
        - [Zhang et al., 2019, Self-Attention GANs](https://arxiv.org/abs/1805.08318)
    """

    def __init__(
        self, squeeze=8, weight_decay=1e-4, fused=None, custom_gradient=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.squeeze = int(squeeze)
        self.weight_decay = float(weight_decay)
        if fused is not None and not isinstance(fused, bool):
            raise ValueError(f"fused must be True, False or None; got {fused!r}.")
        self.fused = FUSED_DEFAULT if fused is None else fused
        if custom_gradient is not None and not isinstance(custom_gradient, bool):
            raise ValueError(
                f"custom_gradient must be True, False or None; got {custom_gradient!r}."
            )
        self.custom_gradient = (
            CUSTOM_GRADIENT_DEFAULT if custom_gradient is None else custom_gradient
        )

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
        # softmax(g f^T) v: (B, HW, HW) attention maps, softmax over f's positions.
        fn = attention if self.custom_gradient else attention_autodiff
        o = ops.reshape(fn(g, f, v), (-1, h, w, c))  # (B, H, W, C)
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
            "custom_gradient": self.custom_gradient,
        }
