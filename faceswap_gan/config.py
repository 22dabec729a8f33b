"""Configuration: one frozen dataclass per component, JSON round trip, presets.

Names follow the original faceswap-GAN v2.2 notebooks (`arch_config`, `loss_weights`,
`loss_config`) so that a user's `ArchConfig(**arch_config)` keeps working. Defaults are
the original's (docs REFERENCE 1.2 to 1.4). Every invalid value raises `ValueError`
naming the allowed values.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from faceswap_gan import files
from faceswap_gan.errors import FaceswapError

IMAGE_SIZES = (64, 128, 256)
NORMS = (
    "instancenorm",
    "instancenorm_v22",
    "batchnorm",
    "layernorm",
    "groupnorm",
    "none",
    "hybrid",
)
MODEL_CAPACITIES = ("standard", "lite")
INIT_SCHEMES = ("stable", "v2.2")
GAN_TRAININGS = ("mixup_LSGAN", "relativistic_avg_LSGAN")
PERCEPTUAL_BACKENDS = ("face_api", "vggface")


# Cosine similarity of two L2-normalised MobileFaceNet embeddings at or above which two
# faces count as one person (distance 1 - cos <= 0.6). Not fitted to this project's
# faces: it is the default of FaceFusion's face selector, `--reference-face-distance`
# 0.6 on `1 - dot(normed embeddings)` of its ArcFace recogniser (facefusion/program.py;
# newer releases default to a stricter 0.3). MobileFaceNet is trained
# with the same ArcFace-type margin loss. On the test crops, same-person cosines measure
# 0.50-0.97 at 256 px (0.37-0.95 at 64 px) and different-person ones up to 0.34 (0.37)
# (tests/faces/test_mobilefacenet.py). Used by `convert --reference`
# (`converter.selection`) and `sort` (`faceswap_gan.faces.curation`).
SAME_PERSON_COSINE = 0.4


def parse_image_shape(value: Any) -> tuple[int, int, int]:
    """`(S, S, 3)` or `S` -> `(S, S, 3)` ints, with S in IMAGE_SIZES (pixels).

    Raises:
        FaceswapError: anything else (names the value and the allowed sizes).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value, 3)
    try:
        shape = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or shape[0] != shape[1] or shape[2] != 3:
        shape = ()
    if not shape or shape[0] not in IMAGE_SIZES:
        raise FaceswapError(
            f"image_shape must be (S, S, 3) or S with S in {IMAGE_SIZES}; "
            f"got {value!r}."
        )
    return shape


def _choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise FaceswapError(f"{name} must be one of {allowed}; got {value!r}.")


