"""One Adam update of a generator's weights: FusedAdam against keras.optimizers.Adam.

Builds the preset's model (64 px), takes one generator side's trainable variables
(encoder + decoder_A, as the trainer's g_optimizer_a), and times
`optimizer.apply(gradients, variables)` inside `tf.function` for the trainer's
`FusedAdam` (one `ResourceApplyAdam` kernel per variable) and Keras' Adam (the
same math as separate tensor ops), alternating, `--repeats` times after one
warm-up each; prints the median milliseconds per update and their ratio.

Usage:
    python benchmarks/optimizer_speed.py --capacity standard --repeats 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from faceswap_gan.config import PRESETS  # noqa: E402
from faceswap_gan.models import FaceSwapGAN  # noqa: E402
from faceswap_gan.optimizers import FusedAdam  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capacity", choices=["lite", "standard"], default="standard")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    model = FaceSwapGAN(PRESETS[args.capacity])
    variables = model.generator_side_variables("A")
    count = sum(int(np.prod(v.shape)) for v in variables)
    rng = np.random.default_rng(0)
    grads = [tf.constant(rng.normal(0, 1e-3, v.shape), tf.float32) for v in variables]
    updates = {}
    for name, cls in (("FusedAdam", FusedAdam), ("keras Adam", keras.optimizers.Adam)):
        optimizer = cls(1e-4, beta_1=0.5)
        optimizer.build(variables)
        updates[name] = tf.function(lambda o=optimizer: o.apply(grads, variables))
        updates[name]()  # warm-up: trace
    times = {name: [] for name in updates}
    for _ in range(args.repeats):
        for name, update in updates.items():
            start = time.perf_counter()
            update()
            float(variables[0][(0,) * len(variables[0].shape)])  # wait for it
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"{args.capacity}: {len(variables)} variables, {count / 1e6:.1f} M weights; "
        f"median of {args.repeats}"
    )
    for name, seconds in median.items():
        print(f"  {name:<11} {1000 * seconds:7.1f} ms per update")
    print(
        f"  keras Adam / FusedAdam: {median['keras Adam'] / median['FusedAdam']:.2f}x"
    )


if __name__ == "__main__":
    main()
