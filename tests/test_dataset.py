"""FaceSet loading and the tf.data stream on the real face crops of tests/data/faces."""

import shutil
import warnings

import cv2
import numpy as np
import pytest

from faceswap_gan.augmentation import AugmentConfig
from faceswap_gan.dataset import FaceSet, make_dataset, measure_throughput
from faceswap_gan.images import list_images, read_image, write_image

NO_EYES = AugmentConfig(use_bm_eyes=False)


def _bright_mask(path):
    luminance = read_image(path).mean(axis=-1)
    return np.where(luminance > np.quantile(luminance, 0.8), 255, 0).astype(np.uint8)


@pytest.fixture(scope="module")
def masked_faces(tmp_path_factory, faces_a):
    """8 of A's faces (two resized to 200 px, one saved as PNG) + PNG masks by stem."""
    root = tmp_path_factory.mktemp("masked")
    faces, masks = root / "faces", root / "masks"
    for i, path in enumerate(list_images(faces_a)[:8]):
        image = read_image(path)
        if i < 2:
            image = cv2.resize(image, (200, 200))
        suffix = ".png" if i == 2 else ".jpg"
        write_image(faces / f"{path.stem}{suffix}", image)
        write_image(masks / f"{path.stem}.png", _bright_mask(path))
    return faces, masks


@pytest.fixture(scope="module")
def face_set_a(faces_a):
    return FaceSet(faces_a)


def _take(dataset, batches):
    return [tuple(t.numpy() for t in batch) for batch in dataset.take(batches)]


def test_face_set_loads_and_resizes_with_masks_by_stem(masked_faces):
    faces = FaceSet(*masked_faces)
    assert len(faces) == 8 and faces.skipped == []
    assert faces.images.shape == (8, 256, 256, 3) and faces.images.dtype == np.uint8
    assert faces.masks.shape == (8, 256, 256) and faces.masks.dtype == np.uint8
    assert set(np.unique(faces.masks)) == {0, 255}
    # Masks were made from the bright pixels of the very face they pair with.
    bright = faces.images[3].mean(-1) > np.quantile(faces.images[3].mean(-1), 0.8)
    assert (bright == (faces.masks[3] > 127)).mean() > 0.95


def test_dataset_elements_shapes_dtypes_ranges(masked_faces, faces_b):
    faces = FaceSet(*masked_faces)
    pool = np.concatenate([faces.images, FaceSet(faces_b).images])
    dataset = make_dataset(
        faces, 64, 2, seed=0, config=AugmentConfig(), color_references=pool
    )
    assert dataset.element_spec[0].shape == (2, 64, 64, 3)
    batches = _take(dataset, 3)
    for warped, target, mask in batches:
        assert warped.shape == target.shape == (2, 64, 64, 3)
        assert mask.shape == (2, 64, 64, 1)
        assert warped.dtype == target.dtype == mask.dtype == np.float32
        assert -1.0 <= min(warped.min(), target.min())
        assert max(warped.max(), target.max()) <= 1.0
        assert 0.0 <= mask.min() and mask.max() <= 1.0
    assert max(mask.max() for *_, mask in batches) > 0.5


def test_stream_resumes_exactly_from_a_start_index(face_set_a):
    config = AugmentConfig(use_bm_eyes=False, use_da_motion_blur=True)
    full = _take(make_dataset(face_set_a, 64, 2, seed=3, config=config), 5)
    resumed = _take(
        make_dataset(face_set_a, 64, 2, seed=3, config=config, start_index=6), 2
    )
    for expected, got in zip(full[3:], resumed, strict=True):
        for a, b in zip(expected, got, strict=True):
            np.testing.assert_array_equal(a, b)
    other_seed = _take(make_dataset(face_set_a, 64, 2, seed=4, config=config), 1)
    assert not np.allclose(full[0][1], other_seed[0][1])


def test_replica_pipelines_together_make_the_global_batches(face_set_a):
    """Two input pipelines (replica 0; replicas 1-2 of 3) each make only their own
    slices of the global batches of 6, from a resumed start: concatenated per global
    batch they equal the one-device stream, sample for sample."""
    config = AugmentConfig(use_bm_eyes=False, use_da_motion_blur=True)
    arguments = {"config": config, "start_index": 6}
    full = _take(make_dataset(face_set_a, 16, 6, seed=2, **arguments), 2)
    first = _take(
        make_dataset(
            face_set_a, 16, 6, seed=2, replicas=3, replica_ids=range(1), **arguments
        ),
        2,
    )
    rest = _take(
        make_dataset(
            face_set_a, 16, 6, seed=2, replicas=3, replica_ids=range(1, 3), **arguments
        ),
        4,
    )
    assert all(len(batch[0]) == 2 for batch in first + rest)  # per-replica batches
    for step, expected in enumerate(full):
        parts = [first[step], rest[2 * step], rest[2 * step + 1]]
        for field, want in enumerate(expected):
            got = np.concatenate([part[field] for part in parts])
            np.testing.assert_array_equal(got, want)
    assert not np.array_equal(first[0][1], first[1][1])  # a new global batch
    for kwargs, match in [
        ({"replicas": 4}, "divides batch_size"),
        ({"replicas": 3, "replica_ids": range(2, 4)}, "replica_ids"),
        ({"replicas": 3, "replica_ids": [0, 1]}, "replica_ids"),
    ]:
        with pytest.raises(ValueError, match=match):
            make_dataset(face_set_a, 16, 6, seed=2, config=config, **kwargs)


