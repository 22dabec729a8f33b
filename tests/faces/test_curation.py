"""Face-set curation (`faces.curation`, `sort`): the scores on known cases, then whole
runs on a real mixed folder: two bundled people's crops plus blurred copies."""

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap_gan import cli
from faceswap_gan.errors import FaceswapError
from faceswap_gan.faces import curation
from faceswap_gan.faces.curation import (
    CurationThresholds,
    curate_faces,
    sharpness,
    yaw_pitch,
)
from faceswap_gan.images import UnreadableImageWarning, read_image, write_image

SOURCES = Path(__file__).resolve().parents[1] / "data" / "faces"
BLURRED = 5  # Blurred copies of A's first faces.
B_FACES = 8  # Of B's 16: A (16 sharp faces) stays the majority without a reference.


@pytest.fixture(scope="module")
def embedder():
    from faceswap_gan.faces.identity import build_identity_embedder

    return build_identity_embedder("mobilefacenet")


def make_mixed_folder(root: Path, faces_a: Path, faces_b: Path) -> dict:
    """root/faces: A's 16 crops, B's first 8, Gaussian-blurred copies (sigma 3 px) of
    A's first 5; root/masks: a mask per face, same stem, .png. Returns the names by
    kind ("a", "b", "blur")."""
    faces, masks = root / "faces", root / "masks"
    faces.mkdir(parents=True)
    names = {"a": [], "b": [], "blur": []}
    for path in sorted(faces_a.glob("*.jpg")):
        shutil.copy(path, faces / f"a_{path.name}")
        names["a"].append(f"a_{path.name}")
    for path in sorted(faces_b.glob("*.jpg"))[:B_FACES]:
        shutil.copy(path, faces / f"b_{path.name}")
        names["b"].append(f"b_{path.name}")
    for path in sorted(faces_a.glob("*.jpg"))[:BLURRED]:
        blurred = cv2.GaussianBlur(read_image(path), (0, 0), 3)
        write_image(faces / f"blur_{path.name}", blurred)
        names["blur"].append(f"blur_{path.name}")
    for name in sum(names.values(), []):
        grey = cv2.cvtColor(read_image(faces / name), cv2.COLOR_RGB2GRAY)
        write_image(masks / f"{Path(name).stem}.png", (grey > 128).astype(np.uint8))
    return names


def reference_photo(path: Path, clip: Path) -> Path:
    """The clip's first frame (a whole 480x480 frame, not a crop) as a PNG."""
    from faceswap_gan.video import VideoReader

    write_image(path, next(iter(VideoReader(clip))))
    return path


def read_rows(path: Path) -> dict:
    with open(path, newline="") as handle:
        return {row["file"]: row for row in csv.DictReader(handle)}


def listing(folder: Path) -> set:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


# --- scores on known cases -------------------------------------------------------


def laplacian_variance(grey: np.ndarray) -> float:
    """Independent reference: the 4-neighbour Laplacian by numpy slicing, with
    OpenCV's default border (reflect 101), then its variance."""
    g = np.pad(grey.astype(np.float64), 1, mode="reflect")
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 * g[1:-1, 1:-1]
    return float(lap.var())


def test_sharpness_is_the_variance_of_the_laplacian(faces_a):
    face = read_image(sorted(faces_a.glob("*.jpg"))[0])
    grey = cv2.resize(
        cv2.cvtColor(face, cv2.COLOR_RGB2GRAY), (128, 128), interpolation=cv2.INTER_AREA
    )
    assert sharpness(face) == pytest.approx(laplacian_variance(grey), rel=1e-9)


def test_sharpness_ignores_crop_size_and_falls_with_blur(faces_a):
    face = read_image(sorted(faces_a.glob("*.jpg"))[3])  # 256 px
    half = cv2.resize(face, (128, 128), interpolation=cv2.INTER_AREA)
    assert sharpness(half) == pytest.approx(sharpness(face), rel=0.02)
    values = [sharpness(cv2.GaussianBlur(face, (0, 0), s)) for s in (0.5, 1, 2, 3)]
    assert sharpness(face) > values[0] > values[1] > values[2] > values[3]
    assert values[1] < curation.BLUR_MIN_RATIO * sharpness(face)  # sigma 1: blurred


