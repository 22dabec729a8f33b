"""Output control of `convert`: crf/preset, codec, PNG frames, start/end, batch.

Every option is run end to end on the bundled clip with the real tiny model and
checked for what it promises, plus the audio track and the synthetic-media tags.
"""

import av
import numpy as np
import pytest

from converter.config import ConverterConfig
from converter.pipeline import VideoConverter, frame_span
from faceswap_gan.errors import FaceswapError
from faceswap_gan.images import list_images, read_image
from faceswap_gan.video import CODECS, VideoReader, check_codec, read_metadata


def _tagged_with_audio(path):
    """The output has an audio stream and the synthetic-media tags."""
    tags = read_metadata(path)  # Lower-case keys, also from .mkv.
    return VideoReader(path).has_audio and tags.get("synthetic_media") == "true"


def _audio_seconds(path):
    """Duration of the decoded audio samples of `path`, in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.rate


def _audio(path):
    """First channel of the decoded audio, float32, and its sample rate."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks = [f.to_ndarray()[0] for f in container.decode(stream)]
        return np.concatenate(chunks).astype(np.float32), stream.rate


@pytest.fixture(scope="module")
def converter(tiny_model, detector):
    def build(**fields):
        config = ConverterConfig(output_type="single", watermark=False, **fields)
        return VideoConverter(tiny_model, config, detector)

    return build


@pytest.mark.slow
def test_crf_and_preset_reach_the_h264_encoder(converter, clip_a, tmp_path):
    out = tmp_path / "crf.mp4"
    converter(crf=30, preset="ultrafast").convert(
        clip_a, out, max_frames=6, progress=False
    )
    data = out.read_bytes()  # x264 writes its settings into the stream (SEI).
    assert b"crf=30.0" in data and b"subme=0" in data  # subme=0: ultrafast.
    assert b"crf=18.0" not in data
    assert VideoReader(out).frame_count == 6 and _tagged_with_audio(out)


@pytest.mark.slow
def test_h265_codec(converter, clip_a, tmp_path, first_frames):
    out = tmp_path / "h265.mp4"
    converter(codec="h265", crf=20).convert(clip_a, out, max_frames=6, progress=False)
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "hevc"
    assert b"crf=20.0" in out.read_bytes()
    assert VideoReader(out).frame_count == 6 and _tagged_with_audio(out)


@pytest.mark.slow
def test_lossless_codec_stores_the_written_frames_exactly(converter, clip_a, tmp_path):
    """The PNG frames (--frames-dir) are the frames given to the writer; decoding the
    lossless video gives them back bit for bit."""
    out, frames_dir = tmp_path / "lossless.mkv", tmp_path / "frames"
    converter(codec="lossless").convert(
        clip_a, out, max_frames=5, progress=False, frames_dir=frames_dir
    )
    written = [read_image(path) for path in list_images(frames_dir)]
    assert [p.name for p in list_images(frames_dir)] == [
        f"frame_{i:06d}.png" for i in range(5)
    ]
    decoded = list(VideoReader(out))
    assert len(decoded) == len(written) == 5
    for a, b in zip(decoded, written):
        np.testing.assert_array_equal(a, b)
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "ffv1"
    assert _tagged_with_audio(out)
    # The frames are the converted ones (the face changed), not the input's.
    source = list(VideoReader(clip_a).frames(0, 5))
    assert all(np.abs(a.astype(int) - s).max() > 40 for a, s in zip(written, source))
    with pytest.raises(FaceswapError, match="already holds frame"):
        converter().convert(
            clip_a, tmp_path / "again.mp4", max_frames=2, frames_dir=frames_dir
        )


def test_codec_container_and_range_errors(tmp_path):
    with pytest.raises(FaceswapError, match="cannot hold codec 'lossless'.*mkv"):
        check_codec(tmp_path / "x.mp4", "lossless")
    with pytest.raises(FaceswapError, match="Unknown codec"):
        check_codec(tmp_path / "x.mp4", "vp9")
    with pytest.raises(FaceswapError, match="crf"):
        check_codec(tmp_path / "x.mp4", "h264", crf=60)
    with pytest.raises(FaceswapError, match="preset"):
        check_codec(tmp_path / "x.mp4", "h264", preset="warp")
    with pytest.raises(FaceswapError, match="codec must be one of"):
        ConverterConfig(codec="av1")
    assert {CODECS[c][0] for c in CODECS} <= set(av.codecs_available)


