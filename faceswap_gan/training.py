"""train(TrainConfig) -> run folder: the v2.2 training loop, resumable and observable.

Run folder layout:
    config.json          the resolved TrainConfig
    metrics.jsonl        a line per display window: step, stage, loss terms, lr, seconds
    loss.png             loss curves by term (updated with the previews)
    previews/            step_XXXXXXX.png grids and latest.png
    checkpoints/         latest pointer, newest checkpoint, backups every backup_iters
    tensorboard/         optional TensorBoard scalars
    .lock, train.pid     the run's lock (one training process at a time) and its holder

Under a multi-worker strategy (`faceswap_gan.distribute`) only the chief writes (and
locks) the run folder; the other workers read its checkpoints to resume and write
their own copies to a temporary folder, removed at the end.

Every file is written whole or not at all (a temporary file renamed into place), so a
killed run leaves nothing half-written; the next start cleans what it left (hidden
checkpoint temporaries, metrics lines after its checkpoint).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from faceswap_gan import checkpoints, distribute, files
from faceswap_gan.config import (
    SCHEDULES,
    ArchConfig,
    TrainConfig,
    from_dict,
    mixed_precision_name,
    stage_at,
    to_dict,
    to_json,
)
from faceswap_gan.dataset import FaceSet, make_dataset
from faceswap_gan.errors import FaceswapError
from faceswap_gan.images import list_images, resize_faces, to_model_range
from faceswap_gan.models.gan import FaceSwapGAN, mixup_lambdas
from faceswap_gan.previews import plot_losses, save_preview

PREVIEW_FACES = 4  # Faces per side in the preview grids.
EVAL_FACES = 8  # At most this many held-out faces per side for periodic evaluation.
BATCHES_PER_STEP = 2  # v2.2 draws fresh batches for the D and the G steps.
LOCK_FILE = ".lock"  # run_dir/.lock: flock-ed while a process trains in run_dir.
PID_FILE = "train.pid"  # run_dir/train.pid: the PID of the process holding the lock.

# Fields that may differ from the run's saved config on resume: they change neither
# the model, the data stream nor the schedule (jit_compile: the same step, compiled
# with XLA or not). RESUME_SWITCHABLE may change value but
# not be turned on or off (a moved folder, another evaluation period; turning eval on
# or off changes which faces are trained on). `iterations` may change under the
# "constant" schedule only (other schedules place their stages by it).
RESUME_CHANGEABLE = (
    "run_dir",
    "faces_a",
    "faces_b",
    "display_iters",
    "tensorboard",
    "jit_compile",
)
RESUME_SWITCHABLE = (
    "masks_a",
    "masks_b",
    "eval_every",
    "backup_iters",
    "loss.perceptual_weights",
)


def needs_perceptual(config: TrainConfig) -> bool:
    """True when the perceptual loss is on now or in any stage of the schedule."""
    return config.loss.use_PL or any(s.use_PL for s in SCHEDULES[config.schedule])


def build_model(config: TrainConfig) -> FaceSwapGAN:
    """Compiled FaceSwapGAN for `config` (with the perceptual model if needed).

    The initial weights are drawn after `keras.utils.set_random_seed(config.seed)`, so
    one config builds the same starting model in every process."""
    keras.utils.set_random_seed(config.seed)
    perceptual = None
    if needs_perceptual(config):
        from faceswap_gan.perceptual import build_perceptual_model

        perceptual = build_perceptual_model(
            config.loss.perceptual_backend,
            config.loss.PL_before_activ,
            config.loss.perceptual_weights,
        )
    model = FaceSwapGAN(
        config.arch, config.loss, config.loss_weights, perceptual, seed=config.seed
    )
    model.compile(mixed_precision=config.mixed_precision)
    return model


def _at_model_size(images: np.ndarray, size: int) -> np.ndarray:
    """(N, 256, 256, 3) uint8 -> (N, size, size, 3) float32 in [-1, 1]."""
    return to_model_range(resize_faces(images, size))


def held_out_count(n_faces: int) -> int:
    """Faces per side kept out of training for periodic evaluation: 10%, 1 to 8."""
    return min(EVAL_FACES, max(1, n_faces // 10))


def _check_eval_faces(folder, n_faces: int) -> None:
    if n_faces < 2:
        raise FaceswapError(
            f"{folder} has {n_faces} face(s): periodic evaluation (--eval-every) "
            f"holds out {held_out_count(n_faces)} and needs at least 2 faces per "
            f"person to leave some to train on; add faces or turn evaluation off "
            f"with --eval-every 0."
        )


def check_faces(config: TrainConfig) -> None:
    """Checks the face folders before anything is built or written.

    Raises:
        FaceswapError: a face folder is missing or not a folder, has no images, or
            has too few to hold some out for evaluation (`eval_every`).
    """
    for side, folder in (("a", config.faces_a), ("b", config.faces_b)):
        if not Path(folder).is_dir():
            raise FaceswapError(
                f"Face folder not found: {folder} (faces_{side}, --faces-{side}): "
                f"give a folder of person {side.upper()}'s face crops."
            )
        if config.eval_every:
            _check_eval_faces(folder, len(list_images(folder)))


def _datasets(config: TrainConfig, start_index: int):
    """-> (streams, preview faces per side, held-out faces per side or None).

    `streams(replicas=1, replica_ids=None)` builds the zipped A/B stream from
    `start_index` on (`make_dataset`'s replica split; the defaults: the whole
    stream). With `eval_every`, the last `held_out_count` faces of each folder
    (sorted by name) are not trained on; they are the fixed evaluation set.
    """
    sets = [
        FaceSet(config.faces_a, config.masks_a),
        FaceSet(config.faces_b, config.masks_b),
    ]
    held_out = None
    if config.eval_every:
        for faces in sets:
            _check_eval_faces(faces.folder, len(faces))
        held_out = [faces.images[-held_out_count(len(faces)) :] for faces in sets]
        sets = [
            FaceSet.from_arrays(
                faces.images[: -len(kept)],
                None if faces.masks is None else faces.masks[: -len(kept)],
            )
            for faces, kept in zip(sets, held_out)
        ]
        held_out = [
            _at_model_size(images, config.arch.image_size) for images in held_out
        ]
    pool = np.concatenate([faces.images for faces in sets])  # colour-match references

    def streams(replicas: int = 1, replica_ids: range | None = None):
        return tf.data.Dataset.zip(
            tuple(
                make_dataset(
                    faces,
                    config.arch.image_size,
                    config.batch_size,
                    config.seed + side,
                    config.augment,
                    pool,
                    start_index,
                    replicas=replicas,
                    replica_ids=replica_ids,
                )
                for side, faces in enumerate(sets)
            )
        )

    previews = [
        _at_model_size(faces.images[:PREVIEW_FACES], config.arch.image_size)
        for faces in sets
    ]
    return streams, previews, held_out


class _Run:
    """Mutable state of one training run (the parts a checkpoint stores). `folder`:
    where this process writes (run_dir; a temporary folder on a non-chief worker)."""

    def __init__(self, config: TrainConfig, step=0, stage=-1, seconds=0.0, folder=None):
        self.config, self.step, self.stage, self.seconds = config, step, stage, seconds
        self.dir = Path(config.run_dir if folder is None else folder)

    def state(self) -> dict:
        return {
            "step": self.step,
            "stage": self.stage,
            "seconds": round(self.seconds, 3),
            "data_index": self.step * BATCHES_PER_STEP * self.config.batch_size,
            "iterations": self.config.iterations,
        }

    def save(self, model, backup=False) -> Path:
        ckpt_dir = self.dir / "checkpoints"
        mark = checkpoints.BACKUP_MARK
        backups = {p.name for p in ckpt_dir.glob("step_*") if (p / mark).exists()}
        path = checkpoints.save_checkpoint(
            model, ckpt_dir, self.state(), to_dict(self.config), keep=backups
        )
        if backup:
            (path / mark).touch()
        return path


def _enter_stage(model, run: _Run, entering_from_saved: bool) -> None:
    """Applies the stage in force at run.step.

    The decoders are swapped when a swap stage is entered, also when a run that was
    stopped exactly at the swap step resumes (its checkpoint holds the stage before).
    """
    stages = SCHEDULES[run.config.schedule]
    new = stage_at(run.config.schedule, run.step, run.config.iterations)
    if new < 0 or (new == run.stage and not entering_from_saved):
        return
    model.set_stage(stages[new])
    swaps = sum(stage.swap_decoders for stage in stages[run.stage + 1 : new + 1])
    if swaps % 2:
        model.swap_decoders()
    run.stage = new


def schedule_summary(config: TrainConfig) -> str:
    """One line saying what the schedule will change and when (nothing is silent).

    Example: "Schedule v2.2 over 40000 iterations, from the LossConfig, then at step
    7850: PL on, L1 mask, lr x1.0; ... (lr factors multiply lr_factor 1.0)."
    """
    stages = SCHEDULES[config.schedule]
    if not stages:
        return (
            f"Schedule constant: the LossConfig throughout ({config.iterations} its)."
        )
    parts = [
        f"{s.trigger(config.iterations)}: PL {'on' if s.use_PL else 'off'}, "
        + (f"hinge {s.m_mask}" if s.use_mask_hinge_loss else "L1 mask")
        + f", lr x{s.lr_factor}"
        + (", swap decoders" if s.swap_decoders else "")
        for s in stages
    ]
    return (
        f"Schedule {config.schedule} over {config.iterations} iterations, from the "
        f"LossConfig, then at step " + "; ".join(parts) + f" (lr factors multiply "
        f"lr_factor {config.loss.lr_factor})."
    )


def _flat(data: dict, prefix: str = "") -> dict:
    """{"loss": {"m_mask": 0}} -> {"loss.m_mask": 0}."""
    out = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, name + "."))
        else:
            out[name] = value
    return out


def resume_conflicts(config: TrainConfig, saved: dict) -> list[tuple[str, Any, Any]]:
    """The settings of `config` that may not differ from the run's saved config.

    Args:
        config: the TrainConfig asked for now.
        saved: the run's saved config (a TrainConfig dict, possibly partial).

    Returns:
        [(field, saved value, value now)] with fields as "batch_size", "loss.m_mask";
        empty when the run may resume. Fields in RESUME_CHANGEABLE may differ, those
        in RESUME_SWITCHABLE too unless turned on or off, and `iterations` under the
        "constant" schedule; fields missing from `saved` are not compared.
    """
    now, before = _flat(to_dict(config)), _flat(saved)
    if "mixed_precision" in before:  # a bool in configs saved before bfloat16
        before["mixed_precision"] = mixed_precision_name(before["mixed_precision"])
    changeable = set(RESUME_CHANGEABLE)
    if not SCHEDULES[config.schedule] and before.get("schedule") == config.schedule:
        changeable.add("iterations")
    conflicts = []
    for name, value in now.items():
        if name not in before or before[name] == value or name in changeable:
            continue
        if name in RESUME_SWITCHABLE and bool(before[name]) == bool(value):
            continue
        conflicts.append((name, before[name], value))
    return conflicts


def check_resumable(config: TrainConfig, saved: dict, checkpoint=None) -> None:
    """Refuses to resume a run under settings that would silently change its course.

    Args:
        config: the TrainConfig asked for now.
        saved: the checkpoint's config.json (a TrainConfig dict).
        checkpoint: the checkpoint folder, for the messages.

    Raises:
        FaceswapError: another architecture (the differing ArchConfig fields named),
            or other settings (`resume_conflicts`: e.g. batch_size or schedule, which
            fix the data position and the stages, or iterations under a schedule with
            stages), naming each with both values. Under the "constant" schedule more
            iterations just train further.
    """
    if isinstance(saved.get("arch"), dict):
        arch = from_dict(ArchConfig, saved["arch"], "arch")
        if arch != config.arch:
            where = checkpoint or Path(config.run_dir) / "checkpoints"
            raise FaceswapError(checkpoints.arch_mismatch(where, arch, config.arch))
    changed = [
        f"{name} {before!r} -> {now!r}"
        for name, before, now in resume_conflicts(config, saved)
    ]
    if changed:
        raise FaceswapError(
            f"Cannot resume {config.run_dir} with other settings: "
            f"{', '.join(changed)}. These fix the model, the data position or the "
            f"schedule's stage boundaries; resume with the run's own values (`train "
            f"--run-dir {config.run_dir} --resume` alone uses its config.json), or "
            f"start a new run_dir. Nothing was changed."
        )


@contextlib.contextmanager
def run_lock(run_dir: str | Path):
    """Holds the lock of a run folder: one training process per run_dir.

    The lock is an flock on run_dir/.lock (the `filelock` library): the operating
    system releases it when the process ends, even when killed. The holder's PID is
    written to run_dir/train.pid (removed on release) for the message of the next
    process that tries. Creates run_dir if needed.

    Args:
        run_dir: the run folder.

    Yields:
        None, while the lock is held.

    Raises:
        FaceswapError: another process holds the lock (its PID named).
    """
    from filelock import FileLock, Timeout

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(run_dir / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        try:
            holder = (run_dir / PID_FILE).read_text().strip() or "unknown"
        except OSError:
            holder = "unknown"
        raise FaceswapError(
            f"{run_dir} is in use by another training process (PID {holder}); wait "
            f"for it to end or stop it, or train in another --run-dir."
        ) from None
    try:
        files.write_text(run_dir / PID_FILE, f"{os.getpid()}\n")
        yield
    finally:
        files.remove(run_dir / PID_FILE)
        lock.release()


def check_stop_at(stop_at: int | None) -> None:
    """Raises FaceswapError unless stop_at is None or an int >= 1."""
    if stop_at is None:
        return
    if isinstance(stop_at, bool) or not isinstance(stop_at, int) or stop_at < 1:
        raise FaceswapError(
            f"--stop-at (stop_at) must be a step >= 1 to stop at; got {stop_at!r}. "
            f"Leave it out to train all iterations."
        )


def _resume_point(config: TrainConfig, ckpt_dir: Path, skip=(), earlier=()):
    """-> (checkpoint folder, state, [BrokenCheckpoint passed over]) to resume from,
    after every check that can refuse the resume (nothing is written here)."""
    folder, state, saved, broken = checkpoints.first_loadable(
        ckpt_dir, skip, earlier, warn=False
    )
    check_resumable(config, saved, folder)
    return folder, state, broken


def _check_stop_after(stop_at, step: int, folder: Path, config: TrainConfig) -> None:
    if stop_at is not None and stop_at <= step:
        raise FaceswapError(
            f"--stop-at {stop_at} is not after step {step} of the checkpoint "
            f"{folder}: nothing to train. Give a later step, or leave --stop-at out "
            f"to train to iteration {config.iterations}."
        )


def _load_resume(model, config: TrainConfig, ckpt_dir: Path, point) -> tuple:
    """Loads the resume point into `model`; a checkpoint whose weights or optimizer
    state turn out broken falls back to the next one (each load overwrites all the
    weights and optimizer state). -> (folder, state, [BrokenCheckpoint])."""
    folder, state, broken = point
    while True:
        try:
            state = checkpoints.load_weights(model, folder)
            return folder, state, broken
        except checkpoints.BrokenCheckpoint as error:
            broken.append(error)
            tried = tuple({b.path.parent for b in broken})
            folder, state, more = _resume_point(config, ckpt_dir, tried, tuple(broken))
            broken += more


def _set_aside(broken: list, resumed_step: int, ckpt_dir: Path) -> None:
    """Moves broken checkpoints newer than the one resumed to checkpoints/broken/
    (kept for inspection, out of the way of the steps about to be saved)."""
    for error in broken:
        folder = error.path.parent
        step = checkpoints.step_of(folder)
        if step is None or step <= resumed_step or not folder.is_dir():
            continue
        target = ckpt_dir / checkpoints.BROKEN_DIR / folder.name
        n = 1
        while target.exists():
            n += 1
            target = target.with_name(f"{folder.name}-{n}")
        target.parent.mkdir(exist_ok=True)
        folder.rename(target)
        print(
            f"Moved the broken checkpoint {folder} to {target}; delete it when you "
            f"no longer need it.",
            file=sys.stderr,
        )


def train(
    config: TrainConfig,
    resume: bool = False,
    progress: bool = True,
    dry_run: bool = False,
    stop_at: int | None = None,
    max_seconds: float | None = None,
    verbose: bool = False,
    strategy: str | tf.distribute.Strategy | None = None,
) -> Path:
    """Trains a FaceSwapGAN and returns the run folder.

    The run folder is locked while training (`run_lock`). On resume, the checkpoint
    taken is the pointer's, else the newest other one that loads (backups included);
    a broken one is named in a warning, set aside in checkpoints/broken/ when newer
    than the one taken, never deleted. Every check that can refuse a run happens
    before anything in run_dir is written; then leftovers of a killed run are cleaned
    (hidden checkpoint temporaries, damaged or later metrics lines).

    Args:
        config: TrainConfig. Written resolved to run_dir/config.json.
        resume: continue from run_dir's newest loadable checkpoint (same step, stage,
            optimizer state, data position, RNG); starts fresh if there is none. The
            config must match the checkpoint's except for the fields that do not
            change the run's course (`resume_conflicts`).
        progress: show a tqdm bar.
        dry_run: print the resolved config and return before building anything.
        stop_at: stop (with a checkpoint) at this step (>= 1, after the resumed
            step), before `config.iterations`: a budget for one session; a later
            `resume=True` call goes on from there.
        max_seconds: stop (with a checkpoint) after the first step that ends this
            many seconds after the loop started in this call (a wall-time budget,
            e.g. for a Colab session); None = no limit.
        verbose: also print the resolved config (it is always written to
            run_dir/config.json; `dry_run` prints it too). The schedule's one-line
            summary is always printed.
        strategy: how to spread each step (`faceswap_gan.distribute.make_strategy`):
            None (several GPUs: MirroredStrategy, else one device), "mirrored",
            "multiworker" (TF_CONFIG; every worker calls train with the same config
            and run_dir; only the chief writes and locks run_dir, and all must read
            its checkpoints to resume), "tpu", or a tf.distribute.Strategy. A runtime
            choice, not saved in the config: a run resumes under any strategy.
            `config.batch_size` is the global batch, split evenly over the replicas.

    Returns:
        Path of the run folder.

    Raises:
        FileExistsError: run_dir has checkpoints and resume is False (nothing is
            overwritten).
        FaceswapError: stop_at < 1 or not after the resumed step; bad or missing face
            folders, too few faces for `eval_every`; run_dir in use by another
            process (its PID named); a resume under other settings or another
            architecture (the fields named); no loadable checkpoint (each broken
            file named); an unknown strategy, "multiworker" without a valid
            TF_CONFIG, "tpu" with no TPU reachable or with jit_compile False; a
            batch_size that does not split evenly over the replicas; workers that
            would start at different steps; another worker that stopped.
    """
    check_stop_at(stop_at)
    distribute.check_name(strategy)
    _check_tpu_xla(config, strategy)
    run_dir = Path(config.run_dir)
    if verbose or dry_run:
        print(to_json(config))
    print(schedule_summary(config))
    if dry_run:
        return run_dir
    # First TensorFlow work of the run: a multi-worker strategy must come before any.
    strategy = distribute.make_strategy(strategy)
    distribute.check_batch(strategy, config.batch_size)
    chief = distribute.is_chief(strategy)
    check_faces(config)
    ckpt_dir = run_dir / "checkpoints"
    if checkpoints.candidates(ckpt_dir) and not resume:
        raise FileExistsError(
            f"{run_dir} already holds checkpoints; pass resume=True "
            f"(--resume) to continue, or choose another run_dir."
        )
    folder = distribute.worker_folder(strategy, run_dir)
    try:
        with run_lock(run_dir) if chief else contextlib.nullcontext():
            _train(
                config,
                strategy,
                folder,
                resume,
                progress and chief,
                stop_at,
                max_seconds,
            )
    except (tf.errors.UnavailableError, tf.errors.AbortedError) as error:
        if distribute.num_workers(strategy) == 1:
            raise
        # E.g. the chief refused to start (run_dir locked, a bad resume): the
        # collectives of the others abort instead of waiting for it forever.
        first = " ".join(str(error).split())[:200]
        raise FaceswapError(
            f"Another worker of the cluster stopped or cannot be reached ({first}); "
            f"see its own error, then start every worker again."
        ) from error
    finally:
        if not chief:  # this worker's temporary copies
            shutil.rmtree(folder, ignore_errors=True)
    return run_dir


def _check_tpu_xla(config: TrainConfig, strategy) -> None:
    if (strategy == "tpu" or isinstance(strategy, tf.distribute.TPUStrategy)) and (
        getattr(config, "jit_compile", None) is False
    ):
        raise FaceswapError(
            "--strategy tpu compiles every step with XLA, but jit_compile is off "
            "(--no-xla); turn it on (--xla) or leave it unset."
        )


def _train(config, strategy, folder, resume, progress, stop_at, max_seconds) -> None:
    """train() once the strategy is made and the run folder locked (by the chief).
    `folder`: where this process writes (run_dir, or a non-chief worker's temporary
    folder; such a worker reads run_dir's checkpoints to resume and writes nothing
    there)."""
    run_dir = Path(config.run_dir)
    ckpt_dir = run_dir / "checkpoints"
    chief = folder == run_dir
    point = None
    if resume and checkpoints.candidates(ckpt_dir):
        point = _resume_point(config, ckpt_dir)
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(config.dtype_policy)
    try:
        with strategy.scope():
            model = build_model(config)
        run = _Run(config, folder=folder)
        if point is not None:
            loaded, state, broken = _load_resume(model, config, ckpt_dir, point)
            _check_stop_after(stop_at, state["step"], loaded, config)
            if broken and chief:
                checkpoints.warn_fallback(broken, loaded)
            print(f"Resuming from {loaded} (step {state['step']}).")
            if chief:
                _set_aside(broken, state["step"], ckpt_dir)
            run = _Run(
                config,
                state["step"],
                state.get("stage", -1),
                state.get("seconds", 0.0),
                folder=folder,
            )
        if distribute.num_workers(strategy) > 1:
            _check_same_start(strategy, run.step, run_dir)
        if chief:
            checkpoints.remove_partial_writes(ckpt_dir)
            files.remove_partials(run_dir)
        files.write_text(run.dir / "config.json", to_json(config) + "\n")
        _repair_metrics(run.dir / "metrics.jsonl", run.step)
        if point is not None:
            _enter_stage(model, run, entering_from_saved=True)
        if run.step >= config.iterations:
            print(f"The run is complete: step {run.step} of {config.iterations}.")
        _loop(
            model,
            run,
            strategy,
            progress,
            min(stop_at or config.iterations, config.iterations),
            max_seconds,
        )
        if distribute.num_workers(strategy) > 1:
            # A barrier: no worker returns before the chief has written its last
            # checkpoint (a resume started right after must find it).
            distribute.make_agree(strategy)([run.step])
    finally:
        keras.config.set_dtype_policy(policy)


def _check_same_start(strategy, step: int, run_dir: Path) -> None:
    """Refuses (on every worker) a multi-worker run whose workers would start at
    different steps: a worker that cannot read the run's checkpoints."""
    low, high = distribute.make_agree(strategy)([step])
    if low[0] != high[0]:
        raise FaceswapError(
            f"The workers would start at different steps ({int(low[0])} to "
            f"{int(high[0])}; this one at {step}): every worker must read the run's "
            f"checkpoints in {run_dir} (a shared folder, or a copy of the chief's "
            f"checkpoints/ at the same path). Nothing was trained."
        )


