"""Checkpoints: everything needed to resume exactly, written atomically.

A checkpoint is a folder `checkpoints/step_0001200/` holding
    config.json                       resolved TrainConfig (or {"arch": ..., ...})
    encoder.weights.h5, decoder_A.weights.h5, decoder_B.weights.h5,
    netDA.weights.h5, netDB.weights.h5
    optimizers.npz                    the three Adams' variables and iteration counts
    state.json                        step, stage, data position, seed-generator state
It is written under a temporary name (`.step_0001200.partial-XXXX`) and renamed into
place; the run's pointer file `checkpoints/latest` is then replaced atomically. A kill
at any moment leaves the previous checkpoint and pointer intact (DESIGN section 3).
Files and folders get the permissions the umask gives (as `open` and `mkdir` would).

Loading tries the pointer's checkpoint first, then the other `step_*` folders, newest
first (backups included): a deleted pointer or a damaged checkpoint falls back to the
newest one that can be read, with a warning naming the damaged file.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

from faceswap_gan import files
from faceswap_gan.config import ArchConfig, LossConfig, LossWeights, from_dict, to_dict
from faceswap_gan.errors import FaceswapError
from faceswap_gan.models.gan import NETWORKS, FaceSwapGAN

POINTER = "latest"
BACKUP_MARK = "BACKUP"  # An empty file marking a kept backup checkpoint.
BROKEN_DIR = (
    "broken"  # checkpoints/broken/: damaged checkpoints set aside, not deleted.
)
WEIGHT_FILES = tuple(f"{net}.weights.h5" for net in NETWORKS)
FILES = WEIGHT_FILES + ("optimizers.npz", "state.json", "config.json")
_NAME = re.compile(r"step_(\d{7,})")
MAX_DETAIL = 160  # Characters of a library's error message quoted in ours.


class BrokenCheckpoint(FaceswapError):
    """A checkpoint file that is missing or cannot be read (truncated, not JSON, a
    damaged archive). `path` is the file."""

    def __init__(self, path: Path, reason: str):
        self.path = Path(path)
        super().__init__(f"{self.path} is broken ({reason}).")


def step_of(folder: str | Path) -> int | None:
    """The step of a checkpoint folder named `step_NNNNNNN`, else None."""
    match = _NAME.fullmatch(Path(folder).name)
    return int(match.group(1)) if match else None


def _summary(error: BaseException) -> str:
    """A library's error message as one short line (Keras pastes whole weight lists)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."


def save_checkpoint(
    model: FaceSwapGAN,
    checkpoints_dir: str | Path,
    state: dict,
    config: dict | None = None,
    keep: set[str] = frozenset(),
) -> Path:
    """Writes a checkpoint of `model` and makes it the latest; returns its folder.

    Older `step_*` folders are then deleted, except those in `keep`; newer ones (left
    by a run that was resumed from an earlier checkpoint) are never deleted.

    Args:
        model: FaceSwapGAN, compiled (its optimizers are saved too).
        checkpoints_dir: folder holding the checkpoint folders and the `latest` pointer.
        state: JSON-ready dict; must hold "step" (int). Saved as state.json.
        config: JSON-ready config dict; defaults to the model's arch/loss/weights.
        keep: folder names (besides the new one) not to delete, e.g. backups.

    Returns:
        Path of the checkpoint folder.

    Raises:
        OSError: the folder cannot be written (a full disk: the previous checkpoint
            and pointer are left intact, the partial folder removed).
    """
    checkpoints_dir = Path(checkpoints_dir)
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    step = int(state["step"])
    name = f"step_{step:07d}"
    final = checkpoints_dir / name
    if (final / "state.json").is_file():  # this step is saved already (same weights)
        files.write_text(checkpoints_dir / POINTER, name + "\n")
        return final
    with files.atomic_output(final) as tmp:  # renamed when complete, else removed
        tmp.mkdir()  # mkdir, not mkdtemp: the umask's permissions
        for net in NETWORKS:
            getattr(model, net).save_weights(tmp / f"{net}.weights.h5")
        np.savez(tmp / "optimizers.npz", **_optimizer_arrays(model))
        state = {
            **state,
            "seed_state": np.asarray(model.seed_generator.state).tolist(),
        }
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
        (tmp / "config.json").write_text(
            json.dumps(config or model_config(model), indent=2)
        )
        if final.exists():  # an incomplete folder of this name (no state.json)
            files.remove(final)
    files.write_text(checkpoints_dir / POINTER, name + "\n")
    for old in checkpoints_dir.glob("step_*"):
        old_step = step_of(old)
        if old_step is not None and old_step < step and old.name not in keep:
            files.remove(old)
    remove_partial_writes(checkpoints_dir)
    return final


