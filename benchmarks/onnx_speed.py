"""Conversion speed with the Keras model vs its ONNX export run by onnxruntime.

In one process: builds a model (a preset with random weights, or a trained run via
--model), exports its AtoB transform with `faceswap_gan.export.export_model` to a
temporary .onnx, then converts the same frames of a bundled clip with
`VideoConverter(keras_model)` and `VideoConverter(OnnxFaceModel(file))`, alternating
the two `--repeats` times (each after a 5-frame warm-up; both share one MTCNN
detector). It prints, per backend, the median whole-conversion frames/s (detection,
alignment, blending and encoding included, which both share) and the median generator
seconds per face (`FaceTransformer.seconds["generator"]`: resize + network), and the
onnxruntime / Keras ratios.

Usage:
    python benchmarks/onnx_speed.py                      # tiny preset, 45 frames
    python benchmarks/onnx_speed.py --preset standard --frames 30 --repeats 3
    python benchmarks/onnx_speed.py --model runs/ab --clip my.mp4
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO / "faceswap_gan" / "data" / "samples" / "person_a.mp4"


def _one_run(model, config, detector, clip: Path, frames: int, output: Path) -> dict:
    from converter.pipeline import VideoConverter
    from faceswap_gan.video import VideoReader

    converter = VideoConverter(model, config, detector)
    for index, frame in enumerate(VideoReader(clip)):  # warm-up: 5 frames
        converter.convert_image(frame)
        if index == 4:
            break
    converter.transformer.seconds.clear()
    report = converter.convert(
        clip, output, max_frames=frames, progress=False, overwrite=True
    )
    return {
        "fps": report.frames_per_second,
        "faces": report.faces,
        "generator_ms_per_face": 1000
        * converter.transformer.seconds["generator"]
        / max(report.faces, 1),
    }


def measure(
    model=None,
    clip: Path = DEFAULT_CLIP,
    frames: int = 45,
    repeats: int = 2,
    preset: str = "tiny",
    threads: int | None = None,
) -> dict:
    """Converts `frames` frames of `clip` with Keras and with onnxruntime, alternating.

    Args:
        model: a FaceSwapGAN, a run/checkpoint folder, or None (PRESETS[preset] with
            random weights).
        clip: video to convert (its first `frames` frames).
        frames: int >= 1.
        repeats: int >= 1. Alternating (Keras, onnxruntime) runs; medians reported.
        preset: preset name when `model` is None.
        threads: onnxruntime intra-op threads (None: one per core).

    Returns:
        dict: {"keras": {...}, "onnxruntime": {...}} each with medians of "fps"
        (frames/s of the whole conversion) and "generator_ms_per_face"
        (milliseconds), plus "faces"; and "runs": the per-run dicts.
    """
    sys.path.insert(0, str(REPO))
    from converter.config import ConverterConfig
    from converter.onnx_backend import OnnxFaceModel
    from faceswap_gan.checkpoints import load_model
    from faceswap_gan.export import export_model
    from faceswap_gan.faces.detection import FaceDetector

    if model is None:
        from faceswap_gan.config import PRESETS
        from faceswap_gan.models import FaceSwapGAN

        model = FaceSwapGAN(PRESETS[preset])
    elif not hasattr(model, "swap"):
        model = load_model(model)
    config = ConverterConfig(image_shape=model.image_size, output_type="single")
    detector = FaceDetector()
    runs = {"keras": [], "onnxruntime": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        onnx_model = OnnxFaceModel(
            export_model(model, tmp / "model.onnx").path, threads=threads
        )
        for _ in range(int(repeats)):
            for name, backend in (("keras", model), ("onnxruntime", onnx_model)):
                runs[name].append(
                    _one_run(backend, config, detector, clip, frames, tmp / "out.mp4")
                )
    result = {"runs": runs}
    for name, items in runs.items():
        result[name] = {
            "fps": statistics.median(r["fps"] for r in items),
            "generator_ms_per_face": statistics.median(
                r["generator_ms_per_face"] for r in items
            ),
            "faces": items[0]["faces"],
        }
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=int, default=45)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--preset", default="tiny", help="model preset (random)")
    parser.add_argument("--model", help="run/checkpoint folder instead of a preset")
    parser.add_argument("--threads", type=int, help="onnxruntime intra-op threads")
    args = parser.parse_args(argv)
    result = measure(
        args.model, args.clip, args.frames, args.repeats, args.preset, args.threads
    )
    what = args.model or f"preset {args.preset} (random weights)"
    print(
        f"{what}, {args.frames} frames of {args.clip.name}, medians of "
        f"{args.repeats} alternating runs each:"
    )
    for name in ("keras", "onnxruntime"):
        r = result[name]
        print(
            f"  {name:<12} {r['fps']:6.2f} frames/s whole conversion, generator "
            f"{r['generator_ms_per_face']:7.2f} ms/face ({r['faces']} faces)"
        )
    keras, ort = result["keras"], result["onnxruntime"]
    print(
        f"  onnxruntime/keras: frames/s {ort['fps'] / keras['fps']:.2f}x, generator "
        f"time {ort['generator_ms_per_face'] / keras['generator_ms_per_face']:.2f}x"
    )


if __name__ == "__main__":
    main()