def resolve_jit_compile(jit_compile: bool | None) -> bool:
    """TrainConfig.jit_compile -> whether the train step is compiled with XLA.

    True and False are kept. None ("auto"): XLA on when a GPU or TPU is visible,
    off on a CPU-only machine, where the XLA step measured 0.67-0.96x the plain
    step's iterations/s (lite and standard, 64 px, 3 runs; figures, command in
    benchmarks/model_speed.py's docstring). TPUs need XLA; on GPUs this follows
    Keras' own `jit_compile="auto"` (not measured here: no GPU in that session).
    """
    if jit_compile is not None:
        return bool(jit_compile)
    return bool(
        tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU")
    )


def make_step_fn(model: FaceSwapGAN, strategy, jit_compile: bool = False):
    """One compiled training iteration over two (distributed) batches, the D batch
    and the G batch; logs averaged over replicas. Each replica gets
    global_batch / replicas faces per side.

    The returned `step_fn(d_batch, g_batch, lambdas=None)` takes the iteration's
    mixup weights `lambdas` (`mixup_lambdas(seed, step)`, `(4,)` float32): one host
    tensor that every replica (and every worker, which draws the same) uses, so a
    distributed step equals a one-replica step on the global batch. Without them
    `model.train_step` draws its own (not under XLA).

    Args:
        model: a compiled FaceSwapGAN built in `strategy.scope()`.
        strategy: a tf.distribute.Strategy (the default one for one device).
        jit_compile: compile each replica's step (`model.train_step`) with XLA
            (`tf.function(jit_compile=True)`, inside `strategy.run`, as Keras does);
            then `lambdas` must be given.
    """
    replica_step = model.train_step
    if jit_compile:
        replica_step = tf.function(model.train_step, jit_compile=True)

    @tf.function
    def step_fn(d_batch, g_batch, lambdas=None):
        data = (d_batch, g_batch) if lambdas is None else (d_batch, g_batch, lambdas)
        logs = strategy.run(replica_step, args=(data,))
        return {k: strategy.reduce("MEAN", v, axis=None) for k, v in logs.items()}

    return step_fn