@pytest.mark.parametrize("yaw, pitch", [(0, 0), (30, 0), (-50, 0), (0, 20), (25, -35)])
def test_yaw_pitch_recovers_known_rotations(yaw, pitch):
    # Camera axes: x right, y down, z away. Turning the face to the image's right is
    # a rotation about -y; looking up is a rotation about +x... built independently
    # as the face's forward vector, then any rotation that maps -z onto it.
    y, p = np.radians(yaw), np.radians(pitch)
    forward = np.array([np.sin(y) * np.cos(p), -np.sin(p), -np.cos(y) * np.cos(p)])
    z = -forward  # model +z (away) goes to -forward
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    rotation = np.stack([x, np.cross(z, x), z], axis=1)
    roll = cv2.Rodrigues(forward * 0.4)[0]  # a roll about the forward axis
    for matrix in (rotation, roll @ rotation):
        got = yaw_pitch(matrix)
        np.testing.assert_allclose(got, (yaw, pitch), atol=1e-6)


@pytest.mark.parametrize(
    "name, value",
    [
        ("max_identity_distance", 0.0),
        ("max_identity_distance", 2.5),
        ("min_sharpness_ratio", 1.0),
        ("min_sharpness_ratio", -0.1),
        ("max_yaw", 181),
        ("max_pitch", 0),
        ("max_duplicate_distance", -1),
        ("max_duplicate_rms", float("nan")),
    ],
)
def test_out_of_range_thresholds_are_refused(name, value):
    with pytest.raises(FaceswapError, match=name):
        CurationThresholds(**{name: value})


def test_empty_folder_and_mismatched_masks_are_refused(tmp_path, faces_a):
    empty = tmp_path / "empty"
    (empty / "rejected" / "blur").mkdir(parents=True)
    shutil.copy(sorted(faces_a.glob("*.jpg"))[0], empty / "rejected" / "blur")
    with pytest.raises(FaceswapError, match="No face images"):
        curate_faces(empty)  # rejected/ is not read
    faces, masks = tmp_path / "faces", tmp_path / "masks"
    shutil.copytree(faces_a, faces)
    masks.mkdir()
    for path in sorted(faces.glob("*.jpg"))[:-2]:  # two faces without a mask
        shutil.copy(path, masks / f"{path.stem}.png")
    with pytest.raises(FaceswapError, match="2 of 16 faces have no mask"):
        curate_faces(faces, masks_dir=masks)
    assert listing(faces) == {p.name for p in faces_a.glob("*.jpg")}  # untouched


# --- real runs -------------------------------------------------------------------


@pytest.mark.slow
def test_sort_with_a_reference_moves_exactly_the_outliers(
    tmp_path, faces_a, faces_b, clip_a, embedder, detector
):
    names = make_mixed_folder(tmp_path, faces_a, faces_b)
    faces, masks = tmp_path / "faces", tmp_path / "masks"
    before = {n: (faces / n).read_bytes() for n in listing(faces)}
    # A file already in rejected/identity/ with a B face's name (and its mask) stays.
    taken = names["b"][0]
    (faces / "rejected" / "identity").mkdir(parents=True)
    (faces / "rejected" / "identity" / taken).write_bytes(b"earlier")
    (masks / "rejected" / "identity").mkdir(parents=True)
    (masks / "rejected" / "identity" / f"{Path(taken).stem}.png").write_bytes(b"m")
    photo = reference_photo(tmp_path / "reference.png", clip_a)

    report = curate_faces(
        faces, [photo], masks_dir=masks, embedder=embedder, detector=detector
    )

    moved = {Path(s).name: d for s, d in report.moves}
    assert {n for n, d in moved.items() if d.parent.name == "identity"} == set(
        names["b"]
    )
    assert {n for n, d in moved.items() if d.parent.name == "blur"} == set(
        names["blur"]
    )
    assert len(moved) == len(names["b"]) + len(names["blur"])  # 0 % of A's sharp
    assert listing(faces) - {"scores.csv"} == set(names["a"]) | {
        f"rejected/identity/{taken}"
    } | {f"rejected/{d.parent.name}/{d.name}" for d in moved.values()}
    # Nothing lost or overwritten: the moved bytes are the originals; the earlier
    # file kept its content and the newcomer got a new stem, its mask the same.
    for name, destination in moved.items():
        assert destination.read_bytes() == before[name]
    assert (faces / "rejected" / "identity" / taken).read_bytes() == b"earlier"
    renamed = moved[taken]
    assert renamed.name == f"{Path(taken).stem}_1.jpg"
    # Masks in step: each moved face's mask sits under the same reason and stem.
    assert len(report.mask_moves) == len(moved)
    for name, destination in moved.items():
        mask = masks / "rejected" / destination.parent.name / f"{destination.stem}.png"
        assert mask.is_file() and not (masks / f"{Path(name).stem}.png").exists()
    assert {p.stem for p in masks.glob("*.png")} == {Path(n).stem for n in names["a"]}
    # scores.csv: a row per face, verdicts and destinations as moved.
    rows = read_rows(faces / "scores.csv")
    assert set(rows) == set(before)
    for name, row in rows.items():
        if name in moved:
            reason = moved[name].parent.name
            assert (row["verdict"], row["reason"]) == ("reject", reason)
            assert row["moved_to"] == f"rejected/{reason}/{moved[name].name}"
        else:
            assert (row["verdict"], row["reason"], row["moved_to"]) == ("keep", "", "")
            assert float(row["identity_distance"]) <= curation.IDENTITY_MAX_DISTANCE
    # A second run scores only the faces left and moves nothing.
    again = curate_faces(
        faces, [photo], masks_dir=masks, embedder=embedder, detector=detector
    )
    assert again.moves == [] and {s.name for s in again.scores} == set(names["a"])
    assert set(read_rows(faces / "scores.csv")) == set(names["a"])


