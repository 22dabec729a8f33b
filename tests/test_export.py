"""ONNX export (faceswap_gan.export, `export` command) and the onnxruntime backend
(converter.onnx_backend) against the Keras model, on the bundled faces and clips."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap_gan.cli import main
from faceswap_gan.images import list_images, read_image, resize_faces, to_model_range


def _faces(folder: Path, size: int) -> np.ndarray:
    """(16, size, size, 3) uint8 RGB real face crops."""
    return resize_faces(np.stack([read_image(p) for p in list_images(folder)]), size)


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """{(format, direction): path} of the tiny run, written by the export command."""
    folder = tmp_path_factory.mktemp("export")
    paths = {}
    for fmt, direction in (("onnx", "AtoB"), ("onnx", "BtoA"), ("dfm", "AtoB")):
        path = folder / f"{direction}.{fmt}"
        argv = ["export", "--model", str(tiny_run), "--direction", direction]
        assert main(argv + ["--format", fmt, "--output", str(path)]) == 0
        paths[fmt, direction] = path
    return paths


def test_export_refuses_bad_options_before_loading(tiny_run, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    cases = [
        (
            ["--model", str(tiny_run), "--output", str(tmp_path / "m.pb")],
            "end in .onnx",
        ),
        (
            ["--model", str(tiny_run), "--format", "dfm", "--output", str(out)],
            "end in .dfm",
        ),
        (
            ["--model", str(tiny_run), "--direction", "AB", "--output", str(out)],
            "direction must be one of ('AtoB', 'BtoA')",
        ),
        (
            ["--model", str(tiny_run), "--format", "tflite", "--output", str(out)],
            "format must be one of ('onnx', 'dfm')",
        ),
        (
            ["--model", str(tmp_path / "no_run"), "--output", str(out)],
            f"No checkpoint at {tmp_path / 'no_run'}: it does not exist; give a run "
            "folder (runs/NAME) or a checkpoint folder",
        ),
        (
            ["--model", str(tmp_path), "--output", str(out)],
            f"No checkpoint at {tmp_path}: expected a run folder",
        ),
    ]
    for argv, message in cases:
        assert main(["export"] + argv) == 1
        assert message in capsys.readouterr().err
    assert not out.exists()
    out.write_bytes(b"earlier")
    assert main(["export", "--model", str(tiny_run), "--output", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"earlier"


@pytest.mark.slow
def test_onnxruntime_matches_keras_on_real_faces(
    exported, tiny_model, faces_a, faces_b
):
    import onnxruntime as ort

    from converter.onnx_backend import OnnxFaceModel

    for direction, folder in (("AtoB", faces_a), ("BtoA", faces_b)):
        faces = to_model_range(_faces(folder, tiny_model.image_size))
        alpha, rgb, masked = tiny_model.swap(faces, direction)
        session = ort.InferenceSession(str(exported["onnx", direction]))
        assert [i.name for i in session.get_inputs()] == ["face"]
        assert [o.name for o in session.get_outputs()] == ["alpha", "rgb"]
        got_alpha, got_rgb = session.run(None, {"face": faces})
        np.testing.assert_allclose(got_alpha, alpha, atol=1e-4, rtol=0)
        np.testing.assert_allclose(got_rgb, rgb, atol=1e-4, rtol=0)
        model = OnnxFaceModel(exported["onnx", direction])
        assert (model.image_size, model.direction) == (64, direction)
        for mine, theirs in zip(
            model.swap(faces, direction, batch_size=5),
            (
                alpha,
                rgb,
                masked,
            ),
        ):
            np.testing.assert_allclose(mine, theirs, atol=1e-4, rtol=0)
        other = "BtoA" if direction == "AtoB" else "AtoB"
        with pytest.raises(ValueError, match=f"holds the {direction} transform"):
            model.swap(faces, other)
    # The two files hold different decoders: on the same faces they differ.
    faces = to_model_range(_faces(faces_a, 64))
    a = OnnxFaceModel(exported["onnx", "AtoB"]).swap(faces, "AtoB")[1]
    b = OnnxFaceModel(exported["onnx", "BtoA"]).swap(faces, "BtoA")[1]
    assert np.abs(a - b).mean() > 0.01


def _host_unsharp(crop_bgr: np.ndarray) -> np.ndarray:
    """FaceFusion deep_swapper `prepare_crop_frame` before the / 255 (core.py L396):
    uint8 saturating `addWeighted(crop, 1.75, GaussianBlur(crop, (0, 0), 2), -0.75)`."""
    return cv2.addWeighted(
        crop_bgr, 1.75, cv2.GaussianBlur(crop_bgr, (0, 0), 2), -0.75, 0
    )


@pytest.mark.slow
def test_dfm_has_the_hosts_names_and_ranges_and_swaps_as_keras(
    exported, tiny_model, faces_a
):
    """Names and layout as DeepFaceLab's export_dfm / DeepFaceLive's DFMModel read
    them; run as DeepFaceLive (BGR uint8 / 255) and as FaceFusion (unsharpened BGR /
    255) do, the swap is Keras' swap of the same RGB face."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(exported["dfm", "AtoB"]))
    (face_input,) = session.get_inputs()
    assert face_input.name == "in_face:0" and face_input.type == "tensor(float)"
    assert face_input.shape[1:] == [64, 64, 3]  # DFMModel reads shape[1:3]
    assert [o.name for o in session.get_outputs()] == [
        "out_face_mask:0",
        "out_celeb_face:0",
        "out_celeb_face_mask:0",
    ]
    crops_rgb = _faces(faces_a, 64)
    crops_bgr = np.ascontiguousarray(crops_rgb[..., ::-1])
    # DeepFaceLive: ImageProcessor(img).resize(...).ch(3).to_ufloat32() (uint8/255).
    face_mask, celeb, celeb_mask = session.run(
        None, {"in_face:0": crops_bgr.astype(np.float32) / 255.0}
    )
    assert face_mask.shape == celeb_mask.shape == (16, 64, 64, 1)
    assert celeb.shape == (16, 64, 64, 3)
    for out in (face_mask, celeb, celeb_mask):
        assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0
    assert np.all(face_mask == 1.0)  # product / minimum with it = the swap's alpha
    alpha, rgb, _ = tiny_model.swap(to_model_range(crops_rgb), "AtoB")
    np.testing.assert_allclose(celeb_mask, alpha, atol=1e-4, rtol=0)
    np.testing.assert_allclose(celeb[..., ::-1] * 2 - 1, rgb, atol=2e-4, rtol=0)
    # FaceFusion: unsharpen, / 255; output x 255 clipped to uint8 (core.py L402-405).
    sharp_bgr = np.stack([_host_unsharp(c) for c in crops_bgr])
    _, celeb, celeb_mask = session.run(
        None, {"in_face:0": sharp_bgr.astype(np.float32) / 255.0}
    )
    alpha, rgb, _ = tiny_model.swap(to_model_range(sharp_bgr[..., ::-1]), "AtoB")
    np.testing.assert_allclose(celeb_mask, alpha, atol=1e-4, rtol=0)
    host_uint8 = (celeb * 255.0).clip(0, 255).astype(np.uint8)[..., ::-1]
    keras_uint8 = ((rgb + 1) * 127.5).clip(0, 255).astype(np.uint8)
    assert np.abs(host_uint8.astype(int) - keras_uint8).max() <= 1


