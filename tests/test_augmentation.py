"""Augmentation on real face crops: determinism, ranges, warp geometry, colour match."""

import cv2
import numpy as np
import pytest

from faceswap_gan.augmentation import (
    AugmentConfig,
    augment,
    motion_blur,
    motion_blur_kernel,
    random_color_match,
    random_transform,
    random_warp,
    umeyama,
    warp_from_grid,
    warp_grid,
)
from faceswap_gan.images import list_images, read_image, to_model_range


@pytest.fixture(scope="module")
def face_pair(faces_a, faces_b):
    """One real face of A and one of B, (256, 256, 3) float32 in [-1, 1]."""
    a = to_model_range(read_image(list_images(faces_a)[0]))
    b = to_model_range(read_image(list_images(faces_b)[5]))
    return a, b


def _bright_mask(image, quantile=0.8):
    luminance = image.mean(axis=-1)
    return (luminance > np.quantile(luminance, quantile)).astype(np.float32)


def _similarity_lstsq(src, dst):
    """Independent reference: linear least squares over x' = a x - b y + tx, ..."""
    rows = []
    for x, y in src:
        rows += [[x, -y, 1, 0], [y, x, 0, 1]]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), dst.ravel(), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def _grid_points(mapx, mapy, size):
    src = np.stack([mapx.ravel(), mapy.ravel()], axis=-1)
    line = np.linspace(0, size, 5)
    dst = np.stack(np.meshgrid(line, line), axis=-1).reshape(-1, 2)
    return src, dst


def test_umeyama_equals_least_squares_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 256, size=(25, 2))
    angle, scale, shift = 0.3, 0.7, np.array([5.0, -12.0])
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    )
    exact = src @ (scale * rotation).T + shift
    np.testing.assert_allclose(umeyama(src, exact)[:2, :2], scale * rotation, atol=1e-9)
    noisy = exact + rng.normal(scale=3.0, size=exact.shape)
    np.testing.assert_allclose(
        umeyama(src, noisy)[:2], _similarity_lstsq(src, noisy), atol=1e-8
    )


@pytest.mark.parametrize("size", [64, 128])
def test_zero_noise_warp_is_the_target_up_to_half_a_pixel(face_pair, size):
    image = face_pair[0]
    mask = _bright_mask(image)
    mapx, mapy = warp_grid(np.random.default_rng(1), coverage=90, noise_scale=0.0)
    warped, target, _ = warp_from_grid(image, mask, mapx, mapy, size)
    # Regular grid: output pixel u samples x = 38 + u * 180 / size. The remap of the
    # original samples half an output pixel later than its warpAffine target.
    k = size / 180.0
    crop_to_out = np.array([[k, 0, -38 * k], [0, k, -38 * k]])
    np.testing.assert_allclose(
        cv2.warpAffine(image, crop_to_out, (size, size)), target, atol=1e-4
    )
    shifted = crop_to_out - np.array([[0, 0, 0.5], [0, 0, 0.5]])
    np.testing.assert_allclose(
        cv2.warpAffine(image, shifted, (size, size)), warped, atol=1e-4
    )


def test_noisy_warp_target_is_the_similarity_fit_of_the_grid(face_pair):
    image, size = face_pair[0], 64
    mask = _bright_mask(image)
    mapx, mapy = warp_grid(np.random.default_rng(2))
    warped, target, target_mask = warp_from_grid(image, mask, mapx, mapy, size)
    matrix = _similarity_lstsq(*_grid_points(mapx, mapy, size))
    np.testing.assert_allclose(
        cv2.warpAffine(image, matrix, (size, size)), target, atol=1e-4
    )
    np.testing.assert_allclose(
        cv2.warpAffine(mask, matrix, (size, size))[..., None], target_mask, atol=1e-4
    )
    # The input is locally warped, yet still roughly aligned with the target.
    difference = np.abs(warped - target).mean()
    unrelated = np.abs(warped - target[::-1]).mean()
    assert 0.02 < difference < 0.5 * unrelated


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mask_follows_the_target_geometry(face_pair, seed):
    image = face_pair[0]
    mask = _bright_mask(image)
    config = AugmentConfig(prob_random_color_match=0.0)
    _, target, target_mask = augment(
        image, mask, np.random.default_rng(seed), 64, config
    )
    _, other, _ = augment(image, mask, np.random.default_rng(seed + 10), 64, config)

    def iou(a, b):
        return (a & b).sum() / (a | b).sum()

    bright = target.mean(-1) > np.quantile(image.mean(-1), 0.8)
    assert iou(bright, target_mask[..., 0] > 0.5) > 0.7
    other_bright = other.mean(-1) > np.quantile(image.mean(-1), 0.8)
    assert iou(other_bright, target_mask[..., 0] > 0.5) < iou(
        bright, target_mask[..., 0] > 0.5
    )


