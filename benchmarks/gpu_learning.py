"""GPU learning report: trains the "standard" preset (64 px) on the bundled clips' faces
to the v2.2 schedule for a wall-time budget, then writes the learning report.

    python benchmarks/gpu_learning.py --minutes 60               # a GPU (e.g. Colab)
    python benchmarks/gpu_learning.py --minutes 0.5 --every 10   # CPU smoke check

What it does:
- faces: `benchmarks/learning.py`'s `prepare_faces` (the two bundled sample clips,
  every 2nd frame, extracted once and cached in `--work-dir`); the last 10 % of each
  person's faces (1 to 8) are held out of training;
- trains `TrainConfig.from_preset("standard")` (v2.2's train notebook: 64 px,
  instancenorm_v22, self-attention, batch 8 per side) with the v2.2 schedule over
  `--iterations` (default 40000, v2.2's TOTAL_ITERS, so that every stage boundary
  sits where v2.2 put it: PL on at 7850, the decoder swap at 31850, ...), and stops
  after `--minutes` (`train(max_seconds=...)`): a 60-minute budget only covers the
  first stages;
- every `--every` iterations, and at step 0, the trainer's periodic evaluation of the
  held-out faces (see learning.py: PSNR, saturation, alpha, MobileFaceNet identity);
- writes `<output>/learning_report.json` (device, settings, it/s, every eval row, the
  change of the headline figures from step 0) and `<output>/learning_report.md` (the
  same as text, with learning.py's table), and prints them.

It prints the device (the GPU's name from `tf.config`, or "CPU") and the speed: it/s
over the whole run (graph tracing, evaluations and checkpoints included) and the
steady it/s between the first and the last evaluation after step 0 (after a resume
the restart's start-up is inside that span).

`--run-dir` names the run folder; when it already holds a checkpoint the run resumes
(with the same `--iterations` and `--batch-size`), e.g. on a mounted Google Drive
after a Colab session ended.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from learning import (  # noqa: E402  (benchmarks/learning.py)
    add_mixed_precision_flag,
    learning_config,
    table,
)

HEADLINE = (  # eval keys whose change from step 0 the report states
    "psnr_A",
    "psnr_B",
    "saturated_AtoB",
    "alpha_mean_AtoB",
    "id_raw_target_AtoB",
    "id_swap_target_AtoB",
    "id_swap_source_AtoB",
    "id_raw_target_BtoA",
)


def device_name() -> str:
    """The first visible GPU's name (and how many), or "CPU (<processor>)"."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return f"CPU ({platform.processor() or platform.machine()}, no GPU visible)"
    details = tf.config.experimental.get_device_details(gpus[0])
    name = details.get("device_name", gpus[0].name)
    return f"{name} x{len(gpus)}" if len(gpus) > 1 else name


def speeds(rows: list[dict]) -> dict:
    """{"it_per_s": over the whole run, "steady_it_per_s": between the first and the
    last eval row after step 0 (None with fewer than two)}. Rows: eval rows."""
    last = rows[-1]
    out = {
        "it_per_s": last["step"] / last["seconds"] if last["seconds"] else None,
        "steady_it_per_s": None,
    }
    later = [r for r in rows if r["step"] > 0]
    if len(later) >= 2 and later[-1]["seconds"] > later[0]["seconds"]:
        out["steady_it_per_s"] = (later[-1]["step"] - later[0]["step"]) / (
            later[-1]["seconds"] - later[0]["seconds"]
        )
    return out


def changes(rows: list[dict]) -> dict:
    """{key: {"step_0", "last", "change"}} for the HEADLINE keys present."""
    first, last = rows[0], rows[-1]
    out = {}
    for key in HEADLINE:
        name = f"eval/{key}"
        if name in first and name in last:
            out[key] = {
                "step_0": first[name],
                "last": last[name],
                "change": last[name] - first[name],
            }
    return out


