"""Evaluation metrics on known cases; the evaluate report of a tiny trained model."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from faceswap_gan.evaluation import faces as face_eval
from faceswap_gan.evaluation import geometry, metrics
from faceswap_gan.evaluation.report import REPORT_KEYS
from faceswap_gan.images import (
    from_model_range,
    list_images,
    read_image,
    resize_faces,
    to_model_range,
)

SAMPLES = Path(__file__).resolve().parents[1] / "faceswap_gan" / "data" / "samples"


@pytest.fixture(scope="module")
def embedder():
    from faceswap_gan.faces.identity import FaceEmbedder

    return FaceEmbedder()


@pytest.fixture(scope="module")
def crops(faces_a, faces_b):
    """Real 256x256 crops: 8 of A, 8 of B (uint8 RGB)."""
    return {
        k: np.stack([read_image(p) for p in list_images(d)[:8]])
        for k, d in (("A", faces_a), ("B", faces_b))
    }


@pytest.fixture(scope="module")
def points_a(embedder, crops):
    """68 landmarks of A's crops, `(8, 68, 2)`."""
    return face_eval.detect_landmarks(embedder.landmarks, crops["A"])


def _image(seed, shape=(32, 32, 3)):
    return np.random.default_rng(seed).random(shape)


def test_identical_images_give_infinite_psnr_ssim_one_l1_zero():
    image = _image(0)
    mask = np.zeros(image.shape[:2])
    mask[8:20, 4:30] = 1.0
    for m in (None, mask):
        assert metrics.masked_psnr(image, image, m) == float("inf")
        assert metrics.masked_ssim(image, image, m) == pytest.approx(1.0)
        assert metrics.masked_l1(image, image, m) == 0.0


def test_full_mask_metrics_match_skimage():
    target, prediction = _image(1), _image(2)
    full = np.ones(target.shape[:2])
    expected_psnr = peak_signal_noise_ratio(target, prediction, data_range=1.0)
    expected_ssim = structural_similarity(
        target, prediction, data_range=1.0, channel_axis=-1
    )
    for m in (None, full):
        assert metrics.masked_psnr(target, prediction, m) == pytest.approx(
            expected_psnr
        )
        assert metrics.masked_ssim(target, prediction, m) == pytest.approx(
            expected_ssim
        )
        assert metrics.masked_l1(target, prediction, m) == pytest.approx(
            np.abs(target - prediction).mean()
        )


def test_binary_mask_counts_only_pixels_inside():
    target, prediction = _image(3), _image(4)
    mask = np.zeros(target.shape[:2])
    mask[5:15, 10:25] = 1.0
    changed = prediction.copy()
    changed[mask == 0] = 0.5  # Outside the mask: must not matter.
    inside = (target - prediction)[mask == 1]  # (150, 3)
    expected = 10 * np.log10(1.0 / np.mean(inside**2))
    assert metrics.masked_psnr(target, changed, mask) == pytest.approx(expected)
    assert metrics.masked_l1(target, changed, mask[..., None]) == pytest.approx(
        np.abs(inside).mean()
    )
    assert np.isnan(metrics.masked_psnr(target, prediction, np.zeros_like(mask)))
    with pytest.raises(ValueError, match="mask must be"):
        metrics.masked_psnr(target, prediction, np.ones((8, 8)))
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.masked_l1(target, prediction[:-1])


def test_identity_margin_of_real_face_equals_hand_computed(embedder, crops):
    emb_a = embedder.embed(crops["A"]).astype(np.float64)
    emb_b = embedder.embed(crops["B"]).astype(np.float64)

    def unit(v):
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    centre_a, centre_b = unit(emb_a).mean(0), unit(emb_b).mean(0)
    face = emb_a[0]
    by_hand = face @ centre_a / np.linalg.norm(face) / np.linalg.norm(
        centre_a
    ) - face @ centre_b / np.linalg.norm(face) / np.linalg.norm(centre_b)
    got = metrics.identity_margin(
        face, metrics.centroid(emb_a), metrics.centroid(emb_b)
    )
    assert got == pytest.approx(by_hand, abs=1e-9)
    margins = metrics.identity_margin(
        emb_a, metrics.centroid(emb_a), metrics.centroid(emb_b)
    )
    assert margins.shape == (8,) and np.all(margins > 0)  # A looks like A


def test_embed_crops_batches_and_normalises_like_embed(embedder, crops):
    from faceswap_gan.faces.identity import embed_crops

    faces = crops["A"][:5]
    whole = embedder.embed(faces)
    raw = embed_crops(embedder, list(faces), batch_size=2, normalise=False)
    assert raw.shape == (5, 128) and raw.dtype == np.float32
    np.testing.assert_allclose(raw, whole, atol=1e-5, rtol=0)
    unit = embed_crops(embedder, faces)
    assert unit.dtype == np.float64
    np.testing.assert_allclose(unit, metrics.unit_vectors(whole), atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1, atol=1e-12)
    empty = embed_crops(embedder, [])
    assert empty.shape == (0, 128) and empty.dtype == np.float64
    with pytest.raises(ValueError, match="batch_size"):
        embed_crops(embedder, faces, batch_size=0)


