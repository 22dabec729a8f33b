"""`train`: train a FaceSwapGAN on two folders of face crops."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from faceswap_gan.config import (
    GAN_TRAININGS,
    NORMS,
    PERCEPTUAL_BACKENDS,
    PRESETS,
    SCHEDULES,
    TrainConfig,
    to_dict,
)

EXAMPLES = """examples:
  python -m faceswap_gan train --faces-a faceA --faces-b faceB --preset lite \\
      --iterations 20000 --run-dir runs/ab
  python -m faceswap_gan train --run-dir runs/ab --faces-a A --faces-b B --resume
  python -m faceswap_gan train --config my_run.json --iterations 500 --dry-run
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
    "mixed_precision": (None, "mixed_precision", bool),
    "tensorboard": (None, "tensorboard", bool),
    "eval_every": (None, "eval_every", int),
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
        "the flags given.",
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
        default="standard",
        help="model preset: tiny (tests), lite (Colab demo), standard (default)",
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
    for flag, text in (
        ("mixed-precision", "mixed_float16 (GPU)"),
        ("tensorboard", "TensorBoard logs"),
        ("use-self-attn", "self-attention blocks"),
        ("use-pl", "perceptual loss from the start"),
        ("pl-before-activ", "pre-ReLU perceptual features (vggface)"),
        ("use-mask-hinge-loss", "hinge alpha loss from the start"),
        ("use-cyclic-loss", "cycle-consistency loss"),
    ):
        add(f"--{flag}", action=argparse.BooleanOptionalAction, default=None, help=text)
    add("--resume", action="store_true", help="continue from the newest checkpoint")
    add("--stop-at", type=int, help="stop at this step (checkpointed); resume later")
    add("--dry-run", action="store_true", help="print the resolved config and stop")
    add("--no-progress", action="store_true", help="no progress bar")
    return p


def resolve_config(args) -> TrainConfig:
    """Preset < --config file < explicit flags."""
    data = to_dict(TrainConfig.from_preset(args.preset))
    if args.config:
        for key, value in json.loads(args.config.read_text()).items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key].update(value)
            else:
                data[key] = value
    for flag, (section, field, _) in FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            (data[section] if section else data)[field] = value
    return TrainConfig(**data)


def run(args) -> int:
    from faceswap_gan.training import train

    config = resolve_config(args)
    run_dir = train(
        config,
        resume=args.resume,
        progress=not args.no_progress,
        dry_run=args.dry_run,
        stop_at=args.stop_at,
    )
    if not args.dry_run:
        print(
            f"Run folder: {run_dir} (previews/, loss.png, metrics.jsonl, checkpoints/)"
        )
    return 0
