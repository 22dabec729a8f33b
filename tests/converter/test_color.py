"""Colour corrections on real face crops: statistics matched inside the mask only."""

import cv2
import numpy as np
import pytest
from skimage.exposure import match_histograms

from converter.color import (
    COLOR_CORRECTIONS,
    adain,
    adain_xyz,
    hist_match,
    keep,
    weighted_mean_std,
)
from converter.config import ColorCorrectionType
from faceswap_gan.images import list_images, read_image


@pytest.fixture(scope="module")
def pair(faces_a, faces_b):
    """A real face of A (swapped stand-in), a face of B (reference) and a face mask."""
    swapped = read_image(list_images(faces_a)[0]).astype(np.float32) / 255
    original = read_image(list_images(faces_b)[0]).astype(np.float32) / 255
    mask = np.zeros(swapped.shape[:2], np.float32)
    mask[64:192, 80:176] = 1.0  # Central face region of the 256x256 crops.
    return swapped, original, mask


def _masked(image, mask):
    return image[mask > 0.5]  # (M, 3)


def test_dict_covers_every_type():
    assert set(COLOR_CORRECTIONS) == set(ColorCorrectionType)


def test_histmatch_matches_the_cdf_inside_the_mask(pair):
    swapped, original, mask = pair
    out = hist_match(swapped, original, mask)
    assert out.shape == swapped.shape and out.dtype == np.float32
    quantiles = np.linspace(0.05, 0.95, 19)
    for c in range(3):
        ref_q = np.quantile(_masked(original, mask)[:, c], quantiles)
        out_q = np.quantile(_masked(out, mask)[:, c], quantiles)
        before = np.abs(np.quantile(_masked(swapped, mask)[:, c], quantiles) - ref_q)
        assert np.abs(out_q - ref_q).max() < 2.5 / 255
        assert np.abs(out_q - ref_q).mean() < 0.1 * before.mean()


def test_histmatch_agrees_with_skimage_on_the_masked_pixels(pair):
    swapped, original, mask = pair
    ours = _masked(hist_match(swapped, original, mask), mask)
    theirs = match_histograms(
        _masked(swapped, mask)[None], _masked(original, mask)[None], channel_axis=-1
    )[0]
    assert np.abs(ours - theirs).mean() < 1.5 / 255


def test_histmatch_ignores_pixels_outside_the_mask(pair):
    swapped, original, mask = pair
    altered = original.copy()
    altered[mask == 0] = 1.0 - altered[mask == 0]  # Background changes only.
    np.testing.assert_allclose(
        hist_match(swapped, altered, mask), hist_match(swapped, original, mask)
    )


def test_adain_matches_mean_and_std_inside_the_mask(pair):
    swapped, original, mask = pair
    out = adain(swapped, original, mask)
    weights = mask.ravel()
    mean_o, std_o = weighted_mean_std(original, weights)
    mean_r, std_r = weighted_mean_std(out, weights)
    np.testing.assert_allclose(mean_r, mean_o, atol=2e-3)
    np.testing.assert_allclose(std_r, std_o, rtol=0.03)


def test_adain_xyz_matches_statistics_in_xyz(pair):
    swapped, original, mask = pair
    out = adain_xyz(swapped, original, mask)
    weights = mask.ravel()

    def xyz(image):  # independent reference: OpenCV's own conversion (v2.2's)
        return cv2.cvtColor(image.astype(np.float32), cv2.COLOR_RGB2XYZ)

    mean_o, std_o = weighted_mean_std(xyz(original), weights)
    mean_r, std_r = weighted_mean_std(xyz(out), weights)
    np.testing.assert_allclose(mean_r, mean_o, atol=0.01)
    np.testing.assert_allclose(std_r, std_o, rtol=0.1)
    assert out.min() >= 0 and out.max() <= 1


def test_flat_channel_is_shifted_not_divided_by_zero(pair):
    _, original, mask = pair
    flat = np.full_like(original, 0.2)
    out = adain(flat, original, mask)
    assert np.all(np.isfinite(out))
    mean_o, _ = weighted_mean_std(original, mask.ravel())
    np.testing.assert_allclose(out[100, 100], np.clip(mean_o, 0, 1), atol=1e-3)


@pytest.mark.parametrize("kind", list(ColorCorrectionType))
def test_empty_mask_returns_swapped(pair, kind):
    swapped, original, _ = pair
    empty = np.zeros(swapped.shape[:2], np.float32)
    np.testing.assert_array_equal(
        COLOR_CORRECTIONS[kind](swapped, original, empty), swapped
    )


def test_keep_and_mask_shape_error(pair):
    swapped, original, mask = pair
    np.testing.assert_array_equal(keep(swapped, original, mask), swapped)
    with pytest.raises(ValueError, match="mask must have shape"):
        adain(swapped, original, mask[:10])


def test_the_one_xyz_is_opencvs_and_round_trips(pair):
    from faceswap_gan.images import rgb_to_xyz, xyz_to_rgb

    image = pair[0].astype(np.float32)
    reference = cv2.cvtColor(image, cv2.COLOR_RGB2XYZ)
    np.testing.assert_allclose(rgb_to_xyz(image), reference, atol=1e-5)
    np.testing.assert_allclose(xyz_to_rgb(rgb_to_xyz(image)), image, atol=1e-5)
