"""`python -m faceswap_gan` / `faceswap-gan`: the command-line interface.

Subcommands (each has --help):
    extract   faces (raw, aligned, eye masks) from a video or an image folder
    masks     binary eye masks for a folder of face crops (68-point landmarks)
    train     train a swap model on two folders of faces (resumable)
    convert   swap faces in a video with a trained model (audio kept, labelled)
    demo      all of the above on the bundled sample clips
    evaluate  quality report of a trained model
    sort      score a folder of faces and move outliers to rejected/<reason>/
    export    export a trained face transform to ONNX (or DeepFaceLive's .dfm)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import tempfile
import warnings

COMMANDS = (
    "extract",
    "masks",
    "train",
    "convert",
    "demo",
    "evaluate",
    "sort",
    "export",
)


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
            "--verbose",
            action="store_true",
            help="also show TensorFlow's start-up log (CUDA, oneDNN) and the resolved "
            "config",
        )
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
    args = build_parser().parse_args(argv)
    # 3 hides TensorFlow's C++ INFO/WARNING/ERROR lines (e.g. grappler's harmless
    # "remapper failed"); Python exceptions still carry their messages.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if args.verbose else "3")
    print(device_line(quiet=not args.verbose))
    if not args.debug:  # warnings as "<command>: warning: ..." without file:line
        warnings.formatwarning = lambda message, *_, **__: (
            f"{args.command}: warning: {message}\n"
        )
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


@contextlib.contextmanager
def _stderr_to_file(enabled: bool):
    """Sends file descriptor 2 to a temporary file for the block (TensorFlow's C++
    start-up lines bypass Python and TF_CPP_MIN_LOG_LEVEL); replays it if the block
    raises, so a failed import still shows why."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def device_line(quiet: bool = True) -> str:
    """Imports TensorFlow (its absl/oneDNN/CUDA start-up log hidden when `quiet`) and
    says in one line where models will run, e.g. "Device: CPU (no GPU visible)." or
    "Device: GPU (1): /physical_device:GPU:0."."""
    with _stderr_to_file(quiet):
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "Device: CPU (no GPU visible to TensorFlow)."
    names = ", ".join(gpu.name for gpu in gpus)
    return f"Device: GPU ({len(gpus)}): {names}."