def remove_partial_writes(checkpoints_dir: str | Path) -> list[Path]:
    """Deletes what killed checkpoint writes left in `checkpoints_dir`: hidden
    `.step_*` folders (tens of MB each) and temporary pointer files; returns them.

    Only call it while holding the run's lock (another process may be writing)."""
    checkpoints_dir = Path(checkpoints_dir)
    if not checkpoints_dir.is_dir():
        return []
    stale = [
        p
        for p in checkpoints_dir.iterdir()
        if p.name.startswith((".step_", f".{POINTER}."))
    ]
    for path in stale:
        files.remove(path)
    return stale


def model_config(model: FaceSwapGAN) -> dict:
    """{"arch", "loss", "loss_weights"} of `model`, JSON-ready."""
    return {
        "arch": to_dict(model.arch),
        "loss": to_dict(model.loss_config),
        "loss_weights": to_dict(model.loss_weights),
    }


def _optimizer_arrays(model) -> dict:
    arrays = {}
    for prefix, optimizer in model.optimizers.items():
        for i, variable in enumerate(optimizer.variables):
            arrays[f"{prefix}_{i:04d}"] = np.asarray(variable)
    return arrays


def candidates(path: str | Path) -> list[Path]:
    """Checkpoint folders to try at `path`, in order.

    A checkpoint folder (holding encoder.weights.h5 or state.json) is itself the only
    one. For a run folder or a `checkpoints/` folder: the `latest` pointer's folder
    first, then every other `step_*` folder, newest first (backups included).

    Returns:
        list of folders; empty when there is no checkpoint there.
    """
    path = Path(path)
    if any((path / name).is_file() for name in ("encoder.weights.h5", "state.json")):
        return [path]
    for folder in (path / "checkpoints", path):
        steps = sorted(
            (p for p in folder.glob("step_*") if p.is_dir() and step_of(p) is not None),
            key=step_of,
            reverse=True,
        )
        pointed = []
        pointer = folder / POINTER
        if pointer.is_file():
            try:
                target = folder / pointer.read_text().strip()
            except (OSError, UnicodeDecodeError):
                target = None
            if target is not None and target in steps:
                pointed = [target]
        if steps:
            return pointed + [p for p in steps if p not in pointed]
    return []


def read_json(path: str | Path, what: str) -> dict:
    """A checkpoint's JSON file as a dict.

    Raises:
        BrokenCheckpoint: missing, unreadable, not JSON or not an object.
    """
    path = Path(path)
    if not path.is_file():
        raise BrokenCheckpoint(path, "missing")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BrokenCheckpoint(path, f"not readable JSON: {_summary(error)}") from error
    if not isinstance(data, dict):
        raise BrokenCheckpoint(path, f"not a JSON object of {what}")
    return data


