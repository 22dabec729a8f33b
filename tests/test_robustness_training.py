"""Training never loses or half-writes a run: checkpoint fallback, one process per run
folder, resume with the run's own config, checked options and config files, repaired
metrics, umask permissions, one-line errors. Real crops, real checkpoints; the damage
of a kill is made on disk (deleted pointer, truncated files, partial lines)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from faceswap_gan import checkpoints
from faceswap_gan.cli import main
from faceswap_gan.config import ArchConfig, LossConfig, TrainConfig, from_json
from faceswap_gan.errors import FaceswapError
from faceswap_gan.models.gan import FaceSwapGAN
from faceswap_gan.previews import read_metrics
from faceswap_gan.training import build_model, train


def tiny(faces_a, faces_b, run_dir, **overrides):
    return TrainConfig.from_preset(
        "tiny",
        faces_a=str(faces_a),
        faces_b=str(faces_b),
        run_dir=str(run_dir),
        **overrides,
    )


@pytest.fixture(scope="module")
def base_run(faces_a, faces_b, tmp_path_factory):
    """A tiny run stopped at step 8: checkpoints step_6 (backup) and step_8 (latest),
    metrics at steps 4 and 8. Tests work on copies (`copy_run`)."""
    run_dir = tmp_path_factory.mktemp("base") / "run"
    config = tiny(
        faces_a, faces_b, run_dir, iterations=20, display_iters=4, backup_iters=6
    )
    train(config, progress=False, stop_at=8)
    ckpts = run_dir / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("step_*")) == [
        "step_0000006",
        "step_0000008",
    ]
    return run_dir


def saved_config(run_dir):
    """The TrainConfig saved in run_dir/config.json, for this copy of the run."""
    data = json.loads((run_dir / "config.json").read_text())
    return TrainConfig(**{**data, "run_dir": str(run_dir)})


def copy_run(base_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(base_run, run_dir)
    return run_dir


def listing(folder):
    """Every path under `folder` with its size and mtime (to see any change)."""
    return sorted(
        (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
    )


def cli(*args):
    return main(["train", *map(str, args), "--no-progress"])


# 1 + 3 + 5 + 6: a deleted pointer, a partial and a duplicate metrics line, a killed
# write's temporary folder; `train --run-dir R --resume` alone continues the run.
@pytest.mark.slow
def test_resume_alone_after_a_kill_falls_back_cleans_and_follows_umask(
    base_run, tmp_path, capsys
):
    run_dir = copy_run(base_run, tmp_path)
    ckpts = run_dir / "checkpoints"
    (ckpts / "latest").unlink()
    metrics = run_dir / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [4, 8]
    before = {json.loads(line)["step"]: line for line in lines}
    # A killed run's leftovers: a duplicate line, a line after the checkpoint and a
    # half-written one; a temporary checkpoint folder of tens of MB.
    metrics.write_text(
        "\n".join(lines + [lines[1], lines[1].replace('"step": 8', '"step": 11')])
        + '\n{"step": 12, "stage": 1, "g_a/rec'
    )
    stale = ckpts / ".step_0000012.xyz"
    stale.mkdir()
    (stale / "encoder.weights.h5").write_bytes(b"\0" * 1000)
    old_mask = os.umask(0o027)
    try:
        assert cli("--run-dir", run_dir, "--resume", "--stop-at", 12) == 0
    finally:
        os.umask(old_mask)
    out, err = capsys.readouterr()
    assert f"Resuming from {ckpts / 'step_0000008'} (step 8)" in out
    assert "damaged line" in err and str(metrics) in err
    state = json.loads((ckpts / "step_0000012" / "state.json").read_text())
    assert state["step"] == 12
    assert (ckpts / "latest").read_text().strip() == "step_0000012"
    assert sorted(p.name for p in ckpts.iterdir()) == [
        "latest",
        "step_0000006",  # the backup
        "step_0000012",
    ]
    rows = read_metrics(metrics)
    assert [r["step"] for r in rows] == [4, 8, 12]
    lines = metrics.read_text().splitlines()
    assert lines[:2] == [before[4], before[8]]  # the resumed run's history, kept
    # The saved config was used: the tiny run, not the default preset.
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["arch"]["latent_dim"] == 128 and saved["batch_size"] == 2
    # Permissions follow the umask (0o027), not tempfile's 0o700 / 0o600.
    for path in (ckpts / "step_0000012", ckpts / "step_0000012" / "state.json"):
        expected = 0o750 if path.is_dir() else 0o640
        assert path.stat().st_mode & 0o777 == expected, path
    for path in (ckpts / "latest", run_dir / "config.json", metrics):
        assert path.stat().st_mode & 0o777 == 0o640, path
    assert not (run_dir / "train.pid").exists()  # the lock was released


# 1: a broken newest checkpoint (truncated weights) falls back to the backup and
# is set aside, never deleted; the resumed run saves that step anew.
@pytest.mark.slow
def test_resume_skips_a_truncated_checkpoint_and_keeps_it(base_run, tmp_path, capsys):
    run_dir = copy_run(base_run, tmp_path)
    ckpts = run_dir / "checkpoints"
    # Damage in the middle of the optimizer state: the archive opens, the read fails
    # (CRC), after the model was built and the weights loaded.
    archive = ckpts / "step_0000008" / "optimizers.npz"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    archive.write_bytes(bytes(data))
    train(saved_config(run_dir), resume=True, progress=False, stop_at=8)
    out, err = capsys.readouterr()
    assert str(archive) in err and "broken" in err
    assert f"Using {ckpts / 'step_0000006'} instead" in err
    assert f"Resuming from {ckpts / 'step_0000006'} (step 6)" in out
    kept = ckpts / "broken" / "step_0000008" / "optimizers.npz"
    assert kept.read_bytes() == bytes(data)  # set aside, not deleted
    state = json.loads((ckpts / "step_0000008" / "state.json").read_text())
    assert state["step"] == 8 and checkpoints.find_checkpoint(run_dir).name == (
        "step_0000008"
    )
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")] == [4, 8]


def _damage(folder, kind):
    if kind == "state.json":
        (folder / "state.json").write_text('{"step": 8, "sta')
    elif kind == "config.json":
        (folder / "config.json").write_text("[1, 2]")
    elif kind == "optimizers.npz":
        path = folder / "optimizers.npz"
        data = bytearray(path.read_bytes())  # opens; a member fails its CRC
        data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
        path.write_bytes(bytes(data))
    elif kind == "decoder_A.weights.h5":
        path = folder / kind
        path.write_bytes(path.read_bytes()[:-5000])


# 1: each broken file is named; find_checkpoint / load_model / load_weights raise
# FaceswapError (no KeyError, BadZipFile, JSONDecodeError), or fall back for a run.
@pytest.mark.parametrize(
    "kind", ["state.json", "config.json", "optimizers.npz", "decoder_A.weights.h5"]
)
@pytest.mark.slow
def test_broken_checkpoint_files_are_named(base_run, tmp_path, kind, capsys):
    run_dir = copy_run(base_run, tmp_path)
    ckpts = run_dir / "checkpoints"
    newest = ckpts / "step_0000008"
    _damage(newest, kind)
    if kind in ("state.json", "config.json"):  # seen without loading weights
        assert checkpoints.find_checkpoint(run_dir) == ckpts / "step_0000006"
        assert str(newest / kind) in capsys.readouterr().err
        with pytest.raises(FaceswapError, match=re.escape(str(newest / kind))):
            checkpoints.load_model(newest)
        _damage(ckpts / "step_0000006", kind)
        with pytest.raises(FaceswapError, match="No loadable checkpoint") as error:
            checkpoints.find_checkpoint(run_dir)
        assert str(newest / kind) in str(error.value)
        assert str(ckpts / "step_0000006" / kind) in str(error.value)
        return
    config = saved_config(run_dir)
    model = build_model(config)
    with pytest.raises(
        checkpoints.BrokenCheckpoint, match=re.escape(str(newest / kind))
    ):
        checkpoints.load_weights(model, newest)
    assert checkpoints.load_weights(model, ckpts / "step_0000006")["step"] == 6
    if kind.endswith(".h5"):  # convert / evaluate: load_model of the run falls back
        model = checkpoints.load_model(run_dir)
        assert model.arch == config.arch
        err = capsys.readouterr().err
        assert str(newest / kind) in err
        assert f"Using {ckpts / 'step_0000006'} instead" in err


# 2: one training process per run folder; the lock is released when its holder
# dies, even by SIGKILL.
@pytest.mark.slow
def test_second_train_on_a_locked_run_names_the_holder(base_run, tmp_path, capsys):
    from faceswap_gan.training import run_lock

    run_dir = copy_run(base_run, tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from faceswap_gan.training import run_lock
                with run_lock({str(run_dir)!r}):
                    print("held", flush=True)
                    time.sleep(300)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert (run_dir / "train.pid").read_text().strip() == str(holder.pid)
        before = listing(run_dir)
        assert cli("--run-dir", run_dir, "--resume") == 1
        err = capsys.readouterr().err
        assert f"PID {holder.pid}" in err and "in use" in err and str(run_dir) in err
        assert listing(run_dir) == before
        with pytest.raises(FaceswapError, match=f"PID {holder.pid}"):
            with run_lock(run_dir):
                pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    with run_lock(run_dir):  # the OS released the dead holder's lock
        assert (run_dir / "train.pid").read_text().strip() == str(os.getpid())
    assert not (run_dir / "train.pid").exists()


# 3: flags on --resume must match the run's saved config; nothing is written when
# they do not. Fields that do not change the run's course may differ.
@pytest.mark.slow
def test_refused_resume_changes_nothing_and_names_each_flag(base_run, tmp_path, capsys):
    run_dir = copy_run(base_run, tmp_path)
    config_json = (run_dir / "config.json").read_bytes()
    before = listing(run_dir / "checkpoints")
    for args, names in (
        (["--preset", "standard"], ["--preset standard (arch.norm)", "'hybrid'"]),
        (["--image-size", 128], ["--image-size", "(64, 64, 3)", "(128, 128, 3)"]),
        (["--batch-size", 4, "--lr-factor", 2], ["--batch-size", "--lr-factor"]),
        (["--iterations", 30], ["--iterations (iterations): saved 20, given 30"]),
        (["--eval-every", 4], ["--eval-every"]),
    ):
        assert cli("--run-dir", run_dir, "--resume", *args) == 1, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Nothing was changed" in err, err
        for name in names:
            assert name in err, (name, err)
        assert (run_dir / "config.json").read_bytes() == config_json
        assert listing(run_dir / "checkpoints") == before
    # The train() API refuses the same way (and names the architecture fields).
    saved = saved_config(run_dir)
    other = TrainConfig(**{**saved.__dict__, "arch": ArchConfig(norm="none")})
    with pytest.raises(FaceswapError, match="another architecture") as error:
        train(other, resume=True, progress=False)
    assert "norm 'hybrid' saved, 'none' now" in str(error.value)
    assert "latent_dim 128 saved, None now" in str(error.value)
    assert "use_self_attn" not in str(error.value)  # only the differing fields
    assert "--run-dir" in str(error.value) and len(str(error.value)) < 600
    assert (run_dir / "config.json").read_bytes() == config_json
    assert listing(run_dir / "checkpoints") == before
    # What may change on resume: the periods, the face folders (moved), TensorBoard.
    capsys.readouterr()
    assert (
        cli(
            "--run-dir",
            run_dir,
            "--resume",
            "--dry-run",
            "--display-iters",
            2,
            "--faces-a",
            tmp_path,
        )
        == 0
    )
    out = capsys.readouterr().out
    resolved = json.loads(out[out.index("{\n") : out.index("\n}\n") + 2])
    assert resolved["display_iters"] == 2 and resolved["arch"]["norm"] == "hybrid"
    assert resolved["faces_a"] == str(tmp_path)


# 4: --stop-at and float options are checked.
@pytest.mark.slow
def test_stop_at_and_non_finite_floats_are_refused(base_run, tmp_path, capsys):
    run_dir = copy_run(base_run, tmp_path)
    before = listing(run_dir)
    for stop_at in (0, -1):
        assert cli("--run-dir", run_dir, "--resume", "--stop-at", stop_at) == 1
        assert "--stop-at" in capsys.readouterr().err
    assert cli("--run-dir", run_dir, "--resume", "--stop-at", 8) == 1
    err = capsys.readouterr().err
    assert "nothing to train" in err and "step 8" in err
    for value in ("nan", "inf", "-inf"):
        assert cli("--run-dir", run_dir, f"--lr-factor={value}", "--resume") == 1
        assert "--lr-factor must be a finite number" in capsys.readouterr().err
    assert listing(run_dir) == before
    with pytest.raises(FaceswapError, match="loss.lr_factor must be a finite"):
        TrainConfig(loss=LossConfig(lr_factor=float("nan")))
    with pytest.raises(FaceswapError, match="loss_weights.w_D must be a finite"):
        TrainConfig(loss_weights={"w_D": float("inf")})
    with pytest.raises(FaceswapError, match="stop_at"):
        train(TrainConfig.from_preset("tiny", run_dir=str(run_dir)), stop_at=0)


# 7: --config files are read strictly, every problem named with the file.
def test_bad_config_files_name_the_file_and_the_field(
    faces_a, faces_b, tmp_path, capsys
):
    good = ["--faces-a", faces_a, "--faces-b", faces_b, "--run-dir", tmp_path / "r"]
    typo = tmp_path / "typo.json"
    typo.write_text('{"loss": {"use_pll": true}, "iterations": 50}')
    assert cli(*good, "--config", typo, "--dry-run") == 1
    err = capsys.readouterr().err
    assert str(typo) in err and "loss.use_pll" in err and "'use_PL'" in err
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    invalid = tmp_path / "invalid.json"
    invalid.write_text('{"iterations": 5,}')
    nested = tmp_path / "nested.json"
    nested.write_text('{"arch": "tiny"}')
    for path, words in (
        (listed, "JSON object"),
        (invalid, "not valid JSON"),
        (tmp_path, "is a folder"),
        (nested, "arch must be an object of ArchConfig fields"),
    ):
        assert cli(*good, "--config", path, "--dry-run") == 1
        err = capsys.readouterr().err
        assert str(path) in err and words in err and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()
    with pytest.raises(FaceswapError, match=r"augment\.flip"):
        from_json(TrainConfig, '{"augment": {"flip": 0.5}}')


# 8: clear messages for missing face folders, too few faces to hold out, and
# weights that do not fit (no Keras weight listing).
@pytest.mark.slow
def test_clear_messages_for_faces_and_mismatched_weights(
    base_run, faces_a, faces_b, tmp_path, capsys
):
    assert cli("--faces-b", faces_b, "--run-dir", tmp_path / "r") == 1
    err = capsys.readouterr().err
    assert "--faces-a is required: a folder of person A's face crops" in err
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(sorted(faces_a.iterdir())[0], one)
    args = ["--preset", "tiny", "--faces-a", one, "--faces-b", faces_b]
    assert cli(*args, "--run-dir", tmp_path / "r", "--eval-every", 2) == 1
    err = capsys.readouterr().err
    assert f"{one} has 1 face(s)" in err and "at least 2" in err
    assert "--eval-every 0" in err
    assert not (tmp_path / "r").exists()  # refused before anything is written
    # A checkpoint whose config.json does not match its weights.
    run_dir = copy_run(base_run, tmp_path)
    newest = run_dir / "checkpoints" / "step_0000008"
    config = json.loads((newest / "config.json").read_text())
    config["arch"]["latent_dim"] = 256
    (newest / "config.json").write_text(json.dumps(config))
    with pytest.raises(FaceswapError, match="do not fit") as error:
        checkpoints.load_model(newest)
    message = str(error.value)
    assert "encoder.weights.h5" in message and len(message) < 600, len(message)
    # Another architecture: only the differing fields, the checkpoint, the remedy.
    other = FaceSwapGAN(ArchConfig((64, 64, 3), True, "hybrid", "lite"))
    with pytest.raises(FaceswapError, match="another architecture") as error:
        checkpoints.load_weights(other, run_dir / "checkpoints" / "step_0000006")
    message = str(error.value)
    assert "latent_dim 128 saved, None now" in message and "hybrid" not in message
    assert "step_0000006" in message and "--run-dir" in message
    assert "\n" not in message and len(message) < 600
