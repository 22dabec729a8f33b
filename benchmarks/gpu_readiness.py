"""GPU readiness: one script, one budget, one JSON and one markdown table.

Runs on a machine with one GPU (e.g. a Colab GPU runtime) and checks, within
`--minutes` of wall time, everything the project's speed claims rest on:

1. **model** — train-step speed of the "lite" and "standard" presets at 64 px with XLA
   off and on, in float32 and in mixed precision (`mixed_float16` with loss scaling,
   `mixed_bfloat16`): `benchmarks/model_speed.py`'s `measure` (profiler FLOPs per
   iteration, median iterations/s on in-memory batches, achieved FLOP/s) against the
   device's dense matmul FLOP/s of the same dtype measured in the same process;
2. **pipeline** — input-pipeline headroom: `benchmarks/train_speed.py`'s `measure` for
   the standard preset: the trainer's tf.data pipeline alone (batches/s) against the
   step fed by it (iterations/s); headroom = pipeline / model, above 1 the GPU is the
   bottleneck;
3. **convert** — conversion speed at 720p: a bundled clip padded to 1280x720 (the face
   keeps its size), converted with `converter.pipeline.VideoConverter` and a fresh
   standard model, with the default keyframe detection and with full MTCNN on every
   frame; frames/s and processing time over the video's duration (below 1: faster
   than real time; the SaSwap paper reports 0.35x on an A10);
4. **learning** — `benchmarks/gpu_learning.py`: the standard preset trained on the
   bundled clips' faces to the v2.2 schedule for the rest of the budget, with its
   learning report (held-out PSNR, saturation, alpha, MobileFaceNet identity).

Each part runs in its own Python process with a deadline taken from the budget
(model 30 %, pipeline 10 %, convert 20 %, learning the rest); a part that runs out of
time is stopped and its rows measured so far are kept, marked "timed out". A part that
fails records its error and the others still run.

Output (`--output`, default `benchmarks_output/gpu_readiness`): `readiness.json` (the
device, versions, every row of every part, each part's status and seconds) and
`readiness.md` (the same as tables). Both are also written on a CPU-only machine, where
the figures only show that the script works (`--minutes 4` is enough for that).

Usage (Colab: Runtime > Change runtime type > GPU, then in a cell):
    !git clone <this repo> faceswap && cd faceswap && pip install -r requirements.txt
    !python benchmarks/gpu_readiness.py --minutes 30
    # read benchmarks_output/gpu_readiness/readiness.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]

from faceswap_gan.config import DTYPE_POLICIES  # noqa: E402 (no TensorFlow)

ROW = "ROW "  # a child prints each result row as ROW {json}, flushed at once
PARTS = ("model", "pipeline", "convert", "learning")
SHARES = {"model": 0.30, "pipeline": 0.10, "convert": 0.20}  # learning: the rest
CLIP = REPO / "faceswap_gan" / "data" / "samples" / "person_a.mp4"
# TrainConfig.mixed_precision values measured by the model part.
PRECISIONS = ("off", "float16", "bfloat16")


def emit(row: dict) -> None:
    """Prints one result row for the parent (kept even if the child is stopped)."""
    print(ROW + json.dumps(row), flush=True)


def device_info() -> dict:
    """Device name, TensorFlow and Keras versions, GPU count."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    name = f"CPU ({platform.processor() or platform.machine()}, no GPU visible)"
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        name = details.get("device_name", gpus[0].name)
    return {
        "device": name,
        "gpus": len(gpus),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
    }


def part_model(args) -> None:
    """Rows: capacity x precision x XLA, each against the matmul peak of its own
    precision; one matmul-peak row first (float32 and each mixed dtype)."""
    import keras
    import model_speed

    peaks = {
        precision: max(model_speed.matmul_flops_per_second(dtype=dtype))
        for precision, dtype in model_speed.MATMUL_DTYPES.items()
    }
    emit({"kind": "peak", "matmul_flop_s": peaks["off"], "peaks": peaks})
    for capacity in ("lite", "standard"):
        for precision in PRECISIONS:
            for xla in (False, True):
                row = {"capacity": capacity, "size": 64, "xla": xla}
                try:
                    (measured,) = model_speed.measure(
                        capacity,
                        64,
                        args.batch_size,
                        args.steps,
                        args.repeats,
                        [(xla, "explicit", precision)],
                    )
                    row |= measured
                    row["of_peak"] = measured["flop_s"] / peaks[precision]
                except Exception as error:  # noqa: BLE001 - recorded, others go on
                    row["error"] = f"{type(error).__name__}: {str(error)[:300]}"
                row["precision"] = precision
                emit(row)
                keras.backend.clear_session(free_memory=True)


