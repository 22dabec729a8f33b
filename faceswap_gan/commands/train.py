"""`train`: train a FaceSwapGAN on two folders of face crops.

Values come from --preset (default "standard"), then --config FILE, then the flags
given. With --resume and a run folder that holds a config.json (or checkpoints), the
run's saved config is the start instead, so `train --run-dir R --resume` alone
continues the run as it was. Flags, --preset and --config given on top must then
match the saved values, except those that do not change the run's course:
--faces-a/--faces-b (a moved folder), --display-iters, --tensorboard, and, when not
turned on or off, --masks-a/--masks-b, --eval-every, --backup-iters and
--perceptual-weights; --iterations under the "constant" schedule (more iterations
train further). Anything else is refused, naming each flag with the saved and the
given value, before anything is written. --xla/--no-xla may change on resume too (the
same step, compiled or not).

--strategy (mirrored, multiworker, tpu) says how each step is spread over devices or
machines (`faceswap_gan.distribute`); it is chosen per session, not saved with the run,
so a run resumes under any strategy. With multiworker, start the same command on every
worker, each with its TF_CONFIG; only the chief writes the run folder.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import sys
from pathlib import Path

from faceswap_gan.config import (
    GAN_TRAININGS,
    MIXED_PRECISIONS,
    NORMS,
    PERCEPTUAL_BACKENDS,
    PRESETS,
    SCHEDULES,
    TrainConfig,
    from_dict,
    read_json_object,
    to_dict,
)
from faceswap_gan.distribute import STRATEGIES
from faceswap_gan.errors import FaceswapError

EXAMPLES = """examples:
  python -m faceswap_gan train --faces-a faceA --faces-b faceB --preset lite \\
      --iterations 20000 --run-dir runs/ab
  python -m faceswap_gan train --run-dir runs/ab --resume
  python -m faceswap_gan train --config my_run.json --iterations 500 --dry-run
  TF_CONFIG='{"cluster": {"worker": ["host1:2222", "host2:2222"]},
    "task": {"type": "worker", "index": 0}}' \
    python -m faceswap_gan train --run-dir /shared/ab --resume --strategy multiworker
