"""Per-scale perceptual-loss magnitudes of each backend on real faces.

The perceptual loss is `sum_i w_pl[i] * mean((IN(real_i) - IN(fake_i))^2)` over four
feature maps, deepest first (`faceswap_gan.losses.perceptual`). IN is computed both
ways, per sample and channel over H, W, and per sample over H, W and C as v2.2's
keras-contrib layer did (the summary says which one `faceswap_gan.losses` uses now).
faceswap-GAN v2.2 tuned `w_pl = (0.01, 0.1, 0.3, 0.1)` for
VGGFace's maps at 1/32, 1/8, ~1/4 and 1/2 of its input. This script shows, per scale,
how large the unweighted term is between a real face and
  (a) a slightly blurred copy (Gaussian, sigma 1 px per 64 px of face),
  (b) a face of the other person (crop i of A vs crop i of B),
  (c) the same person in another frame (crop i vs crop i + 8, about 8 s apart),
and the share of each scale in the weighted sum against the share `w_pl` intends
(`w_pl[i] / sum(w_pl)`, what it would be if all four terms were equal). A ratio above
10 (or below 1/10) means that scale dominates (or vanishes) by more than 10x against
the weights' intent and `w_pl` would need re-weighting for that backend.

Faces: the 16 + 16 real 256 px crops in tests/data/faces/a and b, resized (INTER_AREA)
to the model sizes `--sizes` (the perceptual net sees the generator's output at the
model's size, resized inside `build_perceptual_model`).

Backends: "face_api" (vendored weights) with the layers `build_perceptual_model` uses
and, for comparison, the layers it used before (`RECOGNITION_FEATURE_LAYERS`: 4, 8,
17, 35 px). "vggface" needs keras-vggface's `rcmalli_vggface_tf_notop_resnet50.h5`,
which cannot be downloaded on a machine without internet: pass `--vggface-weights
PATH` (or have it in ~/.keras/models/vggface); otherwise it is reported as not
measured (random weights would say nothing about the trained net).

Usage:
    python benchmarks/perceptual_scales.py
    python benchmarks/perceptual_scales.py --sizes 64 --vggface-weights ~/w.h5
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
FACES = REPO / "tests" / "data" / "faces"
VGGFACE_FILE = "rcmalli_vggface_tf_notop_resnet50.h5"
W_PL = (0.01, 0.1, 0.3, 0.1)  # faceswap-GAN v2.2 / LossWeights default, deepest first


def load_faces(folder: Path, size: int):
    """`(N, size, size, 3)` float32 RGB in [-1, 1] and the uint8 crops."""
    import cv2

    from faceswap_gan.images import list_images, read_image, to_model_range

    crops = np.stack(
        [
            cv2.resize(read_image(p), (size, size), interpolation=cv2.INTER_AREA)
            for p in list_images(folder)
        ]
    )
    return to_model_range(crops), crops


def pairs(size: int) -> dict:
    """name -> (real, other) batches in [-1, 1]."""
    import cv2

    from faceswap_gan.images import to_model_range

    a, crops_a = load_faces(FACES / "a", size)
    b, _ = load_faces(FACES / "b", size)
    sigma = size / 64
    blurred = to_model_range(
        np.stack([cv2.GaussianBlur(c, (0, 0), sigma) for c in crops_a])
    )
    half = len(a) // 2
    return {
        f"blurred (sigma {sigma:g} px)": (a, blurred),
        "other person": (a, b[: len(a)]),
        "same person, other frame": (a[:half], a[half : 2 * half]),
    }


def _per_channel(features):
    """Per sample and channel over H, W (true instance norm), epsilon 1e-5."""
    mean = features.mean(axis=(1, 2), keepdims=True)
    return (features - mean) / np.sqrt(features.var(axis=(1, 2), keepdims=True) + 1e-5)


def _whole_map(features):
    """Per sample over H, W and C, `(x - mean) / (std + 1e-3)`: v2.2's keras-contrib
    `InstanceNormalization()` (axis=None)."""
    mean = features.mean(axis=(1, 2, 3), keepdims=True)
    return (features - mean) / (features.std(axis=(1, 2, 3), keepdims=True) + 1e-3)


NORMALISATIONS = {
    "per-channel IN (H, W)": _per_channel,
    "v2.2 IN over (H, W, C)": _whole_map,
}


def loss_normalisation() -> str:
    """Which of NORMALISATIONS `faceswap_gan.losses.instance_normalize` computes."""
    from keras import ops

    from faceswap_gan.losses import instance_normalize

    rng = np.random.default_rng(0)
    features = (rng.normal(size=(2, 8, 8, 4)) * [1, 2, 5, 9]).astype(np.float32)
    got = ops.convert_to_numpy(instance_normalize(features))
    for name, normalise in NORMALISATIONS.items():
        if np.allclose(got, normalise(features), atol=1e-4):
            return name
    return "neither"


def per_scale_losses(real_features, fake_features, normalise) -> list[float]:
    """Unweighted `mean((IN(real_i) - IN(fake_i))^2)` per scale (`losses.perceptual`
    without `w_pl`)."""
    return [
        float(np.mean((normalise(r) - normalise(f)) ** 2))
        for r, f in zip(real_features, fake_features, strict=True)
    ]


def face_api_models() -> dict:
    """name -> perceptual model: the layers in use and the layers used before."""
    import keras

    from faceswap_gan.face_api import RECOGNITION_FEATURE_LAYERS
    from faceswap_gan.perceptual import build_perceptual_model

    current = build_perceptual_model("face_api")
    inner = next(layer for layer in current.layers if isinstance(layer, keras.Model))
    base = keras.Model(
        inner.input, [inner.get_layer(n).output for n in RECOGNITION_FEATURE_LAYERS]
    )
    images = keras.Input((None, None, 3))
    x = keras.ops.image.resize(images, base.input.shape[1:3], interpolation="bilinear")
    before = keras.Model(images, base((x + 1.0) * 127.5))
    return {"face_api": current, "face_api, layers before": before}


def vggface_weights(path: str | None) -> Path | None:
    candidates = [Path(path).expanduser()] if path else []
    candidates.append(Path.home() / ".keras" / "models" / "vggface" / VGGFACE_FILE)
    return next((c for c in candidates if c.is_file()), None)


def _features(model, images) -> list:
    """The model's feature maps as numpy arrays (a plain call: no predict retracing)."""
    return [np.asarray(f) for f in model(images, training=False)]


