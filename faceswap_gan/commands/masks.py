"""`python -m faceswap_gan masks`: eye masks for a folder of face images.

The original's `prep_binary_masks.ipynb` as a command: 68-point landmarks, convex hulls
of both eyes, dilated and blurred; one mask per image under the same file name, all
black where no face is found. Each mask is written atomically (never half a file).

Unreadable images (corrupt, truncated JPEGs, not images) are skipped with a warning
naming them; more than 10 % unreadable stops the command. The output folder must not
be the face folder (nor a link to it, nor hold hard links to the faces): the masks
would replace the faces.

Examples:
    python -m faceswap_gan masks --faces data/a/faces/aligned_faces \\
        --output data/a/faces/binary_masks_eyes
    python -m faceswap_gan masks --faces crops/ --output masks/ \\
        --landmarks face_alignment
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Adds the `masks` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "masks",
        help="write 68-point eye masks for a folder of face images",
        description=__doc__.split("Examples:")[0].split("\n", 2)[2],
        epilog=__doc__.split("Examples:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--faces", required=True, help="folder of face images")
    parser.add_argument(
        "--output",
        required=True,
        help="folder for the masks (not the face folder; created if needed)",
    )
    parser.add_argument(
        "--landmarks",
        default="face_api",
        choices=("face_api", "face_alignment"),
        help="landmark backend: face_api (default, offline) or "
        "face_alignment (FAN; pip install -e .[fan])",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Writes the masks and prints where they went and the counts.

    Returns:
        int. 0 on success. Bad input (a missing folder, too many unreadable images,
        the output being the face folder) raises FaceswapError or OSError, which
        `cli.main` reports in one line (exit code 1).
    """
    from faceswap_gan.faces.masks import make_eye_masks

    report = make_eye_masks(args.faces, args.output, backend=args.landmarks)
    print(
        f"Wrote {report.masks} eye masks for {report.images} images to "
        f"{report.output_dir}."
    )
    if report.no_landmarks:
        shown = ", ".join(report.no_landmarks[:10])
        more = len(report.no_landmarks) - 10
        print(
            f"No face found in {len(report.no_landmarks)} images (black masks): "
            f"{shown}" + (f" and {more} more" if more > 0 else "")
        )
    return 0
