"""Safe outputs and unreadable inputs of `extract`, `masks`, `train` and `evaluate`.

Issue 11 ("nothing lost, nothing half-written"), the face-data side:
1. `masks` refuses to write its masks over the face images.
2. `extract` refuses an output that holds an earlier extract unless --append or
   --overwrite says what to do with it.
3. Images and faces.csv are replaced only when complete (atomic writes).
4. One policy for unreadable images (corrupt, truncated JPEGs, not images) everywhere.
5. A file where an output folder belongs ends in a one-line error, nothing written.

Real data only: the face crops of tests/data and the bundled sample clips.
"""

import csv
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from faceswap_gan.cli import main
from faceswap_gan.dataset import FaceSet
from faceswap_gan.errors import FaceswapError
from faceswap_gan.evaluation.faces import load_faces
from faceswap_gan.faces.detection import FaceDetector
from faceswap_gan.faces.extract import SUBFOLDERS, extract_faces
from faceswap_gan.files import TEMP_MARK
from faceswap_gan.images import (
    MAX_UNREADABLE_SHARE,
    list_images,
    read_image,
    write_image,
)

SAMPLES = Path(__file__).resolve().parents[1] / "faceswap_gan" / "data" / "samples"
CLIP_A, CLIP_B = SAMPLES / "person_a.mp4", SAMPLES / "person_b.mp4"
FAST = ["--every", "90", "--size", "64", "--crude-masks"]  # 2 frames per clip


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under `folder`."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _copy_crops(folder: Path, *sources: Path, count: int | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [p for source in sources for p in list_images(source)][:count]
    for path in paths:
        shutil.copy(path, folder / f"{path.parent.name}_{path.name}")
    return list_images(folder)


def _truncate(source: Path, target: Path) -> Path:
    """A copy of a real JPEG cut in the middle (a broken download or copy)."""
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def _one_error_line(err: str, *parts: str) -> str:
    """The one error line of stderr (the rest is the progress bar), with `parts`."""
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and err.endswith(lines[0] + "\n"), err
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def _rows(csv_path: Path) -> list[dict]:
    with open(csv_path, newline="") as handle:
        return list(csv.DictReader(handle))


def _extract(*args: str) -> int:
    return main(["extract", *map(str, args), *FAST])


def _no_temporaries(folder: Path) -> None:
    assert [p for p in folder.rglob("*") if TEMP_MARK in p.name] == []


# 1. masks never writes over the faces.


def test_masks_refuses_to_write_over_the_face_images(faces_b, tmp_path, capsys):
    faces = tmp_path / "faces"
    _copy_crops(faces, faces_b, count=2)
    before = _snapshot(faces)
    # The face folder itself, a symbolic link to it, a folder of hard links to it.
    link = tmp_path / "link"
    link.symlink_to(faces, target_is_directory=True)
    hard = tmp_path / "hard"
    hard.mkdir()
    for path in faces.iterdir():
        os.link(path, hard / path.name)
    for output in (faces, link, hard):
        assert main(["masks", "--faces", str(faces), "--output", str(output)]) == 1
        line = _one_error_line(capsys.readouterr().err, "masks: error:", str(output))
        assert "output folder" in line
        assert _snapshot(faces) == before  # every face still there, unchanged
    assert _snapshot(hard) == before
    # Another folder is fine: one mask per face, the faces untouched.
    assert main(["masks", "--faces", str(faces), "--output", str(tmp_path / "m")]) == 0
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == sorted(before)
    assert _snapshot(faces) == before


# 2. extract refuses to mix two runs unless told to append or overwrite.


