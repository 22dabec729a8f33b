"""Training speed on real faces: model iterations/s vs input-pipeline batches/s, memory.

For each capacity ("lite", "standard", norm as in `PRESETS`, self-attention on) at
`--size` px, in a fresh Python process per capacity (so that peak memory is that
configuration's own), this script:

1. loads the faces of A and B (`FaceSet`, default the repo's tests/data/faces/a and b,
   16 real 256x256 crops each) and builds the trainer's input: `make_dataset` for each
   side (default `AugmentConfig`, colour-match pool = faces of A and B) zipped, as
   `faceswap_gan.training` does; one element = one iteration's batches of A and B;
2. measures the pipeline's own throughput with no model (`measure_throughput`):
   zipped batches/s after one warm-up batch;
3. builds the compiled FaceSwapGAN (Adam; perceptual loss off unless --perceptual)
   and times `tf.function(model.train_step)` fed from that pipeline, as the trainer:
   one warm-up iteration excluded, median iterations/s over `--repeats` runs of
   `--steps` iterations; and the same step on two in-memory random batches (no
   pipeline) for comparison, its runs alternated with the data-fed ones so that both
   see the same load from other processes;
4. reads peak memory: `resource.getrusage(RUSAGE_SELF).ru_maxrss` (peak resident set
   of the process, host RAM) and, on GPU, `tf.config.experimental.get_memory_info`'s
   "peak" for GPU:0.

Printed ratios:
- pipeline/model = pipeline batches/s divided by model iterations/s (data-fed). Above
  1 the model, not the input, is the bottleneck. On a CPU-only machine both share the
  same cores, so this is an upper bound on the headroom.
- fed/in-memory = data-fed iterations/s divided by in-memory iterations/s: how much
  the running pipeline slows the step (1.0 = not at all).

Usage:
    python benchmarks/train_speed.py
    python benchmarks/train_speed.py --capacities lite --steps 2 --repeats 2
    python benchmarks/train_speed.py --faces-a data/faceA --faces-b data/faceB \\
        [--masks-a data/binary_masks/faceA_eyes --masks-b ...] [--size 128]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from faceswap_gan.config import IMAGE_SIZES  # TensorFlow loads in the children only

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info lines
REPO = Path(__file__).resolve().parents[1]
FACES = REPO / "tests" / "data" / "faces"
ROW_PREFIX = "ROW "  # a child process prints its result row as ROW {json}


def peak_memory_mib() -> tuple[float, float | None]:
    """(peak host RSS of this process in MiB, peak GPU:0 memory in MiB or None)."""
    import resource

    import tensorflow as tf

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if not tf.config.list_physical_devices("GPU"):
        return rss, None
    return rss, tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20


def training_data(args):
    """The trainer's zipped (A, B) dataset for `args` (see the module docstring)."""
    import warnings

    import numpy as np
    import tensorflow as tf

    from faceswap_gan.dataset import FaceSet, make_dataset

    faces = [
        FaceSet(f, m)
        for f, m in ((args.faces_a, args.masks_a), (args.faces_b, args.masks_b))
    ]
    pool = np.concatenate([f.images for f in faces])
    with warnings.catch_warnings():  # no mask folder: zero eye masks, said in the table
        warnings.filterwarnings("ignore", "use_bm_eyes is on")
        streams = [
            make_dataset(
                f, args.size, args.batch_size, args.seed + side, color_references=pool
            )
            for side, f in enumerate(faces)
        ]
    return tf.data.Dataset.zip(tuple(streams)), faces


def build_model(capacity: str, size: int, perceptual: bool):
    """The compiled FaceSwapGAN as the trainer builds it; perceptual loss on or off."""
    import dataclasses

    from faceswap_gan.config import PRESETS, LossConfig
    from faceswap_gan.models.gan import FaceSwapGAN

    arch = dataclasses.replace(PRESETS[capacity], image_shape=(size, size, 3))
    model_of_features = None
    if perceptual:
        from faceswap_gan.perceptual import build_perceptual_model

        model_of_features = build_perceptual_model("face_api")
    model = FaceSwapGAN(
        arch, LossConfig(use_PL=perceptual), perceptual_model=model_of_features
    )
    model.compile()
    return model


def measure(args) -> dict:
    """One capacity, in this process: pipeline batches/s, iterations/s, peak memory."""
    import tensorflow as tf
    from model_speed import parameters, random_batches, timed_run

    from faceswap_gan.dataset import measure_throughput

    data, faces = training_data(args)
    pipeline = measure_throughput(data, args.pipeline_batches)
    model = build_model(args.capacities[0], args.size, args.perceptual)
    step = tf.function(model.train_step)
    iterator = iter(data)
    batches = random_batches(args.size, args.batch_size, 2)

    def fed_step(_):  # fresh D and G batches and the mixup weights, as the trainer
        return step((next(iterator), next(iterator), batches[0][2]))

    for warm_up in (fed_step, step):  # tracing and graph optimisation, untimed
        float(warm_up(batches[0])["g/total"])
    fed, in_memory = [], []
    for _ in range(args.repeats):  # alternated, so both see the same machine load
        fed.append(timed_run(fed_step, [None], args.steps))
        in_memory.append(timed_run(step, batches, args.steps))
    rss, gpu = peak_memory_mib()
    return {
        "capacity": args.capacities[0],
        "faces": [len(f) for f in faces],
        "masks": all(f.masks is not None for f in faces),
        "pipeline": pipeline,
        "fed": statistics.median(fed),
        "fed_runs": fed,
        "in_memory": statistics.median(in_memory),
        "rss_mib": rss,
        "gpu_mib": gpu,
        "params": parameters(model)["total"],
    }


