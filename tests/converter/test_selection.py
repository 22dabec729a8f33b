"""Swap only the chosen person (`ConverterConfig.reference`), on real two-person clips.

The two-person clips are made from the bundled clips side by side (both resized to
320 px high, 150 frames = 5 s at 30 fps, person_a's audio): person_a on the left and
person_b on the right, and a "cut" clip where the two exchange sides at frame 75. The
reference photo is one of person_b's face crops (tests/data/faces/b, cut from
person_b's footage). The output is lossless (FFV1, single layout, no watermark), so
a half of a frame is "unchanged" when it equals the input bit for bit, and "swapped"
when more than 0.5 % of its pixels differ by more than 24 in some channel (a swapped
face changes 5-10 % of the half).
"""

import argparse

import cv2
import numpy as np
import pytest

from converter.config import ConverterConfig
from converter.pipeline import VideoConverter
from converter.selection import (
    DEFAULT_SIMILARITY_THRESHOLD,
    IdentityTracks,
    reference_crops,
)
from faceswap_gan.errors import FaceswapError
from faceswap_gan.faces.tracking import FaceTracker
from faceswap_gan.images import list_images, write_image
from faceswap_gan.video import (
    VideoReader,
    VideoWriter,
    iter_video_frames,
    read_metadata,
)

HEIGHT, FRAMES, CUT = 320, 150, 75
CHANGED = 0.005  # Share of a half's pixels that differ by > 24: a swapped face.


def _two_person_clip(path, clip_a, clip_b, cut: bool):
    """[a | b] side by side (b | a from frame CUT when `cut`), person_a's audio."""
    reader = VideoReader(clip_a)
    with VideoWriter(path, reader.fps, (2 * HEIGHT, HEIGHT), clip_a, {}) as writer:
        frames = zip(VideoReader(clip_a), VideoReader(clip_b))
        for index, (a, b) in enumerate(frames):
            if index == FRAMES:
                break
            a, b = (cv2.resize(f, (HEIGHT, HEIGHT), cv2.INTER_AREA) for f in (a, b))
            writer.write(np.hstack([b, a] if cut and index >= CUT else [a, b]))
    return path


def _changed_halves(source, output):
    """(F, 2) bool swapped, (F, 2) bool identical: per frame, per half (left, right)."""
    swapped, identical = [], []
    for (_, before), (_, after) in zip(
        iter_video_frames(source), iter_video_frames(output), strict=True
    ):
        diff = np.abs(before.astype(int) - after).max(axis=-1)
        half = diff.shape[1] // 2
        halves = (diff[:, :half], diff[:, half:])
        swapped.append([(h > 24).mean() > CHANGED for h in halves])
        identical.append([not h.any() for h in halves])
    return np.asarray(swapped), np.asarray(identical)


@pytest.fixture(scope="module")
def reference_photo(faces_b):
    return list_images(faces_b)[0]  # A crop of person_b's footage.


class _Counting:
    """The real detector, counting its calls."""

    def __init__(self, detector):
        self.detector, self.calls = detector, 0

    def detect(self, frame):
        self.calls += 1
        return self.detector.detect(frame)


@pytest.fixture(scope="module")
def converted(tmp_path_factory, clip_a, clip_b, tiny_model, detector, reference_photo):
    """{"plain"|"cut": (input, output, report)} converted with the reference."""
    folder = tmp_path_factory.mktemp("selection")
    config = ConverterConfig(
        output_type="single",
        watermark=False,
        codec="lossless",
        reference=(str(reference_photo),),
    )
    counting = _Counting(detector)
    converter = VideoConverter(tiny_model, config, counting)
    out = {}
    for name in ("plain", "cut"):
        source = _two_person_clip(folder / f"{name}.mp4", clip_a, clip_b, name == "cut")
        output = folder / f"{name}_out.mkv"
        counting.calls = 0
        report = converter.convert(source, output, progress=False)
        report.detector_calls = counting.calls
        out[name] = (source, output, report)
    return out


@pytest.mark.slow
def test_only_the_reference_person_is_swapped(converted):
    source, output, report = converted["plain"]
    changed, identical = _changed_halves(source, output)
    assert len(changed) == FRAMES
    assert changed[:, 1].mean() >= 0.95  # person_b (right), the reference.
    assert identical[:, 0].all()  # person_a (left): never touched, every pixel.
    # The report: one track per person, voted as a whole.
    assert sorted(t.swapped for t in report.tracks) == [False, True]
    for track in report.tracks:
        assert track.frames >= 0.95 * FRAMES
        if track.swapped:
            assert track.mean_similarity >= DEFAULT_SIMILARITY_THRESHOLD
        else:
            assert track.mean_similarity < DEFAULT_SIMILARITY_THRESHOLD
    assert "swapped" in report.summary() and "kept" in report.summary()
    # Detection ran once per frame (pass 1), plus once on the reference photo the
    # first time; pass 2 swapped from the stored tracks.
    assert report.detector_calls in (FRAMES, FRAMES + 1)
    # Output keeps the audio and the synthetic-media tags.
    assert VideoReader(output).has_audio
    assert read_metadata(output)["synthetic_media"] == "true"


