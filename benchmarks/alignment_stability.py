"""Alignment steadiness: raw MTCNN landmarks (v2.2, the default) vs landmarks moved
with the smoothed box (what this project's converter did before).

faceswap-GAN v2.2 aligns each face on MTCNN's raw five points; its Kalman/EMA box only
sets the crop and the paste-back region (see `converter/pipeline.py`). The converter
here used to move the points by the translation and scale from the raw box to the
smoothed box. This script measures which of the two keeps the face steadier on a real
clip, with the converter's own tracker and smoothers.

Method:
1. Detect the face in every frame of the clip (MTCNN, `FaceDetector` with the
   converter's defaults); 68-point landmarks (`LandmarkDetector("face_api")`) are found
   in ONE fixed box, the union of all detected boxes, so their noise is independent of
   MTCNN's boxes and points: they are the reference for where the face really is.
2. For each smoother (Kalman with `kf_noise_coef` 1e-3, the default; EMA 0.65), run
   `faces.tracking.FaceTracker` over the detections. "raw" aligns on the tracker's
   `landmarks5` (the detector's points, v2.2); "follow" aligns on those points moved
   with the smoothed box (`move_landmarks(points, raw box, smoothed box)`).
3. How MTCNN's raw box centre and its 5 points' centroid shake (mean |second
   difference| per axis) and their correlation: following the smoothed box can only
   help if the points shake with the box.
4. Per way, with `faceswap_gan.evaluation.geometry`:
   - `points jitter`: `jitter` of the 5 points aligned on, frame px/frame^2;
   - `face-in-crop jitter`: `jitter` of the reference 68 points mapped into the
     aligned crop (`--size` px), mean over the points: how much the face shakes in
     the crop the generator sees (lower = steadier);
   - `crop change`: `frame_change` of consecutive aligned crops (mean |diff| in [0, 1]).
5. Unless `--no-model`: convert the clip with `VideoConverter` and a real, untrained
   `FaceSwapGAN(PRESETS["tiny"])` (geometry only: where the swap lands), replaying the
   detections of step 1 so both ways see the same faces; per way, `frame_change` of the
   output inside the fixed box (the input's own change printed for scale) and `jitter`
   of the centroid of |output - input| (where the swapped face was pasted). For the
   default way it also prints how much of the swapped alpha the smoothed-box cut
   removes.

Usage:
    python benchmarks/alignment_stability.py                 # person_a.mp4, 180 frames
    python benchmarks/alignment_stability.py --frames 60 --no-model
    python benchmarks/alignment_stability.py --clip my.mp4 --size 256
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "faceswap_gan" / "data" / "samples" / "person_a.mp4"
SMOOTHERS = {"kalman 1e-3": ("kalman", 1e-3), "ema 0.65": ("ema", 0.65)}


def read_frames(path: Path, count: int) -> list:
    from faceswap_gan.video import iter_video_frames

    return [frame for _, frame in iter_video_frames(path, 1, count)]


def detect(frames: list) -> tuple:
    """(frame, detections) pairs, the 68 reference points `(T, 68, 2)`, the union box.

    Frames where MTCNN finds no face are dropped (this clip has a face in all).
    """
    import numpy as np

    from faceswap_gan.faces.detection import FaceDetector
    from faceswap_gan.faces.landmarks import LandmarkDetector

    detector = FaceDetector()
    detections = [detector.detect(frame) for frame in frames]
    kept = [i for i, faces in enumerate(detections) if faces]
    if len(kept) < 3:
        raise SystemExit(f"Only {len(kept)} frames with a face; need at least 3.")
    boxes = np.stack([detections[i][0].box for i in kept])
    union = np.concatenate([boxes[:, :2].min(0), boxes[:, 2:].max(0)])[None]
    landmarks = LandmarkDetector("face_api")
    reference = np.stack([landmarks.detect(frames[i], union)[0] for i in kept])
    return [(frames[i], detections[i]) for i in kept], reference, union[0]


def make_tracker(kind: str, value: float):
    from faceswap_gan.faces.tracking import FaceTracker, KalmanBoxSmoother
    from faceswap_gan.faces.tracking import MovingAverageBoxSmoother as Ema

    if kind == "kalman":
        return FaceTracker(lambda: KalmanBoxSmoother(value))
    return FaceTracker(lambda: Ema(value))


def follow_box(tracker, tracked: list) -> list:
    """The pre-v2.2-fix way: detected faces' points moved with the smoothed box."""
    from faceswap_gan.faces.tracking import move_landmarks

    tracks = {track.track_id: track for track in tracker.tracks}
    out = []
    for face in tracked:
        if face.detected:
            track = tracks[face.track_id]
            moved = move_landmarks(track.raw_landmarks, track.raw_box, face.box)
            face = face._replace(landmarks5=moved)
        out.append(face)
    return out


