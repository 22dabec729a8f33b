"""FaceSwapGAN: training on real crops, swap API, save/load/mismatch, atomic writes."""

import json

import numpy as np
import pytest
import tensorflow as tf

from faceswap_gan.checkpoints import (
    find_checkpoint,
    load_model,
    load_weights,
    save_checkpoint,
)
from faceswap_gan.config import PRESETS, ArchConfig, LossConfig
from faceswap_gan.dataset import FaceSet, make_dataset
from faceswap_gan.models import FaceSwapGAN

TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def trained(faces_a, faces_b):
    """A tiny model trained 40 steps on the real crops -> (model, per-step logs)."""
    model = FaceSwapGAN(TINY, LossConfig(), seed=1)
    model.compile()
    data = tf.data.Dataset.zip(
        tuple(
            make_dataset(FaceSet(folder), 64, 2, seed)
            for seed, folder in enumerate((faces_a, faces_b))
        )
    )
    step = tf.function(model.train_step)
    history, batches = [], iter(data)
    for _ in range(40):
        logs = step((next(batches), next(batches)))  # fresh D and G batches (v2.2)
        history.append(
            (
                float(logs["g/total"]),
                float(logs["g_a/reconstruction"] + logs["g_b/reconstruction"]),
            )
        )
    return model, np.array(history)


@pytest.mark.slow
def test_generator_loss_falls_on_real_faces(trained):
    model, history = trained
    first, last = history[:8].mean(axis=0), history[-8:].mean(axis=0)
    assert np.all(last < 0.9 * first), history  # total and reconstruction both fall
    assert [int(o.iterations) for o in model.optimizers.values()] == [40, 40, 40]


def _real_batch(faces_a, faces_b):
    """((warped, target, mask) of A, of B) from real crops at 64 px in [-1, 1]."""
    from faceswap_gan.images import read_image, resize_faces, to_model_range

    sides = []
    for folder in (faces_a, faces_b):
        images = np.stack([read_image(p) for p in sorted(folder.iterdir())[:2]])
        faces = to_model_range(resize_faces(images, 64))
        sides.append((faces, faces, np.zeros((2, 64, 64, 1), "float32")))
    return tuple(sides)


@pytest.mark.slow
def test_train_step_reports_every_term_and_the_perceptual_term_is_live(
    faces_a, faces_b
):
    from faceswap_gan.perceptual import build_perceptual_model

    batch = _real_batch(faces_a, faces_b)
    loss = LossConfig(
        gan_training="relativistic_avg_LSGAN", use_cyclic_loss=True, use_PL=True
    )
    terms = ("adversarial", "reconstruction", "edge", "mask", "perceptual", "cyclic")
    with_pl = FaceSwapGAN(TINY, loss, perceptual_model=build_perceptual_model())
    with_pl.compile()
    logs = with_pl.train_step((batch, batch))
    for side in ("g_a", "g_b"):
        for term in (*terms, "total"):
            assert np.isfinite(float(logs[f"{side}/{term}"]))
        # An untrained model's faces are far from the real ones in face_api's
        # feature space, so the perceptual term is positive; the total holds it.
        assert float(logs[f"{side}/perceptual"]) > 0
        parts = sum(float(logs[f"{side}/{t}"]) for t in (*terms, "weight_decay"))
        assert float(logs[f"{side}/total"]) == pytest.approx(parts, rel=1e-4)
    assert {"d_a/total", "d_b/total", "g_a/weight_decay", "g/total"} <= set(logs)
    without = FaceSwapGAN(TINY, LossConfig(use_PL=False))
    without.compile()
    assert float(without.train_step((batch, batch))["g_a/perceptual"]) == 0.0


def weights(net):
    return [np.array(w) for w in net.weights]


def changed(before, net):
    return any(not np.array_equal(a, b) for a, b in zip(before, weights(net)))


@pytest.mark.slow
def test_each_generator_step_updates_the_encoder_and_only_its_own_decoder(faces_a):
    # v2.2: netGA_train steps encoder + decoder_A with its own Adam, netGB_train
    # encoder + decoder_B; the cyclic term runs through the other decoder without
    # updating it. Freeze G_B's and D's learning rates and step once: only the
    # encoder and decoder_A may change.
    model = FaceSwapGAN(TINY, LossConfig(use_cyclic_loss=True), seed=3)
    model.compile()
    model.g_optimizer_b.learning_rate.assign(0.0)
    model.d_optimizer.learning_rate.assign(0.0)
    rng = np.random.default_rng(1)
    side = (
        rng.uniform(-1, 1, (2, 64, 64, 3)).astype("float32"),
        rng.uniform(-1, 1, (2, 64, 64, 3)).astype("float32"),
        np.zeros((2, 64, 64, 1), "float32"),
    )
    before = {
        n: weights(getattr(model, n)) for n in ("encoder", "decoder_A", "decoder_B")
    }
    model.train_step(((side, side), (side, side)))
    assert changed(before["encoder"], model.encoder)
    assert changed(before["decoder_A"], model.decoder_A)
    assert not changed(before["decoder_B"], model.decoder_B)
    # Three Adams, one step each; the encoder's variables were stepped by G_A's Adam
    # and (at lr 0) by G_B's: both hold moments for them.
    assert [int(o.iterations) for o in model.optimizers.values()] == [1, 1, 1]


