"""Model cost and speed: parameters, FLOPs per iteration, iterations/s, FLOP/s vs peak.

For each capacity ("lite", "standard", norm as in `PRESETS`, self-attention on) and
image size, builds a compiled `FaceSwapGAN` (Adam, as the trainer) and reports:

- parameters of each of the five networks (encoder, decoder_A, decoder_B, netDA,
  netDB) and their total;
- FLOPs of one training iteration (one D step + one G step on a batch of
  `--batch-size` faces per side), counted statically by TensorFlow's profiler
  (`tf.compat.v1.profiler`, `float_operation()`) on the graph of the concrete
  function of `tf.function(model.train_step)`, the same function that is timed. The
  count is forward + backward + optimizer update, 2 FLOPs per multiply-add; the
  perceptual loss is off (use_PL False), so it is the GAN's own cost. "attn" is the
  share of those FLOPs in self-attention (BatchMatMul + Softmax);
- iterations/s: one warm-up iteration (tracing, graph optimisation) is excluded, then
  the median over `--repeats` timed runs of `--steps` iterations each, on random
  batches already on the device (no input pipeline; see train_speed.py for that);
  "spread" is (fastest - slowest) / median of those runs, a gauge of machine noise;
- achieved FLOP/s = FLOPs per iteration x iterations/s;
- this machine's dense float32 matmul FLOP/s ("peak": the best of timed runs of
  `tf.linalg.matmul` of two 2048x2048 float32 matrices, 2*2048^3 FLOPs each, in the
  same process, before each configuration and at the end, so that load from other
  processes lowers it as little as possible) and the fraction achieved / peak.

Ratios (fraction of peak, lite vs standard, 64 vs 128 px) hold on a noisy machine far
better than the absolute figures.

Usage:
    python benchmarks/model_speed.py
    python benchmarks/model_speed.py --sizes 64 --capacities lite --steps 2
    python benchmarks/model_speed.py --sizes 64 128 --capacities lite standard \\
        --batch-size 8 --steps 5 --repeats 3 [--xla]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from collections import defaultdict

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from faceswap_gan.config import IMAGE_SIZES, PRESETS  # noqa: E402
from faceswap_gan.models.gan import NETWORKS, FaceSwapGAN  # noqa: E402

MATMUL_SIZE = 2048
ATTENTION_OPS = ("BatchMatMulV2", "BatchMatMulV3", "BatchMatMul", "Softmax")


def build(capacity: str, size: int) -> FaceSwapGAN:
    """The compiled FaceSwapGAN of preset `capacity` at `size` px (use_PL off)."""
    arch = dataclasses.replace(PRESETS[capacity], image_shape=(size, size, 3))
    model = FaceSwapGAN(arch)
    model.compile()
    return model


def parameters(model: FaceSwapGAN) -> dict[str, int]:
    """Parameter count of each network by name, plus "total"."""
    counts = {name: int(getattr(model, name).count_params()) for name in NETWORKS}
    counts["total"] = sum(counts.values())
    return counts


def batch_spec(size: int, batch_size: int):
    """TensorSpecs of one train_step input: (D batch, G batch), each
    ((warped, target, eyes)_A, (warped, target, eyes)_B)."""
    side = tuple(
        tf.TensorSpec((batch_size, size, size, c), tf.float32) for c in (3, 3, 1)
    )
    return ((side, side), (side, side))


def random_batches(size: int, batch_size: int, count: int, seed: int = 0):
    """`count` random train_step inputs (D batch, G batch) as tensors (faces in
    [-1, 1], masks 0 or 1)."""
    rng = np.random.default_rng(seed)

    def side():
        faces = [rng.uniform(-1, 1, (batch_size, size, size, 3)) for _ in range(2)]
        eyes = rng.uniform(0, 1, (batch_size, size, size, 1)) > 0.9
        return tuple(tf.constant(a, tf.float32) for a in (*faces, eyes))

    return [((side(), side()), (side(), side())) for _ in range(count)]


def graph_flops(graph: tf.Graph) -> tuple[float, dict[str, float]]:
    """(total float ops, float ops by op type) of `graph`, by TensorFlow's profiler."""
    from tensorflow.python.framework import ops as framework_ops

    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    total = tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops
    by_type: dict[str, float] = defaultdict(float)
    for op in graph.get_operations():  # the profiler registered these statistics
        try:
            stats = framework_ops.get_stats_for_node_def(graph, op.node_def, "flops")
        except ValueError:
            continue
        by_type[op.type] += stats.value or 0
    return float(total), dict(by_type)


def compiled_step(model: FaceSwapGAN, size: int, batch_size: int, xla: bool = False):
    """(tf.function of model.train_step, its concrete function for these shapes)."""
    step = tf.function(model.train_step, jit_compile=xla or None)
    return step, step.get_concrete_function(batch_spec(size, batch_size))


def timed_run(step, batches, steps: int) -> float:
    """Iterations/s of `steps` calls of `step` on `batches` (cycled); the run ends by
    fetching a loss, so queued device work is included."""
    start = time.perf_counter()
    for i in range(steps):
        logs = step(batches[i % len(batches)])
    float(logs["g/total"])
    return steps / (time.perf_counter() - start)


def iterations_per_second(step, batches, steps: int, repeats: int) -> list[float]:
    """Iterations/s of each of `repeats` timed runs of `steps` calls of `step`, after
    one untimed warm-up call."""
    float(step(batches[0])["g/total"])
    return [timed_run(step, batches, steps) for _ in range(repeats)]


