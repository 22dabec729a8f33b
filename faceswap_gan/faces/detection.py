"""Face detection with MTCNN: square boxes, five landmarks, optional auto-downscaling.

Wraps the `mtcnn` package (Iván de Paz Centeno, MIT; weights ship inside its wheel), a
TensorFlow port of the MTCNN cascade (Zhang et al., 2016, "Joint Face Detection and
Alignment using Multi-task Cascaded Convolutional Networks",
https://arxiv.org/abs/1604.02878). Post-processing follows faceswap-GAN v2.2
`detector/face_detector.py`: stage thresholds `[0.6, 0.7, detection_threshold]`, minimum
face size 20 px, boxes made square with side `(w + h) / 2` around the centre and clipped
to the frame, small faces dropped, optional downscaling of large frames before
detection.

Difference from the original: `min_face_area` is compared in original-frame pixels (the
original compared it in the downscaled frame, so the filter changed with the frame
size).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from faceswap_gan.errors import FaceswapError
from faceswap_gan.images import check_frame

# (pixel count, divisor), checked in order: 1080p -> /4, 720p -> /3, 480p -> /2.
DOWNSCALE_STEPS = ((1920 * 1080, 4), (1280 * 720, 3), (858 * 480, 2))
MIN_FACE_SIZE = 20  # MTCNN `minsize` of the original converter, pixels.
# MTCNN's PNet and RNet score thresholds (v2.2's; ONet's is `detection_threshold`).
PNET_THRESHOLD, RNET_THRESHOLD = 0.6, 0.7


@dataclass(frozen=True, eq=False)  # eq on arrays is ambiguous; compare fields.
class Face:
    """One detected face, in original-frame pixel coordinates.

    Attributes:
        box: np.ndarray `(4,)` float32 `[x0, y0, x1, y1]`. Square of side `(w + h) / 2`
            around the MTCNN box centre, clipped to the frame (so it is only
            rectangular where the face touches the frame border).
        landmarks5: np.ndarray `(5, 2)` float32 `(x, y)` in the order `[left eye, right
            eye, nose, mouth left, mouth right]`, "left" meaning image left, as MTCNN
            gives them.
        score: float. MTCNN third-stage (ONet) confidence in `[0, 1]`.
    """

    box: np.ndarray
    landmarks5: np.ndarray
    score: float

    @property
    def area(self) -> float:
        """Box area in pixels squared."""
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))


def downscale_factor(height: int, width: int) -> int:
    """The original's auto-downscaling divisor for a frame of `height x width` pixels.

    Returns 4 for >= 1920*1080 pixels, 3 for >= 1280*720, 2 for >= 858*480, else 1.
    """
    for pixels, factor in DOWNSCALE_STEPS:
        if height * width >= pixels:
            return factor
    return 1


def square_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Squares `(N, 4)` `[x0, y0, x1, y1]` boxes around their centres and clips them.

    The side is `(w + h) / 2` as in faceswap-GAN's `process_mtcnn_bbox`; the result is
    clipped to `[0, width] x [0, height]`. Returns `(N, 4)` float32.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2  # (N, 2) x, y
    half = ((boxes[:, 2] - boxes[:, 0]) + (boxes[:, 3] - boxes[:, 1])) / 4  # (N,)
    out = np.concatenate([centre - half[:, None], centre + half[:, None]], axis=1)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    return out


class FaceDetector:
    """MTCNN face detector returning `Face`s sorted by score (highest first).

    Building the three MTCNN networks takes a moment, so one instance is kept per
    detector; reuse the detector across frames.

    Args:
        detection_threshold: float. ONet (third-stage) confidence threshold in (0, 1);
            the first two stages use 0.6 and 0.7 as in the original. Defaults to 0.8.
        min_face_area: float. Faces whose square box is smaller than this many pixels
            squared (original-frame pixels) are dropped. Defaults to `35 * 35`.
        auto_downscale: bool. Shrink large frames before detection (/4 from 1080p, /3
            from 720p, /2 from 858x480) for speed; boxes and landmarks are mapped back
            to the original frame. Defaults to False.
        device: str | None. TensorFlow device for MTCNN, e.g. "CPU:0" or "GPU:0";
            None picks "GPU:0" when TensorFlow sees a GPU, else "CPU:0".

    Raises:
        ValueError: a threshold outside (0, 1) or a negative `min_face_area`.

    Reference:
        - [Zhang et al., 2016](https://arxiv.org/abs/1604.02878)
        - shaoanlu/faceswap-GAN `detector/face_detector.py`
    """

    def __init__(
        self,
        detection_threshold: float = 0.8,
        min_face_area: float = 35 * 35,
        auto_downscale: bool = False,
        device: str | None = None,
    ):
        if not 0.0 < detection_threshold < 1.0:
            raise FaceswapError(
                f"detection_threshold must be in (0, 1); got {detection_threshold}."
            )
        if min_face_area < 0:
            raise FaceswapError(f"min_face_area must be >= 0; got {min_face_area}.")
        import tensorflow as tf  # Imported here so that importing this module is light.
        from mtcnn import MTCNN

        if device is None:
            device = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
        self.detection_threshold = float(detection_threshold)
        self.min_face_area = float(min_face_area)
        self.auto_downscale = bool(auto_downscale)
        self._mtcnn = MTCNN(device=device)

    def detect(self, frame: np.ndarray) -> list[Face]:
        """Detects faces in one frame.

        Args:
            frame: np.ndarray `(H, W, 3)` uint8 RGB.

        Returns:
            list[Face]: sorted by score, highest first; empty if there is no face.

        Raises:
            ValueError: `frame` is not an `(H, W, 3)` uint8 array.
        """
        return self.detect_batch([frame])[0]

    def detect_batch(self, frames: Sequence[np.ndarray]) -> list[list[Face]]:
        """Detects faces in several frames with one MTCNN pass (faster on a GPU).

        Args:
            frames: sequence of np.ndarray `(H, W, 3)` uint8 RGB. Frames of one size
                give exactly what `detect` gives; mixed sizes are zero-padded to a
                common size by MTCNN, which moves its image pyramid, so boxes can
                differ from `detect`'s by a few percent of their side.

        Returns:
            list[list[Face]]: per frame, sorted by score, highest first.

        Raises:
            ValueError: a frame is not an `(H, W, 3)` uint8 array.
        """
        frames = [check_frame(f, name=f"frames[{i}]") for i, f in enumerate(frames)]
        if not frames:
            return []
        small = [self._downscaled(frame) for frame in frames]
        rows = self._run_mtcnn(small)  # (N, 16) in `small` pixels, column 0 = frame
        return [
            self._to_faces(rows[rows[:, 0] == i], frame.shape, low.shape)
            for i, (frame, low) in enumerate(zip(frames, small))
        ]

    def _downscaled(self, frame: np.ndarray) -> np.ndarray:
        factor = downscale_factor(*frame.shape[:2]) if self.auto_downscale else 1
        if factor == 1:
            return frame
        size = (max(frame.shape[1] // factor, 1), max(frame.shape[0] // factor, 1))
        return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)

    def _to_faces(self, rows: np.ndarray, shape: tuple, small_shape: tuple) -> list:
        """MTCNN rows of one frame -> filtered, sorted `Face`s in frame pixels."""
        height, width = shape[:2]
        # Map back: x_frame = x_small * W / w_small (the downscaling ratio).
        scale = np.array([width / small_shape[1], height / small_shape[0]], np.float32)
        boxes = rows[:, 1:5].reshape(-1, 2, 2) * scale  # (N, 2, 2)
        boxes = square_boxes(boxes.reshape(-1, 4), height, width)  # (N, 4)
        points = np.stack([rows[:, 6:11], rows[:, 11:16]], axis=-1) * scale  # (N, 5, 2)
        faces = [
            Face(box=b, landmarks5=p.astype(np.float32), score=float(s))
            for b, p, s in zip(boxes, points, rows[:, 5])
        ]
        faces = [f for f in faces if f.area >= self.min_face_area]
        return sorted(faces, key=lambda f: -f.score)

    def _run_mtcnn(self, images: list[np.ndarray]) -> np.ndarray:
        """Raw MTCNN rows `[image id, x0, y0, x1, y1, score, x1..x5, y1..y5]`."""
        rows = self._mtcnn.detect_faces(
            list(images),
            box_format="xyxy",
            output_type="numpy",
            min_face_size=MIN_FACE_SIZE,
            threshold_pnet=PNET_THRESHOLD,
            threshold_rnet=RNET_THRESHOLD,
            threshold_onet=self.detection_threshold,
        )
        return np.asarray(rows, np.float32).reshape(-1, 16)
