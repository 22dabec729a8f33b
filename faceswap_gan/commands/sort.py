"""`python -m faceswap_gan sort`: score a folder of faces, move outliers to rejected/.

Scores every face image of --faces by identity (MobileFaceNet; the median cosine
distance to the --reference photos' faces, or to the folder's other faces when no
photo is given, so the person on most faces is kept), sharpness (variance of the
Laplacian, relative to the folder's median), head pose (yaw and pitch from the 68
landmarks) and near-duplicates (the same image saved twice). Writes FACES/scores.csv
(one row per face: the scores, the checks failed, the verdict) and moves each outlier
to FACES/rejected/<reason>/ (blur, pose, identity, duplicate; a face failing several
goes to the first of these), its mask from --masks to MASKS/rejected/<reason>/.
Nothing is deleted or overwritten; a second run leaves rejected/ alone. --dry-run
writes scores.csv and lists what would move, moving nothing. Unreadable images are
skipped with a warning (more than 10 % stops the command).

Examples:
    python -m faceswap_gan sort --faces data/a/faces/aligned_faces \\
        --masks data/a/faces/binary_masks_eyes --reference a.jpg --dry-run
    python -m faceswap_gan sort --faces crops/ --max-yaw 30
"""

from __future__ import annotations

import argparse

from faceswap_gan.faces import curation


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Adds the `sort` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "sort",
        help="score a folder of faces and move outliers to rejected/<reason>/",
        description=__doc__.split("Examples:")[0].split("\n", 2)[2],
        epilog=__doc__.split("Examples:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--faces", required=True, help="folder of face images")
    parser.add_argument(
        "--reference",
        nargs="+",
        default=None,
        metavar="PHOTO",
        help="one or more photos of the person to keep (default: the person on "
        "most of the faces)",
    )
    parser.add_argument(
        "--masks",
        default=None,
        help="the faces' mask folder (same file names), kept in step",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="write scores.csv and list what would move; move nothing",
    )
    limits = parser.add_argument_group("thresholds")
    limits.add_argument(
        "--max-identity-distance",
        type=float,
        default=curation.IDENTITY_MAX_DISTANCE,
        help="cosine distance in (0, 2] above which a face is another person "
        f"(default {curation.IDENTITY_MAX_DISTANCE}, FaceFusion's; as convert's "
        "--similarity-threshold 0.4)",
    )
    limits.add_argument(
        "--min-sharpness-ratio",
        type=float,
        default=curation.BLUR_MIN_RATIO,
        help="sharpness / the folder's median in [0, 1) below which a face is "
        f"blurred (default {curation.BLUR_MIN_RATIO}; 0: no blur check)",
    )
    limits.add_argument(
        "--max-yaw",
        type=float,
        default=curation.MAX_YAW,
        help=f"|yaw| limit in degrees, (0, 180] (default {curation.MAX_YAW:g})",
    )
    limits.add_argument(
        "--max-pitch",
        type=float,
        default=curation.MAX_PITCH,
        help=f"|pitch| limit in degrees, (0, 90] (default {curation.MAX_PITCH:g})",
    )
    limits.add_argument(
        "--max-duplicate-distance",
        type=float,
        default=curation.DUPLICATE_MAX_DISTANCE,
        help="cosine distance in [0, 2] within which two faces may be duplicates "
        f"(default {curation.DUPLICATE_MAX_DISTANCE})",
    )
    limits.add_argument(
        "--max-duplicate-rms",
        type=float,
        default=curation.DUPLICATE_MAX_RMS,
        help="RMS grey-level difference of their 64x64 thumbnails, [0, 255], within "
        f"which they are (default {curation.DUPLICATE_MAX_RMS}: the same image "
        "saved again)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Scores, moves (unless --dry-run) and prints the moves and counts.

    Returns:
        int. 0 on success. Bad input (an empty or missing folder, a reference photo
        without a face, masks that do not match, out-of-range thresholds) raises
        FaceswapError or OSError, which `cli.main` reports in one line (exit 1).
    """
    thresholds = curation.CurationThresholds(
        max_identity_distance=args.max_identity_distance,
        min_sharpness_ratio=args.min_sharpness_ratio,
        max_yaw=args.max_yaw,
        max_pitch=args.max_pitch,
        max_duplicate_distance=args.max_duplicate_distance,
        max_duplicate_rms=args.max_duplicate_rms,
    )
    report = curation.curate_faces(
        args.faces,
        references=args.reference,
        masks_dir=args.masks,
        dry_run=args.dry_run,
        thresholds=thresholds,
        progress=True,
    )
    verb = "Would move" if report.dry_run else "Moved"
    for source, destination in report.moves + report.mask_moves:
        print(f"{verb} {source} -> {destination}")
    counts = report.counts()
    rejected = ", ".join(f"{counts[r]} {r}" for r in curation.REASONS)
    against = (
        "the reference photos"
        if report.reference == "photos"
        else "the folder's median identity"
    )
    print(
        f"Scored {len(report.scores) - counts['unreadable']} faces against {against}: "
        f"{counts['kept']} kept, {len(report.moves)} "
        f"{'to move' if report.dry_run else 'moved'} ({rejected})"
        + (
            f", {counts['unreadable']} unreadable skipped"
            if counts["unreadable"]
            else ""
        )
        + f". Scores: {report.scores_csv}"
        + (" (dry run: nothing moved)." if report.dry_run else ".")
    )
    return 0
