"""`python -m faceswap_gan` / `faceswap-gan`: the command-line interface.

Subcommands (each has --help):
    extract   faces (raw, aligned, eye masks) from a video or an image folder
    masks     binary eye masks for a folder of face crops (68-point landmarks)
    train     train a swap model on two folders of faces (resumable)
    convert   swap faces in a video with a trained model (audio kept, labelled)
    demo      all of the above on the bundled sample clips
    evaluate  quality report of a trained model
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = ("extract", "masks", "train", "convert", "demo", "evaluate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faceswap-gan",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"faceswap_gan.commands.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"faceswap_gan.commands.{name}":
                raise
            continue  # a subcommand not installed in this build
        sub = module.add_parser(subparsers)
        sub.add_argument(
            "--debug",
            action="store_true",
            help="show the traceback of a user error (bad input, full disk, ...) "
            "instead of one line",
        )
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parses `argv` (default sys.argv[1:]), runs the subcommand, returns its code.

    A user error (`commands.USER_ERRORS`: FaceswapError, OSError) prints one line
    `<command>: error: ...` and returns 1; with `--debug` it is raised with its
    traceback. Any other exception is a bug and propagates."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    from faceswap_gan.commands import USER_ERRORS, fail

    try:
        code = args.run(args)
    except USER_ERRORS as error:
        if args.debug:
            raise
        code = fail(args.command, error)
    if argv is None:
        sys.exit(code)
    return code
