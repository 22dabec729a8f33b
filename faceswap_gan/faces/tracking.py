"""Face tracking in video: Kalman or moving-average box smoothers, one per face.

Boxes are `(4,) float` arrays `[x0, y0, x1, y1]` in frame pixels. A smoother knows
nothing about video: `update(box)` takes this frame's detection and returns the smoothed
box; `predict()` returns a box for a frame where the face was not detected.
`FaceTracker` keeps one smoother per face and matches detections to tracks by box
overlap, which fixes the original's single track shared by all faces (REFERENCE 1.10
item 6).

Only the box is smoothed. As in faceswap-GAN v2.2 (`converter/video_converter.py`,
`converter/landmarks_alignment.py`), the five landmarks of a detected face are MTCNN's
raw points: v2.2 crops the frame to the smoothed box, expresses the raw points in that
crop's coordinates (`get_src_landmarks` subtracts the box's top-left corner: a change
of origin, the points stay on the same frame pixels) and aligns on them, so the smoothed
box sets only the crop (and hence the aligned crop's size) and the paste-back region,
never where the face is aligned. `converter.pipeline` does the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import scipy.linalg
from filterpy.kalman import KalmanFilter
from scipy.optimize import linear_sum_assignment

# Constant-velocity model on one 2-D point: state (x, y, vx, vy), measurement (x, y).
_F = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=float)
_H = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=float)


class KalmanBoxSmoother:
    """Kalman smoothing of a face box (faceswap-GAN v2.2 `converter/kalman_filter.py`).

    Two independent constant-velocity filters (filterpy `KalmanFilter(dim_x=4,
    dim_z=2)`) track the corners (x0, y0) and (x1, y1): F = [[I, I], [0, I]],
    H = [I, 0], Q = noise_coef * I4, R = I2 (pixels^2). Each frame runs
    `update(measurement)` then `predict()` and returns the prediction, like the
    original's `correct` + `predict`.

    Initialisation (deliberate difference): the original starts from x = 0, P = 0, calls
    `predict()` 200 times and returns the raw box on the first frame. Here the state is
    set to the first measurement with zero velocity and P to the filter's steady-state
    covariance (discrete Riccati solution), so the first frames behave like later ones
    and no warm-up loop is needed.

    Args:
        noise_coef: float > 0. Process noise; x10 follows motion faster, /10 jitters
            less.

    Reference:
        - R. E. Kalman, 1960; filterpy (R. Labbe), `filterpy.kalman.KalmanFilter`.
    """

    def __init__(self, noise_coef: float = 1e-3):
        if not noise_coef > 0:
            raise ValueError(f"noise_coef must be > 0; got {noise_coef!r}.")
        self.noise_coef = float(noise_coef)
        self._filters: list[KalmanFilter] | None = None
        q, r = self.noise_coef * np.eye(4), np.eye(2)
        prior = scipy.linalg.solve_discrete_are(
            _F.T, _H.T, q, r
        )  # Steady-state P(t|t-1).
        gain = prior @ _H.T @ np.linalg.inv(_H @ prior @ _H.T + r)
        self._steady_posterior = (np.eye(4) - gain @ _H) @ prior  # Steady-state P(t|t).

    def _new_filter(self, point: np.ndarray) -> KalmanFilter:
        kf = KalmanFilter(dim_x=4, dim_z=2)
        kf.F, kf.H = _F.copy(), _H.copy()
        kf.Q, kf.R = self.noise_coef * np.eye(4), np.eye(2)
        kf.x = np.array([[point[0]], [point[1]], [0.0], [0.0]])
        kf.P = self._steady_posterior.copy()
        return kf

    def _position(self) -> np.ndarray:
        return np.array([*self._filters[0].x[:2, 0], *self._filters[1].x[:2, 0]])

    def update(self, box: Sequence[float]) -> np.ndarray:
        """Feeds this frame's box; returns the smoothed `(4,) float64` box."""
        box = np.asarray(box, dtype=float)
        if self._filters is None:
            self._filters = [self._new_filter(box[:2]), self._new_filter(box[2:])]
        else:
            for kf, point in zip(self._filters, (box[:2], box[2:])):
                kf.update(point)
        for kf in self._filters:
            kf.predict()
        return self._position()

    __call__ = update

    def predict(self) -> np.ndarray:
        """Box for a frame without a detection: one more constant-velocity step.

        Raises:
            RuntimeError: no box was given yet.
        """
        if self._filters is None:
            raise RuntimeError("predict() needs at least one update(box) first.")
        for kf in self._filters:
            kf.predict()
        return self._position()


