"""Image conventions, converted in this one module.

- Frames and face crops on disk or from video: `(H, W, 3) uint8 RGB`.
- Model tensors: `(B, S, S, 3) float32 in [-1, 1]`, **RGB** channel order.
  (The original faceswap-GAN fed BGR to the model; this project uses RGB everywhere
  and converts from OpenCV's BGR only in `read_image` / `write_image`.)
- Masks: `(H, W)` or `(H, W, 1)` float32 in [0, 1] (uint8 0..255 on disk).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from faceswap_gan.errors import FaceswapError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def to_model_range(image: np.ndarray) -> np.ndarray:
    """uint8 `[0, 255]` -> float32 `[-1, 1]`, any shape."""
    return image.astype(np.float32) / 127.5 - 1.0


def from_model_range(tensor: np.ndarray) -> np.ndarray:
    """float `[-1, 1]` -> uint8 `[0, 255]` (clipped, rounded), any shape."""
    return np.clip((np.asarray(tensor) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def resize_faces(images: np.ndarray, size: int) -> np.ndarray:
    """Square resize of a stack: `(N, H, W[, C])` -> `(N, size, size[, C])`, same dtype
    (INTER_AREA, the right filter for shrinking 256-px crops to the model size).
    Returned unchanged when already at `size`."""
    if images.shape[1:3] == (size, size):
        return images
    return np.stack(
        [cv2.resize(i, (size, size), interpolation=cv2.INTER_AREA) for i in images]
    )


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
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )


def read_image(path: str | Path) -> np.ndarray:
    """Reads an image file as `(H, W, 3) uint8 RGB`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: OpenCV cannot decode the file (corrupt or not an image).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FaceswapError(
            f"Cannot decode image (corrupt or unsupported format): {path}"
        )
    return bgr_to_rgb(image)


def read_mask(path: str | Path) -> np.ndarray:
    """Reads a mask file as `(H, W) float32 in [0, 1]`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: OpenCV cannot decode the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Mask not found: {path}")
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise FaceswapError(f"Cannot decode mask image: {path}")
    return mask.astype(np.float32) / 255.0


def write_image(path: str | Path, image: np.ndarray, quality: int = 95) -> None:
    """Writes `(H, W, 3) uint8 RGB` or `(H, W) uint8` to `path` (format from suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = rgb_to_bgr(image) if image.ndim == 3 else image
    params = (
        [cv2.IMWRITE_JPEG_QUALITY, quality]
        if path.suffix.lower() in (".jpg", ".jpeg")
        else []
    )
    if not cv2.imwrite(str(path), data, params):
        raise FaceswapError(f"Cannot write image to {path}")
