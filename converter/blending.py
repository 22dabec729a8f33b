"""Blending: the ROI and its feathered mask, paste-back into the frame, output layouts,
and the visible "SYNTHETIC" label.

Follows faceswap-GAN v2.2 `converter/face_transformer.py` (ROI by `roi_coverage`,
feathered edges) and `converter/video_converter.py` / `vc_utils.py` (inverse alignment,
`mask * result + (1 - mask) * frame`, the combined and triple canvases), in float32
instead of the original's float64 canvases.
"""

from __future__ import annotations

import cv2
import numpy as np

from converter.config import ImageOutputType
from faceswap_gan.faces.alignment import unalign
from faceswap_gan.images import bgr_to_rgb

LABEL_TEXT = "SYNTHETIC"


def roi_bounds(size: int, roi_coverage: float) -> tuple[int, int]:
    """`[start, stop)` of the ROI along a side of `size` pixels.

    The original crops `int(size * (1 - c))` pixels from each side, so c = 0.9 keeps the
    central 80 % ("roi_coverage" is a misnomer kept for compatibility). It sliced
    `[m:-m]`, which is empty for m = 0 (small faces, REFERENCE 1.10 item 9); here the
    stop is `size - m` and the ROI keeps at least 2 pixels.

    Raises:
        ValueError: `roi_coverage` outside (0, 1) or `size` < 2.
    """
    if not 0.0 < roi_coverage < 1.0:
        raise ValueError(f"roi_coverage must be in (0, 1); got {roi_coverage!r}.")
    if size < 2:
        raise ValueError(f"size must be >= 2 pixels; got {size!r}.")
    margin = min(int(size * (1.0 - roi_coverage)), (size - 2) // 2)
    return margin, size - margin


def feather_mask(size: int, roi_coverage: float) -> np.ndarray:
    """The original's feathered-edge mask of a `size` ROI: `(size, size)` float32.

    Ones inside the ROI of the ROI (the same `roi_bounds` margin again), zeros in the
    margin, then a Gaussian blur; the original used a fixed (15, 15) kernel with sigma
    10 whatever the size, here the kernel scales as 15 px per 240 px of ROI (min 3).
    """
    start, stop = roi_bounds(size, roi_coverage)
    mask = np.zeros((size, size), np.float32)
    mask[start:stop, start:stop] = 1.0
    kernel = max(3, int(round(15 * size / 240)) // 2 * 2 + 1)
    return cv2.GaussianBlur(mask, (kernel, kernel), kernel * 2 / 3)


def composite(
    foreground: np.ndarray, background: np.ndarray, alpha: np.ndarray
) -> np.ndarray:
    """`alpha * foreground + (1 - alpha) * background` on float arrays.

    Args:
        foreground, background: `(..., H, W, C)` float32.
        alpha: `(..., H, W)` float32 in [0, 1] (broadcast over channels).
    """
    alpha = alpha[..., None]
    return alpha * foreground + (1.0 - alpha) * background


def paste_back(
    frame: np.ndarray, crop: np.ndarray, alpha: np.ndarray, matrix: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Warps a swapped crop and its alpha back into the frame and blends them.

    Args:
        frame: `(H, W, 3)` uint8 RGB, the frame the crop was aligned from.
        crop: `(S, S, 3)` uint8 RGB, the swapped aligned crop.
        alpha: `(S, S)` float32 in [0, 1], where the crop replaces the frame.
        matrix: `(2, 3)` float64 frame -> crop matrix from `faces.alignment.align`.

    Returns:
        frame: `(H, W, 3)` uint8 RGB; bit-identical to the input where alpha is 0.
        frame_alpha: `(H, W)` float32 in [0, 1], the alpha in frame space.
    """
    frame_alpha = np.clip(unalign(alpha.astype(np.float32), matrix, frame.shape), 0, 1)
    ys, xs = np.nonzero(frame_alpha > 0)
    if len(ys) == 0:
        return frame.copy(), frame_alpha
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    warped = unalign(crop, matrix, frame.shape)[y0:y1, x0:x1].astype(np.float32)
    out = frame.copy()
    blended = composite(
        warped, frame[y0:y1, x0:x1].astype(np.float32), frame_alpha[y0:y1, x0:x1]
    )
    out[y0:y1, x0:x1] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out, frame_alpha


def mask_heatmap(frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The original's mask view: JET heatmap of `alpha` plus 0.15 x the input frame.

    Args:
        frame: `(H, W, 3)` uint8 RGB.
        alpha: `(H, W)` float32 in [0, 1].

    Returns:
        `(H, W, 3)` uint8 RGB.
    """
    alpha_u8 = np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
    heat = bgr_to_rgb(cv2.applyColorMap(alpha_u8, cv2.COLORMAP_JET)).astype(np.float32)
    return np.clip(heat + 0.15 * frame.astype(np.float32), 0, 255).astype(np.uint8)


def enhance_contrast(
    result: np.ndarray, original: np.ndarray, amount: float
) -> np.ndarray:
    """The original's `enhance`: `-e * original + (1 + e) * result`, uint8 RGB."""
    if amount == 0:
        return result
    mixed = (1.0 + amount) * result.astype(np.float32) - amount * original
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def compose_output(
    output_type: ImageOutputType,
    source: np.ndarray,
    result: np.ndarray,
    alpha: np.ndarray,
) -> np.ndarray:
    """The output frame's layout, `(H, k * W, 3)` uint8 RGB.

    SINGLE: `result` (k = 1); COMBINED: `[source | result]` (k = 2); TRIPLE:
    `[source | result | mask_heatmap(source, alpha)]` (k = 3).
    """
    if output_type == ImageOutputType.SINGLE:
        return result
    if output_type == ImageOutputType.COMBINED:
        return np.concatenate([source, result], axis=1)
    return np.concatenate([source, result, mask_heatmap(source, alpha)], axis=1)


def output_width(output_type: ImageOutputType, width: int) -> int:
    """Width in pixels of an output frame for input frames `width` pixels wide."""
    return (
        width
        * {
            ImageOutputType.SINGLE: 1,
            ImageOutputType.COMBINED: 2,
            ImageOutputType.TRIPLE: 3,
        }[output_type]
    )


def label_box(frame_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """`(x0, y0, x1, y1)` of the area `add_synthetic_label` draws on (bottom left)."""
    height, width = frame_shape[:2]
    scale = max(0.3, min(height, width) / 720)
    (text_w, text_h), base = cv2.getTextSize(
        LABEL_TEXT, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, int(2 * scale))
    )
    pad = max(2, int(4 * scale))
    x1, y0 = min(width, text_w + 3 * pad), max(0, height - text_h - base - 3 * pad)
    return 0, y0, x1, height


def add_synthetic_label(frame: np.ndarray) -> np.ndarray:
    """A small visible "SYNTHETIC" label in the bottom-left corner (white on dark).

    Args:
        frame: `(H, W, 3)` uint8 RGB.

    Returns:
        A labelled copy, `(H, W, 3)` uint8 RGB; pixels outside `label_box` unchanged.
    """
    out = frame.copy()
    x0, y0, x1, y1 = label_box(frame.shape)
    scale = max(0.3, min(frame.shape[:2]) / 720)
    thickness = max(1, int(2 * scale))
    pad = max(2, int(4 * scale))
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = (0.35 * region).astype(np.uint8)  # Darken for contrast.
    _, base = cv2.getTextSize(LABEL_TEXT, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    cv2.putText(
        out,
        LABEL_TEXT,
        (x0 + pad, y1 - base - pad),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        (255, 255, 255),
        thickness,
        cv2.LINE_AA,
    )
    return out
