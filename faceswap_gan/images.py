"""Image conventions, converted in this one module.

- Frames and face crops on disk or from video: `(H, W, 3) uint8 RGB`.
- Model tensors: `(B, S, S, 3) float32 in [-1, 1]`, **RGB** channel order.
  (The original faceswap-GAN fed BGR to the model; this project uses RGB everywhere
  and converts from OpenCV's BGR only in `read_image` / `write_image`.)
- Masks: `(H, W)` or `(H, W, 1)` float32 in [0, 1] (uint8 0..255 on disk).

Unreadable images (corrupt, truncated, or not images despite their name) follow one
policy everywhere a folder of images is read (`extract` from a folder, `masks`,
`train` / `dataset.FaceSet`, `evaluate`): `ImageReadPolicy` skips them with one warning
that counts and names them, and fails with FaceswapError when more than
`MAX_UNREADABLE_SHARE` (10 %) of the folder is unreadable. `read_image` treats a
truncated JPEG as unreadable (OpenCV would decode it with a grey bottom).

`write_image` writes atomically (`files.atomic_output`): a kill or an error leaves the
previous file, never half an image.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from faceswap_gan.errors import FaceswapError
from faceswap_gan.files import atomic_output, is_partial

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# Skip up to this share of unreadable files of a folder (with a warning); more fails.
MAX_UNREADABLE_SHARE = 0.1
_SHOWN_NAMES = 5  # Unreadable file names listed in a warning or an error.
_JPEG_TAIL = 1024  # Bytes read from the end of a JPEG to find its end-of-image marker.


def to_model_range(image: np.ndarray) -> np.ndarray:
    """uint8 `[0, 255]` -> float32 `[-1, 1]`, any shape."""
    return image.astype(np.float32) / 127.5 - 1.0


def from_model_range(tensor: np.ndarray) -> np.ndarray:
    """float `[-1, 1]` -> uint8 `[0, 255]` (clipped, rounded), any shape."""
    return np.clip((np.asarray(tensor) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def resize_face(
    image: np.ndarray, size: int, interpolation: int | None = None
) -> np.ndarray:
    """Square resize of one image: `(H, W[, C])` -> `(size, size[, C])`, same dtype.

    Args:
        image: np.ndarray, any dtype OpenCV resizes (uint8, float32).
        size: int >= 1. Output side in pixels.
        interpolation: OpenCV flag, or None: INTER_AREA to shrink (no aliasing),
            INTER_CUBIC to enlarge.

    Returns:
        The image itself when it is already `size` x `size`, else a resized copy.
    """
    if image.shape[:2] == (size, size):
        return image
    if interpolation is None:
        shrink = image.shape[0] > size
        interpolation = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    return cv2.resize(image, (size, size), interpolation=interpolation)


def resize_faces(images: np.ndarray, size: int) -> np.ndarray:
    """Square resize of a stack: `(N, H, W[, C])` -> `(N, size, size[, C])`, same dtype
    (`resize_face` on each: INTER_AREA to shrink 256-px crops to the model size).
    Returned unchanged when already at `size`."""
    if images.shape[1:3] == (size, size):
        return images
    return np.stack([resize_face(image, size) for image in images])


def check_frame(frame: np.ndarray, name: str = "frame") -> np.ndarray:
    """Returns `frame` if it is an `(H, W, 3) uint8 RGB` numpy array (the project's
    image convention) with H, W >= 1.

    Raises:
        FaceswapError: anything else, saying what was given and what to convert.
    """
    if not isinstance(frame, np.ndarray):
        raise FaceswapError(
            f"{name} must be a numpy array of shape (H, W, 3), dtype uint8, RGB; "
            f"got {type(frame).__name__}."
        )
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise FaceswapError(
            f"{name} must have shape (H, W, 3) and dtype uint8 (RGB); got shape "
            f"{frame.shape} and dtype {frame.dtype}. Convert grayscale or RGBA images "
            "to RGB and float images to uint8 0..255 first."
        )
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise FaceswapError(f"{name} is empty: shape {frame.shape}.")
    return frame


def _opencv_matrix(code: int) -> np.ndarray:
    basis = np.eye(3, dtype=np.float32).reshape(3, 1, 3)  # three pixels e_0, e_1, e_2
    return cv2.cvtColor(basis, code).reshape(3, 3).T.astype(np.float64)


# The project's one CIE XYZ: OpenCV's linear D65 matrices (`cv2.COLOR_RGB2XYZ` on
# float input, no sRGB gamma), the space faceswap-GAN v2.2 used for its colour
# transfer in training and conversion. `xyz = RGB_TO_XYZ @ rgb`.
RGB_TO_XYZ = _opencv_matrix(cv2.COLOR_RGB2XYZ)
XYZ_TO_RGB = _opencv_matrix(cv2.COLOR_XYZ2RGB)


def rgb_to_xyz(image: np.ndarray) -> np.ndarray:
    """`(..., 3)` RGB (any range) -> float32 CIE XYZ by `RGB_TO_XYZ` (linear)."""
    return (np.asarray(image, np.float64) @ RGB_TO_XYZ.T).astype(np.float32)


def xyz_to_rgb(image: np.ndarray) -> np.ndarray:
    """Inverse of `rgb_to_xyz`: `(..., 3)` XYZ -> float32 RGB (not clipped)."""
    return (np.asarray(image, np.float64) @ XYZ_TO_RGB.T).astype(np.float32)


def bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    """Swaps the first and third channel of `(..., 3)` images (BGR <-> RGB)."""
    return np.ascontiguousarray(image[..., ::-1])


rgb_to_bgr = bgr_to_rgb


def list_images(folder: str | Path) -> list[Path]:
    """Image files (by extension, see `IMAGE_EXTENSIONS`) in `folder`, sorted by name.

    Raises:
        FileNotFoundError: `folder` does not exist or is not a directory.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Image folder not found: {folder}")
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not is_partial(p)
    )


