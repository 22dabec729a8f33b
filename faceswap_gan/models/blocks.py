"""Building blocks of faceswap-GAN v2.2 (`networks/nn_blocks.py`), as functions.

Each block takes a tensor, returns a tensor, and names every layer it creates with the
`name` prefix. Order inside blocks is the original's: Conv -> activation -> [norm].

Initialisers and weight decay are v2.2's (`networks/nn_blocks.py`,
`networks/faceswap_gan_model.py`): the convs of the blocks (conv_block, conv_block_d,
res_block, upscale_nn and the hybrid norm's 1x1 conv) are `he_normal` with L2
`WEIGHT_DECAY`; upscale_ps's conv is ICNR with L2; the self-attention 1x1 convs are
Keras' default Glorot-uniform *with* L2; the first encoder conv, the decoder's output
convs and the discriminator head are plain `Conv2D` (Glorot-uniform, no L2), see
`plain_conv2d`.

Why the default `ArchConfig.init_scheme` ("stable") changes two of them. Untrained v2.2
networks start saturated (measured by `benchmarks/learning.py --init-report` on real
crops: lite + hybrid has 47-74 % of its RGB values beyond +-0.99, the other presets
8-17 %), for two reasons:
1. `upscale_nn` (lite) has no activation after its conv, yet the conv is `he_normal`,
   whose gain sqrt(2) is meant for a ReLU that halves the variance. So every decoder
   upscale grows the activations' RMS by about 1.4x; with "hybrid", half of the
   channels are never normalised, and the RMS that reaches the output convs is about 4
   (1.4 at the encoder output). "stable" uses LeCun-normal there (gain 1: the variance-
   preserving init for a linear conv).
2. The output convs are Glorot-uniform. With fan_out (25 x 3) much smaller than fan_in
   (25 x C), that is about He's variance, so the tanh / sigmoid pre-activation has a
   standard deviation of about 1.4x the RMS of its input (>= 1 after the last block),
   and 10-15 % of the values sit in tanh's flat tails, where gradients vanish.
   "stable" draws them from `VarianceScaling(0.1, "fan_in")`: a pre-activation standard
   deviation of about 0.3x the input RMS, so the outputs start in the linear range
   (alpha then starts at 0.44-0.58 on average, inside the 0.23-0.75 that v2.2's own
   initialisation gives).
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
    weight_decay=WEIGHT_DECAY,
):
    """A Conv2D of v2.2's blocks: `he_normal` kernel and L2 decay `weight_decay`."""
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=use_bias,
        activation=activation,
        kernel_initializer=initializer,
        kernel_regularizer=keras.regularizers.L2(weight_decay)
        if weight_decay
        else None,
        name=name,
        dtype=dtype,
    )


def plain_conv2d(
    filters,
    kernel_size,
    name,
    use_bias=True,
    activation=None,
    dtype=None,
    initializer="glorot_uniform",
):
    """A `Conv2D` as v2.2 builds it outside the blocks (first encoder conv, output
    convs, discriminator head): no L2; Keras' default Glorot-uniform kernel unless
    `initializer` is given."""
    return conv2d(
        filters,
        kernel_size,
        name,
        use_bias=use_bias,
        activation=activation,
        initializer=initializer,
        dtype=dtype,
        weight_decay=0.0,
    )


def output_initializer(init_scheme: str):
    """Kernel initializer of the decoder's output convs (alpha, RGB, intermediate RGB):
    v2.2's Glorot-uniform, or small `VarianceScaling(0.1, "fan_in")` for "stable"."""
    if init_scheme == "v2.2":
        return "glorot_uniform"
    return keras.initializers.VarianceScaling(0.1, "fan_in", "truncated_normal")


def _norm(x, norm, use_norm, name, group=None):
    return normalization(norm, name=f"{name}_norm", group=group)(x) if use_norm else x


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
    # v2.2 passes group=f on this 4f-channel tensor (matters only for "hybrid").
    x = _norm(x, norm, use_norm, name, group=filters)
    return PixelShuffle(2, name=f"{name}_shuffle")(x)


def upscale_nn(x, filters, norm, use_norm, name, initializer="he_normal"):
    """Capacity "lite": nearest x2 -> reflect pad 1 -> Conv3x3 (valid) -> [norm]
    (no activation, as the original): (B, H, W, C) -> (B, 2H, 2W, filters).
    v2.2's kernel init is he_normal; `upscale` passes LeCun-normal for "stable"."""
    x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_up")(x)
    x = ReflectionPadding2D(1, name=f"{name}_pad")(x)
    x = conv2d(filters, 3, f"{name}_conv", padding="valid", initializer=initializer)(x)
    return _norm(x, norm, use_norm, name)


def upscale(x, filters, config, use_norm, name):
    """`upscale_ps` for capacity "standard", `upscale_nn` for "lite"."""
    if config.model_capacity == "lite":
        init = "he_normal" if config.init_scheme == "v2.2" else "lecun_normal"
        return upscale_nn(x, filters, config.norm, use_norm, name, init)
    return upscale_ps(x, filters, config.norm, use_norm, name)


def self_attention(x, name):
    """SAGAN block (gamma starts at 0; Glorot 1x1 convs with L2): shape kept."""
    return SelfAttention2D(squeeze=8, weight_decay=WEIGHT_DECAY, name=name)(x)
