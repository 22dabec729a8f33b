"""umeyama (scikit-image) against known transforms; align/unalign on real frames."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage.transform import SimilarityTransform

from faceswap_gan.faces.alignment import (
    TARGET_LANDMARKS_5,
    align,
    transform_points,
    umeyama,
    unalign,
    warp_to_crop,
)
from faceswap_gan.faces.detection import FaceDetector
from faceswap_gan.video import iter_video_frames

SAMPLES = Path(__file__).resolve().parents[2] / "faceswap_gan" / "data" / "samples"


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def frame_and_face(detector):
    _, frame = next(iter_video_frames(SAMPLES / "person_b.mp4", every=1))
    return frame, detector.detect(frame)[0]


def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    truth = SimilarityTransform(scale=1.7, rotation=-0.6, translation=(12.0, -30.0))
    src = rng.uniform(0, 200, (5, 2))
    np.testing.assert_allclose(umeyama(src, truth(src)), truth.params, atol=1e-9)


def test_umeyama_without_scale_is_rigid_and_rejects_degenerate_points():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 200, (5, 2))
    dst = rng.uniform(0, 100, (5, 2))  # no exact fit
    rigid = umeyama(src, dst, estimate_scale=False)
    np.testing.assert_allclose(np.linalg.det(rigid[:2, :2]), 1.0, atol=1e-9)
    with pytest.raises(ValueError, match="degenerate"):
        umeyama(np.ones((5, 2)), dst)


def test_target_landmarks_are_the_originals_rows_cols_swapped():
    # (row, col) (0.3134, 0.3259) of the original = (x, y) (0.3259, 0.3134): left eye
    # top-left, right eye top-right, mouth below the nose.
    np.testing.assert_allclose(TARGET_LANDMARKS_5[0], [0.3259, 0.3134], atol=1e-4)
    np.testing.assert_allclose(TARGET_LANDMARKS_5[1], [0.7228, 0.3108], atol=1e-4)
    assert (
        TARGET_LANDMARKS_5[3, 1] > TARGET_LANDMARKS_5[2, 1] > TARGET_LANDMARKS_5[0, 1]
    )


@pytest.mark.parametrize("size", [64, 256])
def test_align_puts_landmarks_on_targets(frame_and_face, size):
    frame, face = frame_and_face
    crop, matrix = align(frame, face.landmarks5, size)
    assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
    mapped = transform_points(face.landmarks5, matrix)
    # A least-squares fit of 5 real points: each within 6 % of the crop side.
    assert np.abs(mapped - TARGET_LANDMARKS_5 * size).max() < 0.06 * size


def test_realigned_face_has_eyes_on_targets(detector, frame_and_face):
    frame, face = frame_and_face
    crop, _ = align(frame, face.landmarks5, 256)
    again = detector.detect(crop)
    assert len(again) == 1
    eyes = again[0].landmarks5[:2]
    assert np.abs(eyes - TARGET_LANDMARKS_5[:2] * 256).max() < 0.06 * 256


def test_unalign_is_the_inverse_of_align_to_within_a_pixel(frame_and_face):
    frame, face = frame_and_face
    height, width = frame.shape[:2]
    crop, matrix = align(frame, face.landmarks5, 256)
    # Geometry: warp coordinate maps crop -> frame and compare with the identity.
    ys, xs = np.mgrid[0:256, 0:256].astype(np.float32)
    inside = unalign(np.ones((256, 256), np.float32), matrix, (height, width))
    valid = cv2.erode((inside > 0.999).astype(np.uint8), np.ones((5, 5))) > 0
    back_x = unalign(xs, matrix, (height, width))
    back_y = unalign(ys, matrix, (height, width))
    expected = transform_points(
        np.stack(np.meshgrid(np.arange(width), np.arange(height)), -1).reshape(-1, 2),
        matrix,
    ).reshape(height, width, 2)
    assert valid.sum() > 0.2 * height * width
    assert np.abs(back_x - expected[..., 0])[valid].max() < 1.0
    assert np.abs(back_y - expected[..., 1])[valid].max() < 1.0
    # Pixels: align -> unalign -> align returns the crop (away from its border).
    restored = unalign(crop, matrix, (height, width))
    again, _ = align(restored, face.landmarks5, 256)
    diff = np.abs(again.astype(int) - crop.astype(int))[8:-8, 8:-8]
    assert np.median(diff) <= 2 and diff.mean() < 4


def test_unalign_keeps_channel_layout(frame_and_face):
    frame, face = frame_and_face
    _, matrix = align(frame, face.landmarks5, 64)
    mask = np.ones((64, 64, 1), np.float32)
    out = unalign(mask, matrix, frame.shape)
    assert out.shape == frame.shape[:2] + (1,) and out.dtype == np.float32
    assert warp_to_crop(out, matrix, 64).shape == (64, 64, 1)


def test_align_rejects_bad_input(frame_and_face):
    frame, face = frame_and_face
    with pytest.raises(ValueError, match="uint8"):
        align(frame.astype(np.float32), face.landmarks5, 64)
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        align(frame, face.landmarks5[:3], 64)
