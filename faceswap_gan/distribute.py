"""Training past one device: TensorFlow's own `tf.distribute` strategies, chosen at run
time (`train --strategy`, `training.train(..., strategy=...)`).

- "mirrored": `tf.distribute.MirroredStrategy`, one process, every GPU it sees (else
  every logical CPU device: one, unless the process split its CPU into several).
- "multiworker": `tf.distribute.MultiWorkerMirroredStrategy`, one process per machine
  (or per worker), the cluster described by the standard `TF_CONFIG` environment
  variable; gradients are all-reduced over gRPC (CPU) or NCCL (GPU).
- "tpu": `tf.distribute.TPUStrategy` on the TPU that `TPUClusterResolver` finds (a
  Colab or Cloud TPU VM: "local"; a remote TPU: `TPU_NAME`). TPUs compile every step
  with XLA, so the training step must be XLA-compilable (`TrainConfig.jit_compile`).
- None: the default, as before: MirroredStrategy when several GPUs are visible, else
  TensorFlow's default (one-device) strategy.

Input: one pipeline per worker (`distributed_batches`), each augmenting only its own
replicas' share of every global batch; together they give exactly the one-device
stream's batches, so a step equals a one-device step on the global batch.

The strategy is a runtime choice, not part of a run's config: checkpoints hold plain
weights, so a run started under one strategy resumes under another.

Under "multiworker" only the chief (`is_chief`: task type "chief", or worker 0 when the
cluster has no chief) writes the run folder; every other worker runs the same code
(every save reads the variables, which may need collectives on all workers) but writes
to a temporary folder of its own, removed at the end: the pattern of TensorFlow's
multi-worker guide (https://www.tensorflow.org/tutorials/distribute/multi_worker_with_keras).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from faceswap_gan.errors import FaceswapError

if TYPE_CHECKING:  # TensorFlow is imported when used: the CLI parses without it.
    import tensorflow as tf

STRATEGIES = ("mirrored", "multiworker", "tpu")
TF_CONFIG_EXAMPLE = (
    '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
    '"task": {"type": "worker", "index": 0}}'
)

_multiworker: dict[str, "tf.distribute.Strategy"] = {}  # TF_CONFIG -> its strategy


def check_name(strategy) -> None:
    """Raises FaceswapError unless `strategy` is None, one of STRATEGIES or a
    `tf.distribute.Strategy`."""
    import tensorflow as tf

    if strategy is None or isinstance(strategy, tf.distribute.Strategy):
        return
    if strategy not in STRATEGIES:
        raise FaceswapError(
            f"Unknown strategy {strategy!r} (--strategy); choose one of "
            f"{', '.join(STRATEGIES)}, or leave it out (several GPUs: mirrored, else "
            f"one device)."
        )


def tf_config() -> dict:
    """The cluster of this process, from the `TF_CONFIG` environment variable, checked.

    TF_CONFIG is a JSON object: `{"cluster": {"worker": ["host:port", ...], "chief":
    ["host:port"] (optional)}, "task": {"type": "worker" or "chief", "index": i}}`,
    the same on every process except "task".

    Returns:
        The parsed TF_CONFIG dict.

    Raises:
        FaceswapError: TF_CONFIG is unset, not JSON, or lacks a cluster of workers
            (lists of "host:port"), or its task is not one of them.
    """
    text = os.environ.get("TF_CONFIG", "").strip()
    how = (
        f"Set TF_CONFIG on every worker, e.g. TF_CONFIG='{TF_CONFIG_EXAMPLE}' (the "
        f"same cluster everywhere, task.index 0, 1, ... per worker)."
    )
    if not text:
        raise FaceswapError(
            f"--strategy multiworker needs the TF_CONFIG environment variable, which "
            f"is not set. {how}"
        )
    try:
        data = json.loads(text)
    except ValueError as error:
        raise FaceswapError(f"TF_CONFIG is not valid JSON ({error}). {how}") from None
    cluster = data.get("cluster") if isinstance(data, dict) else None
    task = data.get("task") if isinstance(data, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise FaceswapError(
            f"TF_CONFIG must be an object with 'cluster' and 'task'; got {text}. {how}"
        )
    for role, hosts in cluster.items():
        if role not in ("worker", "chief"):
            raise FaceswapError(
                f"TF_CONFIG cluster role {role!r} is not supported; training uses "
                f"'worker' and optionally one 'chief'. {how}"
            )
        if (
            not isinstance(hosts, list)
            or not hosts
            or not all(isinstance(h, str) and ":" in h for h in hosts)
            or (role == "chief" and len(hosts) != 1)
        ):
            raise FaceswapError(
                f"TF_CONFIG cluster[{role!r}] must be a list of 'host:port' strings "
                f"(one for 'chief'); got {hosts!r}. {how}"
            )
    if "worker" not in cluster and "chief" not in cluster:
        raise FaceswapError(f"TF_CONFIG cluster has no 'worker' list. {how}")
    kind, index = task.get("type"), task.get("index", 0)
    if (
        kind not in cluster
        or isinstance(index, bool)
        or not isinstance(index, int)
        or not 0 <= index < len(cluster[kind])
    ):
        raise FaceswapError(
            f"TF_CONFIG task {task!r} is not in its cluster {cluster!r}: 'type' must "
            f"be one of {sorted(cluster)} and 'index' an int from 0 to the list's "
            f"length - 1. {how}"
        )
    return data


def _multiworker_strategy() -> tf.distribute.Strategy:
    import tensorflow as tf

    key = json.dumps(tf_config(), sort_keys=True)
    if key in _multiworker:
        return _multiworker[key]
    if _multiworker:
        raise FaceswapError(
            "TF_CONFIG changed after this process created its MultiWorkerMirrored"
            "Strategy; TensorFlow configures the cluster once per process: start a "
            "new process for the new cluster."
        )
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    except (RuntimeError, ValueError) as error:
        raise FaceswapError(
            f"Could not create the multi-worker strategy ({error}). It must be "
            f"created before TensorFlow runs anything in this process: call "
            f"faceswap_gan.distribute.make_strategy('multiworker') first thing."
        ) from error
    _multiworker[key] = strategy
    return strategy


def _tpu_strategy() -> tf.distribute.Strategy:
    import tensorflow as tf

    if os.environ.get("TPU_NAME"):
        name = os.environ["TPU_NAME"]
    elif os.environ.get("COLAB_TPU_ADDR"):  # a remote TPU node (old Colab runtimes)
        name = "grpc://" + os.environ["COLAB_TPU_ADDR"]
    else:  # a TPU VM: Colab's TPU runtime, Cloud TPU VMs
        name = "local"
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=name)
        if name != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise FaceswapError(
            f"--strategy tpu: no TPU reachable (TPUClusterResolver(tpu={name!r}): "
            f"{type(error).__name__}: {first}). On Colab pick a TPU runtime (Runtime > "
            f"Change runtime type); for a remote TPU set TPU_NAME; without a TPU use "
            f"--strategy mirrored or leave --strategy out."
        ) from error


def _mirrored_strategy() -> tf.distribute.Strategy:
    import tensorflow as tf

    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices(
        "CPU"
    )
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def make_strategy(strategy=None) -> tf.distribute.Strategy:
    """The `tf.distribute.Strategy` to train under.

    Args:
        strategy: None (MirroredStrategy over all GPUs when several are visible, else
            the default one-device strategy), "mirrored" (MirroredStrategy over every
            visible GPU, else every logical CPU device), "multiworker"
            (MultiWorkerMirroredStrategy from TF_CONFIG; one per process, created once
            and reused), "tpu" (TPUStrategy), or a Strategy (returned as is).

    Returns:
        tf.distribute.Strategy.

    Raises:
        FaceswapError: an unknown name; "multiworker" without a valid TF_CONFIG
            (`tf_config`) or after TensorFlow started in a way that prevents it; "tpu"
            with no TPU reachable.
    """
    import tensorflow as tf

    check_name(strategy)
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if strategy == "multiworker":
        return _multiworker_strategy()
    if strategy == "tpu":
        return _tpu_strategy()
    if strategy == "mirrored":
        return _mirrored_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def worker_index(strategy: tf.distribute.Strategy) -> tuple[str | None, int]:
    """(task type, task index) of this process in a multi-worker cluster; (None, 0)
    for a one-process strategy."""
    import tensorflow as tf

    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or (
        resolver is None
    ):
        return None, 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the process that writes the run folder: any one-process strategy; under
    MultiWorkerMirroredStrategy, the "chief" task, or worker 0 of a cluster without a
    chief (TensorFlow's convention)."""
    kind, index = worker_index(strategy)
    if kind is None or kind == "chief":
        return True
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return kind == "worker" and index == 0 and "chief" not in cluster


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """Processes that take part in each step (1 unless multi-worker)."""
    if worker_index(strategy)[0] is None:
        return 1
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return sum(len(hosts) for role, hosts in cluster.items() if role != "evaluator")


