"""Identity cost of keyframe detection on a trained model: keyframes vs every frame.

Converts a clip with a trained run once per `--keyframe-seconds` value (0 = full MTCNN
on every frame, as v2.2; 0.25 = the default keyframes with MTCNN at the found faces'
sizes in between, `faces.keyframes.KeyframeDetector`), single layout, no label, and
scores each output with the independent identity scorer (MobileFaceNet) as the demo does
(`evaluation.identity_video.swap_identity_per_frame`): per frame, the cosine of the
swapped face and of the source face to the centroid of the target's faces. It prints,
per value, the share of frames whose swapped face is closer to the target than the
source face, and the mean cosines. Each value after the first is then compared with
the first frame by frame (the same frames of the same clip): the mean difference of
the swapped face's cosine and of the "closer" share, with a 95 % interval from a
moving-block bootstrap (blocks of `--block-frames` consecutive frames, since
neighbouring frames are alike; Kuensch 1989). An interval that holds 0 means the clip
cannot tell the two apart.

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
    parser.add_argument(
        "--block-frames",
        type=int,
        default=15,
        help="bootstrap block length in frames (default 15: 0.5 s at 30 fps)",
    )
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
    scores = []
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
            scores.append(score)
    first = scores[0]
    for seconds, score in zip(args.keyframe_seconds[1:], scores[1:]):
        common, i, j = np.intersect1d(first.indices, score.indices, return_indices=True)
        cosine = score.swapped[j] - first.swapped[i]
        closer = (score.swapped[j] > score.source[j]).astype(float) - (
            first.swapped[i] > first.source[i]
        )
        print(
            f"{seconds:.2f} vs {args.keyframe_seconds[0]:.2f} on the {len(common)} "
            f"frames both found, mean difference [95 % interval, block bootstrap "
            f"of {args.block_frames} frames]:"
        )
        for name, values, scale, unit in (
            ("cos swapped", cosine, 1.0, ""),
            ("closer", closer, 100.0, " points"),
        ):
            low, high = block_bootstrap_interval(values, args.block_frames)
            print(
                f"  {name:12} {scale * values.mean():+.3f}{unit} "
                f"[{scale * low:+.3f}, {scale * high:+.3f}]"
            )


def block_bootstrap_interval(
    values, block: int, resamples: int = 4000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of the mean of a series by a moving-block bootstrap.

    Resamples `ceil(T / block)` random runs of `block` consecutive values (Kuensch
    1989, "The jackknife and the bootstrap for general stationary observations"),
    which keeps the correlation of neighbouring video frames that a plain bootstrap
    would ignore (and so understate the spread).

    Args:
        values: `(T,)` float series, T >= 1.
        block: int >= 1, run length (clipped to T).
        resamples: number of bootstrap means.
        level: coverage of the interval, in (0, 1).
        seed: seed of the resampling.

    Returns:
        (low, high) bounds of the mean.
    """
    import numpy as np

    values = np.asarray(values, np.float64)
    count = len(values)
    block = max(1, min(int(block), count))
    runs = -(-count // block)
    starts = np.random.default_rng(seed).integers(
        0, count - block + 1, (resamples, runs)
    )
    index = (starts[..., None] + np.arange(block)).reshape(resamples, -1)[:, :count]
    means = values[index].mean(axis=1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


if __name__ == "__main__":
    main()
