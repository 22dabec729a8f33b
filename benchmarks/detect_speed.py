"""Detection speed on a bundled clip: full size vs auto-downscaling; masks per face.

Measures, on the first `--frames` frames of `faceswap_gan/data/samples/person_a.mp4`:
1. MTCNN frames/s on the clip at its own size (480x480);
2. frames/s on a 2x upscaled copy (960x960) at full size and with auto-downscaling
   (which detects on a /3 copy there), and how far the mapped-back boxes move;
3. milliseconds per face for 68-point landmarks + `eye_mask` on an aligned 256 crop.

Usage:
    python benchmarks/detect_speed.py [--frames 30] [--clip path.mp4]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from faceswap_gan.faces.alignment import align, transform_points
from faceswap_gan.faces.detection import FaceDetector
from faceswap_gan.faces.landmarks import LandmarkDetector
from faceswap_gan.faces.masks import eye_mask
from faceswap_gan.video import iter_video_frames

CLIP = Path(__file__).resolve().parents[1] / "faceswap_gan/data/samples/person_a.mp4"


def frames_per_second(detector: FaceDetector, frames: list[np.ndarray]):
    """(frames/s, list of faces per frame); one warm-up call first."""
    detector.detect(frames[0])
    start = time.perf_counter()
    found = [detector.detect(frame) for frame in frames]
    return len(frames) / (time.perf_counter() - start), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=30, help="frames to time")
    parser.add_argument("--clip", type=Path, default=CLIP, help="video file")
    args = parser.parse_args()
    frames = [f for _, f in iter_video_frames(args.clip, limit=args.frames)]
    big = [
        cv2.resize(f, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC) for f in frames
    ]
    h, w = frames[0].shape[:2]
    full, slow = FaceDetector(), FaceDetector(auto_downscale=True)
    fps_native, _ = frames_per_second(full, frames)
    fps_big, found_big = frames_per_second(full, big)
    fps_down, found_down = frames_per_second(slow, big)
    shift = [
        np.abs(a[0].box - b[0].box).max() / (a[0].box[2] - a[0].box[0])
        for a, b in zip(found_big, found_down)
        if a and b
    ]
    print(f"clip {args.clip.name}, {len(frames)} frames")
    print(f"detection {w}x{h} full size:        {fps_native:6.2f} frames/s")
    print(f"detection {2 * w}x{2 * h} full size:        {fps_big:6.2f} frames/s")
    print(
        f"detection {2 * w}x{2 * h} auto-downscaled:  {fps_down:6.2f} frames/s "
        f"(x{fps_down / fps_big:.2f} vs full size)"
    )
    print(
        f"  faces found full/downscaled: {sum(map(bool, found_big))}/"
        f"{sum(map(bool, found_down))}; box shift max {100 * max(shift):.1f} % "
        f"of the box side (mean {100 * np.mean(shift):.1f} %)"
    )
    landmarks = LandmarkDetector()
    faces = [full.detect(f)[0] for f in frames]
    matrices = [align(f, face.landmarks5, 256)[1] for f, face in zip(frames, faces)]
    landmarks.detect(frames[0], faces[0].box[None])  # warm-up
    start = time.perf_counter()
    for frame, face, matrix in zip(frames, faces, matrices):
        points = landmarks.detect(frame, face.box[None])[0]  # (68, 2)
        eye_mask(transform_points(points, matrix), (256, 256))
    per_face = (time.perf_counter() - start) / len(frames)
    print(
        f"landmarks + eye mask per face:  {1000 * per_face:6.1f} ms "
        f"({per_face * fps_native:.2f}x one {w}x{h} detection, "
        f"{1000 / fps_native:.1f} ms)"
    )


if __name__ == "__main__":
    main()
