"""MobileFaceNet identity embedder on the real test crops (two women, 16 crops each).

Measured here (cosine similarity of all 120 + 120 same-person and 256 cross pairs):
256 px crops: same A 0.50-0.93, same B 0.65-0.97, different -0.02-0.34, ROC AUC 1.0;
the same crops resized to 64 px (model-output size): same A 0.37-0.91, same B
0.63-0.95, different -0.05-0.37, ROC AUC 1.0. (face_api on the same pairs: AUC 1.0
but cosines 0.93-0.99 same vs 0.82-0.92 different.)
"""

import argparse
import shutil

import cv2
import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from faceswap_gan.evaluation.metrics import cosine_similarity
from faceswap_gan.faces import identity
from faceswap_gan.faces.mobilefacenet import (
    ARCFACE_TEMPLATE,
    EMBEDDING_SIZE,
    WEIGHTS_DIR,
    MobileFaceNetEmbedder,
    arcface_chip,
    landmarks5_from_68,
    load_mobilefacenet,
    normalise_chips,
)
from faceswap_gan.images import list_images, read_image


def _read_all(folder):
    return np.stack([read_image(path) for path in list_images(folder)])


def _resize(faces, size):
    return np.stack(
        [cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in faces]
    )


def _pairs(emb_a, emb_b):
    """(same-person cosines (240,), different-person cosines (256,))."""
    upper = np.triu_indices(len(emb_a), k=1)
    same = np.concatenate(
        [
            cosine_similarity(emb_a[:, None], emb_a[None])[upper],
            cosine_similarity(emb_b[:, None], emb_b[None])[upper],
        ]
    )
    return same, cosine_similarity(emb_a[:, None], emb_b[None]).ravel()


def _auc(same, different):
    """ROC AUC of "same person" by cosine: Mann-Whitney U / (n1 n2)."""
    u = mannwhitneyu(same, different, alternative="greater").statistic
    return u / (len(same) * len(different))


@pytest.fixture(scope="module")
def embedder():
    return MobileFaceNetEmbedder()


@pytest.fixture(scope="module")
def faces(faces_a, faces_b):
    return _read_all(faces_a), _read_all(faces_b)


@pytest.fixture(scope="module")
def chips(embedder, faces):
    """{256: (chips A, chips B), 64: ...}: ArcFace chips of the crops at that size."""
    return {
        size: tuple(
            embedder.chips(f if size == 256 else _resize(f, size)) for f in faces
        )
        for size in (256, 64)
    }


@pytest.mark.slow
@pytest.mark.parametrize("size", [256, 64])
def test_same_person_pairs_score_above_different_person_pairs(embedder, chips, size):
    emb_a, emb_b = (embedder.embed_chips(c) for c in chips[size])
    assert emb_a.shape == (16, EMBEDDING_SIZE) and emb_a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb_a, axis=1), 1.0, atol=1e-5)
    same, different = _pairs(emb_a, emb_b)
    assert _auc(same, different) >= 0.99  # measured 1.0 at 256 and at 64 px
    assert same.mean() - different.mean() > 0.5  # measured 0.63 (256), 0.61 (64)
    assert different.max() < 0.5  # measured 0.34 (256), 0.37 (64)


@pytest.mark.slow
def test_colour_order_and_range_beat_the_alternatives(embedder, chips):
    """RGB (x - 127.5) / 128 separates the two people best.

    The criterion is the gap between mean same-person and mean different-person
    cosine, which is what the evaluation's identity margin measures (AUC is 1.0 for
    most variants on two people). Measured at 256 / 64 px: RGB (x-127.5)/128 0.631 /
    0.608; RGB 0..1 0.599 / 0.582; BGR (x-127.5)/128 0.562 / 0.515; BGR 0..1 0.482 /
    0.441; 0..255 (either order) <= 0.036 (every face > 0.95 to every other). On
    24 crops each of five people (shared/data/faces) the chosen one also had the
    highest d' (6.7 vs 6.2, 6.2, 5.3, 2.7, 2.1).
    """

    def gap(transform, size):
        emb_a, emb_b = (embedder.model(transform(c)) for c in chips[size])
        same, different = _pairs(emb_a, emb_b)
        return same.mean() - different.mean()

    def variant(order, mean, scale):
        def transform(c):
            c = c[..., ::-1] if order == "BGR" else c
            return (c.astype(np.float32) - mean) / scale

        return transform

    alternatives = {
        ("RGB", 0.0, 255.0),
        ("RGB", 0.0, 1.0),
        ("BGR", 127.5, 128.0),
        ("BGR", 0.0, 255.0),
        ("BGR", 0.0, 1.0),
    }
    for size in (256, 64):
        chosen = gap(normalise_chips, size)
        np.testing.assert_allclose(
            chosen, gap(variant("RGB", 127.5, 128.0), size), atol=1e-6
        )
        for alternative in alternatives:
            assert chosen > gap(variant(*alternative), size) + 0.01, alternative


