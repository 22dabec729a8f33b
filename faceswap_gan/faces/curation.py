"""Curating a folder of face crops: score every face, move outliers to `rejected/`.

`curate_faces` (CLI: `python -m faceswap_gan sort`) scores each face image of a
folder and moves the outliers to `<faces>/rejected/<reason>/`, the matching eye masks
(same file stem) to `<masks>/rejected/<reason>/`. Nothing is deleted, nothing in
`rejected/` is overwritten (a taken name gets a `_1`, `_2`, ... suffix, the same for
the face and its mask), and `rejected/` itself is never read, so a second run only
scores the faces still in the folder. Every face gets a row in `<faces>/scores.csv`
(written atomically, also in a dry run).

The scores, all from one pass of the 68-point landmark net and the identity embedder
over batches of faces (`faceswap_gan.faces.identity.refined_landmarks`, the two-pass
landmark search both identity embedders use):

- identity: the median cosine distance `1 - cos` (0 to 2) between the face's
  MobileFaceNet embedding (`build_identity_embedder("mobilefacenet")`, the project's
  independent identity scorer) and the reference faces: the face of each reference
  photo, or, without photos, the folder's other faces that passed the blur and pose
  checks (the folder's median identity: it follows the person on most faces as long
  as they hold more than half of them). See `identity_distances`.
- sharpness: variance of the Laplacian (Pech-Pacheco et al. 2000) of a grey copy of
  the face (the square around its 68 landmarks) resized to `SHARPNESS_SIZE` pixels,
  so neither the crop size nor the margin around the face changes it; compared with
  the folder's median as a ratio.
- pose: yaw and pitch in degrees from `faceswap_gan.evaluation.geometry.head_pose`
  (solvePnP of six landmarks on a generic 3D face).
- near-duplicates: faces whose embeddings are within `DUPLICATE_MAX_DISTANCE` and
  whose 64x64 grey thumbnails differ by at most `DUPLICATE_MAX_RMS` grey levels (RMS).

Default thresholds (`CurationThresholds`), none fitted to the bundled faces:

- identity: `IDENTITY_MAX_DISTANCE` = 1 - `config.SAME_PERSON_COSINE` = 0.6,
  FaceFusion's default face-selector distance (see `config.SAME_PERSON_COSINE`),
  the same threshold as `convert --reference` (`converter.selection`, cosine
  0.4). deepface's LFW-tuned ArcFace threshold, 0.68, is close. It is a pairwise
  threshold, hence the pairwise medians. Measured on the test crops: same person
  0.03-0.50, different people 0.66-1.02.
- blur: `BLUR_MIN_RATIO` = 0.5, half the folder's median sharpness. Within one
  video the sharpness of its faces spreads over about 0.75-1.3 times its median (test
  crops); a Gaussian blur of sigma 1 pixel at 256 px, or a 2x down- and upscale,
  divides it by about 3 (whole 256-px test crops).
- pose: `MAX_YAW` = `MAX_PITCH` = 45 degrees, the semi-frontal range in which the
  68-point iBUG layout is defined (Multi-PIE and 300-W annotate wider yaw with a
  39-point profile layout); beyond it landmarks, alignment and identity degrade.
- duplicates: `DUPLICATE_MAX_RMS` = 0.5 grey levels, half an 8-bit step: the same
  image saved again (copied, renamed, converted to PNG, re-encoded at high JPEG
  quality), not a neighbouring video frame. Faces of consecutive frames of a
  talking head are as close in embedding space (cosine distance 0.001-0.03) as a
  re-encoded copy, so the embedding alone (`DUPLICATE_MAX_DISTANCE` = 0.02, what
  re-saving at JPEG quality 75 or half the resolution keeps) only proposes pairs;
  the thumbnails decide. Measured on 5 x 79 consecutive-frame pairs of shared
  talking-head extracts, the smallest thumbnail RMS was 0.54; on whole extracts of
  three of them (352, 368 and 448 faces) 5, 0 and 3 faces were duplicates, each of a
  neighbouring frame (the three looked at: 1.4-1.5 grey levels RMS apart in full,
  no visible change). A video that repeats frames (the bundled clips were converted
  from 25 to 30 fps: every 6th frame is the previous one again, under 1 grey level
  RMS apart) gives real duplicates: some of those repeats are caught, frames with
  any motion are not.

Order of reasons (`REASONS`): every failed check is listed in `scores.csv`; the
folder is the first of blur, pose, identity, duplicate. Blur wins because a blurred
face's landmarks and embedding are unreliable (a blur of sigma 3 px moves a face's
embedding 0.11-0.25 away from its sharp original) and a blurred copy is close to its
original; pose next, since identity embeddings degrade at extreme poses; then
identity; duplicates are looked for only among the faces that passed the other
checks, sharpest first: of a group of duplicates the sharpest face stays (the first
by name on a tie) and the others move. So a blurred copy of a face goes to
`rejected/blur/`, never `rejected/duplicate/`.

References:
    - J. L. Pech-Pacheco, G. Cristobal, J. Chamorro-Martinez, J. Fernandez-Valdivia,
      "Diatom autofocusing in brightfield microscopy: a comparative study", ICPR 2000
      (variance of the Laplacian as a focus measure).
    - FaceFusion (facefusion/facefusion), `reference_face_distance` default 0.6 of
      its face selector; S. I. Serengil, deepface, `deepface/modules/verification.py`
      `find_threshold` (ArcFace cosine-distance threshold 0.68).
    - R. Gross et al., "Multi-PIE", Image and Vision Computing 2010; C. Sagonas et
      al., "300 Faces in-the-Wild Challenge", ICCV-W 2013 (68 points up to 45 degrees
      of yaw).
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from faceswap_gan.config import SAME_PERSON_COSINE
from faceswap_gan.errors import FaceswapError
from faceswap_gan.evaluation.metrics import unit_vectors
from faceswap_gan.files import write_text
from faceswap_gan.images import (
    IMAGE_EXTENSIONS,
    ImageReadPolicy,
    list_images,
    read_image,
    resize_face,
)

REJECTED = "rejected"  # Subfolder of the face (and mask) folder for moved files.
SCORES_FILE = "scores.csv"
REASONS = ("blur", "pose", "identity", "duplicate")  # Precedence: first failed wins.
# Cosine distance; FaceFusion's default (see config.SAME_PERSON_COSINE).
IDENTITY_MAX_DISTANCE = round(1.0 - SAME_PERSON_COSINE, 6)
BLUR_MIN_RATIO = 0.5  # Sharpness / folder median below this: blurred.
MAX_YAW = 45.0  # Degrees; the semi-frontal range of the 68-point layout.
MAX_PITCH = 45.0  # Degrees.
DUPLICATE_MAX_DISTANCE = 0.02  # Cosine distance proposing a duplicate pair.
DUPLICATE_MAX_RMS = 0.5  # Grey levels (0..255) between 64x64 thumbnails.
SHARPNESS_SIZE = 128  # Side (pixels) of the grey face copy the Laplacian runs on.
THUMBNAIL_SIZE = 64  # Side (pixels) of the grey thumbnails compared for duplicates.
BATCH = 32  # Faces per landmark / embedding pass.
REFERENCE_CROP_SIZE = 256  # Aligned crop of a reference photo's face (pixels).
CSV_COLUMNS = (
    "file",
    "identity_distance",
    "sharpness",
    "sharpness_ratio",
    "yaw_deg",
    "pitch_deg",
    "nearest",
    "nearest_distance",
    "nearest_rms",
    "failed",
    "verdict",
    "reason",
    "moved_to",
)


@dataclass(frozen=True)
class CurationThresholds:
    """When a face is an outlier (see the module docstring for the defaults' sources).

    Attributes:
        max_identity_distance: float in (0, 2]. Cosine distance to the reference
            identity above which a face is another person.
        min_sharpness_ratio: float in [0, 1). Sharpness / folder median below which
            a face is blurred (0 turns the check off).
        max_yaw: float in (0, 180]. |yaw| in degrees above which the pose is extreme.
        max_pitch: float in (0, 90]. |pitch| in degrees, likewise.
        max_duplicate_distance: float in [0, 2]. Cosine distance within which two
            faces may be duplicates.
        max_duplicate_rms: float in [0, 255]. RMS grey-level difference of the 64x64
            thumbnails within which they are (negative values are not allowed).
    """

    max_identity_distance: float = IDENTITY_MAX_DISTANCE
    min_sharpness_ratio: float = BLUR_MIN_RATIO
    max_yaw: float = MAX_YAW
    max_pitch: float = MAX_PITCH
    max_duplicate_distance: float = DUPLICATE_MAX_DISTANCE
    max_duplicate_rms: float = DUPLICATE_MAX_RMS

    # name -> (low, high, low inclusive, high inclusive, unit)
    _RANGES = {
        "max_identity_distance": (0.0, 2.0, False, True, "cosine distance"),
        "min_sharpness_ratio": (0.0, 1.0, True, False, "of the median sharpness"),
        "max_yaw": (0.0, 180.0, False, True, "degrees"),
        "max_pitch": (0.0, 90.0, False, True, "degrees"),
        "max_duplicate_distance": (0.0, 2.0, True, True, "cosine distance"),
        "max_duplicate_rms": (0.0, 255.0, True, True, "grey levels"),
    }

    def __post_init__(self):
        for name, (low, high, low_in, high_in, unit) in self._RANGES.items():
            value = getattr(self, name)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise FaceswapError(
                    f"{name} must be a number; got {value!r}."
                ) from None
            above = value >= low if low_in else value > low
            below = value <= high if high_in else value < high
            if not (np.isfinite(value) and above and below):
                opening, closing = "[" if low_in else "(", "]" if high_in else ")"
                interval = f"{opening}{low:g}, {high:g}{closing}"
                flag = "--" + name.replace("_", "-")
                raise FaceswapError(
                    f"{name} ({flag}) must be in {interval} ({unit}); got {value!r}."
                )
            object.__setattr__(self, name, value)


@dataclass
class FaceScore:
    """The scores and verdict of one face image (one row of scores.csv).

    Attributes:
        name: str. File name in the face folder.
        identity_distance: float in [0, 2]. Cosine distance to the reference identity.
        sharpness: float >= 0. Variance of the Laplacian (grey levels^2).
        sharpness_ratio: float >= 0. `sharpness` / the folder's median sharpness.
        yaw: float degrees in [-180, 180]; positive: the face turns to the image's
            right. NaN when no pose could be fitted.
        pitch: float degrees in [-90, 90]; positive: the face looks up.
        nearest: str. The face with the closest embedding ("" if alone).
        nearest_distance: float. Its cosine distance (NaN if alone).
        nearest_rms: float. RMS grey-level difference of the two thumbnails.
        failed: tuple[str, ...]. Every check the face failed, in `REASONS` order.
        duplicate_of: str. The kept face this one duplicates ("" if none).
        moved_to: Path | None. Where the face went (or would go in a dry run).
    """

    name: str
    identity_distance: float = float("nan")
    sharpness: float = float("nan")
    sharpness_ratio: float = float("nan")
    yaw: float = float("nan")
    pitch: float = float("nan")
    nearest: str = ""
    nearest_distance: float = float("nan")
    nearest_rms: float = float("nan")
    failed: tuple = ()
    duplicate_of: str = ""
    moved_to: Path | None = None
    unreadable: bool = False

    @property
    def reason(self) -> str:
        """The folder the face goes to: its first failed check, "" if it stays
        (or "unreadable" for a skipped file, which stays)."""
        if self.unreadable:
            return "unreadable"
        return self.failed[0] if self.failed else ""

    @property
    def verdict(self) -> str:
        """ "keep", "reject" or "skipped" (unreadable)."""
        if self.unreadable:
            return "skipped"
        return "reject" if self.failed else "keep"


@dataclass
class CurationReport:
    """What `curate_faces` found and moved.

    Attributes:
        faces_dir: Path. The face folder.
        scores: list[FaceScore]. One per image file, in name order.
        moves: list[tuple[Path, Path]]. (source, destination) of every face moved
            (or to be moved, in a dry run).
        mask_moves: list[tuple[Path, Path]]. The same for the masks.
        scores_csv: Path. `<faces>/scores.csv`.
        reference: str. "photos" (reference photos given) or "median".
        median_sharpness: float. The folder's median sharpness.
        dry_run: bool. Nothing was moved.
    """

    faces_dir: Path
    scores: list = field(default_factory=list)
    moves: list = field(default_factory=list)
    mask_moves: list = field(default_factory=list)
    scores_csv: Path | None = None
    reference: str = "median"
    median_sharpness: float = float("nan")
    dry_run: bool = False

    def counts(self) -> dict[str, int]:
        """{"kept": n, "blur": n, "pose": n, "identity": n, "duplicate": n,
        "unreadable": n}."""
        counts = {"kept": 0, **{reason: 0 for reason in REASONS}, "unreadable": 0}
        for score in self.scores:
            counts[score.reason or "kept"] += 1
        return counts


def sharpness(image: np.ndarray, landmarks68: np.ndarray | None = None) -> float:
    """Variance of the Laplacian of a fixed-size grey copy of the face.

    The focus measure of Pech-Pacheco et al. (2000): OpenCV's 3x3 Laplacian
    (`cv2.Laplacian`, ksize 1: [[0, 1, 0], [1, -4, 1], [0, 1, 0]]) of the grey image,
    its variance. The face region (the square around the 68 landmarks, clipped to the
    image; the whole image without landmarks) is resized to `SHARPNESS_SIZE` square
    first (area averaging to shrink, cubic to enlarge), so the crop size and the
    margin around the face do not change the score.

    Args:
        image: `(H, W, 3)` uint8 RGB face crop.
        landmarks68: `(68, 2)` float (x, y) pixels in `image`, or None.

    Returns:
        float >= 0, grey levels^2 (0 for a flat image; sharp 128-px faces score a
        few hundred, blurred ones tens).
    """
    region = image
    if landmarks68 is not None:
        points = np.asarray(landmarks68, np.float64)
        low, high = points.min(axis=0), points.max(axis=0)
        centre, half = (low + high) / 2, max((high - low).max() / 2, 4.0)
        x0, y0 = np.floor(np.maximum(centre - half, 0)).astype(int)
        x1, y1 = np.ceil(centre + half).astype(int)
        x1, y1 = min(x1, image.shape[1]), min(y1, image.shape[0])
        if x1 - x0 >= 4 and y1 - y0 >= 4:
            region = image[y0:y1, x0:x1]
    grey = cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_RGB2GRAY)
    if grey.shape != (SHARPNESS_SIZE, SHARPNESS_SIZE):
        shrink = min(grey.shape) > SHARPNESS_SIZE
        grey = cv2.resize(
            grey,
            (SHARPNESS_SIZE, SHARPNESS_SIZE),
            interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC,
        )
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def yaw_pitch(rotation: np.ndarray) -> tuple[float, float]:
    """Yaw and pitch of a head rotation, from the direction the face points.

    The face's forward direction in camera axes (x right, y down, z away from the
    camera) is `n = R @ (0, 0, -1)` (frontal: n = (0, 0, -1)). Yaw is its horizontal
    angle, `atan2(n_x, -n_z)`, positive when the face turns to the image's right;
    pitch its elevation, `atan2(-n_y, hypot(n_x, n_z))`, positive when it looks up.
    Roll (a tilt in the image plane) changes neither.

    Args:
        rotation: `(3, 3)` float rotation matrix, model -> camera
            (`faceswap_gan.evaluation.geometry.head_pose`).

    Returns:
        (yaw, pitch): floats, degrees in [-180, 180] and [-90, 90].
    """
    forward = -np.asarray(rotation, np.float64)[:, 2]
    yaw = np.degrees(np.arctan2(forward[0], -forward[2]))
    pitch = np.degrees(np.arctan2(-forward[1], np.hypot(forward[0], forward[2])))
    return float(yaw), float(pitch)


def thumbnail(image: np.ndarray) -> np.ndarray:
    """`(H, W, 3)` uint8 RGB -> `(64, 64)` float32 grey (0..255), area-averaged."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    small = resize_face(grey, THUMBNAIL_SIZE, cv2.INTER_AREA)
    return small.astype(np.float32)


