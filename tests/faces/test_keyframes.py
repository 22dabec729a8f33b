"""Keyframe detection (MTCNN on the pyramid levels near the faces' sizes), against
full MTCNN on the real clips."""

import threading

import numpy as np
import pytest

from faceswap_gan.errors import FaceswapError
from faceswap_gan.evaluation import geometry
from faceswap_gan.faces.keyframes import KeyframeDetector, ThreadedMap, pyramid_scales
from faceswap_gan.faces.tracking import box_iou


@pytest.mark.slow
def test_faces_equal_full_detection_from_a_few_pyramid_levels(
    detector, clip_a, first_frames
):
    from faceswap_gan.faces.landmarks import LandmarkDetector

    frames = first_frames(clip_a, 30)
    full = [detector.detect(frame) for frame in frames]
    fast_detector = KeyframeDetector(detector, fps=30, keyframe_seconds=0.25)
    fast = [fast_detector.detect(frame) for frame in frames]
    assert all(len(f) == 1 for f in full) and all(len(f) == 1 for f in fast)
    # Most frames were not keyframes, and PNet scanned a few small levels of the
    # pyramid, not the large ones that look for small faces.
    assert fast_detector.counts["keyframes"] <= 5
    height, width = frames[0].shape[:2]
    pyramid = sum(
        int(height * s) * int(width * s) for s in pyramid_scales(height, width)
    )
    assert fast_detector.counts["pixels"] <= 0.1 * pyramid * len(frames)
    # Inter-ocular distance as the project defines it (outer eye corners of the
    # 68-point net, geometry.inter_ocular_distance), on the full detection's box.
    landmarker = LandmarkDetector("face_api")
    errors = []
    for frame, a, b in zip(frames, full, fast):
        outer = landmarker.detect(frame, a[0].box[None])[0]
        distance = np.linalg.norm(a[0].landmarks5 - b[0].landmarks5, axis=1).mean()
        errors.append(distance / geometry.inter_ocular_distance(outer))
    # The same MTCNN on the levels that find the face: the same points (float
    # rounding aside) on almost every frame, and never far off.
    assert np.mean(np.asarray(errors) <= 1e-4) >= 0.9
    assert np.mean(errors) <= 0.02
    assert np.max(errors) <= 0.05
    # The boxes shake no more than full detection's (jitter: mean |2nd difference|).
    jitter_full = geometry.jitter(np.stack([f[0].box for f in full]))
    jitter_fast = geometry.jitter(np.stack([f[0].box for f in fast]))
    assert jitter_fast <= jitter_full * 1.001


@pytest.mark.slow
def test_tracked_points_have_no_systematic_offset_over_a_whole_clip(
    detector, clip_a, first_frames
):
    """Over the whole clip (6 s, 23 keyframes), the points are not framed
    systematically wider, narrower or shifted against full detection's: each
    point's mean offset and the mean ratio of the eye distances stay within
    0.75 % of the eye distance. (An earlier ONet tracker that kept one RNet
    proposal's framing for the whole clip put the mouth corners 1.3 % outside and
    the eyes 1.3 % wider.)"""
    frames = first_frames(clip_a, 180)
    fast_detector = KeyframeDetector(detector, fps=30, keyframe_seconds=0.25)
    pairs = [(detector.detect(f), fast_detector.detect(f)) for f in frames]
    full = np.stack([a[0].landmarks5 for a, b in pairs if a and b])  # (T, 5, 2)
    fast = np.stack([b[0].landmarks5 for a, b in pairs if a and b])
    assert len(full) >= 170
    eye = np.linalg.norm(full[:, 0] - full[:, 1], axis=1)  # (T,) px
    offsets = (fast - full) / eye[:, None, None]  # (T, 5, 2) in eye distances
    assert np.abs(offsets.mean(axis=0)).max() <= 0.0075
    ratio = np.linalg.norm(fast[:, 0] - fast[:, 1], axis=1) / eye
    assert abs(ratio.mean() - 1) <= 0.0075


