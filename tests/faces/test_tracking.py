"""Box smoothing and per-face tracking, on synthetic tracks and real MTCNN boxes."""

import numpy as np
import pytest

from faceswap_gan.faces.detection import Face
from faceswap_gan.faces.tracking import (
    FaceTracker,
    KalmanBoxSmoother,
    MovingAverageBoxSmoother,
    box_iou,
    move_landmarks,
)


def _jitter(boxes):
    """Mean absolute second difference of box centres (pixels / frame^2)."""
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    return np.abs(np.diff(centres, n=2, axis=0)).mean()


def _face(box, landmarks=None):
    box = np.asarray(box, np.float32)
    if landmarks is None:
        landmarks = np.tile((box[:2] + box[2:]) / 2, (5, 1))
    return Face(box=box, landmarks5=np.asarray(landmarks, np.float32), score=0.99)


def test_kalman_follows_a_moving_box_with_bounded_lag():
    rng = np.random.default_rng(0)
    steps = np.arange(120)[:, None]
    truth = np.array([100, 80, 220, 200]) + steps * np.array([2.0, 0.5, 2.0, 0.5])
    noisy = truth + rng.normal(0, 3, truth.shape)
    smoother = KalmanBoxSmoother(1e-3)
    smoothed = np.array([smoother.update(box) for box in noisy])
    error = smoothed[30:] - truth[30:]
    # The output is the one-step prediction (as the original), so it leads by one
    # frame of motion at most (2 px); it never falls behind or drifts away.
    assert np.all(np.abs(error.mean(axis=0)) < 2.5)
    assert np.abs(error).mean() < np.abs(noisy - truth).mean()
    assert _jitter(smoothed) < 0.3 * _jitter(noisy)


def test_kalman_first_box_is_the_measurement_and_predict_extrapolates():
    smoother = KalmanBoxSmoother(1e-2)
    box = np.array([10.0, 20.0, 110.0, 120.0])
    np.testing.assert_allclose(smoother.update(box), box)
    for t in range(1, 40):
        smoother.update(box + 3 * t)
    predicted = smoother.predict()
    assert np.all(predicted > box + 3 * 39)  # Keeps moving with the learnt velocity.
    with pytest.raises(RuntimeError):
        KalmanBoxSmoother().predict()
    with pytest.raises(ValueError, match="> 0"):
        KalmanBoxSmoother(0.0)


