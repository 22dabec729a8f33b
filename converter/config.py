"""`ConverterConfig` and its enums: the user's conversion API.

Names, enum members and defaults follow the alvinahmadov/faceswap-parts fork of
faceswap-GAN v2.2 (`converter/config.py`), whose vocabulary this project keeps; the
option meanings are those of the original video-conversion notebook (docs/REFERENCE.md
section 1.7). Enum fields also accept their member names as strings, case-insensitive
and with or without underscores (``"histmatch"``, ``"hist_match"``, ``"EYES_ONLY"``),
so the same config can come from a CLI flag or a JSON file.

Example:
    >>> config = ConverterConfig(roi_coverage=0.93, color_correction="adain_xyz")
    >>> ConverterConfig.from_dict(config.to_dict()) == config
    True
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceswap_gan import files
from faceswap_gan.config import from_dict as config_from_dict
from faceswap_gan.config import parse_image_shape
from faceswap_gan.errors import FaceswapError
from faceswap_gan.faces.alignment import check_alignment


class ColorCorrectionType(enum.Enum):
    """How the swapped face's colours are matched to the original face."""

    NONE = 0  # Keep the generator's colours.
    ADAIN = 1  # Per-channel mean/std transfer in RGB (Huang & Belongie, 2017).
    ADAIN_XYZ = 2  # The same statistics transfer in CIE XYZ.
    HISTMATCH = 3  # Per-channel histogram (CDF) matching.


class ImageOutputType(enum.Enum):
    """Layout of each output frame (the fork's values)."""

    SINGLE = 0  # [result]: the input's width.
    COMBINED = 1  # [source | result]: twice the width.
    TRIPLE = 3  # [source | result | mask heatmap]: three times the width.


class TransformDirection(enum.Enum):
    """Which identity is put on the faces of the video."""

    AtoB = 0  # Faces of A in the video become B (decoder B).
    BtoA = 1  # Faces of B in the video become A (decoder A).


class SegmentationType(enum.Enum):
    """Which face parts take the swapped pixels (ALL: the whole face region)."""

    ALL = 0
    EYES_ONLY = 1
    EYEBROWS_ONLY = 2
    NOSE_ONLY = 3
    MOUTH_ONLY = 4
    EYES_AND_EYEBROWS = 5
    EYES_AND_MOUTH = 6
    EYES_AND_NOSE = 7
    EYEBROWS_AND_NOSE = 8
    MOUTH_AND_NOSE = 9
    MOUTH_AND_EYEBROWS = 10

    @property
    def parts(self) -> tuple[str, ...]:
        """Names in `faceswap_gan.faces.masks.FACE_PARTS` that this choice covers."""
        return SEGMENTATION_PARTS[self]


# Each SegmentationType -> the FACE_PARTS names it covers. ALL covers every part, but
# the converter treats ALL as "the whole ROI" and builds no part mask for it.
SEGMENTATION_PARTS: dict[SegmentationType, tuple[str, ...]] = {
    SegmentationType.ALL: ("eyebrows", "eyes", "nose", "mouth"),
    SegmentationType.EYES_ONLY: ("eyes",),
    SegmentationType.EYEBROWS_ONLY: ("eyebrows",),
    SegmentationType.NOSE_ONLY: ("nose",),
    SegmentationType.MOUTH_ONLY: ("mouth",),
    SegmentationType.EYES_AND_EYEBROWS: ("eyes", "eyebrows"),
    SegmentationType.EYES_AND_MOUTH: ("eyes", "mouth"),
    SegmentationType.EYES_AND_NOSE: ("eyes", "nose"),
    SegmentationType.EYEBROWS_AND_NOSE: ("eyebrows", "nose"),
    SegmentationType.MOUTH_AND_NOSE: ("mouth", "nose"),
    SegmentationType.MOUTH_AND_EYEBROWS: ("mouth", "eyebrows"),
}


def _squash(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "").replace(" ", "")


def parse_enum(
    enum_type: type[enum.Enum], value: Any, field: str = "value"
) -> enum.Enum:
    """Returns the member of `enum_type` that `value` names.

    Args:
        enum_type: type. An `enum.Enum` subclass.
        value: a member, its name (case, `_` and `-` ignored) or its int value.
        field: str. The config field, for the error message.

    Raises:
        ValueError: `value` names no member; the message lists the allowed names.
    """
    if isinstance(value, enum_type):
        return value
    if isinstance(value, str):
        for member in enum_type:
            if _squash(member.name) == _squash(value):
                return member
    elif isinstance(value, int) and not isinstance(value, bool):
        try:
            return enum_type(value)
        except ValueError:
            pass
    allowed = ", ".join(m.name for m in enum_type)
    raise FaceswapError(
        f"{field} must be one of {allowed} (or its name); got {value!r}."
    )


