"""CLI subcommands: each module has `add_parser(subparsers)` and `run(args) -> int`.

User mistakes (USER_ERRORS) raised by a command's `run` are reported by `cli.main` in
one line, `<command>: error: <what was wrong and what to do>`, with exit code 1;
`--debug` shows their traceback. Other exceptions are bugs and keep their traceback.
"""

import sys

from faceswap_gan.errors import FaceswapError, describe

# Bad input, bad options, a run folder in use, a missing file, a full disk or a
# read-only folder. Not plain ValueError/RuntimeError: those are bugs.
USER_ERRORS = (FaceswapError, OSError)


def fail(command: str, error: Exception | str) -> int:
    """Prints `<command>: error: <reason>` to stderr and returns exit code 1."""
    text = error if isinstance(error, str) else describe(error)
    print(f"{command}: error: {text}", file=sys.stderr)
    return 1
