"""The CLI as a newcomer meets it: one device line, no TensorFlow start-up noise."""

import os
import subprocess
import sys

import pytest


def _cli(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    command = [sys.executable, "-m", "faceswap_gan", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_the_start_is_one_device_line_without_tensorflow_log(tmp_path, faces_a):
    result = _cli("masks", "--faces", str(faces_a), "--output", str(tmp_path / "m"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[0] in (
        "Device: CPU (no GPU visible to TensorFlow).",
        "Device: GPU (1): /physical_device:GPU:0.",
    )
    noise = [
        line
        for line in result.stderr.replace("\r", "\n").splitlines()
        if line.strip() and not line.startswith("eye masks:")  # the progress bar
    ]
    assert noise == []


@pytest.mark.slow
def test_verbose_shows_the_tensorflow_log(tmp_path, faces_a):
    missing = str(tmp_path / "none")
    result = _cli("masks", "--faces", missing, "--output", "o", "--verbose")
    assert result.returncode == 1
    assert "absl" in result.stderr or "I0000" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("masks: error: Image folder")


def test_building_the_parser_loads_no_tensorflow():
    """Every subcommand's module is imported to build the parser, before the device
    line hides TensorFlow's start-up log: none of them may import TensorFlow."""
    code = (
        "import sys; from faceswap_gan.cli import COMMANDS, build_parser; "
        "build_parser(); print(len(COMMANDS), 'tensorflow' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["8", "False"]