def inspect_checkpoint(checkpoint: str | Path) -> tuple[dict, dict]:
    """Reads a checkpoint folder's state.json and config.json and checks that its
    other files exist and open (cheap: HDF5 and zip check their size at open, which
    finds truncated files; the weights themselves are read when loaded).

    Args:
        checkpoint: a checkpoint folder.

    Returns:
        (state dict, config dict).

    Raises:
        BrokenCheckpoint: a file is missing, or state.json / config.json cannot be
            read or lacks its step / arch (naming the file).
    """
    checkpoint = Path(checkpoint)
    for name in FILES:
        if not (checkpoint / name).is_file():
            raise BrokenCheckpoint(checkpoint / name, "missing")
    import zipfile

    import h5py

    for name in WEIGHT_FILES:
        try:
            with h5py.File(checkpoint / name, "r"):
                pass
        except Exception as error:  # OSError of several kinds from HDF5
            raise BrokenCheckpoint(
                checkpoint / name, f"not a readable weights file: {_summary(error)}"
            ) from error
    try:
        with zipfile.ZipFile(checkpoint / "optimizers.npz"):
            pass
    except (OSError, zipfile.BadZipFile) as error:
        raise BrokenCheckpoint(
            checkpoint / "optimizers.npz",
            f"not a readable optimizer archive: {_summary(error)}",
        ) from error
    state = read_json(checkpoint / "state.json", "the training state")
    if not isinstance(state.get("step"), int):
        raise BrokenCheckpoint(checkpoint / "state.json", "no integer step")
    config = read_config(checkpoint)
    return state, config


def find_checkpoint(path: str | Path) -> Path:
    """Resolves a run folder, a `checkpoints/` folder or a checkpoint folder to the
    checkpoint folder to load: the pointer's, else the newest other one whose
    state.json and config.json can be read and whose files all exist. A skipped
    broken checkpoint is named in a warning on stderr.

    Returns:
        Path of the checkpoint folder.

    Raises:
        FileNotFoundError: no checkpoint there (says what was looked for).
        FaceswapError: checkpoints there, none loadable (naming each broken file).
    """
    return first_loadable(path)[0]


def weight_arrays(path: str | Path) -> tuple[Path, list[np.ndarray]]:
    """Every weight array saved in a checkpoint, in a fixed order (the networks in
    `NETWORKS` order, each file's datasets in HDF5 visiting order), read without
    building a model: for comparing two runs' weights.

    Args:
        path: a run folder, a `checkpoints/` folder or a checkpoint folder
            (resolved by `find_checkpoint`).

    Returns:
        (the checkpoint folder, list of float32 arrays of each weight's shape).

    Raises:
        FileNotFoundError, FaceswapError: as `find_checkpoint`.
    """
    import h5py

    folder = find_checkpoint(path)
    values: list[np.ndarray] = []
    for net in NETWORKS:
        with h5py.File(folder / f"{net}.weights.h5", "r") as file:
            file.visititems(
                lambda _, item: (
                    values.append(np.array(item)) if hasattr(item, "shape") else None
                )
            )
    return folder, values


def first_loadable(
    path, skip: tuple = (), earlier: tuple = (), warn: bool = True
) -> tuple[Path, dict, dict, list]:
    """The first of `candidates(path)` (not in `skip`) that `inspect_checkpoint`
    accepts -> (folder, state, config, [BrokenCheckpoint of the folders passed over]).

    Raises:
        FileNotFoundError: no checkpoint at `path` at all.
        FaceswapError: none acceptable; names the broken files (`earlier` ones too).
    """
    everything = candidates(path)
    if not everything:
        raise FileNotFoundError(
            f"No checkpoint at {path}: expected a run folder with checkpoints/step_* "
            f"folders, or a checkpoint folder with encoder.weights.h5 and config.json."
        )
    broken = []
    for folder in (c for c in everything if c not in skip):
        try:
            state, config = inspect_checkpoint(folder)
        except BrokenCheckpoint as error:
            broken.append(error)
            continue
        if broken and warn:
            warn_fallback(broken, folder)
        return folder, state, config, broken
    raise no_loadable(path, list(earlier) + broken)


