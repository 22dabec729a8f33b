"""faceswap_gan.video (PyAV): decode, H.264 encode, audio copied, synthetic tags."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from faceswap_gan.video import (
    SYNTHETIC_COMMENT,
    VideoReader,
    VideoWriter,
    read_metadata,
)

SAMPLES = Path(__file__).resolve().parents[1] / "faceswap_gan" / "data" / "samples"
CLIP = SAMPLES / "person_a.mp4"


def _audio(path):
    """(duration in seconds, list of packet payloads) of the first audio stream."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        packets = [bytes(p) for p in container.demux(stream) if p.dts is not None]
        return float(stream.duration * stream.time_base), packets


def _write(path, frames, fps, audio_from=None, **kwargs):
    height, width = frames[0].shape[:2]
    with VideoWriter(
        path, fps, (width, height), audio_from=audio_from, **kwargs
    ) as out:
        for frame in frames:
            out.write(frame)


def _first(reader, count):
    frames = []
    for frame in reader:
        frames.append(frame)
        if len(frames) == count:
            break
    return frames


def test_reader_properties_and_frames():
    reader = VideoReader(CLIP)
    assert reader.fps == 30 and isinstance(reader.fps, Fraction)
    assert reader.frame_count == len(reader) == 180
    assert reader.size == (480, 480)
    assert reader.duration == pytest.approx(6.0, abs=0.05)
    assert reader.has_audio
    frames = _first(reader, 3)
    assert frames[0].shape == (480, 480, 3) and frames[0].dtype == np.uint8
    assert sum(1 for _ in VideoReader(SAMPLES / "person_b.mp4")) == 180


def test_writer_keeps_frames_fps_audio_and_tags_synthetic(tmp_path):
    reader = VideoReader(CLIP)
    frames = _first(reader, 15)
    out = tmp_path / "out.mp4"
    _write(out, frames, reader.fps, audio_from=CLIP)
    written = VideoReader(out)
    assert written.frame_count == 15 and written.fps == reader.fps
    assert written.size == reader.size and written.has_audio
    decoded = list(written)
    assert len(decoded) == 15
    assert np.abs(decoded[7].astype(int) - frames[7]).mean() < 3.0  # crf 18
    duration, packets = _audio(out)
    assert abs(duration - 15 / 30) <= 1 / 30
    _, source_packets = _audio(CLIP)
    assert (
        packets == source_packets[: len(packets)]
    )  # Copied unchanged, not re-encoded.
    tags = read_metadata(out)
    assert tags["comment"] == SYNTHETIC_COMMENT and tags["synthetic_media"] == "true"
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"


def test_odd_sizes_are_padded_to_even_and_no_audio(tmp_path):
    frame = _first(VideoReader(CLIP), 1)[0][:75, :101]
    out = tmp_path / "odd.mp4"
    _write(out, [frame] * 3, 25, crf=0)
    written = VideoReader(out)
    assert written.size == (102, 76) and not written.has_audio
    decoded = next(iter(written))
    assert np.abs(decoded[:75, :101].astype(int) - frame).mean() < 2.0


def test_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        VideoReader(tmp_path / "missing.mp4")
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video")
    with pytest.raises(ValueError, match="notes.mp4"):
        VideoReader(bad)


def test_writer_errors(tmp_path):
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "a.mp4", 0, (64, 64))
    with VideoWriter(tmp_path / "b.mp4", 30, (64, 48)) as writer:
        with pytest.raises(ValueError, match=r"\(48, 64, 3\) uint8"):
            writer.write(np.zeros((64, 64, 3), np.uint8))
        writer.write(np.zeros((48, 64, 3), np.uint8))
