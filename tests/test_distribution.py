"""Scale options: --strategy (MirroredStrategy over two logical CPU replicas, TF_CONFIG
checks, TPU errors), mixed precision. Two worker processes: tests/test_multiworker.py.
"""

import dataclasses
import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from faceswap_gan import checkpoints, distribute
from faceswap_gan.cli import main
from faceswap_gan.config import PRESETS, TrainConfig, to_dict, to_json
from faceswap_gan.errors import FaceswapError
from faceswap_gan.models import FaceSwapGAN
from faceswap_gan.models.gan import mixup_lambdas
from faceswap_gan.perceptual import build_perceptual_model
from faceswap_gan.training import resume_conflicts, train

WORKERS = {"worker": ["localhost:2222", "localhost:2223"]}


@pytest.mark.parametrize(
    "tf_config, message",
    [
        (None, "needs the TF_CONFIG environment variable"),
        ("{cluster", "not valid JSON"),
        ('["worker"]', "must be an object with 'cluster' and 'task'"),
        (json.dumps({"cluster": {}, "task": {}}), "has no 'worker' list"),
        (
            json.dumps({"cluster": {"ps": ["h:1"]}, "task": {"type": "ps"}}),
            "role 'ps' is not supported",
        ),
        (
            json.dumps({"cluster": {"worker": ["nohost"]}, "task": {"type": "worker"}}),
            "list of 'host:port' strings",
        ),
        (
            json.dumps({"cluster": WORKERS, "task": {"type": "worker", "index": 2}}),
            "is not in its cluster",
        ),
        (
            json.dumps({"cluster": WORKERS, "task": {"type": "chief", "index": 0}}),
            "is not in its cluster",
        ),
    ],
)
def test_multiworker_refuses_a_missing_or_bad_tf_config(
    tf_config, message, monkeypatch
):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if tf_config is not None:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(FaceswapError, match=message) as error:
        distribute.make_strategy("multiworker")
    assert "TF_CONFIG=" in str(error.value)  # says how to set it