def make_agree(strategy: tf.distribute.Strategy):
    """A function `values -> (min, max)`: element-wise over every replica of every
    worker.

    A collective: under a multi-worker strategy every worker must call it at the same
    point, with the same length. Used to check that the workers resume at the same
    step and to stop all of them at once. Compiled once per length.

    Args:
        strategy: tf.distribute.Strategy.

    Returns:
        fn(values: sequence of numbers) -> (min, max), float64 arrays of `values`'
        length (exact for ints below 2**53; bools as 0/1).
    """
    import numpy as np
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float64)])
    def reduce(x):
        local = strategy.run(lambda v: v[None], args=(x,))  # (1, n) per replica
        every = strategy.gather(local, axis=0)  # (replicas, n): all workers' values
        return tf.reduce_min(every, 0), tf.reduce_max(every, 0)

    def agree(values):
        low, high = reduce(tf.constant(np.asarray(values, np.float64)))
        return np.asarray(low), np.asarray(high)

    return agree


def check_batch(strategy: tf.distribute.Strategy, batch_size: int) -> None:
    """Raises FaceswapError unless the global batch splits evenly over the replicas
    (each replica's loss is its own batch mean; replica gradients are averaged)."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise FaceswapError(
            f"batch_size {batch_size} (faces per side per step, over all replicas) "
            f"does not split evenly over the strategy's {replicas} replicas; give a "
            f"multiple of {replicas}."
        )


def data_options() -> tf.data.Options:
    """tf.data options of a per-pipeline stream: auto-sharding off, as each input
    pipeline already makes only its own replicas' samples (`distributed_batches`)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF
    )
    return options


