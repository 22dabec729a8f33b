"""Swap only the chosen person: identity-aware face tracks voted against a reference.

A video's faces are grouped into tracks, and each whole track is swapped or left alone,
so a person is swapped on every frame of their track or on none, and the swap never
jumps to another face when people cross or a detection is missed (the misfire users
report of per-frame selection: roop-unleashed #260, #264).

How (`VideoConverter.convert` with `ConverterConfig.reference`, pass 1 of 2):

1. Each frame's detections go through `faceswap_gan.faces.tracking.FaceTracker` (box
   IoU, no smoothing), which links faces across frames and keeps a missed face for a
   few frames. Each detected face is aligned on its five landmarks (128 px, as
   `faceswap_gan.evaluation.identity_video`) and embedded with the identity scorer
   evaluation uses, `build_identity_embedder("mobilefacenet")` (unit-norm 192-d;
   compared by cosine similarity, `evaluation.metrics.cosine_similarity`).
2. Identity-aware tracks: an IoU track is split where its face's embedding jumps away
   from the track's running identity (mean of its unit embeddings so far): cosine
   below `split_threshold` on two detected frames in a row that agree with each other
   (a single odd frame, such as a blink or a blur, is kept in the track). So at a hard
   cut where two people exchange places, the IoU track that continues on the left with
   the other person is cut there, and each track holds one person.
3. Vote: a track is swapped when most of its embedded frames (strictly more than half)
   have a cosine similarity to the reference of at least `similarity_threshold`.

Only small per-face records (track, box, five points, detected) are kept per frame;
no frame and no embedding is stored beyond a batch, so memory stays flat in pixels.
Pass 2 (in `converter.pipeline`) decodes again and swaps the chosen tracks' faces from
these records, without detecting again.

Default threshold: `DEFAULT_SIMILARITY_THRESHOLD` =
`faceswap_gan.config.SAME_PERSON_COSINE` (0.4 cosine), FaceFusion's default
face-selector setting (see there); it was not tuned on this project's data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceswap_gan.config import SAME_PERSON_COSINE
from faceswap_gan.errors import FaceswapError
from faceswap_gan.evaluation.metrics import unit_vectors
from faceswap_gan.faces.alignment import align
from faceswap_gan.faces.identity import embed_crops

DEFAULT_SIMILARITY_THRESHOLD = SAME_PERSON_COSINE  # Cosine (see module doc).
IDENTITY_BACKEND = "mobilefacenet"  # The evaluation's independent identity scorer.
EMBED_CROP_SIZE = 128  # Aligned crop side (px) given to the embedder.
EMBED_BATCH = 32  # Faces embedded per call during pass 1.


def reference_crops(paths: Sequence[str | Path], detector) -> np.ndarray:
    """The aligned face of each reference photo, checked before any embedding.

    Each photo is read and its face detected with `detector` and aligned on its five
    landmarks exactly as video faces are (`EMBED_CROP_SIZE` px).

    Args:
        paths: one or more image files, each holding exactly one face.
        detector: object with `detect(frame) -> list[Face]`.

    Returns:
        `(len(paths), 128, 128, 3)` uint8 RGB.

    Raises:
        FaceswapError: no path given; a photo is missing or unreadable; a photo shows
            no face or more than one (the message names the photo and the count).
    """
    from faceswap_gan.images import read_image

    if not paths:
        raise FaceswapError("reference needs at least one photo of the person.")
    crops = []
    for path in paths:
        try:
            image = read_image(path)
        except (FileNotFoundError, FaceswapError) as error:
            raise FaceswapError(
                f"Cannot read the reference photo {path}: {error}"
            ) from error
        faces = detector.detect(image)
        if len(faces) != 1:
            what = "no face" if not faces else f"{len(faces)} faces"
            raise FaceswapError(
                f"The reference photo {path} shows {what}; it must show exactly one "
                f"face, the person to swap (crop it to that person)."
            )
        crops.append(align(image, faces[0].landmarks5, EMBED_CROP_SIZE)[0])
    return np.stack(crops)


def reference_embedding(crops: np.ndarray, embedder) -> np.ndarray:
    """The reference identity: mean unit embedding of `reference_crops`' faces.

    Args:
        crops: `(N, S, S, 3)` uint8 RGB aligned faces, N >= 1.
        embedder: identity embedder (`build_identity_embedder`).

    Returns:
        `(D,)` float64 unit vector.
    """
    return unit_vectors(embed_crops(embedder, list(crops)).mean(axis=0))


@dataclass
class FaceRecord:
    """One tracked face in one frame, as pass 1 stores it (no pixels).

    Attributes:
        track: int. Identity-track id (0, 1, ... in order of appearance).
        box: `(4,)` float32 `[x0, y0, x1, y1]` frame pixels: the detector's box, or
            the last one when `detected` is False.
        landmarks5: `(5, 2)` float32 (x, y) frame pixels, the detector's points.
        detected: bool. False: the detector missed the face on this frame; the
            track kept it (FaceTracker's `max_missed`).
    """

    track: int
    box: np.ndarray
    landmarks5: np.ndarray
    detected: bool


@dataclass
class TrackReport:
    """The decision on one identity track.

    Attributes:
        track: int. Identity-track id (`FaceRecord.track`).
        first_frame, last_frame: int. Frame indices (0-based, in the converted span).
        frames: int. Frames where the track has a face (detected or kept).
        embedded_frames: int. Frames whose face was embedded (detected ones).
        mean_similarity: float. Mean cosine similarity of those faces to the
            reference, in [-1, 1].
        votes: int. Embedded frames with similarity >= the threshold.
        swapped: bool. votes > embedded_frames / 2.
    """

    track: int
    first_frame: int
    last_frame: int
    frames: int
    embedded_frames: int
    mean_similarity: float
    votes: int
    swapped: bool

    def line(self) -> str:
        """One human-readable line."""
        return (
            f"track {self.track}: frames {self.first_frame}-{self.last_frame} "
            f"({self.frames}), mean similarity {self.mean_similarity:.3f}, "
            f"{self.votes}/{self.embedded_frames} votes: "
            f"{'swapped' if self.swapped else 'kept'}"
        )


class _Segment:
    """Running identity of one identity track."""

    def __init__(self, track: int, frame: int) -> None:
        self.track, self.first, self.last, self.frames = track, frame, frame, 0
        self.embedded, self.votes, self.similarity = 0, 0, 0.0
        self.direction = None  # Sum of unit embeddings.

    def add(self, embedding, similarity, threshold) -> None:
        self.embedded += 1
        self.similarity += similarity
        self.votes += similarity >= threshold
        self.direction = (
            embedding if self.direction is None else self.direction + embedding
        )

    def cosine(self, embedding) -> float:
        return float(np.dot(unit_vectors(self.direction), embedding))


class _IouTrack:
    """Per FaceTracker track: its current segment and an unconfirmed odd face."""

    def __init__(self, segment: _Segment) -> None:
        self.segment = segment
        # (embedding, similarity, records since the odd face, their frames) or None.
        self.pending = None


class IdentityTracks:
    """Pass 1: identity-aware tracks of a video's faces, voted against a reference.

    Feed frames in order with `add(frame)`, then call `finish()`. Detection, IoU
    tracking, embedding and splitting are described in the module docstring.

    Args:
        reference: `(D,)` reference identity (`reference_embedding`).
        detector: object with `detect(frame) -> list[Face]`.
        embedder: identity embedder with `embed((N, S, S, 3) uint8) -> (N, D)`.
        similarity_threshold: float in [-1, 1]. Cosine at or above which a face
            votes for the reference.
        split_threshold: float in [-1, 1] or None (= `similarity_threshold`). Cosine
            below which a face is another person than its track so far.
        max_missed: int >= 0. Frames a face is kept when the detector misses it.

    Attributes:
        frames: list, per frame, of the `FaceRecord`s of that frame.
        seconds: dict step -> wall seconds ("detect", "identify").
    """

    def __init__(
        self,
        reference: np.ndarray,
        detector,
        embedder,
        similarity_threshold: float = DEFAULT_SIMILARITY_THRESHOLD,
        split_threshold: float | None = None,
        max_missed: int = 5,
    ) -> None:
        from faceswap_gan.faces.tracking import FaceTracker

        self.reference = unit_vectors(reference)
        self.detector, self.embedder = detector, embedder
        self.threshold = float(similarity_threshold)
        self.split = self.threshold if split_threshold is None else split_threshold
        self.tracker = FaceTracker(None, max_missed=max_missed)  # Raw boxes.
        self.frames: list[list[FaceRecord]] = []
        self.segments: list[_Segment] = []
        self._iou_tracks: dict[int, _IouTrack] = {}
        self._queue: list = []  # (iou track id, record, crop or None) in frame order.
        self._crops = 0
        self.seconds = {"detect": 0.0, "identify": 0.0}

    def add(self, frame: np.ndarray) -> list[FaceRecord]:
        """Detects, tracks and queues for embedding the faces of the next frame.

        Args:
            frame: `(H, W, 3)` uint8 RGB.

        Returns:
            This frame's records (their `track` may still change until `finish`).
        """
        import time

        tic = time.perf_counter()
        tracked = self.tracker.update(self.detector.detect(frame))
        self.seconds["detect"] += time.perf_counter() - tic
        tic = time.perf_counter()
        index, records = len(self.frames), []
        for face in tracked:
            record = FaceRecord(
                -1,
                np.asarray(face.box, np.float32),
                np.asarray(face.landmarks5, np.float32),
                bool(face.detected),
            )
            crop = None
            if face.detected:
                crop = align(frame, face.landmarks5, EMBED_CROP_SIZE)[0]
                self._crops += 1
            self._queue.append((face.track_id, index, record, crop))
            records.append(record)
        self.frames.append(records)
        if self._crops >= EMBED_BATCH:
            self._flush()
        self.seconds["identify"] += time.perf_counter() - tic
        return records

    def _flush(self) -> None:
        crops = [item[3] for item in self._queue if item[3] is not None]
        embeddings = iter(embed_crops(self.embedder, crops))
        for iou_id, index, record, crop in self._queue:
            embedding = None if crop is None else next(embeddings)
            self._assign(iou_id, index, record, embedding)
        self._queue, self._crops = [], 0

    def _new_segment(self, index: int) -> _Segment:
        segment = _Segment(len(self.segments), index)
        self.segments.append(segment)
        return segment

    def _place(self, segment: _Segment, index: int, record: FaceRecord) -> None:
        record.track = segment.track
        segment.frames += 1
        segment.last = max(segment.last, index)

    def _assign(self, iou_id, index, record, embedding) -> None:
        """Puts one face in its identity track, splitting the IoU track if needed."""
        track = self._iou_tracks.get(iou_id)
        if track is None:  # A new IoU track always starts with a detected face.
            track = self._iou_tracks[iou_id] = _IouTrack(self._new_segment(index))
        if embedding is None:  # Kept (missed) face: the current identity.
            self._place(track.segment, index, record)
            if track.pending is not None:
                track.pending[2].append((index, record))
            return
        similarity = float(np.dot(embedding, self.reference))
        segment = track.segment
        if segment.direction is None or segment.cosine(embedding) >= self.split:
            self._settle_pending(track)
            segment.add(embedding, similarity, self.threshold)
            self._place(segment, index, record)
            return
        # An odd face: another person, or a bad frame of the same one.
        if track.pending is not None:
            odd_embedding = track.pending[0]
            if float(np.dot(odd_embedding, embedding)) >= self.split:
                self._split(track, index, record, embedding, similarity)
                return
            self._settle_pending(track)  # Two odd faces that disagree: keep both.
            segment.add(embedding, similarity, self.threshold)
            self._place(segment, index, record)
            return
        self._place(segment, index, record)  # Provisional; moved if confirmed.
        track.pending = (embedding, similarity, [(index, record)])

    def _settle_pending(self, track: _IouTrack) -> None:
        """An unconfirmed odd face stays in its track and votes there."""
        if track.pending is not None:
            embedding, similarity, _ = track.pending
            track.segment.add(embedding, similarity, self.threshold)
            track.pending = None

    def _split(self, track, index, record, embedding, similarity) -> None:
        """Starts a new identity track at the odd face that `record` confirmed."""
        odd_embedding, odd_similarity, moved = track.pending
        old = track.segment
        first = moved[0][0]
        new = self._new_segment(first)
        for moved_index, moved_record in moved:
            old.frames -= 1
            self._place(new, moved_index, moved_record)
        old.last = first - 1 if old.frames else old.first
        new.add(odd_embedding, odd_similarity, self.threshold)
        new.add(embedding, similarity, self.threshold)
        self._place(new, index, record)
        track.segment, track.pending = new, None

    def finish(self) -> list[TrackReport]:
        """Embeds what is queued and votes; returns one report per identity track.

        Empty tracks (every frame moved into a split-off track) are left out.
        """
        import time

        tic = time.perf_counter()
        self._flush()
        for track in self._iou_tracks.values():
            self._settle_pending(track)
        self.seconds["identify"] += time.perf_counter() - tic
        reports = []
        for segment in self.segments:
            if segment.frames == 0:
                continue
            embedded = max(segment.embedded, 1)
            reports.append(
                TrackReport(
                    track=segment.track,
                    first_frame=segment.first,
                    last_frame=segment.last,
                    frames=segment.frames,
                    embedded_frames=segment.embedded,
                    mean_similarity=segment.similarity / embedded,
                    votes=segment.votes,
                    swapped=segment.votes > segment.embedded / 2,
                )
            )
        return reports


class TrackReplay:
    """Pass 2: the chosen tracks' faces frame by frame, smoothed per identity track.

    Replays `FaceTracker`'s smoothing on the stored records: each identity track gets
    its own smoother (a split track starts afresh, so a box never glides from one
    person to the other); a kept (missed) face gets the smoother's prediction and the
    last detected points moved with the box, as `FaceTracker` does.

    Args:
        frames: `IdentityTracks.frames`.
        chosen: the identity-track ids to swap.
        smoother_factory: callable () -> smoother (`update(box)`, `predict()`), or
            None for raw boxes.
    """

    def __init__(self, frames, chosen, smoother_factory=None) -> None:
        from faceswap_gan.faces.tracking import RawBoxSmoother

        self.frames, self.chosen = frames, set(chosen)
        self.factory = smoother_factory or RawBoxSmoother
        self._state: dict[int, list] = {}  # track -> [smoother, points, detected_box]

    def tracked(self, index: int) -> list:
        """`TrackedFace`s to swap on frame `index`, sorted by track id."""
        from faceswap_gan.faces.tracking import TrackedFace, move_landmarks

        out = []
        for record in self.frames[index] if index < len(self.frames) else ():
            if record.track not in self.chosen:
                continue
            state = self._state.get(record.track)
            if state is None:
                state = self._state[record.track] = [self.factory(), None, None]
            if record.detected or state[1] is None:
                box = state[0].update(record.box)
                state[1], state[2] = record.landmarks5, box.copy()
                points = record.landmarks5.copy()
            else:
                box = state[0].predict()
                points = move_landmarks(state[1], state[2], box)
            out.append(TrackedFace(record.track, box, points, record.detected))
        return sorted(out, key=lambda face: face.track_id)
