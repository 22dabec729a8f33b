"""Swap quality after a short training run on the two bundled people.

Method:
1. Extract faces from `faceswap_gan/data/samples/person_a.mp4` and `person_b.mp4`
   with `faceswap_gan.faces.extract.extract_faces` (every 2nd frame; aligned 256-px
   crops and 68-point eye masks). Reused from `--work` when already there.
2. Hold out the last 10% of each person's faces by frame order (a contiguous tail of
   the clip: neighbouring frames are near duplicates, so a random split would leak).
3. Train the "lite" preset (`TrainConfig.from_preset("lite")`: 64 px, lite capacity,
   the Colab demo schedule with the face_api perceptual loss, batch 4) on the rest
   for `--iterations` steps on this machine.
4. Evaluate the trained model and, as a baseline, the same architecture untrained,
   with `faceswap_gan.evaluation.evaluate` on the held-out faces (and, for the trained
   model, `--frames` frames of person_a.mp4 converted A->B for video stability).
   Identity is scored with `--identity-backend` (default mobilefacenet, which
   training never sees; face_api is the perceptual loss's own network, so its
   margins of the trained swaps are biased upwards).
5. Print the figures and the trained/untrained differences; the reports (JSON,
   Markdown, plots) stay under `--work`.

The differences (trained - untrained PSNR, identity margin) and ratios (smoothed/raw
jitter, swapped/input crop change) are the figures to compare between machines; a
few hundred iterations is far from a usable swap (the original trains 40k).

Usage:
    python benchmarks/quality.py                       # 200 iterations
    python benchmarks/quality.py --iterations 50 --frames 30 --work /tmp/quality
    python benchmarks/quality.py --identity-backend face_api   # the biased scorer
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "faceswap_gan" / "data" / "samples"
HELD_OUT = 0.1  # Fraction of each person's faces kept out of training.


def extract(person: str, work: Path) -> Path:
    """`work/person/faces` with aligned_faces and binary_masks_eyes (cached)."""
    from faceswap_gan.faces.extract import extract_faces

    root = work / person / "faces"
    if not (root / "faces.csv").is_file():
        extract_faces(
            SAMPLES / f"person_{person}.mp4", work / person, every=2, progress=False
        )
    return root


def split(root: Path, work: Path, person: str) -> dict:
    """Copies faces and masks into train/ and held_out/ folders; returns their paths."""
    from faceswap_gan.images import list_images

    names = sorted(
        (p.name for p in list_images(root / "aligned_faces")),
        key=lambda n: int(n[5:].split("face")[0]),
    )  # frame{N}face{i}.jpg
    if len(names) < 10:
        raise SystemExit(f"Only {len(names)} faces of {person}; need at least 10.")
    cut = len(names) - max(1, round(HELD_OUT * len(names)))
    folders = {}
    for part, chosen in (("train", names[:cut]), ("held_out", names[cut:])):
        for kind, source in (
            ("faces", "aligned_faces"),
            ("masks", "binary_masks_eyes"),
        ):
            target = work / part / person / kind
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            for name in chosen:
                shutil.copy2(root / source / name, target / name)
            folders[(part, kind)] = target
    return folders


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--iterations",
        type=int,
        default=200,
        help="training iterations of the lite preset (default 200)",
    )
    parser.add_argument(
        "--frames",
        type=int,
        default=60,
        help="frames of person_a.mp4 converted for stability (60)",
    )
    parser.add_argument(
        "--work",
        default=None,
        help="work folder (faces, run, reports); default: a temp dir",
    )
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument(
        "--identity-backend",
        choices=("mobilefacenet", "face_api"),
        default="mobilefacenet",
        help="identity embedder (face_api is the perceptual loss's net: biased)",
    )
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="quality_"))
    work.mkdir(parents=True, exist_ok=True)
    tic = time.time()
    folders = {p: split(extract(p, work), work, p) for p in ("a", "b")}
    counts = {
        p: (
            len(list(f[("train", "faces")].iterdir())),
            len(list(f[("held_out", "faces")].iterdir())),
        )
        for p, f in folders.items()
    }
    print(
        f"faces (train, held out): A {counts['a']}, B {counts['b']}; extraction "
        f"{time.time() - tic:.0f} s"
    )
    report_trained, report_untrained = train_and_evaluate(args, work, folders)
    print_figures(report_trained, report_untrained)
    print(f"reports: {work / 'eval_trained'}/report.md, {work / 'eval_untrained'}")


def train_and_evaluate(args, work: Path, folders: dict) -> tuple[dict, dict]:
    from converter.stability import video_stability
    from faceswap_gan.checkpoints import save_checkpoint
    from faceswap_gan.config import TrainConfig
    from faceswap_gan.evaluation import evaluate
    from faceswap_gan.faces.identity import build_identity_embedder
    from faceswap_gan.models.gan import FaceSwapGAN
    from faceswap_gan.training import train

    fa, fb = folders["a"], folders["b"]
    run_dir = work / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    config = TrainConfig.from_preset(
        "lite",
        faces_a=str(fa[("train", "faces")]),
        faces_b=str(fb[("train", "faces")]),
        masks_a=str(fa[("train", "masks")]),
        masks_b=str(fb[("train", "masks")]),
        run_dir=str(run_dir),
        iterations=args.iterations,
        display_iters=max(args.iterations // 4, 1),
        backup_iters=0,
        seed=args.seed,
    )
    tic = time.time()
    train(config, progress=False)
    seconds = time.time() - tic
    print(
        f"trained lite preset {args.iterations} iterations in {seconds:.0f} s "
        f"({args.iterations / seconds:.2f} it/s)"
    )
    untrained = FaceSwapGAN(config.arch)
    untrained.compile()
    save_checkpoint(untrained, work / "untrained" / "checkpoints", {"step": 0})
    held = dict(
        faces_a=fa[("held_out", "faces")],
        faces_b=fb[("held_out", "faces")],
        masks_a=fa[("held_out", "masks")],
        masks_b=fb[("held_out", "masks")],
    )
    embedder = build_identity_embedder(args.identity_backend)
    trained = evaluate(
        run_dir,
        output_dir=work / "eval_trained",
        embedder=embedder,
        video=SAMPLES / "person_a.mp4",
        max_frames=args.frames,
        video_stability=video_stability,
        **held,
    )
    baseline = evaluate(
        work / "untrained",
        output_dir=work / "eval_untrained",
        embedder=embedder,
        **held,
    )
    return trained, baseline


def print_figures(trained: dict, untrained: dict) -> None:
    """Prints trained vs untrained figures and the video stability ratios."""
    print(f"\n{'figure':<42}{'trained':>11}{'untrained':>11}{'diff':>11}")
    rows = []
    for person in ("A", "B"):
        for region in ("whole", "alpha", "eyes", "composite"):
            for metric in ("psnr", "ssim", "l1"):
                rows.append(
                    (
                        f"{person}->{person} {region} {metric}",
                        ("reconstruction", person, region, metric),
                    )
                )
    for key in ("A->A", "B->B", "AtoB", "BtoA"):
        rows.append((f"{key} mean alpha", ("alpha_coverage", key)))
    for direction in ("AtoB", "BtoA"):
        for key in (
            "margin_mean",
            "real_margin_mean",
            "retrieval_top1_centroid",
            "retrieval_top1_nearest",
        ):
            rows.append((f"{direction} identity {key}", ("identity", direction, key)))
        for key in ("landmark_error_mean", "pose_difference_deg_mean"):
            rows.append((f"{direction} {key}", ("attributes", direction, key)))
    for label, path in rows:
        a, b = _get(trained, path), _get(untrained, path)
        print(f"{label:<42}{a:>11.4f}{b:>11.4f}{a - b:>+11.4f}")
    video = trained.get("video")
    if video:
        print(
            f"\nvideo ({video['frames']} frames of {Path(video['source']).name}, "
            f"{video['frames_with_face']} with the face, box {video['box_side_px']:.0f}"
            f" px)"
        )
        for key in (
            "jitter_raw_px",
            "jitter_smoothed_px",
            "jitter_ratio",
            "frame_change_input",
            "frame_change_swapped",
            "frame_change_ratio",
        ):
            print(f"  {key:<26}{video[key]:>10.4f}")


def _get(report: dict, path: tuple) -> float:
    value = report
    for key in path:
        value = value[key]
    return float(value)


if __name__ == "__main__":
    main()
