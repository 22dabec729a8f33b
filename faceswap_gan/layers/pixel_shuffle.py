"""PixelShuffle (sub-pixel convolution) and its ICNR kernel initializer."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="faceswap_gan")
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel upsampling: moves channels into space.

    Input shape `(batch, H, W, C * r * r)` -> output shape `(batch, H * r, W * r, C)`.
    Same element order as `tf.nn.depth_to_space` (and the original's PixelShuffler by
    t-ae): output[b, h*r + i, w*r + j, c] = input[b, h, w, (i*r + j)*C + c].

    Args:
        scale: int. The upsampling factor `r`. Defaults to `2`.

    Reference:
        - [Shi et al., 2016](https://arxiv.org/abs/1609.05158)
    """

    def __init__(self, scale=2, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, inputs):
        r = self.scale
        _, h, w, c = ops.shape(inputs)
        out_c = c // (r * r)
        x = ops.reshape(inputs, (-1, h, w, r, r, out_c))  # (B, H, W, r, r, C)
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # (B, H, r, W, r, C)
        return ops.reshape(x, (-1, h * r, w * r, out_c))  # (B, H*r, W*r, C)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        r = self.scale
        return (
            b,
            None if h is None else h * r,
            None if w is None else w * r,
            c // (r * r),
        )

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="faceswap_gan")
class ICNR(keras.initializers.Initializer):
    """ICNR: initialises a conv kernel that feeds a `PixelShuffle(scale)` so that, at
    initialisation, conv + shuffle equals nearest-neighbour upsampling of a conv with a
    `RandomNormal(0, 0.02)` sub-kernel (no checkerboard artefacts).

    Kernel shape `(kh, kw, in, out)` with `out` divisible by `scale**2`; every group of
    `scale**2` output channels that the shuffle spreads over one pixel block shares a
    kernel.

    Args:
        scale: int. The PixelShuffle factor. Defaults to `2`.
        stddev: float. Standard deviation of the sub-kernel. Defaults to `0.02`.
        seed: int or None. Seed of the sub-kernel draw.

    Reference:
        - [Aitken et al., 2017](https://arxiv.org/abs/1707.02937)
    """

    def __init__(self, scale=2, stddev=0.02, seed=None):
        self.scale = int(scale)
        self.stddev = float(stddev)
        self.seed = seed

    def __call__(self, shape, dtype=None):
        kh, kw, c_in, c_out = shape
        groups = self.scale * self.scale
        if c_out % groups:
            raise ValueError(
                f"ICNR needs out channels divisible by {groups}; got {c_out}."
            )
        sub = keras.random.normal(
            (kh, kw, c_in, c_out // groups),
            stddev=self.stddev,
            dtype=dtype,
            seed=self.seed,
        )
        # Channel (i*r + j)*C + c equals sub-kernel channel c (depth_to_space order).
        return ops.concatenate([sub] * groups, axis=-1)

    def get_config(self):
        return {"scale": self.scale, "stddev": self.stddev, "seed": self.seed}
