"""Face alignment from five landmarks: Umeyama similarity + affine warp, and inverse.

As faceswap-GAN v2.2 `converter/landmarks_alignment.py`: the five MTCNN points are
mapped onto fixed average positions with a least-squares similarity transform
(Umeyama, 1991), then the frame is warped with `cv2.warpAffine(..., BORDER_REPLICATE)`.
Here the warp goes straight from the frame to a `size x size` crop, and every face is
aligned with its own landmarks (the original's `preprocess.py` aligned all faces of a
frame with face 0's points, REFERENCE 1.10 item 5). A second template,
"dfl_whole_face", frames faces as FaceFusion does for DeepFaceLab/DeepFaceLive .dfm
models (`extract --alignment dfl_whole_face`).
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.transform import EuclideanTransform, SimilarityTransform

from faceswap_gan.errors import FaceswapError
from faceswap_gan.images import check_frame

# The original's average landmark positions as (row, col) fractions of the crop side,
# order: left eye, right eye, nose, mouth left, mouth right (image left/right).
TARGET_LANDMARKS_5_ROWS_COLS = np.array(
    [
        (0.31339227236234224, 0.3259269274198092),
        (0.31075140146108776, 0.7228453709528997),
        (0.5523683107816256, 0.5187296867370605),
        (0.7752419985257663, 0.37262483743520886),
        (0.7759613623985877, 0.6772957581740159),
    ],
    np.float64,
)
# The same points as (x, y) fractions: multiply by the crop side to get pixels.
TARGET_LANDMARKS_5 = TARGET_LANDMARKS_5_ROWS_COLS[:, ::-1].copy()
# FaceFusion's "dfl_whole_face" warp template, (x, y) fractions of the crop side, same
# point order (facefusion/face_helper.py `WARP_TEMPLATE_SET`, L36-43 at 33cc6b4): the
# crop FaceFusion's deep_swapper feeds DeepFaceLab/DeepFaceLive .dfm models
# (deep_swapper/core.py L225-244, L336). It frames the whole face with the forehead:
# eyes 0.27 of the side apart (0.40 in the default), mouth at 0.69 (0.78).
DFL_WHOLE_FACE_LANDMARKS_5 = np.array(
    [
        (0.35342266, 0.39285716),
        (0.62797622, 0.39285716),
        (0.48660713, 0.54017860),
        (0.38839287, 0.68750011),
        (0.59821427, 0.68750011),
    ],
    np.float64,
)
# Five-point alignment templates by name: "default" (this project's, faceswap-GAN
# v2.2) and "dfl_whole_face" (FaceFusion's crop for .dfm models). "deepfacelive"
# (ALIGNMENTS) needs 68 landmarks: `deepfacelive_matrix`.
TEMPLATES = {
    "default": TARGET_LANDMARKS_5,
    "dfl_whole_face": DFL_WHOLE_FACE_LANDMARKS_5,
}


# DeepFaceLive's 68-point aligner (xlib/face/FLandmarks2D.py at fc7b787): the mean
# face of `uni_landmarks_68` (L267-304) in a unit square, fitted (Umeyama) to the
# landmarks 17-35 (brows, nose), 36, 39, 42, 45 (eye corners), 48, 54 (mouth corners)
# (L135-136); the crop square is then grown about its centre by `coverage` (L150-194).
DEEPFACELIVE_POINTS_68 = list(range(17, 36)) + [36, 39, 42, 45, 48, 54]
DEEPFACELIVE_UNI_LANDMARKS_68 = np.array(
    [
        (0.000213256, 0.106454),
        (0.0752622, 0.038915),
        (0.18113, 0.0187482),
        (0.29077, 0.0344891),
        (0.393397, 0.0773906),
        (0.586856, 0.0773906),
        (0.689483, 0.0344891),
        (0.799124, 0.0187482),
        (0.904991, 0.038915),
        (0.98004, 0.106454),
        (0.490127, 0.203352),
        (0.490127, 0.307009),
        (0.490127, 0.409805),
        (0.490127, 0.515625),
        (0.36688, 0.587326),
        (0.426036, 0.609345),
        (0.490127, 0.628106),
        (0.554217, 0.609345),
        (0.613373, 0.587326),
        (0.121737, 0.216423),
        (0.334606, 0.231733),
        (0.645647, 0.231733),
        (0.858516, 0.216423),
        (0.254149, 0.780233),
        (0.726104, 0.780233),
    ],
    np.float64,
)
# DeepFaceLive's FaceAligner defaults (apps/DeepFaceLive/backend/FaceAligner.py
# L62-85, L173-179): coverage 2.2, x offset 0, y offset 0 - 0.08.
DEEPFACELIVE_COVERAGE = 2.2
DEEPFACELIVE_Y_OFFSET = -0.08


def deepfacelive_matrix(
    landmarks68: np.ndarray,
    size: int,
    coverage: float = DEEPFACELIVE_COVERAGE,
    y_offset: float = DEEPFACELIVE_Y_OFFSET,
) -> np.ndarray:
    """DeepFaceLive's face crop from 68 landmarks (its FROM_POINTS aligner with a
    68-point marker, default settings), as a `(2, 3)` frame -> crop matrix.

    `FLandmarks2D.calc_cut` (xlib/face/FLandmarks2D.py L112-197 at fc7b787): Umeyama
    fit of `DEEPFACELIVE_POINTS_68` onto `DEEPFACELIVE_UNI_LANDMARKS_68`; the unit
    square's corners and centre back in the frame; the centre moved by `y_offset`
    times the square's vertical side; a square with half-diagonal `coverage` times
    the corner-centre distance, along the unit square's diagonals, mapped onto
    `(0, 0), (size, 0), (size, size)`. (DeepFaceLive's default marker is Google
    FaceMesh, 468 points, with its own template; with its OpenCV LBF 68-point marker
    it uses this one.)

    Args:
        landmarks68: `(68, 2)` (x, y) frame pixels, iBUG-68 order
            (`faces.landmarks.LandmarkDetector`).
        size: int >= 8. Crop side in pixels.
        coverage: float > 0. DeepFaceLive's "face coverage" (default 2.2).
        y_offset: float. Its "y offset" minus 0.08 (the aligner's own shift).

    Returns:
        np.ndarray `(2, 3)` float64, frame pixels -> crop pixels.

    Raises:
        ValueError: bad landmark shape or degenerate points.
    """
    landmarks68 = np.asarray(landmarks68, np.float64)
    if landmarks68.shape != (68, 2):
        raise ValueError(
            f"landmarks68 must have shape (68, 2); got {landmarks68.shape}."
        )
    to_unit = umeyama(
        landmarks68[DEEPFACELIVE_POINTS_68], DEEPFACELIVE_UNI_LANDMARKS_68
    )
    corners = [(0, 0), (1, 0), (1, 1), (0, 1), (0.5, 0.5)]
    g_p = transform_points(np.array(corners, np.float64), np.linalg.inv(to_unit)[:2])
    g_p = g_p.astype(np.float64)
    centre = g_p[4].copy()
    tb_diag = (g_p[2] - g_p[0]) / np.linalg.norm(g_p[2] - g_p[0])
    bt_diag = (g_p[1] - g_p[3]) / np.linalg.norm(g_p[1] - g_p[3])
    mod = np.linalg.norm(g_p[4] - g_p[0]) * float(coverage)
    centre += (g_p[3] - g_p[0]) * float(y_offset)
    src = np.array(
        [centre - tb_diag * mod, centre + bt_diag * mod, centre + tb_diag * mod],
        np.float32,
    )
    dst = np.array([(0, 0), (size, 0), (size, size)], np.float32)
    return cv2.getAffineTransform(src, dst).astype(np.float64)


# Every crop framing `extract --alignment` offers.
ALIGNMENTS = ("default", "dfl_whole_face", "deepfacelive")


def check_alignment(name: str) -> str:
    """`name` if it is one of `ALIGNMENTS`; else FaceswapError listing them."""
    if name not in ALIGNMENTS:
        raise FaceswapError(f"alignment must be one of {ALIGNMENTS}; got {name!r}.")
    return name


def check_template(template: str) -> np.ndarray:
    """The `(5, 2)` (x, y) fractions of five-point template `template`.

    Raises:
        FaceswapError: unknown name (the message lists `ALIGNMENTS`; "deepfacelive"
            is not a five-point template, use `deepfacelive_matrix`).
    """
    if template not in TEMPLATES:
        check_alignment(template)
        raise FaceswapError(
            f"alignment {template!r} needs 68 landmarks (deepfacelive_matrix), not a "
            f"five-point template; five-point ones: {tuple(TEMPLATES)}."
        )
    return TEMPLATES[template]


def umeyama(
    src: np.ndarray, dst: np.ndarray, estimate_scale: bool = True
) -> np.ndarray:
    """Least-squares similarity transform mapping `src` points onto `dst` points.

    scikit-image's `SimilarityTransform.from_estimate` (or `EuclideanTransform` when
    `estimate_scale` is False), which implements Umeyama's method.

    Args:
        src: np.ndarray `(N, 2)` source points (here `(5, 2)` `(x, y)` pixels).
        dst: np.ndarray `(N, 2)` destination points, same order.
        estimate_scale: bool. Estimate a uniform scale; otherwise scale is 1 (rigid).

    Returns:
        np.ndarray `(3, 3)` float64 homogeneous matrix `T` with
        `dst ~= (T @ [src, 1].T).T[:, :2]`.

    Raises:
        ValueError: shapes differ, fewer than 2 points, or the points are degenerate
            (e.g. all identical).

    Reference:
        - Umeyama, 1991, "Least-squares estimation of transformation parameters between
          two point patterns", IEEE TPAMI 13(4), eq. 40-43.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(
            f"src and dst must both be (N, 2), N >= 2; got {src.shape}, {dst.shape}."
        )
    model = SimilarityTransform if estimate_scale else EuclideanTransform
    fitted = model.from_estimate(src, dst)
    if not fitted or not np.all(np.isfinite(fitted.params)):
        raise ValueError(f"umeyama: degenerate points, no transform ({fitted}).")
    return np.asarray(fitted.params, np.float64)


