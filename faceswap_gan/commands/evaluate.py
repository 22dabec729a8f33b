"""`python -m faceswap_gan evaluate`: quality and stability report of a trained model.

Measures, on held-out faces of both people resized to the model size: reconstruction
(A->A, B->B: L1, PSNR, SSIM on the whole crop, inside the alpha mask and the eye
masks), identity (cosine margin of swaps towards the target person's centroid and
top-1 retrieval), attribute preservation (68-point landmark error normalised by eye
distance, head-pose difference) and, with --video, the box jitter (raw vs Kalman) and
crop flicker of a converted clip. Writes report.json, report.md and PNG plots
(including the best and worst swaps) to --output.

Identity embedder (--identity-backend): mobilefacenet (default) is an ArcFace-type
MobileFaceNet that training never sees; face_api is dlib's ResNet, the network of the
perceptual loss, so its identity scores of swaps are biased upwards.

Use faces the model was not trained on (e.g. hold out 10% of each extract).

Examples:
    python -m faceswap_gan evaluate --model runs/ab \\
        --faces-a held_out/a --faces-b held_out/b --output eval/
    python -m faceswap_gan evaluate --model runs/x/checkpoints/step_0040000 \\
        --faces-a a/faces/aligned_faces --masks-a a/faces/binary_masks_eyes \\
        --faces-b b/faces/aligned_faces --masks-b b/faces/binary_masks_eyes \\
        --video faceswap_gan/data/samples/person_a.mp4 --max-frames 120 \\
        --max-faces 50 --output eval/
"""

from __future__ import annotations

import argparse
import sys

# As faceswap_gan.faces.identity.IDENTITY_BACKENDS (not imported here: that loads
# TensorFlow before the arguments are parsed; a test checks they agree).
IDENTITY_BACKENDS = ("mobilefacenet", "face_api")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {value}")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Adds the `evaluate` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "evaluate",
        help="quality report of a trained model (reconstruction, identity, "
        "landmarks, video stability)",
        description=__doc__.split("Examples:")[0].split("\n", 2)[2],
        epilog="Examples:" + __doc__.split("Examples:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        required=True,
        help="run folder (uses checkpoints/latest) or checkpoint folder",
    )
    parser.add_argument(
        "--faces-a", required=True, help="folder of held-out face crops of person A"
    )
    parser.add_argument(
        "--faces-b", required=True, help="folder of held-out face crops of person B"
    )
    parser.add_argument(
        "--masks-a",
        default=None,
        help="eye masks of A (same file stems); default: from landmarks",
    )
    parser.add_argument("--masks-b", default=None, help="eye masks of B")
    parser.add_argument(
        "--video",
        default=None,
        help="a clip of person A to convert A->B for video stability",
    )
    parser.add_argument(
        "--max-frames",
        type=_positive,
        default=90,
        help="frames of --video to convert (default 90)",
    )
    parser.add_argument(
        "--max-faces",
        type=_positive,
        default=None,
        help="use at most the first N faces per person (default all)",
    )
    parser.add_argument(
        "--identity-backend",
        choices=IDENTITY_BACKENDS,
        default="mobilefacenet",
        help="identity embedder (default mobilefacenet: independent of training; "
        "face_api shares its network with the perceptual loss, so it is biased)",
    )
    parser.add_argument(
        "--output",
        required=True,
        help="folder for report.json, report.md and the plots",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs the evaluation and prints the headline figures.

    Returns:
        int. 0 on success, 1 on bad input (reason on stderr).
    """
    from converter.stability import video_stability
    from faceswap_gan.evaluation import evaluate

    if (args.masks_a is None) != (args.masks_b is None):
        print(
            "evaluate: error: give both --masks-a and --masks-b, or neither.",
            file=sys.stderr,
        )
        return 1
    report = evaluate(
        args.model,
        args.faces_a,
        args.faces_b,
        args.output,
        args.masks_a,
        args.masks_b,
        args.video,
        args.max_faces,
        args.max_frames,
        progress=True,
        identity_backend=args.identity_backend,
        video_stability=video_stability,
    )
    print(headline(report))
    print(f"Wrote {args.output}/report.json and report.md.")
    return 0


def headline(report: dict) -> str:
    """A few lines with the main figures of an `evaluate` report."""
    rec, ident, attr = (
        report["reconstruction"],
        report["identity"],
        report["attributes"],
    )
    lines = [
        "reconstruction PSNR dB (whole / alpha / eyes): "
        + "; ".join(
            f"{p} {rec[p]['whole']['psnr']:.2f} / {rec[p]['alpha']['psnr']:.2f} / "
            f"{rec[p]['eyes']['psnr']:.2f}"
            for p in rec
        ),
        "identity margin (top-1 centroid / nearest): "
        + "; ".join(
            f"{d} {v['margin_mean']:+.3f} ({v['retrieval_top1_centroid']:.2f} / "
            f"{v['retrieval_top1_nearest']:.2f})"
            for d, v in ident.items()
        ),
        "landmark error / IOD, pose diff deg: "
        + "; ".join(
            f"{d} {v['landmark_error_mean']:.3f}, {v['pose_difference_deg_mean']:.2f}"
            for d, v in attr.items()
        ),
        "mean alpha: "
        + ", ".join(f"{k} {v:.3f}" for k, v in report["alpha_coverage"].items()),
    ]
    video = report.get("video")
    if video:
        lines.append(
            f"video: box jitter raw {video['jitter_raw_px']:.2f} -> smoothed "
            f"{video['jitter_smoothed_px']:.2f} px/frame^2 "
            f"(x{video['jitter_ratio']:.2f})"
            f"; crop change input {video['frame_change_input']:.4f}, swapped "
            f"{video['frame_change_swapped']:.4f} (x{video['frame_change_ratio']:.2f})"
        )
    return "\n".join(lines)
