"""`convert` never loses or half-writes a video (issue 11), on the bundled clips with
a real tiny model: atomic output, no overwrite of the input or of an existing video
without --overwrite, a clean one-line error (no segfault) when the output cannot be
written, a warning for a truncated input, the output suffix checked up front, and no
file created by --dry-run or a failed run."""

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from converter.config import ConverterConfig
from converter.pipeline import VideoConverter
from faceswap_gan.cli import main
from faceswap_gan.errors import FaceswapError
from faceswap_gan.video import VideoReader, read_metadata

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def converter(tiny_model, detector):
    config = ConverterConfig(output_type="single", color_correction="none")
    return VideoConverter(tiny_model, config, detector)


def _partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".partial-" in p.name)


def _truncated(clip: Path, path: Path, fraction: float = 0, size: int = 0) -> Path:
    data = clip.read_bytes()
    path.write_bytes(data[: size or int(len(data) * fraction)])
    return path


def _damaged(clip: Path, path: Path, start: int = 20000) -> Path:
    """`clip` with 2000 bytes of its frame data overwritten (a decode error)."""
    data = bytearray(clip.read_bytes())
    data[start : start + 2000] = b"\xff" * 2000
    path.write_bytes(bytes(data))
    return path


def _cli(tiny_run, source, output, *extra) -> list[str]:
    return [
        "convert",
        "--model",
        str(tiny_run),
        "--input",
        str(source),
        "--output",
        str(output),
        "--no-progress",
        "--output-type",
        "single",
        "--color-correction",
        "none",
        *extra,
    ]


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("convert: ")]


def test_interrupted_conversion_keeps_the_previous_video(
    converter, clip_a, tmp_path, monkeypatch
):
    """Item 1: a conversion interrupted midway (a real SIGINT, Ctrl-C) leaves the
    previous output byte for byte and no temporary file."""
    from faceswap_gan.video import VideoWriter

    out = tmp_path / "out.mp4"
    converter.convert(clip_a, out, max_frames=2, progress=False)
    before = out.read_bytes()

    write = VideoWriter.write

    def write_then_ctrl_c(self, frame):  # Ctrl-C once the new video is being written.
        write(self, frame)
        if self.frames_written == 3:
            assert _partials(tmp_path)  # the new video only exists as a temporary
            # raise_signal checks for pending signals before it returns, so the
            # KeyboardInterrupt starts here; a signal handled later could land in a
            # callback from C (PyAV's log callback) that ignores exceptions.
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(VideoWriter, "write", write_then_ctrl_c)
    # Python's own Ctrl-C handler, as in a fresh `python -m faceswap_gan` process: a
    # native library loaded by an earlier test can take SIGINT over at the C level.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            converter.convert(
                clip_a, out, max_frames=60, progress=False, overwrite=True
            )
    finally:
        signal.signal(signal.SIGINT, previous)
    assert out.read_bytes() == before
    assert _partials(tmp_path) == []
    assert VideoReader(out).frame_count == 2


def test_killed_writer_keeps_the_previous_video(converter, clip_a, tmp_path):
    """Item 1: kill -9 while a video is being written leaves the previous output
    intact (the new video only lives in a hidden temporary file, which the next
    conversion of that output removes)."""
    out = tmp_path / "out.mp4"
    converter.convert(clip_a, out, max_frames=2, progress=False)
    before = out.read_bytes()
    script = (
        "import sys, time\n"
        "from faceswap_gan.video import VideoReader, VideoWriter\n"
        "reader = VideoReader(sys.argv[1])\n"
        "with VideoWriter(sys.argv[2], reader.fps, reader.size, sys.argv[1]) as w:\n"
        "    while True:\n"
        "        for frame in reader:\n"
        "            w.write(frame)\n"
        "            time.sleep(0.01)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(clip_a), str(out)], cwd=REPO
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            p.stat().st_size > 0 for p in tmp_path.glob(".*.partial-*")
        ):
            time.sleep(0.01)
        assert process.poll() is None and _partials(tmp_path), "never wrote"
    finally:
        process.kill()  # SIGKILL: no cleanup runs.
        process.wait()
    assert out.read_bytes() == before and VideoReader(out).frame_count == 2
    assert len(_partials(tmp_path)) == 1
    converter.convert(clip_a, out, max_frames=3, progress=False, overwrite=True)
    assert _partials(tmp_path) == [] and VideoReader(out).frame_count == 3


