"""extract_faces on the bundled clips: layout, CSV, several faces, identity, errors."""

import argparse
import csv
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from faceswap_gan.commands import extract as extract_command
from faceswap_gan.faces.alignment import TARGET_LANDMARKS_5, align
from faceswap_gan.faces.detection import FaceDetector
from faceswap_gan.faces.extract import SUBFOLDERS, extract_faces, iter_video_frames
from faceswap_gan.images import read_image, read_mask, write_image

SAMPLES = Path(__file__).resolve().parents[2] / "faceswap_gan" / "data" / "samples"


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, detector):
    out = tmp_path_factory.mktemp("extract")
    report = extract_faces(
        SAMPLES / "person_a.mp4",
        out,
        every=60,
        detector=detector,
        size=128,
        progress=False,
    )
    return report


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def two_face_folder(tmp_path_factory):
    """One real frame of each clip side by side (960x480), plus a faceless image."""
    _, frame_a = next(iter_video_frames(SAMPLES / "person_a.mp4"))
    _, frame_b = next(iter_video_frames(SAMPLES / "person_b.mp4"))
    frame_b = cv2.resize(frame_b, frame_a.shape[1::-1], interpolation=cv2.INTER_AREA)
    folder = tmp_path_factory.mktemp("two_faces")
    write_image(folder / "pair.png", np.concatenate([frame_a, frame_b], axis=1))
    write_image(folder / "reference_a.png", frame_a)
    return folder, frame_a, frame_b


def test_video_extraction_layout_and_csv(extracted):
    report = extracted
    assert (report.frames_sampled, report.faces, report.frames_total) == (3, 3, 180)
    expected = ["frame0face0.jpg", "frame60face0.jpg", "frame120face0.jpg"]
    assert report.names == expected
    for sub in SUBFOLDERS:
        assert sorted(p.name for p in (report.output_dir / sub).iterdir()) == sorted(
            expected
        )
    rows = read_rows(report.csv_path)
    assert [r["file"] for r in rows] == expected
    for row in rows:
        x0, y0, x1, y1 = (float(row[k]) for k in ("x0", "y0", "x1", "y1"))
        assert 0 <= x0 < float(row["left_eye_x"]) < float(row["right_eye_x"]) < x1
        assert float(row["score"]) >= 0.8 and y1 - y0 > 150


def test_aligned_faces_and_eye_masks(extracted, detector):
    for name in extracted.names:
        aligned = read_image(extracted.output_dir / "aligned_faces" / name)
        mask = read_mask(extracted.output_dir / "binary_masks_eyes" / name)
        assert aligned.shape == (128, 128, 3) and mask.shape == (128, 128)
        eyes = TARGET_LANDMARKS_5[:2] * 128  # where alignment puts the eyes
        for x, y in eyes:
            assert mask[int(y), int(x)] > 0.5  # the mask covers both eyes
        assert mask[100:].max() < 0.1  # and nothing at mouth level
        raw = read_image(extracted.output_dir / "raw_faces" / name)
        assert abs(raw.shape[0] - raw.shape[1]) <= 1  # square detector box