def matmul_flops_per_second(repeats: int = 5, calls: int = 2) -> list[float]:
    """FLOP/s of `repeats` timed runs of `calls` `tf.linalg.matmul` of two 2048x2048
    float32 matrices (2 * 2048**3 FLOPs each; one warm-up call excluded)."""
    rng = np.random.default_rng(0)
    a, b = (
        tf.constant(rng.standard_normal((MATMUL_SIZE,) * 2), tf.float32)
        for _ in range(2)
    )
    float(tf.linalg.matmul(a, b)[0, 0])
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            c = tf.linalg.matmul(a, b)
        float(c[0, 0])
        rates.append(calls * 2 * MATMUL_SIZE**3 / (time.perf_counter() - start))
    return rates


def measure(
    capacity: str,
    size: int,
    batch_size: int,
    steps: int,
    repeats: int,
    xla: bool = False,
) -> dict:
    """Parameters, FLOPs per iteration and iterations/s of one configuration."""
    model = build(capacity, size)
    row = {"capacity": capacity, "size": size, **parameters(model)}
    step, concrete = compiled_step(model, size, batch_size, xla)
    row["flops"], by_type = graph_flops(concrete.graph)
    row["attention"] = sum(by_type.get(t, 0) for t in ATTENTION_OPS) / row["flops"]
    rates = iterations_per_second(
        step, random_batches(size, batch_size, 2), steps, repeats
    )
    row["it_s"] = statistics.median(rates)
    row["spread"] = (max(rates) - min(rates)) / row["it_s"]
    row["flop_s"] = row["flops"] * row["it_s"]
    return row


def print_table(rows: list[dict], peak: float) -> None:
    """Prints the parameter table then the speed table."""
    print("\nParameters (millions)")
    print(f"{'model':<14}" + "".join(f"{n:>11}" for n in (*NETWORKS, "total")))
    for r in rows:
        print(
            f"{r['capacity']:<8}{r['size']:>4}px"
            + "".join(f"{r[n] / 1e6:>11.3f}" for n in (*NETWORKS, "total"))
        )
    print("\nSpeed (GFLOP = 1e9 float ops per training iteration, profiler count)")
    print(
        f"{'model':<14}{'GFLOP/it':>10}{'attn':>7}{'it/s':>9}{'spread':>8}"
        f"{'GFLOP/s':>9}{'of peak':>9}"
    )
    for r in rows:
        print(
            f"{r['capacity']:<8}{r['size']:>4}px{r['flops'] / 1e9:>10.1f}"
            f"{100 * r['attention']:>6.0f}%{r['it_s']:>9.3f}"
            f"{100 * r['spread']:>7.0f}%"
            f"{r['flop_s'] / 1e9:>9.1f}{100 * r['flop_s'] / peak:>8.1f}%"
        )
    print(f"\nmatmul peak (2048x2048 float32, best run): {peak / 1e9:.1f} GFLOP/s")
    if len(rows) > 1:
        base = rows[0]
        print(f"relative to {base['capacity']} {base['size']}px:")
        for r in rows[1:]:
            print(
                f"  {r['capacity']:<8}{r['size']:>4}px"
                f"  params x{r['total'] / base['total']:.2f}"
                f"  FLOPs x{r['flops'] / base['flops']:.2f}"
                f"  time/it x{base['it_s'] / r['it_s']:.2f}"
            )


def device_line() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "device: CPU (no GPU visible)"
    tf32 = tf.config.experimental.is_tensor_float_32_execution_enabled()
    details = tf.config.experimental.get_device_details(gpus[0])
    return (
        f"device: {len(gpus)} GPU(s), {details.get('device_name', '?')}"
        f"; TF32 for float32 matmul/conv: {'on' if tf32 else 'off'}"
    )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Prints two tables; see the module docstring for how each figure is "
        "measured.",
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[64, 128],
        choices=IMAGE_SIZES,
        help="image sizes in px (default 64 128)",
    )
    parser.add_argument(
        "--capacities",
        nargs="+",
        default=["lite", "standard"],
        choices=["lite", "standard"],
        help="model capacities",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="faces per side per iteration, as the trainer (default 8)",
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
        "--xla",
        action="store_true",
        help="compile the step with XLA (jit_compile=True); the "
        "trainer does not, and the mixup Beta draw (Gamma op) "
        "has no XLA kernel in TF 2.21, so this fails for now",
    )
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.steps < 1 or args.repeats < 1:
        parser.error("--batch-size, --steps and --repeats must be >= 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    print(f"{device_line()}; TensorFlow {tf.__version__}")
    print(
        f"batch {args.batch_size} per side, {args.repeats} runs x {args.steps} "
        f"iterations (warm-up excluded){', XLA' if args.xla else ''}"
    )
    matmul, rows = [], []
    for capacity in args.capacities:
        for size in args.sizes:
            matmul += matmul_flops_per_second()
            started = time.perf_counter()
            try:
                rows.append(
                    measure(
                        capacity,
                        size,
                        args.batch_size,
                        args.steps,
                        args.repeats,
                        args.xla,
                    )
                )
            except tf.errors.InvalidArgumentError as error:
                if not args.xla:
                    raise
                raise SystemExit(
                    f"The train step cannot be compiled with XLA here "
                    f"(run without --xla): {error.message[:300]}"
                ) from None
            print(
                f"  measured {capacity} {size}px in "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )
            keras.backend.clear_session(free_memory=True)
    matmul += matmul_flops_per_second()
    print_table(rows, max(matmul))
    print(
        f"matmul runs: min {min(matmul) / 1e9:.1f}, median "
        f"{statistics.median(matmul) / 1e9:.1f}, max {max(matmul) / 1e9:.1f} GFLOP/s "
        f"({len(matmul)} runs; a wide range means a busy machine)"
    )


if __name__ == "__main__":
    main()
