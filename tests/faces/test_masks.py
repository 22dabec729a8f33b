"""Face-part and eye masks: geometry on synthetic landmarks, then real faces."""

import argparse
import itertools
import shutil

import cv2
import numpy as np
import pytest
from skimage.morphology import convex_hull_image

from faceswap_gan.commands import masks as masks_command
from faceswap_gan.faces.detection import FaceDetector
from faceswap_gan.faces.landmarks import LandmarkDetector
from faceswap_gan.faces.masks import (
    FACE_PARTS,
    crude_eye_mask,
    eye_mask,
    make_eye_masks,
    part_mask,
)
from faceswap_gan.images import list_images, read_image, read_mask, write_image


def synthetic_landmarks(size: int = 256) -> np.ndarray:
    """A plausible frontal iBUG-68 layout in a `size` crop, `(68, 2)` float32 (x, y)."""
    s = size / 256
    t = np.linspace(0, np.pi, 17)
    jaw = np.stack([128 - 100 * np.cos(t), 120 + 110 * np.sin(t)], 1)  # 0-16
    brow = np.stack([np.linspace(-40, 40, 5), -8 * np.cos(np.linspace(-1, 1, 5))], 1)
    brows = np.concatenate([brow + (78, 78), brow + (178, 78)])  # 17-26
    bridge = np.stack([np.full(4, 128.0), np.linspace(95, 140, 4)], 1)  # 27-30
    nostrils = np.stack([np.linspace(108, 148, 5), np.full(5, 150.0)], 1)  # 31-35
    a = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    eye = np.stack([-22 * np.cos(a), 9 * np.sin(a)], 1)
    eyes = np.concatenate([eye + (83, 100), eye + (173, 100)])  # 36-47
    b = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    outer = np.stack([128 - 40 * np.cos(b), 190 + 16 * np.sin(b)], 1)  # 48-59
    c = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    inner = np.stack([128 - 28 * np.cos(c), 190 + 6 * np.sin(c)], 1)  # 60-67
    points = np.concatenate([jaw, brows, bridge, nostrils, eyes, outer, inner])
    assert points.shape == (68, 2)
    return (points * s).astype(np.float32)


def centroid(mask: np.ndarray) -> np.ndarray:
    """(x, y) centre of mass of a `(H, W)` mask."""
    ys, xs = np.mgrid[0 : mask.shape[0], 0 : mask.shape[1]]
    return np.array([(xs * mask).sum(), (ys * mask).sum()]) / mask.sum()


@pytest.mark.parametrize("part", sorted(FACE_PARTS))
def test_each_part_covers_its_landmarks(part):
    points = synthetic_landmarks()
    mask = part_mask(points, [part], (256, 256))
    assert mask.dtype == np.float32 and 0 <= mask.min() and mask.max() == 1.0
    indices = [i for r in FACE_PARTS[part] for i in r]
    inside = np.round(points[indices]).astype(int).clip(0, 255)
    assert np.all(mask[inside[:, 1], inside[:, 0]] == 1.0)
    np.testing.assert_allclose(centroid(mask), points[indices].mean(0), atol=8)
    # Nothing far away: the corners of the crop stay empty.
    assert mask[:20, :20].max() == 0 and mask[-20:, -20:].max() == 0


def test_parts_are_in_anatomical_order():
    points = synthetic_landmarks()
    y = {p: centroid(part_mask(points, [p], (256, 256)))[1] for p in FACE_PARTS}
    assert y["eyebrows"] < y["eyes"] < y["nose"] < y["mouth"]


@pytest.mark.parametrize("pair", list(itertools.combinations(sorted(FACE_PARTS), 2)))
def test_a_pair_is_the_union_of_its_parts(pair):
    points = synthetic_landmarks()
    both = part_mask(points, pair, (256, 256))
    union = np.maximum(*(part_mask(points, [p], (256, 256)) for p in pair))
    np.testing.assert_array_equal(both, union)


def test_part_mask_dilation_and_blur():
    points = synthetic_landmarks()
    thin = part_mask(points, ["nose"], (256, 256), dilate=0)
    thick = part_mask(points, ["nose"], (256, 256), dilate=21)
    soft = part_mask(points, ["nose"], (256, 256), dilate=0, blur=15)
    assert thick.sum() > thin.sum() * 1.5 and np.all(thick >= thin)
    assert 0 < soft[(soft > 0) & (soft < 1)].size  # a blurred edge exists