def part_pipeline(args) -> None:
    """One row: pipeline batches/s vs data-fed iterations/s (standard, 64 px)."""
    import train_speed

    options = train_speed.parse_args(
        ["--child", "--capacities", "standard", "--batch-size", str(args.batch_size)]
        + ["--steps", str(args.steps), "--repeats", str(args.repeats)]
    )
    row = train_speed.measure(options)
    row["headroom"] = row["pipeline"] / row["fed"]
    emit(row)


def make_720p(work: Path, frames: int) -> Path:
    """The bundled clip padded (edge colours) to 1280x720, looped to `frames`."""
    import numpy as np

    from faceswap_gan.video import VideoReader, VideoWriter

    path = work / "clip_720p.mp4"
    reader = VideoReader(CLIP)
    width, height = reader.size
    top, left = (720 - height) // 2, (1280 - width) // 2
    pad = ((top, 720 - height - top), (left, 1280 - width - left), (0, 0))
    with VideoWriter(path, reader.fps, (1280, 720), metadata={}) as writer:
        while writer.frames_written < frames:
            for frame in reader:
                writer.write(np.pad(frame, pad, mode="edge"))
                if writer.frames_written == frames:
                    break
    return path


def part_convert(args) -> None:
    """Rows: 720p conversion with a fresh standard model (frames/s, x duration): the
    defaults (keyframe detection, the generator on `batch_frames` frames at once),
    the same frame by frame, and full MTCNN on every frame frame by frame (v2.2)."""
    from converter.config import ConverterConfig
    from converter.pipeline import VideoConverter
    from faceswap_gan.config import PRESETS
    from faceswap_gan.models import FaceSwapGAN
    from faceswap_gan.video import VideoReader

    work = Path(args.output)
    clip = make_720p(work, args.convert_frames)
    model = FaceSwapGAN(PRESETS["standard"])
    output = work / "converted_720p.mp4"
    default = ConverterConfig()
    settings = (  # (keyframe_seconds, batch_frames): today's, unbatched, v2.2's
        (default.keyframe_seconds, default.batch_frames),
        (default.keyframe_seconds, 1),
        (0.0, 1),
    )
    for keyframe_seconds, batch_frames in settings:
        config = ConverterConfig(
            output_type="single",
            keyframe_seconds=keyframe_seconds,
            batch_frames=batch_frames,
        )
        converter = VideoConverter(model, config)
        for index, frame in enumerate(VideoReader(clip)):  # warm-up: tracing, MTCNN
            converter.convert_image(frame)
            if index == 2:
                break
        report = converter.convert(clip, output, progress=False, overwrite=True)
        emit(
            {
                "resolution": "1280x720",
                "keyframe_seconds": keyframe_seconds,
                "batch_frames": batch_frames,
                "frames": report.frames,
                "faces": report.faces,
                "frames_per_second": report.frames_per_second,
                "realtime_factor": report.realtime_factor,
                "seconds": report.seconds,
            }
        )
        output.unlink()  # a synthetic video of a real person: not kept


def part_learning(args, minutes: float) -> None:
    """One row: the learning report of `benchmarks/gpu_learning.py`."""
    import gpu_learning

    folder = Path(args.output) / "learning"
    gpu_learning.main(
        ["--minutes", f"{minutes:.2f}", "--every", str(args.every)]
        + ["--work-dir", str(Path(args.output) / "work"), "--output", str(folder)]
    )
    report = json.loads((folder / "learning_report.json").read_text())
    report.pop("rows", None)
    emit({"report": report, "markdown": str(folder / "learning_report.md")})


def run_part(name: str, seconds: float, args) -> dict:
    """Runs one part in a child process for at most `seconds`; its rows and status."""
    command = [sys.executable, __file__, "--child", name, "--output", args.output]
    command += ["--minutes", str(args.minutes), "--part-seconds", str(seconds)]
    for flag in ("batch_size", "steps", "repeats", "convert_frames", "every"):
        command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    started = time.time()
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = child.communicate(timeout=max(seconds, 30))
        status = "ok" if child.returncode == 0 else f"failed (exit {child.returncode})"
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        status = f"timed out after {seconds:.0f} s"
    rows = [json.loads(line[len(ROW) :]) for line in out.splitlines() if ROW in line]
    result = {"status": status, "seconds": round(time.time() - started, 1)}
    result["rows"] = rows
    if status.startswith("failed"):
        result["stderr_tail"] = err[-2000:]
    return result


def _f(value, spec=".2f") -> str:
    return "-" if value is None else format(value, spec)


