"""Network shapes and parameter counts against a hand count of REFERENCE 1.2."""

import itertools

import numpy as np
import pytest

from faceswap_gan.config import NORMS, PRESETS, ArchConfig
from faceswap_gan.models import build_decoder, build_discriminator, build_encoder


def norm_params(kind, c, group=None):
    """Weights of one norm layer over c channels (batchnorm counts its moving stats).

    hybrid (v2.2): a 1x1 conv with bias on group/2 channels (group = the block width,
    c unless given) and a scalar-affine instance norm on the rest."""
    half = (c if group is None else group) // 2
    return {
        "none": 0,
        "instancenorm": 2 * c,
        "instancenorm_v22": 2,
        "layernorm": 2 * c,
        "groupnorm": 2 * c,
        "batchnorm": 4 * c,
        "hybrid": half * half + half + 2,
    }[kind]


def attn(c):
    """SAGAN: f, g 1x1 to c/8 with bias, h 1x1 to c with bias, gamma."""
    return 2 * (c * (c // 8) + c // 8) + c * c + c + 1


def upscale(cfg, c_in, f, norm):
    if (
        cfg.model_capacity == "lite"
    ):  # nn upsample + reflect pad + conv3x3 (bias) + norm
        return 9 * c_in * f + f + norm_params(norm, f)
    # ICNR conv to 4f + norm (v2.2 passes group=f to the norm of this 4f tensor)
    return 9 * c_in * 4 * f + 4 * f + norm_params(norm, 4 * f, group=f)


def hand_count(cfg: ArchConfig):
    c, r, n, sa = cfg.coef, cfg.image_size, cfg.norm, cfg.use_self_attn
    w = 1024 // c**2
    enc = 25 * 3 * (64 // c) + 9 * (64 // c) * (
        128 // c
    )  # conv_in, block1 (no bias/norm)
    enc += 9 * (128 // c) * (256 // c) + norm_params(n, 256 // c) + sa * attn(256 // c)
    enc += 9 * (256 // c) * (512 // c) + norm_params(n, 512 // c) + sa * attn(512 // c)
    enc += 9 * (512 // c) * w + norm_params(n, w)
    enc += {64: 0, 128: 1, 256: 2}[r] * (9 * w * w + norm_params(n, w))
    latent = cfg.resolved_latent_dim
    enc += 16 * w * latent + latent + latent * 16 * w + 16 * w
    enc += upscale(cfg, w, 512 // c, n)
    f = 64 // c
    dec = upscale(cfg, 512 // c, 256 // c, n) + upscale(cfg, 256 // c, 128 // c, n)
    dec += sa * attn(128 // c) + upscale(cfg, 128 // c, f, n)
    dec += 2 * 9 * f * f  # res_block, bias-free, never normalised
    dec += attn(f) if sa else 9 * f * f
    dec += {64: 0, 128: 1, 256: 2}[r] * (
        25 * f * 3 + 3 + upscale(cfg, f, f, n) + 9 * f * f
    )
    dec += 25 * f + 1 + 25 * f * 3 + 3  # alpha and RGB heads
    dis = 16 * 6 * 64 + 16 * 64 * 128 + norm_params(n, 128) + 16 * 128 * 256
    dis += norm_params(n, 256) + sa * attn(256)
    dis += {64: 0, 128: 1, 256: 2}[r] * (
        16 * 256 * 256 + norm_params(n, 256) + sa * attn(256)
    )
    dis += 16 * 256
    return enc, dec, dis


CASES = [
    ArchConfig(r, sa, norm, cap)
    for r, cap, sa, norm in itertools.chain(
        itertools.product((64, 128, 256), ("standard", "lite"), (True,), ("hybrid",)),
        itertools.product((64,), ("lite",), (True, False), NORMS),
    )
]


@pytest.mark.parametrize(
    "cfg",
    CASES,
    ids=lambda c: (
        f"{c.image_size}-{c.model_capacity}-{c.norm}-sa{int(c.use_self_attn)}"
    ),
)
def test_shapes_and_parameter_counts(cfg):
    enc, dec, dis = build_encoder(cfg), build_decoder(cfg), build_discriminator(cfg)
    r, ch = cfg.image_size, 512 // cfg.coef
    assert tuple(enc.output.shape) == (None, 8, 8, ch)
    outputs = dec.outputs
    sizes = [64 * 2**i for i in range({64: 0, 128: 1, 256: 2}[r])]
    assert [tuple(o.shape) for o in outputs[:-1]] == [(None, s, s, 3) for s in sizes]
    assert tuple(outputs[-1].shape) == (None, r, r, 4)  # alpha first, then RGB
    assert tuple(dis.input.shape) == (None, r, r, 6)
    assert tuple(dis.output.shape) == (None, 8, 8, 1)
    assert (enc.count_params(), dec.count_params(), dis.count_params()) == hand_count(
        cfg
    )


def test_presets_build_and_run():
    for name, cfg in PRESETS.items():
        enc, dec = build_encoder(cfg), build_decoder(cfg)
        x = np.zeros((2, *cfg.image_shape), "float32")
        out = np.asarray(dec(enc(x)))
        assert out.shape == (2, cfg.image_size, cfg.image_size, 4), name
        assert 0 <= out[..., 0].min() and out[..., 0].max() <= 1  # sigmoid alpha
        assert -1 <= out[..., 1:].min() and out[..., 1:].max() <= 1  # tanh RGB
