"""Fast video face detection: MTCNN on keyframes, ONet-tracked faces in between.

`KeyframeDetector` is a drop-in `detect(frame) -> list[Face]` for
`converter.pipeline.VideoConverter(detector=...)`, called once per frame in order.
Full MTCNN (the three-network cascade of Zhang et al., 2016,
https://arxiv.org/abs/1604.02878) is by far the most expensive step of a conversion
(76 % of the time on the project's CPU), and almost all of it is the PNet image
pyramid over the whole frame. Between two frames a face moves a few pixels, so the
cascade's last stage alone is enough to follow it:

- keyframes (the first frame, then every `keyframe_seconds` of video, and at once
  whenever a track is lost): MTCNN's PNet and RNet on a copy of the frame
  downscaled so that the smallest face still worth finding is MTCNN's minimum face
  size (20 px) there, then ONet at full size on their proposals. "Worth finding" is
  `new_face_fraction` of the smallest face tracked so far, and never below the
  detector's `min_face_area` (smaller faces are dropped anyway); with no face
  tracked, only `min_face_area` bounds it. MTCNN's cost scales with the pixels it
  scans, so a 200 px face in a 480x480 frame is found in a 96x96 copy at a
  twenty-fifth of the cost. A face already tracked keeps its own proposal (below)
  at a keyframe; the keyframe's proposals add the faces not yet tracked, and
  a tracked face's fresh proposal refines where its proposals are put (below).
- every other frame: each face's ONet box is predicted from its previous ones by a
  constant-velocity Kalman filter (`tracking.KalmanBoxSmoother`); the proposal is
  put where RNet's are on average, relative to that box, over the keyframes that
  found the face (ONet's points depend on the framing of its input), made square
  as MTCNN squares RNet's proposals, cut from the full-resolution frame with
  MTCNN's own `tf.image.crop_and_resize` at 48x48, and refined by ONet, averaged
  over seven slightly shifted and scaled copies of the proposal
  (`PROPOSAL_JITTER`). ONet returns what a full detection returns: the refined
  box, MTCNN's five landmarks (the points the aligner uses) and the face score.
- confidence: a track is lost when ONet's face score falls below the detector's
  `detection_threshold` (the threshold a full detection applies to the same
  score), or when the refined box has drifted off its proposal (IoU below
  `min_proposal_iou`: ONet was asked about the wrong region). A lost track
  triggers a full detection on that same frame, so a cut to another shot or a
  face leaving the frame is handled at once, not at the next keyframe. Two tracks
  that converge on one face (IoU > 0.5) are merged, keeping the higher score.

New faces entering the picture are found at the next keyframe, at most
`keyframe_seconds` late (0.25 s by default: 8 frames at 30 fps).

`ThreadedMap` runs a per-item function in a worker thread with bounded queues, so
decoding, computing and encoding can overlap (see `benchmarks/convert_speed.py`).
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable, Iterable, Iterator

import cv2
import numpy as np

from faceswap_gan.errors import FaceswapError
from faceswap_gan.faces.detection import MIN_FACE_SIZE, Face, FaceDetector
from faceswap_gan.faces.tracking import KalmanBoxSmoother, box_iou
from faceswap_gan.images import check_frame

ONET_SIZE = 48  # ONet's input side, pixels.
# Process noise of the box predictor. The converter's smoother uses 1e-3 to hold a
# box steady; a predictor must follow head motion within a frame or two, so its
# filter trusts the newest box much more.
PREDICTOR_NOISE = 1.0
# ONet is run on each proposal and on six perturbed copies, and its outputs are
# averaged: (dx, dy) shifts in units of the proposal's side and a log-scale change.
# A full detection's landmarks are ONet's answer to one RNet proposal, which itself
# wanders by a few percent of the face from frame to frame; averaging over
# perturbations of that size estimates ONet's expected answer instead of one draw
# (on the bundled clip it cut the landmark error against full detection from 2.5 %
# to 1.9 % of the eye distance, at 2 ms more per face on the 2-core CPU).
PROPOSAL_JITTER = (
    (0.0, 0.0, 0.0),
    (0.03, 0.0, 0.0),
    (-0.03, 0.0, 0.0),
    (0.0, 0.03, 0.0),
    (0.0, -0.03, 0.0),
    (0.0, 0.0, 0.05),
    (0.0, 0.0, -0.05),
)


class _Track:
    """One followed face: its last ONet row, its proposal and a box predictor.

    The proposal is kept where an RNet proposal would be: the offset of an RNet
    proposal from ONet's refined box (in units of that box's height) is the
    anchor, and proposals are put at the anchor from the predicted box. ONet's
    landmarks depend on the framing of its input, and ONet's own box is not square
    like RNet's proposals, so proposing ONet's box again would shift them (by about
    3 % of the eye distance on the bundled clip). The anchor is the mean of the
    offsets seen at every keyframe that re-found the face (`observe`): one RNet
    proposal is one draw, off by a few percent of the face, and a fixed draw
    framed the face a little too wide or narrow for the whole video (the points'
    spread drifted 2 % from full detection's on the bundled clip); the mean
    estimates RNet's expected framing and steadies as keyframes add up.
    """

    def __init__(self, row: np.ndarray, proposal: np.ndarray):
        self.predictor = KalmanBoxSmoother(PREDICTOR_NOISE)
        self.anchor, self.anchors = _anchor(row, proposal), 1
        self.refined(row)

    def refined(self, row: np.ndarray) -> None:
        self.row = row
        self.next_box = self.predictor.update(row[1:5])

    def observe(self, row: np.ndarray, proposal: np.ndarray) -> None:
        """Adds a keyframe's RNet `proposal` of this face, refined by ONet into
        `row`, to the anchor's mean."""
        self.anchors += 1
        self.anchor += (_anchor(row, proposal) - self.anchor) / self.anchors

    def proposal(self) -> np.ndarray:
        """`(4,)` float64 square ONet proposal for the next frame."""
        box = self.next_box
        return square_proposals(box + self.anchor * _height(box))[0]


def _anchor(row: np.ndarray, proposal: np.ndarray) -> np.ndarray:
    """`(4,)` offset of a square `proposal` from ONet's box `row[1:5]` refined from
    it, in units of that box's height."""
    box = row[1:5].astype(np.float64)
    return (square_proposals(proposal)[0] - box) / _height(box)


def _height(box: np.ndarray) -> float:
    return float(max(box[3] - box[1], 1.0))


def square_proposals(boxes: np.ndarray) -> np.ndarray:
    """`(N, 4)` `[x0, y0, x1, y1]` -> squares of side max(w, h) around the centres.

    MTCNN's `resize_to_square`, which shapes RNet's output into ONet's proposals.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    return np.concatenate([centre - side[:, None] / 2, centre + side[:, None] / 2], 1)


class KeyframeDetector:
    """MTCNN on keyframes, ONet refinement of predicted boxes on every frame.

    A drop-in for `FaceDetector` in a video: `detect(frame)` must be called once per
    frame, in order; call `start_video(fps)` (or `reset()`) before a new video or a
    single image. See the module docstring for the method.

    Args:
        detector: FaceDetector | None. The MTCNN whose networks, thresholds and
            `min_face_area` are used (its `auto_downscale` is not: keyframes are
            downscaled as described above); None builds `FaceDetector()`.
        fps: float > 0. Frame rate of the video, frames per second; sets the
            keyframe interval in frames. Defaults to 30.
        keyframe_seconds: float >= 0. Seconds of video between keyframes, i.e. how
            late a face entering the picture may be found; 0 makes every frame a
            keyframe (no tracking, only the downscaled detection). Defaults to 0.25.
        new_face_fraction: float in (0, 1]. A keyframe still finds new faces down to
            this fraction of the smallest tracked face's side. Defaults to 0.5.
        min_proposal_iou: float in [0, 1). A refined box overlapping its proposal
            less than this loses the track. Defaults to 0.5.

    Attributes:
        counts: dict with "frames", "keyframes" (keyframe passes, forced ones
            included), "redetections" (keyframes forced by a lost track) and
            "refined" (faces refined by ONet, each over `PROPOSAL_JITTER`).

    Raises:
        FaceswapError: an argument outside its range.

    Reference:
        - Zhang et al., 2016, https://arxiv.org/abs/1604.02878 (MTCNN; ONet).
        - `mtcnn` package (I. de Paz Centeno), `StageONet`, `extract_patches`.
    """

    def __init__(
        self,
        detector: FaceDetector | None = None,
        fps: float = 30.0,
        keyframe_seconds: float = 0.25,
        new_face_fraction: float = 0.5,
        min_proposal_iou: float = 0.5,
    ):
        if not keyframe_seconds >= 0:
            raise FaceswapError(
                f"keyframe_seconds must be >= 0; got {keyframe_seconds!r}."
            )
        if not 0 < new_face_fraction <= 1:
            raise FaceswapError(
                f"new_face_fraction must be in (0, 1]; got {new_face_fraction!r}."
            )
        if not 0 <= min_proposal_iou < 1:
            raise FaceswapError(
                f"min_proposal_iou must be in [0, 1); got {min_proposal_iou!r}."
            )
        self.detector = detector if detector is not None else FaceDetector()
        self.keyframe_seconds = float(keyframe_seconds)
        self.new_face_fraction = float(new_face_fraction)
        self.min_proposal_iou = float(min_proposal_iou)
        import tensorflow as tf

        onet = self.detector._mtcnn.get_stage(stage_id=3).model
        # Compiled once: an eager Keras call costs ~40 ms, the graph ~2 ms.
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
        self._tracks: list[_Track] = []
        self._since_keyframe = 0
        self.counts = {"frames": 0, "keyframes": 0, "redetections": 0, "refined": 0}

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
        keyframe = not self._tracks or self._since_keyframe >= self.interval
        if self._tracks and not keyframe:
            lost = self._follow(frame)
            if lost:
                self.counts["redetections"] += 1
                keyframe = True
        if keyframe:
            self._keyframe(frame)
        self._since_keyframe = 0 if keyframe else self._since_keyframe + 1
        rows = np.stack([t.row for t in self._tracks]) if self._tracks else None
        if rows is None:
            return []
        return self.detector._to_faces(rows, frame.shape, frame.shape)

    # -- keyframes -------------------------------------------------------------
    def _keyframe_scale(self, frame: np.ndarray) -> float:
        """Downscaling factor in (0, 1] for this keyframe's full MTCNN pass."""
        smallest = math.sqrt(max(self.detector.min_face_area, 1.0))
        if self._tracks:
            sides = [
                min(t.row[3] - t.row[1], t.row[4] - t.row[2]) for t in self._tracks
            ]
            smallest = max(smallest, self.new_face_fraction * min(sides))
        return min(1.0, MIN_FACE_SIZE / smallest)

    def _keyframe(self, frame: np.ndarray) -> None:
        """PNet + RNet on a downscaled copy; ONet on their proposals at full size."""
        self.counts["keyframes"] += 1
        height, width = frame.shape[:2]
        scale = self._keyframe_scale(frame)
        small = frame
        if scale < 1.0:
            size = (max(round(width * scale), 1), max(round(height * scale), 1))
            small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        proposals = self._proposals(small)  # (N, 4) in `small` pixels
        proposals *= np.tile([width / small.shape[1], height / small.shape[0]], 2)
        # The tracked faces' own proposals join the new ones and win over those that
        # overlap them (_dedup), so a tracked face keeps its framing: its anchor and
        # proposal, not a coarse one from the downscaled pass, which would make its
        # points jump at every keyframe. New proposals add the faces not tracked.
        previous, self._tracks = self._tracks, []
        known = [t.proposal() for t in previous]
        proposals = np.concatenate([np.reshape(known, (-1, 4)), proposals])
        if not len(proposals):
            return
        rows = self._refine(frame, proposals)
        good = rows[:, 5] >= self.detector.detection_threshold
        rows, proposals = rows[good], proposals[good]
        tracked = (np.arange(len(good)) < len(known))[good]
        kept = self._dedup(rows, tracked)
        fresh = np.flatnonzero(~tracked)  # This keyframe's own RNet proposals.
        for index in kept:
            row = rows[index]
            track = self._match(previous, row)
            if track is None:
                track = _Track(row, proposals[index])
            else:
                track.refined(row)
                # The fresh RNet proposal of this face (the one the dedup dropped
                # for the track's own), if any, joins the anchor's mean.
                if len(fresh):
                    iou = box_iou(row[None, 1:5], rows[fresh, 1:5])[0]
                    best = int(np.argmax(iou))
                    if iou[best] > 0.5 and fresh[best] not in kept:
                        track.observe(rows[fresh[best]], proposals[fresh[best]])
            self._tracks.append(track)

    def _proposals(self, image: np.ndarray) -> np.ndarray:
        """MTCNN's PNet + RNet stages on one image: `(N, 4)` square proposals."""
        import tensorflow as tf
        from mtcnn.utils.images import load_images_batch, standarize_batch

        mtcnn = self.detector._mtcnn
        with tf.device(mtcnn.device):
            try:
                images, shapes, _ = standarize_batch(load_images_batch([image]))
                rows = None
                for stage in mtcnn.stages[:2]:
                    rows = stage(
                        bboxes_batch=rows,
                        images_normalized=images,
                        images_oshapes=shapes,
                        min_face_size=MIN_FACE_SIZE,
                        threshold_pnet=0.6,
                        threshold_rnet=0.7,
                    )
            except tf.errors.InvalidArgumentError:  # No face (as MTCNN handles it).
                return np.zeros((0, 4))
        return np.asarray(rows, np.float64).reshape(len(rows), -1)[:, 1:5]

    @staticmethod
    def _match(previous: list[_Track], row: np.ndarray) -> _Track | None:
        """The old track this keyframe face continues (IoU >= 0.3), kept once."""
        if not previous:
            return None
        iou = box_iou(row[None, 1:5], np.stack([t.row[1:5] for t in previous]))[0]
        best = int(np.argmax(iou))
        return previous.pop(best) if iou[best] >= 0.3 else None

    # -- tracking --------------------------------------------------------------
    def _follow(self, frame: np.ndarray) -> bool:
        """Refines every track on its predicted box; True if one was lost."""
        proposals = np.stack([t.proposal() for t in self._tracks])
        rows = self._refine(frame, proposals)
        iou = np.diag(box_iou(rows[:, 1:5], proposals))
        confident = rows[:, 5] >= self.detector.detection_threshold
        if not np.all(confident & (iou >= self.min_proposal_iou)):
            return True
        for track, row in zip(self._tracks, rows):
            track.refined(row)
        self._tracks = [self._tracks[i] for i in self._dedup(rows)]
        return False

    @staticmethod
    def _dedup(rows: np.ndarray, first: np.ndarray | None = None) -> list[int]:
        """Indices of rows, `first` ones then by score, less any overlapping an
        earlier one (IoU > 0.5)."""
        iou = box_iou(rows[:, 1:5], rows[:, 1:5])
        first = np.zeros(len(rows), bool) if first is None else first
        kept: list[int] = []
        for index in np.lexsort((-rows[:, 5], ~first)):
            if all(iou[index, k] <= 0.5 for k in kept):
                kept.append(int(index))
        return kept

    def _refine(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """ONet on the squared `(N, 4)` boxes, averaged over `PROPOSAL_JITTER`.

        Returns `(N, 16)` float32 MTCNN rows `[0, x0, y0, x1, y1, score, x1..x5,
        y1..y5]` in frame pixels, boxes clipped to the frame as MTCNN clips them.
        """
        boxes = square_proposals(boxes)  # (N, 4)
        jitter = np.asarray(PROPOSAL_JITTER, np.float64)  # (J, 3): dx, dy, log scale
        side = (boxes[:, 2] - boxes[:, 0])[:, None]  # (N, 1)
        centre = (boxes[:, None, :2] + boxes[:, None, 2:]) / 2  # (N, 1, 2)
        centre = centre + jitter[None, :, :2] * side[..., None]  # (N, J, 2)
        half = (side * np.exp(jitter[None, :, 2]) / 2)[..., None]  # (N, J, 1)
        many = np.concatenate([centre - half, centre + half], -1).reshape(-1, 4)
        rows = self._onet_pass(frame, many).reshape(len(boxes), len(jitter), 16)
        rows = rows.mean(axis=1).astype(np.float32)
        self.counts["refined"] += len(boxes)
        return rows

    def _onet_pass(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        height, width = frame.shape[:2]
        # One region around all boxes (faces are few), so only it is converted.
        x0 = int(max(0, math.floor(boxes[:, 0].min()) - 1))
        y0 = int(max(0, math.floor(boxes[:, 1].min()) - 1))
        x1 = int(min(width, math.ceil(boxes[:, 2].max()) + 2))
        y1 = int(min(height, math.ceil(boxes[:, 3].max()) + 2))
        if x1 - x0 < 2 or y1 - y0 < 2:  # The boxes left the frame.
            rows = np.zeros((len(boxes), 16), np.float32)
            rows[:, 1:5] = boxes
            return rows
        region = (frame[y0:y1, x0:x1].astype(np.float32) - 127.5) / 128.0
        # MTCNN's extract_patches samples box coordinate v at v * (S - 1) / S of
        # the whole image (S = W or H); the same sample points in region pixels:
        sx = (boxes[:, [0, 2]] * (width - 1) / width - x0) / max(x1 - x0 - 1, 1)
        sy = (boxes[:, [1, 3]] * (height - 1) / height - y0) / max(y1 - y0 - 1, 1)
        coords = np.stack([sy[:, 0], sx[:, 0], sy[:, 1], sx[:, 1]], 1)
        patches = tf.image.crop_and_resize(
            region[None],
            coords.astype(np.float32),
            np.zeros(len(boxes), np.int32),
            (ONET_SIZE, ONET_SIZE),
        )
        offsets, points, scores = (np.asarray(t) for t in self._onet_call(patches))
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
