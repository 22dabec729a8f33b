"""Configs: the user's names, defaults, validation, JSON round trip, schedules."""

import pytest

from faceswap_gan.config import (
    PRESETS,
    SCHEDULES,
    ArchConfig,
    LossConfig,
    LossWeights,
    TrainConfig,
    from_json,
    stage_at,
    to_json,
)


def test_user_arch_config_dict_is_accepted():
    arch_config = {
        "image_shape": (128, 128, 3),
        "use_self_attn": True,
        "norm": "hybrid",
        "model_capacity": "lite",
    }
    arch = ArchConfig(**arch_config)
    assert (
        arch.image_size == 128 and arch.coef == 2 and arch.resolved_latent_dim == 2048
    )
    assert ArchConfig(image_shape=[64, 64, 3]).image_shape == (64, 64, 3)
    assert ArchConfig(image_shape=256).image_shape == (256, 256, 3)


def test_original_defaults():
    w, loss = LossWeights(), LossConfig()
    assert (w.w_D, w.w_recon, w.w_edge, w.w_eyes, w.w_pl) == (
        0.1,
        1.0,
        0.1,
        30.0,
        (0.01, 0.1, 0.3, 0.1),
    )
    assert (
        loss.gan_training,
        loss.use_PL,
        loss.PL_before_activ,
        loss.use_mask_hinge_loss,
        loss.m_mask,
        loss.lr_factor,
        loss.use_cyclic_loss,
    ) == ("mixup_LSGAN", False, False, False, 0.0, 1.0, False)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"image_shape": (96, 96, 3)}, r"64, 128, 256"),
        ({"image_shape": (64, 32, 3)}, r"\(S, S, 3\)"),
        ({"norm": "instance"}, "instancenorm"),
        ({"model_capacity": "huge"}, "lite"),
        ({"use_self_attn": "yes"}, "True or False"),
    ],
)
def test_arch_errors_name_allowed_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ArchConfig(**kwargs)


def test_loss_errors():
    with pytest.raises(ValueError, match="relativistic_avg_LSGAN"):
        LossConfig(gan_training="WGAN")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        LossConfig(m_mask=2.0)
    with pytest.raises(ValueError, match="vggface"):
        LossConfig(PL_before_activ=True)
    with pytest.raises(ValueError, match="4 weights"):
        LossWeights(w_pl=(1, 2))
    with pytest.raises(ValueError, match="even"):
        TrainConfig(batch_size=3)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_json_round_trip(preset, tmp_path):
    config = TrainConfig.from_preset(preset, faces_a="x", faces_b="y")
    assert from_json(TrainConfig, to_json(config)) == config
    to_json(config, tmp_path / "c.json")
    assert from_json(TrainConfig, tmp_path / "c.json") == config
    assert from_json(ArchConfig, to_json(PRESETS[preset])) == PRESETS[preset]


def test_unknown_json_field_is_an_error():
    with pytest.raises(ValueError, match="Unknown ArchConfig fields"):
        from_json(ArchConfig, '{"image_shape": [64, 64, 3], "nrom": "none"}')


def test_v22_schedule_triggers_at_40k():
    # v2.2 train notebook cell 28: TOTAL//5 - 150, ... at TOTAL_ITERS = 40000.
    triggers = [s.trigger(40000) for s in SCHEDULES["v2.2"]]
    assert triggers == [7850, 11850, 15850, 19850, 26516, 31850, 35850]
    assert [i for i, s in enumerate(SCHEDULES["v2.2"]) if s.swap_decoders] == [5]


def test_colab_demo_schedule_is_the_notebooks_seven_changes():
    # colab_demo/faceswap-GAN_colab_demo.ipynb at TOTAL_ITERS = 34000, offset 150:
    # (trigger, use_PL, hinge, m_mask, lr_factor, swap), PL off before the first.
    expected = [
        (34000 // 5 - 150, True, False, 0.0, 1.0, False),
        (34000 // 5 + 34000 // 10 - 150, True, True, 0.5, 1.0, False),
        (2 * 34000 // 5 - 150, True, True, 0.2, 1.0, False),
        (34000 // 2 - 150, True, True, 0.4, 0.3, False),
        (2 * 34000 // 3 - 150, True, True, 0.5, 1.0, True),
        (8 * 34000 // 10 - 150, True, True, 0.1, 0.3, False),
        (9 * 34000 // 10 - 150, True, False, 0.0, 0.1, False),
    ]
    got = [
        (s.trigger(34000), s.use_PL, s.use_mask_hinge_loss, s.m_mask, s.lr_factor,
         s.swap_decoders)
        for s in SCHEDULES["colab_demo"]
    ]  # fmt: skip
    assert got == expected
    assert stage_at("colab_demo", 34000 // 5 - 151, 34000) == -1  # PL still off
    lite = TrainConfig.from_preset("lite")
    assert lite.schedule == "colab_demo" and not lite.loss.use_PL


def test_stage_applies_from_trigger_on_so_resume_lands_right():
    assert stage_at("v2.2", 7849, 40000) == -1  # the run's own LossConfig
    assert stage_at("v2.2", 7850, 40000) == 0
    assert stage_at("v2.2", 7851, 40000) == 0  # not only on equality (original's bug)
    assert stage_at("v2.2", 39999, 40000) == 6
    # Scaled to any total, monotonic.
    for total in (20, 100, 1000, 34000):
        triggers = [s.trigger(total) for s in SCHEDULES["v2.2"]]
        assert triggers == sorted(triggers) and triggers[-1] < total
    assert stage_at("constant", 10, 100) == -1
