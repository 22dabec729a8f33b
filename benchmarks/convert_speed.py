"""Conversion speed and memory on a bundled clip: short input vs a 4x longer one.

For each input, a fresh subprocess builds the model (a preset with random weights, or
a trained run via --model) and MTCNN, converts five warm-up frames, then converts the
input with `converter.pipeline.VideoConverter`. It reports frames/s, processing time
over video duration, the share of time per step, and memory: peak RSS
(`resource.getrusage` maxrss) and its growth over the warm-up peak, which is what the
conversion itself adds. Streaming keeps the growth flat in the video's length, so the
long/short ratio of the growth should be near 1 (not 4).

`--compare` instead measures the fast detection of `faceswap_gan.faces.keyframes`
against today's (MTCNN on every frame at full size), side by side in one process, on
the bundled clip (480x480) and on a 1280x720 clip made under /tmp from the other
bundled clip (upscaled to 720 px high, padded to 1280 wide, looped). Each step is a
row: full MTCNN every frame; a keyframe pass on every frame (MTCNN on the pyramid
levels for faces down to half the smallest face found so far); keyframes every
`--keyframe-seconds` with only the levels near the found faces' sizes in between;
the same with decoding, converting and encoding in
three threads (`keyframes.ThreadedMap`, as `VideoConverter.convert` runs); and that
with the generator run on the faces of `--batch-frames` frames at once
(`ConverterConfig.batch_frames`, as `VideoConverter.convert` does). Per row:
frames/s end to end (decode + convert + encode), its ratio to the full row,
detection's share; and the quality
against the full row frame by frame: landmark error (mean distance of the five
alignment points over the eye-centre distance, and over the outer-eye-corner
distance of the 68-point net: `geometry.inter_ocular_distance`; and against the full
row's points averaged over 5 frames, a steadier estimate than one detection), box jitter
(`geometry.jitter` of the detector's boxes and of the converter's smoothed boxes),
and identity (MobileFaceNet cosine between the swapped face of this row and of the
full row, aligned on the same points; and the cosine of each to the input face).
The floor printed with the landmark error is full MTCNN against itself on the same
frames shifted by one pixel: how much the reference itself moves.

Usage:
    python benchmarks/convert_speed.py          # tiny preset, 45 and 180 frames
    python benchmarks/convert_speed.py --compare --frames 90 --frames-720 60
    python benchmarks/convert_speed.py --frames 90 --preset lite
    python benchmarks/convert_speed.py --model runs/ab --clip my.mp4
    python benchmarks/convert_speed.py --backends --frames 30   # Keras vs onnxruntime
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO / "faceswap_gan" / "data" / "samples" / "person_a.mp4"
DEFAULT_CLIP_720 = REPO / "faceswap_gan" / "data" / "samples" / "person_b.mp4"


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


def make_720p(clip: Path, frames: int, path: Path) -> Path:
    """`clip` upscaled to 720 px high, centred on a 1280x720 canvas, looped to
    `frames` frames, as an MP4 (no audio). A work file; never committed."""
    import cv2

    sys.path.insert(0, str(REPO))
    from faceswap_gan.video import VideoReader, VideoWriter

    reader = VideoReader(clip)
    with VideoWriter(path, reader.fps, (1280, 720), metadata={}) as writer:
        while writer.frames_written < frames:
            for frame in reader:
                scale = 720 / frame.shape[0]
                width = min(1280, round(frame.shape[1] * scale))
                big = cv2.resize(frame, (width, 720), interpolation=cv2.INTER_CUBIC)
                canvas = np.zeros((720, 1280, 3), np.uint8)
                left = (1280 - width) // 2
                canvas[:, left : left + width] = big
                writer.write(canvas)
                if writer.frames_written == frames:
                    break
    return path


class _Recorder:
    """Wraps a detector; keeps each frame's faces and the seconds spent."""

    def __init__(self, detector):
        self.detector, self.faces, self.seconds = detector, [], 0.0

    def detect(self, frame):
        tic = time.perf_counter()
        faces = self.detector.detect(frame)
        self.seconds += time.perf_counter() - tic
        self.faces.append(faces)
        return faces


def _first_box(faces):
    return faces[0].box if faces else np.full(4, np.nan)