@pytest.mark.parametrize("link", [os.link, os.symlink])
def test_output_linked_to_the_input_is_refused(converter, clip_a, tmp_path, link):
    """Item 2: an output that is a hard link (or symlink) to the input is refused;
    the input keeps its 180 frames."""
    source = tmp_path / "input.mp4"
    shutil.copyfile(clip_a, source)
    original = source.read_bytes()
    output = tmp_path / "linked.mp4"
    link(source, output)
    with pytest.raises(FaceswapError, match="is the input"):
        converter.convert(source, output, max_frames=2, progress=False)
    with pytest.raises(FaceswapError, match="is the input"):
        converter.convert(source, output, max_frames=2, progress=False, overwrite=True)
    assert source.read_bytes() == original
    assert VideoReader(source).frame_count == 180


def test_existing_output_needs_overwrite(converter, tiny_run, clip_a, tmp_path, capsys):
    """Item 3: an existing video is not replaced without overwrite / --overwrite."""
    out = tmp_path / "out.mp4"
    converter.convert(clip_a, out, max_frames=2, progress=False)
    before = out.read_bytes()
    with pytest.raises(FaceswapError, match="exists; pass --overwrite to replace it"):
        converter.convert(clip_a, out, max_frames=3, progress=False)
    assert out.read_bytes() == before
    # The CLI refuses before loading the model: this --model does not even exist.
    assert main(_cli(tmp_path / "no-model", clip_a, out, "--max-frames", "3")) == 1
    err = capsys.readouterr().err
    assert _error_lines(err) == [
        f"convert: error: {out} exists; pass --overwrite to replace it."
    ]
    assert out.read_bytes() == before
    args = _cli(tiny_run, clip_a, out, "--max-frames", "3", "--overwrite")
    assert main(args) == 0
    assert VideoReader(out).frame_count == 3 and _partials(tmp_path) == []


@pytest.mark.slow
def test_unwritable_output_is_one_line_and_leaves_nothing(tiny_run, clip_a, tmp_path):
    """Item 4: in a subprocess (a segfault would show as -11): an output that is a
    link to /dev/full is refused; a real write failure midway (file size limit,
    EFBIG) exits 1 with one line, keeps the previous video, leaves no temp file."""
    out = tmp_path / "out.mp4"
    assert main(_cli(tiny_run, clip_a, out, "--max-frames", "2")) == 0
    before = out.read_bytes()
    full = tmp_path / "full.mp4"
    full.symlink_to("/dev/full")
    limit = len(before) + 4096  # The header fits, the video does not.
    script = (
        "import sys\n"
        "from faceswap_gan.cli import main\n"
        f"print(main({_cli(tiny_run, clip_a, full)!r}))\n"
        "sys.stdout.flush()\n"
        f"print(main({_cli(tiny_run, clip_a, out, '--max-frames', '60', '--overwrite')!r}))\n"  # noqa: E501
    )

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # Writes fail with EFBIG.
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        preexec_fn=limit_file_size,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]  # Not -11 (SIGSEGV).
    codes = [line for line in done.stdout.splitlines() if line in ("0", "1")]
    assert codes == ["1", "1"], done.stdout[-3000:]
    assert "Traceback" not in done.stderr
    errors = _error_lines(done.stderr)
    assert len(errors) == 2, done.stderr[-3000:]
    assert errors[0].startswith(f"convert: error: The output video {full} exists")
    assert "not a regular file" in errors[0]
    assert errors[1].startswith(f"convert: error: File too large: {out} (")
    assert out.read_bytes() == before
    assert _partials(tmp_path) == [] and not list(Path("/dev").glob("*.partial-*"))


def test_unwritable_output_folder_is_one_line(tiny_run, clip_a, tmp_path, capsys):
    """Item 4: an output folder that cannot be created (a file stands there)."""
    (tmp_path / "taken").write_text("a file, not a folder")
    out = tmp_path / "taken" / "out.mp4"
    assert main(_cli(tiny_run, clip_a, out, "--max-frames", "2")) == 1
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith("convert: error: ") and "taken" in line
    assert _partials(tmp_path) == []


