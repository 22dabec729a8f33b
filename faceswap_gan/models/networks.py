"""Builders of the five networks of faceswap-GAN v2.2 (REFERENCE 1.2).

Each returns a plain `keras.Model` built from an `ArchConfig`. Faithful to the original,
including the parts REFERENCE 1.10 item 2 lists as odd (bias-free first convs, the
un-normalised second encoder block and decoder res_block): DESIGN section 3 fixes only
the norm names, so these are kept to match the published model.
"""

import keras

from faceswap_gan.config import ArchConfig
from faceswap_gan.models.blocks import (
    conv_block,
    conv_block_d,
    output_initializer,
    plain_conv2d,
    res_block,
    self_attention,
    upscale,
)


def encoder_output_channels(config: ArchConfig) -> int:
    """Channels of the 8x8 encoder output: 512 (standard) or 256 (lite)."""
    return 512 // config.coef


def build_encoder(config: ArchConfig, name: str = "encoder") -> keras.Model:
    """Shared encoder: (B, R, R, 3) in [-1, 1] -> (B, 8, 8, 512/coef).

    R x R x 3 -> conv5x5 64/c -> conv 128/c (R/2) -> conv 256/c + SA (R/4)
    -> conv 512/c + SA (R/8) -> conv 1024/c^2 (R/16) -> more 1024/c^2 convs to 4x4
    -> dense latent -> dense 4*4*1024/c^2 -> 4x4 -> upscale 512/c -> 8x8x(512/c),
    where c = 2 for "lite" and 1 for "standard"; SA only when use_self_attn.
    """
    c, norm, use_norm = config.coef, config.norm, config.norm != "none"
    inputs = keras.Input(config.image_shape, name=f"{name}_input")
    x = plain_conv2d(64 // c, 5, f"{name}_conv_in", use_bias=False)(
        inputs
    )  # no activation
    x = conv_block(x, 128 // c, norm, False, f"{name}_block1")  # never normalised
    x = conv_block(x, 256 // c, norm, use_norm, f"{name}_block2")
    if config.use_self_attn:
        x = self_attention(x, f"{name}_attn2")
    x = conv_block(x, 512 // c, norm, use_norm, f"{name}_block3")
    if config.use_self_attn:
        x = self_attention(x, f"{name}_attn3")
    x = conv_block(x, 1024 // c**2, norm, use_norm, f"{name}_block4")
    size, index = config.image_size // 16, 5
    while size > 4:
        x = conv_block(x, 1024 // c**2, norm, use_norm, f"{name}_block{index}")
        size, index = size // 2, index + 1
    x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    x = keras.layers.Dense(config.resolved_latent_dim, name=f"{name}_latent")(x)
    x = keras.layers.Dense(4 * 4 * 1024 // c**2, name=f"{name}_dense")(x)
    x = keras.layers.Reshape((4, 4, 1024 // c**2), name=f"{name}_reshape")(x)
    x = upscale(x, encoder_output_channels(config), config, use_norm, f"{name}_up")
    return keras.Model(inputs, x, name=name)


def build_decoder(config: ArchConfig, name: str = "decoder_A") -> keras.Model:
    """Decoder of one identity: (B, 8, 8, 512/c) -> outputs.

    8x8 -> upscale 256/c (16) -> upscale 128/c (32) + SA -> upscale 64/c (64)
    -> res_block (never normalised) -> SA (or conv_block s1) -> [while < R: intermediate
    RGB (tanh) at that size, upscale 64/c, conv_block s1] -> alpha (sigmoid), RGB.

    Returns a model whose outputs are `[rgb_64, (rgb_128,)] + [alpha_rgb]`: the
    intermediate (B, s, s, 3) tanh images (none at R = 64), then the final
    (B, R, R, 4) tensor: channel 0 the alpha mask in [0, 1], 1-3 RGB in [-1, 1].
    The alpha conv is named f"{name}_alpha".
    """
    c, norm, use_norm = config.coef, config.norm, config.norm != "none"
    inputs = keras.Input((8, 8, encoder_output_channels(config)), name=f"{name}_input")
    x = upscale(inputs, 256 // c, config, use_norm, f"{name}_up1")
    x = upscale(x, 128 // c, config, use_norm, f"{name}_up2")
    if config.use_self_attn:
        x = self_attention(x, f"{name}_attn2")
    x = upscale(x, 64 // c, config, use_norm, f"{name}_up3")
    x = res_block(x, 64 // c, norm, False, f"{name}_res")  # the original omits use_norm
    if config.use_self_attn:
        x = self_attention(x, f"{name}_attn3")
    else:
        x = conv_block(x, 64 // c, norm, False, f"{name}_conv3", strides=1)
    out_init = output_initializer(config.init_scheme)
    outputs, size = [], 64
    while size < config.image_size:
        outputs.append(
            plain_conv2d(
                3,
                5,
                f"{name}_rgb{size}",
                activation="tanh",
                dtype="float32",
                initializer=out_init,
            )(x)
        )
        x = upscale(x, 64 // c, config, use_norm, f"{name}_up{size * 2}")
        x = conv_block(x, 64 // c, norm, False, f"{name}_conv{size * 2}", strides=1)
        size *= 2
    alpha = plain_conv2d(
        1,
        5,
        f"{name}_alpha",
        activation="sigmoid",
        dtype="float32",
        initializer=out_init,
    )(x)
    rgb = plain_conv2d(
        3, 5, f"{name}_rgb", activation="tanh", dtype="float32", initializer=out_init
    )(x)
    outputs.append(
        keras.layers.Concatenate(name=f"{name}_alpha_rgb", dtype="float32")(
            [alpha, rgb]
        )
    )
    return keras.Model(inputs, outputs, name=name)


def build_discriminator(config: ArchConfig, name: str = "netDA") -> keras.Model:
    """Conditional PatchGAN: (B, R, R, 6) = concat[image, warped input] -> (B, 8, 8, 1).

    conv_d 64 (no norm) -> 128 -> 256 + SA -> [conv_d 256 + SA while > 8x8] -> conv 1.
    Widths do not depend on model_capacity. Output is linear (LSGAN scores).
    """
    norm, use_norm = config.norm, config.norm != "none"
    r = config.image_size
    inputs = keras.Input((r, r, 6), name=f"{name}_input")
    x = conv_block_d(inputs, 64, norm, False, f"{name}_block1")
    x = conv_block_d(x, 128, norm, use_norm, f"{name}_block2")
    x = conv_block_d(x, 256, norm, use_norm, f"{name}_block3")
    if config.use_self_attn:
        x = self_attention(x, f"{name}_attn3")
    size, index = r // 8, 4
    while size > 8:
        x = conv_block_d(x, 256, norm, use_norm, f"{name}_block{index}")
        if config.use_self_attn:
            x = self_attention(x, f"{name}_attn{index}")
        size, index = size // 2, index + 1
    x = plain_conv2d(1, 4, f"{name}_out", use_bias=False, dtype="float32")(x)
    return keras.Model(inputs, x, name=name)
