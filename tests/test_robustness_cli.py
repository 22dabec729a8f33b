"""Issue "Nothing lost": the CLI's error policy and the atomic-output primitives.

User mistakes (FaceswapError, OSError) end in one line and exit code 1; anything else
is a bug and keeps its traceback; `--debug` shows the traceback of a user error too.
Every output is written to a temporary sibling and renamed only when complete.
"""

import errno
import os
import stat

import pytest

from faceswap_gan import files
from faceswap_gan.cli import main
from faceswap_gan.commands import masks as masks_command
from faceswap_gan.errors import FaceswapError, describe


def test_a_user_error_is_one_line_and_exit_1(tmp_path, capsys):
    assert main(["masks", "--faces", str(tmp_path / "none"), "--output", "o"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("masks: error: ")
    assert str(tmp_path / "none") in err and "Traceback" not in err


def test_debug_shows_the_traceback_of_a_user_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="none"):
        main(["masks", "--faces", str(tmp_path / "none"), "--output", "o", "--debug"])


def test_a_bug_is_not_reported_as_a_user_error(tmp_path, monkeypatch):
    def buggy(args):
        raise ValueError("an internal shape mismatch")

    monkeypatch.setattr(masks_command, "run", buggy)
    with pytest.raises(ValueError, match="internal shape mismatch"):
        main(["masks", "--faces", str(tmp_path), "--output", "o"])


def test_a_file_where_a_folder_belongs_is_one_line(tmp_path, faces_b, capsys):
    blocker = tmp_path / "masks"
    blocker.write_text("not a folder")
    assert main(["masks", "--faces", str(faces_b), "--output", str(blocker)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(blocker) in err and "[Errno" not in err
    assert blocker.read_text() == "not a folder"


def test_os_errors_are_described_with_path_and_advice():
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/out.mp4")
    assert describe(full) == (
        "No space left on device: /data/out.mp4 (free some space or write elsewhere)"
    )
    exists = FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), "/r/x")
    assert "[Errno" not in describe(exists) and "/r/x" in describe(exists)


def test_an_interrupted_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("previous")
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_output(target) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_complete_write_replaces_and_follows_the_umask(tmp_path):
    target = tmp_path / "sub" / "faces.csv"
    old = os.umask(0o027)
    try:
        files.write_text(target, "a,b\n")
    finally:
        os.umask(old)
    assert target.read_text() == "a,b\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in target.parent.iterdir()] == ["faces.csv"]


def test_temporary_names_keep_the_suffix_and_are_cleaned(tmp_path):
    temp = files.temp_path(tmp_path / "out.mp4")
    assert temp.suffix == ".mp4" and temp.name.startswith(".out")
    temp.write_bytes(b"partial")
    (tmp_path / "keep.mp4").write_bytes(b"x")
    assert files.remove_partials(tmp_path) == [temp]
    assert [p.name for p in tmp_path.iterdir()] == ["keep.mp4"]


def test_a_hard_link_to_the_input_is_the_input(tmp_path):
    source = tmp_path / "in.mp4"
    source.write_bytes(b"video")
    os.link(source, tmp_path / "out.mp4")
    os.symlink(source, tmp_path / "sym.mp4")
    for alias in ("out.mp4", "sym.mp4"):
        with pytest.raises(FaceswapError, match="same file on disk"):
            files.check_output_not_input(tmp_path / alias, [source])
    files.check_output_not_input(tmp_path / "new.mp4", [source])  # not there: fine
    assert not files.same_file(tmp_path / "new.mp4", source)