COLOR_MATCH_OVERFLOWS = ("clip", "rescale")  # See `augmentation.random_color_match`.


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation options; defaults are the v2.2 train notebook's (REFERENCE 1.5).

    Raises:
        ValueError: a value outside its allowed range (the message gives the range).
    """

    prob_random_color_match: float = 0.5  # Chance of colour matching to a random face.
    use_da_motion_blur: bool = False  # Motion blur (p = 0.25) on warped and target.
    use_bm_eyes: bool = True  # Return the eye masks; False returns all-zero masks.
    rotation_range: float = 10.0  # Max |rotation| in degrees, in [0, 180].
    zoom_range: float = 0.1  # Scale drawn from U(1 - z, 1 + z); z in [0, 1).
    shift_range: float = 0.05  # Max |shift| as a fraction of the side, in [0, 1].
    flip_prob: float = 0.5  # Chance of a horizontal flip, in [0, 1].
    color_match_overflow: str = "clip"  # "clip", or "rescale" as the original did.

    def __post_init__(self):
        for name in ("prob_random_color_match", "flip_prob", "shift_range"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise FaceswapError(f"{name} must be in [0, 1]; got {value}.")
        if not 0.0 <= self.rotation_range <= 180.0:
            raise FaceswapError(
                f"rotation_range must be in [0, 180] (degrees); got "
                f"{self.rotation_range}."
            )
        if not 0.0 <= self.zoom_range < 1.0:
            raise FaceswapError(f"zoom_range must be in [0, 1); got {self.zoom_range}.")
        if self.color_match_overflow not in COLOR_MATCH_OVERFLOWS:
            raise FaceswapError(
                f"color_match_overflow must be one of "
                f"{COLOR_MATCH_OVERFLOWS}; got {self.color_match_overflow!r}."
            )
        for name in ("use_da_motion_blur", "use_bm_eyes"):
            if not isinstance(getattr(self, name), bool):
                raise FaceswapError(
                    f"{name} must be True or False; got {getattr(self, name)!r}."
                )


@dataclass(frozen=True)
class ArchConfig:
    """Network architecture (the original's `arch_config`)."""

    image_shape: tuple = (
        64,
        64,
        3,
    )  # (R, R, 3) face crop; R in 64, 128, 256. An int R is accepted.
    use_self_attn: bool = (
        True  # SAGAN self-attention blocks in encoder, decoders and D.
    )
    norm: str = "instancenorm"  # One of NORMS; names mean what they say (DESIGN 3).
    model_capacity: str = (
        "standard"  # "standard" (pixel shuffle, full width) or "lite" (half width).
    )
    latent_dim: int | None = (
        None  # Bottleneck width; None = original rule (1024, 2048 for lite > 64 px).
    )
    # "stable" (default): v2.2's initialisers except two that saturate the untrained
    # output (lite's un-activated upscale conv is LeCun-normal, not He; the output convs
    # start small); "v2.2": exactly v2.2's. See faceswap_gan/models/blocks.py.
    init_scheme: str = "stable"

    def __post_init__(self):
        object.__setattr__(self, "image_shape", parse_image_shape(self.image_shape))
        _choice("norm", self.norm, NORMS)
        _choice("model_capacity", self.model_capacity, MODEL_CAPACITIES)
        _choice("init_scheme", self.init_scheme, INIT_SCHEMES)
        if not isinstance(self.use_self_attn, bool):
            raise FaceswapError(
                f"use_self_attn must be True or False; got {self.use_self_attn!r}."
            )
        if self.latent_dim is not None and int(self.latent_dim) < 1:
            raise FaceswapError(
                f"latent_dim must be a positive int or None; got {self.latent_dim!r}."
            )

    @property
    def image_size(self) -> int:
        return self.image_shape[0]

    @property
    def coef(self) -> int:
        """Width divisor: 2 for "lite", 1 for "standard" (REFERENCE 1.2)."""
        return 2 if self.model_capacity == "lite" else 1

    @property
    def resolved_latent_dim(self) -> int:
        if self.latent_dim is not None:
            return int(self.latent_dim)
        return 2048 if self.model_capacity == "lite" and self.image_size > 64 else 1024


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms (the original's `loss_weights`, REFERENCE 1.3)."""

    w_D: float = 0.1  # Adversarial term of the generator.
    w_recon: float = 1.0  # L1 reconstruction (final and intermediate outputs).
    w_edge: float = 0.1  # L1 of first-order image differences.
    w_eyes: float = 30.0  # Eye-mask-weighted reconstruction and edge terms.
    w_pl: tuple = (
        0.01,
        0.1,
        0.3,
        0.1,
    )  # Perceptual, deepest (7x7) to shallowest (112x112).
    w_mask_l1: float = 1e-2  # Alpha sparsity, L1 mode.
    w_mask_hinge: float = 0.1  # Alpha sparsity, hinge mode.
    w_mask_tv: float = 0.1  # Total variation of the alpha mask (per axis).
    w_cyclic: float = 10.0  # Cycle consistency (when use_cyclic_loss).

    def __post_init__(self):
        object.__setattr__(self, "w_pl", tuple(float(w) for w in self.w_pl))
        if len(self.w_pl) != 4:
            raise FaceswapError(f"w_pl must have 4 weights; got {self.w_pl!r}.")
        for f in dataclasses.fields(self):
            values = getattr(self, f.name)
            for v in values if isinstance(values, tuple) else (values,):
                if v < 0:
                    raise FaceswapError(f"{f.name} must be >= 0; got {values!r}.")


@dataclass(frozen=True)
class LossConfig:
    """Loss options (the original's `loss_config`); the schedule changes some."""

    gan_training: str = "mixup_LSGAN"  # Or "relativistic_avg_LSGAN".
    use_PL: bool = False  # Perceptual loss on (schedule turns it on at stage 1).
    PL_before_activ: bool = False  # Take perceptual features before the ReLU.
    use_mask_hinge_loss: bool = False  # Hinge (True) or L1 (False) alpha sparsity.
    m_mask: float = 0.0  # Hinge margin, in [0, 1].
    lr_factor: float = 1.0  # Multiplies both learning rates.
    use_cyclic_loss: bool = False  # Cycle-consistency term.
    perceptual_backend: str = (
        "face_api"  # "face_api" (offline) or "vggface" (needs weights).
    )
    perceptual_weights: str | None = (
        None  # Path to rcmalli_vggface_tf_notop_resnet50.h5.
    )

    def __post_init__(self):
        _choice("gan_training", self.gan_training, GAN_TRAININGS)
        _choice("perceptual_backend", self.perceptual_backend, PERCEPTUAL_BACKENDS)
        if self.PL_before_activ and self.perceptual_backend != "vggface":
            raise FaceswapError(
                "PL_before_activ needs perceptual_backend='vggface' (pre-ReLU "
                "features exist only there); use False with 'face_api'."
            )
        if not 0.0 <= self.m_mask <= 1.0:
            raise FaceswapError(f"m_mask must be in [0, 1]; got {self.m_mask!r}.")
        if self.lr_factor <= 0:
            raise FaceswapError(f"lr_factor must be > 0; got {self.lr_factor!r}.")


@dataclass(frozen=True)
class Stage:
    """One stage of a loss schedule; it applies from `trigger(total)` on."""

    fraction: Fraction  # Start as a fraction of the total iterations.
    use_PL: bool
    use_mask_hinge_loss: bool
    m_mask: float
    lr_factor: float
    swap_decoders: bool = False  # Swap decoder A and B weights when entering the stage.

    def trigger(self, total: int) -> int:
        """Iteration at which the stage starts: `total * fraction - offset`.

        The original fires at e.g. `TOTAL_ITERS // 5 - 150`; the 150 offset is kept for
        real runs and shrinks to `total // 100` for short ones (never below 0).
        """
        if self.fraction == 0:
            return 0
        base = total * self.fraction.numerator // self.fraction.denominator
        return max(0, base - min(150, total // 100))


def _stage(num, den, pl, hinge, m, lr, swap=False):
    return Stage(Fraction(num, den), pl, hinge, m, lr, swap)


# The stages after the start. Before the first trigger the run's own LossConfig is in
# force (v2.2's defaults: PL off, L1 mask loss, m_mask 0, lr factor 1), as in v2.2,
# where the notebook's loss_config is the start and each trigger changes it. Every
# stage's lr_factor multiplies the run's own LossConfig.lr_factor.
# REFERENCE 1.4, v2.2 train notebook (cell 28): 7850, 11850, 15850, 19850, 26516,
# 31850, 35850 of 40k.
SCHEDULES = {
    "v2.2": (
        _stage(1, 5, True, False, 0.0, 1.0),
        _stage(3, 10, True, True, 0.5, 1.0),
        _stage(2, 5, True, True, 0.2, 1.0),
        _stage(1, 2, True, True, 0.4, 1.0),
        _stage(2, 3, True, False, 0.0, 0.3),
        _stage(4, 5, True, True, 0.1, 0.3, swap=True),
        _stage(9, 10, True, False, 0.0, 0.1),
    ),
    # The lite Colab demo (colab_demo/faceswap-GAN_colab_demo.ipynb, training cell):
    # PL off at the start, then 7 changes; the decoders are swapped at 2/3.
    "colab_demo": (
        _stage(1, 5, True, False, 0.0, 1.0),
        _stage(3, 10, True, True, 0.5, 1.0),
        _stage(2, 5, True, True, 0.2, 1.0),
        _stage(1, 2, True, True, 0.4, 0.3),
        _stage(2, 3, True, True, 0.5, 1.0, swap=True),
        _stage(4, 5, True, True, 0.1, 0.3),
        _stage(9, 10, True, False, 0.0, 0.1),
    ),
    # No stage changes: the LossConfig given is used throughout.
    "constant": (),
}


def stage_at(schedule: str, step: int, total: int) -> int:
    """Index of the stage in force at `step` (`step >= trigger`), or -1 before the
    first trigger (the run's own LossConfig is in force then)."""
    current = -1
    for index, stage in enumerate(SCHEDULES[schedule]):
        if step >= stage.trigger(total):
            current = index
    return current


# Model presets: "tiny" is for tests and smoke runs (lite at 64 px, small bottleneck).
PRESETS = {
    "tiny": ArchConfig((64, 64, 3), True, "hybrid", "lite", latent_dim=128),
    "lite": ArchConfig((64, 64, 3), True, "hybrid", "lite"),
    # v2.2's train notebook: its "instancenorm" is our "instancenorm_v22".
    "standard": ArchConfig((64, 64, 3), True, "instancenorm_v22", "standard"),
}


# TrainConfig.mixed_precision -> Keras dtype policy (variables stay float32 in all).
DTYPE_POLICIES = {
    "off": "float32",
    "float16": "mixed_float16",
    "bfloat16": "mixed_bfloat16",
}
MIXED_PRECISIONS = tuple(DTYPE_POLICIES)


def mixed_precision_name(value: bool | str) -> str:
    """One of MIXED_PRECISIONS for a `TrainConfig.mixed_precision` value.

    Args:
        value: "off", "float16", "bfloat16", or a bool (True means "float16", the
            only mixed precision before bfloat16 was added; False "off").

    Raises:
        FaceswapError: any other value, naming the allowed ones.
    """
    if isinstance(value, bool):
        return "float16" if value else "off"
    _choice("mixed_precision", value, MIXED_PRECISIONS)
    return value


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; saved resolved as `run_dir/config.json`."""

    faces_a: str = "faceA"  # Folder of face crops of person A.
    faces_b: str = "faceB"  # Folder of face crops of person B.
    masks_a: str | None = None  # Eye masks of A, same file names as faces_a.
    masks_b: str | None = None  # Eye masks of B.
    run_dir: str = (
        "runs/faceswap"  # Output folder (config, metrics, previews, checkpoints).
    )
    arch: ArchConfig = field(default_factory=lambda: PRESETS["standard"])
    loss: LossConfig = field(default_factory=LossConfig)
    loss_weights: LossWeights = field(default_factory=LossWeights)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    schedule: str = "v2.2"  # One of SCHEDULES.
    iterations: int = 40000  # Total generator iterations (the original's TOTAL_ITERS).
    batch_size: int = 8  # Per side; must be even (the original's batchSize).
    display_iters: int = 300  # Log, preview and checkpoint period.
    backup_iters: int = 5000  # Period of kept backup checkpoints; 0 = none.
    seed: int = 0  # Seeds data order, augmentation and the model's noise.
    # Mixed precision, one of MIXED_PRECISIONS: "off" (float32), "float16" (Keras
    # "mixed_float16" with loss scaling: GPUs with tensor cores) or "bfloat16"
    # ("mixed_bfloat16": TPUs, CPUs with AVX512-BF16 or AMX, Ampere or newer GPUs).
    # True and False are read as "float16" and "off" (configs of earlier versions).
    mixed_precision: str = "off"
    tensorboard: bool = False  # Also write TensorBoard logs to run_dir/tensorboard.
    eval_every: int = 0  # Periodic held-out evaluation period; 0 = off.
    # Compile the train step with XLA: True, False, or None = auto (on with a GPU or
    # TPU, off on CPU where it measured slower; `training.resolve_jit_compile`).
    jit_compile: bool | None = None

    def __post_init__(self):
        object.__setattr__(
            self, "mixed_precision", mixed_precision_name(self.mixed_precision)
        )
        for name, cls in (
            ("arch", ArchConfig),
            ("loss", LossConfig),
            ("loss_weights", LossWeights),
            ("augment", AugmentConfig),
        ):
            value = getattr(self, name)
            if not isinstance(value, cls):
                object.__setattr__(self, name, from_dict(cls, value, name))
        _check_types(self)
        _choice("schedule", self.schedule, tuple(SCHEDULES))
        for name in ("iterations", "batch_size", "display_iters"):
            if int(getattr(self, name)) < 1:
                raise FaceswapError(
                    f"{name} must be >= 1; got {getattr(self, name)!r}."
                )
        if self.batch_size % 2:
            raise FaceswapError(
                f"batch_size must be even (mixup pairs); got {self.batch_size}."
            )
        if self.backup_iters < 0 or self.eval_every < 0:
            raise FaceswapError("backup_iters and eval_every must be >= 0 (0 = off).")
        if self.jit_compile is not None and not isinstance(self.jit_compile, bool):
            raise FaceswapError(
                f"jit_compile must be True, False or None (auto: XLA on GPU and "
                f"TPU); got {self.jit_compile!r}."
            )

    @property
    def dtype_policy(self) -> str:
        """The Keras dtype policy of `mixed_precision`: "float32", "mixed_float16"
        or "mixed_bfloat16"."""
        return DTYPE_POLICIES[self.mixed_precision]

    @classmethod
    def from_preset(cls, preset: str, **overrides) -> "TrainConfig":
        """A TrainConfig with `arch = PRESETS[preset]` (the Colab demo's schedule and
        batch size 4 for "lite")."""
        _choice("preset", preset, tuple(PRESETS))
        defaults: dict[str, Any] = {"arch": PRESETS[preset]}
        if preset == "lite":
            # The Colab demo also set PL_before_activ, which needs the vggface backend.
            defaults.update(schedule="colab_demo", batch_size=4)
        if preset == "tiny":
            defaults.update(
                iterations=20, batch_size=2, display_iters=10, backup_iters=0
            )
        defaults.update(overrides)
        return cls(**defaults)


def _check_types(config, section: str = "") -> None:
    """Checks each field against the type of its default, recursively: bools are
    bools, ints ints, floats finite numbers (nan and inf are refused), strings strings.

    Raises:
        FaceswapError: naming the field with its section (e.g. "loss.lr_factor").
    """
    for f in dataclasses.fields(config):
        name = f"{section}.{f.name}" if section else f.name
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            _check_types(value, name)
            continue
        default = f.default
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        if isinstance(default, bool):
            ok, allowed = isinstance(value, bool), "True or False"
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
            allowed = "an integer"
        elif isinstance(default, (float, tuple)):
            numbers = value if isinstance(value, tuple) else (value,)
            if isinstance(default, tuple) and not all(
                isinstance(v, (int, float)) for v in default
            ):
                continue
            ok = all(
                isinstance(v, (int, float))
                and not isinstance(v, bool)
                and math.isfinite(v)
                for v in numbers
            )
            allowed = (
                "finite numbers" if isinstance(value, tuple) else "a finite number"
            )
        elif isinstance(default, str):
            ok, allowed = isinstance(value, str), "a string"
        else:
            continue
        if not ok:
            raise FaceswapError(f"{name} must be {allowed}; got {value!r}.")


def to_dict(config) -> dict:
    """A JSON-ready dict of a config dataclass (nested configs as dicts)."""
    data = dataclasses.asdict(config)
    return json.loads(json.dumps(data, default=_json_default))


def _json_default(value):
    if isinstance(value, Fraction):
        return str(value)
    raise TypeError(f"Cannot serialise {type(value).__name__} to JSON.")


def to_json(config, path: str | Path | None = None) -> str:
    """Serialises a config; writes it to `path` atomically when given."""
    text = json.dumps(to_dict(config), indent=2, sort_keys=True)
    if path is not None:
        files.write_text(path, text + "\n")
    return text


def from_json(cls, text_or_path: str | Path):
    """Builds `cls` (ArchConfig, LossConfig, TrainConfig, ...) from JSON text or a file.

    Args:
        cls: a config dataclass.
        text_or_path: JSON text (starting with "{") or the path of a JSON file.

    Returns:
        The `cls` instance (nested configs built from their sections).

    Raises:
        FaceswapError: the file is a folder, is not valid JSON or not a JSON object,
            or holds unknown fields (named with their section, e.g. "loss.use_pll",
            with the allowed ones) or invalid values; each names the file.
        FileNotFoundError: the file does not exist.
    """
    text = str(text_or_path)
    if text.lstrip().startswith("{"):
        return from_dict(cls, _parse_json(text, "JSON text"))
    return from_dict(cls, read_json_object(text_or_path, cls.__name__))


def _parse_json(text: str, where: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise FaceswapError(f"{where} is not valid JSON: {error}.") from error


def read_json_object(path: str | Path, what: str = "config") -> dict:
    """Reads a JSON file that must hold one object (a config's fields).

    Args:
        path: the file.
        what: what the object holds, for the messages (e.g. "TrainConfig").

    Returns:
        dict, the object.

    Raises:
        FileNotFoundError: `path` does not exist.
        FaceswapError: `path` is a folder, not valid JSON (or not UTF-8), or holds
            something other than a JSON object; the message names the file.
    """
    path = Path(path)
    if path.is_dir():
        raise FaceswapError(f"{path} is a folder; give a JSON file of {what} fields.")
    try:
        text = path.read_text()
    except UnicodeDecodeError as error:
        raise FaceswapError(f"{path} is not a text (JSON) file: {error}.") from error
    data = _parse_json(text, str(path))
    if not isinstance(data, dict):
        raise FaceswapError(
            f'{path} must hold a JSON object of {what} fields ({{"name": value}}); '
            f"it holds a {_json_type(data)}."
        )
    return data


def _json_type(value) -> str:
    names = {list: "list", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _nested_config_class(f: dataclasses.Field):
    """The config dataclass of a nested field (TrainConfig.arch -> ArchConfig)."""
    default = f.default
    if f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    return type(default) if dataclasses.is_dataclass(default) else None


def from_dict(cls, data: dict, section: str = ""):
    """Builds the config dataclass `cls` from a dict (missing keys take defaults).

    Nested config fields (TrainConfig.arch, .loss, .loss_weights, .augment) given as
    dicts are built the same strict way.

    Args:
        cls: a config dataclass.
        data: dict of its fields.
        section: where `data` sits, for the messages ("loss" for TrainConfig.loss).

    Returns:
        The `cls` instance.

    Raises:
        FaceswapError: `data` is not a dict, unknown fields (named with their section,
            e.g. "loss.use_pll", and listing the allowed ones) or bad values.
    """
    where = section or cls.__name__
    if not isinstance(data, dict):
        raise FaceswapError(
            f"{where} must be an object of {cls.__name__} fields; got "
            f"{_json_type(data)} {data!r}."
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        named = [f"{section}.{name}" if section else name for name in unknown]
        raise FaceswapError(
            f"Unknown {cls.__name__} fields {named}; allowed: {sorted(fields)}."
        )
    values = {}
    for name, value in data.items():
        nested = _nested_config_class(fields[name])
        if nested is not None and not isinstance(value, nested):
            value = from_dict(nested, value, f"{section}.{name}" if section else name)
        values[name] = value
    try:
        return cls(**values)
    except FaceswapError as error:
        if section and not str(error).startswith(section):
            raise FaceswapError(f"{section}: {error}") from error
        raise
    except (TypeError, ValueError, OverflowError) as error:
        raise FaceswapError(f"Bad value in {where}: {error}.") from error