def test_two_faces_in_a_frame_are_each_aligned_on_their_own_landmarks(
    two_face_folder, detector, tmp_path
):
    folder, frame_a, frame_b = two_face_folder
    report = extract_faces(
        folder, tmp_path, detector=detector, crude_masks=True, progress=False
    )
    rows = [r for r in read_rows(report.csv_path) if r["source"] == "pair.png"]
    assert len(rows) == 2 and report.faces == 3
    rows.sort(key=lambda r: float(r["x0"]))
    assert float(rows[0]["x1"]) <= 480 <= float(rows[1]["x0"])  # one in each half
    # Each person aligned alone: the pair's crops must match their own person's.
    alone = [
        align(f, detector.detect(f)[0].landmarks5, 256)[0].astype(int)
        for f in (frame_a, frame_b)
    ]
    for row, own, other in zip(rows, alone, alone[::-1]):
        aligned = read_image(report.output_dir / "aligned_faces" / row["file"])
        centre = slice(48, -48)  # the face; borders differ (replicated vs neighbour)
        own_diff = np.abs(aligned - own)[centre, centre].mean()
        other_diff = np.abs(aligned - other)[centre, centre].mean()
        assert own_diff < 8 and own_diff < 0.3 * other_diff
        redetected = detector.detect(aligned)
        assert len(redetected) == 1
        eyes = redetected[0].landmarks5[:2]
        assert np.abs(eyes - TARGET_LANDMARKS_5[:2] * 256).max() < 0.06 * 256
        mask = read_mask(report.output_dir / "binary_masks_eyes" / row["file"])
        for x, y in TARGET_LANDMARKS_5[:2] * 256:  # crude rectangles on the eyes
            assert mask[int(y), int(x)] > 0.5


@pytest.mark.slow
def test_reference_photo_keeps_only_that_person(two_face_folder, detector, tmp_path):
    folder = tmp_path / "input"
    folder.mkdir()
    (folder / "pair.png").write_bytes((two_face_folder[0] / "pair.png").read_bytes())
    report = extract_faces(
        folder,
        tmp_path / "out",
        detector=detector,
        reference=two_face_folder[0] / "reference_a.png",
        progress=False,
    )
    rows = read_rows(report.csv_path)
    assert report.faces == 1 and report.rejected_by_reference == 1
    assert float(rows[0]["x0"]) < 480 and float(rows[0]["reference_distance"]) < 0.6


def test_video_without_faces_gives_empty_folders(tmp_path, detector, capsys):
    path = tmp_path / "empty.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 120, np.uint8))
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    report = extract_faces(path, tmp_path / "out", detector=detector, progress=False)
    assert report.faces == 0 and report.frames_sampled == 3
    assert report.frames_without_faces == 3
    for sub in SUBFOLDERS:
        assert list((report.output_dir / sub).iterdir()) == []
    assert len(read_rows(report.csv_path)) == 0
    assert "No faces found" in capsys.readouterr().out


def test_input_errors(tmp_path, detector):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        extract_faces(tmp_path / "missing.mp4", tmp_path / "out", detector=detector)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match="garbage.mp4"):
        extract_faces(garbage, tmp_path / "out", detector=detector)
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    with pytest.raises(ValueError, match="No images"):
        extract_faces(empty, tmp_path / "out", detector=detector)
    with pytest.raises(ValueError, match="every"):
        extract_faces(SAMPLES / "person_a.mp4", tmp_path / "out", every=0)


def test_extract_command(two_face_folder, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="faceswap_gan")
    command = extract_command.add_parser(parser.add_subparsers())
    args = command.parse_args(
        [
            "--input",
            str(SAMPLES / "person_b.mp4"),
            "--output",
            str(tmp_path),
            "--every",
            "90",
            "--size",
            "64",
            "--crude-masks",
            "--detection-threshold",
            "0.9",
        ]
    )
    assert extract_command.run(args) == 0
    out = capsys.readouterr().out
    assert "2 faces saved" in out and str(tmp_path / "faces" / "aligned_faces") in out
    assert len(list((tmp_path / "faces" / "aligned_faces").iterdir())) == 2
    from faceswap_gan.cli import main

    missing = ["extract", "--input", str(tmp_path / "nope.mp4"), "--output", "x"]
    assert main(missing) == 1
    assert "nope.mp4" in capsys.readouterr().err