def distributed_batches(strategy: tf.distribute.Strategy, streams):
    """An iterator of distributed batches for `strategy.run`, one input pipeline per
    worker (host), each making only the samples of its own replicas.

    `tf.distribute.Strategy.distribute_datasets_from_function` calls the pipeline
    function once per input pipeline with its `tf.distribute.InputContext`; the
    pipeline feeding replicas `first .. first + k - 1` builds
    `streams(num_replicas_in_sync, range(first, first + k))`, whose per-replica
    batches hold exactly those replicas' slices of each global batch
    (`dataset.make_dataset`, `replicas` and `replica_ids`). So the replicas together
    see the one-device stream's global batches, and no worker augments the faces of
    another (`experimental_distribute_dataset` with data auto-sharding would run the
    whole global batch's augmentation on every worker and keep a slice).

    Args:
        strategy: a tf.distribute.Strategy (the default one for one device).
        streams: callable `(replicas: int, replica_ids: range) -> tf.data.Dataset`
            of per-replica batches (`training._datasets`).

    Returns:
        iterator whose `next` gives one distributed element (per-replica values).
    """

    def pipeline(context):
        here = context.num_replicas_in_sync // context.num_input_pipelines
        first = context.input_pipeline_id * here
        dataset = streams(context.num_replicas_in_sync, range(first, first + here))
        return dataset.with_options(data_options())

    return iter(strategy.distribute_datasets_from_function(pipeline))


def worker_folder(strategy: tf.distribute.Strategy, run_dir: str | Path) -> Path:
    """Where this process writes: run_dir for the chief, else a new temporary folder
    (`faceswap_gan-worker<i>-*` in the system's temp dir) that the caller removes."""
    if is_chief(strategy):
        return Path(run_dir)
    import tempfile

    kind, index = worker_index(strategy)
    return Path(tempfile.mkdtemp(prefix=f"faceswap_gan-{kind}{index}-"))