class MovingAverageBoxSmoother:
    """Exponential moving average of boxes: `box = coef * previous + (1 - coef) * box`.

    The original's EMA mode (`bbox_moving_avg_coef`, 0.65 by default), without its
    rounding to int.

    Args:
        coef: float in [0, 1]. Weight of the previous smoothed box; 0 = no smoothing.
    """

    def __init__(self, coef: float = 0.65):
        if not 0.0 <= coef <= 1.0:
            raise ValueError(f"coef must be in [0, 1]; got {coef!r}.")
        self.coef = float(coef)
        self._box: np.ndarray | None = None

    def update(self, box: Sequence[float]) -> np.ndarray:
        """Feeds this frame's box; returns the smoothed `(4,) float64` box."""
        box = np.asarray(box, dtype=float)
        if self._box is None:
            self._box = box.copy()
        else:
            self._box = self.coef * self._box + (1.0 - self.coef) * box
        return self._box.copy()

    __call__ = update

    def predict(self) -> np.ndarray:
        """The last smoothed box (the EMA has no motion model)."""
        if self._box is None:
            raise RuntimeError("predict() needs at least one update(box) first.")
        return self._box.copy()


class RawBoxSmoother(MovingAverageBoxSmoother):
    """No smoothing (`use_smoothed_bbox=False`); `predict()` repeats the last box."""

    def __init__(self):
        super().__init__(coef=0.0)


