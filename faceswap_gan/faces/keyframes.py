"""Fast video face detection: MTCNN restricted to the sizes of the faces it follows.

`KeyframeDetector` is a drop-in `detect(frame) -> list[Face]` for
`converter.pipeline.VideoConverter(detector=...)`, called once per frame in order.
Full MTCNN (the three-network cascade of Zhang et al., 2016,
https://arxiv.org/abs/1604.02878) is by far the most expensive step of a conversion
(76 % of the time on the project's CPU), and almost all of it is PNet over the
image pyramid: the frame resized by 0.6, 0.6 * 0.709, 0.6 * 0.709 ** 2, ..., each
level scanned by PNet's 12 px window, so level `s` looks for faces of about
`12 / s` px (20, 28, 40, ... px). The first, largest levels look for the smallest
faces and cost the most. A face found in the last frame has about the same size
in this one, so only the levels near its size need to run:

- every frame that is not a keyframe: MTCNN with only the pyramid levels whose
  window is between `size_range[0]` and `size_range[1]` (`SIZE_RANGE` by default)
  times the side of a face found in the previous frame;
- keyframes (the first frame, then every `keyframe_seconds` of video, and at once
  whenever a face is lost): the levels for every face worth finding, down to
  `new_face_fraction` of the smallest face found so far, and never below the
  detector's `min_face_area` (smaller faces are dropped anyway); with no face
  found yet, only `min_face_area` bounds it (then this is the full pyramid).

Each pass is MTCNN's own algorithm on the full-resolution frame: the same pyramid
scales, PNet on the levels kept, the same thresholds and non-maximum suppressions,
RNet and ONet on the proposals (`mtcnn` package's stages, its networks compiled
with `tf.function`). So a face found from the kept levels gets exactly the box,
landmarks and score of a full detection, up to float rounding. `SIZE_RANGE` is
wide: the final box of a face can come from a level whose window is about half
the face's side. `benchmarks/pyramid_levels.py` measures, per clip and size range,
how often the result equals full detection's.

A face is lost when no face found on a non-keyframe overlaps its box in the
previous frame by at least `min_track_iou`; a keyframe pass then runs on that same
frame, so a cut to another shot or a face leaving the frame is handled at once,
not at the next keyframe. New faces entering the picture are found at the next
keyframe, at most `keyframe_seconds` late (0.25 s by default: 8 frames at 30 fps),
or at once if their size is near a face already followed.

`ThreadedMap` runs a per-item function in a worker thread with bounded queues, so
decoding, computing and encoding can overlap (see `benchmarks/convert_speed.py`).
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from faceswap_gan.errors import FaceswapError
from faceswap_gan.faces.detection import (
    MIN_FACE_SIZE,
    PNET_THRESHOLD,
    RNET_THRESHOLD,
    Face,
    FaceDetector,
)
from faceswap_gan.faces.tracking import box_iou
from faceswap_gan.images import check_frame

PNET_WINDOW = 12  # PNet's input window, pixels of a pyramid level.
PYRAMID_FACTOR = 0.709  # MTCNN's scale step between pyramid levels.
RNET_SIZE, ONET_SIZE = 24, 48  # RNet's and ONet's input sides, pixels.
# Pyramid levels run between keyframes: windows from SIZE_RANGE[0] to SIZE_RANGE[1]
# times a followed face's side (see the module docstring for why this wide).
SIZE_RANGE = (0.35, 3.0)


def pyramid_scales(height: int, width: int) -> np.ndarray:
    """`(L,)` float64 scales of full MTCNN's image pyramid for a frame, largest first.

    The `mtcnn` package's `build_scale_pyramid` with `FaceDetector`'s settings
    (minimum face 20 px, factor 0.709); level `s` finds faces of about `12 / s` px.
    """
    from mtcnn.utils.images import build_scale_pyramid

    return build_scale_pyramid(
        width, height, min_face_size=MIN_FACE_SIZE, scale_factor=PYRAMID_FACTOR
    )


class KeyframeDetector:
    """MTCNN on the pyramid levels near the sizes of the faces already found.

    A drop-in for `FaceDetector` in a video: `detect(frame)` must be called once per
    frame, in order; call `start_video(fps)` (or `reset()`) before a new video or a
    single image. See the module docstring for the method.

    Args:
        detector: FaceDetector | None. The MTCNN whose networks, thresholds and
            `min_face_area` are used (its `auto_downscale` is not: frames are
            searched at full resolution); None builds `FaceDetector()`.
        fps: float > 0. Frame rate of the video, frames per second; sets the
            keyframe interval in frames. Defaults to 30.
        keyframe_seconds: float >= 0. Seconds of video between keyframes, i.e. how
            late a face of a new size entering the picture may be found; 0 makes
            every frame a keyframe. Defaults to 0.25.
        new_face_fraction: float in (0, 1]. A keyframe still finds new faces down to
            this fraction of the smallest face's side. Defaults to 0.5.
        min_track_iou: float in [0, 1). A face of the previous frame that no face
            of a non-keyframe overlaps this much (intersection over union of their
            boxes) is lost, and a keyframe pass runs on that frame. Defaults to 0.3.
        size_range: (low, high) with 0 < low <= 1 <= high. Between keyframes, the
            pyramid levels whose window is `low` to `high` times a found face's
            side run. Defaults to `SIZE_RANGE`.

    Attributes:
        counts: dict with "frames", "keyframes" (keyframe passes, forced ones
            included), "redetections" (keyframes forced by a lost face) and
            "levels" and "pixels" (pyramid levels run and the pixels PNet scanned
            in them, over all passes).

    Raises:
        FaceswapError: an argument outside its range.

    Reference:
        - Zhang et al., 2016, https://arxiv.org/abs/1604.02878 (MTCNN).
        - `mtcnn` package (I. de Paz Centeno): `StagePNet`, `StageRNet`,
          `StageONet`, `extract_patches`, whose steps `_search` repeats.
    """

    def __init__(
        self,
        detector: FaceDetector | None = None,
        fps: float = 30.0,
        keyframe_seconds: float = 0.25,
        new_face_fraction: float = 0.5,
        min_track_iou: float = 0.3,
        size_range: tuple[float, float] = SIZE_RANGE,
    ):
        if not keyframe_seconds >= 0:
            raise FaceswapError(
                f"keyframe_seconds must be >= 0; got {keyframe_seconds!r}."
            )
        if not 0 < new_face_fraction <= 1:
            raise FaceswapError(
                f"new_face_fraction must be in (0, 1]; got {new_face_fraction!r}."
            )
        if not 0 <= min_track_iou < 1:
            raise FaceswapError(
                f"min_track_iou must be in [0, 1); got {min_track_iou!r}."
            )
        low, high = (float(v) for v in size_range)
        if not 0 < low <= 1 <= high:
            raise FaceswapError(
                f"size_range must be (low, high) with 0 < low <= 1 <= high; got "
                f"{size_range!r}."
            )
        self.size_range = (low, high)
        self.detector = detector if detector is not None else FaceDetector()
        self.keyframe_seconds = float(keyframe_seconds)
        self.new_face_fraction = float(new_face_fraction)
        self.min_track_iou = float(min_track_iou)
        import tensorflow as tf

        pnet, rnet, onet = (stage.model for stage in self.detector._mtcnn.stages)
        # Compiled once: an eager Keras call costs ~10-40 ms, the graph ~1-2 ms.
        # One PNet graph per set of level sizes (few in a video: faces change
        # size slowly).
        self._pnet_levels = tf.function(
            _pnet_levels(pnet), reduce_retracing=True, autograph=False
        )  # A Python loop over the static level shapes: nothing to convert.
        self._rnet_call = tf.function(
            rnet.call,
            input_signature=[tf.TensorSpec((None, RNET_SIZE, RNET_SIZE, 3))],
            reduce_retracing=True,
        )
        self._onet_call = tf.function(
            onet.call,
            input_signature=[tf.TensorSpec((None, ONET_SIZE, ONET_SIZE, 3))],
            reduce_retracing=True,
        )
        self.start_video(fps)

    def start_video(self, fps: float) -> None:
        """Forgets all faces and sets the frame rate (frames/s) of the next video."""
        try:
            value = float(fps)  # int, float, Fraction (VideoReader.fps), numpy.
        except (TypeError, ValueError):
            value = float("nan")
        if not (math.isfinite(value) and value > 0):
            raise FaceswapError(f"fps must be a positive number; got {fps!r}.")
        self.fps = value
        self.reset()

    def reset(self) -> None:
        """Forgets all faces: the next `detect` is a keyframe."""
        self._faces: list[Face] = []
        self._since_keyframe = 0
        self.counts = {"frames": 0, "keyframes": 0, "redetections": 0}
        self.counts.update(levels=0, pixels=0)

    @property
    def interval(self) -> int:
        """Frames between scheduled keyframes: `round(fps * seconds)` (0: every
        frame is one)."""
        return round(self.fps * self.keyframe_seconds)

    def detect(self, frame: np.ndarray) -> list[Face]:
        """Faces of the next frame of the video.

        Args:
            frame: np.ndarray `(H, W, 3)` uint8 RGB, the frame after the previous
                call's (or the first of a video after `start_video` / `reset`).

        Returns:
            list[Face]: in frame pixels, sorted by score, highest first, as
            `FaceDetector.detect` returns them.

        Raises:
            ValueError: `frame` is not an `(H, W, 3)` uint8 array.
        """
        frame = check_frame(frame)
        self.counts["frames"] += 1
        keyframe = not self._faces or self._since_keyframe >= self.interval
        faces: list[Face] = []
        sides = [_side(face) for face in self._faces]  # of the previous frame
        if not keyframe:
            low, high = self.size_range
            low, high = low * min(sides), high * max(sides)
            faces = self._search(frame, low, high)
            if self._lost(faces):
                self.counts["redetections"] += 1
                keyframe = True
        if keyframe:
            self.counts["keyframes"] += 1
            smallest = math.sqrt(max(self.detector.min_face_area, 1.0))
            if sides:
                smallest = max(smallest, self.new_face_fraction * min(sides))
            faces = self._search(frame, self.size_range[0] * smallest, math.inf)
        self._since_keyframe = 0 if keyframe else self._since_keyframe + 1
        self._faces = faces
        return faces

    def _lost(self, faces: list[Face]) -> bool:
        """True if a face of the previous frame has no match among `faces`."""
        if not faces:
            return True
        iou = box_iou(
            np.stack([f.box for f in self._faces]), np.stack([f.box for f in faces])
        )  # (previous, now)
        return bool(np.any(iou.max(axis=1) < self.min_track_iou))

    def _search(self, frame: np.ndarray, low: float, high: float) -> list[Face]:
        """MTCNN on the pyramid levels whose window is `low` to `high` frame px.

        The steps of the `mtcnn` package's `StagePNet`, `StageRNet` and
        `StageONet` with `FaceDetector`'s thresholds, on one frame.
        """
        import tensorflow as tf
        from mtcnn.utils.bboxes import (
            adjust_bboxes,
            generate_bounding_box,
            pick_matches,
            replace_confidence,
            resize_to_square,
            smart_nms_from_bboxes,
            upscale_bboxes,
        )

        height, width = frame.shape[:2]
        scales = pyramid_scales(height, width)
        window = PNET_WINDOW / scales
        scales = scales[(window >= low) & (window <= high)]
        if not len(scales):
            return []
        # MTCNN's level sizes: (H, W) * scale, truncated as TensorFlow casts them.
        shapes = tuple((int(height * s), int(width * s)) for s in scales)
        self.counts["levels"] += len(shapes)
        self.counts["pixels"] += sum(h * w for h, w in shapes)
        with tf.device(self.detector._mtcnn.device):
            levels = self._pnet_levels(tf.constant(frame), shapes)
        boxes = []
        for scale, (offsets, scores) in zip(scales, levels):
            found = generate_bounding_box(offsets, scores, PNET_THRESHOLD)
            found = upscale_bboxes(found, np.asarray([scale]))
            boxes.append(
                smart_nms_from_bboxes(
                    found, threshold=0.5, method="union", initial_sort=False
                )
            )
        boxes = np.concatenate(boxes, axis=0)
        boxes = smart_nms_from_bboxes(
            boxes, threshold=0.7, method="union", initial_sort=True
        )
        boxes = resize_to_square(boxes)
        if len(boxes):  # RNet
            offsets, scores = self._rnet_call(
                _patches(frame, boxes[:, 1:5].astype(np.float64), RNET_SIZE)
            )
            boxes = adjust_bboxes(replace_confidence(boxes, scores), offsets)
            boxes = pick_matches(boxes, score_threshold=RNET_THRESHOLD)
            boxes = smart_nms_from_bboxes(
                boxes, threshold=0.7, method="union", initial_sort=True
            )
            boxes = resize_to_square(boxes)
        if not len(boxes):
            return []
        rows = self._onet_pass(frame, boxes[:, 1:5].astype(np.float64))  # ONet
        rows = pick_matches(rows, score_threshold=self.detector.detection_threshold)
        rows = smart_nms_from_bboxes(
            rows, threshold=0.7, method="min", initial_sort=True
        )
        rows = np.asarray(rows, np.float32).reshape(-1, 16)
        return self.detector._to_faces(rows, frame.shape, frame.shape)

    def _onet_pass(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """ONet on `(N, 4)` float64 boxes: `(N, 16)` float32 MTCNN rows `[0, x0,
        y0, x1, y1, score, x1..x5, y1..y5]` in frame pixels, boxes clipped to the
        frame as MTCNN clips them (its `adjust_bboxes`, `adjust_landmarks`)."""
        height, width = frame.shape[:2]
        offsets, points, scores = (
            np.asarray(t) for t in self._onet_call(_patches(frame, boxes, ONET_SIZE))
        )
        side = np.stack(
            [boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1], 1
        )  # MTCNN's w, h (+1 as in its adjust_bboxes / adjust_landmarks).
        rows = np.zeros((len(boxes), 16), np.float32)
        rows[:, 1:5] = boxes + offsets * np.tile(side, 2)
        rows[:, 5] = scores[:, -1]
        rows[:, 6:11] = side[:, :1] * points[:, :5] + boxes[:, :1] - 1
        rows[:, 11:16] = side[:, 1:] * points[:, 5:] + boxes[:, 1:2] - 1
        rows[:, [1, 3]] = np.clip(rows[:, [1, 3]], 0, width - 1)
        rows[:, [2, 4]] = np.clip(rows[:, [2, 4]], 0, height - 1)
        return rows


def _side(face: Face) -> float:
    """Side of a face's square box, frame pixels."""
    return float(face.box[2] - face.box[0])


