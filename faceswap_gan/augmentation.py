"""Training-data augmentation of ONE face, as faceswap-GAN v2.2 does it.

Every function is pure numpy/OpenCV and takes an explicit `rng: np.random.Generator`, so
the same seed gives the same pixels. Conventions (see `faceswap_gan.images`):

- face images: `(256, 256, 3) float32` RGB in `[-1, 1]` (the original worked in BGR);
- eye masks: `(256, 256)` or `(256, 256, 1) float32` in `[0, 1]`.

`augment` composes the steps in the original's order (REFERENCE 1.5,
`data_loader/data_augmentation.py::read_image`): random colour match (p = 0.5) ->
`random_transform` -> `random_warp` (the original's `random_warp_rev`) -> motion blur
(p = 0.25, off by default). It returns `(warped, target, eye_mask)` at the model size.

Reference:
    - shaoanlu/faceswap-GAN v2.2, `data_loader/data_augmentation.py`, `umeyama.py`.
    - [Umeyama, 1991](https://doi.org/10.1109/34.88573): least-squares similarity.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from faceswap_gan.config import COLOR_MATCH_OVERFLOWS, AugmentConfig
from faceswap_gan.errors import FaceswapError
from faceswap_gan.faces.alignment import umeyama
from faceswap_gan.images import RGB_TO_XYZ, XYZ_TO_RGB, to_model_range

FACE_SIZE = 256  # Side of the stored face crops the augmentation works on.
COLOR_STATS_MARGIN = 60  # Colour statistics use the centre crop [60:-60] of 256 px.
MOTION_BLUR_PROB = 0.25  # Chance of motion blur per sample when it is enabled.
MOTION_BLUR_SIZES = (5, 7, 9, 11)  # Line-kernel lengths in pixels.


def random_color_match(
    image: np.ndarray,
    reference: np.ndarray,
    rng: np.random.Generator,
    use_xyz_prob: float = 0.5,
    overflow: str = "clip",
) -> np.ndarray:
    """Moves the colour statistics of `image` part of the way toward `reference`'s.

    Mean and std per channel are taken on the centre crop `[60:-60, 60:-60]`; the target
    statistics are interpolated toward the source's by a U(0, 1) ratio; with probability
    `use_xyz_prob` the transfer happens in CIE XYZ instead of RGB.

    Deliberate difference: values outside [0, 255] are clipped by default. The original
    (`overflow="rescale"`) shifted the whole image by its minimum and scaled it by
    255 / max; on real faces the dark background outside the centre crop then shifts
    the whole face, and the result ends farther from the reference than the input
    (measured on tests/data/faces: centre-crop stats distance 0.54 -> 0.83 or more).

    Args:
        image: `(256, 256, 3) float32` RGB in `[-1, 1]`.
        reference: `(256, 256, 3) float32` RGB in `[-1, 1]` (a random face of A and B).
        rng: np.random.Generator. Draws the colour space, then the ratio.
        use_xyz_prob: float. Chance of working in XYZ.
        overflow: str. "clip" (default) or "rescale" (the original's shift and scale).

    Returns:
        `(256, 256, 3) float32` RGB in `[-1, 1]`. A flat image (some channel std 0)
        is returned unchanged (the original's check of this was a no-op bug).

    Raises:
        ValueError: an unknown `overflow`.
    """
    if overflow not in COLOR_MATCH_OVERFLOWS:
        raise FaceswapError(
            f"overflow must be one of {COLOR_MATCH_OVERFLOWS}; got {overflow!r}."
        )
    use_xyz = rng.random() < use_xyz_prob
    ratio = rng.uniform()
    # Every step is affine per pixel: [-1, 1] -> [0, 255] -> (XYZ) -> transfer -> back.
    # Composing them into one 3x4 matrix for cv2.transform is ~10x faster than numpy.
    space = RGB_TO_XYZ if use_xyz else np.eye(3)
    enter = _affine(127.5 * space, 127.5 * space.sum(axis=1))  # [-1, 1] -> space
    (mt, st) = _centre_stats(reference, enter)
    (ms, ss) = _centre_stats(image, enter)
    if np.any(ss <= 1e-7):
        return image.astype(np.float32)
    mt = ratio * mt + (1.0 - ratio) * ms
    st = ratio * st + (1.0 - ratio) * ss
    gain = st / (ss + 1e-7)  # result = st * (src - ms) / ss + mt, per channel
    transfer = _affine(np.diag(gain), mt - gain * ms) @ enter
    back = XYZ_TO_RGB if use_xyz else np.eye(3)
    leave = _affine(back / 127.5, -np.ones(3))  # space -> [-1, 1] RGB
    if overflow == "clip":
        result = cv2.transform(np.asarray(image, np.float32), (leave @ transfer)[:3])
        return np.clip(result, -1.0, 1.0)
    result = cv2.transform(np.asarray(image, np.float32), transfer[:3])
    if result.min() < 0:  # The original's shift and scale into [0, 255].
        result = result - result.min()
    if result.max() > 255:
        result = result * (255.0 / result.max())
    return np.clip(cv2.transform(result, leave[:3]), -1.0, 1.0)


def _affine(matrix: np.ndarray, offset: np.ndarray) -> np.ndarray:
    out = np.eye(4)  # (4, 4) homogeneous: x -> matrix @ x + offset
    out[:3, :3], out[:3, 3] = matrix, offset
    return out


def _centre_stats(image: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, ...]:
    r = COLOR_STATS_MARGIN
    centre = cv2.transform(np.ascontiguousarray(image[r:-r, r:-r]), affine[:3])
    mean, std = cv2.meanStdDev(centre)  # 30x faster than np.std here
    return mean.ravel(), std.ravel()


def _as_2d(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask, np.float32)
    return mask[..., 0] if mask.ndim == 3 else mask


def random_transform(
    image: np.ndarray,
    mask: np.ndarray,
    rng: np.random.Generator,
    rotation_range: float = 10.0,
    zoom_range: float = 0.1,
    shift_range: float = 0.05,
    flip_prob: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Random rotation, zoom, shift (BORDER_REPLICATE) and horizontal flip.

    The same transform is applied to the image and the mask.

    Args:
        image: `(H, W, 3) float32` in `[-1, 1]`.
        mask: `(H, W)` or `(H, W, 1) float32` in `[0, 1]`.
        rng: np.random.Generator. Draws rotation, scale, tx, ty, flip, in that order.
        rotation_range: float. Degrees; rotation ~ U(-r, r) about the centre.
        zoom_range: float. Scale ~ U(1 - z, 1 + z).
        shift_range: float. Shift ~ U(-s, s) times the side, per axis.
        flip_prob: float. Chance of a horizontal flip.

    Returns:
        `(image, mask)` with the input shapes and dtype float32.
    """
    h, w = image.shape[:2]
    rotation = rng.uniform(-rotation_range, rotation_range)
    scale = rng.uniform(1.0 - zoom_range, 1.0 + zoom_range)
    tx = rng.uniform(-shift_range, shift_range) * w
    ty = rng.uniform(-shift_range, shift_range) * h
    flip = rng.random() < flip_prob
    matrix = cv2.getRotationMatrix2D((w // 2, h // 2), rotation, scale)
    matrix[:, 2] += (tx, ty)

    def warp(x):
        out = cv2.warpAffine(x, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
        return cv2.flip(out, 1) if flip else out  # horizontal

    out_mask = warp(_as_2d(mask)).reshape(np.shape(mask))
    return warp(np.asarray(image, np.float32)), out_mask


def warp_grid(
    rng: np.random.Generator,
    coverage: int | None = None,
    noise_scale: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The noisy 5x5 sampling grid of `random_warp`, in 256-px face coordinates.

    Args:
        rng: np.random.Generator. Draws coverage, noise scale, x noise, y noise.
        coverage: int | None. Half-width of the grid around the centre 128;
            None draws `randint(20) + 78` (78..97 px).
        noise_scale: float | None. Std of the N(0, scale) grid noise in pixels;
            None draws U(5, 6.2). Pass 0 for a regular grid (tests).

    Returns:
        `(mapx, mapy)`: two `(5, 5) float64` arrays, x and y of each grid point.
    """
    coverage = rng.integers(20) + 78 if coverage is None else coverage
    noise_scale = rng.uniform(5.0, 6.2) if noise_scale is None else noise_scale
    line = np.linspace(128 - coverage, 128 + coverage, 5)
    mapx = np.broadcast_to(line, (5, 5))
    mapy = mapx.T
    mapx = mapx + rng.normal(size=(5, 5), scale=noise_scale)
    mapy = mapy + rng.normal(size=(5, 5), scale=noise_scale)
    return mapx, mapy


def warp_from_grid(
    image: np.ndarray, mask: np.ndarray, mapx: np.ndarray, mapy: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic part of `random_warp`: remap through the grid, umeyama target.

    The grid is bilinearly upsampled to `1.25 * size` and sliced `[size/8, 9 size/8]`
    (the original's 80 px and `[8:72]` at 64 px) to give the `cv2.remap` maps of the
    warped input. The target is `cv2.warpAffine` with the umeyama similarity from the
    noisy grid to the regular grid `linspace(0, size, 5)`; the mask follows the target.
    As in the original, the remap samples half an output pixel further along x and y
    than the target (with zero noise, warped(u) == target(u + 0.5) exactly); kept for
    fidelity: a constant sub-pixel offset between input and target.

    Args:
        image: `(256, 256, 3) float32` in `[-1, 1]`.
        mask: `(256, 256)` or `(256, 256, 1) float32` in `[0, 1]`.
        mapx, mapy: `(5, 5)` grid point coordinates from `warp_grid`.
        size: int. Output side; a positive multiple of 8 (64, 128, 256 as the original).

    Returns:
        `(warped, target, mask)`: `(size, size, 3)`, `(size, size, 3)`,
        `(size, size, 1)`, float32.

    Raises:
        ValueError: `size` is not a positive multiple of 8.
    """
    if size <= 0 or size % 8:
        raise FaceswapError(
            f"size must be a positive multiple of 8 (e.g. 64, 128, 256); got {size}."
        )
    interp = size * 5 // 4
    cut = slice(interp // 10, 9 * interp // 10)
    interp_mapx = cv2.resize(mapx, (interp, interp))[cut, cut].astype(np.float32)
    interp_mapy = cv2.resize(mapy, (interp, interp))[cut, cut].astype(np.float32)
    image = np.asarray(image, np.float32)
    warped = cv2.remap(image, interp_mapx, interp_mapy, cv2.INTER_LINEAR)
    src_points = np.stack([mapx.ravel(), mapy.ravel()], axis=-1)  # (25, 2) x, y
    grid = np.linspace(0, size, 5)
    dst_points = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)  # (25, 2)
    matrix = umeyama(src_points, dst_points, True)[:2]
    target = cv2.warpAffine(image, matrix, (size, size))
    target_mask = cv2.warpAffine(_as_2d(mask), matrix, (size, size))[..., None]
    return warped, target, target_mask


def random_warp(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The original's `random_warp_rev`: a locally warped input and an aligned target.

    `warp_grid(rng)` then `warp_from_grid(image, mask, mapx, mapy, size)`; see those.

    Returns:
        `(warped, target, mask)`: `(size, size, 3)`, `(size, size, 3)`,
        `(size, size, 1)`, float32.
    """
    mapx, mapy = warp_grid(rng)
    return warp_from_grid(image, mask, mapx, mapy, size)


def motion_blur_kernel(size: int, angle: float) -> np.ndarray:
    """A normalised line kernel `(size, size) float64` rotated by `angle` degrees."""
    kernel = np.zeros((size, size))
    kernel[(size - 1) // 2, :] = 1.0
    kernel = np.clip(ndimage.rotate(kernel, angle, reshape=False), 0.0, 1.0)
    return kernel / kernel.sum()


def motion_blur(images: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Blurs every image with one random line kernel (size 5-11, angle U(-180, 180)).

    Args:
        images: list of `(H, W, C) float32` arrays (warped and target alike).
        rng: np.random.Generator. Draws the kernel size, then the angle.

    Returns:
        A new list of float32 arrays of the same shapes.
    """
    size = int(rng.choice(MOTION_BLUR_SIZES))
    kernel = motion_blur_kernel(size, rng.uniform(-180.0, 180.0))
    return [cv2.filter2D(np.asarray(x, np.float32), -1, kernel) for x in images]


def augment(
    image256: np.ndarray,
    mask256: np.ndarray,
    rng: np.random.Generator,
    size: int,
    config: AugmentConfig = AugmentConfig(),
    color_reference: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One training sample from one face, in the original's order of steps.

    Args:
        image256: `(256, 256, 3) float32` RGB in `[-1, 1]`.
        mask256: `(256, 256)` or `(256, 256, 1) float32` eye mask in `[0, 1]`.
        rng: np.random.Generator. Every random choice comes from it.
        size: int. Model input side, a positive multiple of 8.
        config: AugmentConfig.
        color_reference: the colour-match reference: one face `(256, 256, 3)` or a
            pool `(N, 256, 256, 3)` to draw one from (the original draws from A and
            B), uint8 RGB or float32 in `[-1, 1]`. None skips the colour match.

    Returns:
        `(warped (size, size, 3), target (size, size, 3), eye_mask (size, size, 1))`,
        float32; images in `[-1, 1]`, mask in `[0, 1]` (zeros if not `use_bm_eyes`).

    Raises:
        ValueError: the image or mask is not 256x256.
    """
    if image256.shape != (FACE_SIZE, FACE_SIZE, 3):
        raise FaceswapError(f"image256 must be (256, 256, 3); got {image256.shape}.")
    if _as_2d(mask256).shape != (FACE_SIZE, FACE_SIZE):
        raise FaceswapError(
            f"mask256 must be (256, 256) or (256, 256, 1); got {np.shape(mask256)}."
        )
    image = np.asarray(image256, np.float32)
    if rng.uniform() < config.prob_random_color_match and color_reference is not None:
        reference = color_reference
        if reference.ndim == 4:
            reference = reference[rng.integers(len(reference))]
        if reference.dtype == np.uint8:
            reference = to_model_range(reference)
        image = random_color_match(
            image, reference, rng, overflow=config.color_match_overflow
        )
    mask = (
        _as_2d(mask256) if config.use_bm_eyes else np.zeros(image.shape[:2], np.float32)
    )
    image, mask = random_transform(
        image,
        mask,
        rng,
        config.rotation_range,
        config.zoom_range,
        config.shift_range,
        config.flip_prob,
    )
    warped, target, mask = random_warp(image, mask, rng, size)
    if rng.uniform() < MOTION_BLUR_PROB and config.use_da_motion_blur:
        warped, target = motion_blur([warped, target], rng)
    return (
        np.clip(warped, -1.0, 1.0),
        np.clip(target, -1.0, 1.0),
        np.clip(mask, 0.0, 1.0, dtype=np.float32),
    )
