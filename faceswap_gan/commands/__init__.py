"""CLI subcommands: each module has `add_parser(subparsers)` and `run(args) -> int`."""

import sys

# Errors that mean bad input (a missing file, an out-of-range option, ...), reported in
# one line with exit code 1 instead of a traceback.
USER_ERRORS = (FileNotFoundError, FileExistsError, ValueError, RuntimeError)


def fail(command: str, error: Exception) -> int:
    """Prints `<command>: error: <reason>` to stderr and returns exit code 1."""
    print(f"{command}: error: {error}", file=sys.stderr)
    return 1