def test_truncated_input_converts_what_it_has_with_a_warning(
    converter, clip_a, tmp_path
):
    """Item 5: a truncated input (an early end of stream) is converted up to where
    it ends, with a warning giving the frames reached, announced and the reason."""
    source = _truncated(clip_a, tmp_path / "cut.mp4", fraction=1 / 8)
    out = tmp_path / "out.mp4"
    with pytest.warns(UserWarning, match="ended after .* of the 180 frames") as caught:
        report = converter.convert(source, out, progress=False)
    message = str(caught[0].message)
    assert 0 < report.frames < 180 and report.frames_expected == 180
    assert f"ended after {report.frames} of the 180 frames" in message
    assert "early end of stream" in message
    assert report.input_ended.startswith("early end of stream")
    assert f"warning: {message}" in report.summary()
    assert sum(1 for _ in VideoReader(out)) == report.frames


def test_damaged_input_exits_0_with_a_warning_line(tiny_run, clip_a, tmp_path, capsys):
    """Item 5: a decode error midway ends the input: exit code 0 (the output is a
    valid, shorter video) and one `convert: warning:` line with the reason."""
    source = _damaged(clip_a, tmp_path / "damaged.mp4")
    out = tmp_path / "out.mp4"
    assert main(_cli(tiny_run, source, out)) == 0
    captured = capsys.readouterr()
    (line,) = _error_lines(captured.err)
    frames = sum(1 for _ in VideoReader(out))
    assert 0 < frames < 180
    assert line.startswith(
        f"convert: warning: {source} ended after {frames} of the 180"
    )
    assert "decode error" in line and "Invalid data" in line
    assert "warning: " in captured.out  # Also in the printed report.


@pytest.mark.parametrize("name", ["out.txt", "out.jpg", "out"])
def test_output_suffix_is_checked_before_the_model_loads(
    converter, clip_a, tmp_path, capsys, name
):
    """Item 6: an output FFmpeg cannot write as H.264 is refused up front, naming
    the path and the allowed suffixes."""
    out = tmp_path / name
    assert main(_cli(tmp_path / "no-model", clip_a, out)) == 1
    (line,) = _error_lines(capsys.readouterr().err)
    assert str(out) in line and ".mp4, .mov, .m4v, .mkv" in line
    with pytest.raises(FaceswapError, match=".mp4, .mov, .m4v, .mkv"):
        converter.convert(clip_a, out, max_frames=1, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".mov", ".m4v", ".mkv", ".MP4"])
def test_allowed_suffixes_write_tagged_h264(converter, clip_b, tmp_path, suffix):
    """Item 6: every allowed suffix makes a readable video marked as synthetic."""
    out = tmp_path / f"out{suffix}"
    converter.convert(clip_b, out, max_frames=1, progress=False)
    assert sum(1 for _ in VideoReader(out)) == 1
    tags = {key.lower(): value for key, value in read_metadata(out).items()}
    assert tags["synthetic_media"] == "true"


def test_dry_run_and_failed_runs_create_no_file(
    tiny_run, clip_a, clip_b, tmp_path, capsys
):
    """Item 7: --dry-run checks the output like a real run and writes nothing; an
    input with no decodable frame fails without leaving an (unreadable) output."""
    out = tmp_path / "new" / "out.mp4"
    assert main(_cli(tiny_run, clip_a, out, "--dry-run")) == 0
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing.mp4"
    existing.write_bytes(clip_a.read_bytes())
    capsys.readouterr()
    assert main(_cli(tiny_run, clip_b, existing, "--dry-run")) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert existing.read_bytes() == clip_a.read_bytes()
    # The header is there, no frame decodes: an error, and no output at all.
    source = _truncated(clip_a, tmp_path / "header.mp4", size=8000)
    out = tmp_path / "out.mp4"
    assert main(_cli(tiny_run, source, out)) == 1
    (line,) = _error_lines(capsys.readouterr().err)
    assert "No frame of" in line and "nothing was written" in line
    assert not out.exists() and _partials(tmp_path) == []