def target_landmarks(size: int, template: str = "default") -> np.ndarray:
    """A template's target points in pixels of a `size` crop, `(5, 2)` (x, y)
    (default: the original's). Raises FaceswapError for an unknown template."""
    return check_template(template) * size


def alignment_matrix(
    landmarks5: np.ndarray, size: int, template: str = "default"
) -> np.ndarray:
    """`(2, 3)` float64 matrix mapping frame pixels onto the aligned `size` crop:
    the least-squares similarity taking the five landmarks onto `template`'s points.
    FaceFusion fits the same similarity with `cv2.estimateAffinePartial2D(...,
    RANSAC, ransacReprojThreshold=100)` (face_helper.py L71-74), which keeps all five
    points of a face and refines on them, so the two matrices agree."""
    landmarks5 = np.asarray(landmarks5, np.float64)
    if landmarks5.shape != (5, 2):
        raise ValueError(f"landmarks5 must have shape (5, 2); got {landmarks5.shape}.")
    return umeyama(landmarks5, target_landmarks(size, template), estimate_scale=True)[
        :2
    ]


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Applies a `(2, 3)` affine matrix to `(N, 2)` (x, y) points; returns float32."""
    points = np.asarray(points, np.float64)
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def warp_to_crop(
    image: np.ndarray, matrix: np.ndarray, size: int, border: int = cv2.BORDER_REPLICATE
) -> np.ndarray:
    """Warps any `(H, W[, C])` image (frame, mask) with `matrix` into a `size` crop."""
    out = cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=border
    )
    return out.reshape((size, size) + image.shape[2:])


def align(
    frame: np.ndarray, landmarks5: np.ndarray, size: int = 256, template="default"
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned face crop from a frame and that face's five landmarks.

    Args:
        frame: np.ndarray `(H, W, 3)` uint8 RGB.
        landmarks5: np.ndarray `(5, 2)` (x, y) frame pixels, `Face.landmarks5` order.
        size: int. Side of the square output crop in pixels.
        template: str. A `TEMPLATES` name: "default" (this project's crops, what
            the converter uses) or "dfl_whole_face" (FaceFusion's crop for .dfm
            models).

    Returns:
        crop: np.ndarray `(size, size, 3)` uint8 RGB; the landmarks land on
            `TEMPLATES[template] * size` (least-squares). Outside the frame, border
            pixels are replicated (as the original and FaceFusion).
        matrix: np.ndarray `(2, 3)` float64, frame pixels -> crop pixels.

    Raises:
        ValueError: bad frame, landmark shape or size.
        FaceswapError: unknown template.
    """
    check_frame(frame)
    if int(size) < 8:
        raise ValueError(f"size must be an int >= 8 pixels; got {size}.")
    matrix = alignment_matrix(landmarks5, int(size), template)
    return warp_to_crop(frame, matrix, int(size)), matrix


def unalign(
    crop_like: np.ndarray, matrix: np.ndarray, frame_shape: tuple[int, int]
) -> np.ndarray:
    """Warps a crop-space image back into frame space (the exact inverse of `align`).

    Args:
        crop_like: np.ndarray `(S, S)` or `(S, S, C)`, any dtype cv2 warps (uint8,
            float32): an aligned crop, a swapped face or a mask.
        matrix: np.ndarray `(2, 3)` frame -> crop matrix returned by `align`.
        frame_shape: (H, W) of the frame (extra entries are ignored).

    Returns:
        np.ndarray `(H, W)` or `(H, W, C)`, same dtype; pixels outside the crop are 0.
    """
    height, width = int(frame_shape[0]), int(frame_shape[1])
    out = cv2.warpAffine(
        crop_like,
        np.asarray(matrix, np.float64),
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return out.reshape((height, width) + crop_like.shape[2:])
