"""FaceTransformer with a real tiny FaceSwapGAN on real aligned faces."""

import numpy as np
import pytest

from converter.blending import feather_mask, roi_bounds
from converter.config import ConverterConfig
from converter.transformer import FaceTransformer
from faceswap_gan.images import list_images, read_image


class CountingModel:
    """Wraps a real model and records the batch shape of every `swap` call."""

    def __init__(self, model):
        self.model, self.calls = model, []
        self.image_size = model.image_size

    def swap(self, faces, direction):
        self.calls.append((faces.shape, direction))
        return self.model.swap(faces, direction)


@pytest.fixture(scope="module")
def crops(faces_a):
    """Three real 256x256 face crops of person A, (3, 256, 256, 3) uint8 RGB."""
    return np.stack([read_image(p) for p in list_images(faces_a)[:3]])


def test_all_faces_go_through_the_generator_in_one_batch(tiny_model, crops):
    model = CountingModel(tiny_model)
    result, alpha, raw = FaceTransformer(model, ConverterConfig()).transform(crops)
    assert model.calls == [((3, 64, 64, 3), "AtoB")]
    assert result.shape == raw.shape == crops.shape and result.dtype == np.uint8
    assert alpha.shape == crops.shape[:3] and alpha.dtype == np.float32
    assert 0 <= alpha.min() and alpha.max() <= 1 and alpha.max() > 0.1
    assert np.abs(result.astype(int) - crops).max() > 10  # The untrained swap shows.


def test_alpha_is_zero_outside_the_roi_and_result_is_the_blend(tiny_model, crops):
    config = ConverterConfig(roi_coverage=0.85, color_correction="adain")
    result, alpha, raw = FaceTransformer(tiny_model, config).transform(crops)
    start, stop = roi_bounds(256, 0.85)
    assert (start, stop) == (38, 218)
    outside = np.ones((256, 256), bool)
    outside[start:stop, start:stop] = False
    assert np.all(alpha[:, outside] == 0)
    np.testing.assert_array_equal(result[:, outside], crops[:, outside])
    np.testing.assert_array_equal(raw[:, outside], crops[:, outside])
    # Inside, alpha <= the feathered ROI mask, and result = alpha*raw + (1-alpha)*crop.
    assert np.all(
        alpha[:, start:stop, start:stop] <= feather_mask(stop - start, 0.85) + 1e-6
    )
    blend = alpha[..., None] * raw + (1 - alpha[..., None]) * crops
    assert np.abs(result - blend).max() <= 0.51


def test_zero_alpha_generator_returns_the_crops_unchanged(zero_alpha_model, crops):
    result, alpha, _ = FaceTransformer(zero_alpha_model, ConverterConfig()).transform(
        crops
    )
    assert alpha.max() < 1e-6
    np.testing.assert_array_equal(result, crops)


def test_direction_picks_the_decoder(zero_alpha_model, crops):
    """decoder_B has zero alpha here: AtoB (decoder_B) keeps the face, BtoA swaps it."""
    a_to_b = FaceTransformer(zero_alpha_model, ConverterConfig(direction="AtoB"))
    b_to_a = FaceTransformer(zero_alpha_model, ConverterConfig(direction="BtoA"))
    assert a_to_b.transform(crops)[1].max() < 1e-6
    assert b_to_a.transform(crops)[1].max() > 0.1


def test_part_masks_limit_the_swap(tiny_model, crops):
    parts = np.zeros(crops.shape[:3], np.float32)
    parts[:, 90:130, 70:190] = 1.0  # An eye band.
    config = ConverterConfig(segmentation="EYES_ONLY")
    result, alpha, _ = FaceTransformer(tiny_model, config).transform(crops, parts)
    assert np.all(alpha[parts == 0] == 0) and alpha[parts == 1].max() > 0.1
    np.testing.assert_array_equal(result[parts == 0], crops[parts == 0])
    with pytest.raises(ValueError, match="part_masks"):
        FaceTransformer(tiny_model, config).transform(crops)


def test_small_crops_keep_a_roi(tiny_model, crops):
    """The original sliced [m:-m]: m = int(9 * 0.1) = 0 gave an empty ROI (error)."""
    small = np.stack([crop[::28, ::28] for crop in crops])  # (3, 10, 10, 3)
    result, alpha, _ = FaceTransformer(tiny_model, ConverterConfig()).transform(small)
    assert result.shape == small.shape and alpha.shape == (3, 10, 10)
    assert roi_bounds(9, 0.9) == (0, 9)


def test_bad_crops_raise(tiny_model):
    transformer = FaceTransformer(tiny_model, ConverterConfig())
    with pytest.raises(ValueError, match=r"\(N, S, S, 3\) uint8"):
        transformer.transform(np.zeros((2, 64, 64, 3), np.float32))
    empty = transformer.transform(np.zeros((0, 64, 64, 3), np.uint8))
    assert [part.shape[0] for part in empty] == [0, 0, 0]