def warn_fallback(broken: list, taken: Path) -> None:
    """Prints a warning naming the broken files and the checkpoint taken instead."""
    print(
        f"Warning: {'; '.join(str(e).rstrip('.') for e in broken)}. Using {taken} "
        f"instead.",
        file=sys.stderr,
    )


def no_loadable(path, broken: list) -> FaceswapError:
    """The error for a place whose checkpoints are all broken (each one named)."""
    tried = "; ".join(str(e).rstrip(".") for e in broken) or "nothing else to try"
    return FaceswapError(
        f"No loadable checkpoint at {path}: tried {tried}. Restore the files, or start "
        f"a new run (another --run-dir)."
    )


def read_config(checkpoint: str | Path) -> dict:
    """A checkpoint's config.json (a TrainConfig dict, or {"arch", "loss", ...}).

    Raises:
        BrokenCheckpoint: missing, not JSON, or without a valid "arch" section.
    """
    path = Path(checkpoint) / "config.json"
    config = read_json(path, "config fields")
    try:
        from_dict(ArchConfig, config.get("arch"), "arch")
    except FaceswapError as error:
        raise BrokenCheckpoint(path, _summary(error)) from error
    return config


def arch_differences(saved: ArchConfig, current: ArchConfig) -> str:
    """The ArchConfig fields that differ, "norm 'hybrid' saved, 'none' now; ..."."""
    return "; ".join(
        f"{name} {getattr(saved, name)!r} saved, {getattr(current, name)!r} now"
        for name in ArchConfig.__dataclass_fields__
        if getattr(saved, name) != getattr(current, name)
    )


def arch_mismatch(checkpoint: Path, saved: ArchConfig, current: ArchConfig) -> str:
    """One line: the checkpoint, the differing fields and what to do instead."""
    return (
        f"Checkpoint {checkpoint} holds weights of another architecture "
        f"({arch_differences(saved, current)}). To continue the run, resume without "
        f"--preset/--image-size/--norm/--model-capacity/--use-self-attn flags "
        f"(`train --run-dir RUN --resume` uses the run's own config); to train "
        f"another architecture, use a new --run-dir."
    )


def load_weights(
    model: FaceSwapGAN, checkpoint: str | Path, optimizers: bool = True
) -> dict:
    """Loads the five networks into `model` (and, if it is compiled and `optimizers`,
    every optimizer's state and the seed-generator state); returns the saved state.

    Args:
        model: FaceSwapGAN of the checkpoint's architecture.
        checkpoint: a checkpoint folder, or a run / `checkpoints/` folder (resolved
            with `find_checkpoint`).
        optimizers: also restore the optimizers and the seed generator.

    Returns:
        The checkpoint's state.json dict (step, stage, ...).

    Raises:
        BrokenCheckpoint (a FaceswapError): a file is missing or cannot be read
            (truncated, damaged); the message names it. The model may then hold
            part of the checkpoint: load another one (all of it is overwritten).
        FaceswapError: the checkpoint was saved for another architecture (the
            differing fields named), or its files do not fit the model.
    """
    checkpoint = Path(checkpoint)
    if candidates(checkpoint) != [checkpoint]:
        checkpoint = find_checkpoint(checkpoint)
    state, config = inspect_checkpoint(checkpoint)
    saved = from_dict(ArchConfig, config["arch"], "arch")
    if saved != model.arch:
        raise FaceswapError(arch_mismatch(checkpoint, saved, model.arch))
    for net in NETWORKS:
        path = checkpoint / f"{net}.weights.h5"
        try:
            getattr(model, net).load_weights(path)
        except Exception as error:  # Keras raises several types for shape mismatches
            _raise_if_unreadable_h5(path, error)
            raise FaceswapError(
                f"Weights {path} do not fit {net} of {model.arch} (the checkpoint's "
                f"config.json does not match its weights): {_summary(error)}"
            ) from error
    if optimizers and getattr(model, "d_optimizer", None) is not None:
        _restore_optimizers(model, checkpoint)
        try:
            seed = np.asarray(state["seed_state"], dtype="uint32")
            model.seed_generator.state.assign(seed)
        except (KeyError, TypeError, ValueError) as error:
            raise BrokenCheckpoint(
                checkpoint / "state.json", f"bad seed_state: {_summary(error)}"
            ) from error
    return state


