"""Per-frame identity of a converted video: is the swapped face closer to the target
person than the source face was?

For each frame of the source video, MTCNN finds the face (the most confident one) and
both the source frame and the same frame of the converted video are aligned with those
same five landmarks, so the two crops show the same place: the face before and after
the swap. An identity embedder scores both against the centroid of the target person's
faces. Use the independent scorer (`build_identity_embedder("mobilefacenet")`): the
perceptual loss trained against face_api's network, so face_api would flatter the swap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceswap_gan.evaluation import metrics
from faceswap_gan.evaluation.faces import BATCH
from faceswap_gan.faces.alignment import align
from faceswap_gan.faces.identity import embed_crops
from faceswap_gan.video import iter_video_frames

CROP_SIZE = 128  # Aligned crop side (pixels) given to the embedder.


@dataclass
class SwapIdentity:
    """Identity of the faces of a converted video, frame by frame.

    Attributes:
        frames: int. Frames of the source video that were read.
        indices: `(F,)` int. Frame indices where a face was found (F <= frames).
        source: `(F,)` float. Cosine of the source face to the target's centroid.
        swapped: `(F,)` float. Cosine of the converted face to the target's centroid.
    """

    frames: int
    indices: np.ndarray
    source: np.ndarray
    swapped: np.ndarray

    @property
    def closer_fraction(self) -> float:
        """Share (0 to 1) of frames with a face whose swapped face is closer to the
        target than the source face is; NaN when no frame had a face."""
        if len(self.indices) == 0:
            return float("nan")
        return float(np.mean(self.swapped > self.source))


def swap_identity_per_frame(
    source_video: str | Path,
    converted_video: str | Path,
    target_faces: np.ndarray,
    embedder,
    panel: int = 0,
    detector=None,
    max_frames: int | None = None,
) -> SwapIdentity:
    """Scores, frame by frame, the identity of a converted video against a target.

    Streams: the frames are read one at a time and their aligned crops embedded
    `evaluation.faces.BATCH` at a time, so memory does not grow with the video's
    length beyond a few numbers per frame.

    Args:
        source_video: the video that was converted (frames `(H, W, 3)`).
        converted_video: its conversion, same frame count and frame order; its frames
            hold panels of width W side by side (a "single" output has one panel, a
            "combined" output [source | result], a "triple" [source | result | mask]).
        target_faces: `(N, S, S, 3)` uint8 RGB crops of the target person (N >= 1).
        embedder: an identity embedder (`faceswap_gan.faces.identity.
            build_identity_embedder`), with `embed((N, H, W, 3) uint8) -> (N, D)`.
        panel: int >= 0. Which panel of the converted frames is the result: 0 for
            "single", 1 for "combined" and "triple".
        detector: a `faceswap_gan.faces.detection.FaceDetector`, or None to build one.
        max_frames: int | None. Only the first N frames.

    Returns:
        SwapIdentity.

    Raises:
        ValueError: the converted frames are not as tall as the source frames or too
            narrow for `panel`, or `target_faces` is empty.
    """
    from faceswap_gan.faces.detection import FaceDetector

    target_faces = np.asarray(target_faces)
    if target_faces.ndim != 4 or len(target_faces) == 0:
        raise ValueError(
            f"target_faces must be (N, S, S, 3) uint8 with N >= 1; got "
            f"{target_faces.shape}."
        )
    detector = detector or FaceDetector()
    centroid = metrics.centroid(
        embed_crops(embedder, target_faces, BATCH, normalise=False)
    )
    indices, frames = [], 0
    crops_in, crops_out = [], []  # At most BATCH crops wait for the embedder.
    cosines = {"source": [], "swapped": []}

    def score_crops():
        for key, crops in (("source", crops_in), ("swapped", crops_out)):
            embedded = embed_crops(embedder, np.stack(crops), BATCH, normalise=False)
            cosines[key].append(metrics.cosine_similarity(embedded, centroid))
            crops.clear()

    pairs = zip(
        iter_video_frames(source_video, 1, max_frames),
        iter_video_frames(converted_video, 1, max_frames),
    )
    for (index, source), (_, converted) in pairs:
        frames += 1
        height, width = source.shape[:2]
        if converted.shape[0] != height or converted.shape[1] < (panel + 1) * width:
            raise ValueError(
                f"Converted frame {index} is {converted.shape[1]}x{converted.shape[0]}"
                f"; expected panels of {width}x{height} with panel {panel} inside."
            )
        faces = detector.detect(source)
        if not faces:
            continue
        result = np.ascontiguousarray(converted[:, panel * width : (panel + 1) * width])
        indices.append(index)
        crops_in.append(align(source, faces[0].landmarks5, CROP_SIZE)[0])
        crops_out.append(align(result, faces[0].landmarks5, CROP_SIZE)[0])
        if len(crops_in) == BATCH:
            score_crops()
    if crops_in:
        score_crops()
    if not indices:
        empty = np.zeros(0)
        return SwapIdentity(frames, np.zeros(0, int), empty, empty)
    return SwapIdentity(
        frames,
        np.asarray(indices),
        np.concatenate(cosines["source"]),
        np.concatenate(cosines["swapped"]),
    )
