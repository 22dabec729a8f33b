"""The project's error type for user mistakes, and their one-line descriptions.

`FaceswapError` is raised for what a user can fix: a bad option, config or input file,
a run folder in use. The CLI prints it (and `OSError`: a missing file, a read-only
folder, a full disk) as one line and exits 1; anything else is a bug and keeps its
traceback. It subclasses `ValueError`, so code that caught `ValueError` still does.
"""

from __future__ import annotations

import errno
import os

# OSError numbers -> what to do about them (appended to the one-line message).
_ADVICE = {
    errno.ENOSPC: "free some space or write elsewhere",
    errno.EDQUOT: "free some space or write elsewhere",
    errno.EFBIG: "the file system or `ulimit -f` limits the file size; write elsewhere",
    errno.EACCES: "check the permissions, or write elsewhere",
    errno.EPERM: "check the permissions, or write elsewhere",
    errno.EROFS: "the file system is read-only; write elsewhere",
    errno.EEXIST: "remove it or choose another path",
    errno.ENOTDIR: "a file stands where a folder is needed; rename or remove it",
    errno.EISDIR: "a folder stands where a file is needed; give a file path",
    errno.ENOENT: "check the path",
}


class FaceswapError(ValueError):
    """A user mistake (bad option, config, input file or run folder state).

    The message says what was wrong and what is allowed. The CLI reports it in one
    line (exit code 1); `--debug` shows the traceback.
    """


def describe(error: BaseException) -> str:
    """One line for a user error: FaceswapError's message, or an OSError as
    "<reason>: <path> (<advice>)" instead of Python's "[Errno 28] ...".

    Args:
        error: FaceswapError or OSError (any exception is accepted: str(error)).

    Returns:
        str, no traceback, no newline.
    """
    if isinstance(error, OSError) and error.errno is not None:
        reason = (error.strerror or str(error)).rstrip(".")
        paths = [p for p in (error.filename, error.filename2) if p is not None]
        where = (": " + " -> ".join(str(p) for p in paths)) if paths else ""
        advice = _ADVICE.get(error.errno)
        if error.errno == errno.EEXIST and paths and os.path.isfile(paths[-1]):
            reason = "A file stands where a folder is needed"
            advice = "rename or remove it, or choose another path"
        return f"{reason}{where}" + (f" ({advice})" if advice else "")
    return " ".join(str(error).split("\n")).strip() or type(error).__name__
