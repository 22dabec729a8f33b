"""PNG figures of an evaluation report (matplotlib Figure objects; no pyplot)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from faceswap_gan import files


def _figure(*args, **kwargs):
    """A matplotlib Figure and its axes, without pyplot (a notebook's backend stays)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=kwargs.pop("figsize"))
    return fig, fig.subplots(*args, **kwargs)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    with files.atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110)
    return path


def best_worst_grid(cases: dict, path: Path, k: int = 4) -> Path:
    """Input/swap pairs with the highest and lowest identity margin per direction.

    Args:
        cases: direction -> (inputs (N, S, S, 3) uint8, swaps (N, S, S, 3) uint8,
            margins (N,) float).
        path: PNG to write.
        k: int. Faces shown from each end (fewer when N < 2k).

    Returns:
        `path`.
    """
    columns = max(min(k, (len(m) + 1) // 2) for _, _, m in cases.values()) * 2
    fig, axes = _figure(
        2 * len(cases),
        columns,
        squeeze=False,
        figsize=(1.6 * columns, 3.4 * len(cases)),
    )
    for row, (direction, (inputs, swaps, margins)) in enumerate(cases.items()):
        n = min(columns // 2, (len(margins) + 1) // 2)
        order = np.argsort(margins)[::-1]
        picks = list(order[:n]) + list(order[::-1][:n][::-1])
        for col in range(columns):
            for r, images in ((2 * row, inputs), (2 * row + 1, swaps)):
                axes[r, col].axis("off")
                if col < len(picks):
                    axes[r, col].imshow(images[picks[col]])
            if col < len(picks):
                tag = "best" if col < n else "worst"
                axes[2 * row, col].set_title(
                    f"{direction} {tag}\nmargin {margins[picks[col]]:+.2f}", fontsize=7
                )
        axes[2 * row, 0].text(
            -0.1,
            0.5,
            "input",
            transform=axes[2 * row, 0].transAxes,
            rotation=90,
            va="center",
            ha="right",
            fontsize=8,
        )
        axes[2 * row + 1, 0].text(
            -0.1,
            0.5,
            "swap",
            transform=axes[2 * row + 1, 0].transAxes,
            rotation=90,
            va="center",
            ha="right",
            fontsize=8,
        )
    return _save(fig, path)


def identity_plot(margins: dict, path: Path) -> Path:
    """Strip plot of identity margins: label -> (N,) array (swaps and real faces)."""
    fig, ax = _figure(figsize=(6, 3.2))
    for i, values in enumerate(margins.values()):
        values = np.asarray(values, float)
        jitter = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else [0.0]
        ax.scatter(i + np.asarray(jitter), values, s=14, alpha=0.7)
        ax.hlines(np.nanmean(values), i - 0.3, i + 0.3, colors="k")
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(margins)), list(margins), fontsize=8)
    ax.set_ylabel("cos(target) - cos(source)")
    ax.set_title("Identity margin (> 0: looks like the target person)")
    return _save(fig, path)


def reconstruction_plot(reconstruction: dict, path: Path) -> Path:
    """Bars of mean PSNR per region (whole, alpha, eyes, composite) for A and B."""
    regions = [
        r for r in ("whole", "alpha", "eyes", "composite") if r in reconstruction["A"]
    ]
    fig, ax = _figure(figsize=(6, 3.2))
    width = 0.38
    for j, person in enumerate(("A", "B")):
        values = [reconstruction[person][r]["psnr"] for r in regions]
        values = [v if v is not None and np.isfinite(v) else 0.0 for v in values]
        ax.bar(
            np.arange(len(regions)) + (j - 0.5) * width,
            values,
            width,
            label=f"{person}->{person}",
        )
    ax.set_xticks(range(len(regions)), regions)
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("Reconstruction of held-out faces")
    ax.legend()
    return _save(fig, path)


def track_plot(tracks: dict, path: Path) -> Path:
    """Box-centre x and y over frames, raw (MTCNN) vs smoothed (Kalman)."""
    fig, axes = _figure(2, 1, sharex=True, figsize=(7, 4.2))
    for label, boxes in tracks.items():
        track = np.array([[np.nan] * 4 if b is None else b for b in boxes], float)
        centres = (track[:, :2] + track[:, 2:]) / 2
        for axis, name in enumerate("xy"):
            axes[axis].plot(centres[:, axis], label=label, lw=1)
            axes[axis].set_ylabel(f"centre {name} (px)")
    axes[0].legend()
    axes[1].set_xlabel("frame")
    axes[0].set_title("Face box centre: raw detections vs smoothed track")
    return _save(fig, path)
