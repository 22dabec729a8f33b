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


# FaceFusion's warp (facefusion/face_helper.py at 33cc6b4), reimplemented from its
# source as the reference: WARP_TEMPLATE_SET["dfl_whole_face"] (L36-43), scaled by the
# crop size and fitted with cv2.estimateAffinePartial2D(RANSAC, threshold 100) (L71-74),
# then cv2.warpAffine(BORDER_REPLICATE, INTER_AREA) (L77-80).
FACEFUSION_DFL_WHOLE_FACE = np.array(
    [
        [0.35342266, 0.39285716],
        [0.62797622, 0.39285716],
        [0.48660713, 0.54017860],
        [0.38839287, 0.68750011],
        [0.59821427, 0.68750011],
    ]
)


def _facefusion_warp(frame, landmarks5, size):
    matrix = cv2.estimateAffinePartial2D(
        landmarks5,
        FACEFUSION_DFL_WHOLE_FACE * size,
        method=cv2.RANSAC,
        ransacReprojThreshold=100,
    )[0]
    crop = cv2.warpAffine(
        frame,
        matrix,
        (size, size),
        borderMode=cv2.BORDER_REPLICATE,
        flags=cv2.INTER_AREA,
    )
    return crop, matrix


def test_dfl_whole_face_crop_is_facefusions_crop_on_real_faces(detector):
    """On the first frame of both bundled clips, `align(..., "dfl_whole_face")` gives
    FaceFusion's deep_swapper crop: the matrices map crop corners to within 0.05 px
    of each other and the crops differ by under 0.5 grey level on average."""
    from faceswap_gan.faces.alignment import alignment_matrix

    for clip in ("person_a.mp4", "person_b.mp4"):
        _, frame = next(iter_video_frames(SAMPLES / clip, every=1))
        landmarks = detector.detect(frame)[0].landmarks5
        for size in (64, 224):
            crop, matrix = align(frame, landmarks, size, "dfl_whole_face")
            theirs, their_matrix = _facefusion_warp(frame, landmarks, size)
            corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], float)
            back = transform_points(corners, cv2.invertAffineTransform(matrix))
            their_back = transform_points(
                corners, cv2.invertAffineTransform(their_matrix)
            )
            diff = np.abs(crop.astype(int) - theirs.astype(int))
            print(
                f"{clip} {size}px: corners {np.abs(back - their_back).max():.4f} px, "
                f"crop mean diff {diff.mean():.3f}"
            )
            assert np.abs(back - their_back).max() < 0.05
            assert diff.mean() < 0.5
        # The whole face with the forehead: smaller than the default crop's face.
        default = alignment_matrix(landmarks, 256)
        whole = alignment_matrix(landmarks, 256, "dfl_whole_face")
        scale = np.sqrt(
            abs(np.linalg.det(whole[:, :2]) / np.linalg.det(default[:, :2]))
        )
        assert 0.6 < scale < 0.75  # eye spacing 0.275 vs 0.397 of the side


def test_unknown_alignment_template_is_refused(frame_and_face):
    frame, face = frame_and_face
    with pytest.raises(ValueError, match="alignment must be one of"):
        align(frame, face.landmarks5, 64, "whole_face")


def _dfl_umeyama(src, dst):
    """DeepFaceLive's `Affine2DMat.umeyama` (xlib/math/Affine2DMat.py L42-110 at
    fc7b787), full-rank case, with scale: (2, 3)."""
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_demean, dst_demean = src - src_mean, dst - dst_mean
    a = np.dot(dst_demean.T, src_demean) / len(src)
    d = np.ones((2,))
    if np.linalg.det(a) < 0:
        d[1] = -1
    t = np.eye(3)
    u, s, v = np.linalg.svd(a)
    t[:2, :2] = np.dot(u, np.dot(np.diag(d), v))
    scale = 1.0 / src_demean.var(axis=0).sum() * np.dot(s, d)
    t[:2, 2] = dst_mean - scale * np.dot(t[:2, :2], src_mean.T)
    t[:2, :2] *= scale
    return t[:2]


def _deepfacelive_cut(frame, lmrks, size, coverage=2.2, y_offset=-0.08):
    """DeepFaceLive's `FLandmarks2D.calc_cut` + `cut` for 68 points (FLandmarks2D.py
    L112-234), as FaceAligner calls it by default (coverage 2.2, y offset -0.08)."""
    from faceswap_gan.faces.alignment import DEEPFACELIVE_UNI_LANDMARKS_68 as uni

    picked = np.concatenate(
        [lmrks[17:36], lmrks[36:37], lmrks[39:40], lmrks[42:43], lmrks[45:46]]
        + [lmrks[48:49], lmrks[54:55]]
    )
    mat = _dfl_umeyama(picked, uni)
    inv = cv2.invertAffineTransform(mat)
    pts = np.array([(0, 0), (1, 0), (1, 1), (0, 1), (0.5, 0.5)], np.float64)
    g_p = pts @ inv[:, :2].T + inv[:, 2]
    g_c = g_p[4].copy()

    def unit(p1, p2):
        x = (p2 - p1).astype(np.float32)
        return x / np.linalg.norm(x)

    tb_diag_vec, bt_diag_vec = unit(g_p[0], g_p[2]), unit(g_p[3], g_p[1])
    mod = np.linalg.norm(g_p[4] - g_p[0]) * coverage
    g_c += (g_p[3] - g_p[0]).astype(np.float32) * y_offset
    l_t = np.array(
        [g_c - tb_diag_vec * mod, g_c + bt_diag_vec * mod, g_c + tb_diag_vec * mod],
        np.float32,
    )
    matrix = cv2.getAffineTransform(l_t, np.float32(((0, 0), (size, 0), (size, size))))
    return cv2.warpAffine(frame, matrix, (size, size)), matrix


def test_deepfacelive_crop_is_deepfacelives_cut_on_real_landmarks(detector):
    """`deepfacelive_matrix` on real 68-point landmarks of both bundled clips equals
    DeepFaceLive's cut reimplemented from its source (corners within 0.05 px, crops
    within 0.5 grey level), and frames the face wider than the default crop."""
    from faceswap_gan.faces.alignment import alignment_matrix, deepfacelive_matrix
    from faceswap_gan.faces.landmarks import LandmarkDetector

    marker = LandmarkDetector()
    for clip in ("person_a.mp4", "person_b.mp4"):
        _, frame = next(iter_video_frames(SAMPLES / clip, every=1))
        face = detector.detect(frame)[0]
        points = marker.detect(frame, face.box[None])[0]
        matrix = deepfacelive_matrix(points, 224)
        crop = warp_to_crop(frame, matrix, 224, border=cv2.BORDER_CONSTANT)
        theirs, their_matrix = _deepfacelive_cut(frame, points.astype(np.float64), 224)
        corners = np.array([[0, 0], [224, 0], [0, 224], [224, 224]], float)
        back = transform_points(corners, cv2.invertAffineTransform(matrix))
        their_back = transform_points(corners, cv2.invertAffineTransform(their_matrix))
        diff = np.abs(crop.astype(int) - theirs.astype(int)).mean()
        print(
            f"{clip}: corners {np.abs(back - their_back).max():.4f} px, crop mean "
            f"diff {diff:.3f}"
        )
        assert np.abs(back - their_back).max() < 0.05 and diff < 0.5
        default = alignment_matrix(face.landmarks5, 224)
        scale = np.sqrt(np.linalg.det(matrix[:, :2]) / np.linalg.det(default[:, :2]))
        assert 0.4 < scale < 0.9  # a wider framing than the default crop