def points_jitter(track) -> float:
    """Mean `geometry.jitter` over the points of a `(T, K, 2)` track."""
    from faceswap_gan.evaluation.geometry import jitter

    return float(
        sum(jitter(track[:, k]) for k in range(track.shape[1])) / len(track[0])
    )


def noise_figures(detected) -> dict:
    """How the raw box centre and the raw points' centroid shake, and how together.

    Per axis: mean |second difference| of each, and their correlation. Moving the
    points with the smoothed box removes the box's shake from them: that helps only
    if the points shake with the box.
    """
    import numpy as np

    boxes = np.stack([faces[0].box for _, faces in detected]).astype(float)
    points = np.stack([faces[0].landmarks5 for _, faces in detected]).astype(float)
    box = np.diff((boxes[:, :2] + boxes[:, 2:]) / 2, n=2, axis=0)  # (T-2, 2)
    centroid = np.diff(points.mean(axis=1), n=2, axis=0)  # (T-2, 2)
    return {
        "box": np.abs(box).mean(axis=0),
        "points": np.abs(centroid).mean(axis=0),
        "correlation": [np.corrcoef(box[:, k], centroid[:, k])[0, 1] for k in (0, 1)],
    }


def alignment_figures(detected, reference, size: int) -> dict:
    """Figures of step 4 per (smoother, way)."""
    import numpy as np

    from faceswap_gan.evaluation.geometry import frame_change
    from faceswap_gan.faces.alignment import align, transform_points

    figures = {}
    for name, (kind, value) in SMOOTHERS.items():
        tracker = make_tracker(kind, value)
        used = {"raw": [], "follow": []}
        for frame, faces in detected:
            tracked = tracker.update(faces[:1])
            assert np.array_equal(tracked[0].landmarks5, faces[0].landmarks5)
            used["raw"].append(tracked[0].landmarks5)
            used["follow"].append(follow_box(tracker, tracked)[0].landmarks5)
        for way, points in used.items():
            points = np.stack(points)  # (T, 5, 2)
            aligned = [align(frame, p, size) for (frame, _), p in zip(detected, points)]
            in_crop = np.stack(
                [transform_points(r, m) for r, (_, m) in zip(reference, aligned)]
            )
            figures[name, way] = {
                "points jitter": points_jitter(points),
                "face-in-crop jitter": points_jitter(in_crop),
                "crop change": frame_change(np.stack([c for c, _ in aligned])),
            }
    return figures


class _Replay:
    """A detector that returns the detections of step 1, frame after frame."""

    def __init__(self, detected):
        self._faces = iter([faces for _, faces in detected])

    def detect(self, frame):
        return next(self._faces)


