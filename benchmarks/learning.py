"""Learning report: does the model learn faces? Trains a preset on the bundled clips'
faces and prints, every K iterations, what the held-out faces say.

    python benchmarks/learning.py --preset lite --iterations 400 --every 50
    python benchmarks/learning.py --preset standard --minutes 60 --every 500  # GPU

Faces: `extract_faces` of the two bundled sample clips (`faceswap_gan/data/samples`,
every 2nd frame), cached in `--work-dir`. The last 10 % of each person's faces (1 to 8)
are held out of training (`TrainConfig.eval_every`). Every K iterations, and at step 0,
the trainer's periodic evaluation (`faceswap_gan.evaluation.evaluate_periodic`) logs:

- PSNR (dB) of the A->A and B->B raw reconstructions of the held-out faces, whole crop
  ("PSNR") and inside the generator's alpha mask ("mPSNR");
- the share of saturated raw RGB values (|x| > 0.99) of the swaps;
- alpha mean and coverage (share of pixels with alpha > 0.5) of the swaps;
- identity similarity by the independent scorer (MobileFaceNet, never seen by the
  losses): cosine of the raw and of the composited A->B swaps to B's and to A's
  centroid of held-out real faces (and B->A the other way round); "realA>B" is the
  source faces' own cosine to B, the baseline that a swap must beat.

The table goes to stdout and, as JSON lines, to `<run>/metrics.jsonl` (keys
"eval/...").  `--schedule` defaults to the preset's (v2.2 for standard, the Colab
demo's for lite); its stage boundaries scale with `--iterations`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from faceswap_gan.config import MIXED_PRECISIONS  # no TensorFlow import

COLUMNS = (  # (metrics key without "eval/", header, format)
    ("psnr_A", "PSNR A", "{:6.2f}"),
    ("psnr_B", "PSNR B", "{:6.2f}"),
    ("masked_psnr_A", "mPSNR A", "{:7.2f}"),
    ("masked_psnr_B", "mPSNR B", "{:7.2f}"),
    ("saturated_AtoB", "sat", "{:5.3f}"),
    ("alpha_mean_AtoB", "a_mean", "{:6.3f}"),
    ("alpha_coverage_AtoB", "a_cov", "{:5.3f}"),
    ("id_raw_target_AtoB", "raw>B", "{:6.3f}"),
    ("id_raw_source_AtoB", "raw>A", "{:6.3f}"),
    ("id_swap_target_AtoB", "swap>B", "{:6.3f}"),
    ("id_swap_source_AtoB", "swap>A", "{:6.3f}"),
    ("id_real_target_AtoB", "realA>B", "{:7.3f}"),
    ("id_raw_target_BtoA", "rawBA>A", "{:7.3f}"),
)


def prepare_faces(work_dir: Path, every: int = 2) -> tuple[Path, Path]:
    """Extracts (once) the bundled clips' faces -> (faces_a folder, faces_b folder)."""
    from faceswap_gan.demo import SAMPLE_A, SAMPLE_B, extract_sample

    folders = []
    for side, video in (("a", SAMPLE_A), ("b", SAMPLE_B)):
        root = work_dir / f"faces_{side}"
        state_path = root / "extract.json"
        state = json.loads(state_path.read_text()) if state_path.is_file() else {}
        extract_sample(video, root, every, None, state, progress=False)
        state_path.write_text(json.dumps(state))
        folders.append(root / "faces")
    return folders[0], folders[1]


def learning_config(preset: str, work_dir: Path, run_dir: Path, every: int, **fields):
    """TrainConfig of `preset` on the faces `prepare_faces` put in `work_dir`, with
    the periodic evaluation, previews and checkpoints every `every` iterations and no
    backups; `fields` override any other TrainConfig field."""
    from faceswap_gan.config import TrainConfig

    faces_a, faces_b = prepare_faces(work_dir)
    return TrainConfig.from_preset(
        preset,
        faces_a=str(faces_a / "aligned_faces"),
        faces_b=str(faces_b / "aligned_faces"),
        masks_a=str(faces_a / "binary_masks_eyes"),
        masks_b=str(faces_b / "binary_masks_eyes"),
        run_dir=str(run_dir),
        display_iters=every,
        eval_every=every,
        backup_iters=0,
        **fields,
    )


