"""Geometric metrics: landmark error, head pose from 68 points, jitter, frame change.

Landmarks are iBUG-68 `(68, 2)` float (x, y) pixels (`LandmarkDetector.detect`); a
leading batch axis `(N, 68, 2)` is accepted where noted. Boxes are `[x0, y0, x1, y1]`.

Reference:
    - C. Sagonas et al., "300 Faces in-the-Wild Challenge", ICCV-W 2013 (68-point
      layout; error normalised by the outer-eye-corner "inter-ocular" distance).
    - docs/REFERENCE.md section 3 (landmark error and head pose as the attribute
      proxy; temporal jitter and frame-to-frame change as video stability).
"""

from __future__ import annotations

import cv2
import numpy as np

# Outer eye corners of the 68-point layout (36: image-left eye, 45: image-right eye).
OUTER_EYE_CORNERS = (36, 45)
# Generic 3D face for head pose: nose tip, chin, outer eye corners, mouth corners, in
# the arbitrary units of S. Mallick, "Head Pose Estimation using OpenCV and Dlib"
# (LearnOpenCV, 2016, https://learnopencv.com/head-pose-estimation-using-opencv-and-
# dlib/), there with y up and z towards the viewer. Here y and z are negated (a 180
# degree turn about x) into OpenCV's camera axes (y down, z away from the camera), so
# a frontal face looking into the camera has rotation ~ identity.
POSE_INDICES = (30, 8, 36, 45, 48, 54)
POSE_MODEL_3D = np.array(
    [
        [0.0, 0.0, 0.0],  # 30 nose tip
        [0.0, 330.0, 65.0],  # 8 chin
        [-225.0, -170.0, 135.0],  # 36 outer corner of the image-left eye
        [225.0, -170.0, 135.0],  # 45 outer corner of the image-right eye
        [-150.0, 150.0, 125.0],  # 48 image-left mouth corner
        [150.0, 150.0, 125.0],  # 54 image-right mouth corner
    ]
)


def _landmarks(points, name="landmarks") -> np.ndarray:
    points = np.asarray(points, np.float64)
    if points.shape[-2:] != (68, 2) or points.ndim not in (2, 3):
        raise ValueError(f"{name} must be (68, 2) or (N, 68, 2); got {points.shape}.")
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{name} must be finite.")
    return points


def inter_ocular_distance(landmarks68) -> np.ndarray:
    """Distance between the outer eye corners (points 36 and 45) in pixels.

    Args:
        landmarks68: `(68, 2)` or `(N, 68, 2)` float (x, y) pixels.

    Returns:
        float64 scalar array or `(N,)`.
    """
    points = _landmarks(landmarks68)
    left, right = OUTER_EYE_CORNERS
    return np.linalg.norm(points[..., left, :] - points[..., right, :], axis=-1)


def landmark_error(reference, other) -> np.ndarray:
    """Mean 68-point distance, normalised by the reference's inter-ocular distance.

    The attribute-preservation proxy: `reference` are the input face's landmarks and
    `other` the swapped face's (both in the same crop's pixels). 0 = same expression
    and pose; 0.05 is about a tenth of an eye's width.

    Args:
        reference: `(68, 2)` or `(N, 68, 2)` float (x, y) pixels.
        other: same shape as `reference`.

    Returns:
        float64 scalar array or `(N,)`: mean_i |p_i - q_i| / |p_36 - p_45|.
    """
    reference, other = _landmarks(reference, "reference"), _landmarks(other, "other")
    if reference.shape != other.shape:
        raise ValueError(f"Shapes differ: {reference.shape} vs {other.shape}.")
    distances = np.linalg.norm(reference - other, axis=-1).mean(axis=-1)  # (N,)
    return distances / np.maximum(inter_ocular_distance(reference), 1e-9)