@pytest.mark.slow
def test_extract_refuses_an_earlier_extract_appends_or_overwrites(tmp_path, capsys):
    out = tmp_path / "out"
    root = out / "faces"
    assert _extract("--input", CLIP_A, "--output", out) == 0
    first = _snapshot(root)
    names_a = sorted(p.name for p in list_images(root / "aligned_faces"))
    assert names_a and len(_rows(root / "faces.csv")) == len(names_a)
    capsys.readouterr()

    # Again without a flag: refused, nothing changed.
    assert _extract("--input", CLIP_B, "--output", out) == 1
    _one_error_line(
        capsys.readouterr().err, "extract: error:", str(root), "--append", "--overwrite"
    )
    assert _snapshot(root) == first
    # Only faces.csv left (the images deleted by hand) is an earlier extract too.
    only_csv = tmp_path / "only_csv"
    (only_csv / "faces").mkdir(parents=True)
    shutil.copy(root / "faces.csv", only_csv / "faces" / "faces.csv")
    assert _extract("--input", CLIP_B, "--output", only_csv) == 1
    _one_error_line(capsys.readouterr().err, "faces.csv", "--append")

    # --append: the old faces stay, byte for byte; the new ones are named after the
    # clip; faces.csv lists the old rows, then the new ones.
    assert _extract("--input", CLIP_B, "--output", out, "--append") == 0
    assert "Kept the" in capsys.readouterr().out
    after = _snapshot(root)
    assert all(after[name] == data for name, data in first.items() if "/" in name)
    rows = _rows(root / "faces.csv")
    assert rows[: len(names_a)] == _rows_of(first)
    new = [r["file"] for r in rows[len(names_a) :]]
    assert new and all(n.startswith("person_b_frame") for n in new)
    # The same clip appended twice: no name reused.
    assert _extract("--input", CLIP_B, "--output", out, "--append") == 0
    rows = _rows(root / "faces.csv")
    files = [r["file"] for r in rows]
    assert len(files) == len(set(files)) == len(names_a) + 2 * len(new)
    assert [f for f in files if f.endswith("-2.jpg")] == [
        n.replace(".jpg", "-2.jpg") for n in new
    ]
    for sub in SUBFOLDERS:  # faces.csv lists every face of every folder
        assert sorted(p.name for p in list_images(root / sub)) == sorted(files)

    # --overwrite: the earlier faces and faces.csv go, other files stay.
    (root / "aligned_faces" / "notes.txt").write_text("mine")
    (root / "README.md").write_text("mine too")
    (out / "keep.jpg").write_bytes(first["aligned_faces/" + names_a[0]])
    assert _extract("--input", CLIP_A, "--output", out, "--overwrite") == 0
    assert "Removed" in capsys.readouterr().out
    assert [r["file"] for r in _rows(root / "faces.csv")] == sorted(
        names_a, key=lambda n: int(n[5:].split("face")[0])
    )
    for sub in SUBFOLDERS:
        assert sorted(p.name for p in list_images(root / sub)) == names_a
    assert (root / "aligned_faces" / "notes.txt").read_text() == "mine"
    assert (root / "README.md").read_text() == "mine too"
    assert (out / "keep.jpg").is_file()
    # Both flags exclude each other (argparse, and the function).
    with pytest.raises(SystemExit):
        _extract("--input", CLIP_A, "--output", out, "--append", "--overwrite")
    with pytest.raises(FaceswapError, match="--append and --overwrite"):
        extract_faces(CLIP_A, out, append=True, overwrite=True)
    _no_temporaries(out)


def _rows_of(snapshot: dict[str, bytes]) -> list[dict]:
    text = snapshot["faces.csv"].decode().splitlines()
    return list(csv.DictReader(text))


def test_demo_reextracts_with_new_settings_instead_of_mixing(tmp_path):
    from faceswap_gan.demo import extract_sample

    state: dict = {}
    root = tmp_path / "faces"
    assert extract_sample(CLIP_A, tmp_path, 90, None, state, progress=False) == 2
    assert extract_sample(CLIP_A, tmp_path, 60, None, state, progress=False) == 3
    names = ["frame0face0.jpg", "frame60face0.jpg", "frame120face0.jpg"]
    assert [r["file"] for r in _rows(root / "faces.csv")] == names
    for sub in SUBFOLDERS:
        assert sorted(p.name for p in list_images(root / sub)) == sorted(names)