def is_truncated_jpeg(path: str | Path) -> bool:
    """True for a JPEG file whose end is missing (a cut download or copy).

    OpenCV decodes such a file with only a warning and fills the missing rows grey, so
    `read_image` asks this. A complete JPEG ends with the end-of-image marker FF D9
    (at most followed by padding). Checking that costs one read of the last kilobyte,
    and a truncated file cannot pass it by chance: inside the compressed data an FF
    byte is always followed by 00 or a restart marker, never D9. Files that do not end
    with the marker (data appended after the image, such as a motion photo's video)
    are rare, and only those are decoded strictly with Pillow, which raises on a
    truncated image: a full decode of every image would double the reading time.
    Files that are not JPEGs (by their first bytes) return False.

    Args:
        path: str | Path. An existing file.

    Returns:
        bool.

    Raises:
        OSError: the file cannot be opened.
    """
    with open(path, "rb") as handle:
        if handle.read(2) != b"\xff\xd8":  # Start-of-image marker: not a JPEG.
            return False
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(size - _JPEG_TAIL, 2))
        tail = handle.read()
    if tail.rstrip(b"\x00\r\n\t ").endswith(b"\xff\xd9"):
        return False
    try:
        from PIL import Image
    except ImportError:  # No strict decoder: a JPEG without its end marker is cut.
        return True
    try:
        with Image.open(path) as image:
            image.load()  # Raises OSError "image file is truncated".
    except (OSError, SyntaxError, ValueError):
        return True
    return False


def read_image(path: str | Path) -> np.ndarray:
    """Reads an image file as `(H, W, 3) uint8 RGB`.

    Raises:
        FileNotFoundError: the file does not exist.
        FaceswapError: OpenCV cannot decode the file (corrupt or not an image), or it
            is a truncated JPEG (`is_truncated_jpeg`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FaceswapError(
            f"Cannot decode image (corrupt or unsupported format): {path}"
        )
    if is_truncated_jpeg(path):
        raise FaceswapError(f"Truncated JPEG (the end of the file is missing): {path}")
    return bgr_to_rgb(image)


def read_mask(path: str | Path) -> np.ndarray:
    """Reads a mask file as `(H, W) float32 in [0, 1]`.

    Raises:
        FileNotFoundError: the file does not exist.
        FaceswapError: OpenCV cannot decode the file, or it is a truncated JPEG.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Mask not found: {path}")
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise FaceswapError(f"Cannot decode mask image: {path}")
    if is_truncated_jpeg(path):
        raise FaceswapError(f"Truncated JPEG mask (the end is missing): {path}")
    return mask.astype(np.float32) / 255.0


