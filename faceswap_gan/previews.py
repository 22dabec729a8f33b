"""Preview grids (the original's showG / showG_mask) and loss plots of a run."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from faceswap_gan import files
from faceswap_gan.images import from_model_range, write_image


def preview_grid(model, faces_a: np.ndarray, faces_b: np.ndarray) -> np.ndarray:
    """One PNG-ready grid: a row per face, columns
    [input, reconstruction, swap, swap alpha mask, swap raw RGB].

    Rows of A faces (swap = A->B) come first, then B faces (swap = B->A). The model
    runs on at most `models.gan.INFERENCE_BATCH` faces at a time
    (`FaceSwapGAN.transform`); the grid itself holds all 2N rows.

    Args:
        model: FaceSwapGAN.
        faces_a, faces_b: (N, R, R, 3) float32 RGB in [-1, 1].

    Returns:
        (2N*R, 5R, 3) uint8 RGB.
    """
    rows = []
    for faces, own, other in ((faces_a, "A", "B"), (faces_b, "B", "A")):
        _, _, recon = model.transform(faces, own)
        alpha, rgb, swapped = model.transform(faces, other)
        mask = np.repeat(alpha * 2.0 - 1.0, 3, axis=-1)
        columns = [faces, recon, swapped, mask, rgb]
        rows.append(np.concatenate(columns, axis=2))  # (N, R, 5R, 3)
    grid = np.concatenate(rows, axis=0)  # (2N, R, 5R, 3)
    return from_model_range(grid.reshape(-1, *grid.shape[2:]))


def save_preview(model, faces_a, faces_b, previews_dir: Path, step: int) -> Path:
    """Writes previews/step_XXXXXXX.png and previews/latest.png; returns the first."""
    grid = preview_grid(model, faces_a, faces_b)
    path = Path(previews_dir) / f"step_{step:07d}.png"
    write_image(path, grid)
    write_image(Path(previews_dir) / "latest.png", grid)
    return path


def read_metrics(path: str | Path) -> list[dict]:
    """Rows of a metrics.jsonl file (empty list if it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_losses(metrics_path: str | Path, output: str | Path) -> Path:
    """Plots every loss term of metrics.jsonl against step, one panel per group
    (d_a, d_b, g_a, g_b, g, eval), and saves a PNG."""
    from matplotlib.figure import Figure  # no pyplot: leaves a notebook's backend alone

    rows = read_metrics(metrics_path)
    groups: dict[str, list[str]] = defaultdict(list)
    for key in dict.fromkeys(key for row in rows for key in row):  # all rows' keys
        if "/" in key:
            groups[key.split("/")[0]].append(key)
    fig = Figure(figsize=(4 * max(1, len(groups)), 3.2))
    axes = fig.subplots(1, max(1, len(groups)), squeeze=False)
    for ax, (group, keys) in zip(axes[0], sorted(groups.items())):
        for key in keys:
            points = [(r["step"], r[key]) for r in rows if key in r]
            ax.plot(*zip(*points), label=key.split("/", 1)[1], marker=".")
        ax.set_title(group)
        ax.set_xlabel("iteration")
        ax.legend(fontsize=7)
    fig.tight_layout()
    with files.atomic_output(output) as tmp:
        fig.savefig(tmp, dpi=80)
    return Path(output)
