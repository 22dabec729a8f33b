"""Scale options: MirroredStrategy over two (logical CPU) replicas, mixed precision."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from faceswap_gan.config import PRESETS
from faceswap_gan.models import FaceSwapGAN

MIRRORED = textwrap.dedent("""
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from faceswap_gan.config import PRESETS
    from faceswap_gan.models import FaceSwapGAN
    from faceswap_gan.training import make_step_fn
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = FaceSwapGAN(PRESETS["tiny"])
        model.compile()
    rng = np.random.default_rng(0)
    side = lambda: (rng.uniform(-1, 1, (4, 64, 64, 3)).astype("float32"),) * 2 + (
        np.zeros((4, 64, 64, 1), "float32"),)
    data = tf.data.Dataset.from_tensors((side(), side())).repeat()
    batches = iter(strategy.experimental_distribute_dataset(data))
    step = make_step_fn(model, strategy)
    for _ in range(2):
        logs = step(next(batches), next(batches))
    assert strategy.num_replicas_in_sync == 2
    assert all(np.isfinite(float(v)) for v in logs.values())
    print("ITERATIONS", *[int(o.iterations.numpy()) for o in model.optimizers.values()])
""")


@pytest.mark.slow
def test_mirrored_strategy_splits_the_batch_over_two_replicas():
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ITERATIONS 2 2 2" in result.stdout  # one update per optimizer and step


@pytest.mark.slow
def test_mixed_precision_step_keeps_float32_weights_and_outputs():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = FaceSwapGAN(PRESETS["tiny"])
        model.compile(mixed_precision=True)
    finally:
        keras.config.set_dtype_policy(policy)
    for optimizer in model.optimizers.values():
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    conv = model.encoder.get_layer("encoder_conv_in")
    assert conv.compute_dtype == "float16" and conv.kernel.dtype == "float32"
    faces = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    batch = ((faces, faces, np.zeros((2, 64, 64, 1), "float32")),) * 2
    step = tf.function(model.train_step)
    logs = [step((batch, batch)) for _ in range(3)]
    assert all(np.isfinite(float(v)) for v in logs[-1].values())
    alpha, rgb, _ = model.swap(faces, "AtoB")
    assert alpha.dtype == rgb.dtype == np.float32  # heads compute in float32


REPLICA_GRADIENTS = textwrap.dedent("""
    import numpy as np, keras, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from faceswap_gan.config import ArchConfig
    from faceswap_gan.models import FaceSwapGAN
    from faceswap_gan.training import make_step_fn

    # Per-sample norm, mixup-LSGAN (one lambda per step, drawn from the same seed on
    # every replica): one step is the same function of the global batch however it
    # is split. SGD makes the weight change lr x the applied gradient (Adam would
    # hide a gradient scale error).
    arch = ArchConfig((64, 64, 3), False, "instancenorm", "lite")
    rng = np.random.default_rng(0)
    side = lambda: (rng.uniform(-1, 1, (4, 64, 64, 3)).astype("float32"),
                    rng.uniform(-1, 1, (4, 64, 64, 3)).astype("float32"),
                    rng.uniform(0, 1, (4, 64, 64, 1)).astype("float32"))
    batches = [(side(), side()) for _ in range(2)]

    def one_step(strategy):
        with strategy.scope():
            model = FaceSwapGAN(arch, seed=0)
            model.compile()
            for name, variables in (
                ("g_optimizer_a", model.generator_side_variables("A")),
                ("g_optimizer_b", model.generator_side_variables("B")),
                ("d_optimizer", model.discriminator_variables),
            ):
                optimizer = keras.optimizers.SGD(1.0)
                optimizer.build(variables)
                setattr(model, name, optimizer)
        before = [np.array(w) for w in model.weights]
        data = tf.data.Dataset.from_tensors(tuple(batches))
        d_batch, g_batch = next(iter(strategy.experimental_distribute_dataset(data)))
        make_step_fn(model, strategy)(d_batch, g_batch)
        return [np.array(w) - b for w, b in zip(model.weights, before)]

    keras.utils.set_random_seed(0)
    one = one_step(tf.distribute.get_strategy())
    keras.utils.set_random_seed(0)
    two = one_step(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    scale = max(np.abs(d).max() for d in one)
    error = max(np.abs(a - b).max() for a, b in zip(one, two))
    ratio = sum(np.abs(b).sum() for b in two) / sum(np.abs(a).sum() for a in one)
    print("SCALE", scale, "ERROR", error, "RATIO", ratio)
""")


@pytest.mark.slow
def test_two_replicas_apply_the_gradient_of_the_global_batch():
    """One step on 2 replicas (2 faces each) changes every weight as one replica
    does on the 4 faces: replica gradients are averaged, not summed."""
    result = subprocess.run(
        [sys.executable, "-c", REPLICA_GRADIENTS],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("SCALE"))
    _, scale, _, error, _, ratio = line.split()
    assert float(scale) > 0
    assert float(error) <= 1e-2 * float(scale), line  # float32 sums in any order
    assert abs(float(ratio) - 1.0) < 1e-3, line
