"""MultiWorkerMirroredStrategy: two worker processes on this machine, each on CPU.

The two workers find each other through TF_CONFIG (two free localhost ports) and
all-reduce their gradients over gRPC. A third process trains the same config on one
device with the global batch, for reference. Every process first takes one step by
hand (the pieces `train` uses: the run's data stream, its step function), then runs
`train` itself: one step, then a resume to step 2, into one shared run folder.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from faceswap_gan import checkpoints

GLOBAL_BATCH = 4  # faces per side per step: 2 per worker

WORKER = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    from faceswap_gan import distribute

    mode, out, run_dir, faces_a, faces_b = sys.argv[1:]
    # First TensorFlow work of the process (a multi-worker strategy must come first).
    strategy = distribute.make_strategy("multiworker" if mode == "worker" else None)
    from faceswap_gan.config import TrainConfig
    import tensorflow as tf
    from faceswap_gan.models.gan import mixup_lambdas
    from faceswap_gan.training import _datasets, build_model, make_step_fn, train
    from faceswap_gan import distribute as d

    # The tiny model without the perceptual loss (a smaller step to compile).
    config = TrainConfig.from_preset(
        "tiny", faces_a=faces_a, faces_b=faces_b, run_dir=run_dir,
        batch_size=int(os.environ["GLOBAL_BATCH"]), iterations=2, display_iters=1,
        schedule="constant")
    _, index = d.worker_index(strategy)

    # 1. One step by hand: this worker's weights before and after it. Plain SGD, so
    # the weight change is lr x the applied gradient (Adam, scale-invariant, would
    # hide gradients summed instead of averaged over the workers).
    import keras
    with strategy.scope():
        model = build_model(config)
        for name, variables in (
            ("g_optimizer_a", model.generator_side_variables("A")),
            ("g_optimizer_b", model.generator_side_variables("B")),
            ("d_optimizer", model.discriminator_variables),
        ):
            optimizer = keras.optimizers.SGD(1e-3)  # small: finite after the step
            optimizer.build(variables)
            setattr(model, name, optimizer)
    np.savez(f"{out}/init_{mode}{index}.npz", *[np.asarray(w) for w in model.weights])
    if mode == "single":  # the initial weights in a checkpoint's order
        from faceswap_gan.checkpoints import save_checkpoint
        save_checkpoint(model, f"{out}/init/checkpoints", {"step": 0})
    batches = d.distributed_batches(strategy, _datasets(config, 0)[0])
    lambdas = tf.constant(mixup_lambdas(config.seed, 0))  # as train() draws them
    make_step_fn(model, strategy)(next(batches), next(batches), lambdas)
    np.savez(f"{out}/step_{mode}{index}.npz", *[np.asarray(w) for w in model.weights])

    # 2. train() (Adam): one step, then a resume to step 2; only the chief writes.
    name = "multiworker" if mode == "worker" else None
    train(config, progress=False, stop_at=1, strategy=name)
    train(config, resume=True, progress=False, strategy=name)
    print("DONE", mode, index, distribute.is_chief(strategy),
          strategy.num_replicas_in_sync, flush=True)
""")


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def two_workers(faces_a, faces_b, tmp_path_factory):
    """Runs the two workers and the one-device reference; -> (folder, outputs)."""
    root = tmp_path_factory.mktemp("multiworker")
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for mode, index in (("worker", 0), ("worker", 1), ("single", 0)):
        run_dir = root / ("run" if mode == "worker" else "single")
        tmp = root / f"tmp_{mode}{index}"  # the workers' temporary folders go here
        tmp.mkdir()
        env = dict(os.environ, TMPDIR=str(tmp), GLOBAL_BATCH=str(GLOBAL_BATCH))
        env.pop("TF_CONFIG", None)
        if mode == "worker":
            env["TF_CONFIG"] = json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            )
        args = [mode, str(root), str(run_dir), str(faces_a), str(faces_b)]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER, *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=900)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output[-4000:]
    return root, outputs


def _arrays(path):
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def _max_relative_error(after, reference, before):
    """max |after - reference| / max |reference - before| over all weights: how far
    `after` is from `reference`, relative to the largest change the step made."""
    error = max(np.abs(a - r).max() for a, r in zip(after, reference))
    return error / max(np.abs(r - b).max() for r, b in zip(reference, before))