# 3. Atomic writes.


def test_write_image_replaces_the_file_only_when_complete(tmp_path, faces_a):
    face = read_image(list_images(faces_a)[0])
    original = tmp_path / "face.png"
    write_image(original, face)
    before = original.read_bytes()
    link = tmp_path / "link.png"
    os.link(original, link)  # e.g. a mask folder holding hard links to the faces
    write_image(link, np.zeros((64, 64), np.uint8))
    assert original.read_bytes() == before  # a new file, not written through
    assert read_image(link).max() == 0
    with pytest.raises(FaceswapError, match="face.png"):  # cannot encode: no change
        write_image(original, np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(FaceswapError, match=r"\.txt"):
        write_image(tmp_path / "face.txt", face)
    assert original.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.png", "link.png"]


class _StopAfter:
    """The real detector; records faces.csv before each frame and raises
    KeyboardInterrupt (Ctrl-C) on the call after `frames` calls."""

    def __init__(self, detector, csv_path: Path, frames: int):
        self.detector, self.csv_path, self.frames = detector, csv_path, frames
        self.seen: list[bytes] = []

    def detect(self, frame):
        self.seen.append(self.csv_path.read_bytes())
        if len(self.seen) > self.frames:
            raise KeyboardInterrupt
        return self.detector.detect(frame)


def test_faces_csv_is_never_half_written(tmp_path, detector):
    out = tmp_path / "out"
    csv_path = out / "faces" / "faces.csv"
    old = extract_faces(
        CLIP_A,
        out,
        every=90,
        detector=detector,
        size=64,
        crude_masks=True,
        progress=False,
    )
    before = csv_path.read_bytes()
    # While a run is going, faces.csv is the previous one (what a kill leaves).
    spy = _StopAfter(detector, csv_path, frames=99)
    append = dict(every=90, size=64, crude_masks=True, progress=False, append=True)
    report = extract_faces(CLIP_B, out, detector=spy, **append)
    assert len(spy.seen) == 2 and set(spy.seen) == {before}
    assert len(_rows(csv_path)) == old.faces + report.faces
    # Interrupted after one frame: faces.csv is complete and lists exactly the faces
    # on disk (the old ones and the first frame's), no temporary file is left.
    spy = _StopAfter(detector, csv_path, frames=1)
    appended = csv_path.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        extract_faces(CLIP_A, out, detector=spy, **append)
    assert set(spy.seen) == {appended}
    files = [r["file"] for r in _rows(csv_path)]
    assert len(files) == old.faces + report.faces + 1
    assert files[-1] == "person_a_frame0face0.jpg"
    for sub in SUBFOLDERS:
        assert sorted(p.name for p in list_images(out / "faces" / sub)) == sorted(files)
    _no_temporaries(out)


# 4. One policy for unreadable images.


@pytest.fixture
def damaged_folder(tmp_path, faces_a, faces_b):
    """20 real crops, a truncated copy of a real crop, a text file named .jpg."""
    folder = tmp_path / "damaged"
    good = _copy_crops(folder, faces_a, faces_b, count=20)
    _truncate(good[0], folder / "a_truncated.jpg")
    (folder / "b_not_an_image.jpg").write_text("this is not a JPEG\n")
    assert 2 / 22 <= MAX_UNREADABLE_SHARE
    return folder


BAD = ("a_truncated.jpg", "b_not_an_image.jpg")


def _names_both(record) -> None:
    """One skip warning, naming both unreadable files."""
    skips = [str(w.message) for w in record if "Skipped" in str(w.message)]
    assert len(skips) == 1 and all(name in skips[0] for name in BAD), skips


def test_a_truncated_jpeg_is_unreadable_not_grey(damaged_folder):
    good = read_image(damaged_folder / "a_frame00000.jpg")
    assert good.shape == (256, 256, 3)
    with pytest.raises(FaceswapError, match="a_truncated.jpg"):
        read_image(damaged_folder / "a_truncated.jpg")  # OpenCV: grey bottom half


def test_extract_skips_unreadable_images_with_a_warning(damaged_folder, tmp_path):
    out = tmp_path / "out"
    args = ["--input", str(damaged_folder), "--output", str(out), "--size", "64"]
    with pytest.warns(UserWarning, match=r"Skipped 2 of 22 images") as record:
        assert main(["extract", *args, "--crude-masks"]) == 0
    _names_both(record)
    sources = {r["source"] for r in _rows(out / "faces" / "faces.csv")}
    assert len(sources) >= 18 and not sources & set(BAD)  # a face in (nearly) each


@pytest.mark.slow
def test_masks_skip_unreadable_images_with_a_warning(damaged_folder, tmp_path):
    masks = tmp_path / "masks"
    with pytest.warns(UserWarning, match=r"Skipped 2 of 22 face images") as record:
        assert (
            main(["masks", "--faces", str(damaged_folder), "--output", str(masks)]) == 0
        )
    _names_both(record)
    written = sorted(p.name for p in masks.iterdir())
    assert len(written) == 20 and not set(written) & set(BAD)


def test_train_and_evaluate_skip_unreadable_images_with_a_warning(damaged_folder):
    with pytest.warns(UserWarning, match=r"Skipped 2 of 22") as record:
        faces = FaceSet(damaged_folder)
    _names_both(record)
    assert len(faces) == 20 and sorted(p.name for p in faces.skipped) == list(BAD)
    with pytest.warns(UserWarning, match=r"Skipped 2 of 22") as record:
        data = load_faces(damaged_folder, 64)
    _names_both(record)
    assert len(data.names) == 20 and not set(data.names) & set(BAD)


def test_a_mostly_unreadable_folder_fails(tmp_path, faces_a, capsys):
    folder = tmp_path / "broken"
    good = _copy_crops(folder, faces_a, count=2)
    for i in range(3):
        _truncate(good[i % 2], folder / f"cut{i}.jpg")
    expected = ("Too many unreadable", "at most 10%", "cut0.jpg")
    out = tmp_path / "out"
    args = ["--input", str(folder), "--output", str(out), "--crude-masks"]
    assert main(["extract", *args]) == 1
    _one_error_line(capsys.readouterr().err, "extract: error:", *expected)
    assert main(["masks", "--faces", str(folder), "--output", str(out / "m")]) == 1
    _one_error_line(capsys.readouterr().err, "masks: error:", *expected)
    with pytest.raises(FaceswapError, match="Too many unreadable.*cut0.jpg"):
        FaceSet(folder)
    with pytest.raises(FaceswapError, match="Too many unreadable.*cut0.jpg"):
        load_faces(folder, 64)


# 5. A file where a folder belongs: one line, nothing written.


def test_a_file_where_an_output_folder_belongs_is_one_line(faces_b, tmp_path, capsys):
    file = tmp_path / "taken"
    file.write_text("a file, not a folder")
    assert main(["extract", "--input", str(CLIP_A), "--output", str(file), *FAST]) == 1
    _one_error_line(capsys.readouterr().err, "extract: error:", str(file))
    assert main(["masks", "--faces", str(faces_b), "--output", str(file)]) == 1
    _one_error_line(capsys.readouterr().err, "masks: error:", str(file))
    assert file.read_text() == "a file, not a folder"
    # A file where one of the three face folders belongs: refused before any write.
    out = tmp_path / "out"
    (out / "faces").mkdir(parents=True)
    (out / "faces" / "aligned_faces").write_text("in the way")
    assert main(["extract", "--input", str(CLIP_A), "--output", str(out), *FAST]) == 1
    _one_error_line(
        capsys.readouterr().err, "extract: error:", str(out / "faces" / "aligned_faces")
    )
    assert [p.name for p in (out / "faces").iterdir()] == ["aligned_faces"]


def test_no_warning_for_a_clean_folder(faces_a):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(FaceSet(faces_a)) == len(list_images(faces_a))
