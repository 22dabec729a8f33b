"""Model cost and speed: parameters, FLOPs per iteration, iterations/s, FLOP/s vs peak.

For each capacity ("lite", "standard", norm as in `PRESETS`, self-attention on) and
image size, and for each way of running the step asked for (`--xla off on`: the step
compiled with XLA or not; `--attention explicit autodiff fused`: the blocked
attention with its own backward pass (the default), whole maps with TensorFlow's
gradient, `keras.ops.dot_product_attention`; `--optimizer fused keras`: the
trainer's FusedAdam or Keras Adam; `--precision`, below),
builds a compiled `FaceSwapGAN` (Adam, as the trainer) and reports:

- parameters of each of the five networks (encoder, decoder_A, decoder_B, netDA,
  netDB) and their total;
- FLOPs of one training iteration (one D step + one G step on a batch of
  `--batch-size` faces per side), counted statically by TensorFlow's profiler
  (`tf.compat.v1.profiler`, `float_operation()`) on the graph of the concrete
  function of `tf.function(model.train_step)` (the "autodiff" attention, no XLA;
  the count of the same math, used for every variant: the profiler does not count
  the Einsum ops of the fused attention, and miscounts the transposed products of
  the default attention's backward pass). The count is forward + backward + optimizer
  update, 2 FLOPs per multiply-add; the perceptual loss is off (use_PL False), so it
  is the GAN's own cost. "attn" is the share of those FLOPs in self-attention
  (BatchMatMul + Softmax);
- iterations/s: one warm-up iteration (tracing, graph optimisation, XLA compilation)
  is excluded, then the median over `--repeats` timed runs of `--steps` iterations
  each, on random batches already on the device (no input pipeline; see
  train_speed.py for that), with the trainer's mixup weights (`mixup_lambdas`) passed
  in. The variants of one configuration are built together and their timed runs
  alternate (round robin), so that load from other processes falls on all of them
  alike; "x vs first" is each variant's iterations/s over the first variant's,
  median of the per-round ratios. "spread" is (fastest - slowest) / median of the
  runs, a gauge of machine noise;
- achieved FLOP/s = FLOPs per iteration x iterations/s;
- this machine's dense float32 matmul FLOP/s ("peak": the best of timed runs of
  `tf.linalg.matmul` of two 2048x2048 float32 matrices, 2*2048^3 FLOPs each, in the
  same process, before each configuration and at the end, so that load from other
  processes lowers it as little as possible) and the fraction achieved / peak.
  With `--precision` (`TrainConfig.mixed_precision`: off, float16, bfloat16) each
  variant's model is built under that dtype policy (float16 with loss scaling) and
  its fraction is against the peak of a matmul of its own dtype, measured alike.

Ratios (fraction of peak, lite vs standard, 64 vs 128 px) hold on a noisy machine far
better than the absolute figures.

Usage:
    python benchmarks/model_speed.py
    python benchmarks/model_speed.py --sizes 64 --capacities lite --steps 2
    python benchmarks/model_speed.py --sizes 64 128 --capacities lite standard \\
        --batch-size 8 --steps 5 --repeats 3 [--xla off on] [--attention explicit fused]

Measured on the shared 2-core CPU (TensorFlow 2.21, batch 8), by
`python benchmarks/model_speed.py --sizes 64 --capacities lite standard --attention
explicit autodiff --optimizer fused keras --steps 2 --repeats 5` (a noisy machine:
matmul runs 107-205 GFLOP/s):

    model     variant                          it/s  x vs first  GFLOP/s  of peak
    lite      XLA off explicit                0.528        1.00     98.9    48.2 %
    lite      XLA off explicit keras-adam     0.486        0.95     90.9    44.3 %
    lite      XLA off autodiff                0.441        0.86     82.7    40.3 %
    lite      XLA off autodiff keras-adam     0.442        0.86     82.8    40.4 %
    standard  XLA off explicit                0.220        1.00    102.6    50.0 %
    standard  XLA off explicit keras-adam     0.212        0.97     98.6    48.1 %
    standard  XLA off autodiff                0.198        0.95     92.0    44.9 %
    standard  XLA off autodiff keras-adam     0.202        0.90     94.0    45.8 %

The last row of each model is the step before the blocked attention and FusedAdam.
On a quieter machine (matmul runs 169-220 GFLOP/s), four runs of `--sizes 64
--capacities lite standard --steps 2 --repeats 5` (the last with `--repeats 7`) put
today's step at 49.4-53.5 % of the peak for lite (median 51.9 %) and 57.3-59.4 % for
standard.

Earlier, `--xla off on --attention explicit fused --steps 2 --repeats 3` (the
attention then was "autodiff"; quiet machine, peak 212 GFLOP/s) gave XLA on/off
0.76 (lite) and 0.96 (standard), fused/explicit 1.01 and 1.00, fused + XLA 0.50
and 0.66; busy runs gave XLA 0.67-0.88. `--xla off on` with today's step gave XLA
0.82 (lite). So on CPU the XLA step is slower (and compiles in 20 s to 4 minutes)
and `keras.ops.dot_product_attention` (on the TensorFlow backend an
einsum/softmax/einsum graph, not a fused kernel) is no faster: the defaults are XLA
off on CPU (TrainConfig.jit_compile None -> `training.resolve_jit_compile`) and the
explicit attention (`SelfAttention2D.FUSED_DEFAULT`). XLA is on by default on GPU
and TPU (TPUs need it; on GPUs it is Keras' own `jit_compile="auto"` choice), not
measured in this session (no GPU).

`--precision off bfloat16` (`--sizes 64 --capacities lite standard --steps 2
--repeats 3`, quiet, before the blocked attention and FusedAdam; this CPU has
AVX512-BF16: bfloat16 matmul peak 398.4 GFLOP/s, float32 211.8):

    model     variant                    it/s  x vs first  GFLOP/s  of peak
    lite      XLA off explicit          0.360        1.00     66.6    31.4 %
    lite      XLA off explicit bfloat16 0.543        1.51    100.5    25.2 %
    standard  XLA off explicit          0.192        1.00     88.8    41.9 %
    standard  XLA off explicit bfloat16 0.311        1.61    143.4    36.0 %
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

from faceswap_gan.config import (  # noqa: E402
    DTYPE_POLICIES,
    IMAGE_SIZES,
    MIXED_PRECISIONS,
    PRESETS,
)
from faceswap_gan.layers import self_attention  # noqa: E402
from faceswap_gan.models import gan  # noqa: E402
from faceswap_gan.models.gan import (  # noqa: E402
    MIXUP_DRAWS,
    NETWORKS,
    FaceSwapGAN,
    mixup_lambdas,
)
from faceswap_gan.optimizers import FusedAdam  # noqa: E402

MATMUL_SIZE = 2048
# The matmul of each TrainConfig.mixed_precision: its peak is that precision's.
MATMUL_DTYPES = {"off": tf.float32, "float16": tf.float16, "bfloat16": tf.bfloat16}
ATTENTION_OPS = ("BatchMatMulV2", "BatchMatMulV3", "BatchMatMul", "Softmax")
# `--attention`: "explicit", SelfAttention2D's default (matmul / softmax / matmul,
# the hand-written backward pass `self_attention.attention`); "autodiff", the same
# forward with TensorFlow's automatic gradient; "fused",
# keras.ops.dot_product_attention.
ATTENTIONS = ("explicit", "autodiff", "fused")
# `--optimizer`: the trainer's FusedAdam (one ResourceApplyAdam kernel per variable)
# or keras.optimizers.Adam (the same math in separate ops).
OPTIMIZERS = {"fused": FusedAdam, "keras": keras.optimizers.Adam}


def build(
    capacity: str,
    size: int,
    attention: str = "explicit",
    precision: str = "off",
    optimizer: str = "fused",
) -> FaceSwapGAN:
    """The compiled FaceSwapGAN of preset `capacity` at `size` px (use_PL off), its
    self-attention one of `ATTENTIONS`, computing in `precision` (a
    `TrainConfig.mixed_precision` value; weights stay float32), its Adams one of
    `OPTIMIZERS`."""
    if attention not in ATTENTIONS:
        raise ValueError(f"attention must be one of {ATTENTIONS}; got {attention!r}")
    arch = dataclasses.replace(PRESETS[capacity], image_shape=(size, size, 3))
    defaults = self_attention.FUSED_DEFAULT, self_attention.CUSTOM_GRADIENT_DEFAULT
    adam = gan.ADAM
    gan.ADAM = OPTIMIZERS[optimizer]
    policy = keras.config.dtype_policy()
    # blocks.py builds them with fused=None, custom_gradient=None: the defaults.
    self_attention.FUSED_DEFAULT = attention == "fused"
    self_attention.CUSTOM_GRADIENT_DEFAULT = attention == "explicit"
    keras.config.set_dtype_policy(DTYPE_POLICIES[precision])
    try:
        keras.utils.set_random_seed(0)
        model = FaceSwapGAN(arch)
        model.compile(mixed_precision=precision)
    finally:
        self_attention.FUSED_DEFAULT, self_attention.CUSTOM_GRADIENT_DEFAULT = defaults
        gan.ADAM = adam
        keras.config.set_dtype_policy(policy)
    return model


def parameters(model: FaceSwapGAN) -> dict[str, int]:
    """Parameter count of each network by name, plus "total"."""
    counts = {name: int(getattr(model, name).count_params()) for name in NETWORKS}
    counts["total"] = sum(counts.values())
    return counts


def batch_spec(size: int, batch_size: int):
    """TensorSpecs of one train_step input: (D batch, G batch, mixup weights), each
    batch ((warped, target, eyes)_A, (warped, target, eyes)_B)."""
    side = tuple(
        tf.TensorSpec((batch_size, size, size, c), tf.float32) for c in (3, 3, 1)
    )
    return ((side, side), (side, side), tf.TensorSpec((MIXUP_DRAWS,), tf.float32))


def random_batches(size: int, batch_size: int, count: int, seed: int = 0):
    """`count` random train_step inputs (D batch, G batch, mixup weights) as tensors
    (faces in [-1, 1], masks 0 or 1, the trainer's weights of steps 0, 1, ...)."""
    rng = np.random.default_rng(seed)

    def side():
        faces = [rng.uniform(-1, 1, (batch_size, size, size, 3)) for _ in range(2)]
        eyes = rng.uniform(0, 1, (batch_size, size, size, 1)) > 0.9
        return tuple(tf.constant(a, tf.float32) for a in (*faces, eyes))

    return [
        ((side(), side()), (side(), side()), tf.constant(mixup_lambdas(0, i)))
        for i in range(count)
    ]


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
    step = tf.function(model.train_step, jit_compile=xla)
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


def matmul_flops_per_second(
    repeats: int = 5, calls: int = 2, dtype=tf.float32
) -> list[float]:
    """FLOP/s of `repeats` timed runs of `calls` `tf.linalg.matmul` of two 2048x2048
    matrices of `dtype` (2 * 2048**3 FLOPs each; one warm-up call excluded)."""
    rng = np.random.default_rng(0)
    a, b = (
        tf.constant(rng.standard_normal((MATMUL_SIZE,) * 2), dtype) for _ in range(2)
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


def variant_name(
    xla: bool, attention: str, precision: str = "off", optimizer: str = "fused"
) -> str:
    name = f"XLA {'on ' if xla else 'off'} {attention}"
    name += f" {precision}" if precision != "off" else ""
    return name + (" keras-adam" if optimizer == "keras" else "")


def measure(
    capacity: str,
    size: int,
    batch_size: int,
    steps: int,
    repeats: int,
    variants: list[tuple],
) -> list[dict]:
    """Rows (one per (xla, attention, precision[, optimizer]) variant) of one
    configuration:
    parameters, FLOPs per iteration and iterations/s, the variants' timed runs
    alternating."""
    batches = random_batches(size, batch_size, 2)
    rows, steps_fns = [], []
    flops = attention = None
    for xla, attention_kind, precision, *optimizer in variants:
        model = build(capacity, size, attention_kind, precision, *optimizer)
        row = {"capacity": capacity, "size": size, **parameters(model)}
        row["variant"] = variant_name(xla, attention_kind, precision, *optimizer)
        row["precision"] = precision
        if flops is None:  # the same math for all: the autodiff, non-XLA graph
            # (the profiler miscounts the transposed products of the hand-written
            # backward pass: "(dO^T P)^T" comes out 128x too small at 64 px).
            reference = build(capacity, size, "autodiff")
            _, concrete = compiled_step(reference, size, batch_size)
            flops, by_type = graph_flops(concrete.graph)
            attention = sum(by_type.get(t, 0) for t in ATTENTION_OPS) / flops
        row["flops"], row["attention"] = flops, attention
        step, _ = compiled_step(model, size, batch_size, xla)
        started = time.perf_counter()
        float(step(batches[0])["g/total"])  # warm-up: trace, compile
        row["warmup_s"] = time.perf_counter() - started
        rows.append(row)
        steps_fns.append(step)
    runs = [[] for _ in variants]
    for _ in range(repeats):
        for rates, step in zip(runs, steps_fns):
            rates.append(timed_run(step, batches, steps))
    for row, rates in zip(rows, runs):
        row["it_s"] = statistics.median(rates)
        row["spread"] = (max(rates) - min(rates)) / row["it_s"]
        row["flop_s"] = row["flops"] * row["it_s"]
        row["vs_first"] = statistics.median(r / b for r, b in zip(rates, runs[0]))
    return rows


def print_table(rows: list[dict], peaks: dict[str, float]) -> None:
    """Prints the parameter table then the speed table; each row's "of peak" is
    against the matmul peak of its own precision (`peaks`: precision -> FLOP/s)."""
    print("\nParameters (millions)")
    print(f"{'model':<14}" + "".join(f"{n:>11}" for n in (*NETWORKS, "total")))
    for r in [r for r in rows if r is rows[0] or r["variant"] == rows[0]["variant"]]:
        print(
            f"{r['capacity']:<8}{r['size']:>4}px"
            + "".join(f"{r[n] / 1e6:>11.3f}" for n in (*NETWORKS, "total"))
        )
    print("\nSpeed (GFLOP = 1e9 float ops per training iteration, profiler count)")
    print(
        f"{'model':<14}{'variant':<28}{'GFLOP/it':>9}{'attn':>6}{'warm-up':>9}"
        f"{'it/s':>8}{'spread':>7}{'x vs first':>11}{'GFLOP/s':>9}{'of peak':>9}"
    )
    for r in rows:
        print(
            f"{r['capacity']:<8}{r['size']:>4}px  {r['variant']:<28}"
            f"{r['flops'] / 1e9:>9.1f}{100 * r['attention']:>5.0f}%"
            f"{r['warmup_s']:>8.0f}s{r['it_s']:>8.3f}{100 * r['spread']:>6.0f}%"
            f"{r['vs_first']:>11.2f}"
            f"{r['flop_s'] / 1e9:>9.1f}"
            f"{100 * r['flop_s'] / peaks[r['precision']]:>8.1f}%"
        )
    print()
    for precision, peak in peaks.items():
        print(
            f"matmul peak (2048x2048 {MATMUL_DTYPES[precision].name}, best run): "
            f"{peak / 1e9:.1f} GFLOP/s"
        )
    firsts = [r for r in rows if r["variant"] == rows[0]["variant"]]
    if len(firsts) > 1:
        base, rows = firsts[0], firsts
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
        nargs="+",
        default=["off"],
        choices=["off", "on"],
        help="compile the step with XLA (jit_compile=True) or not; both "
        "(off on) are measured side by side (default off)",
    )
    parser.add_argument(
        "--attention",
        nargs="+",
        default=["explicit"],
        choices=ATTENTIONS,
        help="self-attention as explicit matmul/softmax/matmul with its "
        "hand-written backward pass (the default), the same with TensorFlow's "
        "automatic gradient (autodiff), or keras.ops.dot_product_attention (fused)",
    )
    parser.add_argument(
        "--precision",
        nargs="+",
        default=["off"],
        choices=MIXED_PRECISIONS,
        help="TrainConfig.mixed_precision of the step: off (float32), float16, "
        "bfloat16; each is measured against a matmul peak of its own dtype "
        "(default off)",
    )
    parser.add_argument(
        "--optimizer",
        nargs="+",
        default=["fused"],
        choices=sorted(OPTIMIZERS),
        help="the trainer's FusedAdam (fused, the default) or keras.optimizers.Adam "
        "(keras); both (fused keras) are measured side by side",
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
        f"iterations (warm-up excluded)"
    )
    variants = [
        (xla == "on", attention, precision, optimizer)
        for xla in args.xla
        for attention in args.attention
        for precision in args.precision
        for optimizer in args.optimizer
    ]
    matmul, rows = {precision: [] for precision in args.precision}, []

    def measure_matmul():
        for precision, rates in matmul.items():
            rates += matmul_flops_per_second(dtype=MATMUL_DTYPES[precision])

    for capacity in args.capacities:
        for size in args.sizes:
            measure_matmul()
            started = time.perf_counter()
            rows += measure(
                capacity, size, args.batch_size, args.steps, args.repeats, variants
            )
            print(
                f"  measured {capacity} {size}px in "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )
            keras.backend.clear_session(free_memory=True)
    measure_matmul()
    print_table(rows, {precision: max(rates) for precision, rates in matmul.items()})
    for precision, rates in matmul.items():
        print(
            f"{MATMUL_DTYPES[precision].name} matmul runs: min {min(rates) / 1e9:.1f}, "
            f"median {statistics.median(rates) / 1e9:.1f}, max "
            f"{max(rates) / 1e9:.1f} GFLOP/s ({len(rates)} runs; a wide range means "
            f"a busy machine)"
        )


if __name__ == "__main__":
    main()
