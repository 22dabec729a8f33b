"""Tests of the 68-point landmark detector on the real test crops.

`TFJS_LANDMARKS` are the points @vladmandic/face-api 1.7.15 itself (TF.js 4.22 CPU
backend, Node 20) gives for the face tensor `image[40:230, 50:210]` of
`tests/data/faces/a/frame00000.jpg` (`FaceLandmark68Net.detectLandmarks(tensor)`, which
pads that 160x190 crop to a centred square and resizes it to 112x112), in pixels of that
crop. face-api takes exactly that crop for the detector box `[50, 40, 210, 230]`.
"""

import sys

import numpy as np
import pytest
import tensorflow as tf
from mtcnn import MTCNN

from faceswap_gan.errors import FaceswapError
from faceswap_gan.faces.landmarks import (
    LANDMARK_BACKENDS,
    LandmarkDetector,
    resize_bilinear_legacy,
)
from faceswap_gan.images import list_images, read_image

# fmt: off
TFJS_LANDMARKS = np.array([
    9.655, 87.147, 12.384, 105.258, 15.408, 122.541, 19.788, 136.838, 26.050, 152.494,
    35.595, 163.822, 46.764, 171.340, 60.425, 178.842, 79.191, 183.542, 96.676, 179.183,
    107.582, 172.559, 116.899, 165.870, 125.320, 154.099, 132.578, 139.446, 136.428,
    124.440, 140.748, 108.906, 142.536, 92.382, 24.351, 67.320, 32.886, 59.795, 43.312,
    58.284, 53.367, 59.992, 62.548, 63.882, 97.041, 66.732, 105.763, 63.921, 115.527,
    62.982, 126.007, 65.153, 132.737, 71.869, 79.679, 86.406, 80.212, 97.611, 80.656,
    107.604, 80.087, 117.330, 69.936, 125.565, 74.358, 126.911, 79.904, 128.379, 85.522,
    126.820, 90.064, 126.516, 37.462, 83.333, 43.667, 80.425, 52.676, 80.981, 60.463,
    86.166, 54.053, 89.139, 44.181, 88.075, 97.017, 87.649, 104.925, 82.575, 114.153,
    82.839, 119.409, 87.363, 113.635, 91.162, 104.436, 90.250, 59.450, 148.861, 66.982,
    143.027, 75.269, 139.573, 79.907, 140.139, 84.413, 139.086, 93.008, 144.556, 99.173,
    149.905, 92.683, 153.931, 86.383, 157.041, 79.386, 157.685, 73.301, 156.690, 66.017,
    154.470, 61.085, 148.955, 73.644, 145.797, 79.681, 145.854, 85.539, 146.311, 96.832,
    149.811, 85.448, 148.686, 79.873, 149.229, 73.847, 148.781,
]).reshape(68, 2)
# fmt: on


@pytest.fixture(scope="module")
def detector():
    return LandmarkDetector()


@pytest.fixture(scope="module")
def crops(faces_a, faces_b):
    """All 32 test crops with MTCNN's best face: (image, square box, eyes (2, 2))."""
    images = [read_image(path) for path in list_images(faces_a) + list_images(faces_b)]
    found = []
    for image, faces in zip(images, MTCNN().detect_faces(images), strict=True):
        face = max(faces, key=lambda row: row["confidence"])
        x, y, w, h = face["box"]
        centre, half = np.array([x + w / 2, y + h / 2]), (w + h) / 4
        box = np.concatenate([centre - half, centre + half])  # as Face.box: square
        eyes = np.array([face["keypoints"]["left_eye"], face["keypoints"]["right_eye"]])
        found.append((image, box, eyes.astype(np.float64)))
    return found


@pytest.fixture(scope="module")
def landmarks(detector, crops):
    images, boxes = [image for image, _, _ in crops], [box for _, box, _ in crops]
    return detector.detect_batch(images, np.stack(boxes))  # (32, 68, 2)


def test_detect_matches_face_api_tfjs(detector, faces_a):
    image = read_image(faces_a / "frame00000.jpg")
    points = detector.detect(image, np.array([[50, 40, 210, 230]]))
    assert points.shape == (1, 68, 2) and points.dtype == np.float32
    np.testing.assert_allclose(points[0], TFJS_LANDMARKS + [50, 40], atol=0.05)


def test_resize_matches_tf_legacy_bilinear():
    image = np.random.default_rng(0).uniform(0, 255, (19, 23, 3)).astype(np.float32)
    expected = tf.compat.v1.image.resize_bilinear(image[None], (7, 7))[0].numpy()
    np.testing.assert_allclose(resize_bilinear_legacy(image, 7), expected, atol=1e-3)


def test_points_lie_inside_the_face_box(landmarks, crops):
    boxes = np.stack([box for _, box, _ in crops])  # (32, 4)
    margin = 0.1 * (boxes[:, 2:] - boxes[:, :2])[:, None]  # (32, 1, 2)
    assert np.all(landmarks >= boxes[:, None, :2] - margin)
    assert np.all(landmarks <= boxes[:, None, 2:] + margin)
    inside = (landmarks >= boxes[:, None, :2]) & (landmarks <= boxes[:, None, 2:])
    assert inside.all(axis=-1).mean() > 0.98