class TrackedFace(NamedTuple):
    """One face in one frame, as `FaceTracker.update` returns it."""

    track_id: (
        int  # Stable id of the face across frames (0, 1, ... in order of appearance).
    )
    box: np.ndarray  # (4,) float [x0, y0, x1, y1] smoothed box, frame pixels.
    # (5, 2) float32 (x, y) frame pixels: the detector's raw points when `detected`;
    # when not, the last raw points moved with the predicted box (see FaceTracker).
    landmarks5: np.ndarray
    detected: bool  # False: the detector missed this face; box and landmarks predicted.


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of `(N, 4)` and `(M, 4)` boxes -> `(N, M)` in [0, 1]."""
    a, b = np.asarray(a, float)[:, None, :], np.asarray(b, float)[None, :, :]
    top_left = np.maximum(a[..., :2], b[..., :2])  # (N, M, 2)
    bottom_right = np.minimum(a[..., 2:], b[..., 2:])  # (N, M, 2)
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=-1)  # (N, M)
    area_a = np.prod(a[..., 2:] - a[..., :2], axis=-1)  # (N, 1)
    area_b = np.prod(b[..., 2:] - b[..., :2], axis=-1)  # (1, M)
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def move_landmarks(
    landmarks: np.ndarray, source: np.ndarray, target: np.ndarray
) -> np.ndarray:
    """Maps `(N, 2)` (x, y) points by the translation + scale taking box `source` to
    box `target` (each `[x0, y0, x1, y1]`); returns float32."""
    source, target = np.asarray(source, float), np.asarray(target, float)
    scale = (target[2:] - target[:2]) / np.maximum(source[2:] - source[:2], 1e-6)
    return ((np.asarray(landmarks) - source[:2]) * scale + target[:2]).astype(
        np.float32
    )


class _Track:
    def __init__(self, track_id: int, smoother, face) -> None:
        self.track_id, self.smoother, self.missed = track_id, smoother, 0
        self._detect(face)

    def _detect(self, face) -> None:
        self.raw_box = np.asarray(face.box, dtype=float)
        self.raw_landmarks = np.asarray(face.landmarks5, dtype=np.float32)
        self.box, self.missed = self.smoother.update(self.raw_box), 0
        self.detected_box = self.box.copy()  # Smoothed box of the last detection.

    def hit(self, face) -> TrackedFace:
        self._detect(face)
        return self.output()

    def miss(self) -> TrackedFace:
        self.box, self.missed = self.smoother.predict(), self.missed + 1
        return self.output()

    def output(self) -> TrackedFace:
        if self.missed == 0:  # Detected: the detector's own points, unchanged.
            landmarks = self.raw_landmarks.copy()
        else:  # Missed: the last points follow the predicted box's motion.
            landmarks = move_landmarks(self.raw_landmarks, self.detected_box, self.box)
        return TrackedFace(self.track_id, self.box.copy(), landmarks, self.missed == 0)


class FaceTracker:
    """One smoothing track per face, detections matched to tracks by box IoU.

    Each frame, detections are assigned to existing tracks by maximum total IoU
    (Hungarian algorithm, `scipy.optimize.linear_sum_assignment`) against each track's
    last smoothed box; pairs below `iou_threshold` are not matched. Unmatched detections
    start new tracks. A track without a detection keeps a predicted box for up to
    `max_missed` frames (so the swap does not flicker back to the original face when the
    detector misses a frame), then is dropped.

    Landmarks: on a frame where the face is detected, `TrackedFace.landmarks5` are the
    detector's raw 5 points, not moved with the smoothed box: faceswap-GAN v2.2 aligns
    on the raw MTCNN points (see the module docstring), and moving them by the box's
    smoothing correction measured less steady on the bundled clip: MTCNN's box
    shakes more than its points' centroid (mean |second difference| x 2.9 vs 1.7 px,
    y 2.6 vs 1.3 px on person_a.mp4) and only partly with them (correlation 0.5),
    so the correction adds
    more shake than it removes (`benchmarks/alignment_stability.py`: the face moves
    1.24-1.32x more in the aligned crop). On a frame where it is missed (v2.2 had no
    such frames: it left them unswapped), the last raw points are moved by the
    translation and scale from the smoothed box of that last detection to the
    predicted box.

    Args:
        smoother_factory: callable () -> smoother with `update(box)` and `predict()`,
            e.g. `lambda: KalmanBoxSmoother(1e-3)`; None = `RawBoxSmoother`.
        iou_threshold: float in [0, 1]. Minimum IoU for a detection to continue a track.
        max_missed: int >= 0. Frames a track survives without a detection.
    """

    def __init__(
        self,
        smoother_factory: Callable[[], object] | None = None,
        iou_threshold: float = 0.3,
        max_missed: int = 5,
    ):
        if not 0.0 <= iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in [0, 1]; got {iou_threshold!r}.")
        if max_missed < 0:
            raise ValueError(f"max_missed must be >= 0; got {max_missed!r}.")
        self.smoother_factory = smoother_factory or RawBoxSmoother
        self.iou_threshold, self.max_missed = float(iou_threshold), int(max_missed)
        self.tracks: list[_Track] = []
        self._next_id = 0

    def update(self, faces: Sequence) -> list[TrackedFace]:
        """Feeds one frame's detections; returns the tracked faces sorted by track id.

        Args:
            faces: sequence of objects with `.box` (4,) [x0, y0, x1, y1] and
                `.landmarks5` (5, 2) (x, y), e.g. `faceswap_gan.faces.detection.Face`.
        """
        out, matched_tracks, matched_faces = [], set(), set()
        if self.tracks and len(faces):
            iou = box_iou(
                np.stack([f.box for f in faces]), np.stack([t.box for t in self.tracks])
            )
            for f, t in zip(*linear_sum_assignment(-iou)):
                if iou[f, t] >= self.iou_threshold:
                    out.append(self.tracks[t].hit(faces[f]))
                    matched_faces.add(f)
                    matched_tracks.add(t)
        kept = []
        for index, track in enumerate(self.tracks):
            if index in matched_tracks:
                kept.append(track)
            elif track.missed < self.max_missed:
                out.append(track.miss())
                kept.append(track)
        for index, face in enumerate(faces):
            if index not in matched_faces:
                track = _Track(self._next_id, self.smoother_factory(), face)
                self._next_id += 1
                kept.append(track)
                out.append(track.output())
        self.tracks = kept
        return sorted(out, key=lambda tracked: tracked.track_id)

    def reset(self) -> None:
        """Forgets all tracks (e.g. at a scene cut or a new video)."""
        self.tracks, self._next_id = [], 0