def _pnet_levels(pnet) -> Callable:
    """`levels(frame, shapes)`: PNet's `(offsets, scores)` on each pyramid level.

    The frame (`(H, W, 3)` uint8) is normalised as MTCNN does ((x - 127.5) / 128)
    and resized to each `(h, w)` of `shapes` with area averaging, as the `mtcnn`
    package's `scale_images` does.
    """
    import tensorflow as tf

    def levels(frame, shapes):
        image = (tf.cast(frame[None], tf.float32) - 127.5) / 128.0
        return [
            pnet.call(tf.image.resize(image, shape, method="area")) for shape in shapes
        ]

    return levels


def _patches(frame: np.ndarray, boxes: np.ndarray, size: int):
    """`(N, size, size, 3)` float32 patches of `(N, 4)` boxes, as MTCNN cuts them.

    The `mtcnn` package's `extract_patches` on the normalised frame, computed on
    one region around all boxes (faces are few), so only it is normalised.
    """
    import tensorflow as tf

    height, width = frame.shape[:2]
    x0 = int(max(0, math.floor(boxes[:, 0].min()) - 1))
    y0 = int(max(0, math.floor(boxes[:, 1].min()) - 1))
    x1 = int(min(width, math.ceil(boxes[:, 2].max()) + 2))
    y1 = int(min(height, math.ceil(boxes[:, 3].max()) + 2))
    x0, y0 = min(x0, width - 2), min(y0, height - 2)
    x1, y1 = max(x1, x0 + 2), max(y1, y0 + 2)
    region = (frame[y0:y1, x0:x1].astype(np.float32) - 127.5) / 128.0
    # extract_patches samples box coordinate v at v * (S - 1) / S of the whole
    # image (S = W or H); the same sample points in region pixels:
    sx = (boxes[:, [0, 2]] * (width - 1) / width - x0) / (x1 - x0 - 1)
    sy = (boxes[:, [1, 3]] * (height - 1) / height - y0) / (y1 - y0 - 1)
    coords = np.stack([sy[:, 0], sx[:, 0], sy[:, 1], sx[:, 1]], 1)
    return tf.image.crop_and_resize(
        region[None],
        coords.astype(np.float32),
        np.zeros(len(boxes), np.int32),
        (size, size),
    )