def test_layout_is_plausible(landmarks, crops):
    left_eye = landmarks[:, 36:42].mean(axis=1)  # (32, 2), eye at the image's left
    right_eye = landmarks[:, 42:48].mean(axis=1)
    mouth = landmarks[:, 48:68].mean(axis=1)
    nose_tip = landmarks[:, 30]
    assert np.all(left_eye[:, 0] < right_eye[:, 0])
    assert np.all(np.maximum(left_eye[:, 1], right_eye[:, 1]) < nose_tip[:, 1])
    assert np.all(nose_tip[:, 1] < mouth[:, 1])
    assert np.all(
        landmarks[:, 36:48, 1].max(axis=1) < landmarks[:, 48:68, 1].min(axis=1)
    )
    box_width = np.array([box[2] - box[0] for _, box, _ in crops])
    jaw = landmarks[:, 0:17]
    assert np.all(jaw[:, 16, 0] - jaw[:, 0, 0] > 0.6 * box_width)
    assert np.all(jaw[:, 8, 1] > mouth[:, 1])  # chin below the mouth
    assert np.all(jaw[:, 0:8, 0].max(axis=1) < jaw[:, 8, 0])  # chin between the sides
    assert np.all(jaw[:, 9:17, 0].min(axis=1) > jaw[:, 8, 0])


def test_eye_centres_agree_with_mtcnn(landmarks, crops):
    """Eye centres (means of 36-41, 42-47) vs MTCNN's eye points, in inter-ocular units.

    Measured on the 32 crops: mean 0.067, 90th percentile 0.090, max 0.146 (MTCNN marks
    the pupil, the landmarks the eye outline; they part when the gaze is sideways, as in
    person A's crossed-eye grimaces).
    """
    centres = np.stack(
        [landmarks[:, 36:42].mean(axis=1), landmarks[:, 42:48].mean(axis=1)], axis=1
    )  # (32, 2, 2)
    eyes = np.stack([eyes for _, _, eyes in crops])  # (32, 2, 2)
    inter_ocular = np.linalg.norm(eyes[:, 1] - eyes[:, 0], axis=-1)  # (32,)
    error = np.linalg.norm(centres - eyes, axis=-1).max(axis=1) / inter_ocular
    assert error[0] < 0.10 and error[16] < 0.10  # first crop of each person
    assert np.mean(error < 0.10) >= 0.9
    assert error.mean() < 0.08 and error.max() < 0.16


def test_batched_boxes_equal_single_calls(detector, crops):
    image, box, _ = crops[0]
    shifted = box + [3, -2, 3, -2]
    both = detector.detect(image, np.stack([box, shifted]))
    assert both.shape == (2, 68, 2)
    np.testing.assert_allclose(both[1], detector.detect(image, shifted)[0], atol=1e-3)
    batch = detector.detect_batch(
        [crops[0][0], crops[1][0]], np.stack([crops[0][1], crops[1][1]])
    )
    np.testing.assert_allclose(batch[0], both[0], atol=1e-3)


def test_whole_image_is_one_face_without_boxes(detector, crops):
    image = crops[0][0]
    points = detector.detect(image)
    np.testing.assert_allclose(
        points, detector.detect(image, [[0, 0, image.shape[1], image.shape[0]]])
    )
    assert detector.detect(image, np.zeros((0, 4))).shape == (0, 68, 2)


def test_box_past_the_image_edge_maps_back(detector, crops, landmarks):
    """face-api clips the box to the image; points still come back in image pixels."""
    image, box, _ = crops[0]
    shift = int(box[0]) + 15  # cut the image so the box starts 15 px left of it
    points = detector.detect(image[:, shift:], box[None] - [shift, 0, shift, 0])[0]
    error = np.linalg.norm(points + [shift, 0] - landmarks[0], axis=-1)  # (68,)
    assert np.median(error) < 0.05 * (box[2] - box[0])


def test_bad_inputs_raise_value_error(detector):
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(image.astype(np.float32))
    with pytest.raises(ValueError, match="H, W, 3"):
        detector.detect(image[..., 0])
    with pytest.raises(ValueError, match="N, 4"):
        detector.detect(image, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="x1 > x0"):
        detector.detect(image, [[10, 10, 5, 20]])
    with pytest.raises(ValueError, match="does not overlap"):
        detector.detect(image, [[100, 100, 120, 120]])


def test_unknown_backend_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="face_api.*face_alignment"):
        LandmarkDetector("dlib")
    # Every command's --landmarks offers exactly the detector's backends.
    from faceswap_gan.cli import build_parser

    subcommands = build_parser()._subparsers._group_actions[0].choices
    for name in ("extract", "masks", "convert"):
        flag = next(a for a in subcommands[name]._actions if a.dest == "landmarks")
        assert tuple(flag.choices) == LANDMARK_BACKENDS, name


def test_face_alignment_missing_is_a_user_error_with_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "face_alignment", None)  # import now fails
    with pytest.raises(FaceswapError, match=r"pip install -e \.\[fan\].*face_api"):
        LandmarkDetector("face_alignment")