def markdown(report: dict) -> str:
    """The report as markdown tables."""
    info, parts = report["device"], report["parts"]
    lines = [
        f"# GPU readiness — {info['device']}",
        "",
        f"TensorFlow {info['tensorflow']}, Keras {info['keras']}; budget "
        f"{report['minutes']} min; `python benchmarks/gpu_readiness.py "
        f"--minutes {report['minutes']}`",
        "",
        "| part | status | seconds |",
        "|---|---|---|",
    ]
    lines += [f"| {n} | {p['status']} | {p['seconds']} |" for n, p in parts.items()]
    model = parts.get("model", {}).get("rows", [])
    peak = next((r["matmul_flop_s"] for r in model if r.get("kind") == "peak"), None)
    lines += (
        []
        if "model" not in parts
        else [
            "",
            f"## Train step, 64 px (float32 matmul peak {_f(peak and peak / 1e12)} "
            "TFLOP/s; each row against the matmul peak of its own precision)",
            "",
            "| model | precision | XLA | it/s | GFLOP/it | TFLOP/s | of peak |",
            "|---|---|---|---|---|---|---|",
        ]
    )
    for r in (r for r in model if "capacity" in r):
        precision = DTYPE_POLICIES[r["precision"]]
        if "error" in r:
            lines.append(
                f"| {r['capacity']} | {precision} | {r['xla']} | error: "
                f"{r['error'][:80]} | | | |"
            )
            continue
        lines.append(
            f"| {r['capacity']} | {precision} | {r['xla']} | {r['it_s']:.2f} | "
            f"{r['flops'] / 1e9:.1f} | {r['flop_s'] / 1e12:.2f} | "
            f"{100 * r['of_peak']:.0f} % |"
        )
    for r in parts.get("pipeline", {}).get("rows", []):
        lines += [
            "",
            "## Input pipeline (standard, 64 px)",
            "",
            "| pipeline batches/s | fed it/s | in-memory it/s | headroom |",
            "|---|---|---|---|",
            f"| {r['pipeline']:.2f} | {r['fed']:.2f} | {r['in_memory']:.2f} | "
            f"{r['headroom']:.1f}x |",
        ]
    for r in parts.get("convert", {}).get("rows", []):
        lines += [
            "",
            f"## Conversion, 1280x720, keyframe_seconds {r['keyframe_seconds']}, "
            f"batch_frames {r.get('batch_frames', 1)}",
            "",
            "| frames | frames/s | x video duration |",
            "|---|---|---|",
            f"| {r['frames']} | {r['frames_per_second']:.2f} | "
            f"{r['realtime_factor']:.2f} |",
        ]
    for r in parts.get("learning", {}).get("rows", []):
        speed = r["report"]["speed"]
        lines += [
            "",
            f"## Learning (standard, v2.2 schedule): {r['report']['steps']} "
            f"iterations, {_f(speed['it_per_s'])} it/s; full report {r['markdown']}",
            "",
        ]
        changes = r["report"].get("changes", {})
        lines += ["| figure | step 0 | last | change |", "|---|---|---|---|"]
        for key, change in changes.items():
            lines.append(
                f"| {key} | {change['step_0']:.3f} | {change['last']:.3f} | "
                f"{change['change']:+.3f} |"
            )
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--minutes", type=float, default=30.0, help="whole budget (default 30)"
    )
    parser.add_argument(
        "--output",
        default="benchmarks_output/gpu_readiness",
        help="folder of readiness.json / readiness.md",
    )
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--batch-size", type=int, default=8, help="per side")
    parser.add_argument("--steps", type=int, default=10, help="iterations per run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs")
    parser.add_argument("--convert-frames", type=int, default=300)
    parser.add_argument("--every", type=int, default=500, help="learning eval period")
    parser.add_argument("--child", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("--part-seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.minutes > 0:
        parser.error(f"--minutes must be > 0; got {args.minutes}")
    for name in ("batch_size", "steps", "repeats", "convert_frames", "every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        if args.child == "learning":  # leave time for the report after training
            part_learning(args, max(args.part_seconds / 60 - 1.5, 0.2))
        else:
            globals()[f"part_{args.child}"](args)
        return 0
    Path(args.output).mkdir(parents=True, exist_ok=True)
    started, budget = time.time(), 60 * args.minutes
    report = {"minutes": args.minutes, "device": device_info(), "parts": {}}
    print(
        f"device: {report['device']['device']}; budget {args.minutes} min", flush=True
    )
    # Shares of the parts asked for, scaled to the whole budget; learning (if asked)
    # takes what is left when it starts.
    fixed = [name for name in args.parts if name in SHARES]
    scale = 1.0 if "learning" in args.parts else 1.0 / sum(SHARES[n] for n in fixed)
    for name in args.parts:
        left = budget - (time.time() - started)
        seconds = left if name == "learning" else SHARES[name] * scale * budget
        seconds = min(seconds, left)
        if seconds < 30:
            report["parts"][name] = {"status": "skipped (budget spent)", "seconds": 0}
            continue
        print(f"{name}: up to {seconds:.0f} s", flush=True)
        report["parts"][name] = run_part(name, seconds, args)
        print(f"  {report['parts'][name]['status']}", flush=True)
    output = Path(args.output)
    from faceswap_gan import files

    files.write_text(output / "readiness.json", json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    files.write_text(output / "readiness.md", text)
    print(text)
    print(f"wrote {output / 'readiness.json'} and {output / 'readiness.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
