"""Checkpoints: everything needed to resume exactly, written atomically.

A checkpoint is a folder `checkpoints/step_0001200/` holding
    config.json                       resolved TrainConfig (or {"arch": ..., ...})
    encoder.weights.h5, decoder_A.weights.h5, decoder_B.weights.h5,
    netDA.weights.h5, netDB.weights.h5
    optimizers.npz                    the three Adams' variables and iteration counts
    state.json                        step, stage, data position, seed-generator state
It is written under a temporary name and renamed into place; the run's pointer file
`checkpoints/latest` is then replaced atomically (`os.replace`). A kill at any moment
leaves the previous checkpoint and pointer intact (DESIGN section 3).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from faceswap_gan.config import ArchConfig, LossConfig, LossWeights, to_dict
from faceswap_gan.errors import FaceswapError
from faceswap_gan.models.gan import NETWORKS, FaceSwapGAN

POINTER = "latest"


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(
    model: FaceSwapGAN,
    checkpoints_dir: str | Path,
    state: dict,
    config: dict | None = None,
    keep: set[str] = frozenset(),
) -> Path:
    """Writes a checkpoint of `model` and makes it the latest; returns its folder.

    Args:
        model: FaceSwapGAN, compiled (its optimizers are saved too).
        checkpoints_dir: folder holding the checkpoint folders and the `latest` pointer.
        state: JSON-ready dict; must hold "step" (int). Saved as state.json.
        config: JSON-ready config dict; defaults to the model's arch/loss/weights.
        keep: folder names (besides the new one) not to delete, e.g. backups.
    """
    checkpoints_dir = Path(checkpoints_dir)
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    name = f"step_{int(state['step']):07d}"
    final = checkpoints_dir / name
    if (final / "state.json").is_file():  # this step is saved already (same weights)
        _atomic_write_text(checkpoints_dir / POINTER, name + "\n")
        return final
    tmp = Path(tempfile.mkdtemp(dir=checkpoints_dir, prefix=f".{name}."))
    for net in NETWORKS:
        getattr(model, net).save_weights(tmp / f"{net}.weights.h5")
    np.savez(tmp / "optimizers.npz", **_optimizer_arrays(model))
    state = {**state, "seed_state": np.asarray(model.seed_generator.state).tolist()}
    (tmp / "state.json").write_text(json.dumps(state, indent=2))
    (tmp / "config.json").write_text(
        json.dumps(config or model_config(model), indent=2)
    )
    if final.exists():  # an incomplete folder of this name (no state.json)
        shutil.rmtree(final)
    os.replace(tmp, final)
    _atomic_write_text(checkpoints_dir / POINTER, name + "\n")
    for old in checkpoints_dir.glob("step_*"):
        if old.name != name and old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)
    for stale in checkpoints_dir.glob(".step_*"):  # leftovers of killed writes
        shutil.rmtree(stale, ignore_errors=True)
    return final


def model_config(model: FaceSwapGAN) -> dict:
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


def find_checkpoint(path: str | Path) -> Path:
    """Resolves a run folder, a `checkpoints/` folder or a checkpoint folder to the
    checkpoint folder to load.

    Raises:
        FileNotFoundError: nothing loadable there (says what was looked for).
    """
    path = Path(path)
    if (path / "encoder.weights.h5").is_file():
        return path
    for folder in (path / "checkpoints", path):
        pointer = folder / POINTER
        if pointer.is_file():
            target = folder / pointer.read_text().strip()
            if (target / "encoder.weights.h5").is_file():
                return target
    raise FileNotFoundError(
        f"No checkpoint at {path}: expected a run folder with checkpoints/latest, or a "
        f"checkpoint folder with encoder.weights.h5 and config.json."
    )


def read_config(checkpoint: str | Path) -> dict:
    return json.loads((Path(checkpoint) / "config.json").read_text())


def load_weights(
    model: FaceSwapGAN, checkpoint: str | Path, optimizers: bool = True
) -> dict:
    """Loads the five networks into `model` (and, if it is compiled and `optimizers`,
    every optimizer's state and the seed-generator state); returns the saved state.

    Raises:
        ValueError: the checkpoint was saved for another architecture (both named), or
            its files do not fit the model.
    """
    checkpoint = find_checkpoint(checkpoint)
    saved = ArchConfig(**read_config(checkpoint)["arch"])
    if saved != model.arch:
        raise FaceswapError(
            f"Checkpoint {checkpoint} holds weights of another architecture: "
            f"saved {saved}, model {model.arch}. Build the model with the "
            f"saved ArchConfig (faceswap_gan.load_model does)."
        )
    for net in NETWORKS:
        try:
            getattr(model, net).load_weights(checkpoint / f"{net}.weights.h5")
        except Exception as error:  # Keras raises several types for shape mismatches
            raise FaceswapError(
                f"Weights {checkpoint / (net + '.weights.h5')} do not fit "
                f"{net} of {model.arch}: {error}"
            ) from error
    state = json.loads((checkpoint / "state.json").read_text())
    if optimizers and getattr(model, "d_optimizer", None) is not None:
        _restore_optimizers(model, checkpoint)
        model.seed_generator.state.assign(
            np.asarray(state["seed_state"], dtype="uint32")
        )
    return state


def _restore_optimizers(model, checkpoint: Path) -> None:
    arrays = np.load(checkpoint / "optimizers.npz")
    for prefix, optimizer in model.optimizers.items():
        variables = optimizer.variables
        keys = sorted(k for k in arrays.files if k.startswith(prefix + "_"))
        if len(keys) != len(variables):
            raise FaceswapError(
                f"Optimizer state in {checkpoint} has {len(keys)} variables; "
                f"the model's optimizer has {len(variables)}."
            )
        for key, variable in zip(keys, variables):
            variable.assign(arrays[key])


def load_model(path: str | Path, perceptual_model=None) -> FaceSwapGAN:
    """Builds a FaceSwapGAN from a run or checkpoint folder and loads its weights.

    Args:
        path: run folder (uses checkpoints/latest) or a checkpoint folder.
        perceptual_model: optional, only needed to continue training.

    Returns:
        The model (not compiled), ready for `swap`.

    Raises:
        FileNotFoundError: no checkpoint at `path`.
        ValueError: the weights do not fit the saved architecture.
    """
    checkpoint = find_checkpoint(path)
    config = read_config(checkpoint)
    model = FaceSwapGAN(
        ArchConfig(**config["arch"]),
        LossConfig(**config.get("loss", {})),
        LossWeights(**config.get("loss_weights", {})),
        perceptual_model,
    )
    load_weights(model, checkpoint, optimizers=False)
    return model
