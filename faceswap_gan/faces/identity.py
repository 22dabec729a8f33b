"""128-d face identity embeddings (dlib's ResNet through face-api's Keras port).

The recognition net expects a dlib "face chip": 150x150 RGB, the face aligned to dlib's
mean face shape with padding 0.25 (dlib `get_face_chip_details(shape, 150, 0.25)`), so
that eyes, nose and mouth sit at fixed places and the face (brows to chin) fills the
middle two thirds. `FaceEmbedder` makes that chip from any face crop:

1. 68 landmarks with face-api's landmark net, first with the whole crop as the face box,
   then again with a square box of 1.1x the side of the landmarks' bounding box (the
   net was trained on detector boxes, which are tighter than most crops).
2. A least-squares similarity transform (Umeyama) from 33 of those points (nose, eyes,
   upper mouth: dlib's choice) to dlib's mean face shape; a bilinear warp to 150x150.

So it works with any crop that holds one whole, roughly frontal face: our aligned
training crops (`faceswap_gan.faces.alignment.align`, 64-256 px; the chip then has black
corners, as dlib's has outside the image) and the 256x256 crops of tests/data/faces
(1.45x the detector box, not aligned). Measured on those test crops (two women, 16
crops each): same-person distances 0.20-0.55 (A, grimacing) and 0.16-0.40 (B),
different-person distances 0.61-0.83; a plain centre crop instead gave overlapping
ranges (same up to 0.58, different from 0.54). Aligned 64-256 px crops of other frames
of the same videos were on average 0.26-0.44 from the same person's test crops and
0.65-0.75 from the other person's.

This is the `"face_api"` identity backend. The perceptual loss of training uses the
same network, so identity scored with it is biased towards swaps optimised against it;
evaluation therefore defaults to the independent `"mobilefacenet"` backend
(`faceswap_gan.faces.mobilefacenet`). `build_identity_embedder` builds either;
`embed_crops` turns crops into embeddings with either (batched, unit norm or raw);
`refined_landmarks` is the two-pass landmark search both use.

Reference:
    - D. King, dlib `dlib_face_recognition_resnet_model_v1` and
      `get_face_chip_details` (dlib/image_transforms/interpolation.h; Boost licence).
    - @vladmandic/face-api 1.7.15 (MIT), `src/faceRecognitionNet/`.
"""

from pathlib import Path

import cv2
import numpy as np

from faceswap_gan.errors import FaceswapError
from faceswap_gan.evaluation.metrics import unit_vectors
from faceswap_gan.face_api.recognition import (
    RECOGNITION_INPUT_SIZE,
    load_recognition_model,
)
from faceswap_gan.faces.alignment import umeyama
from faceswap_gan.faces.landmarks import LandmarkDetector

CHIP_PADDING = 0.25  # dlib's padding for the recognition chip.
REFINE_BOX_SCALE = 1.1  # Second landmark pass: box side / landmark bounding-box side.
# dlib's mean face shape, points 17-67 of iBUG-68, in the unit square (x, then y).
# fmt: off
_MEAN_FACE_X = (
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124,
    0.904991, 0.98004, 0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036,
    0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918,
    0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149,
    0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
    0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874,
    0.553364, 0.490127, 0.42689,
)
_MEAN_FACE_Y = (
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891,
    0.0187482, 0.038915, 0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326,
    0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733,
    0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099,
    0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805,
    0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746,
    0.784792, 0.824182, 0.831803, 0.824182,
)
# fmt: on
# dlib skips the brows (17-26) and the lower lip (55-59, 65-67).
CHIP_POINT_INDICES = tuple(i for i in range(27, 68) if not (55 <= i <= 59 or i >= 65))


def chip_template(
    size: int = RECOGNITION_INPUT_SIZE, padding: float = CHIP_PADDING
) -> np.ndarray:
    """dlib's targets for `CHIP_POINT_INDICES` in a `size` chip: `(33, 2)` (x, y)."""
    mean = np.stack([_MEAN_FACE_X, _MEAN_FACE_Y], axis=1)[
        np.array(CHIP_POINT_INDICES) - 17
    ]
    return (padding + mean) / (2 * padding + 1) * size  # (33, 2) pixels


def face_chip(
    image: np.ndarray, landmarks68: np.ndarray, size: int = RECOGNITION_INPUT_SIZE
) -> np.ndarray:
    """dlib-style aligned face chip (`extract_image_chip(get_face_chip_details(...))`).

    Args:
        image: `(H, W, 3)` uint8 RGB.
        landmarks68: `(68, 2)` float (x, y) pixels in `image`, iBUG-68 order.
        size: int. Chip side in pixels. Defaults to 150.

    Returns:
        `(size, size, 3)` uint8 RGB; outside the image is black, as in dlib.
    """
    points = np.asarray(landmarks68, np.float64)[list(CHIP_POINT_INDICES)]
    return warp_chip(image, points, chip_template(size), size)