def test_retrieval_finds_the_right_person_on_held_out_real_faces(
    embedder, faces_a, faces_b
):
    emb = {
        k: embedder.embed(np.stack([read_image(p) for p in list_images(d)]))
        for k, d in (("A", faces_a), ("B", faces_b))
    }
    galleries = {k: v[:10] for k, v in emb.items()}
    for method in ("centroid", "nearest"):
        for person in ("A", "B"):
            found = metrics.retrieve(emb[person][10:], galleries, method)
            assert metrics.retrieval_accuracy(found, person) == 1.0, (method, person)
    # A query closest to gallery B's single face is labelled B by "nearest".
    galleries = {"A": emb["A"][:3], "B": emb["B"][:1]}
    assert metrics.retrieve(emb["B"][:1], galleries, "nearest") == ["B"]
    with pytest.raises(ValueError, match="method"):
        metrics.retrieve(emb["A"], galleries, "knn")


def test_landmark_error_of_shifted_set_is_shift_over_eye_distance(points_a):
    points = points_a[0]
    eyes = np.linalg.norm(points[36] - points[45])
    assert 40 < eyes < 200  # real landmarks of a 256-px crop
    assert geometry.landmark_error(points, points) == 0.0
    shifted = points + np.array([3.0, 4.0])
    assert geometry.landmark_error(points, shifted) == pytest.approx(5.0 / eyes)
    batch = geometry.landmark_error(points_a, points_a + np.array([0.0, 2.0]))
    assert batch.shape == (8,)
    np.testing.assert_allclose(batch, 2.0 / geometry.inter_ocular_distance(points_a))


def test_pose_difference_of_rotated_landmarks_is_the_rotation(points_a):
    shape = (256, 256)
    points = points_a[0]
    assert geometry.pose_difference(points, points, shape) == pytest.approx(0, abs=1e-6)
    # Rotating the image about the principal point is a camera roll of that angle.
    turn = cv2.getRotationMatrix2D((128.0, 128.0), 10.0, 1.0)  # (2, 3)
    rotated = points @ turn[:, :2].T + turn[:, 2]
    assert geometry.pose_difference(points, rotated, shape) == pytest.approx(
        10, abs=0.5
    )


def test_pose_difference_recovers_a_projected_yaw():
    camera = geometry.camera_matrix((256, 256))

    def landmarks(yaw_degrees):
        rvec = np.array([0.0, np.radians(yaw_degrees), 0.0])
        projected, _ = cv2.projectPoints(
            geometry.POSE_MODEL_3D, rvec, np.array([0.0, 0.0, 1500.0]), camera, None
        )
        points = np.full((68, 2), 128.0)
        points[list(geometry.POSE_INDICES)] = projected[:, 0]
        return points

    frontal = geometry.head_pose(landmarks(0), (256, 256))
    np.testing.assert_allclose(frontal, np.eye(3), atol=1e-6)
    assert geometry.pose_difference(
        landmarks(-5), landmarks(15), (256, 256)
    ) == pytest.approx(20, abs=1e-3)


def test_jitter_is_zero_at_constant_velocity_and_positive_when_noisy():
    t = np.arange(30, dtype=float)[:, None]
    track = np.hstack([10 + 2.5 * t, 40 - 1.0 * t])  # (30, 2)
    assert geometry.jitter(track) == pytest.approx(0, abs=1e-9)
    boxes = np.hstack([track - 20, track + 20])  # (30, 4), centres = track
    assert geometry.jitter(boxes) == pytest.approx(0, abs=1e-9)
    noisy = track + np.random.default_rng(0).normal(0, 1.0, track.shape)
    assert geometry.jitter(noisy) > 0.5
    with_gap = noisy.copy()
    with_gap[10] = np.nan  # a missed frame drops the three differences touching it
    second = np.linalg.norm(noisy[2:] - 2 * noisy[1:-1] + noisy[:-2], axis=1)
    expected = np.delete(second, [8, 9, 10]).mean()
    assert geometry.jitter(with_gap) == pytest.approx(expected)
    with pytest.raises(ValueError, match="T >= 3"):
        geometry.jitter(track[:2])


def test_frame_change_of_still_crops_is_zero_and_scales_uint8():
    still = np.repeat(np.full((1, 8, 8, 3), 100, np.uint8), 4, axis=0)
    assert geometry.frame_change(still) == 0.0
    flicker = still.copy()
    flicker[1::2] = 151  # +51 on every other frame: |diff| = 0.2 each step
    assert geometry.frame_change(flicker) == pytest.approx(0.2)


@pytest.fixture(scope="module")
def tiny_model():
    from faceswap_gan.config import PRESETS
    from faceswap_gan.models.gan import FaceSwapGAN

    return FaceSwapGAN(PRESETS["tiny"])


