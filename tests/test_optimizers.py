"""FusedAdam: Keras Adam's updates and variables, with TensorFlow's fused kernel."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from faceswap_gan.config import PRESETS
from faceswap_gan.models import FaceSwapGAN
from faceswap_gan.optimizers import FusedAdam

SHAPES = [(3, 3, 4, 8), (8,), (5, 7)]


def _run(optimizer_class, compiled, steps=4):
    """Variables and optimizer variables after `steps` updates with fixed random
    gradients (a new draw per step), from fixed random starting weights."""
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.normal(size=s).astype("float32")) for s in SHAPES]
    grads = [
        [tf.constant(rng.normal(size=s), tf.float32) for s in SHAPES]
        for _ in range(steps)
    ]
    optimizer = optimizer_class(1e-3, beta_1=0.5)
    optimizer.build(variables)

    def apply(g):
        optimizer.apply(g, variables)

    if compiled:
        apply = tf.function(apply, jit_compile=compiled == "xla")
    for g in grads:
        apply(g)
    return [np.array(v) for v in variables], optimizer


@pytest.mark.parametrize("compiled", [False, "graph", "xla"])
def test_fused_adam_updates_equal_keras_adams(compiled):
    """Four steps, eagerly, in a tf.function and compiled by XLA: the weights,
    momentums and velocities equal keras.optimizers.Adam's (within float
    rounding), and the weights moved by about lr per step (4 steps of 1e-3)."""
    start, _ = _run(FusedAdam, compiled, steps=0)
    fused, fused_opt = _run(FusedAdam, compiled)
    keras_, keras_opt = _run(keras.optimizers.Adam, compiled)
    for a, b, s in zip(fused, keras_, start):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        assert 1e-3 < np.abs(a - s).max() < 1e-2

    # The same state (names below the optimizer's own), so checkpoints load into
    # either.
    def state(optimizer):  # (kind, shape) of each variable, in order
        return [(v.name.rsplit("_", 1)[-1], v.shape) for v in optimizer.variables]

    assert state(fused_opt) == state(keras_opt)
    assert len(fused_opt.variables) == 2 + 2 * len(SHAPES)
    # Velocities: the kernel's 1 - beta_2 is float32 arithmetic (0.99998713e-3),
    # Keras' the float64 1e-3 rounded to float32, 1.3e-5 apart (relative).
    for a, b in zip(fused_opt.variables, keras_opt.variables):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=2e-5, atol=1e-9)


def test_the_trainer_uses_fused_adam():
    model = FaceSwapGAN(PRESETS["tiny"])
    model.compile()
    assert all(isinstance(o, FusedAdam) for o in model.optimizers.values())
    model.compile(mixed_precision="float16")  # loss scaling wraps the fused Adam
    assert all(
        isinstance(o.inner_optimizer, FusedAdam) for o in model.optimizers.values()
    )


MIRRORED = textwrap.dedent("""
    import numpy as np, keras, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from faceswap_gan.optimizers import FusedAdam

    def run(optimizer_class, strategy):
        with strategy.scope():
            rng = np.random.default_rng(0)
            variables = [keras.Variable(rng.normal(size=(4, 6)).astype("float32"))]
            optimizer = optimizer_class(1e-2, beta_1=0.5)
            optimizer.build(variables)

        @tf.function
        def step(grads):
            def replica(g):
                # Each replica's gradient differs: the optimizer sums them.
                r = tf.distribute.get_replica_context().replica_id_in_sync_group
                optimizer.apply([g * tf.cast(r + 1, tf.float32)], variables)
            strategy.run(replica, args=(grads,))

        for i in range(3):
            step(tf.constant(np.random.default_rng(i).normal(size=(4, 6)), tf.float32))
        copies = strategy.experimental_local_results(variables[0].value)
        assert len(copies) == 2
        np.testing.assert_array_equal(np.array(copies[0]), np.array(copies[1]))
        return np.array(copies[0]), [np.array(v) for v in optimizer.variables]

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    fused, keras_ = run(FusedAdam, strategy), run(keras.optimizers.Adam, strategy)
    np.testing.assert_allclose(fused[0], keras_[0], rtol=1e-5, atol=1e-7)
    for a, b in zip(fused[1], keras_[1]):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-9)
    start = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    print("MOVED", np.abs(fused[0] - start).max())
""")


def test_fused_adam_under_a_mirrored_strategy_equals_keras_adam():
    """Two replicas (logical CPUs) with different gradients: the fused update
    leaves both copies of the mirrored variable identical and equal to Keras
    Adam's (in a subprocess: the logical devices must be set before TensorFlow
    starts)."""
    done = subprocess.run(
        [sys.executable, "-c", MIRRORED], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    moved = float(done.stdout.split("MOVED")[-1])
    assert 1e-2 < moved < 1e-1