def test_random_transform_moves_mask_and_image_together(face_pair):
    image = face_pair[0]
    mask = (image[..., 1:2] + 1.0) / 2.0  # (256, 256, 1): the green channel
    for seed in range(4):
        out, out_mask = random_transform(image, mask, np.random.default_rng(seed))
        assert out.shape == image.shape and out_mask.shape == mask.shape
        np.testing.assert_allclose(out_mask, (out[..., 1:2] + 1.0) / 2.0, atol=1e-5)
        assert not np.allclose(out, image, atol=0.05)


def test_augment_same_seed_same_arrays_other_seed_different(face_pair):
    image, reference = face_pair
    mask = _bright_mask(image)
    config = AugmentConfig(use_da_motion_blur=True)
    pool = np.stack([reference, image])

    def run(seed):
        return augment(image, mask, np.random.default_rng(seed), 64, config, pool)

    for first, second in zip(run(7), run(7), strict=True):
        np.testing.assert_array_equal(first, second)
    assert not np.allclose(run(7)[1], run(8)[1])


@pytest.mark.parametrize("size", [64, 128])
def test_augment_shapes_dtypes_ranges(face_pair, size):
    image, reference = face_pair
    config = AugmentConfig(use_da_motion_blur=True, prob_random_color_match=1.0)
    for seed in range(6):
        warped, target, mask = augment(
            image,
            _bright_mask(image),
            np.random.default_rng(seed),
            size,
            config,
            reference,
        )
        assert warped.shape == target.shape == (size, size, 3)
        assert mask.shape == (size, size, 1)
        for array, low in ((warped, -1.0), (target, -1.0), (mask, 0.0)):
            assert array.dtype == np.float32
            assert low <= array.min() and array.max() <= 1.0
        assert mask.max() > 0.5


def test_augment_without_eye_masks_gives_zero_masks(face_pair):
    image = face_pair[0]
    config = AugmentConfig(use_bm_eyes=False)
    *_, mask = augment(image, _bright_mask(image), np.random.default_rng(0), 64, config)
    assert not mask.any()


def _centre_stats(image):
    centre = image[60:-60, 60:-60].reshape(-1, 3)
    return centre.mean(axis=0), centre.std(axis=0)


def _stats_distance(image, reference):
    (m1, s1), (m2, s2) = _centre_stats(image), _centre_stats(reference)
    return np.abs(m1 - m2).sum() + np.abs(s1 - s2).sum()


@pytest.mark.parametrize("use_xyz_prob", [0.0, 1.0])
def test_color_match_moves_centre_stats_toward_reference(face_pair, use_xyz_prob):
    image, reference = face_pair
    before = _stats_distance(image, reference)
    for seed in range(5):
        result = random_color_match(
            image, reference, np.random.default_rng(seed), use_xyz_prob
        )
        assert result.dtype == np.float32 and result.shape == image.shape
        assert -1.0 <= result.min() and result.max() <= 1.0
        assert _stats_distance(result, reference) < before


def test_color_match_rgb_reaches_the_interpolated_statistics(face_pair):
    image = face_pair[0]
    reference = face_pair[1] * 0.5  # lower contrast: the transfer stays in range
    result = random_color_match(image, reference, np.random.default_rng(3), 0.0)
    replay = np.random.default_rng(3)
    replay.random()  # colour-space draw
    ratio = replay.uniform()
    (ms, ss), (mt, st) = _centre_stats(image), _centre_stats(reference)
    mean, std = _centre_stats(result)
    np.testing.assert_allclose(mean, ratio * mt + (1 - ratio) * ms, atol=1e-4)
    np.testing.assert_allclose(std, ratio * st + (1 - ratio) * ss, atol=1e-4)