@pytest.mark.slow
def test_a_lost_face_is_redetected_at_once(detector, clip_a, clip_b, first_frames):
    frames_a = first_frames(clip_a, 4)
    frame_b = first_frames(clip_b, 1)[0]
    fast = KeyframeDetector(detector, fps=30, keyframe_seconds=10)  # No scheduled one.
    for frame in frames_a:
        assert len(fast.detect(frame)) == 1
    # Cut to a frame without a face: nothing is found at the face's size, a
    # keyframe pass runs on that same frame, and nothing is returned.
    assert fast.detect(np.full_like(frames_a[0], 40)) == []
    assert fast.counts["redetections"] == 1
    # Cut to the other clip with its face moved away from where the track was.
    moved = np.ascontiguousarray(np.roll(frame_b, (-150, 170), axis=(0, 1)))
    expected = detector.detect(moved)
    assert len(expected) == 1
    got = fast.detect(moved)
    assert len(got) == 1
    assert box_iou(got[0].box[None], expected[0].box[None])[0, 0] > 0.8
    # Back on clip A with the face in its old place: the moved face is lost on this
    # frame (A's face, found at its size, does not overlap it) and A's face is found.
    expected = detector.detect(frames_a[0])
    got = fast.detect(frames_a[0])
    assert fast.counts["redetections"] == 2
    assert box_iou(got[0].box[None], expected[0].box[None])[0, 0] > 0.8
    assert fast.counts["keyframes"] == 4  # first frame + the three cuts


def test_keyframe_interval_follows_fps_and_arguments_are_checked(detector):
    assert KeyframeDetector(detector, fps=30, keyframe_seconds=0.25).interval == 8
    assert KeyframeDetector(detector, fps=60, keyframe_seconds=0.25).interval == 15
    assert KeyframeDetector(detector, fps=25, keyframe_seconds=0).interval == 0
    for kwargs in (
        {"fps": 0},
        {"fps": float("nan")},
        {"keyframe_seconds": -1},
        {"new_face_fraction": 0},
        {"min_track_iou": 1.0},
        {"size_range": (1.2, 3.0)},
        {"size_range": (0.0, 3.0)},
        {"size_range": (0.5, 0.9)},
    ):
        with pytest.raises(FaceswapError):
            KeyframeDetector(detector, **kwargs)


def test_threaded_map_keeps_order_bounds_memory_and_raises():
    produced, consumed = [], []
    lock = threading.Lock()

    def items():
        for i in range(50):
            with lock:
                produced.append(i)
                # Reading runs at most two queues (+ one in each thread) ahead.
                assert len(produced) - len(consumed) <= 2 * 3 + 3
            yield i

    for result in ThreadedMap(lambda x: x * x, items(), depth=3):
        with lock:
            consumed.append(result)
    assert consumed == [i * i for i in range(50)]

    def fail(x):
        if x == 5:
            raise KeyError("boom")
        return x

    with pytest.raises(KeyError, match="boom"):
        list(ThreadedMap(fail, range(10), depth=2))
    with pytest.raises(FaceswapError):
        ThreadedMap(fail, range(3), depth=0)


@pytest.mark.slow
def test_plugs_into_the_video_converter(tiny_model, detector, clip_a, first_frames):
    from converter.config import ConverterConfig
    from converter.pipeline import VideoConverter

    frames = first_frames(clip_a, 6)
    fast = KeyframeDetector(detector, fps=30)
    converter = VideoConverter(
        tiny_model, ConverterConfig(output_type="single"), detector=fast
    )
    for frame in frames:
        output, tracked = converter.convert_frame(frame)
        assert [t.track_id for t in tracked] == [0] and tracked[0].detected
        x0, y0, x1, y1 = tracked[0].box.astype(int)
        inside = np.abs(output[y0:y1, x0:x1].astype(int) - frame[y0:y1, x0:x1])
        assert inside.mean() > 1.0  # The face was swapped...
        # ...and the rest left alone (the strip above it; the synthetic label is
        # at the bottom).
        assert np.array_equal(output[: y0 // 2], frame[: y0 // 2])
    assert fast.counts["keyframes"] == 1  # The other five searched a few levels.
