"""`python -m faceswap_gan demo`: extract, train and convert on the bundled clips.

Extracts the faces of the two bundled clips (faceswap_gan/data/samples/person_a.mp4 and
person_b.mp4), trains the lite model briefly and converts person_a.mp4 so that A wears
B's face, side by side with the original and labelled SYNTHETIC. Prints where the
video, the training previews and the loss plot are, and on what share of frames the
swapped face is closer to person B than the source face (MobileFaceNet scorer). Run
it again with the same --output to reuse the faces and resume the training (a larger
--iterations trains further).

Examples:
    python -m faceswap_gan demo
    python -m faceswap_gan demo --output demo_output --iterations 1000
    python -m faceswap_gan demo --preset tiny --iterations 4 --max-frames 10
"""

from __future__ import annotations

import argparse

from faceswap_gan.config import PRESETS


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Adds the `demo` subcommand to an argparse subparsers object."""
    from faceswap_gan.demo import DEFAULT_ITERATIONS, OUTPUT_TYPES

    parser = subparsers.add_parser(
        "demo",
        help="extract, train and convert on the bundled sample clips",
        description=__doc__.split("Examples:")[0].split("\n", 2)[2],
        epilog="Examples:" + __doc__.split("Examples:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--output",
        default="demo_output",
        help="demo folder, reused when run again (default demo_output)",
    )
    add(
        "--iterations",
        type=int,
        default=DEFAULT_ITERATIONS,
        help=f"training iterations (default {DEFAULT_ITERATIONS}: a first, blurry "
        "swap in minutes on a CPU; 20000+ on a GPU for a good one)",
    )
    add(
        "--every",
        type=int,
        default=2,
        help="extract faces from every Nth frame of each clip (default 2)",
    )
    add(
        "--max-frames",
        type=int,
        default=None,
        help="use only the first N frames of each clip (default: all 180)",
    )
    add(
        "--preset",
        choices=sorted(PRESETS),
        default="lite",
        help="model preset (default lite; tiny for smoke tests)",
    )
    add(
        "--output-type",
        choices=OUTPUT_TYPES,
        default="combined",
        help="video layout: single, combined (original | swap, default) or triple "
        "(+ mask)",
    )
    add("--no-progress", action="store_true", help="no progress bars")
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs the demo and prints where its results are.

    Returns:
        int. 0 on success, 2 on bad input or no face found (reason printed).
    """
    from faceswap_gan.demo import run_demo

    result = run_demo(
        args.output,
        iterations=args.iterations,
        every=args.every,
        preset=args.preset,
        max_frames=args.max_frames,
        progress=not args.no_progress,
        output_type=args.output_type,
    )
    return 0 if result.video.is_file() else 1
