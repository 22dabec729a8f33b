"""`python -m faceswap_gan demo`: extract -> train -> convert on the bundled clips.

One end-to-end run with tiny settings in a subprocess (as a user runs it), then a
second run on the same folder that must reuse the faces and resume the training.
"""

import json
import os
import subprocess
import sys

import av
import pytest

from faceswap_gan.demo import demo_train_config, run_demo
from faceswap_gan.images import list_images
from faceswap_gan.video import SYNTHETIC_METADATA, read_metadata

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def _demo(output, *flags):
    command = [
        sys.executable,
        "-m",
        "faceswap_gan",
        "demo",
        "--output",
        str(output),
        "--preset",
        "tiny",
        "--max-frames",
        "10",
        "--no-progress",
        *flags,
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=ENV)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_demo_extracts_trains_converts_and_resumes(tmp_path):
    out = tmp_path / "demo"
    stdout = _demo(out, "--iterations", "4")
    video = out / "person_a_to_b.mp4"
    run_dir = out / "run-tiny"
    for path in (video, run_dir / "previews", run_dir / "loss.png"):
        assert str(path) in stdout  # the demo says where its results are
    # ... and how the swap scores: every one of the 10 frames has a face.
    assert "closer to B than the source face on" in stdout
    assert "% of 10 frames with a face" in stdout
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert len(container.streams.audio) == 1
        assert (stream.width, stream.height) == (2 * 480, 480)  # original | swap
        assert sum(1 for _ in container.decode(video=0)) == 10
    tags = read_metadata(video)
    assert all(tags.get(k) == str(v) for k, v in SYNTHETIC_METADATA.items())
    assert (run_dir / "previews" / "latest.png").is_file()
    assert sorted(p.name for p in (run_dir / "previews").glob("step_*")) == [
        f"step_{s:07d}.png" for s in (1, 2, 3, 4)
    ]  # display_iters = max(1, 4 // 10)
    faces = out / "faces_a" / "faces" / "aligned_faces"
    assert len(list_images(faces)) == 5  # every 2nd of the first 10 frames
    masks = out / "faces_a" / "faces" / "binary_masks_eyes"
    assert [p.name for p in list_images(masks)] == [p.name for p in list_images(faces)]
    stamps = {p: p.stat().st_mtime_ns for p in list_images(faces)}

    _demo(out, "--iterations", "6")  # same folder: reuse the faces, resume training
    assert {p: p.stat().st_mtime_ns for p in list_images(faces)} == stamps
    steps = [
        json.loads(line)["step"]
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_demo_train_config_points_at_the_extracted_faces(tmp_path):
    config = demo_train_config(tmp_path, iterations=50, preset="lite")
    assert config.faces_a == str(tmp_path / "faces_a" / "faces" / "aligned_faces")
    assert config.masks_b == str(tmp_path / "faces_b" / "faces" / "binary_masks_eyes")
    assert config.run_dir == str(tmp_path / "run-lite")
    assert (config.iterations, config.display_iters) == (50, 5)
    # The demo's documented choices (faceswap_gan.demo module doc).
    assert config.arch.model_capacity == "lite" and not config.arch.use_self_attn
    assert config.arch.norm == "instancenorm_v22" and config.schedule == "constant"
    assert config.loss.use_mask_hinge_loss and config.loss.m_mask == 0.5
    assert config.loss.lr_factor == 5.0 and not config.loss.use_PL


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"iterations": 0}, "iterations must be >= 1"),
        ({"every": 0}, "every must be >= 1"),
        ({"max_frames": 0}, "max_frames must be >= 1"),
        ({"preset": "huge"}, "preset must be one of"),
        ({"output_type": "quad"}, "output_type must be one of"),
    ],
)
def test_run_demo_rejects_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        run_demo(tmp_path / "demo", **kwargs)
    assert not (tmp_path / "demo").exists()  # nothing written before the check


def test_demo_command_reports_bad_arguments(tmp_path, capsys):

    from faceswap_gan.cli import main

    assert main(["demo", "--output", str(tmp_path), "--every", "0"]) == 1
    assert "demo: error: every must be >= 1" in capsys.readouterr().err