def conversion_figures(detected, union) -> dict:
    """Figures of step 5 per way (Kalman smoothing, the converter's default)."""
    import numpy as np

    from converter.config import ConverterConfig
    from converter.pipeline import VideoConverter, box_mask_in_crop
    from faceswap_gan.config import PRESETS
    from faceswap_gan.evaluation.geometry import frame_change, jitter
    from faceswap_gan.models import FaceSwapGAN

    arch = PRESETS["tiny"]
    model = FaceSwapGAN(arch)
    config = ConverterConfig(
        image_shape=arch.image_shape, output_type="single", watermark=False
    )
    x0, y0, x1, y1 = np.round(union).astype(int)
    figures, cut = {}, []
    for way in ("raw", "follow"):
        converter = VideoConverter(model, config, _Replay(detected))
        if way == "follow":
            update = converter.tracker.update
            tracker = converter.tracker
            tracker.update = lambda faces, t=tracker, u=update: follow_box(t, u(faces))
        windows, inputs, centroids = [], [], []
        for frame, _ in detected:
            output, tracked = converter.convert_frame(frame)
            windows.append(output[y0:y1, x0:x1])
            inputs.append(frame[y0:y1, x0:x1])
            change = np.abs(output.astype(np.float32) - frame).sum(-1)  # (H, W)
            ys, xs = np.mgrid[0 : change.shape[0], 0 : change.shape[1]]
            total = max(change.sum(), 1e-9)
            centroids.append(((xs * change).sum() / total, (ys * change).sum() / total))
            if way == "raw":  # Alpha mass the smoothed-box cut removes.
                crops, matrices, _ = converter._align(frame, tracked)
                _, alphas, _ = converter.transformer.transform(crops)
                for face, alpha, matrix in zip(tracked, alphas, matrices):
                    box = box_mask_in_crop(face.box, matrix, len(alpha), frame.shape)
                    cut.append(1.0 - (alpha * box).sum() / max(alpha.sum(), 1e-9))
        figures[way] = {
            "output change": frame_change(np.stack(windows)),
            "input change": frame_change(np.stack(inputs)),
            "swap centroid jitter": jitter(np.array(centroids)),
        }
    figures["alpha cut"] = (float(np.mean(cut)), float(np.max(cut)))
    return figures


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", default=str(CLIP), help="video (person_a.mp4)")
    parser.add_argument("--frames", type=int, default=180, help="frames read (180)")
    parser.add_argument("--size", type=int, default=128, help="aligned crop px (128)")
    parser.add_argument(
        "--no-model", action="store_true", help="skip the conversion (step 5)"
    )
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    tic = time.time()
    frames = read_frames(Path(args.clip), args.frames)
    detected, reference, union = detect(frames)
    print(
        f"{Path(args.clip).name}: {len(detected)} of {len(frames)} frames with a face; "
        f"detection {time.time() - tic:.0f} s; aligned crops {args.size} px"
    )
    shake = noise_figures(detected)
    print(
        "MTCNN shake, mean |second difference| (x, y) px: box centre "
        f"{shake['box'][0]:.2f}, {shake['box'][1]:.2f}; 5-point centroid "
        f"{shake['points'][0]:.2f}, {shake['points'][1]:.2f}; correlation "
        f"{shake['correlation'][0]:.2f}, {shake['correlation'][1]:.2f}"
    )
    figures = alignment_figures(detected, reference, args.size)
    columns = ("points jitter", "face-in-crop jitter", "crop change")
    print(f"\n{'smoother':<13}{'way':<8}" + "".join(f"{c:>21}" for c in columns))
    for (name, way), row in figures.items():
        print(f"{name:<13}{way:<8}" + "".join(f"{row[c]:>21.4f}" for c in columns))
    for name in SMOOTHERS:
        raw, follow = figures[name, "raw"], figures[name, "follow"]
        ratios = ", ".join(f"{c} {follow[c] / raw[c]:.2f}" for c in columns)
        print(f"follow / raw, {name}: {ratios}")
    if args.no_model:
        return
    tic = time.time()
    converted = conversion_figures(detected, union)
    columns = ("output change", "input change", "swap centroid jitter")
    print(
        f"\nconversion, untrained tiny model, Kalman 1e-3 ({time.time() - tic:.0f} s)"
    )
    print(f"{'way':<8}" + "".join(f"{c:>22}" for c in columns))
    for way in ("raw", "follow"):
        row = converted[way]
        print(f"{way:<8}" + "".join(f"{row[c]:>22.4f}" for c in columns))
    raw, follow = converted["raw"], converted["follow"]
    print(
        "follow / raw: "
        + ", ".join(f"{c} {follow[c] / raw[c]:.2f}" for c in columns[::2])
    )
    mean_cut, max_cut = converted["alpha cut"]
    print(
        f"swapped alpha outside the smoothed box (cut before paste-back): mean "
        f"{100 * mean_cut:.2f} %, max {100 * max_cut:.2f} % per face"
    )


if __name__ == "__main__":
    main()