def warp_chip(
    image: np.ndarray, points: np.ndarray, template: np.ndarray, size: int
) -> np.ndarray:
    """Warps `image` so that `points` land on `template` (least-squares similarity,
    Umeyama) in a `size` x `size` chip; bilinear, black outside the image.

    Args:
        image: `(H, W, 3)` uint8 RGB.
        points: `(K, 2)` float (x, y) pixels in `image`.
        template: `(K, 2)` float (x, y) pixels in the chip.
        size: int. Chip side in pixels.

    Returns:
        `(size, size, 3)` uint8 RGB.
    """
    matrix = umeyama(np.asarray(points, np.float64), template)[:2]  # image -> chip
    return cv2.warpAffine(
        image,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


class FaceEmbedder:
    """128-d identity embedding of face crops (L2 distance < 0.6: same person).

    Expects crops holding one whole, roughly frontal face (aligned or not, any size
    from about 64 px): it finds 68 landmarks, warps a dlib face chip and runs the
    recognition net (see the module docstring). Training's perceptual loss uses the
    same net, so its identity scores of swaps are biased; see `build_identity_embedder`.

    Args:
        weights_dir: str | Path | None. Folder with face-api's weights; `None` for the
            copies vendored in `faceswap_gan/data/weights/face_api`.

    Raises:
        FileNotFoundError: the weights are missing.
    """

    backend = "face_api"  # Its name in `IDENTITY_BACKENDS`.

    def __init__(self, weights_dir: str | Path | None = None):
        self.model = load_recognition_model(weights_dir)
        self.landmarks = LandmarkDetector("face_api")

    def chips(self, faces: np.ndarray) -> np.ndarray:
        """dlib chips of `(N, H, W, 3)` uint8 RGB crops -> `(N, 150, 150, 3)` uint8."""
        faces = check_faces(faces)
        points = refined_landmarks(self.landmarks, faces)  # (N, 68, 2)
        size = RECOGNITION_INPUT_SIZE
        chips = [face_chip(face, p) for face, p in zip(faces, points, strict=True)]
        return np.stack(chips) if chips else np.zeros((0, size, size, 3), np.uint8)

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        """Embeddings of ready dlib chips `(N, 150, 150, 3)` uint8/float RGB 0..255.

        Returns:
            `(N, 128)` float32.
        """
        chips = np.asarray(chips, np.float32)
        if chips.ndim != 4 or chips.shape[1:] != (RECOGNITION_INPUT_SIZE,) * 2 + (3,):
            raise FaceswapError(f"chips must be (N, 150, 150, 3); got {chips.shape}.")
        if len(chips) == 0:
            return np.zeros((0, 128), np.float32)
        return np.asarray(self.model.predict_on_batch(chips), np.float32)

    def embed(self, faces: np.ndarray) -> np.ndarray:
        """Embeds face crops.

        Args:
            faces: `(N, H, W, 3)` uint8 RGB face crops (a single `(H, W, 3)` crop is
                treated as N = 1).

        Returns:
            `(N, 128)` float32 embeddings (not normalised; norms are about 1 to 1.5).

        Raises:
            ValueError: `faces` is not uint8 `(N, H, W, 3)`.
        """
        return self.embed_chips(self.chips(faces))


def embed_crops(
    embedder, crops, batch_size: int | None = None, normalise: bool = True
) -> np.ndarray:
    """Identity embeddings of face crops: the one way crops become embeddings.

    Every crop goes through `embedder.embed` (landmarks, chip, network), `batch_size`
    crops per call.

    Args:
        embedder: an identity embedder (`build_identity_embedder`).
        crops: `(N, H, W, 3)` uint8 RGB array, or a sequence of N `(H, W, 3)` uint8
            RGB crops of one size (N may be 0; a single `(H, W, 3)` array is N = 1).
        batch_size: int >= 1, crops per call of `embedder.embed`; `None` (default):
            all N in one call.
        normalise: bool. True (default): scale each embedding to L2 norm 1
            (`evaluation.metrics.unit_vectors`), for cosine similarity as a dot
            product; False: the embedder's raw output.

    Returns:
        `(N, D)` embeddings (D = 192 for "mobilefacenet", 128 for "face_api"):
        float64 with L2 norm 1 when `normalise`, else float32 as the embedder gives
        them (MobileFaceNet: norm 1; face_api: norms about 1 to 1.5).

    Raises:
        ValueError: `batch_size` < 1, or the crops differ in size.
        FaceswapError (a ValueError): the crops are not uint8 `(N, H, W, 3)` RGB.
    """
    if batch_size is not None and int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size!r}.")
    if isinstance(crops, np.ndarray) or len(crops):
        faces = check_faces(crops)
    else:  # An empty sequence: `embed` of an empty batch gives (0, D) float32.
        faces = np.zeros((0, 1, 1, 3), np.uint8)
    if batch_size is None or len(faces) == 0:
        embeddings = embedder.embed(faces)
    else:
        step = int(batch_size)
        embeddings = np.concatenate(
            [embedder.embed(faces[i : i + step]) for i in range(0, len(faces), step)]
        )
    embeddings = np.asarray(embeddings, np.float32)
    return unit_vectors(embeddings) if normalise else embeddings


