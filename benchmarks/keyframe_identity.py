"""Identity cost of keyframe detection on a trained model: keyframes vs every frame.

Converts a clip with a trained run once per `--keyframe-seconds` value (0 = full MTCNN
on every frame, as v2.2; 0.25 = the default keyframes with ONet-tracked faces in
between, `faces.keyframes.KeyframeDetector`), single layout, no label, and scores each
output with the independent identity scorer (MobileFaceNet) as the demo does
(`evaluation.identity_video.swap_identity_per_frame`): per frame, the cosine of the
swapped face and of the source face to the centroid of the target's faces. It prints,
per value, the share of frames whose swapped face is closer to the target than the
source face, and the mean cosines.

Defaults use the demo's folder (`python -m faceswap_gan demo` writes
`demo_output/run-lite` and `demo_output/faces_b/faces/aligned_faces`) and the bundled
clip of person A, converted A to B.

Usage:
    python benchmarks/keyframe_identity.py
    python benchmarks/keyframe_identity.py --model runs/ab --clip a.mp4 \\
        --target-faces faces_b --keyframe-seconds 0 0.25 0.5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    sys.path.insert(0, str(REPO))
    from faceswap_gan.demo import SAMPLE_A

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("demo_output/run-lite"))
    parser.add_argument("--clip", type=Path, default=SAMPLE_A)
    parser.add_argument(
        "--target-faces",
        type=Path,
        default=Path("demo_output/faces_b/faces/aligned_faces"),
        help="folder of the target person's face crops",
    )
    parser.add_argument("--direction", default="AtoB", choices=("AtoB", "BtoA"))
    parser.add_argument(
        "--keyframe-seconds", type=float, nargs="+", default=[0.0, 0.25]
    )
    parser.add_argument("--max-frames", type=int, default=None)
    args = parser.parse_args(argv)

    import numpy as np

    from converter.config import ConverterConfig
    from converter.pipeline import VideoConverter
    from faceswap_gan.checkpoints import load_model
    from faceswap_gan.evaluation.identity_video import swap_identity_per_frame
    from faceswap_gan.faces.identity import build_identity_embedder
    from faceswap_gan.images import list_images, read_image

    model = load_model(args.model)
    embedder = build_identity_embedder("mobilefacenet")
    target = np.stack([read_image(path) for path in list_images(args.target_faces)])
    print(
        f"{args.model} on {args.clip.name} ({args.direction}), target "
        f"{len(target)} faces of {args.target_faces}"
    )
    print(
        f"{'keyframe_seconds':>17} {'closer':>7} {'cos swapped':>12} {'cos source':>11}"
    )
    with tempfile.TemporaryDirectory() as work:
        for seconds in args.keyframe_seconds:
            config = ConverterConfig(
                output_type="single",
                direction=args.direction,
                watermark=False,
                keyframe_seconds=seconds,
            )
            video = Path(work) / f"keyframes_{seconds}.mp4"
            VideoConverter(model, config).convert(
                args.clip, video, max_frames=args.max_frames, progress=False
            )
            score = swap_identity_per_frame(
                args.clip, video, target, embedder, max_frames=args.max_frames
            )
            print(
                f"{seconds:17.2f} {100 * score.closer_fraction:6.1f}% "
                f"{score.swapped.mean():12.3f} {score.source.mean():11.3f}"
                f"   ({len(score.indices)} frames with a face)",
                flush=True,
            )


if __name__ == "__main__":
    main()