_DONE = object()


class ThreadedMap:
    """`map(function, items)` computed in a worker thread, with bounded queues.

    Iterating yields `function(item)` in the order of `items`. One thread reads
    `items` (e.g. decodes video frames) into a queue of at most `depth` items; a
    second applies `function`; the caller consumes the results (e.g. encodes)
    from another queue of at most `depth`. So reading, computing and writing
    overlap where they release the GIL (video codecs, TensorFlow, OpenCV), and
    memory holds at most about `2 * depth + 3` items at once. An exception in a
    thread is raised again from the iteration.

    Args:
        function: callable item -> result, called in order on one thread (so it
            may keep state, e.g. face tracks).
        items: iterable of inputs.
        depth: int >= 1. Capacity of each queue.
    """

    def __init__(self, function: Callable, items: Iterable, depth: int = 4):
        if int(depth) < 1:
            raise FaceswapError(f"depth must be >= 1; got {depth!r}.")
        self.function, self.items, self.depth = function, items, int(depth)

    def __iter__(self) -> Iterator:
        inputs: queue.Queue = queue.Queue(self.depth)
        outputs: queue.Queue = queue.Queue(self.depth)
        stop = threading.Event()

        def put(q: queue.Queue, value) -> bool:
            while not stop.is_set():
                try:
                    q.put(value, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def read() -> None:
            try:
                for item in self.items:
                    if not put(inputs, item):
                        return
                put(inputs, _DONE)
            except BaseException as error:  # Re-raised by the consumer.
                put(inputs, error)

        def compute() -> None:
            while not stop.is_set():
                try:
                    item = inputs.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is _DONE or isinstance(item, BaseException):
                    put(outputs, item)
                    return
                try:
                    result = self.function(item)
                except BaseException as error:
                    put(outputs, error)
                    return
                if not put(outputs, (result,)):
                    return

        threads = [threading.Thread(target=t, daemon=True) for t in (read, compute)]
        for thread in threads:
            thread.start()
        try:
            while True:
                item = outputs.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item[0]
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=5)
