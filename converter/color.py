"""Colour correction of the swapped face towards the original face.

`COLOR_CORRECTIONS` maps each `ColorCorrectionType` to a function
`(swapped, original, mask) -> corrected`:

- `swapped`, `original`: `(H, W, 3) float32` RGB in [0, 1] (the same ROI);
- `mask`: `(H, W) float32` in [0, 1], the face region; statistics are taken inside it,
  weighted by it (the original used the whole square ROI, background included);
- returns `(H, W, 3) float32` in [0, 1]; every pixel is mapped, the caller blends.

Fixes over faceswap-GAN v2.2's `converter/color_correction.py` (REFERENCE 1.10 item 4):
the XYZ path returns its result (the original referenced an undefined `result`), and
the flat-channel guard tests the standard deviation itself (the original compared
`ss.any() <= eps`, a bool). With an empty mask every function returns `swapped`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from converter.config import ColorCorrectionType
from faceswap_gan.images import rgb_to_xyz, xyz_to_rgb

EPS = 1e-6
ColorCorrection = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _weights(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """Flattened mask weights, or None when the mask is (almost) empty."""
    mask = np.asarray(mask, dtype=np.float64)
    if mask.shape != shape[:2]:
        raise ValueError(f"mask must have shape {shape[:2]}; got {mask.shape}.")
    weights = np.clip(mask, 0.0, 1.0).ravel()
    return None if weights.sum() < 1.0 else weights


def weighted_mean_std(image: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-channel mean and std of `(H, W, C)` pixels, `(H*W,)` weights -> 2x (C,)."""
    pixels = image.reshape(-1, image.shape[-1]).astype(np.float64)
    mean = np.average(pixels, axis=0, weights=weights)
    var = np.average((pixels - mean) ** 2, axis=0, weights=weights)
    return mean, np.sqrt(var)


def keep(swapped: np.ndarray, original: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """NONE: returns `swapped` unchanged (as float32)."""
    return np.asarray(swapped, dtype=np.float32)


def adain(swapped: np.ndarray, original: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """ADAIN: per-channel mean/std of `swapped` set to those of `original` in the mask.

    `out = (x - mean_s) / std_s * std_o + mean_o`; a flat channel (std_s < 1e-6) is only
    shifted.

    Reference:
        - Huang & Belongie, 2017, "Arbitrary Style Transfer in Real-time with Adaptive
          Instance Normalization", eq. 8.
    """
    return np.clip(_adain(swapped, original, mask), 0.0, 1.0).astype(np.float32)


def _adain(swapped, original, mask):
    weights = _weights(mask, swapped.shape)
    if weights is None:
        return np.asarray(swapped, dtype=np.float32)
    mean_s, std_s = weighted_mean_std(swapped, weights)
    mean_o, std_o = weighted_mean_std(original, weights)
    scale = np.where(std_s < EPS, 1.0, std_o / np.maximum(std_s, EPS))
    return ((swapped - mean_s) * scale + mean_o).astype(np.float32)


def adain_xyz(
    swapped: np.ndarray, original: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """ADAIN_XYZ: `adain` in CIE XYZ, back to RGB, clipped to [0, 1].

    XYZ is `faceswap_gan.images.rgb_to_xyz` (OpenCV's linear D65 matrix), the space
    of v2.2's `color_correction.py` (`cv2.COLOR_BGR2XYZ`) and of the training-time
    colour match."""
    if _weights(mask, swapped.shape) is None:
        return np.asarray(swapped, dtype=np.float32)
    xyz = _adain(rgb_to_xyz(swapped), rgb_to_xyz(original), mask)
    return np.clip(xyz_to_rgb(xyz), 0.0, 1.0).astype(np.float32)


BINS = 256  # Histogram bins per channel (uint8 precision).


def _quantile_points(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values (bin centres in [0, 1]) and mid-point CDF of the non-empty bins."""
    filled = np.nonzero(hist > 0)[0]
    cdf = np.cumsum(hist) - 0.5 * hist  # Mid-point rule: a bin's mass is centred.
    return filled / (BINS - 1.0), cdf[filled] / hist.sum()


def hist_match(
    swapped: np.ndarray, original: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """HISTMATCH: per-channel CDF of `swapped` matched to `original`'s, inside the mask.

    Each value x of channel c maps to `Q_o(F_s(x))`, where F_s is the mask-weighted CDF
    of `swapped` and Q_o the mask-weighted quantile function of `original`, both from
    256-bin histograms (uint8 precision) with linear interpolation between bins: the
    mask-weighted version of `skimage.exposure.match_histograms`.
    """
    weights = _weights(mask, swapped.shape)
    if weights is None:
        return np.asarray(swapped, dtype=np.float32)
    out = np.empty(swapped.shape, dtype=np.float32)
    for c in range(swapped.shape[-1]):
        src = np.rint(np.clip(swapped[..., c], 0, 1) * (BINS - 1)).astype(np.intp)
        ref = np.rint(np.clip(original[..., c], 0, 1) * (BINS - 1)).astype(np.intp)
        src_hist = np.bincount(src.ravel(), weights, BINS)
        ref_hist = np.bincount(ref.ravel(), weights, BINS)
        src_values, src_cdf = _quantile_points(src_hist)
        ref_values, ref_cdf = _quantile_points(ref_hist)
        lookup = np.interp(
            np.interp(np.arange(BINS) / (BINS - 1.0), src_values, src_cdf),
            ref_cdf,
            ref_values,
        )  # (BINS,) source bin -> matched value
        out[..., c] = lookup[src]
    return out


COLOR_CORRECTIONS: dict[ColorCorrectionType, ColorCorrection] = {
    ColorCorrectionType.HISTMATCH: hist_match,
    ColorCorrectionType.ADAIN: adain,
    ColorCorrectionType.ADAIN_XYZ: adain_xyz,
    ColorCorrectionType.NONE: keep,
}