def _raise_if_unreadable_h5(path: Path, error: Exception) -> None:
    """Raises BrokenCheckpoint when `path` is not a readable HDF5 file (truncated,
    damaged); returns when it can be read (then the failure was a mismatch)."""
    import h5py

    def read(_, obj):
        if isinstance(obj, h5py.Dataset):
            obj[()]

    try:
        with h5py.File(path, "r") as handle:
            handle.visititems(read)
    except Exception as h5_error:
        raise BrokenCheckpoint(
            path, f"not a readable weights file: {_summary(h5_error)}"
        ) from error


def _restore_optimizers(model, checkpoint: Path) -> None:
    path = checkpoint / "optimizers.npz"
    try:
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as error:  # BadZipFile, zlib.error, EOFError, ValueError ...
        raise BrokenCheckpoint(
            path, f"not a readable optimizer archive: {_summary(error)}"
        ) from error
    for prefix, optimizer in model.optimizers.items():
        variables = optimizer.variables
        keys = sorted(k for k in arrays if k.startswith(prefix + "_"))
        if len(keys) != len(variables):
            raise FaceswapError(
                f"Optimizer state {path} has {len(keys)} variables for {prefix}; "
                f"the model's optimizer has {len(variables)} (a checkpoint of another "
                f"optimizer setting, e.g. --mixed-precision)."
            )
        for key, variable in zip(keys, variables):
            if tuple(arrays[key].shape) != tuple(variable.shape):
                raise FaceswapError(
                    f"Optimizer state {path} does not fit the model: {key} has shape "
                    f"{arrays[key].shape}, the variable {tuple(variable.shape)}."
                )
            variable.assign(arrays[key])


def load_model(path: str | Path, perceptual_model=None) -> FaceSwapGAN:
    """Builds a FaceSwapGAN from a run or checkpoint folder and loads its weights.

    For a run folder, a damaged newest checkpoint falls back to the next one that
    loads (a warning names the damaged file and the checkpoint taken).

    Args:
        path: run folder (uses checkpoints/latest, else the newest `step_*`) or a
            checkpoint folder.
        perceptual_model: optional, only needed to continue training.

    Returns:
        The model (not compiled), ready for `swap`.

    Raises:
        FileNotFoundError: `path` does not exist, or holds no checkpoint (the message
            says which, and what to give instead).
        FaceswapError: no checkpoint there can be read (each broken file named), or
            the weights do not fit the saved architecture.
    """
    if not Path(path).exists():
        raise FileNotFoundError(
            f"No checkpoint at {path}: it does not exist; give a run folder "
            "(runs/NAME) or a checkpoint folder (runs/NAME/checkpoints/step_N)."
        )
    skipped: list = []
    errors: list = []
    while True:
        checkpoint, _, config, broken = first_loadable(path, tuple(skipped), errors)
        errors += broken
        try:
            model = FaceSwapGAN(
                from_dict(ArchConfig, config["arch"], "arch"),
                from_dict(LossConfig, config.get("loss", {}), "loss"),
                from_dict(LossWeights, config.get("loss_weights", {}), "loss_weights"),
                perceptual_model,
            )
        except FaceswapError as error:
            raise FaceswapError(f"{checkpoint / 'config.json'}: {error}") from error
        try:
            load_weights(model, checkpoint, optimizers=False)
        except BrokenCheckpoint as error:
            if candidates(path) == [checkpoint]:
                raise
            errors.append(error)
            skipped += [b.path.parent for b in broken] + [checkpoint]
            print(f"Warning: {error} Trying the next checkpoint.", file=sys.stderr)
            continue
        return model