def write_image(path: str | Path, image: np.ndarray, quality: int = 95) -> None:
    """Writes `(H, W, 3) uint8 RGB` or `(H, W) uint8` to `path` (format from suffix).

    Atomic (`files.atomic_output`): the image is encoded in memory, written to a
    hidden temporary file beside `path` and renamed onto it, so a kill or an error
    leaves the previous file (or none), never half an image. Replacing `path` never
    writes through a hard link to another file. The folder is created.

    Args:
        path: str | Path. The file; its suffix picks the format (`.jpg`, `.png`, ...).
        image: np.ndarray. `(H, W, 3) uint8 RGB` or `(H, W) uint8`.
        quality: int. JPEG quality (0..100).

    Raises:
        FaceswapError: the suffix is not an image format or the image is empty.
        OSError: the folder cannot be created or written (read-only, full disk, a
            file where a folder belongs).
    """
    path = Path(path)
    data = rgb_to_bgr(image) if image.ndim == 3 else image
    params = (
        [cv2.IMWRITE_JPEG_QUALITY, quality]
        if path.suffix.lower() in (".jpg", ".jpeg")
        else []
    )
    try:
        ok, encoded = cv2.imencode(path.suffix, data, params)
    except cv2.error as error:
        ok, reason = False, str(error).strip().splitlines()[-1]
    else:
        reason = "encoder failed"
    if not ok:
        raise FaceswapError(
            f"Cannot encode a {image.shape} {image.dtype} image as {path.suffix!r} for "
            f"{path} ({reason}); use an image suffix such as .jpg or .png."
        )
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        handle.write(encoded.tobytes())


class UnreadableImageWarning(UserWarning):
    """Some images of a folder were skipped as unreadable (see `ImageReadPolicy`)."""


def _names(paths: Sequence[Path]) -> str:
    """`a.jpg, b.jpg, ... and N more` (the first `_SHOWN_NAMES` names)."""
    shown = ", ".join(Path(p).name for p in paths[:_SHOWN_NAMES])
    more = len(paths) - _SHOWN_NAMES
    return shown + (f" and {more} more" if more > 0 else "")


class ImageReadPolicy:
    """The project's one policy for unreadable images in a folder being read.

    An image that cannot be read (OpenCV cannot decode it, a truncated JPEG, a file
    that is not an image despite its name, a file that vanished) is skipped; when the
    folder is done, `finish` issues one `UnreadableImageWarning` that counts and names
    the skipped files (the first 5, "and N more"). When more than
    `MAX_UNREADABLE_SHARE` (10 %) of the `total` files are unreadable, `skip` raises
    FaceswapError as soon as that is certain: a folder that is mostly broken is a
    mistake (wrong folder, failed copy), not a few bad files.

    Used by `extract` (folder input), `masks`, `dataset.FaceSet` (`train`) and
    `evaluation.faces.load_faces` (`evaluate`).

    Example:
        policy = ImageReadPolicy(len(paths), f"face images in {folder}")
        for path in paths:
            image = policy.read(path)
            if image is None:
                continue  # skipped
            ...
        policy.finish()

    Args:
        total: int. Number of files that will be read (the share's denominator).
        what: str. Plural noun phrase for messages, e.g. "face images in data/a".
        max_share: float. The share of unreadable files still accepted.

    Attributes:
        skipped: list[Path]. The unreadable files, in the order met.
    """

    def __init__(
        self, total: int, what: str, max_share: float = MAX_UNREADABLE_SHARE
    ) -> None:
        self.total, self.what, self.max_share = int(total), what, float(max_share)
        self.skipped: list[Path] = []

    def read(
        self, path: str | Path, reader: Callable[[Path], np.ndarray] = read_image
    ) -> np.ndarray | None:
        """`reader(path)`, or None after `skip(path)` when the file is unreadable.

        Args:
            path: str | Path. The file.
            reader: `read_image` (default), `read_mask` or any function of a path
                that raises FaceswapError or OSError for an unreadable file.

        Returns:
            np.ndarray, or None for a skipped file.

        Raises:
            FaceswapError: too many unreadable files (see `skip`).
        """
        try:
            return reader(Path(path))
        except (FaceswapError, OSError):
            self.skip(path)
            return None

    def skip(self, path: str | Path) -> None:
        """Records `path` as unreadable.

        Raises:
            FaceswapError: more than `max_share` of `total` files are now unreadable;
                the message counts and names them.
        """
        self.skipped.append(Path(path))
        if len(self.skipped) > self.max_share * self.total:
            allowed = int(self.max_share * self.total)
            raise FaceswapError(
                f"Too many unreadable {self.what}: {len(self.skipped)} of "
                f"{self.total} found so far are corrupt, truncated or not images "
                f"({_names(self.skipped)}); at most {self.max_share:.0%} ({allowed} "
                f"of {self.total}) may be skipped. Remove or replace them, or check "
                "that this is the right folder."
            )

    def finish(self, stacklevel: int = 2) -> None:
        """Warns once (`UnreadableImageWarning`) when files were skipped.

        Args:
            stacklevel: int. As `warnings.warn`; 2 points at the caller.
        """
        if self.skipped:
            warnings.warn(
                f"Skipped {len(self.skipped)} of {self.total} {self.what}: "
                f"unreadable (corrupt, truncated or not images): "
                f"{_names(self.skipped)}.",
                UnreadableImageWarning,
                stacklevel=stacklevel + 1,
            )