def _chips(embedder, faces: list, points: np.ndarray) -> np.ndarray:
    """The embedder's input chips from already found landmarks (as its `chips`)."""
    if embedder.backend == "mobilefacenet":
        from faceswap_gan.faces.mobilefacenet import arcface_chip, landmarks5_from_68

        return np.stack(
            [arcface_chip(f, p) for f, p in zip(faces, landmarks5_from_68(points))]
        )
    from faceswap_gan.faces.identity import face_chip

    return np.stack([face_chip(f, p) for f, p in zip(faces, points)])


def embed_faces(embedder, faces: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks and unit identity embeddings of face crops, in one landmark pass.

    The embeddings are those of `faceswap_gan.faces.identity.embed_crops` (unit
    norm), but made from the landmarks found here, which `sort` also scores
    sharpness and pose with, and the crops may differ in size.

    Args:
        embedder: an identity embedder (`build_identity_embedder`).
        faces: sequence of `(H, W, 3)` uint8 RGB crops (sizes may differ).

    Returns:
        (landmarks, embeddings): `(N, 68, 2)` float32 pixels in each crop and
        `(N, D)` float64 unit vectors (D = 192 for MobileFaceNet).
    """
    from faceswap_gan.faces.identity import refined_landmarks

    points = refined_landmarks(embedder.landmarks, list(faces))
    embeddings = embedder.embed_chips(_chips(embedder, list(faces), points))
    return points, unit_vectors(embeddings)


def reference_embeddings(photos: Sequence[str | Path], embedder, detector=None):
    """The unit embedding of the largest face of each reference photo.

    Each photo is searched with MTCNN (`FaceDetector`); its largest face is aligned
    (`faces.alignment.align`, 256 px) and embedded like the folder's faces.

    Args:
        photos: paths of photos of the person to keep (any size).
        embedder: an identity embedder.
        detector: FaceDetector | None (default `FaceDetector()`).

    Returns:
        `(R, D)` float64 unit vectors, one per photo.

    Raises:
        FileNotFoundError: a photo does not exist.
        FaceswapError: a photo cannot be read or holds no face (naming it).
    """
    from faceswap_gan.faces.alignment import align
    from faceswap_gan.faces.detection import FaceDetector

    detector = detector or FaceDetector()
    crops = []
    for photo in photos:
        image = read_image(photo)
        faces = detector.detect(image)
        if not faces:
            raise FaceswapError(
                f"No face found in the reference photo {photo}; give a photo in which "
                "the person to keep is clearly visible."
            )
        largest = max(faces, key=lambda face: face.area)
        crops.append(align(image, largest.landmarks5, REFERENCE_CROP_SIZE)[0])
    return embed_faces(embedder, crops)[1]


def _match_masks(paths: list[Path], masks_dir: Path) -> dict[str, Path]:
    """face stem -> mask path; FaceswapError when a face has no mask."""
    if not masks_dir.is_dir():
        raise FaceswapError(f"Mask folder not found: {masks_dir}")
    by_stem: dict[str, Path] = {}
    for mask in list_images(masks_dir):
        if mask.stem in by_stem:
            raise FaceswapError(
                f"Two masks share the stem {mask.stem!r} in {masks_dir}: "
                f"{by_stem[mask.stem].name}, {mask.name}; keep one mask per face."
            )
        by_stem[mask.stem] = mask
    missing = [p.name for p in paths if p.stem not in by_stem]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise FaceswapError(
            f"The masks in {masks_dir} do not match the faces: {len(missing)} of "
            f"{len(paths)} faces have no mask with the same name stem ({shown}). "
            "Give the mask folder written for these faces (extract's "
            "binary_masks_eyes, or `masks`), or leave out --masks."
        )
    return by_stem


def _score_folder(paths, embedder, policy, progress):
    """Reads and scores the faces in batches: (scores, embeddings, thumbnails)."""
    from tqdm.auto import tqdm

    from faceswap_gan.evaluation.geometry import head_pose

    scores, embeddings, thumbnails = [], [], []
    bar = tqdm(total=len(paths), disable=not progress, desc="sort", unit="face")
    for start in range(0, len(paths), BATCH):
        batch, faces = [], []
        for path in paths[start : start + BATCH]:
            image = policy.read(path)
            if image is None:
                scores.append(FaceScore(path.name, unreadable=True))
                continue
            batch.append(FaceScore(path.name))
            faces.append(image)
        if faces:
            points, vectors = embed_faces(embedder, faces)
            for score, face, p, vector in zip(batch, faces, points, vectors):
                score.sharpness = sharpness(face, p)
                try:
                    score.yaw, score.pitch = yaw_pitch(head_pose(p, face.shape[:2]))
                except (ValueError, cv2.error):
                    pass  # NaN pose: fails the pose check.
                embeddings.append(vector)
                thumbnails.append(thumbnail(face))
            scores.extend(batch)
        bar.update(len(paths[start : start + BATCH]))
    bar.close()
    return scores, np.asarray(embeddings), np.asarray(thumbnails)


def _rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b) ** 2)))


def _row_chunks(count: int, size: int = 1024):
    for start in range(0, count, size):
        yield slice(start, min(start + size, count))


def identity_distances(
    embeddings: np.ndarray, reference: np.ndarray | None, usable=None
) -> np.ndarray:
    """Each face's median cosine distance to the reference faces.

    With `reference` (the reference photos' embeddings) that is the median over
    them (for one photo, the plain distance). Without, the reference faces are the
    folder's `usable` faces except the face itself: a face of the person on most
    faces has its typical same-person distance (about 0.2-0.45 on the test crops),
    a face of anyone else its typical different-person distance (0.75-0.9), as long
    as the majority person holds more than half of the faces. Pairwise distances, so
    the verification threshold applies as it was made for (a distance to a mean
    embedding would not: every mean shares the direction common to all faces, which
    brings other people within 0.55-0.7 of it).

    Args:
        embeddings: `(N, D)` unit vectors.
        reference: `(R, D)` unit vectors, or None.
        usable: indices of the faces that count as references when `reference` is
            None (default all).

    Returns:
        `(N,)` float64 in [0, 2]; NaN for a face with no other usable face.
    """
    count = len(embeddings)
    if reference is None:
        usable = np.arange(count) if usable is None else np.asarray(usable, int)
        reference = embeddings[usable]
    else:
        usable = np.zeros(0, int)
    out = np.full(count, np.nan)
    for rows in _row_chunks(count):
        distance = 1.0 - embeddings[rows] @ reference.T  # (chunk, R)
        own = np.arange(rows.start, rows.stop)
        hits = own[:, None] == usable[None, :]  # a face is not its own reference
        distance[hits] = np.nan
        if distance.shape[1] and not np.all(np.isnan(distance)):
            with warnings.catch_warnings():  # all-NaN row: a lone face
                warnings.simplefilter("ignore", RuntimeWarning)
                out[rows] = np.nanmedian(distance, axis=1)
    return out


def _neighbours(embeddings: np.ndarray, radius: float):
    """(nearest index or -1, its distance, {j: distance} within `radius}) per face."""
    count = len(embeddings)
    nearest = np.full(count, -1)
    nearest_distance = np.full(count, np.nan)
    close: list[dict] = [{} for _ in range(count)]
    if count < 2:
        return nearest, nearest_distance, close
    for rows in _row_chunks(count):
        distance = 1.0 - embeddings[rows] @ embeddings.T  # (chunk, N)
        own = np.arange(rows.start, rows.stop)
        distance[own - rows.start, own] = np.inf
        best = np.argmin(distance, axis=1)
        nearest[rows] = best
        nearest_distance[rows] = distance[own - rows.start, best]
        for i, j in zip(*np.nonzero(distance <= radius)):
            close[rows.start + i][int(j)] = float(distance[i, j])
    return nearest, nearest_distance, close


def _judge(scores, embeddings, thumbnails, reference, thresholds):
    """Fills identity, ratios, nearest and the failed checks of readable `scores`;
    returns the median sharpness."""
    read = [s for s in scores if not s.unreadable]
    median = float(np.median([s.sharpness for s in read]))
    for s in read:
        s.sharpness_ratio = s.sharpness / median if median > 0 else 1.0
        failed = []
        if s.sharpness_ratio < thresholds.min_sharpness_ratio:
            failed.append("blur")
        if not (
            abs(s.yaw) <= thresholds.max_yaw and abs(s.pitch) <= thresholds.max_pitch
        ):
            failed.append("pose")  # Also for a NaN pose.
        s.failed = tuple(failed)
    usable = [i for i, s in enumerate(read) if not s.failed]
    if len(usable) < 2:  # Hardly any usable face: all of them count.
        usable = list(range(len(read)))
    distances = identity_distances(embeddings, reference, usable)
    for s, distance in zip(read, distances):
        s.identity_distance = float(distance)
        if distance > thresholds.max_identity_distance:
            s.failed = s.failed + ("identity",)
    nearest, nearest_distance, close = _neighbours(
        embeddings, thresholds.max_duplicate_distance
    )
    for i, s in enumerate(read):
        if nearest[i] >= 0:
            s.nearest = read[nearest[i]].name
            s.nearest_distance = float(nearest_distance[i])
            s.nearest_rms = _rms(thumbnails[i], thumbnails[nearest[i]])
    # Duplicates among the faces that passed, sharpest first (name order on ties).
    order = sorted(
        (i for i, s in enumerate(read) if not s.failed),
        key=lambda i: (-read[i].sharpness, read[i].name),
    )
    kept: set[int] = set()
    for i in order:
        for k in sorted(close[i], key=close[i].get):
            if k in kept and _rms(thumbnails[i], thumbnails[k]) <= (
                thresholds.max_duplicate_rms
            ):
                read[i].failed = ("duplicate",)
                read[i].duplicate_of = read[k].name
                break
        else:
            kept.add(i)
    for s in read:  # REASONS order.
        s.failed = tuple(r for r in REASONS if r in s.failed)
    return median


def _free_stem(name: str, folders: list[Path], planned: set[str]) -> str:
    """The stem of `name`, or `stem_1`, `stem_2`, ...: the first stem that no file in
    `folders` has and that is not in `planned` (stems already given out in this run),
    so that a face and its mask keep one stem and nothing is overwritten."""
    stem = os.path.splitext(name)[0]
    taken = set(planned)
    for folder in folders:
        if folder.is_dir():
            taken.update(os.path.splitext(p.name)[0] for p in folder.iterdir())
    candidate, k = stem, 0
    while candidate in taken:
        k += 1
        candidate = f"{stem}_{k}"
    return candidate


def _move(source: Path, destination: Path) -> None:
    """Renames without ever replacing an existing file."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if destination.exists():
        raise FaceswapError(f"Not moving {source}: {destination} already exists.")
    try:
        os.link(source, destination)  # Fails if the destination appeared meanwhile.
    except FileExistsError:
        raise FaceswapError(
            f"Not moving {source}: {destination} already exists."
        ) from None
    except OSError:  # No hard links here (another file system type): plain rename.
        os.rename(source, destination)
        return
    os.unlink(source)


def _csv_text(scores: list) -> str:
    def number(value, digits):
        return "" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in scores:
        moved = "" if s.moved_to is None else s.moved_to.as_posix()
        writer.writerow(
            [
                s.name,
                number(s.identity_distance, 4),
                number(s.sharpness, 2),
                number(s.sharpness_ratio, 3),
                number(s.yaw, 1),
                number(s.pitch, 1),
                s.nearest,
                number(s.nearest_distance, 4),
                number(s.nearest_rms, 2),
                ";".join(s.failed),
                s.verdict,
                s.reason,
                moved,
            ]
        )
    return buffer.getvalue()


def curate_faces(
    faces_dir: str | Path,
    references: Sequence[str | Path] | None = None,
    masks_dir: str | Path | None = None,
    dry_run: bool = False,
    thresholds: CurationThresholds | None = None,
    embedder=None,
    detector=None,
    progress: bool = False,
) -> CurationReport:
    """Scores every face in `faces_dir` and moves outliers to `rejected/<reason>/`.

    See the module docstring for the scores, thresholds and the order of reasons.
    Faces in `faces_dir/rejected/` (an earlier run's) are not read again. Writes
    `faces_dir/scores.csv` (one row per image file, atomically; in a dry run too,
    with `moved_to` saying where a face would go). With `masks_dir`, each moved
    face's mask (same file stem) moves to `masks_dir/rejected/<reason>/` under the
    face's new stem. Unreadable images follow `images.ImageReadPolicy`: skipped with
    one warning (verdict "skipped", not moved), more than 10 % fails.

    Args:
        faces_dir: str | Path. Folder of face crops (`images.IMAGE_EXTENSIONS`), one
            face each, any size from about 64 px (aligned or loose crops).
        references: photos of the person to keep (any photo with their face; the
            largest face of each is used), or None/empty for the folder's median
            identity (the person on most faces is kept).
        masks_dir: str | Path | None. The faces' mask folder, kept in step.
        dry_run: bool. Decide and write scores.csv, but move nothing.
        thresholds: CurationThresholds | None (defaults).
        embedder: identity embedder | None (`build_identity_embedder("mobilefacenet")`).
            The identity thresholds are cosine distances of its unit embeddings.
        detector: FaceDetector | None, for the reference photos.
        progress: bool. Show a tqdm bar.

    Returns:
        CurationReport.

    Raises:
        FileNotFoundError: `faces_dir` or a reference photo does not exist.
        FaceswapError: no face images in `faces_dir`, more than 10 % unreadable, a
            reference photo without a face or unreadable, a face without a mask in
            `masks_dir`, `masks_dir` is `faces_dir`, bad thresholds.
        OSError: a move or scores.csv cannot be written.
    """
    faces_dir = Path(faces_dir)
    thresholds = thresholds or CurationThresholds()
    paths = list_images(faces_dir)  # Files only: rejected/ is not read.
    if not paths:
        raise FaceswapError(
            f"No face images in {faces_dir} (outside {REJECTED}/); expected files "
            f"ending in {', '.join(IMAGE_EXTENSIONS)}."
        )
    masks = None
    if masks_dir is not None:
        masks_dir = Path(masks_dir)
        if masks_dir.exists() and os.path.samefile(masks_dir, faces_dir):
            raise FaceswapError(
                f"The mask folder {masks_dir} is the face folder; give the folder of "
                "the masks written for these faces."
            )
        masks = _match_masks(paths, masks_dir)
    if embedder is None:
        from faceswap_gan.faces.identity import build_identity_embedder

        embedder = build_identity_embedder("mobilefacenet")
    reference = None
    if references:
        reference = reference_embeddings(list(references), embedder, detector)
    policy = ImageReadPolicy(len(paths), f"face images in {faces_dir}")
    scores, embeddings, thumbnails = _score_folder(paths, embedder, policy, progress)
    report = CurationReport(
        faces_dir=faces_dir,
        scores=scores,
        scores_csv=faces_dir / SCORES_FILE,
        reference="photos" if reference is not None else "median",
        dry_run=bool(dry_run),
    )
    if not any(not s.unreadable for s in scores):
        raise FaceswapError(f"No readable face images in {faces_dir}.")
    report.median_sharpness = _judge(
        scores, embeddings, thumbnails, reference, thresholds
    )
    planned: dict[str, set[str]] = {reason: set() for reason in REASONS}
    for s in scores:
        if not s.failed:
            continue
        folders = [faces_dir / REJECTED / s.reason]
        if masks is not None:
            folders.append(masks_dir / REJECTED / s.reason)
        stem = _free_stem(s.name, folders, planned[s.reason])
        planned[s.reason].add(stem)
        s.moved_to = Path(REJECTED) / s.reason / (stem + Path(s.name).suffix)
        report.moves.append((faces_dir / s.name, faces_dir / s.moved_to))
        if masks is not None:
            mask = masks[Path(s.name).stem]
            target = masks_dir / REJECTED / s.reason / (stem + mask.suffix)
            report.mask_moves.append((mask, target))
    write_text(report.scores_csv, _csv_text(scores))
    if not dry_run:
        for source, destination in report.moves:
            _move(source, destination)
        for source, destination in report.mask_moves:
            _move(source, destination)
    if policy.skipped:
        policy.finish(stacklevel=2)
    extra = []
    if masks is not None:
        stems = {p.stem for p in paths}
        extra = [m.name for stem, m in masks.items() if stem not in stems]
    if extra:
        warnings.warn(
            f"{len(extra)} masks in {masks_dir} have no face in {faces_dir} "
            f"({', '.join(extra[:5])}); they were left where they are.",
            stacklevel=2,
        )
    return report
