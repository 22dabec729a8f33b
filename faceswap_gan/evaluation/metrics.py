"""Image and identity metrics: masked L1 / PSNR / SSIM, identity margin, retrieval.

Pure numpy functions with no model inside, so each can be checked on known cases.
Images are float arrays in `[0, 1]` (use `to_unit_range` for model tensors in
`[-1, 1]`); masks are `(H, W)` or `(H, W, 1)` float in `[0, 1]` and weight every pixel
(a soft mask counts a pixel partly). Embeddings are `(..., D)` float (D = 128 for
`faceswap_gan.faces.identity.FaceEmbedder`).

Reference:
    - docs/REFERENCE.md section 3 (the small-scale proxy of the FaceForensics++
      protocol: reconstruction, ID margin and retrieval).
    - Z. Wang et al., "Image quality assessment: from error visibility to structural
      similarity", IEEE TIP 2004 (SSIM, via `skimage.metrics.structural_similarity`).
    - L. Li et al., FaceShifter, arXiv 1912.13457 (ID retrieval).
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

SSIM_BORDER = 3  # (7 - 1) // 2: border of skimage's default 7x7 SSIM window.


def to_unit_range(tensor: np.ndarray) -> np.ndarray:
    """Model range `[-1, 1]` -> float32 `[0, 1]` (clipped), any shape."""
    return np.clip((np.asarray(tensor, np.float32) + 1.0) / 2.0, 0.0, 1.0)


def _pixel_weights(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """`(H, W, 1)` float64 weights from an optional mask; ValueError on bad shapes."""
    if image.ndim != 3:
        raise ValueError(f"images must be (H, W, C); got shape {image.shape}.")
    if mask is None:
        return np.ones(image.shape[:2] + (1,))
    mask = np.asarray(mask, np.float64)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.shape != image.shape[:2]:
        raise ValueError(
            f"mask must be (H, W) or (H, W, 1) matching the image {image.shape[:2]}; "
            f"got {mask.shape}."
        )
    if mask.min() < 0 or mask.max() > 1:
        raise ValueError("mask values must be in [0, 1].")
    return mask[..., None]


def _pair(target, prediction) -> tuple[np.ndarray, np.ndarray]:
    target = np.asarray(target, np.float64)
    prediction = np.asarray(prediction, np.float64)
    if target.shape != prediction.shape:
        raise ValueError(
            f"target and prediction shapes differ: {target.shape} vs "
            f"{prediction.shape}."
        )
    return target, prediction


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    """Mean of `(H, W, C)` values weighted by `(H, W, 1)`; NaN for an empty mask."""
    total = float(weights.sum()) * values.shape[-1]
    if total <= 0:
        return float("nan")
    return float((values * weights).sum() / total)


def masked_l1(target, prediction, mask=None) -> float:
    """Mean absolute error, over the whole image or weighted by a mask.

    Args:
        target: `(H, W, C)` float in `[0, 1]`.
        prediction: same shape as `target`.
        mask: `(H, W)` / `(H, W, 1)` float in `[0, 1]`, or None for the whole image.

    Returns:
        float in `[0, 1]`: `sum(m * |t - p|) / (C * sum(m))`; NaN if the mask is empty.
    """
    target, prediction = _pair(target, prediction)
    return _weighted_mean(np.abs(target - prediction), _pixel_weights(target, mask))


def masked_psnr(target, prediction, mask=None, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, over the whole image or inside a mask.

    `10 log10(data_range^2 / MSE)` with the mask-weighted MSE.

    Args:
        target: `(H, W, C)` float in `[0, data_range]`.
        prediction: same shape as `target`.
        mask: `(H, W)` / `(H, W, 1)` float in `[0, 1]`, or None.
        data_range: float. Peak value (1.0 for `[0, 1]` images).

    Returns:
        float dB; `inf` for identical images, NaN for an empty mask.
    """
    target, prediction = _pair(target, prediction)
    mse = _weighted_mean((target - prediction) ** 2, _pixel_weights(target, mask))
    if np.isnan(mse):
        return mse
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def masked_ssim(target, prediction, mask=None, data_range: float = 1.0) -> float:
    """Structural similarity, the SSIM map averaged over the image or inside a mask.

    The map is `skimage.metrics.structural_similarity(..., full=True)` (7x7 uniform
    window, per channel, averaged over channels); the mask weights its pixels, and
    the 3-pixel border is left out as skimage's own mean does (so with no mask the
    result equals `structural_similarity`).

    Args:
        target: `(H, W, C)` float in `[0, data_range]`, H and W >= 7.
        prediction: same shape as `target`.
        mask: `(H, W)` / `(H, W, 1)` float in `[0, 1]`, or None.
        data_range: float. Peak value.

    Returns:
        float in `[-1, 1]`; 1 for identical images, NaN for an empty mask.
    """
    target, prediction = _pair(target, prediction)
    weights = _pixel_weights(target, mask).copy()
    _, ssim_map = structural_similarity(
        target, prediction, data_range=data_range, channel_axis=-1, full=True
    )  # (H, W, C)
    # As skimage's mean SSIM: leave out the border the 7x7 window does not fit.
    weights[:SSIM_BORDER], weights[-SSIM_BORDER:] = 0, 0
    weights[:, :SSIM_BORDER], weights[:, -SSIM_BORDER:] = 0, 0
    return _weighted_mean(ssim_map, weights)


