"""`python -m faceswap_gan extract`: faces, aligned faces and eye masks from a video.

Examples:
    python -m faceswap_gan extract --input clip.mp4 --output data/person_a --every 6
    python -m faceswap_gan extract --input photos/ --output data/person_b --size 128
    python -m faceswap_gan extract --input party.mp4 --output data/a --reference a.jpg
    python -m faceswap_gan extract --input clip2.mp4 --output data/a --append
    python -m faceswap_gan extract --input clip.mp4 --output data/a_dfm \\
        --alignment dfl_whole_face
"""

from __future__ import annotations

import argparse


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {text}.")
    return value


def _threshold(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1); got {text}.")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Adds the `extract` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "extract",
        help="detect, align and save the faces of a video or an image folder",
        description=(
            "Detects faces with MTCNN, aligns each on its own five landmarks and "
            "writes OUTPUT/faces/{raw_faces,aligned_faces,binary_masks_eyes}/"
            "frame{N}face{i}.jpg plus OUTPUT/faces/faces.csv (boxes, scores, "
            "landmarks): the training data layout of faceswap-GAN. An OUTPUT that "
            "already holds faces is refused unless --append or --overwrite is given. "
            "Images and faces.csv are written atomically (a kill never leaves half a "
            "file). Unreadable images of an input folder (corrupt, truncated JPEGs, "
            "not images) are skipped with a warning naming them; more than 10% "
            "unreadable stops the command."
        ),
        epilog=__doc__.split("Examples:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--input",
        required=True,
        help="a video file (any format FFmpeg reads) or an image folder",
    )
    parser.add_argument(
        "--output", required=True, help="output folder (faces go to OUTPUT/faces/)"
    )
    earlier = parser.add_mutually_exclusive_group()
    earlier.add_argument(
        "--append",
        action="store_true",
        help="OUTPUT already holds faces: keep them and add the new ones, named "
        "{input stem}_frame{N}face{i}.jpg (-2, -3, ... if taken); faces.csv lists "
        "the old and the new faces",
    )
    earlier.add_argument(
        "--overwrite",
        action="store_true",
        help="OUTPUT already holds faces: remove them (the images of the three "
        "folders and faces.csv, no other files) and extract anew",
    )
    parser.add_argument(
        "--every",
        type=_positive_int,
        default=1,
        help="use every Nth frame (default 1; the original used 6)",
    )
    parser.add_argument(
        "--reference",
        default=None,
        help="photo of the wanted person: keep only faces whose face "
        "embedding is within 0.6 (L2) of it",
    )
    parser.add_argument(
        "--detection-threshold",
        type=_threshold,
        default=0.8,
        help="MTCNN third-stage confidence threshold in (0, 1) (default 0.8)",
    )
    parser.add_argument(
        "--min-face-area",
        type=float,
        default=35 * 35,
        help="drop faces smaller than this many pixels^2 (default 1225 = 35x35)",
    )
    parser.add_argument(
        "--auto-downscale",
        action="store_true",
        help="detect on a /2, /3 or /4 copy of frames from 858x480, "
        "1280x720 or 1920x1080 pixels up (faster)",
    )
    parser.add_argument(
        "--size",
        type=_positive_int,
        default=256,
        help="side of the aligned crops and masks in pixels (default 256)",
    )
    parser.add_argument(
        "--crude-masks",
        action="store_true",
        help="the original's rectangular eye masks from the MTCNN eye "
        "points instead of 68-point landmark masks",
    )
    parser.add_argument(
        "--landmarks",
        default="face_api",
        choices=("face_api", "face_alignment"),
        help="68-point landmark backend for the eye masks (default face_api, offline)",
    )
    parser.add_argument(
        "--alignment",
        default="default",
        choices=("default", "dfl_whole_face", "deepfacelive"),
        help="crop framing: default (this project's; what convert uses) | "
        "dfl_whole_face (FaceFusion's crop for .dfm models: train on these to "
        "export --format dfm for FaceFusion's deep_swapper) | deepfacelive "
        "(DeepFaceLive's 68-point aligner at its default coverage 2.2)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs the extraction and prints where the outputs went.

    Returns:
        int. 0 on success. Bad input (a missing or unreadable file, an empty folder,
        an earlier extract in OUTPUT without --append/--overwrite, a file where a
        folder belongs) raises FaceswapError or OSError, which `cli.main` reports in
        one line (exit code 1).
    """
    from faceswap_gan.faces.detection import FaceDetector
    from faceswap_gan.faces.extract import SUBFOLDERS, extract_faces

    detector = FaceDetector(
        detection_threshold=args.detection_threshold,
        min_face_area=args.min_face_area,
        auto_downscale=args.auto_downscale,
    )
    report = extract_faces(
        args.input,
        args.output,
        every=args.every,
        detector=detector,
        reference=args.reference,
        size=args.size,
        crude_masks=args.crude_masks,
        landmark_backend=args.landmarks,
        alignment=args.alignment,
        append=args.append,
        overwrite=args.overwrite,
    )
    print(
        f"Searched {report.frames_sampled} frames: {report.faces} faces saved, "
        f"{report.frames_without_faces} frames without a face"
        + (
            f", {report.rejected_by_reference} faces of other people skipped"
            if args.reference
            else ""
        )
        + "."
    )
    if report.previous_faces:
        print(f"Kept the {report.previous_faces} faces of the earlier extract.")
    if report.removed:
        print(f"Removed {report.removed} files of the earlier extract.")
    for sub in SUBFOLDERS:
        print(f"  {report.output_dir / sub}")
    print(f"  {report.csv_path}")
    return 0