@pytest.mark.slow
def test_onnx_backend_converts_a_clip_like_keras(
    exported, tiny_model, detector, clip_a, tmp_path, first_frames
):
    """VideoConverter with OnnxFaceModel on person_a.mp4 gives the Keras frames: the
    decoded outputs differ by at most 2 of 255 per pixel (the model outputs differ by
    ~1e-6, which can flip a rounding), mean below 0.01. Lossless output and no colour
    matching: a 1-level difference can flip h264's choices for a whole block, and
    one histogram bin can map several levels away (CI saw 16 with both on)."""
    from converter.config import ConverterConfig
    from converter.onnx_backend import OnnxFaceModel
    from converter.pipeline import VideoConverter

    config = ConverterConfig(
        output_type="single",
        watermark=False,
        codec="lossless",
        color_correction="none",
    )
    frames = 12
    outputs = {}
    for name, model in (
        ("keras", tiny_model),
        ("onnx", OnnxFaceModel(exported["onnx", "AtoB"])),
    ):
        path = tmp_path / f"{name}.mkv"
        report = VideoConverter(model, config, detector).convert(
            clip_a, path, max_frames=frames, progress=False
        )
        assert report.frames == frames
        outputs[name] = np.stack(first_frames(path, frames)).astype(int)
    original = np.stack(first_frames(clip_a, frames)).astype(int)
    assert np.abs(outputs["keras"] - original).mean() > 1.0  # faces were swapped
    diff = np.abs(outputs["onnx"] - outputs["keras"])
    print(f"onnx vs keras frames: max {diff.max()}, mean {diff.mean():.5f}")
    assert diff.max() <= 2 and diff.mean() < 0.01


@pytest.mark.slow
def test_convert_cli_runs_an_exported_file_with_onnxruntime(
    exported, tiny_model, detector, clip_a, tmp_path, first_frames, capsys
):
    """`convert --backend onnxruntime --model BtoA.onnx` converts with the file's own
    direction (BtoA, no --direction given): the frames equal the Keras model's BtoA
    conversion (within 2 of 255; lossless, no colour matching, full detection on
    every frame, as above); asking for the other direction is refused."""
    from converter.config import ConverterConfig
    from converter.pipeline import VideoConverter

    frames, out = 3, tmp_path / "onnx_cli.mkv"
    argv = ["convert", "--backend", "onnxruntime", "--input", str(clip_a)]
    argv += ["--max-frames", str(frames), "--output-type", "single"]
    argv += ["--no-watermark", "--no-progress", "--keyframe-seconds", "0"]
    argv += ["--codec", "lossless", "--color-correction", "none"]
    model_file = str(exported["onnx", "BtoA"])
    assert main(argv + ["--model", model_file, "--output", str(out)]) == 0
    assert '"direction": "BtoA"' in capsys.readouterr().out
    config = ConverterConfig(
        output_type="single",
        watermark=False,
        direction="BtoA",
        keyframe_seconds=0,
        codec="lossless",
        color_correction="none",
    )
    keras_out = tmp_path / "keras.mkv"
    VideoConverter(tiny_model, config, detector).convert(
        clip_a, keras_out, max_frames=frames, progress=False
    )
    got = np.stack(first_frames(out, frames)).astype(int)
    want = np.stack(first_frames(keras_out, frames)).astype(int)
    assert np.abs(got - want).max() <= 2

    refused = tmp_path / "refused.mkv"
    argv += ["--model", model_file, "--output", str(refused), "--direction", "AtoB"]
    assert main(argv) == 1
    assert "holds the BtoA transform" in capsys.readouterr().err
    assert not refused.exists()
