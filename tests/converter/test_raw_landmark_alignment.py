"""The converter aligns on the raw MTCNN points (faceswap-GAN v2.2); the smoothed box
only sets the crop side and the paste-back region. Real frames of person_a.mp4."""

import numpy as np
import pytest

from converter.config import ConverterConfig
from converter.pipeline import VideoConverter, box_mask_in_crop
from faceswap_gan.faces.alignment import align, unalign
from faceswap_gan.faces.tracking import TrackedFace

HISTORIES = {  # name -> (config changes, frames of history before the last frame)
    "no smoothing": ({"use_smoothed_bbox": False}, 0),
    "kalman, fresh track": ({}, 0),
    "kalman, 24 frames": ({}, 24),
    "kalman 1e-2, 12 frames": ({"kf_noise_coef": 1e-2}, 12),
    "ema, 24 frames": ({"use_kalman_filter": False}, 24),
}


@pytest.fixture(scope="module")
def frames(clip_a, first_frames):
    return first_frames(clip_a, 25)  # (480, 480, 3) uint8 RGB, one face each.


@pytest.fixture(scope="module")
def aligned_last_frame(tiny_model, detector, frames):
    """Per history: (smoothed box, crop, matrix) of the last frame, via the pipeline's
    own tracker and `_align`; and the last frame's raw detection."""
    out = {}
    for name, (changes, history) in HISTORIES.items():
        converter = VideoConverter(tiny_model, ConverterConfig(**changes), detector)
        for frame in frames[len(frames) - 1 - history :]:
            tracked = converter.tracker.update(detector.detect(frame))
        crops, matrices, _ = converter._align(frames[-1], tracked)
        out[name] = (tracked[0].box, crops[0], matrices[0])
    return out, detector.detect(frames[-1])[0]


@pytest.mark.slow
def test_aligned_crop_is_the_raw_detections_whatever_the_smoothed_box(
    aligned_last_frame, frames
):
    results, face = aligned_last_frame
    boxes = np.stack([box for box, _, _ in results.values()])
    assert np.ptp(boxes, axis=0).max() > 2.0  # The histories gave different boxes.
    per_unit_side = []
    for box, crop, matrix in results.values():
        size = crop.shape[0]
        expected_crop, expected_matrix = align(frames[-1], face.landmarks5, size)
        np.testing.assert_array_equal(crop, expected_crop)
        np.testing.assert_allclose(matrix, expected_matrix, atol=1e-9)
        # The crop side follows the smoothed box; the alignment itself does not:
        # the matrix for a unit-side crop is the same for every history.
        assert size == int(round(max(box[2:] - box[:2])))
        per_unit_side.append(matrix / size)
    for matrix in per_unit_side[1:]:
        np.testing.assert_allclose(matrix, per_unit_side[0], atol=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_shifting_the_smoothed_box_leaves_the_aligned_crop_unchanged(
    tiny_model, detector, frames, seed
):
    """Property: any box of the same side (same crop size) gives the same crop."""
    frame = frames[3 * seed]
    (face,) = detector.detect(frame)
    converter = VideoConverter(tiny_model, ConverterConfig(), detector)
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(3):
        shift = np.tile(rng.uniform(-25, 25, 2), 2)  # Same shift for both corners.
        tracked = TrackedFace(0, face.box + shift, face.landmarks5, True)
        crops.append(converter._align(frame, [tracked])[0][0])
    for crop in crops[1:]:
        np.testing.assert_array_equal(crop, crops[0])


def test_swap_is_pasted_back_only_inside_the_smoothed_box(tiny_model, detector, frames):
    frame = frames[0]
    (face,) = detector.detect(frame)
    config = ConverterConfig(output_type="single", watermark=False)
    x0, y0, x1, y1 = face.box
    upper_half = np.array([x0, y0, x1, (y0 + y1) / 2], np.float32)  # Eyes, not mouth.
    changed = {}
    for name, box in (("whole box", face.box), ("upper half", upper_half)):
        converter = VideoConverter(tiny_model, config, detector)
        converter.tracker.update = lambda faces, box=box: [
            TrackedFace(0, box, faces[0].landmarks5, True)
        ]
        output = converter.convert_frame(frame)[0]
        changed[name] = np.any(output != frame, axis=-1)
    lower = np.zeros(frame.shape[:2], bool)
    lower[int(np.ceil(upper_half[3])) + 1 :] = True  # 1 px slack: bilinear unalign.
    assert changed["whole box"][lower].sum() > 1000  # The swap reaches the mouth...
    assert not np.any(changed["upper half"][lower])  # ...unless the box stops it.
    assert changed["upper half"].sum() > 1000


def test_box_mask_in_crop_maps_back_onto_the_box(detector, frames):
    frame = frames[0]
    (face,) = detector.detect(frame)
    box = face.box + np.array([30, -10, -40, 500], np.float32)  # Past the bottom.
    _, matrix = align(frame, face.landmarks5, 256)
    mask = box_mask_in_crop(box, matrix, 256, frame.shape)
    assert mask.dtype == np.float32 and set(np.unique(mask)) == {0.0, 1.0}
    in_frame = unalign(mask, matrix, frame.shape) > 0.5
    covered = unalign(np.ones((256, 256), np.float32), matrix, frame.shape) > 0.5
    inside = np.zeros(frame.shape[:2], bool)
    x0, y0, x1, y1 = np.round(box).astype(int)
    inside[max(y0, 0) : y1, max(x0, 0) : x1] = True  # numpy clips y1 to 480.
    expected = inside & covered  # The box (clipped to the frame) within the crop.
    assert expected.sum() > 20000 and (covered & ~inside).sum() > 5000
    mismatch = in_frame ^ expected
    assert mismatch.sum() < 0.02 * expected.sum()  # Resampling at the edges only.
    edges = (
        np.abs(np.diff(expected.astype(int), axis=0)).sum()
        + np.abs(np.diff(expected.astype(int), axis=1)).sum()
    )
    assert mismatch.sum() <= 2 * edges