def _fmt(value, spec=".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def markdown(report: dict, rows: list[dict]) -> str:
    """The report as markdown: settings, speed, changes, learning.py's table."""
    s = report["speed"]
    lines = [
        "# Learning report: standard preset, v2.2 schedule",
        "",
        f"- device: {report['device']}",
        f"- preset {report['preset']}, {report['image_size']} px, batch "
        f"{report['batch_size']} per side, schedule {report['schedule']} over "
        f"{report['iterations']} iterations, mixed precision "
        f"{report['mixed_precision']}",
        f"- trained {report['steps']} iterations in {report['seconds']:.0f} s "
        f"(budget {report['minutes']} min): {_fmt(s['it_per_s'])} it/s overall, "
        f"{_fmt(s['steady_it_per_s'])} it/s steady",
        f"- held-out faces: {report['held_out']['A']} of A's {report['faces']['A']}, "
        f"{report['held_out']['B']} of B's {report['faces']['B']} (the last 10 %)",
        "",
        "| figure | step 0 | last | change |",
        "| --- | ---: | ---: | ---: |",
    ]
    for key, c in report["changes"].items():
        lines.append(
            f"| {key} | {c['step_0']:.3f} | {c['last']:.3f} | {c['change']:+.3f} |"
        )
    lines += ["", "```", table(rows), "```", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--minutes", type=float, default=60.0, help="wall-time budget for training"
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=40000,
        help="the schedule's length (v2.2's 40000); training stops at the budget",
    )
    parser.add_argument("--every", type=int, default=500, help="eval period K")
    parser.add_argument("--batch-size", type=int, default=8, help="per side")
    parser.add_argument("--seed", type=int, default=0)
    add_mixed_precision_flag(parser)
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path("benchmarks_output/gpu_learning"),
        help="extracted faces (cached) and run folders",
    )
    parser.add_argument("--run-dir", type=Path, help="default: <work-dir>/run-<time>")
    parser.add_argument(
        "--output", type=Path, help="report folder (default: the run folder)"
    )
    args = parser.parse_args(argv)

    from faceswap_gan.dataset import FaceSet
    from faceswap_gan.previews import read_metrics
    from faceswap_gan.training import held_out_count, train

    device = device_name()
    print(f"device: {device}", flush=True)
    run_dir = args.run_dir or args.work_dir / f"run-standard-{int(time.time())}"
    config = learning_config(
        "standard",
        args.work_dir,
        run_dir,
        args.every,
        iterations=args.iterations,
        batch_size=args.batch_size,
        seed=args.seed,
        mixed_precision=args.mixed_precision,
    )
    resume = (run_dir / "checkpoints" / "latest").is_file()
    started = time.time()
    train(
        config,
        resume=resume,
        progress=sys.stderr.isatty(),
        max_seconds=60 * args.minutes,
    )
    wall = time.time() - started
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if "eval/psnr_A" in r]
    counts = {"A": len(FaceSet(config.faces_a)), "B": len(FaceSet(config.faces_b))}
    report = {
        "device": device,
        "preset": "standard",
        "image_size": config.arch.image_size,
        "norm": config.arch.norm,
        "batch_size": config.batch_size,
        "schedule": config.schedule,
        "iterations": config.iterations,
        "mixed_precision": config.mixed_precision,
        "minutes": args.minutes,
        "resumed": resume,
        "steps": rows[-1]["step"],
        "seconds": rows[-1]["seconds"],
        "wall_seconds_this_call": round(wall, 1),
        "speed": speeds(rows),
        "faces": counts,
        "held_out": {k: held_out_count(n) for k, n in counts.items()},
        "changes": changes(rows),
        "rows": rows,
        "run_dir": str(run_dir),
    }
    output = args.output or run_dir
    output.mkdir(parents=True, exist_ok=True)
    (output / "learning_report.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report, rows)
    (output / "learning_report.md").write_text(text)
    print(text)
    print(f"report: {output / 'learning_report.md'} and learning_report.json")
    print(f"run folder: {run_dir} (previews/, loss.png, metrics.jsonl, checkpoints/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