def test_set_stage_multiplies_the_runs_own_lr_factor():
    from faceswap_gan.config import SCHEDULES

    model = FaceSwapGAN(TINY, LossConfig(lr_factor=0.5))
    model.compile()
    assert float(model.g_optimizer_a.learning_rate) == pytest.approx(0.5e-4)
    stage = SCHEDULES["v2.2"][4]  # lr factor 0.3
    model.set_stage(stage)
    assert float(model.g_optimizer_a.learning_rate) == pytest.approx(1e-4 * 0.5 * 0.3)
    assert float(model.g_optimizer_b.learning_rate) == pytest.approx(1e-4 * 0.5 * 0.3)
    assert float(model.d_optimizer.learning_rate) == pytest.approx(2e-4 * 0.5 * 0.3)


@pytest.mark.slow
def test_swap_masked_output_is_alpha_composite(faces_a):
    model = FaceSwapGAN(TINY)
    faces = np.random.default_rng(0).uniform(-1, 1, (3, 64, 64, 3)).astype("float32")
    alpha, rgb, masked = model.swap(faces, "AtoB")
    assert alpha.shape == (3, 64, 64, 1) and rgb.shape == masked.shape == (3, 64, 64, 3)
    assert 0 <= alpha.min() and alpha.max() <= 1 and -1 <= rgb.min() and rgb.max() <= 1
    np.testing.assert_allclose(masked, alpha * rgb + (1 - alpha) * faces, atol=1e-6)
    # AtoB uses decoder_B; BtoA decoder_A: different weights, different outputs.
    assert not np.allclose(model.swap(faces, "BtoA")[1], rgb)
    with pytest.raises(ValueError, match="AtoB"):
        model.swap(faces, "AtoC")
    with pytest.raises(ValueError, match="64, 64, 3"):
        model.swap(faces[:, :32, :32], "AtoB")


@pytest.mark.slow
def test_save_load_round_trip_and_mismatch(trained, tmp_path):
    model, _ = trained
    path = save_checkpoint(model, tmp_path / "checkpoints", {"step": 40, "stage": 0})
    faces = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    loaded = load_model(tmp_path)  # run folder -> checkpoints/latest
    for direction in ("AtoB", "BtoA"):
        for ours, theirs in zip(
            model.swap(faces, direction), loaded.swap(faces, direction)
        ):
            np.testing.assert_allclose(ours, theirs, atol=1e-6)
    # Resume state: optimizers and seed generator restored in a compiled model.
    fresh = FaceSwapGAN(TINY)
    fresh.compile()
    assert load_weights(fresh, path)["step"] == 40
    for name, optimizer in fresh.optimizers.items():
        assert int(optimizer.iterations) == 40
        for a, b in zip(optimizer.variables, model.optimizers[name].variables):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Another architecture: a clear error naming both, not a silent fresh start.
    other = FaceSwapGAN(ArchConfig((64, 64, 3), True, "none", "lite", latent_dim=128))
    with pytest.raises(ValueError, match="another architecture"):
        load_weights(other, path)
    config = json.loads((path / "config.json").read_text())
    config["arch"]["latent_dim"] = 256  # config that does not fit the stored weights
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not fit"):
        load_model(path)


@pytest.mark.slow
def test_interrupted_write_keeps_previous_checkpoint(trained, tmp_path):
    model, _ = trained
    ckpts = tmp_path / "checkpoints"
    first = save_checkpoint(model, ckpts, {"step": 10, "stage": 0})
    # A write killed halfway: a temp folder and a final folder without state.json.
    (ckpts / ".step_0000020.x").mkdir()
    (ckpts / ".step_0000020.x" / "encoder.weights.h5").write_bytes(b"partial")
    assert find_checkpoint(tmp_path) == first
    assert load_model(tmp_path).image_size == 64
    second = save_checkpoint(model, ckpts, {"step": 20, "stage": 0})
    assert find_checkpoint(tmp_path) == second and not first.exists()
    assert not list(ckpts.glob(".step_*"))  # leftovers cleaned
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        find_checkpoint(tmp_path / "nowhere")