"""

# flag -> (section of TrainConfig or None for top level, field, type)
FLAGS = {
    "faces_a": (None, "faces_a", str),
    "faces_b": (None, "faces_b", str),
    "masks_a": (None, "masks_a", str),
    "masks_b": (None, "masks_b", str),
    "run_dir": (None, "run_dir", str),
    "iterations": (None, "iterations", int),
    "batch_size": (None, "batch_size", int),
    "schedule": (None, "schedule", str),
    "display_iters": (None, "display_iters", int),
    "backup_iters": (None, "backup_iters", int),
    "seed": (None, "seed", int),
    "mixed_precision": (None, "mixed_precision", str),
    "tensorboard": (None, "tensorboard", bool),
    "eval_every": (None, "eval_every", int),
    "jit_compile": (None, "jit_compile", bool),
    "image_size": ("arch", "image_shape", int),
    "norm": ("arch", "norm", str),
    "model_capacity": ("arch", "model_capacity", str),
    "use_self_attn": ("arch", "use_self_attn", bool),
    "gan_training": ("loss", "gan_training", str),
    "use_pl": ("loss", "use_PL", bool),
    "pl_before_activ": ("loss", "PL_before_activ", bool),
    "perceptual_backend": ("loss", "perceptual_backend", str),
    "perceptual_weights": ("loss", "perceptual_weights", str),
    "use_mask_hinge_loss": ("loss", "use_mask_hinge_loss", bool),
    "m_mask": ("loss", "m_mask", float),
    "lr_factor": ("loss", "lr_factor", float),
    "use_cyclic_loss": ("loss", "use_cyclic_loss", bool),
}


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train",
        help="train a swap model on two folders of faces",
        description="Train faceswap-GAN v2.2 on faces of person A and B. Writes a run "
        "folder (config.json, metrics.jsonl, loss.png, previews/, checkpoints/). "
        "Values "
        "come from --preset, then --config FILE (JSON of TrainConfig, any field), then "
        "the flags given; with --resume, from the run's saved config.json instead.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = p.add_argument
    add("--faces-a", help="folder of face crops of person A")
    add("--faces-b", help="folder of face crops of person B")
    add("--masks-a", help="eye masks of A (same file names as the faces)")
    add("--masks-b", help="eye masks of B")
    add(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="model preset: tiny (tests), lite (Colab demo), standard (default; "
        "with --resume the run's own)",
    )
    add("--config", type=Path, help="JSON file of TrainConfig fields")
    add("--run-dir", help="output folder (default runs/faceswap)")
    add("--iterations", type=int, help="total iterations (default 40000)")
    add("--batch-size", type=int, help="faces per side per iteration, even (default 8)")
    add("--schedule", choices=sorted(SCHEDULES), help="loss schedule (default v2.2)")
    add("--display-iters", type=int, help="log/preview/checkpoint period (default 300)")
    add("--backup-iters", type=int, help="kept backup period, 0 = none (default 5000)")
    add("--seed", type=int, help="random seed (default 0)")
    add("--eval-every", type=int, help="held-out evaluation period, 0 = off")
    add("--image-size", type=int, choices=(64, 128, 256), help="model resolution")
    add("--norm", choices=NORMS, help="normalisation")
    add("--model-capacity", choices=("standard", "lite"), help="model width")
    add("--gan-training", choices=GAN_TRAININGS, help="adversarial loss")
    add("--perceptual-backend", choices=PERCEPTUAL_BACKENDS, help="perceptual features")
    add("--perceptual-weights", help="path to rcmalli_vggface_tf_notop_resnet50.h5")
    add("--m-mask", type=float, help="mask hinge margin in [0, 1]")
    add("--lr-factor", type=float, help="learning-rate multiplier")
    add(
        "--mixed-precision",
        nargs="?",
        const="float16",
        choices=MIXED_PRECISIONS,
        help="compute in float16 (the default when given alone: Keras mixed_float16 "
        "with loss scaling, GPUs with tensor cores) or bfloat16 (mixed_bfloat16: "
        "TPUs, CPUs with AVX512-BF16 or AMX, Ampere or newer GPUs); weights stay "
        "float32; off = float32 (default)",
    )
    add(
        "--no-mixed-precision",
        dest="mixed_precision",
        action="store_const",
        const="off",
        help="float32 (same as --mixed-precision off)",
    )
    for flag, text in (
        ("tensorboard", "TensorBoard logs"),
        ("use-self-attn", "self-attention blocks"),
        ("use-pl", "perceptual loss from the start"),
        ("pl-before-activ", "pre-ReLU perceptual features (vggface)"),
        ("use-mask-hinge-loss", "hinge alpha loss from the start"),
        ("use-cyclic-loss", "cycle-consistency loss"),
    ):
        add(f"--{flag}", action=argparse.BooleanOptionalAction, default=None, help=text)
    add(
        "--xla",
        dest="jit_compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compile the training step with XLA (TrainConfig.jit_compile; default: "
        "on with a GPU or TPU, off on CPUs); may change on resume",
    )
    add(
        "--strategy",
        choices=STRATEGIES,
        default=None,
        help="spread each step over devices: mirrored (all GPUs of this machine), "
        "multiworker (several machines/processes, from the TF_CONFIG environment "
        "variable; only the chief writes the run folder), tpu (a TPU runtime; needs "
        "the XLA step). Default: mirrored when several GPUs are visible, else one "
        "device. Not saved with the run: a run resumes under any strategy",
    )
    add(
        "--resume",
        action="store_true",
        help="continue the run in --run-dir from its newest loadable checkpoint, with "
        "its saved config.json (no other flags needed). Flags given too must match "
        "the saved values, except --faces-a/-b, --display-iters, --tensorboard, "
        "--masks-a/-b, --eval-every, --backup-iters, --perceptual-weights (not "
        "turned on/off), --xla and --iterations under the constant schedule",
    )
    add(
        "--stop-at",
        type=int,
        help="stop at this step (>= 1, checkpointed); resume later",
    )
    add("--dry-run", action="store_true", help="print the resolved config and stop")
    add("--no-progress", action="store_true", help="no progress bar")
    return p


def _config_file(args) -> dict:
    """The --config file's fields (checked: a JSON object of TrainConfig fields)."""
    if not args.config:
        return {}
    data = read_json_object(args.config, "TrainConfig")
    try:
        from_dict(TrainConfig, _merge(to_dict(TrainConfig()), data))
    except FaceswapError as error:
        raise FaceswapError(f"{args.config}: {error}") from error
    return data


def _merge(data: dict, update: dict) -> dict:
    """`data` with `update` applied (nested sections merged field by field)."""
    data = {**data}
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = _merge(data[key], value)
        else:
            data[key] = value
    return data


def _flag_values(args) -> dict:
    """{flag: (section, field, value)} of the flags given, checked (finite floats)."""
    given = {}
    for flag, (section, field, kind) in FLAGS.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        if kind is float and not math.isfinite(value):
            raise FaceswapError(
                f"--{flag.replace('_', '-')} must be a finite number; got {value}."
            )
        given[flag] = (section, field, value)
    return given


def _apply(data: dict, given: dict) -> dict:
    """A copy of `data` with the flags' values set."""
    data = copy.deepcopy(data)
    for section, field, value in given.values():
        (data[section] if section else data)[field] = value
    return data


