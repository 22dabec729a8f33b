"""Where the time of SAGAN self-attention at 64x64 positions goes, op by op.

The decoder's last `SelfAttention2D` works on 64x64 = 4096 positions (lite: 32
channels, f and g 4; standard: 64 and 8), so each image has a 4096 x 4096 score map.
This script times, on a batch of `--batch-size` random feature maps (the shapes of
that layer in a 64 px model), inside `tf.function`, as the training step runs them:

- scores: `g f^T`, the (B, N, d) x (B, d, N) batched matmul (2 B N^2 d FLOPs);
- softmax over the last axis of the (B, N, N) scores (about 5 B N^2 FLOPs as
  TensorFlow's profiler counts it: max, subtract, exp, sum, divide);
- exp alone on a tensor of the same size (the transcendental inside the softmax);
- copy: `x + 1` on the same size, a pure memory pass (read + write 4 B N^2 bytes
  each), for the memory bandwidth;
- P V: the (B, N, N) x (B, N, C) batched matmul (2 B N^2 C FLOPs);
- the whole layer (explicit, as `SelfAttention2D` computes it), forward, and
  forward + backward (a gradient tape, as in training), with its hand-written
  backward pass (`self_attention.attention`, the default) and with TensorFlow's
  automatic one ("autodiff backward", `custom_gradient=False`);
- a dense 2048 x 2048 float32 matmul, this machine's matmul peak, measured in the
  same round.

Each op is timed `--repeats` times, round robin (so load from other processes falls
on all alike), and the median is printed with its GFLOP/s and its share of the peak,
or its bytes/s. The FLOPs are the ones `benchmarks/model_speed.py` counts, so the
fractions show which ops keep the train step from the matmul peak.

With `--memory`, instead: the growth of the peak resident memory over one
forward + backward of the layer, with the blocks of `self_attention.attention` and
with TensorFlow's gradient, each in a fresh process.

Usage:
    python benchmarks/attention_cost.py --memory
    python benchmarks/attention_cost.py
    python benchmarks/attention_cost.py --capacity standard --batch-size 8 --repeats 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np

POSITIONS = 64 * 64  # The decoder's last self-attention in a 64 px model.
CHANNELS = {"lite": 32, "standard": 64}  # 64 // coef at that layer.


def _ops(batch: int, channels: int):
    """Name -> (zero-argument tf.function, FLOPs or None, bytes moved or None)."""
    import keras
    import tensorflow as tf

    from faceswap_gan.layers.self_attention import SelfAttention2D

    n, d, c = POSITIONS, channels // 8, channels
    rng = tf.random.Generator.from_seed(0)
    g = rng.normal((batch, n, d))
    f = rng.normal((batch, n, d))
    v = rng.normal((batch, n, c))
    scores = rng.normal((batch, n, n))
    maps = rng.normal((batch, 64, 64, c))
    big = rng.normal((2, 2048, 2048))
    layer = SelfAttention2D(fused=False)  # the default: hand-written backward pass
    layer.build(maps.shape)
    layer.gamma.assign(0.5)  # Nonzero: the attention output reaches the loss.
    autodiff = SelfAttention2D(fused=False, custom_gradient=False)
    autodiff.build(maps.shape)
    autodiff.set_weights(layer.get_weights())

    def forward_backward(net):
        with tf.GradientTape() as tape:
            tape.watch(maps)
            loss = tf.reduce_sum(net(maps))
        return tape.gradient(loss, [maps, *net.trainable_variables])

    size = batch * n * n
    explicit_flops = 2 * size * d + 5 * size + 2 * size * c
    ops = {
        "scores g f^T": (lambda: tf.matmul(g, f, transpose_b=True), 2 * size * d, None),
        "softmax": (lambda: tf.nn.softmax(scores, -1), 5 * size, 8 * size),
        "exp": (lambda: tf.exp(scores), size, 8 * size),
        "copy (x + 1)": (lambda: scores + 1.0, None, 8 * size),
        "P V": (lambda: tf.matmul(scores, v), 2 * size * c, None),
        "layer forward": (lambda: layer(maps), explicit_flops, None),
        # Backward: about twice the forward's matmul FLOPs, plus the softmax's.
        "layer forward+backward": (
            lambda: forward_backward(layer),
            3 * explicit_flops,
            None,
        ),
        "  autodiff backward": (
            lambda: forward_backward(autodiff),
            3 * explicit_flops,
            None,
        ),
        "matmul 2048 (peak)": (lambda: tf.matmul(big[0], big[1]), 2 * 2048**3, None),
    }
    keras.utils.set_random_seed(0)
    return {
        name: (tf.function(fn), flops, nbytes)
        for name, (fn, flops, nbytes) in ops.items()
    }


# Peak memory of the layer's forward + backward in a fresh process (--memory).
MEMORY_CHILD = """
import resource, sys
import tensorflow as tf
from faceswap_gan.layers.self_attention import SelfAttention2D
batch, channels, custom = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
layer = SelfAttention2D(custom_gradient=custom)
maps = tf.random.normal((batch, 64, 64, channels))
layer.build(maps.shape)
layer.gamma.assign(0.5)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
@tf.function
def step():
    with tf.GradientTape() as tape:
        tape.watch(maps)
        loss = tf.reduce_sum(layer(maps))
    return tape.gradient(loss, [maps, *layer.trainable_variables])