def camera_matrix(shape: tuple[int, int]) -> np.ndarray:
    """Pinhole intrinsics for an image `(H, W)`: focal = W pixels, centre = middle."""
    height, width = shape[:2]
    return np.array(
        [[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], np.float64
    )


def head_pose(landmarks68, shape: tuple[int, int]) -> np.ndarray:
    """Head rotation from 68 landmarks by `cv2.solvePnP` on `POSE_MODEL_3D`.

    Six points (nose tip, chin, outer eye corners, mouth corners) are fitted to the
    generic 3D face with the `camera_matrix` of the image and no lens distortion,
    starting from a frontal face at the depth the eye distance implies.

    Args:
        landmarks68: `(68, 2)` float (x, y) pixels in an image of `shape`.
        shape: (H, W) of that image.

    Returns:
        `(3, 3)` float64 rotation matrix, model -> camera (identity: frontal face).
    """
    points = _landmarks(landmarks68)[list(POSE_INDICES)]  # (6, 2)
    camera = camera_matrix(shape)
    focal = camera[0, 0]
    model_eyes = np.linalg.norm(POSE_MODEL_3D[2] - POSE_MODEL_3D[3])
    depth = focal * model_eyes / max(np.linalg.norm(points[2] - points[3]), 1e-6)
    shift = (points[0] - camera[:2, 2]) * depth / focal  # nose tip off the axis
    tvec = np.array([[shift[0]], [shift[1]], [depth]])
    ok, rvec, _ = cv2.solvePnP(
        POSE_MODEL_3D,
        points,
        camera,
        None,
        rvec=np.zeros((3, 1)),
        tvec=tvec,
        useExtrinsicGuess=True,
        flags=cv2.SOLVEPNP_ITERATIVE,
    )
    if not ok:
        raise ValueError("cv2.solvePnP found no head pose for these landmarks.")
    return cv2.Rodrigues(rvec)[0]


def rotation_angle(rotation_a: np.ndarray, rotation_b: np.ndarray) -> float:
    """Geodesic angle between rotations in degrees: `arccos((tr(Ra Rb^T) - 1) / 2)`."""
    cos = (np.trace(rotation_a @ rotation_b.T) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def pose_difference(reference, other, shape: tuple[int, int]) -> float:
    """Head-pose difference between two landmark sets of the same image size.

    Args:
        reference: `(68, 2)` float (x, y) pixels (the input face).
        other: `(68, 2)` float (x, y) pixels (its swap).
        shape: (H, W) of the crop both refer to.

    Returns:
        float degrees in [0, 180]: the angle of the relative rotation (see
        `head_pose`, `rotation_angle`); 0 for identical landmarks.
    """
    return rotation_angle(head_pose(reference, shape), head_pose(other, shape))


def box_centres(boxes) -> np.ndarray:
    """`(T, 4)` `[x0, y0, x1, y1]` boxes -> `(T, 2)` float64 centres."""
    boxes = np.asarray(boxes, np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (T, 4); got {boxes.shape}.")
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def jitter(track) -> float:
    """Temporal jitter of a point track: mean norm of its second difference.

    `mean_t |c[t+1] - 2 c[t] + c[t-1]|`, the acceleration in pixels/frame^2: 0 for a
    track moving at constant velocity, > 0 for one that shakes. Compare raw
    (detector) with smoothed (Kalman) tracks of the same face.

    Args:
        track: `(T, 2)` float positions (e.g. `box_centres(boxes)`), or `(T, 4)`
            boxes (their centres are used); T >= 3. NaN rows mark frames without
            the face: second differences touching them are left out.

    Returns:
        float >= 0 pixels per frame^2; NaN if no three consecutive frames are known.

    Raises:
        ValueError: fewer than 3 positions.
    """
    track = np.asarray(track, np.float64)
    if track.ndim == 2 and track.shape[1] == 4:
        track = box_centres(track)
    if track.ndim != 2 or len(track) < 3:
        raise ValueError(
            f"track must be (T, 2) or (T, 4) with T >= 3; got {track.shape}."
        )
    second = track[2:] - 2 * track[1:-1] + track[:-2]  # (T-2, 2)
    norms = np.linalg.norm(second, axis=1)
    norms = norms[np.isfinite(norms)]
    return float(norms.mean()) if len(norms) else float("nan")


def frame_change(crops) -> float:
    """Mean absolute change between consecutive crops of one face.

    Args:
        crops: `(T, H, W, C)` aligned crops of the same face in consecutive frames,
            uint8 (scaled to [0, 1]) or float in [0, 1]; T >= 2.

    Returns:
        float in [0, 1]: `mean_t mean |x[t+1] - x[t]|`.
    """
    crops = np.asarray(crops)
    scale = 255.0 if crops.dtype == np.uint8 else 1.0
    if crops.ndim != 4 or len(crops) < 2:
        raise ValueError(f"crops must be (T, H, W, C) with T >= 2; got {crops.shape}.")
    crops = crops.astype(np.float64) / scale
    return float(np.abs(np.diff(crops, axis=0)).mean())