def _run_variant(
    name, clip, model, detector, threads, keep_every, out_dir, batch_frames=1
):
    """Converts `clip` (decode, convert, encode), `batch_frames` frames per
    `VideoConverter.convert_frames` call; returns a record."""
    import itertools

    from converter.config import ConverterConfig
    from converter.pipeline import VideoConverter
    from faceswap_gan.faces.keyframes import KeyframeDetector, ThreadedMap
    from faceswap_gan.video import VideoReader, VideoWriter

    reader = VideoReader(clip)
    if isinstance(detector, KeyframeDetector):
        detector.start_video(reader.fps)
    recorder = _Recorder(detector)
    config = ConverterConfig(
        image_shape=None, output_type="single", batch_frames=batch_frames
    )
    converter = VideoConverter(model, config, detector=recorder)
    smoothed, kept = [], {}

    def convert(frames):
        results = []
        for output, tracked in converter.convert_frames(frames):
            first = next((t for t in tracked if t.track_id == 0), None)
            box = first.box.copy() if first is not None else np.full(4, np.nan)
            results.append((output, box))
        return results

    frames = iter(reader)
    batches = iter(lambda: list(itertools.islice(frames, batch_frames)), [])
    depth = max(1, 4 // batch_frames)
    outputs = itertools.chain.from_iterable(
        ThreadedMap(convert, batches, depth=depth) if threads else map(convert, batches)
    )
    tic = time.perf_counter()
    with VideoWriter(out_dir / f"{name}.mp4", reader.fps, reader.size) as writer:
        for index, (output, box) in enumerate(outputs):
            writer.write(output)
            smoothed.append(box)
            if index % keep_every == 0:
                kept[index] = output
    seconds = time.perf_counter() - tic
    return {
        "name": name,
        "frames": len(smoothed),
        "seconds": seconds,
        "fps": len(smoothed) / seconds,
        "detect_share": recorder.seconds / seconds,
        "faces": recorder.faces,
        "smoothed": np.stack(smoothed),
        "outputs": kept,
        "counts": dict(getattr(detector, "counts", {})),
    }


def _quality(record, reference, clip_frames, embedder, landmarker):
    """Landmark error, jitter and identity of `record` against `reference`."""
    from faceswap_gan.evaluation import geometry
    from faceswap_gan.faces.alignment import align

    errors_eye, errors_outer, errors_smooth, missing = [], [], [], 0
    # The reference's points averaged over a centred window of 5 frames (0.17 s at
    # 30 fps): a steadier estimate of where the points are than one full detection.
    points = np.stack(
        [f[0].landmarks5 if f else np.full((5, 2), np.nan) for f in reference["faces"]]
    )
    # (Rolled rows wrap around at the ends; only frames 2 .. T-3 are scored.)
    window = np.stack([np.roll(points, shift, 0) for shift in range(-2, 3)])
    smooth = np.nanmean(window, axis=0)
    for index, (fast, full) in enumerate(zip(record["faces"], reference["faces"])):
        if not full:
            continue
        if not fast:
            missing += 1
            continue
        a, b = full[0].landmarks5, fast[0].landmarks5
        distance = np.linalg.norm(a - b, axis=1).mean()
        eye = np.linalg.norm(a[0] - a[1])
        errors_eye.append(distance / eye)
        if 2 <= index < len(points) - 2:
            errors_smooth.append(np.linalg.norm(smooth[index] - b, axis=1).mean() / eye)
        outer = landmarker.detect(clip_frames[index], full[0].box[None])[0]
        errors_outer.append(distance / float(geometry.inter_ocular_distance(outer)))
    raw = np.stack([_first_box(f) for f in record["faces"]])
    same, to_input = [], []
    for index, output in record["outputs"].items():
        full = reference["faces"][index]
        if not full:
            continue
        crops = [
            align(image, full[0].landmarks5, 112)[0]
            for image in (output, reference["outputs"][index], clip_frames[index])
        ]
        e = embedder.embed(np.stack(crops))
        same.append(float(e[0] @ e[1]))
        to_input.append((float(e[0] @ e[2]), float(e[1] @ e[2])))
    to_input = np.array(to_input)
    return {
        "err_eye": float(np.mean(errors_eye)),
        "err_eye_max": float(np.max(errors_eye)),
        "err_outer": float(np.mean(errors_outer)),
        "err_smooth": float(np.mean(errors_smooth)),
        "missing": missing,
        "jitter_raw": geometry.jitter(raw),
        "jitter_smoothed": geometry.jitter(record["smoothed"]),
        "id_same": float(np.mean(same)),
        "id_input": float(to_input[:, 0].mean()),
        "id_input_full": float(to_input[:, 1].mean()),
    }


def _floor(detector, frames) -> float:
    """Full MTCNN vs itself on the frames shifted by one pixel (eye-centre units)."""
    errors = []
    for frame in frames:
        a = detector.detect(frame)
        shifted = np.ascontiguousarray(
            np.pad(frame, ((1, 0), (1, 0), (0, 0)), mode="edge")[:-1, :-1]
        )
        b = detector.detect(shifted)
        if a and b:
            p, q = a[0].landmarks5, b[0].landmarks5 - 1
            errors.append(
                np.linalg.norm(p - q, axis=1).mean() / np.linalg.norm(p[0] - p[1])
            )
    return float(np.mean(errors))


def _landmark_net_points(reference, frames, landmarker) -> tuple[float, float]:
    """The 68-point net's five points vs full MTCNN's (a different point definition).

    The 68-point net (face_api) runs on full detection's box; its five points are
    the two eye centres (means of points 36-41 and 42-47), the nose tip (30) and the
    mouth corners (48, 54). Returns the mean error over the eye-centre distance, raw
    and after removing the clip's mean offset per point (a best-case calibration).
    """
    found = [(f, faces[0]) for f, faces in zip(frames, reference["faces"]) if faces]
    points = np.stack([landmarker.detect(f, face.box[None])[0] for f, face in found])
    five = np.stack(
        [
            points[:, 36:42].mean(1),
            points[:, 42:48].mean(1),
            points[:, 30],
            points[:, 48],
            points[:, 54],
        ],
        1,
    )
    mtcnn = np.stack([face.landmarks5 for _, face in found])
    eye = np.linalg.norm(mtcnn[:, 0] - mtcnn[:, 1], axis=1)
    raw = np.linalg.norm(five - mtcnn, axis=2).mean(1) / eye
    offset = (five - mtcnn).mean(0)
    calibrated = np.linalg.norm(five - offset - mtcnn, axis=2).mean(1) / eye
    return float(raw.mean()), float(calibrated.mean())


def compare(args: argparse.Namespace) -> None:
    """Side-by-side speed and quality of today's detection and the fast one."""
    sys.path.insert(0, str(REPO))
    import keras

    from faceswap_gan.config import PRESETS
    from faceswap_gan.faces.detection import FaceDetector
    from faceswap_gan.faces.identity import build_identity_embedder
    from faceswap_gan.faces.keyframes import KeyframeDetector
    from faceswap_gan.faces.landmarks import LandmarkDetector
    from faceswap_gan.models import FaceSwapGAN
    from faceswap_gan.video import VideoReader

    keras.utils.set_random_seed(0)
    if args.model:
        from faceswap_gan.checkpoints import load_model

        model = load_model(args.model)
    else:
        model = FaceSwapGAN(PRESETS[args.preset])
    full = FaceDetector()
    embedder = build_identity_embedder("mobilefacenet")
    landmarker = LandmarkDetector("face_api")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    clips = [
        (
            "480x480 " + args.clip.name,
            make_input(args.clip, args.frames, work / "short.mp4"),
        )
    ]
    if args.frames_720:
        clips.append(
            (
                "1280x720 " + args.clip_720.name,
                make_720p(args.clip_720, args.frames_720, work / "720p.mp4"),
            )
        )
    for label, clip in clips:
        frames = list(VideoReader(clip))
        keyframes = args.keyframe_seconds
        # (row name, detector, threads, frames per generator pass)
        variants = [
            ("full MTCNN every frame", full, False, 1),
            (
                "keyframe pass every frame",
                KeyframeDetector(full, keyframe_seconds=0),
                False,
                1,
            ),
            (
                f"keyframes every {keyframes} s + sized levels",
                KeyframeDetector(full, keyframe_seconds=keyframes),
                False,
                1,
            ),
            (
                "  + threads (decode|convert|encode)",
                KeyframeDetector(full, keyframe_seconds=keyframes),
                True,
                1,
            ),
        ]
        for batch_frames in args.batch_frames:
            variants.append(
                (
                    f"  + threads + generator on {batch_frames} frames",
                    KeyframeDetector(full, keyframe_seconds=keyframes),
                    True,
                    batch_frames,
                )
            )
        # Warm-up: build every network and trace every graph once.
        warm = work / "warm.mp4"
        make_input(clip, 3, warm)
        for name, detector, threads, batch in variants:
            _run_variant("warm", warm, model, detector, threads, 1, work, batch)
        records = {}
        for repeat in range(args.repeats):
            for name, detector, threads, batch in variants:
                record = _run_variant(
                    f"r{repeat}",
                    clip,
                    model,
                    detector,
                    threads,
                    args.keep_every,
                    work,
                    batch,
                )
                best = records.get(name)
                if best is None or record["fps"] > best["fps"]:
                    records[name] = record
        reference = records[variants[0][0]]
        floor = _floor(full, frames[:: max(1, len(frames) // 10)])
        print(
            f"\n{label}: {len(frames)} frames, best of {args.repeats}; landmark "
            f"floor (full vs full on frames shifted 1 px) {100 * floor:.2f} % of "
            "the eye distance"
        )
        raw, calibrated = _landmark_net_points(reference, frames, landmarker)
        print(
            f"the 68-point net's five points (eye centres, nose tip, mouth corners) "
            f"on full detection's box vs full detection's: {100 * raw:.2f} % of the "
            f"eye distance, {100 * calibrated:.2f} % less the clip's mean offset"
        )
        print(_row(HEADER, (40, 8, 6, 6, 11, 5, 6, 7, 4, 7, 6, 7, 5, 7)))
        for step, (name, *_) in enumerate(variants):
            record = records[name]
            q = _quality(record, reference, frames, embedder, landmarker)
            cells = (
                name,
                f"{record['fps']:.2f}",
                f"{record['fps'] / reference['fps']:.2f}",
                f"{100 * record['detect_share']:.0f}%",
                f"{100 * q['err_eye']:.2f}",
                f"{100 * q['err_eye_max']:.1f}",
                f"{100 * q['err_outer']:.2f}",
                f"{100 * q['err_smooth']:.2f}",
                str(q["missing"]),
                f"{q['jitter_raw']:.2f}",
                f"{q['jitter_smoothed']:.2f}",
                f"{q['id_same']:.3f}",
                f"{q['id_input']:.3f}",
                f"{q['id_input_full']:.3f}",
            )
            print(_row(cells, (40, 8, 6, 6, 11, 5, 6, 7, 4, 7, 6, 7, 5, 7)))
            if record["counts"]:
                print(f"{'':40} detector counts {record['counts']}")
            if args.png_dir:
                _write_pngs(Path(args.png_dir), label, step, record["outputs"])


HEADER = (
    "step",
    "frames/s",
    "x full",
    "detect",
    "lm err eye%",
    "max",
    "outer%",
    "smooth%",
    "miss",
    "jit raw",
    "jit sm",
    "id=full",
    "id>in",
    "full>in",
)


def _row(cells, widths) -> str:
    first, *rest = cells
    return f"{first:{widths[0]}} " + " ".join(
        f"{cell:>{width}}" for cell, width in zip(rest, widths[1:])
    )


def _write_pngs(folder: Path, label: str, step: int, outputs: dict) -> None:
    """Three of the kept converted frames as `<W>x<H>_step<k>_<frame>.png`."""
    from faceswap_gan.images import write_image

    folder.mkdir(parents=True, exist_ok=True)
    items = list(outputs.items())
    for index, image in items[:: max(1, len(items) // 3)]:
        size = label.split()[0]
        write_image(folder / f"{size}_step{step}_{index:04d}.png", image)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=int, default=45, help="short input length")
    parser.add_argument(
        "--preset", default="tiny", help="model preset (random weights)"
    )
    parser.add_argument("--model", help="run/checkpoint folder instead of a preset")
    parser.add_argument("--output-type", default="single")
    parser.add_argument(
        "--compare", action="store_true", help="fast detection vs full, side by side"
    )
    parser.add_argument(
        "--frames-720", type=int, default=60, help="720p clip length (0: skip)"
    )
    parser.add_argument("--clip-720", type=Path, default=DEFAULT_CLIP_720)
    parser.add_argument("--keyframe-seconds", type=float, default=0.25)
    parser.add_argument(
        "--batch-frames",
        type=int,
        nargs="*",
        default=[4],
        help="--compare: also rows with the generator run on this many frames' "
        "faces at once (ConverterConfig.batch_frames)",
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--keep-every", type=int, default=3, help="frames kept for identity"
    )
    parser.add_argument("--work", default="/tmp/convert_speed", help="work files")
    parser.add_argument("--png-dir", help="also write a few converted frames as PNG")
    parser.add_argument(
        "--backends",
        action="store_true",
        help="the Keras model vs its ONNX export run by onnxruntime, alternating "
        "(benchmarks/onnx_speed.py on --clip, --frames, --repeats, --preset/--model)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.compare:
        return compare(args)
    if args.backends:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import onnx_speed

        argv = ["--clip", str(args.clip), "--frames", str(args.frames)]
        argv += ["--repeats", str(args.repeats), "--preset", args.preset]
        return onnx_speed.main(argv + (["--model", args.model] if args.model else []))
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
