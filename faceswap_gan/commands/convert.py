"""`python -m faceswap_gan convert`: swap the faces of a video with a trained model.

Reads the video frame by frame, detects faces (MTCNN), smooths their boxes per face
(Kalman), aligns, swaps (A->B by default), colour-matches and blends them back, and
writes an H.264 MP4 with the input's audio copied unchanged. The output is marked as
synthetic media in its metadata and, unless --no-watermark, with a small visible label.
Swap only faces of people who consented, and never use the output to deceive.

Every ConverterConfig field has a flag; --config FILE loads a JSON config (as written by
`ConverterConfig.to_json`) and explicit flags override it. image_shape defaults to the
model's input size.

Output: --output must end in .mp4, .mov, .m4v or .mkv and must not be the input (nor a
link to it). An existing --output is refused unless --overwrite is given. The video is
written to a hidden temporary file beside --output and renamed onto it only when
complete, so an error, a full disk or Ctrl-C leaves no half-written video and keeps the
previous one. These checks run before the model is loaded, and also with --dry-run,
which writes nothing.

Exit code: 0 when the video is written, 1 (with a one-line reason) on bad options, an
unreadable input or an output that cannot be written. An input that ends early
(truncated or damaged) is converted up to where it ends, with exit code 0 and a
`convert: warning:` line saying how many of the announced frames were reached and why.

Output control: --codec h264 (default) | h265 | lossless (FFV1 RGB: the frames are
stored exactly; .mkv only), --crf and --preset for h264/h265, --frames-dir DIR to also
save every output frame as PNG, --start/--end SECONDS to convert a part (the audio is
cut to the same span). Every output keeps the input's audio and the synthetic-media
tags.

Batch: when --input is a folder, every video in it is converted into the --output
folder (one summary line per file); existing outputs are skipped unless --overwrite;
a failing file does not stop the others; the exit code is 1 if any failed.

Swap only one person: --reference PHOTO [PHOTO ...] gives photos of that person (one
face each). A first pass detects, tracks and identifies every face (MobileFaceNet, the
evaluation's scorer); each face track is swapped on all its frames or on none, by a
vote of its frames (cosine similarity >= --similarity-threshold, default 0.4); a
second pass swaps. The report lists every track: frames, mean similarity, swapped.

Examples:
    python -m faceswap_gan convert --model runs/ab \\
        --input faceswap_gan/data/samples/person_a.mp4 --output swapped.mp4
    python -m faceswap_gan convert --model runs/ab --input two_people.mp4 \\
        --output one_swapped.mp4 --reference photo_of_her.jpg
    python -m faceswap_gan convert --model runs/ab --input a.mp4 --output a.mkv \\
        --codec lossless --start 2 --end 4.5 --frames-dir frames/
    python -m faceswap_gan convert --model runs/ab --input clips/ --output out/
    python -m faceswap_gan convert --backend onnxruntime --model ab_AtoB.onnx \\
        --input a.mp4 --output b.mp4
    python -m faceswap_gan convert --model runs/ab --input a.mp4 \\
        --output b.mp4 --output-type single --color-correction adain_xyz \\
        --roi-coverage 0.93 --max-frames 300
    python -m faceswap_gan convert --model runs/x/checkpoints/step_0040000 \\
        --input a.mp4 --output eyes.mp4 --segmentation eyes_only --config conv.json
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

# (flag dest, type, help) for the ConverterConfig fields that take a value.
_VALUE_FIELDS = (
    ("image_shape", int, "model input side S: 64, 128 or 256 (default: the model's)"),
    (
        "bbox_moving_avg_coef",
        float,
        "[0, 1] weight of the previous box in the moving average (default 0.65)",
    ),
    (
        "min_face_area",
        int,
        ">= 0: drop faces smaller than this many px^2 (default 1225)",
    ),
    (
        "kf_noise_coef",
        float,
        "> 0: Kalman process noise; x10 if tracking lags, /10 if boxes jitter "
        "(default 1e-3)",
    ),
    (
        "color_correction",
        str,
        "histmatch | adain | adain_xyz | none (default histmatch)",
    ),
    (
        "keyframe_seconds",
        float,
        ">= 0: seconds between keyframes, which look for new faces; in between, "
        "MTCNN looks only at the sizes of the faces found (about 3x faster, the "
        "same boxes and points); 0 = full detection on every frame, as v2.2 "
        "(default 0.25)",
    ),
    (
        "batch_frames",
        int,
        "[1, 64] frames converted together, their faces in one generator pass "
        "(fewer for frames above 1080p); 1 = frame by frame, as v2.2 (default 8)",
    ),
    ("detection_threshold", float, "(0, 1) MTCNN third-stage threshold (default 0.8)"),
    (
        "roi_coverage",
        float,
        "(0, 1): crop int(S*(1-c)) px from each side of the aligned face (default 0.9)",
    ),
    ("enhance", float, "[0, 1] contrast boost, 0-0.4 useful (default 0)"),
    (
        "alignment",
        str,
        "default | dfl_whole_face | deepfacelive: the crop framing the model was "
        "trained on (as `extract --alignment`; default: default)",
    ),
    (
        "output_type",
        str,
        "single (result) | combined (source|result) | triple (+ mask heatmap) "
        "(default triple)",
    ),
    ("direction", str, "AtoB (A's faces become B) | BtoA (default AtoB)"),
    (
        "codec",
        str,
        "h264 | h265 | lossless (FFV1 RGB, exact frames; needs a .mkv output) "
        "(default h264)",
    ),
    (
        "crf",
        int,
        "[0, 51] h264/h265 quality: lower is better and bigger; 18 looks "
        "lossless (default 18)",
    ),
    (
        "preset",
        str,
        "h264/h265 speed: ultrafast ... medium ... veryslow (default veryfast)",
    ),
    (
        "similarity_threshold",
        float,
        "[-1, 1] with --reference: cosine similarity (MobileFaceNet) at or above "
        "which a face votes for the reference person (default 0.4)",
    ),
    (
        "segmentation",
        str,
        "all | eyes_only | eyebrows_only | nose_only | mouth_only | "
        "eyes_and_eyebrows | "
        "eyes_and_mouth | eyes_and_nose | eyebrows_and_nose | mouth_and_nose | "
        "mouth_and_eyebrows: the face parts that are swapped (default all)",
    ),
)
_BOOL_FIELDS = (
    ("use_smoothed_bbox", "smooth face boxes over frames (default on)"),
    ("use_kalman_filter", "Kalman smoothing; off = moving average (default on)"),
    ("use_auto_downscaling", "downscale large frames before detection (default off)"),
    ("watermark", "draw a small visible SYNTHETIC label (default on)"),
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Adds the `convert` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "convert",
        help="swap the faces of a video with a trained model (audio kept)",
        description=__doc__.split("Examples:")[0].split("\n", 2)[2],
        epilog="Examples:" + __doc__.split("Examples:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        required=True,
        help="run folder (uses its latest checkpoint) or checkpoint folder; with "
        "--backend onnxruntime, a file written by `export` (.onnx or .dfm)",
    )
    parser.add_argument(
        "--backend",
        default="keras",
        choices=("keras", "onnxruntime"),
        help="keras (default) | onnxruntime: run the generator from an exported "
        "file without building the Keras model; the file's direction is used "
        "unless --direction says otherwise (then they must agree)",
    )
    parser.add_argument(
        "--input",
        required=True,
        help="video with the faces to replace, or a folder: every video in it "
        "is converted into the --output folder",
    )
    parser.add_argument(
        "--output",
        required=True,
        help="output video: .mp4, .mov, .m4v or .mkv (not the input); a folder "
        "when --input is one",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --output if it exists (default: refuse; in a batch: skip)",
    )
    parser.add_argument(
        "--start",
        type=float,
        default=None,
        metavar="SECONDS",
        help="start at this time of the input (audio cut to match)",
    )
    parser.add_argument(
        "--end",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop at this time of the input (default: its end)",
    )
    parser.add_argument(
        "--frames-dir",
        default=None,
        metavar="DIR",
        help="also write every output frame as DIR/frame_000000.png ... (in a "
        "batch: DIR/<video name>/)",
    )
    parser.add_argument("--config", help="JSON file of ConverterConfig fields")
    parser.add_argument(
        "--max-frames",
        type=int,
        default=None,
        help="convert only the first N frames (audio cut to match)",
    )
    parser.add_argument(
        "--landmarks",
        default="face_api",
        choices=("face_api", "face_alignment"),
        help="68-point landmark backend for --segmentation other than "
        "all (default face_api, offline)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check the paths, print the resolved config and the video's "
        "properties, then stop (writes nothing)",
    )
    options = parser.add_argument_group("ConverterConfig fields (override --config)")
    options.add_argument(
        "--reference",
        nargs="+",
        default=None,
        metavar="PHOTO",
        help="swap only this person: photos showing one face each. Faces are "
        "tracked and each whole track is swapped or kept by a vote of its frames "
        "(default: swap every face)",
    )
    for name, type_, help_ in _VALUE_FIELDS:
        options.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=type_,
            default=None,
            metavar={int: "N", float: "X"}.get(type_, "NAME"),
            help=help_,
        )
    for name, help_ in _BOOL_FIELDS:
        options.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            default=None,
            action=argparse.BooleanOptionalAction,
            help=help_,
        )
    return parser


def resolve_config(args: argparse.Namespace):
    """ConverterConfig from --config (if any) with the explicit flags on top.

    image_shape stays None (the model's size) unless the file or --image-shape sets
    it.

    Args:
        args: parsed arguments of `add_parser`'s parser.

    Raises:
        FileNotFoundError, ValueError: a missing/invalid file or an invalid value.
    """
    from converter.config import ConverterConfig

    data = {}
    if args.config:
        ConverterConfig.from_json(args.config)  # Validates, with clear errors.
        with open(args.config) as file:
            data = json.load(file)
    fields = [name for name, _, _ in _VALUE_FIELDS] + [name for name, _ in _BOOL_FIELDS]
    fields.append("reference")
    data.update(
        {
            name: getattr(args, name)
            for name in fields
            if getattr(args, name) is not None
        }
    )
    return ConverterConfig.from_dict(data)


def run(args: argparse.Namespace) -> int:
    """Converts the video and prints the report; warnings go to stderr as
    `convert: warning: ...` lines.

    Returns:
        int. 0 when the video was written (also from an input that ended early: a
        warning says so) or the dry run passed. With an --input folder: 1 if any
        video failed (the others are still converted), else 0.

    Raises:
        FaceswapError: bad options or config, an unreadable input, an output with a
            suffix other than .mp4/.mov/.m4v/.mkv, the output is the input, or it
            exists without --overwrite (checked before the model is loaded).
        OSError: a missing file, or the output cannot be written (full disk...).
    """
    from pathlib import Path

    from converter.pipeline import (
        check_frames_dir,
        frame_span,
    )
    from faceswap_gan.video import VideoReader, check_codec, check_output

    config = resolve_config(args)
    if Path(args.input).is_dir():
        return _run_folder(args, config)
    check_codec(args.output, config.codec, config.crf, config.preset)
    reader = VideoReader(args.input)
    check_output(args.output, [reader.path], overwrite=args.overwrite)
    frame_span(reader, args.start, args.end)
    if args.frames_dir is not None:
        check_frames_dir(args.frames_dir, args.overwrite)
    if args.dry_run:
        print(json.dumps(config.to_dict(), indent=2))
        print(
            f"{args.input}: {reader.size[0]}x{reader.size[1]}, {reader.frame_count}"
            f" frames, {float(reader.fps):.3f} fps, audio: {reader.has_audio}"
        )
        return 0

    converter = _converter(args, config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        report = converter.convert(
            args.input,
            args.output,
            max_frames=args.max_frames,
            progress=not args.no_progress,
            overwrite=args.overwrite,
            start=args.start,
            end=args.end,
            frames_dir=args.frames_dir,
        )
    for warning in caught:
        if issubclass(warning.category, UserWarning):  # Ours: one line each.
            text = " ".join(str(warning.message).split())
            print(f"convert: warning: {text}", file=sys.stderr)
        else:
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    print(report.summary())
    print(f"Wrote {report.output_path} (marked as synthetic media).")
    return 0


def _converter(args, config):
    """Loads the model (Keras, or an exported file with --backend onnxruntime) and
    builds the VideoConverter (prints the config).

    Raises:
        FaceswapError: the exported file holds the other direction than --direction
            (or the --config file's).
    """
    import dataclasses

    from converter.pipeline import VideoConverter

    if args.backend == "onnxruntime":
        from converter.onnx_backend import OnnxFaceModel
        from faceswap_gan.errors import FaceswapError

        model = OnnxFaceModel(args.model)
        if model.direction != config.direction.name:
            if args.direction is not None or args.config:
                raise FaceswapError(
                    f"{args.model} holds the {model.direction} transform; the "
                    f"direction asked is {config.direction.name}. Export that "
                    f"direction, or leave --direction out."
                )
            config = dataclasses.replace(config, direction=model.direction)
    else:
        from faceswap_gan.checkpoints import load_model

        model = load_model(args.model)
    landmarks = None
    if config.segmentation.name != "ALL":
        from faceswap_gan.faces.landmarks import LandmarkDetector

        landmarks = LandmarkDetector(args.landmarks)
    print(json.dumps(config.to_dict()))
    return VideoConverter(model, config, landmark_detector=landmarks)


def _run_folder(args, config) -> int:
    """Batch: every video of the --input folder into the --output folder.

    Prints one line per file (converted, skipped or failed) and a total.

    Returns:
        int. 0 when no file failed (skipped ones do not count), else 1.
    """
    from converter.pipeline import folder_outputs

    pairs = folder_outputs(args.input, args.output, config.codec)
    if args.dry_run:
        print(json.dumps(config.to_dict(), indent=2))
        for source, target in pairs:
            state = "exists" if target.exists() else "new"
            print(f"{source} -> {target} ({state})")
        return 0
    converter = _converter(args, config)
    items = converter.convert_folder(
        args.input,
        args.output,
        overwrite=args.overwrite,
        log=print,
        frames_dir=args.frames_dir,
        max_frames=args.max_frames,
        progress=not args.no_progress,
        start=args.start,
        end=args.end,
    )
    counts = {state: 0 for state in ("converted", "skipped", "failed")}
    for item in items:
        counts[item.status] += 1
    print(
        f"{len(items)} videos: {counts['converted']} converted, "
        f"{counts['skipped']} skipped (exist; --overwrite replaces), "
        f"{counts['failed']} failed."
    )
    return 1 if counts["failed"] else 0
