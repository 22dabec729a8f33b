"""Tests of the identity embedder on the real test crops (two women, 16 crops each)."""

import cv2
import numpy as np
import pytest

from faceswap_gan.faces.identity import (
    CHIP_POINT_INDICES,
    FaceEmbedder,
    chip_template,
    embedding_distance,
    face_chip,
    same_person,
)
from faceswap_gan.images import list_images, read_image


def _read_all(folder):
    return np.stack([read_image(path) for path in list_images(folder)])


@pytest.fixture(scope="module")
def embedder():
    return FaceEmbedder()


@pytest.fixture(scope="module")
def faces(faces_a, faces_b):
    return _read_all(faces_a), _read_all(faces_b)


@pytest.fixture(scope="module")
def embeddings(embedder, faces):
    return embedder.embed(faces[0]), embedder.embed(faces[1])


@pytest.mark.slow
def test_same_person_closer_than_threshold_different_people_further(embeddings):
    """All 120 + 120 same-person pairs and all 256 cross pairs of the test crops.

    Measured: person A (exaggerated grimaces) 0.20-0.55, person B 0.16-0.40, A vs B
    0.61-0.83.
    """
    emb_a, emb_b = embeddings
    assert emb_a.shape == (16, 128) and emb_a.dtype == np.float32
    upper = np.triu_indices(16, k=1)
    same_a = embedding_distance(emb_a[:, None], emb_a[None])[upper]  # (120,)
    same_b = embedding_distance(emb_b[:, None], emb_b[None])[upper]
    different = embedding_distance(emb_a[:, None], emb_b[None])  # (16, 16)
    assert same_a.max() < 0.6 and same_b.max() < 0.6
    assert different.min() > 0.6
    assert same_person(emb_a[0], emb_a[5]) and not same_person(emb_a[0], emb_b[0])


def test_embedding_survives_a_smaller_differently_framed_crop(
    embedder, faces, embeddings
):
    """A 96 px crop, zoomed in to 80% of the 256 px test crop, is still that person."""
    small = np.stack(
        [
            cv2.resize(face[26:230, 26:230], (96, 96), interpolation=cv2.INTER_AREA)
            for face in faces[1][:4]
        ]
    )
    emb = embedder.embed(small)
    assert np.all(embedding_distance(emb, embeddings[1][:4]) < 0.6)
    assert np.all(embedding_distance(emb[:, None], embeddings[0][None]) > 0.6)


def test_chip_puts_the_landmarks_on_dlibs_mean_face(embedder, faces):
    chips = embedder.chips(faces[0][:2])
    assert chips.shape == (2, 150, 150, 3) and chips.dtype == np.uint8
    points = embedder.landmarks.detect_batch(chips)  # (2, 68, 2) in the chips
    error = np.linalg.norm(
        points[:, list(CHIP_POINT_INDICES)] - chip_template(), axis=-1
    )
    assert np.median(error) < 4.0  # pixels of the 150 px chip


def test_face_chip_inverts_a_known_similarity():
    template = chip_template()  # (33, 2)
    angle, scale, shift = 0.3, 1.7, np.array([40.0, 25.0])
    rotation = scale * np.array(
        [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    )
    landmarks = np.zeros((68, 2))
    landmarks[list(CHIP_POINT_INDICES)] = template @ rotation.T + shift
    image = np.zeros((400, 400, 3), np.uint8)
    x, y = landmarks[30].astype(int)  # nose tip
    image[y - 3 : y + 4, x - 3 : x + 4] = 255
    chip = face_chip(image, landmarks)
    bright = np.argwhere(chip[..., 0] > 128).mean(axis=0)[::-1]  # (x, y)
    np.testing.assert_allclose(bright, template[CHIP_POINT_INDICES.index(30)], atol=1.0)


def test_distance_helpers():
    a, b = np.zeros(128, np.float32), np.full(128, 0.05, np.float32)
    assert embedding_distance(a, b) == pytest.approx(0.05 * np.sqrt(128))
    assert isinstance(embedding_distance(a, b), float)
    assert embedding_distance(np.stack([a, b]), b).shape == (2,)
    assert same_person(a, b, threshold=0.6) and not same_person(a, b, threshold=0.5)
    with pytest.raises(ValueError, match="single"):
        same_person(np.stack([a, b]), b)


def test_bad_faces_raise_value_error(embedder):
    with pytest.raises(ValueError, match="uint8"):
        embedder.embed(np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="N, H, W, 3"):
        embedder.embed(np.zeros((1, 64, 64), np.uint8))
    with pytest.raises(ValueError, match="150, 150, 3"):
        embedder.embed_chips(np.zeros((1, 64, 64, 3), np.uint8))