def _check_range(name: str, value: Any, low: float, high: float, closed: str) -> None:
    """Raises ValueError unless low (<|<=) value (<|<=) high, as `closed` says."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaceswapError(f"{name} must be a number; got {value!r}.")
    ok_low = value >= low if closed[0] == "[" else value > low
    ok_high = value <= high if closed[1] == "]" else value < high
    if not (ok_low and ok_high):
        raise FaceswapError(
            f"{name} must be in {closed[0]}{low}, {high}{closed[1]}; got {value!r}."
        )


def _check_int_range(name: str, value: Any, low: int, high: int) -> None:
    """Raises FaceswapError unless `value` is an int (not a bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaceswapError(f"{name} must be an int in [{low}, {high}]; got {value!r}.")
    _check_range(name, value, low, high, "[]")


@dataclass(frozen=True)
class ConverterConfig:
    """Options of a video conversion (validated on construction).

    Frozen: derive a changed copy with `dataclasses.replace(config, enhance=0.2)`.

    Raises:
        ValueError: a field is out of range or names no enum member; the message gives
            the allowed range or names.
    """

    # (S, S, 3) with S 64, 128 or 256, or None (the default): the model's input.
    image_shape: tuple[int, int, int] | None = None
    # Smooth face boxes over time (per-face tracks). As in v2.2 only the box is
    # smoothed (it sets the crop side and the paste-back region); faces are
    # aligned on the detector's raw landmarks.
    use_smoothed_bbox: bool = True
    use_kalman_filter: bool = True  # Kalman smoother; False: moving average.
    use_auto_downscaling: bool = False  # Downscale big frames before MTCNN.
    bbox_moving_avg_coef: float = 0.65  # [0, 1]: weight of the previous box (EMA).
    min_face_area: int = 35 * 35  # >= 0 px^2: smaller detections are dropped.
    kf_noise_coef: float = 1e-3  # > 0: Kalman process noise; x10 lags less, /10 calmer.
    color_correction: ColorCorrectionType = ColorCorrectionType.HISTMATCH  # See color.
    detection_threshold: float = 0.8  # (0, 1]: MTCNN third-stage threshold.
    roi_coverage: float = 0.9  # (0, 1): crop int(S*(1-c)) from each side of the crop.
    enhance: float = 0.0  # [0, 1]: contrast boost -e*orig + (1+e)*result; 0-0.4 useful.
    output_type: ImageOutputType = ImageOutputType.TRIPLE  # Frame layout.
    direction: TransformDirection = TransformDirection.AtoB  # Which decoder is used.
    segmentation: SegmentationType = SegmentationType.ALL  # Face parts to swap.
    watermark: bool = True  # Draw a small visible "SYNTHETIC" label on every frame.
    # Photos of the one person to swap (each showing one face); () = swap every face.
    # Faces are grouped in identity-aware tracks and each whole track is swapped or
    # not by a vote against these photos (`converter.selection`).
    reference: tuple[str, ...] = ()
    # [-1, 1]: cosine similarity (MobileFaceNet) at or above which a face votes for
    # the reference; 0.4 = `faceswap_gan.config.SAME_PERSON_COSINE`,
    # FaceFusion's default (a test keeps the two equal).
    similarity_threshold: float = 0.4
    # Output video encoding (`faceswap_gan.video.CODECS`): "h264", "h265" or
    # "lossless" (FFV1 RGB, exact frames; .mkv output only).
    codec: str = "h264"
    # Crop framing of the faces given to the model (`faceswap_gan.faces.alignment.
    # ALIGNMENTS`): "default" (this project's), "dfl_whole_face" (FaceFusion's DFL
    # whole-face template) or "deepfacelive" (DeepFaceLive's 68-point cut). Use the
    # framing the training faces were extracted with (`extract --alignment`).
    alignment: str = "default"
    # Seconds of video between keyframes (`faces.keyframes.KeyframeDetector`),
    # which look for new faces down to half the smallest face found; in between,
    # MTCNN runs only the pyramid levels near the found faces' sizes (the same
    # boxes and points as a full detection), and a lost face is searched for at
    # once. 0 = full MTCNN on every frame (v2.2; about 3x slower).
    keyframe_seconds: float = 0.25
    # [1, 64] consecutive frames converted together: their faces go through the
    # generator in one pass (at most `models.gan.INFERENCE_BATCH` faces per forward
    # pass), fuller batches than one frame's; fewer for frames so large that the
    # batch would pass 64 MiB (`pipeline.frames_per_batch`). 1 = frame by frame, as
    # v2.2.
    batch_frames: int = 8
    crf: int = 18  # [0, 51] h264/h265 constant rate factor: lower is better, bigger.
    preset: str = "veryfast"  # h264/h265 speed preset, "ultrafast" ... "veryslow".

    def __post_init__(self) -> None:
        # Frozen: normalised values are set through object.__setattr__.
        if self.image_shape is not None:
            object.__setattr__(self, "image_shape", parse_image_shape(self.image_shape))
        for name, enum_type in _ENUM_FIELDS.items():
            value = parse_enum(enum_type, getattr(self, name), name)
            object.__setattr__(self, name, value)
        for name in _BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise FaceswapError(
                    f"{name} must be True or False; got {getattr(self, name)!r}."
                )
        _check_range("roi_coverage", self.roi_coverage, 0, 1, "()")
        _check_range("bbox_moving_avg_coef", self.bbox_moving_avg_coef, 0, 1, "[]")
        _check_range("detection_threshold", self.detection_threshold, 0, 1, "(]")
        _check_range("kf_noise_coef", self.kf_noise_coef, 0, float("inf"), "()")
        _check_range("enhance", self.enhance, 0, 1, "[]")
        check_alignment(self.alignment)
        _check_range("keyframe_seconds", self.keyframe_seconds, 0, float("inf"), "[)")
        _check_int_range("batch_frames", self.batch_frames, 1, 64)
        _check_range("min_face_area", self.min_face_area, 0, float("inf"), "[)")
        _check_range("similarity_threshold", self.similarity_threshold, -1, 1, "[]")
        from faceswap_gan.video import CODECS, PRESETS

        if self.codec not in CODECS:
            raise FaceswapError(
                f"codec must be one of {', '.join(CODECS)}; got {self.codec!r}."
            )
        _check_int_range("crf", self.crf, 0, 51)
        if self.preset not in PRESETS:
            raise FaceswapError(
                f"preset must be one of {', '.join(PRESETS)}; got {self.preset!r}."
            )
        reference = self.reference
        if isinstance(reference, (str, Path)):
            reference = (reference,)
        if not isinstance(reference, (list, tuple)) or not all(
            isinstance(path, (str, Path)) and str(path) for path in reference
        ):
            raise FaceswapError(
                f"reference must be a list of image paths (photos of the person to "
                f"swap), or empty to swap every face; got {self.reference!r}."
            )
        object.__setattr__(self, "reference", tuple(str(path) for path in reference))

    @property
    def image_size(self) -> int | None:
        """Side S of the model's square input in pixels (None: the model's)."""
        return None if self.image_shape is None else self.image_shape[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: enums as member names, image_shape as a list."""
        out = dataclasses.asdict(self)
        for name in _ENUM_FIELDS:
            out[name] = out[name].name
        if self.image_shape is not None:
            out["image_shape"] = list(self.image_shape)
        out["reference"] = list(self.reference)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConverterConfig:
        """Inverse of `to_dict`; missing keys take the defaults.

        Raises:
            ValueError: an unknown key (the message lists known keys) or a bad value.
        """
        return config_from_dict(cls, data)

    def to_json(self, path: str | Path) -> None:
        """Writes `to_dict()` as indented JSON to `path` (atomically)."""
        files.write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_json(cls, path: str | Path) -> ConverterConfig:
        """Reads a config written by `to_json` (or by hand; missing keys = defaults).

        Raises:
            FileNotFoundError: `path` does not exist.
            ValueError: the file is not a JSON object, or a key/value is invalid.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Converter config file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise FaceswapError(f"{path} is not valid JSON: {error}") from error
        if not isinstance(data, dict):
            raise FaceswapError(
                f"{path} must hold a JSON object of ConverterConfig fields."
            )
        return cls.from_dict(data)


_ENUM_FIELDS: dict[str, type[enum.Enum]] = {
    "color_correction": ColorCorrectionType,
    "output_type": ImageOutputType,
    "direction": TransformDirection,
    "segmentation": SegmentationType,
}
_BOOL_FIELDS = (
    "use_smoothed_bbox",
    "use_kalman_filter",
    "use_auto_downscaling",
    "watermark",
)
