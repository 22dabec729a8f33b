"""`python -m faceswap_gan export`: one direction of a trained model as an ONNX file.

Writes the face transform (an aligned face in, its swap's alpha mask and RGB out; the
computation of `FaceSwapGAN.swap`) as an ONNX graph that onnxruntime runs without
TensorFlow: `convert --backend onnxruntime` and `converter.onnx_backend` use it.

--format onnx (default, .onnx): input `face` (N, S, S, 3) float32 RGB in [-1, 1];
outputs `alpha` (N, S, S, 1) in [0, 1] and `rgb` (N, S, S, 3) RGB in [-1, 1].
--format dfm (.dfm): the layout DeepFaceLive's DFM models and FaceFusion's
deep_swapper load: input `in_face:0` (N, S, S, 3) float32 BGR in [0, 1]; outputs
`out_face_mask:0`, `out_celeb_face:0` (BGR in [0, 1]), `out_celeb_face_mask:0`.
Those hosts crop faces with their own alignment template, so the swap there is only
as good as their crops are close to the ones the model was trained on: train on
faces from `extract --alignment dfl_whole_face` (FaceFusion) or `--alignment
deepfacelive` (DeepFaceLive).

The file is written to a temporary name and renamed when complete; an existing
--output is refused unless --overwrite is given.

Examples:
    python -m faceswap_gan export --model runs/ab --direction AtoB \\
        --output ab.onnx
    python -m faceswap_gan export --model runs/ab/checkpoints/step_0040000 \\
        --direction BtoA --format dfm --output ba.dfm
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Adds the `export` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "export",
        help="export a trained face transform to ONNX (or DeepFaceLive's .dfm)",
        description=__doc__.split("Examples:")[0].split("\n", 2)[2],
        epilog=__doc__.split("Examples:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model", required=True, help="run folder or checkpoint folder"
    )
    parser.add_argument(
        "--direction",
        default="AtoB",
        help="AtoB (A's faces become B, default) | BtoA",
    )
    parser.add_argument(
        "--output", required=True, help="file to write: .onnx, or .dfm for --format dfm"
    )
    parser.add_argument(
        "--format",
        default="onnx",
        help="onnx (default: this project's layout) | dfm (DeepFaceLive / FaceFusion)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing --output"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Exports and prints the file, its tensors and size.

    Returns:
        int. 0 when written. A bad --direction, --format or suffix, or an existing
        --output without --overwrite, raises FaceswapError (checked before the model
        is loaded); a --model that does not exist or holds no checkpoint raises
        FileNotFoundError (`checkpoints.load_model`, naming the path). `cli.main`
        reports either in one line (exit code 1).
    """
    from faceswap_gan.checkpoints import load_model
    from faceswap_gan.errors import FaceswapError
    from faceswap_gan.export import check_options, export_model

    output = check_options(args.output, args.direction, args.format)
    if output.exists() and not args.overwrite:
        raise FaceswapError(
            f"--output {output} exists; pass --overwrite to replace it."
        )
    report = export_model(
        load_model(args.model),
        output,
        direction=args.direction,
        format=args.format,
        overwrite=args.overwrite,
    )
    print(
        f"Wrote {report.path} ({report.format}, {report.direction}, "
        f"{report.image_size} px, {report.bytes / 1e6:.1f} MB): inputs "
        f"{', '.join(report.inputs)}; outputs {', '.join(report.outputs)}."
    )
    return 0
