"""How often keyframe detection equals full MTCNN, per clip and pyramid size range.

`faces.keyframes.KeyframeDetector` runs, between keyframes, only the pyramid levels
of MTCNN whose 12 px window is `size_range[0]` to `size_range[1]` times the side of a
face found in the previous frame. When the proposals that lead to a face come from
those levels, its box and points equal full detection's (float rounding aside); a
narrow range can miss the level a face's final box comes from. This script runs,
for each clip (its first `--frames` frames, at its own resolution), full MTCNN on
every frame and the keyframe detector (keyframes every `--keyframe-seconds`) with
each `--size-ranges` value, and prints per row:

- equal: the share of frames whose first face's five points are within 0.01 % of
  the eye-centre distance of full detection's (the same result);
- lm err: the mean and worst distance of the five points to full detection's, in %
  of the eye-centre distance;
- faces: frames where the two find a different number of faces;
- pixels: the pixels PNet scanned, over what full detection's pyramid scans;
- x full: detection time of full MTCNN over the keyframe detector's (detection
  only; `convert_speed.py --compare` times whole conversions).

Usage:
    python benchmarks/pyramid_levels.py
    python benchmarks/pyramid_levels.py --clips my.mp4 --frames 60 \\
        --size-ranges 0.5,2 0.35,3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "faceswap_gan" / "data" / "samples"
SHARED = REPO.parent / "shared" / "data" / "video"


def default_clips() -> list[Path]:
    """The bundled clips, and the shared talking-head clips where present."""
    clips = sorted(SAMPLES.glob("*.mp4"))
    if SHARED.is_dir():
        clips += sorted(SHARED.glob("*/*.mp4"))
    return clips


def size_range(text: str) -> tuple[float, float]:
    """'low,high' -> (low, high)."""
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a size range is 'low,high', e.g. 0.35,3; got {text!r}"
        ) from None
    return low, high


def measure(clip: Path, frames: int, ranges, keyframe_seconds: float, full) -> None:
    from faceswap_gan.faces.keyframes import KeyframeDetector, pyramid_scales
    from faceswap_gan.video import VideoReader

    reader = VideoReader(clip)
    images = []
    for frame in reader:
        images.append(frame)
        if len(images) == frames:
            break
    height, width = images[0].shape[:2]
    full.detect(images[0])  # Warm-up.
    tic = time.perf_counter()
    reference = [full.detect(image) for image in images]
    full_seconds = time.perf_counter() - tic
    pyramid = sum(
        int(height * s) * int(width * s) for s in pyramid_scales(height, width)
    )
    print(f"\n{clip.name}: {width}x{height}, {len(images)} frames")
    print(
        f"{'size range':>12} {'equal':>7} {'lm err %':>9} {'max %':>7} "
        f"{'faces':>6} {'pixels':>7} {'x full':>7}"
    )
    for low, high in ranges:
        detector = KeyframeDetector(
            full,
            fps=reader.fps,
            keyframe_seconds=keyframe_seconds,
            size_range=(low, high),
        )
        for image in images[:3]:  # Warm-up: trace the graphs.
            detector.detect(image)
        detector.start_video(reader.fps)
        tic = time.perf_counter()
        found = [detector.detect(image) for image in images]
        seconds = time.perf_counter() - tic
        errors, count_differs = [], 0
        for a, b in zip(reference, found):
            count_differs += len(a) != len(b)
            if a and b:
                p, q = a[0].landmarks5, b[0].landmarks5
                eye = np.linalg.norm(p[0] - p[1])
                errors.append(np.linalg.norm(p - q, axis=1).mean() / eye)
        errors = np.asarray(errors) if errors else np.full(1, np.nan)
        print(
            f"{f'{low:g}-{high:g}':>12} {np.mean(errors <= 1e-4):>7.1%} "
            f"{100 * errors.mean():>9.3f} {100 * errors.max():>7.2f} "
            f"{count_differs:>6} "
            f"{detector.counts['pixels'] / (pyramid * len(images)):>7.1%} "
            f"{full_seconds / seconds:>7.2f}"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, nargs="+", default=None)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument(
        "--size-ranges",
        type=size_range,
        nargs="+",
        default=[(0.5, 2.0), (0.4, 2.5), (0.35, 3.0)],
    )
    parser.add_argument("--keyframe-seconds", type=float, default=0.25)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from faceswap_gan.faces.detection import FaceDetector

    full = FaceDetector()
    for clip in args.clips or default_clips():
        measure(clip, args.frames, args.size_ranges, args.keyframe_seconds, full)


if __name__ == "__main__":
    main()