def _total_relative_error(after, reference, before):
    """sum |after - reference| / sum |reference - before| over all weights. (Adam
    divides each gradient by its own RMS, so a weight whose gradient is near 0 can
    move by about lr either way under another float summation order: the max is no
    measure after Adam steps.)"""
    error = sum(np.abs(a - r).sum() for a, r in zip(after, reference))
    return error / sum(np.abs(r - b).sum() for r, b in zip(reference, before))


@pytest.mark.slow
def test_one_step_on_two_workers_equals_one_device_on_the_global_batch(two_workers):
    root, outputs = two_workers
    assert "DONE worker 0 True 2" in outputs[0]  # worker 0 is the chief
    assert "DONE worker 1 False 2" in outputs[1]
    zero, one = _arrays(root / "step_worker0.npz"), _arrays(root / "step_worker1.npz")
    single, init = (
        _arrays(root / "step_single0.npz"),
        _arrays(root / "init_single0.npz"),
    )
    assert len(zero) == len(one) == len(single) == len(init) > 0
    # The same start everywhere, and a step that changed the weights.
    for name in ("init_worker0", "init_worker1"):
        assert all(
            np.array_equal(a, b) for a, b in zip(_arrays(root / f"{name}.npz"), init)
        )
    assert all(np.isfinite(w).all() for w in single)
    assert max(np.abs(a - b).max() for a, b in zip(single, init)) > 0
    # Identical on both workers: the same all-reduced update of the same weights.
    assert all(np.array_equal(a, b) for a, b in zip(zero, one))
    # Equal to one device on the 4 faces (each worker had 2): gradients averaged
    # (SGD: summed gradients would double every change).
    error = _max_relative_error(zero, single, init)
    assert error <= 1e-2, error  # float32 sums in another order


@pytest.mark.slow
def test_train_and_resume_on_two_workers_only_the_chief_writes(two_workers):
    root, _ = two_workers
    run_dir, single_dir = root / "run", root / "single"
    folder, weights = checkpoints.weight_arrays(run_dir)
    state = json.loads((folder / "state.json").read_text())
    assert state["step"] == 2 and state["data_index"] == 2 * 2 * GLOBAL_BATCH
    steps = [json.loads(line)["step"] for line in open(run_dir / "metrics.jsonl")]
    assert steps == [1, 2]  # one line per step, written once (by the chief)
    assert sorted(p.name for p in (run_dir / "previews").glob("step_*.png")) == [
        "step_0000001.png",
        "step_0000002.png",
    ]
    assert not (run_dir / "train.pid").exists()  # the chief's lock released
    # The other worker wrote only to its temporary folder, removed at the end.
    assert list((root / "tmp_worker1").iterdir()) == []
    # Two steps with a resume between them on 2 workers x 2 faces match the same on
    # one device with 4 faces.
    reference_folder, reference = checkpoints.weight_arrays(single_dir)
    assert reference_folder.name == folder.name == "step_0000002"
    _, init = checkpoints.weight_arrays(root / "init")
    error = _total_relative_error(weights, reference, init)
    assert error <= 1e-2, error  # measured 1.3e-3 (float32 order, through Adam)


@pytest.mark.slow
def test_a_locked_run_stops_both_workers_with_one_line_errors(
    faces_a, faces_b, tmp_path
):
    """The chief cannot lock run_dir (another training holds it): it refuses, and the
    other worker, waiting for it in a collective, stops too instead of hanging."""
    from faceswap_gan.training import run_lock

    run_dir = tmp_path / "run"
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    command = [sys.executable, "-m", "faceswap_gan", "train", "--preset", "tiny"]
    command += ["--faces-a", str(faces_a), "--faces-b", str(faces_b), "--run-dir"]
    command += [str(run_dir), "--strategy", "multiworker", "--no-progress"]
    with run_lock(run_dir):  # this process is "another training process"
        procs = [
            subprocess.Popen(
                command,
                env=dict(
                    os.environ,
                    TF_CONFIG=json.dumps(
                        {"cluster": cluster, "task": {"type": "worker", "index": i}}
                    ),
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        try:
            results = [proc.communicate(timeout=600) for proc in procs]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
    chief, other = (err.strip().splitlines()[-1] for _, err in results)
    assert [proc.returncode for proc in procs] == [1, 1], results
    assert chief.startswith("train: error: ") and "in use by another" in chief
    assert other.startswith("train: error: Another worker of the cluster stopped")
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # nothing written
