"""68-point facial landmarks (iBUG-68 layout) with two backends.

- `"face_api"` (default, offline): the Keras port of @vladmandic/face-api's
  `FaceLandmark68Net` (`faceswap_gan.face_api`), with face-api's own crop: the box,
  clipped to the image and floored to whole pixels, zero-padded to a centred square,
  bilinearly resized to 112x112 (TF's legacy resize without half-pixel centres, as
  TF.js's `resizeBilinear`), and the unit-square output mapped back to the image.
- `"face_alignment"`: FAN of Bulat & Tzimiropoulos through the optional `face_alignment`
  package (PyTorch; `pip install -e .[fan]`), the model the original faceswap-GAN used.
  Its weights download on first use.

Reference:
    - @vladmandic/face-api 1.7.15 (MIT): `src/dom/extractFaceTensors.ts`,
      `src/ops/padToSquare.ts`, `src/dom/NetInput.ts` (`toBatchTensor`),
      `src/faceLandmarkNet/FaceLandmark68NetBase.ts` (`postProcess`).
    - A. Bulat and G. Tzimiropoulos, "How far are we from solving the 2D & 3D Face
      Alignment problem?", ICCV 2017 (https://github.com/1adrianb/face-alignment).
"""

import numpy as np

from faceswap_gan.errors import FaceswapError
from faceswap_gan.face_api.landmarks_net import LANDMARK_INPUT_SIZE, load_landmark_model

LANDMARK_BACKENDS = ("face_api", "face_alignment")


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        raise FaceswapError(
            f"image must be an (H, W, 3) uint8 RGB array; got shape {shape}."
        )
    if image.dtype != np.uint8:
        raise FaceswapError(f"image must be uint8 RGB; got dtype {image.dtype}.")


def _whole_image_box(image: np.ndarray) -> np.ndarray:
    return np.array([0, 0, image.shape[1], image.shape[0]], np.float64)


