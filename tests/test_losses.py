"""Every loss term against a value computed by hand (numpy) on small tensors."""

import numpy as np
import pytest
from keras import ops

from faceswap_gan import losses

rng = np.random.default_rng(0)
REAL = rng.uniform(-1, 1, (2, 4, 4, 3)).astype("float32")
RGB = rng.uniform(-1, 1, (2, 4, 4, 3)).astype("float32")
ALPHA = rng.uniform(0, 1, (2, 4, 4, 1)).astype("float32")
EYES = (rng.uniform(0, 1, (2, 4, 4, 1)) > 0.5).astype("float32")


def value(x):
    return float(ops.convert_to_numpy(x))


def test_l1_l2_masked():
    assert value(losses.l1(REAL, RGB)) == pytest.approx(np.abs(REAL - RGB).mean(), 1e-6)
    assert value(losses.l2(REAL, RGB)) == pytest.approx(
        ((REAL - RGB) ** 2).mean(), 1e-6
    )
    expected = np.abs(EYES * (RGB - REAL)).mean()
    assert value(losses.eye_reconstruction(REAL, RGB, EYES)) == pytest.approx(
        expected, 1e-6
    )


def test_first_order_and_edge():
    dy = np.abs(REAL[:, :-1, :-1] - REAL[:, 1:, :-1])
    dx = np.abs(REAL[:, :-1, :-1] - REAL[:, :-1, 1:])
    np.testing.assert_allclose(ops.convert_to_numpy(losses.first_order(REAL, 1)), dy)
    np.testing.assert_allclose(ops.convert_to_numpy(losses.first_order(REAL, 2)), dx)
    gy = np.abs(RGB[:, :-1, :-1] - RGB[:, 1:, :-1])
    gx = np.abs(RGB[:, :-1, :-1] - RGB[:, :-1, 1:])
    expected = np.abs(gy - dy).mean() + np.abs(gx - dx).mean()
    assert value(losses.edge(REAL, RGB)) == pytest.approx(expected, 1e-5)


def test_eye_edge_with_full_mask_equals_edge():
    ones = np.ones_like(EYES)
    assert value(losses.eye_edge(REAL, RGB, ones)) == pytest.approx(
        value(losses.edge(REAL, RGB)), 1e-5
    )
    assert value(losses.eye_edge(REAL, RGB, np.zeros_like(EYES))) == 0.0


def test_composite():
    expected = ALPHA * RGB + (1 - ALPHA) * REAL
    np.testing.assert_allclose(
        ops.convert_to_numpy(losses.composite(ALPHA, RGB, REAL)), expected, rtol=1e-6
    )


def test_mixup_lsgan_and_lsgan_g():
    pred = rng.normal(size=(2, 8, 8, 1)).astype("float32")
    assert value(losses.mixup_lsgan_d(pred, 0.3)) == pytest.approx(
        ((pred - 0.3) ** 2).mean(), 1e-5
    )
    assert value(losses.lsgan_g(pred)) == pytest.approx(((pred - 1) ** 2).mean(), 1e-5)


def test_ralsgan_as_v22_writes_it():
    # v2.2 networks/losses.py: relativistic with real target 1 and fake target 0.
    real = rng.normal(size=(3, 8, 8, 1)).astype("float32")
    fake = rng.normal(size=(3, 8, 8, 1)).astype("float32")
    r_rel, f_rel = real - fake.mean(0), fake - real.mean(0)
    d = (((r_rel - 1) ** 2).mean() + (f_rel**2).mean()) / 2
    g = ((r_rel**2).mean() + ((f_rel - 1) ** 2).mean()) / 2
    assert value(losses.ralsgan_d(real, fake)) == pytest.approx(d, 1e-5)
    assert value(losses.ralsgan_g(real, fake)) == pytest.approx(g, 1e-5)
    # The masked fake gets plain LSGAN.
    plain = (((real - 1) ** 2).mean() + (fake**2).mean()) / 2
    assert value(losses.lsgan_d(real, fake)) == pytest.approx(plain, 1e-5)


def test_intermediate_reconstruction_resizes_target():
    big = rng.uniform(-1, 1, (1, 8, 8, 3)).astype("float32")
    small = big.reshape(1, 4, 2, 4, 2, 3).mean(axis=(2, 4))  # 2x2 mean == bilinear 1/2
    assert value(losses.intermediate_reconstruction(big, [small])) == pytest.approx(
        0, abs=1e-6
    )
    assert value(losses.intermediate_reconstruction(big, [])) == 0.0
    assert value(
        losses.intermediate_reconstruction(big, [small + 0.5])
    ) == pytest.approx(0.5, 1e-5)


def test_perceptual_instance_normalised_weighted_l2():
    feats_r = [rng.normal(size=(2, s, s, 4)).astype("float32") for s in (2, 3, 4, 5)]
    feats_f = [rng.normal(size=(2, s, s, 4)).astype("float32") for s in (2, 3, 4, 5)]
    w = (0.01, 0.1, 0.3, 0.1)

    def inorm(x):  # keras-contrib InstanceNormalization(axis=None), untrained
        return (x - x.mean((1, 2, 3), keepdims=True)) / (
            x.std((1, 2, 3), keepdims=True) + 1e-3
        )

    expected = sum(
        wi * ((inorm(r) - inorm(f)) ** 2).mean()
        for wi, r, f in zip(w, feats_r, feats_f)
    )
    assert value(losses.perceptual(feats_r, feats_f, w)) == pytest.approx(
        expected, 1e-4
    )
    # Invariant to an affine change of the features (per-sample normalisation).
    shifted = [3 * f + 2 for f in feats_r]
    assert value(losses.perceptual(feats_r, shifted, w)) == pytest.approx(0, abs=1e-4)


def test_mask_terms():
    assert value(losses.mask_l1(ALPHA)) == pytest.approx(np.abs(ALPHA).mean(), 1e-6)
    assert value(losses.mask_hinge(ALPHA, 0.4)) == pytest.approx(
        np.maximum(0, 0.4 - ALPHA).mean(), 1e-6
    )
    tv = (
        np.abs(ALPHA[:, :-1, :-1] - ALPHA[:, 1:, :-1]).mean()
        + np.abs(ALPHA[:, :-1, :-1] - ALPHA[:, :-1, 1:]).mean()
    )
    assert value(losses.mask_total_variation(ALPHA)) == pytest.approx(tv, 1e-5)


def test_cyclic():
    other = rng.uniform(0, 1, ALPHA.shape).astype("float32")
    expected = np.abs(RGB - REAL).mean() + 0.1 * np.abs(ALPHA - other).mean()
    assert value(losses.cyclic(REAL, RGB, ALPHA, other)) == pytest.approx(
        expected, 1e-5
    )
