"""Conversion speed and memory on a bundled clip: short input vs a 4x longer one.

For each input, a fresh subprocess builds the model (a preset with random weights, or
a trained run via --model) and MTCNN, converts five warm-up frames, then converts the
input with `converter.pipeline.VideoConverter`. It reports frames/s, processing time
over video duration, the share of time per step, and memory: peak RSS
(`resource.getrusage` maxrss) and its growth over the warm-up peak, which is what the
conversion itself adds. Streaming keeps the growth flat in the video's length, so the
long/short ratio of the growth should be near 1 (not 4).

Usage:
    python benchmarks/convert_speed.py          # tiny preset, 45 and 180 frames
    python benchmarks/convert_speed.py --frames 90 --preset lite
    python benchmarks/convert_speed.py --model runs/ab --clip my.mp4
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO / "faceswap_gan" / "data" / "samples" / "person_a.mp4"


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB.


def make_input(clip: Path, frames: int, path: Path) -> Path:
    """Writes the first `frames` frames of `clip`, looping it, as an MP4 (no audio)."""
    sys.path.insert(0, str(REPO))
    from faceswap_gan.video import VideoReader, VideoWriter

    reader = VideoReader(clip)
    with VideoWriter(path, reader.fps, reader.size, metadata={}) as writer:
        while writer.frames_written < frames:
            for frame in reader:
                writer.write(frame)
                if writer.frames_written == frames:
                    break
    return path


def worker(args: argparse.Namespace) -> None:
    """Runs one conversion in this process and prints one JSON line of results."""
    sys.path.insert(0, str(REPO))
    from converter.config import ConverterConfig
    from converter.pipeline import VideoConverter
    from faceswap_gan.video import VideoReader

    if args.model:
        from faceswap_gan.checkpoints import load_model

        model = load_model(args.model)
    else:
        from faceswap_gan.config import PRESETS
        from faceswap_gan.models import FaceSwapGAN

        model = FaceSwapGAN(PRESETS[args.preset])
    config = ConverterConfig(image_shape=model.image_size, output_type=args.output_type)
    converter = VideoConverter(model, config)
    for index, frame in enumerate(VideoReader(args.input)):  # Warm-up: 5 frames.
        converter.convert_image(frame)
        if index == 4:
            break
    warm_mib = _maxrss_mib()
    report = converter.convert(args.input, args.output, progress=False)
    print(
        json.dumps(
            {
                "frames": report.frames,
                "faces": report.faces,
                "video_seconds": report.video_seconds,
                "seconds": report.seconds,
                "fps": report.frames_per_second,
                "realtime": report.realtime_factor,
                "peak_mib": _maxrss_mib(),
                "growth_mib": _maxrss_mib() - warm_mib,
            }
        )
    )


def measure(input_path: Path, output: Path, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        "--input",
        str(input_path),
        "--output",
        str(output),
        "--preset",
        args.preset,
        "--output-type",
        args.output_type,
    ]
    if args.model:
        command += ["--model", args.model]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_result(name: str, result: dict) -> None:
    total = sum(result["seconds"].values())
    print(
        f"{name}: {result['frames']} frames ({result['video_seconds']:.1f} s of video),"
        f" {result['faces']} faces: {result['fps']:.2f} frames/s, processing time = "
        f"{result['realtime']:.1f}x the video's duration"
    )
    print(
        "  share of time: "
        + ", ".join(
            f"{step} {100 * sec / total:.0f}%"
            for step, sec in result["seconds"].items()
        )
    )
    print(
        f"  peak RSS {result['peak_mib']:.0f} MiB, growth over warm-up "
        f"{result['growth_mib']:.1f} MiB"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=int, default=45, help="short input length")
    parser.add_argument(
        "--preset", default="tiny", help="model preset (random weights)"
    )
    parser.add_argument("--model", help="run/checkpoint folder instead of a preset")
    parser.add_argument("--output-type", default="single")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results = {}
        for name, frames in (("short", args.frames), ("long", 4 * args.frames)):
            source = make_input(args.clip, frames, tmp / f"{name}.mp4")
            results[name] = measure(source, tmp / f"{name}_out.mp4", args)
            print_result(name, results[name])
    short, long = results["short"], results["long"]
    print(
        f"long/short: frames {long['frames'] / short['frames']:.1f}x, time "
        f"{sum(long['seconds'].values()) / sum(short['seconds'].values()):.2f}x, "
        f"peak RSS {long['peak_mib'] / short['peak_mib']:.2f}x, growth "
        f"{long['growth_mib'] / max(short['growth_mib'], 1.0):.2f}x "
        "(streaming: ~1x expected)"
    )


if __name__ == "__main__":
    main()