def _check_boxes(boxes) -> np.ndarray:
    """`(N, 4)` (or one `(4,)`) boxes -> `(N, 4)` float64; ValueError if malformed."""
    boxes = np.asarray(boxes, np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim == 1 and boxes.shape == (4,):
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise FaceswapError(
            f"boxes must be (N, 4) [x0, y0, x1, y1]; got {boxes.shape}."
        )
    if np.any(boxes[:, 2] <= boxes[:, 0]) or np.any(boxes[:, 3] <= boxes[:, 1]):
        raise FaceswapError("boxes need x1 > x0 and y1 > y0.")
    return boxes


def resize_bilinear_legacy(image: np.ndarray, size: int) -> np.ndarray:
    """TF.js `resizeBilinear(alignCorners=false, halfPixelCenters=false)` in numpy.

    Source coordinate of output pixel `i` is `i * in_size / size` (no half-pixel shift).

    Args:
        image: `(H, W, C)` array.
        size: int. Output side.

    Returns:
        `(size, size, C)` float32.
    """
    image = image.astype(np.float32)
    rows = np.arange(size) * (image.shape[0] / size)  # (size,) source y
    cols = np.arange(size) * (image.shape[1] / size)  # (size,) source x
    y0, x0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    y1 = np.minimum(y0 + 1, image.shape[0] - 1)
    x1 = np.minimum(x0 + 1, image.shape[1] - 1)
    wy, wx = (rows - y0)[:, None, None], (cols - x0)[None, :, None]
    top = image[y0][:, x0] * (1 - wx) + image[y0][:, x1] * wx  # (size, size, C)
    bottom = image[y1][:, x0] * (1 - wx) + image[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def face_api_crop(image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """face-api's landmark-net input for one box, and the map back to the image.

    Args:
        image: `(H, W, 3)` uint8 RGB.
        box: `(4,)` `[x0, y0, x1, y1]` pixels (may extend past the image).

    Returns:
        `(crop, mapping)`: crop `(112, 112, 3)` float32 RGB in `[0, 255]`; mapping
        `(3,)` float64 `[offset_x, offset_y, side]` with image point = unit-square
        point * side + offset.

    Raises:
        ValueError: the box does not overlap the image.
    """
    height, width = image.shape[:2]
    x0, y0 = max(box[0], 0.0), max(box[1], 0.0)  # Box.clipAtImageBorders, then floor
    w = np.floor(min(box[2] - x0, width - x0))
    h = np.floor(min(box[3] - y0, height - y0))
    x0, y0 = int(np.floor(x0)), int(np.floor(y0))
    if w <= 0 or h <= 0:
        raise FaceswapError(
            f"Box {box.tolist()} does not overlap the {width}x{height} image."
        )
    face = image[y0 : y0 + int(h), x0 : x0 + int(w)]
    side = int(max(w, h))
    diff = side - int(min(w, h))
    after = int(np.floor(diff * 0.5 + 0.5))  # JS Math.round; padToSquare centres
    pad = ((diff - after, after), (0, 0)) if w > h else ((0, 0), (diff - after, after))
    square = np.pad(face, (*pad, (0, 0)))  # (side, side, 3) zero-padded
    crop = resize_bilinear_legacy(square, LANDMARK_INPUT_SIZE)
    # postProcess: unit * side - (side - w) / 2 (or h), then + the box corner.
    offset = (x0 - (side - w) / 2, y0 - (side - h) / 2)
    return crop, np.array([*offset, side], np.float64)


class LandmarkDetector:
    """68-point facial landmark detector.

    Points follow the iBUG-68 layout: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47
    (36-41 is the eye at the image's left), mouth 48-67.

    Args:
        backend: str. `"face_api"` (default; offline Keras port of face-api's 68-point
            net, weights in the package) or `"face_alignment"` (FAN through the optional
            `face_alignment` package, `pip install -e .[fan]`; downloads its weights on
            first use).
        device: str. Torch device for `"face_alignment"` (`"cpu"` or `"cuda"`); unused
            by `"face_api"`.

    Raises:
        ValueError: unknown backend.
        RuntimeError: `"face_alignment"` is not installed or its weights cannot load.
    """

    def __init__(self, backend: str = "face_api", device: str = "cpu"):
        if backend not in LANDMARK_BACKENDS:
            raise FaceswapError(
                f"Unknown landmark backend {backend!r}; expected one of "
                f"{LANDMARK_BACKENDS}."
            )
        self.backend = backend
        if backend == "face_api":
            self._model = load_landmark_model()
        else:
            self._model = _load_face_alignment(device)

    def detect(self, image: np.ndarray, boxes: np.ndarray | None = None) -> np.ndarray:
        """Landmarks of the faces in `boxes`, in one batched forward pass.

        Args:
            image: `(H, W, 3)` uint8 RGB frame or crop.
            boxes: `(N, 4)` float `[x0, y0, x1, y1]` face boxes in `image` pixels (a
                detector box, e.g. `Face.box`); `None` treats the whole image as one
                face box (N = 1).

        Returns:
            `(N, 68, 2)` float32 `(x, y)` pixels in `image`.

        Raises:
            ValueError: `image` is not `(H, W, 3)` uint8, or a box is malformed or
                outside the image.
        """
        _check_image(image)
        boxes = _whole_image_box(image)[None] if boxes is None else _check_boxes(boxes)
        return self._detect([image] * len(boxes), boxes)

    def detect_batch(self, images, boxes: np.ndarray | None = None) -> np.ndarray:
        """Landmarks of one face per image, in one batched forward pass.

        Args:
            images: sequence (or `(N, H, W, 3)` array) of `(H, W, 3)` uint8 RGB images.
            boxes: `(N, 4)` float `[x0, y0, x1, y1]`, one face box per image in its
                pixels; `None` treats each whole image as the face box.

        Returns:
            `(N, 68, 2)` float32 `(x, y)` pixels, point set `i` in `images[i]`.

        Raises:
            ValueError: an image is not `(H, W, 3)` uint8, or the boxes are malformed.
        """
        for image in images:
            _check_image(image)
        if boxes is None:
            boxes = np.stack([_whole_image_box(image) for image in images])
        boxes = _check_boxes(boxes)
        if len(boxes) != len(images):
            raise FaceswapError(f"Got {len(images)} images but {len(boxes)} boxes.")
        return self._detect(list(images), boxes)

    def _detect(self, images, boxes):
        if len(boxes) == 0:
            return np.zeros((0, 68, 2), np.float32)
        if self.backend == "face_alignment":
            found = [
                self._detect_face_alignment(image, box[None])
                for image, box in zip(images, boxes, strict=True)
            ]
            return np.concatenate(found)
        pairs = [
            face_api_crop(image, box) for image, box in zip(images, boxes, strict=True)
        ]
        crops = np.stack([crop for crop, _ in pairs])  # (N, 112, 112, 3)
        maps = np.stack([mapping for _, mapping in pairs])  # (N, 3) x, y offset, side
        units = self._model.predict_on_batch(crops)  # (N, 136)
        units = np.asarray(units).reshape(-1, 68, 2)
        points = units * maps[:, None, 2:] + maps[:, None, :2]  # (N, 68, 2)
        return points.astype(np.float32)

    def _detect_face_alignment(self, image, boxes):
        found = self._model.get_landmarks_from_image(image, detected_faces=list(boxes))
        if found is None or len(found) != len(boxes):
            raise FaceswapError("face_alignment returned no landmarks for some boxes.")
        return np.stack([np.asarray(p)[:, :2] for p in found]).astype(np.float32)


def _load_face_alignment(device: str):
    """`face_alignment.FaceAlignment` (2D landmarks), or a RuntimeError that teaches."""
    try:
        import face_alignment
    except ImportError as error:
        raise FaceswapError(
            "Landmark backend 'face_alignment' needs the optional package "
            "face-alignment (with PyTorch): pip install -e .[fan] (or pip install "
            "face-alignment). The default backend 'face_api' works offline."
        ) from error
    try:
        return face_alignment.FaceAlignment(
            face_alignment.LandmarksType.TWO_D, device=device, flip_input=False
        )
    except Exception as error:  # network or file errors while fetching FAN weights
        raise FaceswapError(
            f"face_alignment is installed but its FAN weights could not be loaded "
            f"({error}); they download on first use, which needs internet. Use "
            f"backend 'face_api' (offline, the default) instead."
        ) from error