def _repair_metrics(path: Path, step: int) -> None:
    """Makes metrics.jsonl fit a run starting at `step`: drops a partial or damaged
    line (a killed write; with a warning), lines logged after `step` (windows of a
    killed run that its checkpoint does not hold) and duplicate steps (the last one
    kept). At step 0 nothing is kept (a run killed before its first checkpoint)."""
    if not path.is_file():
        return
    rows, bad, old = {}, [], path.read_text()
    for number, line in enumerate(old.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            row_step = int(row["step"])
        except (ValueError, TypeError, KeyError):
            bad.append(number)
            continue
        if 0 < step and row_step <= step:
            rows[row_step] = line
    if bad:
        print(
            f"Warning: dropped {len(bad)} damaged line(s) of {path} (line "
            f"{', '.join(map(str, bad))}; a killed write).",
            file=sys.stderr,
        )
    text = "".join(rows[key] + "\n" for key in sorted(rows))
    if text != old:
        files.write_text(path, text)


def _loop(
    model, run: _Run, strategy, progress: bool, stop_at: int, max_seconds=None
) -> None:
    config = run.config
    streams, previews, held_out = _datasets(
        config, run.step * BATCHES_PER_STEP * config.batch_size
    )
    evaluate = None
    if held_out is not None:
        from faceswap_gan.evaluation import evaluate_periodic
        from faceswap_gan.faces.identity import build_identity_embedder

        embedder = build_identity_embedder("mobilefacenet")

        def evaluate():
            return evaluate_periodic(model, *held_out, embedder)

    iterator = distribute.distributed_batches(strategy, streams)
    step_fn = make_step_fn(model, strategy, resolve_jit_compile(config.jit_compile))

    writer = None
    if config.tensorboard:
        writer = tf.summary.create_file_writer(str(run.dir / "tensorboard"))
    window, started = defaultdict(list), time.time() - run.seconds
    bar = tqdm(
        total=config.iterations,
        initial=run.step,
        disable=not progress,
        desc="train",
        unit="it",
    )
    if evaluate is not None and run.step == 0:  # the untrained model, for reference
        _log_row(model, run, {k: [v] for k, v in evaluate().items()}, writer)
    deadline = None if max_seconds is None else time.time() + max_seconds
    # Workers stop together: any worker's deadline stops all (a collective per step).
    vote = (
        distribute.make_agree(strategy)
        if distribute.num_workers(strategy) > 1
        else None
    )
    while run.step < stop_at:
        _enter_stage(model, run, entering_from_saved=False)
        lambdas = tf.constant(mixup_lambdas(config.seed, run.step))
        logs = step_fn(next(iterator), next(iterator), lambdas)
        run.step += 1
        if deadline is not None:
            late = time.time() >= deadline
            if late if vote is None else vote([late])[1][0]:
                stop_at = run.step
        for key, value in logs.items():
            window[key].append(float(value))
        bar.update(1)
        bar.set_postfix(
            {
                k.replace("/reconstruction", "_rec"): f"{window[k][-1]:.3f}"
                for k in ("g_a/reconstruction", "g_b/reconstruction", "d_a/total")
            }
        )
        if evaluate is not None and (
            run.step % config.eval_every == 0 or run.step == stop_at
        ):
            window.update({k: [v] for k, v in evaluate().items()})
        if run.step % config.display_iters == 0 or run.step == stop_at:
            run.seconds = time.time() - started
            _report(model, run, window, previews, writer)
            window.clear()
        if config.backup_iters and run.step % config.backup_iters == 0:
            run.save(model, backup=True)
    bar.close()


def _log_row(model, run: _Run, window, writer) -> None:
    """Appends a metrics line (window means) and writes it to TensorBoard."""
    row = {
        "step": run.step,
        "stage": run.stage,
        "seconds": round(run.seconds, 3),
        # np.asarray: a distributed (mirrored) variable has no float() of its own.
        "lr_g": float(np.asarray(model.g_optimizer_a.learning_rate)),
        "lr_d": float(np.asarray(model.d_optimizer.learning_rate)),
    }
    row.update({k: float(np.mean(v)) for k, v in window.items()})
    path = run.dir / "metrics.jsonl"
    old = path.read_text() if path.is_file() else ""  # small: a line per window
    files.write_text(path, old + json.dumps(row) + "\n")
    if writer is not None:
        with writer.as_default():
            for key, value in row.items():
                if "/" in key:
                    tf.summary.scalar(key, value, step=run.step)


def _report(model, run: _Run, window, previews, writer) -> None:
    """Appends a metrics line; writes previews, the loss plot and the checkpoint."""
    _log_row(model, run, window, writer)
    save_preview(model, *previews, run.dir / "previews", run.step)
    plot_losses(run.dir / "metrics.jsonl", run.dir / "loss.png")
    run.save(model)
