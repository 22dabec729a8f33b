"""`faceswap_gan convert` (faceswap_gan/commands/convert.py) on a saved tiny model."""

import argparse
import json

import pytest

from converter.config import ConverterConfig, ImageOutputType
from faceswap_gan.commands import convert
from faceswap_gan.video import VideoReader, read_metadata


@pytest.fixture(scope="module")
def parser():
    root = argparse.ArgumentParser(prog="faceswap_gan")
    convert.add_parser(root.add_subparsers(dest="command"))
    return root


def test_flags_override_the_config_file(parser, tmp_path):
    path = tmp_path / "conv.json"
    ConverterConfig(
        output_type="combined", color_correction="adain", roi_coverage=0.93
    ).to_json(path)
    args = parser.parse_args(
        [
            "convert",
            "--model",
            "m",
            "--input",
            "i",
            "--output",
            "o",
            "--config",
            str(path),
            "--output-type",
            "single",
            "--no-watermark",
            "--kf-noise-coef",
            "0.01",
        ]
    )
    config = convert.resolve_config(args)
    assert config.output_type is ImageOutputType.SINGLE  # Flag beats file.
    assert config.color_correction.name == "ADAIN" and config.roi_coverage == 0.93
    assert config.watermark is False and config.kf_noise_coef == 0.01
    assert config.image_shape is None  # The file's (to_json): the model's size.
    path.write_text(json.dumps({"enhance": 0.1, "image_shape": 128}))
    assert convert.resolve_config(args).image_shape == (128, 128, 3)


def test_every_config_field_has_a_flag(parser):
    args = parser.parse_args(
        ["convert", "--model", "m", "--input", "i", "--output", "o"]
    )
    fields = set(ConverterConfig.__dataclass_fields__)
    assert fields <= set(vars(args))


@pytest.mark.slow
def test_convert_command_end_to_end(parser, tiny_run, clip_a, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    args = parser.parse_args(
        [
            "convert",
            "--model",
            str(tiny_run),
            "--input",
            str(clip_a),
            "--output",
            str(out),
            "--max-frames",
            "4",
            "--no-progress",
            "--output-type",
            "single",
            "--color-correction",
            "none",
        ]
    )
    assert convert.run(args) == 0
    reader = VideoReader(out)
    assert reader.frame_count == 4 and reader.size == (480, 480) and reader.has_audio
    assert read_metadata(out)["synthetic_media"] == "true"
    assert "4 frames" in capsys.readouterr().out


def test_bad_input_returns_1_with_the_reason(
    parser, tiny_run, clip_a, tmp_path, capsys
):
    from faceswap_gan.cli import main

    args = ["convert", "--model", str(tiny_run), "--input", str(clip_a)]
    bad = [*args, "--output", str(tmp_path / "o.mp4"), "--roi-coverage", "1.5"]
    assert main(bad) == 1
    assert "roi_coverage must be in (0, 1)" in capsys.readouterr().err
    args = ["convert", "--model", str(tmp_path), "--input", str(clip_a)]
    assert main([*args, "--output", str(tmp_path / "o.mp4")]) == 1
    assert "No checkpoint" in capsys.readouterr().err


def test_dry_run_prints_the_config(parser, clip_a, tmp_path, capsys):
    args = parser.parse_args(
        [
            "convert",
            "--model",
            "unused",
            "--input",
            str(clip_a),
            "--output",
            str(tmp_path / "o.mp4"),
            "--dry-run",
            "--direction",
            "btoa",
        ]
    )
    assert convert.run(args) == 0
    printed = capsys.readouterr().out
    assert '"direction": "BtoA"' in printed and "180 frames" in printed
    assert not (tmp_path / "o.mp4").exists()
