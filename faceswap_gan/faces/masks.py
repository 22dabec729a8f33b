"""Face-part masks from landmarks: eye masks for training, part masks for blending.

- `eye_mask`: faceswap-GAN v2.2 `prep_binary_masks.ipynb` (68-point landmarks, convex
  hulls of both eyes, 13x13 dilation, 7x7 Gaussian blur at 256 px).
- `crude_eye_mask`: the "crude" rectangles of `preprocess.py` from the 5 MTCNN points.
- `part_mask`: the segmentation of alvinahmadov/faceswap-parts (convex hulls of
  eyebrows, nose, eyes, mouth; 9x9 dilation applied twice; no blur).
- `make_eye_masks`: the prep_binary_masks notebook as a function over a folder.

Landmarks follow the iBUG 300-W 68-point layout (Sagonas et al., 2013).
Masks are `(H, W)` float32 in [0, 1]; on disk they are uint8 grayscale JPGs.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from faceswap_gan.errors import FaceswapError
from faceswap_gan.files import check_output_not_input, same_file

# name -> index ranges of the iBUG-68 layout; each range is filled as one convex hull.
FACE_PARTS: dict[str, tuple[range, ...]] = {
    "eyebrows": (range(17, 22), range(22, 27)),
    "nose": (range(27, 36),),
    "eyes": (range(36, 42), range(42, 48)),
    "mouth": (range(48, 68),),
}
REFERENCE_SIZE = 256  # The original's mask kernels are for 256-px face crops.


def _scaled_kernel(pixels_at_256: int, shape: tuple[int, int]) -> int:
    """A kernel side scaled from a 256-px crop to `shape`; odd, >= 1 (0 stays 0)."""
    if pixels_at_256 <= 0:
        return 0
    side = int(round(pixels_at_256 * min(shape[:2]) / REFERENCE_SIZE))
    return max(side // 2 * 2 + 1, 1)


def _check_landmarks(landmarks: np.ndarray, count: int) -> np.ndarray:
    landmarks = np.asarray(landmarks, np.float32)
    if landmarks.shape != (count, 2) or not np.all(np.isfinite(landmarks)):
        raise FaceswapError(
            f"landmarks must be a finite ({count}, 2) array of (x, y) pixels; got "
            f"{landmarks.shape}."
        )
    return landmarks


def _fill_hulls(
    landmarks68: np.ndarray, ranges: Iterable[range], shape: tuple[int, int]
) -> np.ndarray:
    """uint8 `(H, W)` 0/255 with the convex hull of each index range filled."""
    canvas = np.zeros(shape[:2], np.uint8)
    for indices in ranges:
        points = np.round(landmarks68[list(indices)]).astype(np.int32)
        cv2.fillConvexPoly(canvas, cv2.convexHull(points), 255, lineType=cv2.LINE_AA)
    return canvas


def _dilate_blur(mask: np.ndarray, dilate: int, blur: int) -> np.ndarray:
    """uint8 mask -> float32 [0, 1] after square dilation and Gaussian blur (sides)."""
    if dilate > 1:
        mask = cv2.dilate(mask, np.ones((dilate, dilate), np.uint8))
    if blur > 1:
        mask = cv2.GaussianBlur(mask, (blur | 1, blur | 1), 0)
    return mask.astype(np.float32) / 255.0


def part_mask(
    landmarks68: np.ndarray,
    parts: Iterable[str],
    shape: tuple[int, int],
    dilate: int | None = None,
    blur: int | None = None,
) -> np.ndarray:
    """Mask of the chosen face parts (convex hulls of their landmarks, dilated).

    Args:
        landmarks68: np.ndarray `(68, 2)` (x, y) pixels of `shape`, iBUG-68 layout.
        parts: names from `FACE_PARTS` ("eyebrows", "nose", "eyes", "mouth"), any
            combination, e.g. `("eyes", "mouth")`.
        shape: (H, W) of the output mask (extra entries ignored).
        dilate: int. Side in pixels of the square dilation kernel; None = 17 px for a
            256-px face, scaled to `shape` (the fork's 9x9 kernel applied twice).
        blur: int. Side in pixels of the Gaussian blur kernel; None or 0 = no blur (the
            fork's (1, 1) "blur").

    Returns:
        np.ndarray `(H, W)` float32 in [0, 1].

    Raises:
        ValueError: an unknown part name, no parts, or bad landmarks.
    """
    parts = [parts] if isinstance(parts, str) else list(parts)
    unknown = [p for p in parts if p not in FACE_PARTS]
    if unknown or not parts:
        raise FaceswapError(
            f"parts must be a non-empty selection of {sorted(FACE_PARTS)}; got {parts}."
        )
    landmarks68 = _check_landmarks(landmarks68, 68)
    ranges = [r for name in parts for r in FACE_PARTS[name]]
    canvas = _fill_hulls(landmarks68, ranges, shape)
    dilate = _scaled_kernel(17, shape) if dilate is None else int(dilate)
    return _dilate_blur(canvas, dilate, int(blur or 0))


def eye_mask(landmarks68: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Eye mask as faceswap-GAN's `prep_binary_masks.ipynb`.

    Fills the convex hulls of points 36-41 and 42-47, dilates with a 13x13 kernel and
    blurs with a 7x7 Gaussian at 256 px (kernels scaled for other sizes).

    Args:
        landmarks68: np.ndarray `(68, 2)` (x, y) pixels of `shape`, iBUG-68 layout.
        shape: (H, W) of the output mask, normally the face crop's.

    Returns:
        np.ndarray `(H, W)` float32 in [0, 1].
    """
    landmarks68 = _check_landmarks(landmarks68, 68)
    canvas = _fill_hulls(landmarks68, FACE_PARTS["eyes"], shape)
    return _dilate_blur(canvas, _scaled_kernel(13, shape), _scaled_kernel(7, shape))


def crude_eye_mask(
    landmarks5: np.ndarray, box: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """The "crude" eye mask of faceswap-GAN's `preprocess.py` from MTCNN points.

    A filled rectangle of +-h/15 rows by +-w/8 columns around each eye point, where
    `h, w` are the face box's height and width.

    Args:
        landmarks5: np.ndarray `(5, 2)` (x, y) pixels; rows 0 and 1 are the eyes.
        box: np.ndarray `(4,)` `[x0, y0, x1, y1]` face box in the same pixels.
        shape: (H, W) of the output (the frame that `landmarks5` and `box` refer to).

    Returns:
        np.ndarray `(H, W)` float32, 1 inside the rectangles, else 0.
    """
    landmarks5 = _check_landmarks(landmarks5, 5)
    x0, y0, x1, y1 = np.asarray(box, np.float64)
    half_h, half_w = (y1 - y0) / 15, (x1 - x0) / 8
    mask = np.zeros(shape[:2], np.float32)
    for x, y in landmarks5[:2]:
        rows = slice(max(int(y - half_h), 0), max(int(y + half_h), 0))
        cols = slice(max(int(x - half_w), 0), max(int(x + half_w), 0))
        mask[rows, cols] = 1.0
    return mask


@dataclass
class MaskReport:
    """What `make_eye_masks` did.

    Attributes:
        output_dir: Path. Where the masks went.
        images: int. Face images read.
        masks: int. Mask files written (one per readable image).
        no_landmarks: list[str]. Names of images where no face or landmarks were found
            (their masks are all black).
        skipped: list[str]. Names of unreadable images (no mask written; see
            `images.ImageReadPolicy`).
    """

    output_dir: Path
    images: int = 0
    masks: int = 0
    no_landmarks: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _check_mask_outputs(images: list[Path], faces_dir: Path, output_dir: Path) -> None:
    """Refuses an output folder that is the face folder, or a mask that would be one
    of the face images (a hard or symbolic link to it)."""
    check_output_not_input(output_dir, [faces_dir], "output folder")
    clashes = [p for p in images if same_file(output_dir / p.name, p)]
    if clashes:
        names = ", ".join(p.name for p in clashes[:5])
        more = f" and {len(clashes) - 5} more" if len(clashes) > 5 else ""
        raise FaceswapError(
            f"The output folder {output_dir} holds links to the face images "
            f"({names}{more}): writing the masks there would replace the faces. "
            "Choose an output folder outside the face folder, without links to it."
        )
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(output_dir)
        )


def make_eye_masks(
    faces_dir: str | Path,
    output_dir: str | Path,
    backend: str = "face_api",
    detector=None,
    progress: bool = True,
) -> MaskReport:
    """Writes one eye mask per face image, as faceswap-GAN's `prep_binary_masks.ipynb`.

    For each image in `faces_dir` (face crops, aligned or not): find the face with
    `FaceDetector` (the original let face-alignment's own detector do this), get its
    68 landmarks inside that box, and save `eye_mask` as a grayscale image under the
    same file name in `output_dir`. Where no face is found the mask is all black and
    the name is listed in `MaskReport.no_landmarks`. The face box matters: face-api's
    landmark net expects a detector-style box, so a loose crop given whole would put
    the landmarks in the wrong place.

    Each mask is written atomically (`images.write_image`). Unreadable images
    (corrupt, truncated JPEGs, not images) are skipped with one warning, up to
    `images.MAX_UNREADABLE_SHARE` (10 %) of the folder (`images.ImageReadPolicy`).
    The output folder must not be the face folder (nor a link to it), and no mask may
    land on a face image (a hard link to it in the output folder): both are refused
    before anything is written.

    Args:
        faces_dir: str | Path. Folder of face images (`images.IMAGE_EXTENSIONS`).
        output_dir: str | Path. Created if needed.
        backend: str. `LandmarkDetector` backend: "face_api" (default, offline) or
            "face_alignment" (optional FAN package).
        detector: FaceDetector | None. Defaults to `FaceDetector()`.
        progress: bool. Show a tqdm bar.

    Returns:
        MaskReport.

    Raises:
        FileNotFoundError: `faces_dir` does not exist.
        NotADirectoryError: `output_dir` is a file.
        FaceswapError: `faces_dir` holds no images, more than 10 % of them are
            unreadable, `output_dir` is `faces_dir` or holds links to its images, or
            an unknown backend.
        OSError: `output_dir` cannot be created or written.
        RuntimeError: backend "face_alignment" is not installed.
    """
    from tqdm.auto import tqdm

    from faceswap_gan.faces.detection import FaceDetector
    from faceswap_gan.faces.landmarks import LandmarkDetector
    from faceswap_gan.images import (
        IMAGE_EXTENSIONS,
        ImageReadPolicy,
        list_images,
        write_image,
    )

    faces_dir = Path(faces_dir)
    images = list_images(faces_dir)
    if not images:
        raise FaceswapError(
            f"No images in {faces_dir}; expected {IMAGE_EXTENSIONS} files."
        )
    report = MaskReport(output_dir=Path(output_dir))
    _check_mask_outputs(images, faces_dir, report.output_dir)
    report.output_dir.mkdir(parents=True, exist_ok=True)
    landmarks = LandmarkDetector(backend=backend)
    detector = detector or FaceDetector()
    policy = ImageReadPolicy(len(images), f"face images in {faces_dir}")
    for path in tqdm(images, disable=not progress, desc="eye masks", unit="face"):
        image = policy.read(path)
        if image is None:
            continue
        report.images += 1
        faces = detector.detect(image)
        mask = np.zeros(image.shape[:2], np.float32)
        if faces:
            points = landmarks.detect(image, faces[0].box[None])[0]  # (68, 2)
            mask = eye_mask(points, image.shape)
        else:
            report.no_landmarks.append(path.name)
        write_image(report.output_dir / path.name, (mask * 255 + 0.5).astype(np.uint8))
        report.masks += 1
    report.skipped = [p.name for p in policy.skipped]
    policy.finish(stacklevel=2)
    return report