def test_the_literal_graph_collapses_and_the_prelu_repair_separates(embedder, chips):
    """Run as stored, the TF.js graph maps every face to about the same vector."""
    literal = load_mobilefacenet(repair=False)
    emb_a, emb_b = (literal(normalise_chips(c)) for c in chips[256])
    same, different = _pairs(emb_a, emb_b)
    assert different.min() > 0.99 and same.mean() - different.mean() < 0.01


def test_a_flipped_face_stays_close(embedder, faces):
    originals = faces[1][:4]
    emb = embedder.embed(originals)
    flipped = embedder.embed(np.ascontiguousarray(originals[:, :, ::-1]))
    assert np.all(cosine_similarity(emb, flipped) > 0.8)


def test_chips_put_the_five_points_on_the_arcface_template(embedder, chips):
    points = landmarks5_from_68(
        identity.refined_landmarks(embedder.landmarks, chips[256][0][:4])
    )  # (4, 5, 2) found again in the chips
    error = np.linalg.norm(points - ARCFACE_TEMPLATE, axis=-1)
    assert chips[256][0].shape == (16, 112, 112, 3)
    assert chips[256][0].dtype == np.uint8
    assert np.median(error) < 3.0  # pixels of the 112 px chip


def test_arcface_chip_inverts_a_known_similarity():
    angle, scale, shift = -0.25, 2.3, np.array([60.0, 35.0])
    rotation = scale * np.array(
        [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    )
    points = ARCFACE_TEMPLATE @ rotation.T + shift  # (5, 2) in a 400 px image
    image = np.zeros((400, 400, 3), np.uint8)
    x, y = points[2].astype(int)  # nose tip
    image[y - 4 : y + 5, x - 4 : x + 5] = 255
    chip = arcface_chip(image, points)
    bright = np.argwhere(chip[..., 0] > 128).mean(axis=0)[::-1]  # (x, y)
    np.testing.assert_allclose(bright, ARCFACE_TEMPLATE[2], atol=1.0)


def test_landmarks5_from_68():
    points = np.arange(136, dtype=np.float64).reshape(68, 2)
    five = landmarks5_from_68(points)
    np.testing.assert_allclose(five[0], points[36:42].mean(axis=0))
    np.testing.assert_allclose(five[1], points[42:48].mean(axis=0))
    np.testing.assert_allclose(five[2:], points[[30, 48, 54]])
    assert landmarks5_from_68(np.stack([points] * 3)).shape == (3, 5, 2)
    with pytest.raises(ValueError, match="68, 2"):
        landmarks5_from_68(np.zeros((5, 2)))


def test_small_batches_give_the_same_embeddings(embedder, chips):
    whole = embedder.embed_chips(chips[64][1])
    embedder.batch_size = 5
    try:
        batched = embedder.embed_chips(chips[64][1])
    finally:
        embedder.batch_size = 64
    np.testing.assert_allclose(batched, whole, atol=1e-5)
    assert embedder.embed(np.zeros((0, 64, 64, 3), np.uint8)).shape == (0, 192)


def test_bad_inputs_raise_value_error(embedder):
    with pytest.raises(ValueError, match="112, 112, 3"):
        embedder.embed_chips(np.zeros((1, 150, 150, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        embedder.embed(np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="5, 2"):
        arcface_chip(np.zeros((64, 64, 3), np.uint8), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="batch_size"):
        MobileFaceNetEmbedder(batch_size=0)


def test_missing_weights_raise_file_not_found_naming_the_path(tmp_path):
    missing = tmp_path / "no_such_folder"
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        load_mobilefacenet(missing)
    shutil.copy(WEIGHTS_DIR / "mobilefacenet.json", tmp_path)  # .bin left out
    with pytest.raises(FileNotFoundError, match="mobilefacenet.bin"):
        MobileFaceNetEmbedder(tmp_path)


def test_build_identity_embedder_and_the_cli_choices(embedder):
    from faceswap_gan.commands import evaluate as evaluate_command

    assert identity.IDENTITY_BACKENDS == ("mobilefacenet", "face_api")
    assert evaluate_command.IDENTITY_BACKENDS == identity.IDENTITY_BACKENDS
    parser = argparse.ArgumentParser()
    evaluate_command.add_parser(parser.add_subparsers())
    required = ["evaluate", "--model", "m", "--faces-a", "a", "--faces-b", "b"]
    args = parser.parse_args([*required, "--output", "o"])
    assert args.identity_backend == "mobilefacenet"
    assert isinstance(identity.build_identity_embedder(), MobileFaceNetEmbedder)
    assert embedder.backend == "mobilefacenet"
    assert identity.FaceEmbedder.backend == "face_api"
    with pytest.raises(ValueError, match="mobilefacenet.*face_api"):
        identity.build_identity_embedder("arcface")