def test_start_end_validation(clip_a):
    reader = VideoReader(clip_a)  # 6 s at 30 fps.
    assert frame_span(reader, 1.0, 2.0) == (30, 60)
    assert frame_span(reader, None, None) == (0, None)
    assert frame_span(reader, 0.99, None) == (30, None)  # first frame at/after
    for start, end, message in (
        (6.0, None, "at or past the end"),
        (2.0, 2.0, "must be after start"),
        (1.0, 0.5, "must be after start"),
        (0.0, 7.0, "past the end"),
        (-1.0, None, ">= 0"),
        ("1", None, "seconds"),
    ):
        with pytest.raises(FaceswapError, match=message):
            frame_span(reader, start, end)


@pytest.mark.slow
def test_start_end_cut_video_and_audio_to_the_span(
    zero_alpha_model, detector, clip_a, tmp_path
):
    """With alpha 0 the output frames are the input's: frames 30-59 exactly (lossless),
    and the audio is the input's audio from 1 s on, 1 s long."""
    config = ConverterConfig(output_type="single", watermark=False, codec="lossless")
    out = tmp_path / "span.mkv"
    report = VideoConverter(zero_alpha_model, config, detector).convert(
        clip_a, out, start=1.0, end=2.0, progress=False
    )
    assert report.frames == 30 and report.input_ended is None
    expected = list(VideoReader(clip_a).frames(30, 60))
    decoded = list(VideoReader(out))
    assert len(decoded) == 30
    for a, b in zip(decoded, expected):
        np.testing.assert_array_equal(a, b)
    assert _tagged_with_audio(out)
    assert abs(_audio_seconds(out) - 1.0) < 0.05
    # The audio is the input's from 1 s: best match of a 0.1 s stretch, searched
    # over +-0.1 s, is within one AAC frame (1024 samples) of 1 s, and exact-ish.
    source, rate = _audio(clip_a)
    cut, _ = _audio(out)
    probe = cut[4096 : 4096 + rate // 10]
    offsets = range(rate - rate // 10, rate + rate // 10)
    errors = [
        np.abs(source[o + 4096 : o + 4096 + len(probe)] - probe).mean() for o in offsets
    ]
    best = int(np.argmin(errors))
    assert abs(offsets[best] - rate) <= 1024
    assert errors[best] < 0.05 * np.abs(probe).mean()


@pytest.mark.slow
def test_batch_folder_converts_skips_and_reports_failures(
    tiny_run, clip_a, clip_b, tmp_path, capsys
):
    from faceswap_gan.cli import main

    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    (inputs / "a.mp4").symlink_to(clip_a)
    (inputs / "b.mov").write_bytes(clip_b.read_bytes())
    (inputs / "broken.mp4").write_bytes(b"not a video")
    (inputs / "notes.txt").write_text("not a video either")
    args = ["convert", "--model", str(tiny_run), "--input", str(inputs)]
    args += ["--output", str(outputs), "--max-frames", "2", "--no-progress"]
    args += ["--output-type", "single"]
    assert main(args) == 1  # broken.mp4 failed; the others were converted.
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("converted a.mp4") for line in lines)
    assert any(line.startswith("converted b.mov") for line in lines)
    assert any(line.startswith("failed broken.mp4") for line in lines)
    assert "3 videos: 2 converted, 0 skipped" in lines[-1]
    assert sorted(p.name for p in outputs.iterdir()) == ["a.mp4", "b.mov"]
    for name in ("a.mp4", "b.mov"):
        assert VideoReader(outputs / name).frame_count == 2
        assert _tagged_with_audio(outputs / name)
    before = (outputs / "a.mp4").stat().st_mtime_ns
    (inputs / "broken.mp4").unlink()
    assert main(args) == 0  # Nothing failed: both outputs exist and are skipped.
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("skipped") for line in lines) == 2
    assert (outputs / "a.mp4").stat().st_mtime_ns == before
    assert main([*args, "--overwrite"]) == 0
    assert "2 converted" in capsys.readouterr().out.splitlines()[-1]
    assert (outputs / "a.mp4").stat().st_mtime_ns != before


@pytest.mark.slow
def test_convert_folder_python_api(converter, clip_a, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.mp4").symlink_to(clip_a)
    (inputs / "z.avi").write_bytes(b"broken")
    lines = []
    items = converter(codec="lossless").convert_folder(
        inputs,
        tmp_path / "out",
        log=lines.append,
        frames_dir=tmp_path / "frames",
        max_frames=2,
        progress=False,
    )
    assert [(i.input_path.name, i.output_path.name, i.status) for i in items] == [
        ("a.mp4", "a.mkv", "converted"),
        ("z.avi", "z.mkv", "failed"),
    ]
    assert items[0].report.frames == 2 and "Cannot read video" in items[1].error
    assert len(lines) == 2 and lines[1].startswith("failed z.avi")
    assert len(list_images(tmp_path / "frames" / "a")) == 2
    with pytest.raises(FaceswapError, match="is the input folder"):
        converter().convert_folder(inputs, inputs)