def _color_match_reference(image, reference, use_xyz, ratio, overflow):
    """Straight numpy port of the original `random_color_match` (RGB instead of BGR)."""
    src, tar = (image + 1.0) * 127.5, (reference + 1.0) * 127.5
    if use_xyz:
        src = cv2.cvtColor(src, cv2.COLOR_RGB2XYZ)
        tar = cv2.cvtColor(tar, cv2.COLOR_RGB2XYZ)
    (ms, ss), (mt, st) = _centre_stats(src), _centre_stats(tar)
    mt = ratio * mt + (1 - ratio) * ms
    st = ratio * st + (1 - ratio) * ss
    result = st * (src - ms) / (ss + 1e-7) + mt
    if overflow == "rescale":
        result = result - min(result.min(), 0)
        result = result * (255.0 / max(result.max(), 255))
    if use_xyz:
        result = cv2.cvtColor(result.astype(np.float32), cv2.COLOR_XYZ2RGB)
    return np.clip(result / 127.5 - 1.0, -1.0, 1.0)


@pytest.mark.parametrize("overflow", ["clip", "rescale"])
@pytest.mark.parametrize("use_xyz", [False, True])
def test_color_match_equals_a_direct_port_of_the_original(face_pair, overflow, use_xyz):
    image, reference = face_pair
    result = random_color_match(
        image, reference, np.random.default_rng(5), float(use_xyz), overflow
    )
    replay = np.random.default_rng(5)
    replay.random()  # colour-space draw
    expected = _color_match_reference(
        image, reference, use_xyz, replay.uniform(), overflow
    )
    np.testing.assert_allclose(result, expected, atol=2e-4)
    if overflow == "rescale" and not use_xyz:
        assert np.isclose(result.min(), -1.0, atol=1e-5)  # shifted to start at 0


def test_color_match_rejects_unknown_overflow(face_pair):
    image, reference = face_pair
    with pytest.raises(ValueError, match="clip"):
        random_color_match(image, reference, np.random.default_rng(0), overflow="x")


def test_motion_blur_kernel_and_effect(face_pair):
    for size in (5, 11):
        kernel = motion_blur_kernel(size, 30.0)
        assert kernel.shape == (size, size) and np.isclose(kernel.sum(), 1.0)
        assert kernel.min() >= 0.0
    image = face_pair[0]
    blurred, again = motion_blur([image, image.copy()], np.random.default_rng(4))
    np.testing.assert_array_equal(blurred, again)  # one kernel for all images
    sharpness = (
        np.abs(np.diff(image, axis=0)).mean() + np.abs(np.diff(image, 1, 1)).mean()
    )
    after = (
        np.abs(np.diff(blurred, axis=0)).mean() + np.abs(np.diff(blurred, 1, 1)).mean()
    )
    assert after < 0.8 * sharpness
    assert abs(blurred.mean() - image.mean()) < 0.01


def test_random_warp_draws_a_new_grid_per_call(face_pair):
    image = face_pair[0]
    mask = _bright_mask(image)
    rng = np.random.default_rng(0)
    first = random_warp(image, mask, rng, 64)
    second = random_warp(image, mask, rng, 64)
    assert not np.allclose(first[0], second[0])


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("prob_random_color_match", 1.5, r"\[0, 1\]"),
        ("flip_prob", -0.1, r"\[0, 1\]"),
        ("rotation_range", 200, r"\[0, 180\]"),
        ("zoom_range", 1.0, r"\[0, 1\)"),
        ("use_bm_eyes", "yes", "True or False"),
        ("color_match_overflow", "wrap", "clip"),
    ],
)
def test_augment_config_rejects_out_of_range(field, value, allowed):
    with pytest.raises(ValueError, match=allowed):
        AugmentConfig(**{field: value})


def test_bad_shapes_are_rejected(face_pair):
    image = face_pair[0]
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"\(256, 256, 3\)"):
        augment(image[:128], np.zeros((128, 128), np.float32), rng, 64)
    with pytest.raises(ValueError, match="multiple of 8"):
        random_warp(image, np.zeros((256, 256), np.float32), rng, 60)