def table(rows: list[dict]) -> str:
    """Fixed-width table of the eval rows (step, seconds, then COLUMNS)."""
    head = f"{'step':>6} {'sec':>7} " + " ".join(h for _, h, _ in COLUMNS)
    lines = [head]
    for row in rows:
        cells = [
            fmt.format(row.get(f"eval/{key}", float("nan"))).rjust(len(h))
            for key, h, fmt in COLUMNS
        ]
        lines.append(f"{row['step']:>6} {row['seconds']:>7.0f} " + " ".join(cells))
    return "\n".join(lines)


def add_mixed_precision_flag(parser: argparse.ArgumentParser) -> None:
    """Adds `--mixed-precision [float16|bfloat16|off]` (`TrainConfig.mixed_precision`;
    float16 when given alone, off by default) to `parser`."""
    parser.add_argument(
        "--mixed-precision",
        nargs="?",
        const="float16",
        default="off",
        choices=MIXED_PRECISIONS,
        help="TrainConfig.mixed_precision: float16 when given alone, bfloat16, or "
        "off (default)",
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="lite", help="tiny, lite or standard")
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--every", type=int, default=50, help="eval period K")
    parser.add_argument("--batch-size", type=int, help="default: the preset's")
    parser.add_argument("--schedule", help="default: the preset's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, help="wall-time budget for training")
    add_mixed_precision_flag(parser)
    parser.add_argument(
        "--no-self-attn", action="store_true", help="the preset without SAGAN blocks"
    )
    parser.add_argument("--norm", help="the preset with another normalisation")
    parser.add_argument("--lr-factor", type=float, default=1.0)
    parser.add_argument(
        "--use-pl", action="store_true", help="perceptual loss from the start"
    )
    parser.add_argument(
        "--m-mask",
        type=float,
        help="hinge alpha loss with this margin from the start (the run's LossConfig)",
    )
    parser.add_argument(
        "--work-dir", type=Path, default=Path("benchmarks_output/learning")
    )
    args = parser.parse_args(argv)

    import dataclasses

    from faceswap_gan.config import PRESETS, LossConfig
    from faceswap_gan.training import train

    overrides = {}
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    if args.schedule:
        overrides["schedule"] = args.schedule
    arch = PRESETS[args.preset]
    if args.no_self_attn:
        arch = dataclasses.replace(arch, use_self_attn=False)
    if args.norm:
        arch = dataclasses.replace(arch, norm=args.norm)
    overrides["arch"] = arch
    hinge = args.m_mask is not None
    overrides["loss"] = LossConfig(
        use_mask_hinge_loss=hinge,
        m_mask=args.m_mask if hinge else 0.0,
        lr_factor=args.lr_factor,
        use_PL=args.use_pl,
    )
    run_dir = args.work_dir / f"run-{args.preset}-{int(time.time())}"
    config = learning_config(
        args.preset,
        args.work_dir,
        run_dir,
        args.every,
        iterations=args.iterations,
        seed=args.seed,
        mixed_precision=args.mixed_precision,
        **overrides,
    )
    max_seconds = None if args.minutes is None else 60 * args.minutes
    train(config, progress=sys.stderr.isatty(), max_seconds=max_seconds)
    rows = [
        json.loads(line)
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
        if line.strip()
    ]
    rows = [r for r in rows if "eval/psnr_A" in r]
    print(
        f"preset {args.preset}, batch {config.batch_size}, schedule "
        f"{config.schedule}, {rows[-1]['step']} iterations in "
        f"{rows[-1]['seconds']:.0f} s ({rows[-1]['step'] / rows[-1]['seconds']:.2f} "
        f"it/s); held-out faces: the last 10 % of each clip's faces"
    )
    print(table(rows))
    first, last = rows[0], rows[-1]
    for key in ("psnr_A", "psnr_B", "id_swap_target_AtoB", "id_raw_target_AtoB"):
        start, end = first[f"eval/{key}"], last[f"eval/{key}"]
        print(
            f"{key}: step 0 {start:.3f} -> step {last['step']} {end:.3f} "
            f"(change {end - start:+.3f})"
        )
    print(f"run folder: {run_dir} (previews/, loss.png, metrics.jsonl)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