[g.numpy() for g in step()]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, after)
"""


def peak_memory(batch: int, channels: int) -> None:
    """Prints the growth of peak RSS (ru_maxrss) over one forward + backward of
    the layer, each variant in its own process."""
    import subprocess
    import sys

    print(f"peak memory of one forward + backward, batch {batch}, {channels} channels")
    for name, custom in (("blocks (default)", "1"), ("autodiff", "0")):
        done = subprocess.run(
            [sys.executable, "-c", MEMORY_CHILD, str(batch), str(channels), custom],
            capture_output=True,
            text=True,
            check=True,
        )
        before, after = (int(x) for x in done.stdout.split()[-2:])
        print(f"  {name:<18} +{(after - before) / 2**20:6.2f} GiB (ru_maxrss growth)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capacity", choices=sorted(CHANNELS), default="lite")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--memory",
        action="store_true",
        help="only measure the peak memory of one forward + backward, blocks "
        "against autodiff, each in a fresh process",
    )
    args = parser.parse_args(argv)
    if args.memory:
        peak_memory(args.batch_size, CHANNELS[args.capacity])
        return
    import tensorflow as tf

    ops = _ops(args.batch_size, CHANNELS[args.capacity])
    times = {name: [] for name in ops}
    for name, (fn, _, _) in ops.items():  # Warm-up: trace and run once.
        tf.nest.map_structure(np.asarray, fn())
    for _ in range(args.repeats):
        for name, (fn, _, _) in ops.items():
            tic = time.perf_counter()
            tf.nest.map_structure(np.asarray, fn())
            times[name].append(time.perf_counter() - tic)
    median = {name: float(np.median(t)) for name, t in times.items()}
    peak = ops["matmul 2048 (peak)"][1] / median["matmul 2048 (peak)"]
    channels = CHANNELS[args.capacity]
    print(
        f"{args.capacity}: self-attention over {POSITIONS} positions, {channels} "
        f"channels (f, g {channels // 8}), batch {args.batch_size}; median of "
        f"{args.repeats}; matmul peak {peak / 1e9:.1f} GFLOP/s"
    )
    print(f"{'op':<24}{'ms':>9}{'GFLOP/s':>10}{'of peak':>9}{'GB/s':>8}")
    for name, (_, flops, nbytes) in ops.items():
        seconds = median[name]
        rate = f"{flops / seconds / 1e9:10.1f}" if flops else f"{'':>10}"
        share = f"{100 * flops / seconds / peak:8.1f}%" if flops else f"{'':>9}"
        bandwidth = f"{nbytes / seconds / 1e9:8.1f}" if nbytes else f"{'':>8}"
        print(f"{name:<24}{1000 * seconds:9.1f}{rate}{share}{bandwidth}")


if __name__ == "__main__":
    main()