def test_eye_mask_matches_an_independent_hull_dilation():
    points = synthetic_landmarks()
    mask = eye_mask(points, (256, 256))
    # Reference: scikit-image convex hulls of each eye, dilated by a 13x13 square.
    reference = np.zeros((256, 256), bool)
    for indices in FACE_PARTS["eyes"]:
        dots = np.zeros((256, 256), bool)
        pts = np.round(points[list(indices)]).astype(int)
        dots[pts[:, 1], pts[:, 0]] = True
        reference |= convex_hull_image(dots)
    reference = cv2.dilate(reference.astype(np.uint8), np.ones((13, 13))) > 0
    hard = mask > 0.5
    assert (hard & reference).sum() / (hard | reference).sum() > 0.9
    # Soft edge from the 7x7 blur, and zero below the eyes.
    assert np.any((mask > 0.05) & (mask < 0.95)) and mask[150:].max() == 0


def test_eye_mask_scales_with_crop_size():
    small = eye_mask(synthetic_landmarks(64), (64, 64))
    large = eye_mask(synthetic_landmarks(256), (256, 256))
    large_down = cv2.resize(large, (64, 64), interpolation=cv2.INTER_AREA)
    assert abs(small.sum() - large_down.sum()) < 0.15 * large_down.sum()


def test_crude_eye_mask_rectangles():
    landmarks5 = np.array([[80, 100], [170, 100], [128, 150], [90, 190], [160, 190]])
    box = np.array([28, 30, 228, 255])  # w = 200, h = 225
    mask = crude_eye_mask(landmarks5, box, (256, 256))
    # Two rectangles of (2 * 225 / 15) rows x (2 * 200 / 8) cols around each eye.
    assert mask.sum() == 2 * 30 * 50
    assert mask[100, 80] == 1 and mask[100, 170] == 1 and mask[150, 128] == 0
    assert mask[100 - 16, 80] == 0 and mask[100, 80 - 26] == 0


def test_masks_reject_bad_input():
    with pytest.raises(ValueError, match="parts"):
        part_mask(synthetic_landmarks(), ["ears"], (256, 256))
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        eye_mask(np.zeros((5, 2)), (256, 256))


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


def test_part_masks_on_a_real_face(faces_a, detector):
    image = read_image(list_images(faces_a)[0])
    face = detector.detect(image)[0]
    points = LandmarkDetector().detect(image, face.box[None])[0]
    centres = {p: centroid(part_mask(points, [p], image.shape)) for p in FACE_PARTS}
    eyes_mtcnn = face.landmarks5[:2].mean(0)
    mouth_mtcnn = face.landmarks5[3:].mean(0)
    # Independent check against MTCNN's points (7 % of the face box).
    tolerance = 0.07 * (face.box[2] - face.box[0])
    np.testing.assert_allclose(centres["eyes"], eyes_mtcnn, atol=tolerance)
    np.testing.assert_allclose(centres["mouth"], mouth_mtcnn, atol=tolerance)
    assert centres["eyebrows"][1] < centres["eyes"][1] < centres["nose"][1]
    assert centres["nose"][1] < centres["mouth"][1]


@pytest.mark.slow
def test_make_eye_masks_on_real_faces(faces_a, faces_b, detector, tmp_path):
    source = tmp_path / "faces"
    source.mkdir()
    picks = list_images(faces_a)[:2] + list_images(faces_b)[:2]
    for path in picks:
        shutil.copy(path, source / path.name.replace("frame", path.parent.name))
    write_image(source / "noface.jpg", np.full((256, 256, 3), 90, np.uint8))
    report = make_eye_masks(source, tmp_path / "masks", progress=False)
    assert (report.images, report.masks, report.no_landmarks) == (5, 5, ["noface.jpg"])
    assert read_mask(tmp_path / "masks" / "noface.jpg").max() == 0
    faces = sorted(source.glob("[ab][0-9]*.jpg"))
    assert len(faces) == 4
    for path in faces:
        mask = read_mask(tmp_path / "masks" / path.name)
        eyes = detector.detect(read_image(path))[0].landmarks5[:2]  # (2, 2) x, y
        assert mask.shape == (256, 256) and mask.max() > 0.9
        for eye, offset in zip(eyes, (0, 128)):  # image-left eye, image-right eye
            found = centroid(mask[:, offset : offset + 128]) + [offset, 0]
            np.testing.assert_allclose(found, eye, atol=6)


def test_masks_command(faces_b, tmp_path, capsys):
    source = tmp_path / "faces"
    source.mkdir()
    for path in list_images(faces_b)[:2]:
        shutil.copy(path, source / path.name)
    parser = argparse.ArgumentParser(prog="faceswap_gan")
    command = masks_command.add_parser(parser.add_subparsers())
    args = command.parse_args(["--faces", str(source), "--output", str(tmp_path / "m")])
    assert masks_command.run(args) == 0
    assert "Wrote 2 eye masks for 2 images" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted(
        p.name for p in source.iterdir()
    )
    from faceswap_gan.cli import main

    assert main(["masks", "--faces", str(tmp_path / "m" / "x"), "--output", "o"]) == 1
    assert "masks: error: Image folder not found" in capsys.readouterr().err
