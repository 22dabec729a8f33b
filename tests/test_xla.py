"""The train step compiled with XLA, and the mixup weights drawn outside it."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from faceswap_gan.config import PRESETS, TrainConfig
from faceswap_gan.errors import FaceswapError
from faceswap_gan.models import FaceSwapGAN
from faceswap_gan.models.gan import MIXUP_DRAWS, mixup_lambdas
from faceswap_gan.training import make_step_fn, resolve_jit_compile


def test_mixup_lambdas_are_beta_02_draws_fixed_by_seed_and_step():
    first = mixup_lambdas(3, 17)
    assert first.shape == (MIXUP_DRAWS,) and first.dtype == np.float32
    np.testing.assert_array_equal(first, mixup_lambdas(3, 17))  # resumable
    assert not np.array_equal(first, mixup_lambdas(3, 18))
    assert not np.array_equal(first, mixup_lambdas(4, 17))
    draws = np.concatenate([mixup_lambdas(0, step) for step in range(2000)])
    assert draws.min() >= 0 and draws.max() <= 1
    # Beta(0.2, 0.2): U-shaped, mean 1/2; Kolmogorov-Smirnov against scipy's CDF.
    assert stats.kstest(draws, stats.beta(0.2, 0.2).cdf).pvalue > 1e-3
    assert stats.kstest(draws, stats.beta(1, 1).cdf).pvalue < 1e-6


def test_jit_compile_field_is_checked_and_auto_is_off_on_this_cpu():
    assert TrainConfig().jit_compile is None
    with pytest.raises(FaceswapError, match="jit_compile must be True, False or"):
        TrainConfig(jit_compile="yes")
    assert resolve_jit_compile(True) and not resolve_jit_compile(False)
    # Auto: XLA where it measured faster (GPU, TPU), not on a CPU-only machine.
    has_accelerator = bool(
        tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU")
    )
    assert resolve_jit_compile(None) == has_accelerator


def _batches(faces_a, faces_b):
    """(D batch, G batch) of real crops at 64 px, 2 faces per side."""
    from faceswap_gan.dataset import FaceSet, make_dataset

    data = tf.data.Dataset.zip(
        tuple(
            make_dataset(FaceSet(folder), 64, 2, seed)
            for seed, folder in enumerate((faces_a, faces_b))
        )
    )
    batches = iter(data)
    return next(batches), next(batches)


def _step(jit_compile, d_batch, g_batch, lambdas):
    keras.utils.set_random_seed(5)
    model = FaceSwapGAN(PRESETS["tiny"], seed=5)
    model.compile()
    step = make_step_fn(model, tf.distribute.get_strategy(), jit_compile)
    logs = step(d_batch, g_batch, lambdas)
    return {k: float(v) for k, v in logs.items()}, model


@pytest.mark.slow
def test_xla_step_compiles_and_equals_the_plain_step(faces_a, faces_b):
    d_batch, g_batch = _batches(faces_a, faces_b)
    lambdas = tf.constant(mixup_lambdas(0, 0))
    plain, plain_model = _step(False, d_batch, g_batch, lambdas)
    xla, xla_model = _step(True, d_batch, g_batch, lambdas)
    assert plain.keys() == xla.keys() and len(plain) == 17
    for key in plain:  # the D losses come first: same weights, same inputs
        np.testing.assert_allclose(xla[key], plain[key], rtol=2e-3, atol=1e-5)
    # One Adam step moves each weight by about lr * sign(gradient) (1e-4 for G,
    # 2e-4 for D): the same step, except where a gradient is near 0 and rounding
    # flips its sign, so at most a few weights differ, and by no more than 2 steps.
    for name in ("encoder", "decoder_A", "netDB"):
        diff = np.concatenate(
            [
                np.abs(keras.ops.convert_to_numpy(a) - keras.ops.convert_to_numpy(b))
                for a, b in zip(
                    getattr(plain_model, name).weights,
                    getattr(xla_model, name).weights,
                )
            ],
            axis=None,
        )
        assert diff.max() <= 4.1e-4 and np.mean(diff > 1e-5) < 0.05, name
    # The given lambdas drive the mixup D loss (they are not drawn in the step).
    other, _ = _step(False, d_batch, g_batch, 1.0 - lambdas)
    assert abs(other["d_a/total"] - xla["d_a/total"]) > 1e-3