@pytest.mark.slow
def test_extract_alignment_dfl_whole_face_writes_facefusions_crops(
    tmp_path, detector, capsys
):
    """`extract --alignment dfl_whole_face`: each aligned face is the crop of its
    faces.csv landmarks with FaceFusion's template, and its eye mask follows."""
    from faceswap_gan.cli import main
    from faceswap_gan.faces.alignment import DFL_WHOLE_FACE_LANDMARKS_5

    argv = ["extract", "--input", str(SAMPLES / "person_b.mp4"), "--output"]
    argv += [str(tmp_path), "--every", "90", "--size", "128"]
    assert main(argv + ["--alignment", "dfl_whole_face"]) == 0
    rows = read_rows(tmp_path / "faces" / "faces.csv")
    frames = dict(iter_video_frames(SAMPLES / "person_b.mp4", every=90))
    assert len(rows) == 2
    for row in rows:
        points = np.array(
            [
                [float(row[f"{p}_x"]), float(row[f"{p}_y"])]
                for p in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
            ]
        )
        # FaceFusion's fit (face_helper.py L71-74) on the csv's landmarks.
        matrix = cv2.estimateAffinePartial2D(
            points,
            DFL_WHOLE_FACE_LANDMARKS_5 * 128,
            method=cv2.RANSAC,
            ransacReprojThreshold=100,
        )[0]
        expected = cv2.warpAffine(
            frames[int(row["frame"])],
            matrix,
            (128, 128),
            borderMode=cv2.BORDER_REPLICATE,
        )
        written = read_image(tmp_path / "faces" / "aligned_faces" / row["file"])
        # JPEG and the csv's 2-decimal landmarks: a few grey levels.
        diff = np.abs(written.astype(int) - expected).mean()
        print(f"{row['file']}: mean |written - FaceFusion's crop| = {diff:.2f}")
        assert diff < 3
        default = align(frames[int(row["frame"])], points, 128)[0]
        assert np.abs(written.astype(int) - default).mean() > 15  # another framing
        mask = read_mask(tmp_path / "faces" / "binary_masks_eyes" / row["file"])
        for x, y in DFL_WHOLE_FACE_LANDMARKS_5[:2] * 128:
            assert mask[int(y), int(x)] > 0.5  # the eyes where this template puts them
    with pytest.raises(ValueError, match="alignment must be one of"):
        extract_faces(SAMPLES / "person_b.mp4", tmp_path / "x", alignment="whole")


@pytest.mark.slow
def test_extract_alignment_deepfacelive_writes_its_cut(tmp_path, capsys):
    """`extract --alignment deepfacelive`: each aligned face is DeepFaceLive's cut
    (`deepfacelive_matrix`) of the 68 landmarks in its faces.csv box."""
    from faceswap_gan.cli import main
    from faceswap_gan.faces.alignment import deepfacelive_matrix, transform_points
    from faceswap_gan.faces.landmarks import LandmarkDetector

    argv = ["extract", "--input", str(SAMPLES / "person_b.mp4"), "--output"]
    argv += [str(tmp_path), "--every", "90", "--size", "128"]
    assert main(argv + ["--alignment", "deepfacelive"]) == 0
    rows = read_rows(tmp_path / "faces" / "faces.csv")
    frames = dict(iter_video_frames(SAMPLES / "person_b.mp4", every=90))
    marker = LandmarkDetector()
    assert len(rows) == 2
    for row in rows:
        frame = frames[int(row["frame"])]
        box = np.array([[float(row[k]) for k in ("x0", "y0", "x1", "y1")]])
        points = marker.detect(frame, box)[0]
        matrix = deepfacelive_matrix(points, 128)
        expected = cv2.warpAffine(frame, matrix, (128, 128))
        written = read_image(tmp_path / "faces" / "aligned_faces" / row["file"])
        diff = np.abs(written.astype(int) - expected).mean()
        print(f"{row['file']}: mean |written - DeepFaceLive's cut| = {diff:.2f}")
        assert diff < 3
        mask = read_mask(tmp_path / "faces" / "binary_masks_eyes" / row["file"])
        for x, y in transform_points(points[[37, 44]], matrix):  # upper eyelids
            assert mask[int(round(y)), int(round(x))] > 0.5
