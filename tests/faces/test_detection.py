"""FaceDetector on the bundled sample clips (real frames, real MTCNN weights)."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap_gan.faces.detection import FaceDetector, downscale_factor, square_boxes
from faceswap_gan.video import iter_video_frames

SAMPLES = Path(__file__).resolve().parents[2] / "faceswap_gan" / "data" / "samples"
CLIPS = ("person_a.mp4", "person_b.mp4")


def sample_frames(clip: str, every: int = 60) -> list[np.ndarray]:
    """Frames 0, 60, 120 (and the like) of a bundled clip."""
    return [frame for _, frame in iter_video_frames(SAMPLES / clip, every=every)]


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def frames() -> dict[str, list[np.ndarray]]:
    return {clip: sample_frames(clip) for clip in CLIPS}


@pytest.mark.parametrize("clip", CLIPS)
def test_one_face_per_sampled_frame(detector, frames, clip):
    for frame in frames[clip]:
        faces = detector.detect(frame)
        assert len(faces) == 1
        face = faces[0]
        x0, y0, x1, y1 = face.box
        assert face.score >= detector.detection_threshold
        assert face.box.dtype == np.float32 and face.landmarks5.shape == (5, 2)
        # Square unless clipped at the border; the face is large in these clips.
        assert abs((x1 - x0) - (y1 - y0)) < 1.0 and (x1 - x0) > 150
        # Landmarks lie inside the box, in the documented order.
        pts = face.landmarks5
        assert np.all((pts[:, 0] > x0) & (pts[:, 0] < x1))
        assert np.all((pts[:, 1] > y0) & (pts[:, 1] < y1))
        left_eye, right_eye, nose, mouth_left, mouth_right = pts
        assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
        assert (
            max(left_eye[1], right_eye[1])
            < nose[1]
            < min(mouth_left[1], mouth_right[1])
        )


def test_auto_downscale_maps_back_to_full_frame(detector, frames):
    frame = frames["person_a.mp4"][0]
    big = cv2.resize(frame, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    assert downscale_factor(*big.shape[:2]) == 3  # 960x960 >= 1280x720 pixels
    full = detector.detect(frame)[0]
    downscaling = FaceDetector(auto_downscale=True).detect(big)
    assert len(downscaling) == 1
    # MTCNN ran on a 320x320 copy; mapped back, the face is the full-size face x2
    # (up to detector noise at the other resolution: 3 % of the box side).
    tolerance = 0.03 * 2 * (full.box[2] - full.box[0])
    np.testing.assert_allclose(downscaling[0].box, 2 * full.box, atol=tolerance)
    np.testing.assert_allclose(
        downscaling[0].landmarks5, 2 * full.landmarks5, atol=tolerance
    )


def test_downscale_factor_steps():
    assert downscale_factor(1080, 1920) == 4
    assert downscale_factor(720, 1280) == 3
    assert downscale_factor(480, 858) == 2
    assert downscale_factor(480, 480) == 1


def test_square_boxes_side_is_mean_of_width_and_height_and_clipped():
    boxes = square_boxes(np.array([[10, 20, 50, 100], [-30, 0, 30, 40]]), 200, 200)
    # w=40, h=80 -> side 60 around (30, 60); w=60, h=40 -> side 50 around (0, 20).
    np.testing.assert_allclose(boxes[0], [0, 30, 60, 90], atol=1e-4)
    np.testing.assert_allclose(boxes[1], [0, 0, 25, 45], atol=1e-4)  # clipped


def test_min_face_area_and_faceless_frames(frames):
    frame = frames["person_a.mp4"][0]
    assert FaceDetector(min_face_area=500 * 500).detect(frame) == []
    assert FaceDetector().detect(np.full((240, 320, 3), 128, np.uint8)) == []


def test_detect_batch_equals_detect_per_frame(detector, frames):
    same_size = frames["person_b.mp4"] + [np.full((512, 512, 3), 128, np.uint8)]
    batch = detector.detect_batch(same_size)
    assert [len(faces) for faces in batch] == [1] * len(frames["person_b.mp4"]) + [0]
    for frame, faces in zip(same_size, batch):
        for alone, batched in zip(detector.detect(frame), faces):
            np.testing.assert_allclose(batched.box, alone.box, atol=1e-3)
            np.testing.assert_allclose(batched.landmarks5, alone.landmarks5, atol=1e-3)
    mixed = detector.detect_batch([frames["person_a.mp4"][0], same_size[0]])
    assert [len(faces) for faces in mixed] == [1, 1]
    alone = detector.detect(frames["person_a.mp4"][0])[0]
    side = alone.box[2] - alone.box[0]
    np.testing.assert_allclose(mixed[0][0].box, alone.box, atol=0.05 * side)
    assert detector.detect_batch([]) == []


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((64, 64), np.uint8),  # grayscale 2-D
        np.zeros((64, 64, 3), np.float32),  # float
        np.zeros((64, 64, 4), np.uint8),  # RGBA
    ],
)
def test_rejects_non_rgb_uint8(detector, bad):
    with pytest.raises(ValueError, match=r"\(H, W, 3\).*uint8"):
        detector.detect(bad)


def test_rejects_bad_threshold():
    with pytest.raises(ValueError, match="detection_threshold"):
        FaceDetector(detection_threshold=1.5)