@pytest.mark.slow
def test_evaluate_periodic_returns_its_figures(tiny_model, embedder, crops):
    held_out = {k: to_model_range(resize_faces(v[:3], 64)) for k, v in crops.items()}
    out = face_eval.evaluate_periodic(
        tiny_model, held_out["A"], held_out["B"], embedder
    )
    per_direction = (
        "saturated alpha_mean alpha_coverage id_raw_target id_raw_source "
        "id_swap_target id_swap_source id_real_target identity_margin"
    ).split()
    assert set(out) == {
        f"eval/{name}_{d}" for name in per_direction for d in ("AtoB", "BtoA")
    } | {f"eval/{n}_{p}" for n in ("psnr", "masked_psnr") for p in "AB"}
    assert all(isinstance(v, float) and np.isfinite(v) for v in out.values())
    for d in ("AtoB", "BtoA"):
        assert -2 <= out[f"eval/identity_margin_{d}"] <= 2
        assert out[f"eval/identity_margin_{d}"] == pytest.approx(
            out[f"eval/id_swap_target_{d}"] - out[f"eval/id_swap_source_{d}"]
        )
        assert 0 <= out[f"eval/saturated_{d}"] <= 1
    # A's faces are another person than B's: closer to A's own centroid than to B's.
    own = embedder.embed(from_model_range(held_out["A"]))
    own_cos = metrics.cosine_similarity(own, metrics.centroid(own)).mean()
    assert out["eval/id_real_target_AtoB"] < own_cos


@pytest.mark.slow
def test_reconstruction_with_all_zero_alpha_gives_exact_composite(faces_a):
    """A decoder whose alpha is 0 everywhere returns the input as the composite."""
    from faceswap_gan.config import PRESETS
    from faceswap_gan.models.gan import FaceSwapGAN

    model = FaceSwapGAN(PRESETS["tiny"])
    layer = model.decoder_A.get_layer("decoder_A_alpha")
    kernel, bias = layer.get_weights()
    layer.set_weights([np.zeros_like(kernel), np.full_like(bias, -100.0)])
    data = face_eval.load_faces(faces_a, 64, max_faces=2)
    data.eye_masks = np.ones((2, 64, 64), np.float32)
    scores = face_eval.reconstruction(model, data, "A")
    assert scores["composite"]["psnr"] == [float("inf")] * 2


@pytest.mark.slow
def test_evaluate_command_on_tiny_trained_model_writes_reports(
    faces_a, faces_b, tmp_path
):
    import argparse

    from faceswap_gan.commands import evaluate as command
    from faceswap_gan.config import TrainConfig
    from faceswap_gan.training import train

    config = TrainConfig.from_preset(
        "tiny",
        faces_a=str(faces_a),
        faces_b=str(faces_b),
        run_dir=str(tmp_path / "run"),
        iterations=10,
        display_iters=10,
        schedule="constant",
    )
    run_dir = train(config, progress=False)
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers())
    out = tmp_path / "eval"
    args = parser.parse_args(
        [
            "evaluate",
            "--model",
            str(run_dir),
            "--faces-a",
            str(faces_a),
            "--faces-b",
            str(faces_b),
            "--output",
            str(out),
            "--max-faces",
            "5",
            "--video",
            str(SAMPLES / "person_a.mp4"),
            "--max-frames",
            "8",
        ]
    )
    assert command.run(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report) == set(REPORT_KEYS)
    assert report["faces"] == {"A": 5, "B": 5}
    assert set(report["alpha_coverage"]) == {"A->A", "B->B", "AtoB", "BtoA"}
    assert all(0 <= v <= 1 for v in report["alpha_coverage"].values())
    for person in ("A", "B"):
        assert set(report["reconstruction"][person]) == {
            "whole",
            "alpha",
            "eyes",
            "composite",
        }
        assert 0 < report["reconstruction"][person]["whole"]["psnr"] < 60
    for direction in ("AtoB", "BtoA"):
        ident = report["identity"][direction]
        assert 0 <= ident["retrieval_top1_centroid"] <= 1
        assert ident["real_margin_mean"] > 0  # real faces look like themselves
        assert report["attributes"][direction]["landmark_error_mean"] > 0
    video = report["video"]
    assert video["frames"] == 8 and video["frames_with_face"] >= 6
    assert video["jitter_smoothed_px"] < video["jitter_raw_px"]
    for name in report["plots"].values():
        assert (out / name).stat().st_size > 1000
    markdown = (out / "report.md").read_text()
    assert "Identity" in markdown and "Video stability" in markdown
    assert (out / "swapped.mp4").stat().st_size > 0
    from faceswap_gan.cli import main

    bad = [
        "evaluate",
        "--model",
        str(run_dir),
        "--faces-a",
        str(tmp_path / "missing"),
        "--faces-b",
        str(faces_b),
        "--output",
        str(out),
    ]
    assert main(bad) == 1
