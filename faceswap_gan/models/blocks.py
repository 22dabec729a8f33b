"""Building blocks of faceswap-GAN v2.2 (`networks/nn_blocks.py`), as functions.

Each block takes a tensor, returns a tensor, and names every layer it creates with the
`name` prefix. Order inside blocks is the original's: Conv -> activation -> [norm].
All conv kernels: `he_normal` init and L2 weight decay `WEIGHT_DECAY` (REFERENCE 1.2).
"""

import keras

from faceswap_gan.layers import (
    ICNR,
    PixelShuffle,
    ReflectionPadding2D,
    SelfAttention2D,
    normalization,
)

WEIGHT_DECAY = 1e-4


def conv2d(
    filters,
    kernel_size,
    name,
    strides=1,
    use_bias=True,
    padding="same",
    activation=None,
    initializer="he_normal",
    dtype=None,
):
    """A Conv2D with the project's init and L2 kernel decay."""
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=use_bias,
        activation=activation,
        kernel_initializer=initializer,
        kernel_regularizer=keras.regularizers.L2(WEIGHT_DECAY),
        name=name,
        dtype=dtype,
    )


def _norm(x, norm, use_norm, name):
    return normalization(norm, name=f"{name}_norm")(x) if use_norm else x


def conv_block(x, filters, norm, use_norm, name, strides=2):
    """Conv3x3 (no bias) -> ReLU -> [norm]: (B, H, W, C) -> (B, H/s, W/s, filters)."""
    x = conv2d(filters, 3, f"{name}_conv", strides=strides, use_bias=False)(x)
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return _norm(x, norm, use_norm, name)


def conv_block_d(x, filters, norm, use_norm, name):
    """Discriminator block: Conv4x4 s2 (no bias) -> LeakyReLU 0.2 -> [norm]; H/2."""
    x = conv2d(filters, 4, f"{name}_conv", strides=2, use_bias=False)(x)
    x = keras.layers.LeakyReLU(0.2, name=f"{name}_lrelu")(x)
    return _norm(x, norm, use_norm, name)


def res_block(x, filters, norm, use_norm, name):
    """Conv3x3 -> LReLU -> [norm] -> Conv3x3 -> + input -> LReLU -> [norm]; shape kept.

    Convs are bias-free as in the original. The v2.2 decoder calls this block without
    `use_norm` (REFERENCE 1.10 item 2); the caller keeps that behaviour.
    """
    skip = x
    x = conv2d(filters, 3, f"{name}_conv1", use_bias=False)(x)
    x = keras.layers.LeakyReLU(0.2, name=f"{name}_lrelu1")(x)
    x = _norm(x, norm, use_norm, f"{name}_1")
    x = conv2d(filters, 3, f"{name}_conv2", use_bias=False)(x)
    x = keras.layers.Add(name=f"{name}_add")([x, skip])
    x = keras.layers.LeakyReLU(0.2, name=f"{name}_lrelu2")(x)
    return _norm(x, norm, use_norm, f"{name}_2")


def upscale_ps(x, filters, norm, use_norm, name):
    """Capacity "standard": Conv3x3 to 4*filters (ICNR, bias) -> LReLU 0.2 -> [norm] ->
    PixelShuffle: (B, H, W, C) -> (B, 2H, 2W, filters)."""
    x = conv2d(filters * 4, 3, f"{name}_conv", initializer=ICNR(scale=2))(x)
    x = keras.layers.LeakyReLU(0.2, name=f"{name}_lrelu")(x)
    x = _norm(x, norm, use_norm, name)
    return PixelShuffle(2, name=f"{name}_shuffle")(x)


def upscale_nn(x, filters, norm, use_norm, name):
    """Capacity "lite": nearest x2 -> reflect pad 1 -> Conv3x3 (valid) -> [norm]
    (no activation, as the original): (B, H, W, C) -> (B, 2H, 2W, filters)."""
    x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up")(x)
    x = ReflectionPadding2D(1, name=f"{name}_pad")(x)
    x = conv2d(filters, 3, f"{name}_conv", padding="valid")(x)
    return _norm(x, norm, use_norm, name)


def upscale(x, filters, config, use_norm, name):
    """`upscale_ps` for capacity "standard", `upscale_nn` for "lite"."""
    block = upscale_nn if config.model_capacity == "lite" else upscale_ps
    return block(x, filters, config.norm, use_norm, name)


def self_attention(x, name):
    """SAGAN block (gamma starts at 0): shape kept."""
    return SelfAttention2D(squeeze=8, weight_decay=WEIGHT_DECAY, name=name)(x)