@pytest.mark.slow
def test_sort_by_median_identity_dry_run_then_run(tmp_path, faces_a, faces_b, embedder):
    names = make_mixed_folder(tmp_path, faces_a, faces_b)
    faces, masks = tmp_path / "faces", tmp_path / "masks"
    (faces / "zz_broken.jpg").write_bytes(b"not an image")  # skipped, stays
    shutil.copy(masks / f"{Path(names['a'][0]).stem}.png", masks / "zz_broken.png")
    files, mask_files = listing(faces), listing(masks)

    with pytest.warns(UnreadableImageWarning, match="zz_broken.jpg"):
        plan = curate_faces(faces, masks_dir=masks, dry_run=True, embedder=embedder)

    assert listing(faces) == files | {"scores.csv"} and listing(masks) == mask_files
    reasons = {Path(s).name: d.parent.name for s, d in plan.moves}
    assert reasons == {
        **{n: "identity" for n in names["b"]},
        **{n: "blur" for n in names["blur"]},
    }
    rows = read_rows(faces / "scores.csv")
    assert {n for n, r in rows.items() if r["verdict"] == "reject"} == set(reasons)
    assert all(rows[n]["moved_to"] for n in reasons)  # where each would go
    assert (rows["zz_broken.jpg"]["verdict"], rows["zz_broken.jpg"]["moved_to"]) == (
        "skipped",
        "",
    )

    with pytest.warns(UnreadableImageWarning):
        done = curate_faces(faces, masks_dir=masks, embedder=embedder)

    assert done.moves == plan.moves and done.mask_moves == plan.mask_moves
    assert listing(faces) == set(names["a"]) | {"scores.csv", "zz_broken.jpg"} | {
        f"rejected/{d.parent.name}/{d.name}" for _, d in plan.moves
    }
    assert {p.stem for p in masks.glob("*.png")} == {
        Path(n).stem for n in names["a"] + ["zz_broken.jpg"]
    }