def test_every_face_is_used_once_per_epoch(tmp_path):
    # 4 flat faces of different grey levels: the target's centre reveals the face.
    levels = np.array([20, 90, 160, 230], np.uint8)
    images = np.broadcast_to(levels[:, None, None, None], (4, 256, 256, 3)).copy()
    faces = FaceSet.from_arrays(images)
    config = AugmentConfig(use_bm_eyes=False, prob_random_color_match=0.0)
    batches = _take(make_dataset(faces, 16, 2, seed=1, config=config), 4)
    centres = np.concatenate([target[:, 8, 8, 0] for _, target, _ in batches])
    found = np.argmin(np.abs((centres[:, None] + 1) * 127.5 - levels), axis=1)
    assert sorted(found[:4]) == sorted(found[4:]) == [0, 1, 2, 3]


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        FaceSet(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"No face images.*\.jpg.*\.png"):
        FaceSet(tmp_path / "empty")


def test_corrupt_image_is_skipped_with_one_warning(tmp_path, faces_a):
    for path in list_images(faces_a)[:10]:  # 1 of 11 unreadable: within 10 %
        shutil.copy(path, tmp_path / path.name)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.warns(UserWarning, match="broken.jpg") as record:
        faces = FaceSet(tmp_path)
    assert len([w for w in record if "broken.jpg" in str(w.message)]) == 1
    assert "Skipped 1" in str(record[0].message)
    assert faces.skipped == [bad] and len(faces) == 10


def test_masks_with_mismatched_names_are_listed(tmp_path, faces_a):
    paths = list_images(faces_a)[:7]
    for i, path in enumerate(paths):
        shutil.copy(path, tmp_path / path.name)
        name = path.name if i == 0 else f"other_{i}.png"
        write_image(tmp_path / "masks" / name, _bright_mask(path))
    with pytest.raises(ValueError, match=r"6 of 7 faces") as error:
        FaceSet(tmp_path, tmp_path / "masks")
    message = str(error.value)
    assert paths[1].name in message and paths[6].name not in message  # first 5 only
    with pytest.raises(FileNotFoundError, match="Eye-mask folder"):
        FaceSet(tmp_path, tmp_path / "no_masks")


def test_fewer_faces_than_a_batch(face_set_a):
    with pytest.raises(ValueError, match=r"16 usable face\(s\), fewer than one batch"):
        make_dataset(face_set_a, 64, 32, seed=0, config=NO_EYES)


def test_bad_arguments_are_rejected(face_set_a):
    for kwargs, match in [
        ({"image_size": 60}, "multiple of 8"),
        ({"batch_size": 0}, "batch_size"),
        ({"seed": -1}, "seed"),
        ({"start_index": -2}, "start_index"),
        ({"color_references": np.zeros((3, 64, 64, 3), np.uint8)}, "color_references"),
    ]:
        arguments = {"image_size": 64, "batch_size": 2, "seed": 0, "config": NO_EYES}
        with pytest.raises(ValueError, match=match):
            make_dataset(face_set_a, **{**arguments, **kwargs})


def test_eye_masks_requested_without_a_mask_folder_are_zeros(face_set_a):
    with pytest.warns(UserWarning, match="no eye-mask folder"):
        dataset = make_dataset(face_set_a, 64, 2, seed=0, config=AugmentConfig())
    ((_, _, mask),) = _take(dataset, 1)
    assert not mask.any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_dataset(face_set_a, 64, 2, seed=0, config=NO_EYES)


def test_measure_throughput_counts_batches_per_second():
    """A pipeline that takes 50 ms per batch delivers at most 20 batches/s."""
    import time

    import tensorflow as tf

    def slow(x):
        time.sleep(0.05)
        return x

    dataset = tf.data.Dataset.range(10).map(
        lambda x: tf.py_function(slow, [x], tf.int64)
    )
    rate = measure_throughput(dataset, batches=6)
    assert 5.0 < rate <= 20.0
    with pytest.raises(ValueError, match="batches must be >= 1"):
        measure_throughput(dataset, batches=0)