def refined_landmarks(detector, faces: np.ndarray) -> np.ndarray:
    """68 landmarks of one face per crop, in two passes.

    The landmark net was trained on detector boxes, which are tighter than most
    crops: the whole crop is the box first, then a square box of `REFINE_BOX_SCALE`
    (1.1) times the side of the found points' bounding box, on their centre.

    Args:
        detector: `faceswap_gan.faces.landmarks.LandmarkDetector`.
        faces: `(N, H, W, 3)` uint8 RGB crops (N may be 0).

    Returns:
        `(N, 68, 2)` float32 (x, y) pixels in the crops.

    Raises:
        ValueError: as `LandmarkDetector.detect_batch` (bad images).
    """
    if len(faces) == 0:
        return np.zeros((0, 68, 2), np.float32)
    points = detector.detect_batch(faces)  # (N, 68, 2), whole crop as box
    low, high = points.min(axis=1), points.max(axis=1)  # (N, 2)
    half = (high - low).max(axis=1, keepdims=True) * REFINE_BOX_SCALE / 2  # (N, 1)
    centre = (low + high) / 2  # (N, 2)
    boxes = np.concatenate([centre - half, centre + half], axis=1)  # (N, 4)
    return detector.detect_batch(faces, boxes)  # (N, 68, 2)


def check_faces(faces) -> np.ndarray:
    """`faces` as an `(N, H, W, 3)` uint8 array (a single `(H, W, 3)` becomes N = 1).

    Raises:
        ValueError: not uint8, or not `(N, H, W, 3)` / `(H, W, 3)`.
    """
    faces = np.asarray(faces)
    if faces.ndim == 3:
        faces = faces[None]
    if faces.ndim != 4 or faces.shape[-1] != 3 or faces.dtype != np.uint8:
        raise FaceswapError(
            f"faces must be (N, H, W, 3) uint8 RGB; got {faces.shape} {faces.dtype}."
        )
    return faces


def embedding_distance(a: np.ndarray, b: np.ndarray) -> float | np.ndarray:
    """L2 distance between embeddings, broadcasting over leading axes.

    Args:
        a: `(..., 128)` float embedding(s).
        b: `(..., 128)` float embedding(s), broadcastable with `a`.

    Returns:
        float for two single embeddings, else ndarray of the broadcast leading shape.
    """
    distance = np.linalg.norm(
        np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=-1
    )
    return float(distance) if distance.ndim == 0 else distance


def same_person(a: np.ndarray, b: np.ndarray, threshold: float = 0.6) -> bool:
    """Whether two `(128,)` embeddings are closer than `threshold` (dlib's 0.6)."""
    distance = embedding_distance(a, b)
    if not isinstance(distance, float):
        raise FaceswapError(
            "same_person compares two single (128,) embeddings; use "
            "embedding_distance for batches."
        )
    return distance < threshold


IDENTITY_BACKENDS = ("mobilefacenet", "face_api")


def build_identity_embedder(backend: str = "mobilefacenet", weights_dir=None):
    """The identity embedder of `backend`, for scoring swaps.

    Both embedders share one interface (`chips`, `embed_chips`, `embed` of
    `(N, H, W, 3)` uint8 RGB crops, and a `landmarks` detector) and are compared by
    cosine similarity (`faceswap_gan.evaluation.metrics.cosine_similarity`).

    - `"mobilefacenet"` (default): `faceswap_gan.faces.mobilefacenet.
      MobileFaceNetEmbedder`, 192-d, unit norm. Independent of training.
    - `"face_api"`: `FaceEmbedder` (dlib's ResNet), 128-d. This project's perceptual
      loss uses the same network, so it scores a swap with the network the generator
      was optimised against: a biased (optimistic) identity score, kept for
      comparison with earlier reports.

    Args:
        backend: str. One of `IDENTITY_BACKENDS`.
        weights_dir: str | Path | None. The backend's weights folder; `None` for the
            vendored copies.

    Returns:
        MobileFaceNetEmbedder | FaceEmbedder.

    Raises:
        ValueError: unknown backend (names the allowed values).
        FileNotFoundError: the weights are missing.
    """
    if backend == "mobilefacenet":
        from faceswap_gan.faces.mobilefacenet import MobileFaceNetEmbedder

        return MobileFaceNetEmbedder(weights_dir)
    if backend == "face_api":
        return FaceEmbedder(weights_dir)
    raise FaceswapError(
        f"Unknown identity backend {backend!r}; expected one of {IDENTITY_BACKENDS}."
    )