def test_tf_config_of_a_two_worker_cluster_is_read(monkeypatch):
    value = {"cluster": WORKERS, "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(value))
    assert distribute.tf_config() == value


def test_cli_multiworker_without_tf_config_is_one_line_and_writes_nothing(
    faces_a, faces_b, tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    run_dir = tmp_path / "run"
    args = ["train", "--preset", "tiny", "--faces-a", str(faces_a), "--faces-b"]
    args += [str(faces_b), "--run-dir", str(run_dir), "--strategy", "multiworker"]
    assert main(args) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("train: error: --strategy "), error
    assert "TF_CONFIG" in error[0]
    assert not run_dir.exists()


def test_unknown_strategy_and_tpu_without_xla_are_refused(faces_a, faces_b, tmp_path):
    config = TrainConfig.from_preset(
        "tiny", faces_a=str(faces_a), faces_b=str(faces_b), run_dir=str(tmp_path / "r")
    )
    with pytest.raises(FaceswapError, match="choose one of mirrored, multiworker, tpu"):
        train(config, strategy="horovod")
    no_xla = dataclasses.replace(config, jit_compile=False)
    with pytest.raises(FaceswapError, match="tpu compiles every step with XLA"):
        train(no_xla, strategy="tpu")
    assert not (tmp_path / "r").exists()


def test_xla_flag_sets_jit_compile_and_may_change_on_resume(faces_a, faces_b, tmp_path):
    from faceswap_gan.cli import build_parser
    from faceswap_gan.commands.train import resolve_config

    def resolve(*args):
        return resolve_config(build_parser().parse_args(["train", *args]))

    run_dir = tmp_path / "run"
    fresh = ["--preset", "tiny", "--faces-a", str(faces_a), "--faces-b", str(faces_b)]
    fresh += ["--run-dir", str(run_dir)]
    assert resolve(*fresh).jit_compile is None  # auto
    assert resolve(*fresh, "--no-xla").jit_compile is False
    config = resolve(*fresh, "--xla")
    assert config.jit_compile is True
    # A run saved without XLA resumes with it: the same step, compiled or not.
    run_dir.mkdir()
    saved = dataclasses.replace(config, jit_compile=False)
    (run_dir / "config.json").write_text(to_json(saved))
    assert resume_conflicts(config, to_dict(saved)) == []
    resumed = resolve("--run-dir", str(run_dir), "--resume", "--xla")
    assert resumed == config
    with pytest.raises(FaceswapError, match="--batch-size"):  # still refused
        resolve("--run-dir", str(run_dir), "--resume", "--batch-size", "4")


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


def test_mixed_precision_flag_and_field_take_float16_bfloat16_or_off(faces_a, faces_b):
    from faceswap_gan.cli import build_parser
    from faceswap_gan.commands.train import resolve_config

    def resolve(*args):
        fresh = ["--preset", "tiny", "--faces-a", str(faces_a)]
        fresh += ["--faces-b", str(faces_b), "--run-dir", "unused"]
        return resolve_config(build_parser().parse_args(["train", *fresh, *args]))

    assert resolve().mixed_precision == "off"
    assert resolve().dtype_policy == "float32"
    assert resolve("--mixed-precision").dtype_policy == "mixed_float16"
    assert resolve("--mixed-precision", "bfloat16").dtype_policy == "mixed_bfloat16"
    assert (
        resolve("--mixed-precision", "bfloat16", "--no-mixed-precision").dtype_policy
        == "float32"
    )
    # Bools of configs saved before bfloat16: True was float16.
    assert TrainConfig(mixed_precision=True).mixed_precision == "float16"
    assert TrainConfig(mixed_precision=False).mixed_precision == "off"
    with pytest.raises(FaceswapError, match="'off', 'float16', 'bfloat16'.*'fp8'"):
        TrainConfig(mixed_precision="fp8")
    with pytest.raises(SystemExit):
        resolve("--mixed-precision", "fp8")
    # A run saved with `true` resumes under float16, not under bfloat16 (another
    # optimizer: float16 scales the loss).
    float16 = TrainConfig(mixed_precision="float16")
    assert resume_conflicts(float16, {"mixed_precision": True}) == []
    bfloat16 = TrainConfig(mixed_precision="bfloat16")
    assert resume_conflicts(bfloat16, {"mixed_precision": True}) == [
        ("mixed_precision", "float16", "bfloat16")
    ]


@pytest.mark.slow
def test_bfloat16_step_follows_the_float32_step():
    """The same model (seed), batch and mixup weights, with the perceptual loss on,
    one step in float32 and one under mixed_bfloat16: bfloat16 computes, float32
    variables, no loss scaling, and every loss within 2 % of float32's (bfloat16
    keeps 8 significant bits, about 0.4 % per rounding)."""
    faces = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    eyes = (np.random.default_rng(1).uniform(0, 1, (2, 64, 64, 1)) > 0.9).astype(
        "float32"
    )
    batch = ((faces, faces[::-1], eyes),) * 2
    lambdas = tf.constant(mixup_lambdas(0, 0))
    logs, models = {}, {}
    policy = keras.config.dtype_policy()
    for precision in ("off", "bfloat16"):
        keras.config.set_dtype_policy(
            TrainConfig(mixed_precision=precision).dtype_policy
        )
        try:
            keras.utils.set_random_seed(0)
            model = FaceSwapGAN(
                PRESETS["tiny"], perceptual_model=build_perceptual_model()
            )
            model.compile(mixed_precision=precision)
        finally:
            keras.config.set_dtype_policy(policy)
        model.use_pl.assign(1.0)
        step = tf.function(model.train_step)
        logs[precision] = {
            k: float(v) for k, v in step((batch, batch, lambdas)).items()
        }
        models[precision] = model
    model = models["bfloat16"]
    for optimizer in model.optimizers.values():
        assert not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    conv = model.encoder.get_layer("encoder_conv_in")
    assert conv.compute_dtype == "bfloat16" and conv.kernel.dtype == "float32"
    assert logs["off"]["g_a/perceptual"] > 0
    for name, value in logs["off"].items():
        if abs(value) > 1e-3:
            assert logs["bfloat16"][name] == pytest.approx(value, rel=0.02), name
    alpha, rgb, _ = model.swap(faces, "AtoB")
    assert alpha.dtype == rgb.dtype == np.float32  # heads compute in float32


@pytest.mark.slow
def test_bfloat16_run_resumes_like_one_run(faces_a, faces_b, tmp_path):
    """A tiny run under mixed_precision "bfloat16", stopped at step 2 and resumed in
    another call, ends at step 4 with the weights of the run done in one go, up to
    summation order (as `test_training`'s float32 test: the L1 distance under 2 % of
    what steps 3-4 changed): checkpoints keep float32 variables and the plain Adam
    state, config.json says "bfloat16", and the global dtype policy is restored."""
    config = TrainConfig.from_preset(
        "tiny",
        faces_a=str(faces_a),
        faces_b=str(faces_b),
        iterations=4,
        display_iters=2,
        schedule="constant",
        mixed_precision="bfloat16",
    )
    whole = dataclasses.replace(config, run_dir=str(tmp_path / "whole"))
    train(whole, progress=False)
    parts = dataclasses.replace(config, run_dir=str(tmp_path / "parts"))
    train(parts, progress=False, stop_at=2)
    assert keras.config.dtype_policy().name == "float32"
    _, middle = checkpoints.weight_arrays(parts.run_dir)
    train(parts, resume=True, progress=False)
    saved = json.loads((tmp_path / "parts" / "config.json").read_text())
    assert saved["mixed_precision"] == "bfloat16"
    (_, straight), (_, resumed) = (
        checkpoints.weight_arrays(run.run_dir) for run in (whole, parts)
    )
    assert all(w.dtype == np.float32 for w in resumed)
    triples = list(zip(straight, resumed, middle, strict=True))
    distance = sum(float(np.abs(a - b).sum()) for a, b, _ in triples)
    change = sum(float(np.abs(a - m).sum()) for a, _, m in triples)
    assert change > 0 and distance < 0.02 * change


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


MIRRORED_RESUME = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from faceswap_gan import distribute
    from faceswap_gan.config import TrainConfig
    from faceswap_gan.errors import FaceswapError
    from faceswap_gan.training import train

    root, faces_a, faces_b = sys.argv[1:]
    def config(name):
        return TrainConfig.from_preset(
            "tiny", faces_a=faces_a, faces_b=faces_b, run_dir=f"{root}/{name}",
            batch_size=4, iterations=2, display_iters=1, schedule="constant")

    # "mirrored" on a machine without GPUs: every logical CPU device (2 here).
    print("REPLICAS", distribute.make_strategy("mirrored").num_replicas_in_sync)
    train(config("straight"), progress=False, strategy="mirrored")
    # Left at step 1 for another process to resume on one device.
    train(config("elsewhere"), progress=False, stop_at=1, strategy="mirrored")
    try:
        distribute.make_strategy("tpu")
    except FaceswapError as error:
        print("TPU", error)
""")


@pytest.mark.slow
def test_mirrored_run_resumes_under_another_strategy(faces_a, faces_b, tmp_path):
    """train(strategy="mirrored") on 2 logical CPUs, stopped at step 1, resumed by the
    CLI in another process on one device (--strategy mirrored, 1 replica), ends
    where an uninterrupted 2-replica run does, up to float32 summation order. With no
    TPU, --strategy tpu is a clear error."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            MIRRORED_RESUME,
            str(tmp_path),
            str(faces_a),
            str(faces_b),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REPLICAS 2" in result.stdout
    tpu = next(line for line in result.stdout.splitlines() if line.startswith("TPU"))
    assert "no TPU reachable" in tpu and "--strategy mirrored" in tpu, tpu
    _, first = checkpoints.weight_arrays(
        tmp_path / "elsewhere"
    )  # step 1, on 2 replicas
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "faceswap_gan",
            "train",
            "--run-dir",
            str(tmp_path / "elsewhere"),
            "--resume",
            "--strategy",
            "mirrored",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert "Resuming from" in cli.stdout and "step_0000001" in cli.stdout

    straight_folder, straight = checkpoints.weight_arrays(tmp_path / "straight")
    elsewhere_folder, elsewhere = checkpoints.weight_arrays(tmp_path / "elsewhere")
    assert straight_folder.name == elsewhere_folder.name == "step_0000002"
    assert len(straight) == len(elsewhere) == len(first) > 0
    # One replica instead of two for the second step: the same update up to float
    # summation order, far below what the step changed (summed over all weights:
    # Adam moves a weight whose gradient is near 0 by about lr either way).
    change = sum(np.abs(a - b).sum() for a, b in zip(straight, first))
    error = sum(np.abs(a - b).sum() for a, b in zip(straight, elsewhere))
    assert change > 0 and error <= 1e-2 * change, (error, change)