def run_isolated(args, capacity: str) -> dict:
    """Runs `measure` for one capacity in a child Python process; returns its row."""
    argv = [sys.executable, __file__, "--child", "--capacities", capacity]
    for name in (
        "faces_a",
        "faces_b",
        "masks_a",
        "masks_b",
        "size",
        "batch_size",
        "steps",
        "repeats",
        "pipeline_batches",
        "seed",
    ):
        value = getattr(args, name)
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    argv += ["--perceptual"] if args.perceptual else []
    done = subprocess.run(argv, capture_output=True, text=True)
    rows = [
        line[len(ROW_PREFIX) :]
        for line in done.stdout.splitlines()
        if line.startswith(ROW_PREFIX)
    ]
    if done.returncode or not rows:
        sys.stderr.write(done.stderr[-4000:])
        raise RuntimeError(
            f"The {capacity} measurement failed (exit {done.returncode})."
        )
    return json.loads(rows[-1])


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def print_table(rows: list[dict], args) -> None:
    first = rows[0]
    masks = "yes" if first["masks"] else "none (zeros)"
    print(
        f"faces: A {first['faces'][0]} from {_shown(args.faces_a)}, B "
        f"{first['faces'][1]} from {_shown(args.faces_b)}; eye masks: {masks}"
    )
    print(
        f"{args.size}px, batch {args.batch_size} per side, perceptual loss "
        f"{'on (face_api)' if args.perceptual else 'off'}; median of {args.repeats} "
        f"runs x {args.steps} iterations, warm-up excluded; pipeline over "
        f"{args.pipeline_batches} batches\n"
    )
    print(
        f"{'model':<10}{'params':>8}{'it/s fed':>10}{'it/s mem':>10}"
        f"{'fed/mem':>9}{'pipe b/s':>10}{'pipe/model':>12}{'peak RSS':>10}"
        f"{'peak GPU':>10}"
    )
    for r in rows:
        gpu = "-" if r["gpu_mib"] is None else f"{r['gpu_mib']:.0f}M"
        print(
            f"{r['capacity']:<10}{r['params'] / 1e6:>7.1f}M{r['fed']:>10.3f}"
            f"{r['in_memory']:>10.3f}{r['fed'] / r['in_memory']:>9.2f}"
            f"{r['pipeline']:>10.2f}{r['pipeline'] / r['fed']:>12.1f}"
            f"{r['rss_mib']:>9.0f}M{gpu:>10}"
        )
    print(
        "\nit/s fed: iterations/s with the real pipeline; it/s mem: on in-memory "
        "random batches;\npipe b/s: pipeline alone, (A, B) batches/s; "
        "pipe/model > 1: the model is the bottleneck;\npeak RSS: ru_maxrss of the "
        "process (host memory); peak GPU: get_memory_info('GPU:0')."
    )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="One child process per capacity; see the module docstring for each "
        "figure.",
    )
    parser.add_argument(
        "--faces-a",
        type=Path,
        default=FACES / "a",
        help="folder of A's face crops (default tests/data/faces/a)",
    )
    parser.add_argument(
        "--faces-b",
        type=Path,
        default=FACES / "b",
        help="folder of B's face crops (default tests/data/faces/b)",
    )
    parser.add_argument("--masks-a", type=Path, help="eye masks of A (optional)")
    parser.add_argument("--masks-b", type=Path, help="eye masks of B (optional)")
    parser.add_argument(
        "--capacities",
        nargs="+",
        default=["lite", "standard"],
        choices=["lite", "standard"],
        help="model capacities",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=64,
        choices=IMAGE_SIZES,
        help="image size in px (default 64)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="faces per side per iteration (default 8)",
    )
    parser.add_argument(
        "--steps", type=int, default=2, help="iterations per timed run (default 2)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed runs; the median is reported (default 3)",
    )
    parser.add_argument(
        "--pipeline-batches",
        type=int,
        default=30,
        help="batches timed for the pipeline alone (default 30)",
    )
    parser.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    parser.add_argument(
        "--perceptual",
        action="store_true",
        help="include the face_api perceptual loss (v2.2 stages 1+)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("batch_size", "steps", "repeats", "pipeline_batches"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        print(ROW_PREFIX + json.dumps(measure(args)), flush=True)
        return
    rows = []
    for capacity in args.capacities:
        rows.append(run_isolated(args, capacity))
        print(f"  measured {capacity}", flush=True)
    print_table(rows, args)


if __name__ == "__main__":
    main()