def unit_vectors(vectors: np.ndarray) -> np.ndarray:
    """`(..., D)` vectors scaled to L2 norm 1 along the last axis, float64 (a zero
    vector stays zero)."""
    vectors = np.asarray(vectors, np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def centroid(embeddings: np.ndarray) -> np.ndarray:
    """Identity centroid: mean of the L2-normalised `(N, D)` embeddings -> `(D,)`."""
    embeddings = np.asarray(embeddings, np.float64)
    if embeddings.ndim != 2 or len(embeddings) == 0:
        raise ValueError(
            f"embeddings must be (N, D) with N >= 1; got {embeddings.shape}."
        )
    return unit_vectors(embeddings).mean(axis=0)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of `(..., D)` vectors, broadcasting -> `(...)` in [-1, 1]."""
    return np.sum(unit_vectors(a) * unit_vectors(b), axis=-1)


def identity_margin(embeddings, target_centroid, source_centroid) -> np.ndarray:
    """Identity margin of swapped faces: cos to the target minus cos to the source.

    For A->B swaps the target is B's centroid and the source A's: a margin > 0 means
    the swap looks more like B than like A (range [-2, 2]; real faces of B score
    about what `identity_margin(real_b, cB, cA)` gives).

    Args:
        embeddings: `(N, D)` (or `(D,)`) embeddings of the swapped faces.
        target_centroid: `(D,)` centroid of the identity the swap should have.
        source_centroid: `(D,)` centroid of the identity the input face had.

    Returns:
        `(N,)` (or scalar) float64 margins.
    """
    return cosine_similarity(embeddings, target_centroid) - cosine_similarity(
        embeddings, source_centroid
    )


def retrieve(embeddings, galleries: dict[str, np.ndarray], method="centroid") -> list:
    """Top-1 identity retrieval of each embedding over labelled galleries.

    Args:
        embeddings: `(N, D)` query embeddings (e.g. of swapped faces).
        galleries: label -> `(M_label, D)` embeddings of real faces of that person.
        method: "centroid" (highest cosine to the gallery's `centroid`) or "nearest"
            (label of the single gallery face with the highest cosine).

    Returns:
        list of N labels.

    Raises:
        ValueError: unknown method or an empty gallery.
    """
    if method not in ("centroid", "nearest"):
        raise ValueError(f"method must be 'centroid' or 'nearest'; got {method!r}.")
    labels = list(galleries)
    queries = np.asarray(embeddings, np.float64)[:, None, :]  # (N, 1, D)
    if method == "centroid":
        scores = np.stack(
            [cosine_similarity(queries[:, 0], centroid(galleries[k])) for k in labels],
            axis=1,
        )  # (N, L)
    else:  # (N, L): best match in each gallery; 256 queries at a time, so memory is
        # 256 x M, not N x M x D (10,000 faces would need 150 GB at once).
        units, found = {k: unit_vectors(galleries[k]) for k in labels}, []
        for start in range(0, len(queries), 256):
            chunk = unit_vectors(queries[start : start + 256, 0])
            found.append([(chunk @ units[k].T).max(axis=1) for k in labels])
        scores = np.concatenate([np.stack(f, axis=1) for f in found] or [[]])
        scores = scores.reshape(len(queries), len(labels))
    return [labels[i] for i in np.argmax(scores, axis=1)]


def retrieval_accuracy(predicted: list, expected: str) -> float:
    """Fraction of `predicted` labels equal to `expected` (NaN for no queries)."""
    return float(np.mean([p == expected for p in predicted])) if predicted else np.nan