def _saved_config(run_dir: Path) -> tuple[dict, Path] | None:
    """The run's saved config for --resume: run_dir/config.json, else the config of
    its newest loadable checkpoint; None for a run folder without either."""
    from faceswap_gan import checkpoints

    path = run_dir / "config.json"
    if path.is_file():
        try:
            data = read_json_object(path, "TrainConfig")
            from_dict(TrainConfig, data)
            return data, path
        except FaceswapError as error:
            print(f"Warning: {error} Using the checkpoint's config.", file=sys.stderr)
    if not checkpoints.candidates(run_dir / "checkpoints"):
        return None
    folder, _, data, _ = checkpoints.first_loadable(run_dir / "checkpoints")
    return {**data, "run_dir": str(run_dir)}, folder / "config.json"


def _show(value) -> str:
    return repr(tuple(value) if isinstance(value, list) else value)


def _resume_config(
    args, run_dir: Path, saved: dict, saved_path: Path, file_data, given
):
    """The saved config with the explicit values applied; refuses (before anything
    is written) explicit values that would change the run's course."""
    from faceswap_gan.training import resume_conflicts

    base = to_dict(from_dict(TrainConfig, saved))
    data = _apply(_merge(base, file_data), given)
    data["run_dir"] = base["run_dir"] = str(run_dir)  # the folder read, if moved
    config = from_dict(TrainConfig, data)
    # Where each field's value came from, to name the flag in the message.
    source = {}
    for key in _flat_keys(file_data):
        source[key] = f"--config {args.config}"
    for flag, (section, field, _) in given.items():
        source[f"{section}.{field}" if section else field] = (
            f"--{flag.replace('_', '-')}"
        )
    refused = [
        f"{source.get(name, name)} ({name}): saved {_show(before)}, given {_show(now)}"
        for name, before, now in resume_conflicts(config, base)
    ]
    if args.preset is not None and PRESETS[args.preset] != config.arch:
        preset = PRESETS[args.preset]
        refused += [
            f"--preset {args.preset} (arch.{f.name}): saved "
            f"{_show(getattr(config.arch, f.name))}, given "
            f"{_show(getattr(preset, f.name))}"
            for f in dataclasses.fields(preset)
            if getattr(preset, f.name) != getattr(config.arch, f.name)
        ]
    if refused:
        raise FaceswapError(
            f"Cannot resume {config.run_dir} with other settings than its own "
            f"({saved_path}): {'; '.join(refused)}. Resume with `train --run-dir "
            f"{config.run_dir} --resume` alone (it uses the saved values), or start "
            f"a new --run-dir. Nothing was changed."
        )
    return config


def _flat_keys(data: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in data.items():
        if isinstance(value, dict):
            keys += _flat_keys(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def resolve_config(args) -> TrainConfig:
    """The TrainConfig of the command line.

    Fresh run: preset (default "standard") < --config file < explicit flags; the face
    folders must be given (flags or file). With --resume and a run folder holding a
    config.json or checkpoints: the run's saved config, with the explicit values on
    top, which must match it except for the fields that do not change the run's
    course (`training.RESUME_CHANGEABLE`, `RESUME_SWITCHABLE`; iterations under the
    "constant" schedule).

    Args:
        args: the parsed `train` arguments.

    Returns:
        TrainConfig.

    Raises:
        FaceswapError: a bad --config file (a folder, invalid JSON, not an object,
            unknown or bad fields), a non-finite float flag, --faces-a/--faces-b
            missing for a fresh run, or (with --resume) values that differ from the
            run's saved ones, each flag named with both values.
    """
    file_data = _config_file(args)
    given = _flag_values(args)
    run_dir = Path(args.run_dir or file_data.get("run_dir") or TrainConfig.run_dir)
    if args.resume:
        saved = _saved_config(run_dir)
        if saved is not None:
            return _resume_config(args, run_dir, *saved, file_data, given)
    data = to_dict(TrainConfig.from_preset(args.preset or "standard"))
    data = _apply(_merge(data, file_data), given)
    for side in ("a", "b"):
        if f"faces_{side}" not in given and f"faces_{side}" not in file_data:
            raise FaceswapError(
                f"--faces-{side} is required: a folder of person {side.upper()}'s "
                f"face crops (or faces_{side} in --config)"
                + (f"; {run_dir} holds no run to resume" if args.resume else "")
                + "."
            )
    return from_dict(TrainConfig, data)


def run(args) -> int:
    """Runs `train`; returns the exit code (user errors propagate to the CLI)."""
    from faceswap_gan.training import check_stop_at, train

    check_stop_at(args.stop_at)
    config = resolve_config(args)
    run_dir = train(
        config,
        resume=args.resume,
        progress=not args.no_progress,
        dry_run=args.dry_run,
        stop_at=args.stop_at,
        verbose=args.verbose,
        strategy=args.strategy,
    )
    if not args.dry_run:
        print(
            f"Run folder: {run_dir} (previews/, loss.png, metrics.jsonl, checkpoints/)"
        )
    return 0