@pytest.mark.slow
def test_the_swap_follows_the_person_across_a_cut(converted, detector):
    source, output, report = converted["cut"]
    changed, identical = _changed_halves(source, output)
    frames = np.arange(FRAMES)
    person_b_side = np.where(frames < CUT, 1, 0)  # right, then left
    on_b = changed[frames, person_b_side]
    assert on_b[:CUT].mean() >= 0.95 and on_b[CUT:].mean() >= 0.95
    assert identical[frames, 1 - person_b_side].all()  # person_a's half: untouched.
    # Box IoU alone continues each side's track with the other person after the
    # cut (so this clip needs identity-aware tracks)...
    tracker, ids = FaceTracker(), []
    for index, frame in iter_video_frames(source):
        if index >= CUT - 2:
            ids.append({t.track_id for t in tracker.update(detector.detect(frame))})
            if index >= CUT + 1:
                break
    assert ids[0] == ids[-1] == {0, 1}
    # ...while the identity tracks end at the cut: none spans it.
    assert all(
        t.last_frame < CUT or t.first_frame >= CUT for t in report.tracks if t.frames
    )
    assert sum(t.swapped for t in report.tracks) == 2


def test_reference_photo_errors(tmp_path, detector, clip_a, first_frames):
    with pytest.raises(FaceswapError, match="Cannot read the reference photo"):
        reference_crops([tmp_path / "missing.jpg"], detector)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(FaceswapError, match="Cannot read the reference photo"):
        reference_crops([broken], detector)
    frame = first_frames(clip_a, 1)[0]
    empty = tmp_path / "empty.png"
    write_image(empty, np.full((200, 200, 3), 128, np.uint8))
    with pytest.raises(FaceswapError, match="shows no face"):
        reference_crops([empty], detector)
    two = tmp_path / "two.png"
    write_image(two, np.hstack([frame, frame]))
    with pytest.raises(FaceswapError, match="shows 2 faces"):
        reference_crops([two], detector)
    with pytest.raises(FaceswapError, match="at least one photo"):
        reference_crops([], detector)


def test_config_reference_fields(tmp_path):
    config = ConverterConfig(reference="me.jpg", similarity_threshold=0.5)
    assert config.reference == ("me.jpg",)
    path = tmp_path / "config.json"
    config.to_json(path)
    assert ConverterConfig.from_json(path) == config
    assert ConverterConfig().similarity_threshold == DEFAULT_SIMILARITY_THRESHOLD
    with pytest.raises(FaceswapError, match="similarity_threshold"):
        ConverterConfig(similarity_threshold=1.5)
    with pytest.raises(FaceswapError, match="reference"):
        ConverterConfig(reference=[3])


class _Faces:
    """Detector stand-in: the same two boxes every frame (left, right)."""

    def detect(self, frame):
        from faceswap_gan.faces.detection import Face

        boxes = ([10, 10, 60, 60], [100, 10, 150, 60])
        points = np.array([[20, 25], [40, 25], [30, 35], [22, 48], [38, 48]], float)
        return [
            Face(np.array(box, np.float32), (points + box[:2]).astype(np.float32), 1)
            for box in boxes
        ]


class _Embedder:
    """Embedding stand-in: a scripted identity per (frame, side) face, in order."""

    def __init__(self, script):
        self.script = iter(script)

    def embed(self, crops):
        return np.stack([next(self.script) for _ in crops])


def test_identity_tracks_split_on_a_lasting_change_not_on_one_odd_frame():
    """The vote and split logic on scripted embeddings (the real ones are tested on
    the clips above): the right face turns into another person from frame 6 on, the
    left face has one odd frame (3)."""
    me, other, odd = np.eye(3)
    script = []
    for frame in range(10):
        script.append(odd if frame == 3 else other)  # left face
        script.append(me if frame < 6 else other)  # right face
    tracks = IdentityTracks(me, _Faces(), _Embedder(script), 0.4)
    for _ in range(10):
        tracks.add(np.zeros((80, 160, 3), np.uint8))
    reports = tracks.finish()
    spans = sorted((r.first_frame, r.last_frame, r.swapped) for r in reports)
    assert spans == [(0, 5, True), (0, 9, False), (6, 9, False)]
    left = [frame[0].track for frame in tracks.frames]
    assert len(set(left)) == 1  # The odd frame stayed in the left track.


def test_cli_reference_flags_reach_the_config():
    from faceswap_gan.commands.convert import add_parser, resolve_config

    parser = add_parser(argparse.ArgumentParser().add_subparsers())
    args = parser.parse_args(
        "--model m --input a.mp4 --output b.mp4 --reference x.jpg y.png "
        "--similarity-threshold 0.55".split()
    )
    config = resolve_config(args)
    assert config.reference == ("x.jpg", "y.png")
    assert config.similarity_threshold == 0.55


@pytest.mark.slow
def test_cli_reference_prints_the_tracks(converted, tiny_run, reference_photo, capsys):
    from faceswap_gan.cli import main

    source = converted["plain"][0]
    out = source.with_name("cli.mp4")
    args = ["convert", "--model", str(tiny_run), "--input", str(source)]
    args += ["--output", str(out), "--reference", str(reference_photo)]
    args += ["--max-frames", "6", "--no-progress", "--output-type", "single"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "reference: 1 of 2 face tracks match and were swapped" in text
    assert "frames 0-5 (6)" in text and "6/6 votes: swapped" in text
    assert "0/6 votes: kept" in text
    assert VideoReader(out).frame_count == 6
