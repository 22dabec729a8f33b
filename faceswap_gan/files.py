"""Writing files so that nothing is lost or half-written.

Every file the project writes goes through `atomic_output`: it is written to a hidden
temporary file in the same folder (same suffix, so OpenCV, Matplotlib and FFmpeg pick
the same format) and renamed over the final path only when complete. A kill, a full
disk or an exception leaves the previous file intact and removes the temporary one.
Permissions follow the umask, as a plain `open(path, "w")` would.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from faceswap_gan.errors import FaceswapError

TEMP_MARK = ".partial-"  # In the names of temporary files and folders.


def umask() -> int:
    """The process umask (e.g. 0o022)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def follow_umask(path: str | Path, folder: bool = False) -> None:
    """chmod `path` to 0o666 (files) / 0o777 (folders) minus the umask, as `open`
    and `mkdir` would have created it (tempfile creates 0o600 / 0o700)."""
    os.chmod(path, (0o777 if folder else 0o666) & ~umask())


def temp_path(path: str | Path) -> Path:
    """A fresh hidden sibling of `path`, same suffix: `dir/.name.partial-XXXX.suf`."""
    path = Path(path)
    token = secrets.token_hex(4)
    return path.with_name(f".{path.stem}{TEMP_MARK}{token}{path.suffix}")


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path to write; renames it to `path` when the block ends
    without an exception, else removes it. The parent folder is created.

    Raises:
        OSError: the folder cannot be created or written (propagated as is).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        if tmp.is_dir():
            follow_umask(tmp, folder=True)
        elif tmp.exists():
            follow_umask(tmp)
        else:
            raise FileNotFoundError(f"Nothing was written to {tmp} for {path}.")
        os.replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise


def remove(path: str | Path) -> None:
    """Deletes a file or folder if it exists (no error if it does not)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def write_text(path: str | Path, text: str) -> None:
    """Writes `text` to `path` atomically (fsynced before the rename)."""
    with atomic_output(path) as tmp:
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())


def is_partial(path: str | Path, output: str | Path | None = None) -> bool:
    """True for a temporary file or folder of `atomic_output` (`temp_path`'s names),
    e.g. one a killed write left; with `output`, only one made for that path."""
    name = Path(path).name
    if output is None:
        return name.startswith(".") and TEMP_MARK in name
    output = Path(output)
    return name.startswith(f".{output.stem}{TEMP_MARK}") and name.endswith(
        output.suffix
    )


def remove_partials(folder: str | Path, output: str | Path | None = None) -> list[Path]:
    """Deletes temporary files/folders left in `folder` by killed writes; returns
    them. Only names made by `temp_path` are touched; with `output`, only those made
    for that path (other writers' temporaries in the folder stay)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.iterdir() if is_partial(p, output)]
    for path in stale:
        remove(path)
    return stale


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when `a` and `b` are the same file or folder on disk: the same path, a
    symlink or a hard link (`os.path.samefile`). False when either does not exist."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output_not_input(
    output: str | Path, inputs: Iterable[str | Path], what: str = "output"
) -> None:
    """Refuses an output path that is (or links to) one of the inputs.

    Raises:
        FaceswapError: `output` is the same file or folder as an input (naming both).
    """
    for source in inputs:
        if same_file(output, source):
            raise FaceswapError(
                f"The {what} {output} is the input {source} (the same file on disk); "
                f"writing it would destroy the input. Choose another {what} path."
            )
