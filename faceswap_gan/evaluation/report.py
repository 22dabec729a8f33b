"""`evaluate`: the whole quality report of a trained model, as JSON, Markdown and PNGs.

Output folder:
    report.json                 every figure (see `evaluate`), NaN/inf written as null
    report.md                   the same as tables, with the plots linked
    grid_best_worst.png         input/swap pairs with the best and worst identity margin
    identity_margins.png        identity margins of swaps and (for reference) real faces
    reconstruction_psnr.png     PSNR per region, A->A and B->B
    video_tracks.png, swapped.mp4   with a video only: box tracks and the converted clip
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from faceswap_gan import files
from faceswap_gan.errors import FaceswapError
from faceswap_gan.evaluation import faces as face_eval
from faceswap_gan.evaluation import plots
from faceswap_gan.evaluation.markdown import markdown

REPORT_KEYS = ("model", "image_size", "faces", "eye_masks_from", "reconstruction",
               "alpha_coverage", "identity_backend", "identity", "attributes", "video",
               "per_face", "plots", "seconds")  # fmt: skip


def _mean(values) -> float:
    values = np.asarray(values, float)
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def _summarise_identity(scores: dict, target: str) -> dict:
    margin = np.asarray(scores["margin"])
    hits = {
        m: float(np.mean([p == target for p in scores[f"retrieved_{m}"]]))
        for m in ("centroid", "nearest")
    }
    return {
        "margin_mean": _mean(margin),
        "margin_std": float(np.std(margin)),
        "margin_min": float(margin.min()),
        "margin_max": float(margin.max()),
        "real_margin_mean": _mean(scores["real_margin"]),
        "retrieval_top1_centroid": hits["centroid"],
        "retrieval_top1_nearest": hits["nearest"],
    }


GRID_FACES = 4  # Faces from each end of the identity margin in grid_best_worst.png.


def _grid_case(model, faces, person: str, margins, k: int = GRID_FACES) -> tuple:
    """(inputs, swaps, margins) of only the k best and k worst swaps of `person`.

    Only these 2k faces are kept for the grid: their swaps are made again (the
    generator is deterministic at inference), so no swap of all N faces is held.
    """
    order = np.argsort(margins)[::-1]
    picks = np.asarray(list(dict.fromkeys([*order[:k], *order[::-1][:k]])), int)
    picked = faces[picks]
    return picked, face_eval.swap_faces(model, picked, person), margins[picks]


def _face_figures(model, data: dict, embedder) -> tuple[dict, dict]:
    """(report sections, per-direction (inputs, swaps, margins) of the grid's faces).

    One bounded pass per person (`faces.score_faces`): memory holds the faces at
    the model size and a few numbers per face, not N swaps or N float images."""
    size = model.image_size
    scores = {p: face_eval.score_faces(model, d, p, embedder) for p, d in data.items()}
    embeddings = {}
    for person, score in scores.items():
        embeddings[person] = score["embeddings"]
        embeddings[f"swap_{person}"] = score["swap_embeddings"]
    report = {
        "reconstruction": {},
        "alpha_coverage": {},
        "identity": {},
        "attributes": {},
        "per_face": {},
    }
    cases = {}
    for person, d in data.items():
        direction, other = face_eval.DIRECTIONS[person], face_eval.SIDES[person]
        score = scores[person]
        recon = score["reconstruction"]
        report["reconstruction"][person] = {
            region: {k: _mean(v) for k, v in values.items()}
            for region, values in recon.items()
        }
        coverage = report["alpha_coverage"]
        coverage[f"{person}->{person}"] = _mean(score["coverage_own"])
        coverage[direction] = _mean(score["coverage_swap"])
        ident = face_eval.identity(embeddings, person)
        report["identity"][direction] = _summarise_identity(ident, other)
        attrs = face_eval.attributes(score["landmarks"], score["swap_landmarks"], size)
        report["attributes"][direction] = {
            f"{k}_{s}": float(f(v))
            for k, v in attrs.items()
            for s, f in (("mean", _mean), ("std", np.std))
        }
        report["per_face"][person] = [
            {
                "name": name,
                "identity_margin": float(ident["margin"][i]),
                "retrieved_centroid": ident["retrieved_centroid"][i],
                "landmark_error": float(attrs["landmark_error"][i]),
                "pose_difference_deg": float(attrs["pose_difference_deg"][i]),
                "psnr_whole": float(recon["whole"]["psnr"][i]),
            }
            for i, name in enumerate(d.names)
        ]
        margins = np.asarray(ident["margin"])
        cases[direction] = _grid_case(model, d.faces, person, margins)
        report.setdefault("margins", {})[direction] = ident["margin"]
        report["margins"][f"real {person}"] = ident["real_margin"]
    return report, cases


def evaluate(
    model,
    faces_a,
    faces_b,
    output_dir,
    masks_a=None,
    masks_b=None,
    video=None,
    max_faces: int | None = None,
    max_frames: int | None = 90,
    embedder=None,
    progress: bool = False,
    identity_backend: str = "mobilefacenet",
    video_stability=None,
) -> dict:
    """Evaluates a trained model on held-out faces (and a clip); writes the reports.

    Memory is bounded: faces are kept only at the model size (`faces.load_faces`),
    every network runs on at most `faces.BATCH` faces at a time (`faces.score_faces`)
    and the best/worst grid keeps only its own faces, so the peak hardly grows with
    the number of faces (benchmarks/eval_memory.py).

    Args:
        model: FaceSwapGAN, or str | Path of a run / checkpoint folder (`load_model`).
        faces_a, faces_b: str | Path. Folders of held-out face crops of A and B (any
            size: aligned crops of `extract`, or loose crops); resized to the model
            size S. Identity centroids and galleries are built from these real faces.
        output_dir: str | Path. Created if needed.
        masks_a, masks_b: str | Path | None. Eye-mask folders (file stems as the
            faces); None = eye masks from 68-point landmarks (`masks.eye_mask`).
        video: str | Path | None. A clip of A to convert A->B for video stability
            (written to output_dir/swapped.mp4); needs `video_stability`.
        max_faces: int | None. Use at most the first N faces per person.
        max_frames: int | None. Frames of `video` converted (None = all).
        embedder: MobileFaceNetEmbedder | FaceEmbedder | None. Reused if given (it
            loads two nets); otherwise built for `identity_backend`.
        progress: bool. Progress bar for the video.
        identity_backend: str. `faceswap_gan.faces.identity.IDENTITY_BACKENDS`:
            "mobilefacenet" (default; 192-d MobileFaceNet/ArcFace, independent of
            training) or "face_api" (dlib's ResNet, 128-d). The perceptual loss is
            computed with face_api's network, so face_api identity margins of swaps
            are biased upwards (the generator was optimised against that network);
            use it only to compare with older reports. Margins of the two backends
            are on different scales. Ignored when `embedder` is given.
        video_stability: callable | None. `(model, video, output_path, max_frames,
            direction, progress) -> dict`, i.e. `converter.stability.video_stability`
            (passed in: the library does not import the converter application).

    Returns:
        The report dict (keys `REPORT_KEYS`), as written to report.json:
        reconstruction[person][region][l1|psnr|ssim] means (regions whole, alpha,
        eyes, composite); alpha_coverage["A->A"|"B->B"|"AtoB"|"BtoA"] mean alpha
        in [0, 1] (near 0: the composite is the input, nothing is swapped);
        identity_backend (the embedder's `backend` name, else its class name);
        identity[direction] margin_mean/std/min/max,
        real_margin_mean, retrieval_top1_centroid/nearest (fractions);
        attributes[direction] landmark_error_mean/std (by inter-ocular distance),
        pose_difference_deg_mean/std; video (see `converter.stability`) or None.

    Raises:
        FileNotFoundError, FaceswapError: missing/empty folders, too many unreadable
            faces, a missing mask, a bad `max_faces`, an unreadable video or one
            without faces, an unknown `identity_backend`, `video` without
            `video_stability`.
    """
    from faceswap_gan.checkpoints import load_model
    from faceswap_gan.faces.identity import build_identity_embedder

    if video is not None and video_stability is None:
        raise FaceswapError(
            "evaluate(video=...) needs video_stability=converter.stability."
            "video_stability (the library does not import the converter)."
        )
    started = time.time()
    name = str(model) if isinstance(model, (str, Path)) else type(model).__name__
    if isinstance(model, (str, Path)):
        model = load_model(model)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    size = model.image_size
    data = {
        "A": face_eval.load_faces(faces_a, size, masks_a, max_faces),
        "B": face_eval.load_faces(faces_b, size, masks_b, max_faces),
    }
    if embedder is None:
        embedder = build_identity_embedder(identity_backend)
    identity_backend = getattr(embedder, "backend", type(embedder).__name__)
    sections, cases = _face_figures(model, data, embedder)
    margins = sections.pop("margins")
    report = {
        "model": name,
        "image_size": size,
        "faces": {k: len(d.faces) for k, d in data.items()},
        "eye_masks_from": {k: d.masks_from for k, d in data.items()},
        "identity_backend": identity_backend,
        **sections,
        "video": None,
        "plots": {},
    }
    report["plots"]["grid"] = plots.best_worst_grid(
        cases, output_dir / "grid_best_worst.png", GRID_FACES
    ).name
    report["plots"]["identity"] = plots.identity_plot(
        margins, output_dir / "identity_margins.png"
    ).name
    report["plots"]["reconstruction"] = plots.reconstruction_plot(
        report["reconstruction"], output_dir / "reconstruction_psnr.png"
    ).name
    if video is not None:
        report["video"] = video_stability(
            model, video, output_dir / "swapped.mp4", max_frames, "AtoB", progress
        )
        report["video"]["source"] = str(video)
        report["plots"]["video"] = plots.track_plot(
            report["video"]["tracks"], output_dir / "video_tracks.png"
        ).name
    report["seconds"] = round(time.time() - started, 2)
    write_reports(report, output_dir)
    return report


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_reports(report: dict, output_dir: Path) -> None:
    """Writes report.json (strict JSON: NaN/inf -> null) and report.md."""
    output_dir = Path(output_dir)
    files.write_text(
        output_dir / "report.json", json.dumps(_json_safe(report), indent=2)
    )
    files.write_text(output_dir / "report.md", markdown(report))
