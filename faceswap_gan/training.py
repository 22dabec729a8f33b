"""train(TrainConfig) -> run folder: the v2.2 training loop, resumable and observable.

Run folder layout:
    config.json          the resolved TrainConfig
    metrics.jsonl        a line per display window: step, stage, loss terms, lr, seconds
    loss.png             loss curves by term (updated with the previews)
    previews/            step_XXXXXXX.png grids and latest.png
    checkpoints/         latest pointer, newest checkpoint, backups every backup_iters
    tensorboard/         optional TensorBoard scalars
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from faceswap_gan import checkpoints
from faceswap_gan.config import SCHEDULES, TrainConfig, stage_at, to_dict, to_json
from faceswap_gan.dataset import FaceSet, make_dataset
from faceswap_gan.errors import FaceswapError
from faceswap_gan.images import resize_faces, to_model_range
from faceswap_gan.models.gan import FaceSwapGAN
from faceswap_gan.previews import plot_losses, save_preview

PREVIEW_FACES = 4  # Faces per side in the preview grids.
EVAL_FACES = 8  # At most this many held-out faces per side for periodic evaluation.
BATCHES_PER_STEP = 2  # v2.2 draws fresh batches for the D and the G steps.


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


def _datasets(config: TrainConfig, start_index: int):
    """-> (zipped A/B stream, preview faces per side, held-out faces per side or None).

    With `eval_every`, the last `held_out_count` faces of each folder (sorted by name)
    are not trained on; they are the fixed evaluation set.
    """
    sets = [
        FaceSet(config.faces_a, config.masks_a),
        FaceSet(config.faces_b, config.masks_b),
    ]
    held_out = None
    if config.eval_every:
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
    streams = [
        make_dataset(
            faces,
            config.arch.image_size,
            config.batch_size,
            config.seed + side,
            config.augment,
            pool,
            start_index,
        )
        for side, faces in enumerate(sets)
    ]
    previews = [
        _at_model_size(faces.images[:PREVIEW_FACES], config.arch.image_size)
        for faces in sets
    ]
    return tf.data.Dataset.zip(tuple(streams)), previews, held_out


def _strategy():
    """MirroredStrategy over all GPUs when several are visible, else the default."""
    gpus = tf.config.list_logical_devices("GPU")
    return (
        tf.distribute.MirroredStrategy()
        if len(gpus) > 1
        else tf.distribute.get_strategy()
    )


class _Run:
    """Mutable state of one training run (the parts a checkpoint stores)."""

    def __init__(self, config: TrainConfig, step=0, stage=-1, seconds=0.0):
        self.config, self.step, self.stage, self.seconds = config, step, stage, seconds
        self.dir = Path(config.run_dir)

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
        backups = {p.name for p in ckpt_dir.glob("step_*") if (p / "BACKUP").exists()}
        path = checkpoints.save_checkpoint(
            model, ckpt_dir, self.state(), to_dict(self.config), keep=backups
        )
        if backup:
            (path / "BACKUP").touch()
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


def check_resumable(config: TrainConfig, saved: dict) -> None:
    """Refuses to resume a run under settings that would silently change its course.

    Args:
        config: the TrainConfig asked for now.
        saved: the checkpoint's config.json (a TrainConfig dict).

    Raises:
        ValueError: batch_size or schedule differ (they fix the data position and the
            stages), or iterations differ under a schedule with stages (they place
            every stage boundary), naming each and both values. Under the "constant"
            schedule more iterations just train further.
    """
    names = ["batch_size", "schedule"]
    if SCHEDULES[config.schedule]:
        names.append("iterations")
    changed = [
        f"{name} {saved.get(name)!r} -> {getattr(config, name)!r}"
        for name in names
        if name in saved and saved[name] != getattr(config, name)
    ]
    if changed:
        raise FaceswapError(
            f"Cannot resume {config.run_dir} with other settings: "
            f"{', '.join(changed)}. These fix the schedule's stage boundaries and the "
            f"data position; resume with the run's own values (its config.json), or "
            f"start a new run_dir."
        )


def train(
    config: TrainConfig,
    resume: bool = False,
    progress: bool = True,
    dry_run: bool = False,
    stop_at: int | None = None,
    max_seconds: float | None = None,
) -> Path:
    """Trains a FaceSwapGAN and returns the run folder.

    Args:
        config: TrainConfig. Written resolved to run_dir/config.json.
        resume: continue from run_dir's newest checkpoint (same step, stage, optimizer
            state, data position, RNG); starts fresh if there is none.
        progress: show a tqdm bar.
        dry_run: print the resolved config and return before building anything.
        stop_at: stop (with a checkpoint) at this step, before `config.iterations`: a
            budget for one session; a later `resume=True` call goes on from there.
        max_seconds: stop (with a checkpoint) after the first step that ends this
            many seconds after the loop started in this call (a wall-time budget,
            e.g. for a Colab session); None = no limit.

    Raises:
        FileExistsError: run_dir has checkpoints and resume is False (nothing is
            overwritten).
        ValueError / FileNotFoundError: bad data folders (see FaceSet) or a checkpoint
            of another architecture.
    """
    run_dir = Path(config.run_dir)
    print(to_json(config))
    print(schedule_summary(config))
    if dry_run:
        return run_dir
    has_ckpt = (run_dir / "checkpoints" / checkpoints.POINTER).is_file()
    if has_ckpt and not resume:
        raise FileExistsError(
            f"{run_dir} already holds checkpoints; pass resume=True "
            f"(--resume) to continue, or choose another run_dir."
        )
    if has_ckpt:
        check_resumable(
            config, checkpoints.read_config(checkpoints.find_checkpoint(run_dir))
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    to_json(config, run_dir / "config.json")
    policy = keras.config.dtype_policy()
    if config.mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        strategy = _strategy()
        with strategy.scope():
            model = build_model(config)
        run = _Run(config)
        if resume and has_ckpt:
            state = checkpoints.load_weights(model, run_dir)
            run = _Run(config, state["step"], state["stage"], state["seconds"])
            _truncate_metrics(run_dir / "metrics.jsonl", run.step)
            _enter_stage(model, run, entering_from_saved=True)
        _loop(
            model,
            run,
            strategy,
            progress,
            min(stop_at or config.iterations, config.iterations),
            max_seconds,
        )
    finally:
        keras.config.set_dtype_policy(policy)
    return run_dir


def make_step_fn(model: FaceSwapGAN, strategy):
    """One compiled training iteration over two (distributed) batches, the D batch
    and the G batch; logs averaged over replicas. Each replica gets
    global_batch / replicas faces per side."""

    @tf.function
    def step_fn(d_batch, g_batch):
        logs = strategy.run(model.train_step, args=((d_batch, g_batch),))
        return {k: strategy.reduce("MEAN", v, axis=None) for k, v in logs.items()}

    return step_fn


def _truncate_metrics(path: Path, step: int) -> None:
    """Drops metrics lines logged after the checkpoint resumed from (killed windows)."""
    if path.is_file():
        lines = [
            line
            for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] <= step
        ]
        path.write_text("".join(line + "\n" for line in lines))


def _loop(
    model, run: _Run, strategy, progress: bool, stop_at: int, max_seconds=None
) -> None:
    config = run.config
    data, previews, held_out = _datasets(
        config, run.step * BATCHES_PER_STEP * config.batch_size
    )
    evaluate = None
    if held_out is not None:
        from faceswap_gan.evaluation import evaluate_periodic
        from faceswap_gan.faces.identity import build_identity_embedder

        embedder = build_identity_embedder("mobilefacenet")

        def evaluate():
            return evaluate_periodic(model, *held_out, embedder)

    iterator = iter(strategy.experimental_distribute_dataset(data))
    step_fn = make_step_fn(model, strategy)

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
    while run.step < stop_at:
        _enter_stage(model, run, entering_from_saved=False)
        logs = step_fn(next(iterator), next(iterator))
        run.step += 1
        if deadline is not None and time.time() >= deadline:
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
        "lr_g": float(model.g_optimizer_a.learning_rate),
        "lr_d": float(model.d_optimizer.learning_rate),
    }
    row.update({k: float(np.mean(v)) for k, v in window.items()})
    with open(run.dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
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