@pytest.mark.slow
def test_consecutive_video_frames_are_not_duplicates_but_copies_are(
    tmp_path, clip_a, detector, embedder, first_frames
):
    """30 consecutive frames of a talking head, cropped at one box. The clip repeats
    every 6th frame (a 25 -> 30 fps conversion: the full frames differ by under one
    grey level RMS, codec noise); only such repeats and two copies of a crop (an
    exact copy, a PNG re-save) may be duplicates; a frame that differs from both
    neighbours (motion: 1 grey level RMS or more) never is."""
    frames = first_frames(clip_a, 30)
    change = [np.inf] + [
        float(np.sqrt(np.mean((frames[i].astype(float) - frames[i - 1]) ** 2)))
        for i in range(1, len(frames))
    ]  # full-frame RMS to the previous frame, grey levels
    box = detector.detect(frames[0])[0].box
    centre, half = (box[:2] + box[2:]) / 2, (box[2] - box[0]) * 0.725
    x0, y0 = np.maximum(centre - half, 0).astype(int)
    x1, y1 = (centre + half).astype(int)
    faces = tmp_path / "faces"
    for i, frame in enumerate(frames):
        write_image(faces / f"frame{i:03d}.jpg", frame[y0:y1, x0:x1])
    shutil.copy(faces / "frame010.jpg", faces / "zcopy010.jpg")
    write_image(faces / "zcopy011.png", read_image(faces / "frame011.jpg"))

    report = curate_faces(faces, dry_run=True, embedder=embedder)

    by_name = {s.name: s for s in report.scores}
    assert by_name["zcopy010.jpg"].duplicate_of == "frame010.jpg"
    assert by_name["zcopy011.png"].duplicate_of == "frame011.jpg"
    assert {d.parent.name for _, d in report.moves} == {"duplicate"}
    moved = {Path(s).name for s, _ in report.moves} - {"zcopy010.jpg", "zcopy011.png"}
    for name in moved:  # each one a repeat of a neighbour
        i, j = int(name[5:8]), int(by_name[name].duplicate_of[5:8])
        assert abs(i - j) == 1 and change[max(i, j)] < 1.0
    distinct = [
        i for i in range(30) if change[i] >= 1.0 and (i == 29 or change[i + 1] >= 1.0)
    ]
    assert len(distinct) >= 10  # most frames are distinct
    assert not {f"frame{i:03d}.jpg" for i in distinct} & moved
    # Neighbouring frames are as close in embedding space as copies are, so the
    # embedding alone could not tell them apart.
    assert (
        np.median([by_name[f"frame{i:03d}.jpg"].nearest_distance for i in distinct])
        < 0.02
    )


@pytest.mark.slow
def test_reference_photo_without_a_face_is_refused(
    tmp_path, faces_a, clip_a, embedder, detector, first_frames
):
    frame = first_frames(clip_a, 1)[0]
    background = tmp_path / "wall.png"
    write_image(background, frame[:100, :100])  # a corner of the room, no face
    with pytest.raises(FaceswapError, match="No face found in the reference photo"):
        curate_faces(faces_a, [background], embedder=embedder, detector=detector)


@pytest.mark.slow
def test_head_pose_of_a_mirrored_face_mirrors_its_yaw(faces_a, embedder):
    from faceswap_gan.evaluation.geometry import head_pose

    crops = [read_image(p) for p in sorted(faces_a.glob("*.jpg"))[10:14]]
    mirrored = [np.ascontiguousarray(c[:, ::-1]) for c in crops]
    points, _ = curation.embed_faces(embedder, crops + mirrored)
    angles = np.array([yaw_pitch(head_pose(p, (256, 256))) for p in points])
    original, flipped = angles[:4], angles[4:]
    np.testing.assert_allclose(flipped[:, 0], -original[:, 0], atol=4)
    np.testing.assert_allclose(flipped[:, 1], original[:, 1], atol=4)
    assert np.abs(original[:, 0]).max() > 8  # turned enough for the sign to matter


# --- the command -----------------------------------------------------------------


def test_cli_refuses_bad_thresholds_and_empty_folders(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["sort", "--faces", str(tmp_path / "empty")]) == 1
    assert "No face images" in capsys.readouterr().err
    code = cli.main(["sort", "--faces", str(tmp_path), "--max-pitch", "95"])
    assert code == 1
    err = capsys.readouterr().err
    assert "--max-pitch" in err and "(0, 90]" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_cli_sort_dry_run_then_run(tmp_path, faces_a, faces_b, capsys):
    names = make_mixed_folder(tmp_path, faces_a, faces_b)
    faces, masks = tmp_path / "faces", tmp_path / "masks"
    files = listing(faces)
    args = ["sort", "--faces", str(faces), "--masks", str(masks)]
    # --max-yaw 10 moves the faces turned further than 10 degrees to rejected/pose/.
    assert cli.main(args + ["--dry-run", "--max-yaw", "10"]) == 0
    out = capsys.readouterr().out
    assert listing(faces) == files | {"scores.csv"}
    rows = read_rows(faces / "scores.csv")
    pose = {n for n, r in rows.items() if r["reason"] == "pose"}
    turned = {n for n, r in rows.items() if abs(float(r["yaw_deg"])) > 10}
    assert pose == turned - {n for n in turned if rows[n]["reason"] == "blur"}
    assert pose and all(f"Would move {faces / n} ->" in out for n in pose)
    assert "dry run: nothing moved" in out

    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert f"{len(names['a'])} kept" in out and f"{B_FACES} identity" in out
    assert set(p.name for p in faces.glob("*.jpg")) == set(names["a"])
    assert len(list((masks / "rejected").rglob("*.png"))) == B_FACES + BLURRED
