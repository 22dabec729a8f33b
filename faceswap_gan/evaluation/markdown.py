"""Markdown rendering of an `evaluate` report."""

from __future__ import annotations

import math


def _fmt(value, digits=3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "inf" if value == float("inf") else "n/a"
    return f"{value:.{digits}f}"


def markdown(report: dict) -> str:
    """The report as Markdown: one table per section, plots embedded."""
    lines = [
        f"# Evaluation of {report['model']}",
        "",
        f"Model size {report['image_size']} px; faces A {report['faces']['A']}, "
        f"B {report['faces']['B']}; eye masks from "
        f"{report['eye_masks_from']}.",
        "",
        "## Reconstruction (held-out faces, generator RGB vs input)",
        "",
        "| person | region | L1 | PSNR (dB) | SSIM |",
        "|---|---|---|---|---|",
    ]
    for person, regions in report["reconstruction"].items():
        lines += [
            f"| {person}->{person} | {r} | {_fmt(v['l1'], 4)} | "
            f"{_fmt(v['psnr'], 2)} | {_fmt(v['ssim'])} |"
            for r, v in regions.items()
        ]
    lines += [
        "",
        "Mean alpha (share of the crop the generator paints; near 0 = the "
        "composite is the input): "
        + ", ".join(f"{k} {_fmt(v)}" for k, v in report["alpha_coverage"].items()),
    ]
    lines += [
        "",
        "## Identity (128-d face embedding, cosine)",
        "",
        "Margin = cos(swap, target centroid) - cos(swap, source centroid). "
        "Retrieval: top-1 by nearest centroid and by nearest gallery face over "
        "the real A and B faces.",
        "",
        "| direction | margin mean | std | real-face margin | top-1 centroid | "
        "top-1 nearest |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {d} | {_fmt(v['margin_mean'])} | {_fmt(v['margin_std'])} | "
        f"{_fmt(v['real_margin_mean'])} | {_fmt(v['retrieval_top1_centroid'], 2)}"
        f" | {_fmt(v['retrieval_top1_nearest'], 2)} |"
        for d, v in report["identity"].items()
    ]
    lines += [
        "",
        "## Attribute preservation (input vs swap, 68 landmarks)",
        "",
        "| direction | landmark error / IOD | pose difference (deg) |",
        "|---|---|---|",
    ]
    lines += [
        f"| {d} | {_fmt(v['landmark_error_mean'])} ± {_fmt(v['landmark_error_std'])}"
        f" | {_fmt(v['pose_difference_deg_mean'], 2)} ± "
        f"{_fmt(v['pose_difference_deg_std'], 2)} |"
        for d, v in report["attributes"].items()
    ]
    video = report.get("video")
    if video:
        lines += [
            "",
            f"## Video stability ({video['source']}, AtoB)",
            "",
            f"Frames {video['frames']}, with the face {video['frames_with_face']}"
            f"; mean box side {_fmt(video['box_side_px'], 1)} px.",
            "",
            "| figure | value |",
            "|---|---|",
            f"| box jitter raw (px/frame²) | {_fmt(video['jitter_raw_px'])} |",
            f"| box jitter smoothed | {_fmt(video['jitter_smoothed_px'])} |",
            f"| smoothed / raw | {_fmt(video['jitter_ratio'])} |",
            f"| crop change input | {_fmt(video['frame_change_input'], 4)} |",
            f"| crop change swapped | {_fmt(video['frame_change_swapped'], 4)} |",
            f"| swapped / input | {_fmt(video['frame_change_ratio'])} |",
        ]
    lines += ["", "## Plots", ""]
    lines += [f"![{k}]({v})" for k, v in report["plots"].items()]
    lines += ["", f"Evaluation took {report['seconds']:.1f} s.", ""]
    return "\n".join(lines)