def report(name, model, size, data, w_pl) -> dict:
    """Prints one backend's tables at one size; returns the worst share/intent ratio
    (or its inverse) per normalisation."""
    features = {
        pair: (_features(model, real), _features(model, fake))
        for pair, (real, fake) in data.items()
    }
    sides = [int(f.shape[1]) for f in next(iter(features.values()))[0]]
    intent = [w / sum(w_pl) for w in w_pl]
    header = "".join(f"{f'{s} px':>9}" for s in sides)
    worst = {}
    for norm, normalise in NORMALISATIONS.items():
        print(f"\n{name}, {size} px faces, {norm}")
        print(f"  {'pair':<26}{'':<14}{header}")
        worst[norm] = 1.0
        for pair, (real_f, fake_f) in features.items():
            losses = per_scale_losses(real_f, fake_f, normalise)
            weighted = [w * v for w, v in zip(w_pl, losses, strict=True)]
            shares = [v / max(sum(weighted), 1e-12) for v in weighted]
            ratios = [s / i for s, i in zip(shares, intent, strict=True)]
            worst[norm] = max(
                [worst[norm]] + [max(r, 1 / max(r, 1e-12)) for r in ratios]
            )
            print(f"  {pair:<26}{'loss':<14}" + "".join(f"{v:>9.4f}" for v in losses))
            print(
                f"  {'':<26}{'share/intent':<14}"
                + "".join(f"{r:>9.2f}" for r in ratios)
            )
    return worst


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[64, 128], help="face sizes (64 128)"
    )
    parser.add_argument(
        "--vggface-weights", default=None, help=f"path to {VGGFACE_FILE}"
    )
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    print(
        f"w_pl (deepest first) {W_PL}; intended shares "
        f"{[round(w / sum(W_PL), 3) for w in W_PL]}"
    )
    models = face_api_models()
    weights = vggface_weights(args.vggface_weights)
    if weights is None:
        print(
            f"\nvggface: NOT MEASURED. Its weights ({VGGFACE_FILE}, keras-vggface's "
            "GitHub release) are not on this machine and cannot be downloaded "
            "without internet; pass --vggface-weights PATH."
        )
    else:
        from faceswap_gan.perceptual import build_perceptual_model

        models["vggface"] = build_perceptual_model("vggface", weights=weights)
    worst = {}
    for size in args.sizes:
        data = pairs(size)
        for name, model in models.items():
            for norm, value in report(name, model, size, data, W_PL).items():
                worst[name, size, norm] = value
    print(
        "\nlargest share/intent ratio (or its inverse) over scales and pairs "
        f"(faceswap_gan.losses now uses: {loss_normalisation()}):"
    )
    for (name, size, norm), value in worst.items():
        verdict = "RE-WEIGHT" if value > 10 else "within 10x: keep w_pl"
        print(f"  {name:<25}{size:>4} px  {norm:<24}{value:6.2f}  {verdict}")


if __name__ == "__main__":
    main()
