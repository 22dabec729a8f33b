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