def test_moving_average_is_the_originals_ema():
    smoother = MovingAverageBoxSmoother(0.65)
    smoother.update([0, 0, 10, 10])
    np.testing.assert_allclose(
        smoother.update([10, 10, 20, 20]), [3.5, 3.5, 13.5, 13.5]
    )
    np.testing.assert_allclose(smoother.predict(), [3.5, 3.5, 13.5, 13.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        MovingAverageBoxSmoother(1.2)


@pytest.mark.slow
def test_kalman_lowers_jitter_of_real_mtcnn_boxes(detector, clip_a, first_frames):
    raw = np.array([detector.detect(f)[0].box for f in first_frames(clip_a, 30)])
    for make in (lambda: KalmanBoxSmoother(1e-3), lambda: MovingAverageBoxSmoother()):
        tracker = FaceTracker(make)
        smoothed = np.array([tracker.update([_face(b)])[0].box for b in raw])
        assert _jitter(smoothed) < 0.5 * _jitter(raw)
        assert np.abs(smoothed - raw).mean() < 5.0  # Still on the face (pixels).


@pytest.mark.slow
def test_tracks_stay_with_their_faces_on_a_two_face_canvas(
    detector, clip_a, clip_b, first_frames
):
    frames_a = first_frames(clip_a, 12)
    frames_b = [f[16:496, 16:496] for f in first_frames(clip_b, 12)]
    ids_left, ids_right = set(), set()
    tracker = FaceTracker(lambda: KalmanBoxSmoother(1e-2))
    for t, (a, b) in enumerate(zip(frames_a, frames_b)):
        canvas = np.zeros((600, 1100, 3), np.uint8)
        shift = 8 * t  # A moves down-right, B moves up-left, both in one frame.
        canvas[shift // 2 : shift // 2 + 480, shift : shift + 480] = a
        canvas[96 - shift // 2 : 576 - shift // 2, 600 - shift : 1080 - shift] = b
        tracked = tracker.update(detector.detect(canvas))
        assert len(tracked) == 2 and all(face.detected for face in tracked)
        for face in tracked:
            centre_x = (face.box[0] + face.box[2]) / 2
            (ids_left if centre_x < 550 else ids_right).add(face.track_id)
    assert len(ids_left) == 1 and len(ids_right) == 1 and ids_left != ids_right


def test_missed_faces_keep_a_predicted_box_then_are_dropped():
    tracker = FaceTracker(lambda: KalmanBoxSmoother(1e-3), max_missed=3)
    first = tracker.update([_face([0, 0, 50, 50])])
    assert [f.track_id for f in first] == [0] and first[0].detected
    for _ in range(3):
        (kept,) = tracker.update([])
        assert not kept.detected and kept.track_id == 0
        assert box_iou(kept.box[None], first[0].box[None])[0, 0] > 0.9
    assert tracker.update([]) == []
    (new,) = tracker.update([_face([200, 200, 260, 260])])
    assert new.track_id == 1 and new.detected


@pytest.mark.slow
def test_detected_landmarks_are_the_raw_points_not_moved_with_the_box(
    detector, clip_a, first_frames
):
    """v2.2 aligns on MTCNN's raw points; the smoothed box must not move them."""
    moved_boxes = 0
    for make in (lambda: KalmanBoxSmoother(1e-3), lambda: MovingAverageBoxSmoother()):
        tracker = FaceTracker(make)
        for frame in first_frames(clip_a, 20):
            (face,) = detector.detect(frame)
            (tracked,) = tracker.update([face])
            assert tracked.detected
            np.testing.assert_array_equal(tracked.landmarks5, face.landmarks5)
            moved_boxes += np.abs(tracked.box - face.box).max() > 1.0
    assert moved_boxes > 10  # The boxes were smoothed, the points were not.


def test_missed_face_points_move_with_the_predicted_box(detector, clip_a, first_frames):
    """Real face sliding right 6 px/frame, then missed: points follow the prediction."""
    frame = first_frames(clip_a, 1)[0]
    tracker = FaceTracker(lambda: KalmanBoxSmoother(1e-2))
    for t in range(20):
        canvas = np.zeros((480, 720, 3), np.uint8)
        canvas[:, 6 * t : 6 * t + 480] = frame
        (face,) = detector.detect(canvas)
        (tracked,) = tracker.update([face])
    np.testing.assert_array_equal(tracked.landmarks5, face.landmarks5)
    (predicted,) = tracker.update([])
    assert not predicted.detected
    # The box keeps moving right (learnt velocity); the points move with it.
    shift = (predicted.box - tracked.box)[[0, 2]].mean()
    assert 3.0 < shift < 9.0
    np.testing.assert_allclose(
        predicted.landmarks5,
        move_landmarks(face.landmarks5, tracked.box, predicted.box),
        atol=1e-3,
    )
    np.testing.assert_allclose(
        (predicted.landmarks5 - face.landmarks5)[:, 0], shift, atol=1.0
    )


def test_move_landmarks_maps_box_onto_box():
    points = np.array([[30, 30], [70, 30], [50, 50], [35, 70], [65, 70]], np.float32)
    moved = move_landmarks(points, [0, 0, 100, 100], [10, 20, 60, 70])
    np.testing.assert_allclose(moved, points / 2 + [10, 20])
    assert moved.dtype == np.float32


def test_box_iou_reference_values():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    iou = box_iou(boxes, boxes)
    np.testing.assert_allclose(np.diag(iou), 1.0)
    np.testing.assert_allclose(iou[0, 1], 50 / 150)
    assert iou[0, 2] == 0
