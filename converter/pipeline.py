"""VideoConverter: the per-frame face-swap loop over a video, streamed frame by frame.

faceswap-GAN v2.2 `converter/video_converter.py` (REFERENCE 1.7), rebuilt as a
pipeline of swappable parts (detector, tracker, aligner, transformer, blender) with the
loop spelled out in `convert_frame`. Fixes over the original: one smoothing track per
face, each face aligned with its own landmarks, faces kept for a few frames when the
detector misses them, all faces of a frame in one generator batch, audio copied
unchanged, output marked as synthetic (metadata tag and visible label), and decoding,
converting and encoding overlapped in three threads with bounded queues (`_stream`).

Smoothed box and landmarks. v2.2's `process_video` smooths the box (Kalman or EMA),
crops the frame to it (`det_face_im = frame[smoothed box]`), takes the RAW MTCNN
points in that crop's coordinates (`get_src_landmarks`: point minus the box's corner,
so they stay on the same pixels), aligns the crop onto the average points scaled to
the crop's size (`get_tar_landmarks`, `landmarks_match_mtcnn`: Umeyama + warpAffine
with BORDER_REPLICATE, output the crop's size), swaps (the ROI by `roi_coverage` is cut
from the aligned crop inside FaceTransformer), warps back into the crop and pastes it
into the frame at the smoothed box. So the face is aligned on the raw landmarks, and
the smoothed box only sets the crop (its size and the pixels the warp reads) and the
region pasted back. Here, likewise, the alignment uses the tracker's raw landmarks
(`FaceTracker`), the aligned crop's side comes from the smoothed boxes, and the
swapped alpha is cut to the smoothed box (clipped to the frame) before paste-back.
Differences: the warp reads the frame itself, so aligned pixels whose source lies
outside the smoothed box are the real pixels rather than the box edge repeated
(BORDER_REPLICATE of the cropped box); the landmarks are not truncated to ints; and
all faces of a frame share one crop side (the largest smoothed box side, clipped to
[model size, MAX_CROP_SIZE]) so they go through the generator as one batch.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from converter import blending
from converter.config import ConverterConfig, SegmentationType
from converter.selection import (
    EMBED_CROP_SIZE,
    IDENTITY_BACKEND,
    IdentityTracks,
    TrackReplay,
    TrackReport,
    embed_crops,
    reference_crops,
    reference_embedding,
)
from converter.transformer import FaceTransformer
from faceswap_gan import files
from faceswap_gan.errors import FaceswapError
from faceswap_gan.faces.alignment import (
    align,
    deepfacelive_matrix,
    transform_points,
    warp_to_crop,
)
from faceswap_gan.faces.tracking import (
    FaceTracker,
    KalmanBoxSmoother,
    MovingAverageBoxSmoother,
)
from faceswap_gan.images import write_image
from faceswap_gan.video import (
    VideoReader,
    VideoWriter,
    check_codec,
    check_output,
)


def box_mask_in_crop(
    box: np.ndarray, matrix: np.ndarray, size: int, frame_shape: tuple[int, ...]
) -> np.ndarray:
    """Which pixels of an aligned crop come from inside a frame box.

    Args:
        box: `(4,)` float `[x0, y0, x1, y1]` frame pixels (clipped here to the frame).
        matrix: `(2, 3)` frame -> crop matrix (`faces.alignment.align`).
        size: side of the aligned crop in pixels.
        frame_shape: `(H, W, ...)` of the frame.

    Returns:
        `(size, size)` float32, 1 where the crop pixel's source (its centre mapped back
        with the inverse of `matrix`) rounds to a frame pixel inside the box, else 0.
    """
    height, width = frame_shape[:2]
    x0, y0 = max(float(box[0]), 0.0), max(float(box[1]), 0.0)
    x1, y1 = min(float(box[2]), float(width)), min(float(box[3]), float(height))
    inverse = cv2.invertAffineTransform(np.asarray(matrix, np.float64))  # crop->frame
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)  # (S, S) crop pixel centres
    src_x = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    src_y = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    inside = (src_x >= x0 - 0.5) & (src_x < x1 - 0.5)
    inside &= (src_y >= y0 - 0.5) & (src_y < y1 - 0.5)
    return inside.astype(np.float32)


def frame_span(reader: VideoReader, start=None, end=None) -> tuple[int, int | None]:
    """Frame indices `(first, stop)` of the seconds `[start, end)` of a video.

    Args:
        reader: the input `VideoReader` (its `fps` and `duration`).
        start: float | None. Seconds >= 0 (None: 0); the first frame at or after it.
        end: float | None. Seconds > start, at most the duration (None: the end).

    Returns:
        `(first, stop)`: `first = ceil(start * fps)` (to the nearest frame within
        1e-6 s), `stop = ceil(end * fps)` or None.

    Raises:
        FaceswapError: a negative or non-numeric time, `start` at or past the end of
            the video, `end <= start` or `end` past the end (the message gives the
            video's duration).
    """
    duration = float(reader.duration) or reader.frame_count / float(reader.fps)
    for name, value in (("start", start), ("end", end)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FaceswapError(f"{name} must be seconds (a number); got {value!r}.")
        if not 0 <= value:
            raise FaceswapError(f"{name} must be >= 0 seconds; got {value!r}.")
    if start is not None and start >= duration:
        raise FaceswapError(
            f"start {start} s is at or past the end of {reader.path} "
            f"({duration:.3f} s long)."
        )
    if end is not None:
        if end <= (start or 0):
            raise FaceswapError(f"end ({end} s) must be after start ({start or 0} s).")
        if end > duration + 1e-6:
            raise FaceswapError(
                f"end {end} s is past the end of {reader.path} ({duration:.3f} s "
                f"long); leave it out to convert to the end."
            )
    fps = float(reader.fps)
    first = int(np.ceil((start or 0) * fps - 1e-6 * fps))
    stop = None if end is None else int(np.ceil(end * fps - 1e-6 * fps))
    if stop is not None and stop <= first:
        raise FaceswapError(
            f"start {start} s and end {end} s hold no frame at {fps:.3f} frames/s."
        )
    return first, stop


def _expected(reader: VideoReader, span, max_frames) -> int:
    """Frames the span should hold by the header's count (capped by max_frames)."""
    first, stop = span
    count = min(reader.frame_count, stop) if stop is not None else reader.frame_count
    expected = max(count - first, 0)
    return expected if max_frames is None else min(expected, max_frames)


def check_frames_dir(folder: str | Path, overwrite: bool = False) -> None:
    """Refuses a `frames_dir` that is a file, or holds `frame_*.png` (no overwrite).

    Raises:
        FaceswapError: `folder` exists and is not a folder, or it already holds
            frames and `overwrite` is False.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FaceswapError(f"frames_dir {folder} exists and is not a folder.")
    if not overwrite and folder.is_dir() and any(folder.glob("frame_*.png")):
        raise FaceswapError(
            f"{folder} already holds frame_*.png files; pass --overwrite to replace "
            f"them or give an empty folder."
        )


MAX_CROP_SIZE = 512  # Largest aligned crop side in pixels (bigger faces are shrunk).
# Frames each queue of the decode | convert | encode threads holds (`_stream`; a
# queue holds at least one batch of `ConverterConfig.batch_frames` frames).
PIPELINE_DEPTH = 2
# Most input-frame bytes in one batch of frames converted together: large frames
# get fewer frames per batch (`frames_per_batch`), so memory stays bounded.
MAX_BATCH_BYTES = 64 * 2**20


def frames_per_batch(batch_frames: int, size: tuple[int, int]) -> int:
    """Frames converted together for `ConverterConfig.batch_frames` and the video's
    frame `size` (width, height) in pixels: `batch_frames`, fewer when that many
    RGB frames would pass `MAX_BATCH_BYTES` (64 MiB: 8 frames of 1080p, 2 of 4K),
    at least 1."""
    width, height = size
    return max(1, min(int(batch_frames), MAX_BATCH_BYTES // (3 * width * height)))


STEPS = (
    "decode",
    "detect",
    "identify",  # reference mode: embed the faces and vote per track (pass 1)
    "smooth",
    "align",
    "generator",
    "colour",
    "blend",  # the transformer's feathered alpha composite inside the crop
    "paste",  # unalign the swapped crops and paste them into the frame
    "compose",
    "encode",
)


@dataclass
class ConversionReport:
    """What a conversion did and how long each step took."""

    input_path: str  # The video read.
    output_path: str  # The video written.
    frames: int = 0  # Frames converted and written.
    faces: int = 0  # Faces swapped, summed over frames.
    frames_without_face: int = 0  # Frames written through with no face swapped.
    frames_with_predicted_face: int = 0  # Frames where a missed face kept its track.
    video_seconds: float = 0.0  # Duration of the converted frames (frames / fps).
    # Busy seconds per step. Decoding, converting and encoding run in three threads
    # at once, so the steps may add up to more than `wall_seconds`.
    seconds: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0  # Elapsed time from the first decode to the last write.
    frames_expected: int = 0  # Frames the input's header announced (<= max_frames).
    # Why the input ended before `frames_expected` ("decode error: ..." or "early end
    # of stream"); None when every expected frame was read.
    input_ended: str | None = None
    warnings: list[str] = field(default_factory=list)  # Also issued as UserWarning.
    # Reference mode (`ConverterConfig.reference`): one decision per identity track
    # (frames, mean similarity, swapped or not); empty when every face is swapped.
    tracks: list[TrackReport] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        """Busy seconds of all steps together (threads overlap: >= wall time)."""
        return float(sum(self.seconds.values()))

    @property
    def frames_per_second(self) -> float:
        """Processing speed in frames per second of wall time."""
        return self.frames / max(self.wall_seconds, 1e-9)

    @property
    def realtime_factor(self) -> float:
        """Wall time / video duration (1.0 = real time; lower is faster)."""
        return self.wall_seconds / max(self.video_seconds, 1e-9)

    def summary(self) -> str:
        """A few human-readable lines: counts, speed, share of time per step."""
        lines = [
            f"{self.frames} frames, {self.faces} faces swapped, "
            f"{self.frames_without_face} frames without a face; "
            f"{self.frames_per_second:.2f} frames/s, "
            f"{self.realtime_factor:.1f}x the video's duration",
        ]
        total = max(self.total_seconds, 1e-9)
        lines.append(
            f"{self.wall_seconds:.2f} s elapsed; busy time per step (decode, convert "
            "and encode overlap in threads):"
        )
        lines += [
            f"  {step:<10}{sec:8.2f} s  {100 * sec / total:5.1f} %"
            for step, sec in self.seconds.items()
        ]
        if self.tracks:
            swapped = sum(track.swapped for track in self.tracks)
            lines.append(
                f"reference: {swapped} of {len(self.tracks)} face tracks match and "
                f"were swapped"
            )
            lines += [f"  {track.line()}" for track in self.tracks]
        lines += [f"warning: {text}" for text in self.warnings]
        return "\n".join(lines)


def _smoother_factory(config: ConverterConfig):
    if not config.use_smoothed_bbox:
        return None
    if config.use_kalman_filter:
        return lambda: KalmanBoxSmoother(config.kf_noise_coef)
    return lambda: MovingAverageBoxSmoother(config.bbox_moving_avg_coef)


class VideoConverter:
    """Swaps every face of a video (or an image) with a trained FaceSwapGAN.

    Args:
        model: `FaceSwapGAN` (from `faceswap_gan.checkpoints.load_model`); its
            `image_size` must equal `config.image_shape[0]` when that is set
            (None: the model's size is used).
        config: ConverterConfig.
        detector: object with `detect(frame) -> list[Face]`; None = an MTCNN
            `faceswap_gan.faces.detection.FaceDetector` built from the config.
        landmark_detector: object with `detect(frame, boxes) -> (N, 68, 2)`; used only
            when `config.segmentation` is not ALL; None = `LandmarkDetector("face_api")`
            built on first use.
        embedder: identity embedder (`embed((N, S, S, 3) uint8) -> (N, D)`), used only
            when `config.reference` is set; None = `build_identity_embedder(
            "mobilefacenet")` built on first use.

    Raises:
        ValueError: the model's resolution differs from `config.image_shape`.
    """

    def __init__(
        self,
        model,
        config: ConverterConfig,
        detector=None,
        landmark_detector=None,
        embedder=None,
    ):
        if config.image_shape is None:  # the model's size
            size = int(model.image_size)
            config = dataclasses.replace(config, image_shape=(size, size, 3))
        if int(model.image_size) != config.image_size:
            raise FaceswapError(
                f"config.image_shape {config.image_shape} does not match the model's "
                f"{model.image_size}x{model.image_size} input; set "
                f"image_shape=({model.image_size}, {model.image_size}, 3)."
            )
        if detector is None:
            from faceswap_gan.faces.detection import FaceDetector

            detector = FaceDetector(
                detection_threshold=min(config.detection_threshold, 0.999),
                min_face_area=config.min_face_area,
                auto_downscale=config.use_auto_downscaling,
            )
            if config.keyframe_seconds > 0:
                from faceswap_gan.faces.keyframes import KeyframeDetector

                detector = KeyframeDetector(
                    detector, keyframe_seconds=config.keyframe_seconds
                )
        self.model, self.config, self.detector = model, config, detector
        self.landmark_detector = landmark_detector
        self.embedder = embedder
        self._reference = None  # (paths, (D,) embedding) once computed.
        self.transformer = FaceTransformer(model, config)
        self.tracker = FaceTracker(_smoother_factory(config))
        self.seconds: dict[str, float] = defaultdict(float)

    def _tick(self, step: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[step] += now - since
        return now

    def convert_frame(self, frame: np.ndarray) -> tuple[np.ndarray, list]:
        """Swaps the faces of one video frame (tracks carry over from previous calls).

        Args:
            frame: `(H, W, 3)` uint8 RGB.

        Returns:
            output: `(H, k * W, 3)` uint8 RGB, k = 1, 2 or 3 by `config.output_type`.
            tracked: the `TrackedFace`s that were swapped (empty: frame passed through).
        """
        return self.convert_frames([frame])[0]

    def convert_frames(self, frames: list[np.ndarray]) -> list[tuple[np.ndarray, list]]:
        """`convert_frame` of consecutive frames, their faces in one generator pass.

        Detection and tracking run frame by frame, in order (the tracks are state);
        then all faces of `frames` are swapped together (`swap_frames`).

        Args:
            frames: list of `(H, W, 3)` uint8 RGB frames, in video order.

        Returns:
            list of `(output, tracked)`, one per frame, as `convert_frame` returns.
        """
        tracked_lists = []
        for frame in frames:
            tic = time.perf_counter()
            # 1. Detect faces (MTCNN).
            faces = self.detector.detect(frame)
            tic = self._tick("detect", tic)
            # 2. Smooth: one Kalman/EMA track per face; missed faces keep a
            #    predicted box.
            tracked_lists.append(self.tracker.update(faces))
            self._tick("smooth", tic)
        outputs = self.swap_frames(frames, tracked_lists)
        return list(zip(outputs, tracked_lists))

    def swap_tracked(self, frame: np.ndarray, tracked: list) -> np.ndarray:
        """Swaps the given tracked faces of a frame (no detection, no tracking).

        Args:
            frame: `(H, W, 3)` uint8 RGB.
            tracked: `faceswap_gan.faces.tracking.TrackedFace`s of this frame (boxes
                and five points in frame pixels); empty: the frame passes through.

        Returns:
            `(H, k * W, 3)` uint8 RGB, k = 1, 2 or 3 by `config.output_type`.
        """
        return self.swap_frames([frame], [tracked])[0]

    def swap_frames(self, frames: list[np.ndarray], tracked_lists: list) -> list:
        """`swap_tracked` of several frames, with one generator pass for all their
        faces (`FaceTransformer.transform_many`; at most `INFERENCE_BATCH` faces per
        forward pass). Each output equals `swap_tracked` of its frame up to float
        rounding of the batched forward pass.

        Args:
            frames: list of `(H, W, 3)` uint8 RGB frames.
            tracked_lists: one list of `TrackedFace`s per frame.

        Returns:
            list of `(H, k * W, 3)` uint8 RGB outputs, one per frame.
        """
        tic = time.perf_counter()
        # 3. Align each face on its own raw landmarks (v2.2); crop side from the
        #    smoothed boxes, all faces of a frame to one size.
        aligned = [
            self._align(frame, tracked) if tracked else None
            for frame, tracked in zip(frames, tracked_lists)
        ]
        tic = self._tick("align", tic)
        # 4. Transform: ROI -> generator (one batch for all frames) -> colour ->
        #    feathered alpha.
        groups = [(crops, masks) for crops, _, masks in filter(None, aligned)]
        swapped = iter(self.transformer.transform_many(groups) if groups else [])
        outputs = []
        for frame, tracked, faces in zip(frames, tracked_lists, aligned):
            tic = time.perf_counter()
            result = frame
            frame_alpha = np.zeros(frame.shape[:2], np.float32)
            if faces is not None:
                _, alphas, raws = next(swapped)
                # 5. Cut each alpha to its smoothed box (v2.2 pasted the swapped crop
                #    back into the smoothed box only), unalign and blend it in.
                for face, raw, alpha, matrix in zip(tracked, raws, alphas, faces[1]):
                    alpha = alpha * box_mask_in_crop(
                        face.box, matrix, alpha.shape[0], frame.shape
                    )
                    result, face_alpha = blending.paste_back(result, raw, alpha, matrix)
                    frame_alpha = np.maximum(frame_alpha, face_alpha)
                tic = self._tick("paste", tic)
            # 6. Enhance contrast: -e * original + (1 + e) * result.
            result = blending.enhance_contrast(result, frame, self.config.enhance)
            # 7. Label the result as synthetic (visible, bottom-left corner).
            if self.config.watermark:
                result = blending.add_synthetic_label(result)
            # 8. Compose: [result], [source | result] or [source | result | mask].
            outputs.append(
                blending.compose_output(
                    self.config.output_type, frame, result, frame_alpha
                )
            )
            self._tick("compose", tic)
        return outputs

    def _align(self, frame, tracked):
        """Aligned crops `(N, S, S, 3)`, matrices, part masks `(N, S, S)` or None.

        Each face is aligned on `TrackedFace.landmarks5` (the raw detected points),
        framed by `config.alignment`'s template ("deepfacelive": on 68 landmarks
        found in the smoothed box, `alignment.deepfacelive_matrix`); the smoothed
        boxes set only the side S (the largest box side, clipped to
        [model size, MAX_CROP_SIZE]) and the 68-point landmark search region.
        """
        sides = [max(t.box[2] - t.box[0], t.box[3] - t.box[1]) for t in tracked]
        size = int(np.clip(round(max(sides)), self.model.image_size, MAX_CROP_SIZE))
        alignment = self.config.alignment
        landmarks68 = None
        if (
            alignment == "deepfacelive"
            or self.config.segmentation != SegmentationType.ALL
        ):
            landmarks68 = self._landmarks68(frame, tracked)  # (N, 68, 2) frame px
        if alignment == "deepfacelive":
            matrices = [deepfacelive_matrix(points, size) for points in landmarks68]
            crops = [warp_to_crop(frame, matrix, size) for matrix in matrices]
        else:
            crops, matrices = zip(
                *(align(frame, t.landmarks5, size, alignment) for t in tracked)
            )
        if self.config.segmentation == SegmentationType.ALL:
            return np.stack(crops), matrices, None
        from faceswap_gan.faces.masks import part_mask

        parts = self.config.segmentation.parts
        blur = int(round(9 * size / 256)) | 1  # Soft edges (the fork had none).
        masks = [
            part_mask(transform_points(points, matrix), parts, (size, size), blur=blur)
            for points, matrix in zip(landmarks68, matrices)
        ]
        return np.stack(crops), matrices, np.stack(masks)

    def _landmarks68(self, frame, tracked) -> np.ndarray:
        """`(N, 68, 2)` float frame pixels of the tracked faces (searched in their
        smoothed boxes, clipped to the frame)."""
        if self.landmark_detector is None:
            from faceswap_gan.faces.landmarks import LandmarkDetector

            self.landmark_detector = LandmarkDetector("face_api")
        height, width = frame.shape[:2]
        boxes = np.stack([t.box for t in tracked]).astype(np.float32)
        boxes = np.clip(boxes, 0, [width - 1, height - 1, width, height])
        return self.landmark_detector.detect(frame, boxes)

    def start_video(self, fps: float) -> None:
        """Forgets the face tracks, ready for a new video at `fps` frames per second
        (the keyframe detector's interval follows the frame rate)."""
        self.tracker.reset()
        start = getattr(self.detector, "start_video", None)
        if start is not None:
            start(float(fps))

    def _reset_detector(self) -> None:
        reset = getattr(self.detector, "reset", None)
        if reset is not None:
            reset()

    def convert_image(self, frame: np.ndarray) -> np.ndarray:
        """Swaps the faces of a single image (no temporal smoothing).

        Args:
            frame: `(H, W, 3)` uint8 RGB.

        Returns:
            `(H, k * W, 3)` uint8 RGB laid out as `config.output_type`.
        """
        self.tracker.reset()
        self._reset_detector()
        if self.config.reference:  # Per face: no track to vote over.
            faces = self.detector.detect(frame)
            tracked = self.tracker.update(faces)
            reference = self.reference_embedding()
            if tracked:
                crops = [
                    align(frame, t.landmarks5, EMBED_CROP_SIZE)[0] for t in tracked
                ]
                similarity = embed_crops(self.embedder, crops) @ reference
                chosen = similarity >= self.config.similarity_threshold
                tracked = [t for t, keep in zip(tracked, chosen) if keep]
            output = self.swap_tracked(frame, tracked)
        else:
            output, _ = self.convert_frame(frame)
        self.tracker.reset()
        self._reset_detector()
        return output

    def reference_embedding(self) -> np.ndarray:
        """The `(D,)` unit identity of `config.reference` (computed once).

        Raises:
            FaceswapError: a photo is unreadable or shows no face or several.
        """
        paths = self.config.reference
        if self._reference is None or self._reference[0] != paths:
            # Photos go to the plain detector: a video detector that tracks faces
            # (KeyframeDetector) would carry the photo's face into the video.
            photo_detector = getattr(self.detector, "detector", self.detector)
            crops = reference_crops(paths, photo_detector)  # Checked before loading.
            if self.embedder is None:
                from faceswap_gan.faces.identity import build_identity_embedder

                self.embedder = build_identity_embedder(IDENTITY_BACKEND)
            embedding = reference_embedding(crops, self.embedder)
            self._reference = (paths, embedding)
        return self._reference[1]

    def convert(
        self,
        input_path: str | Path,
        output_path: str | Path,
        max_frames: int | None = None,
        progress: bool = True,
        overwrite: bool = False,
        start: float | None = None,
        end: float | None = None,
        frames_dir: str | Path | None = None,
    ) -> ConversionReport:
        """Converts a video file, streaming frame by frame; audio copied unchanged.

        The output is written to a hidden temporary file beside it and renamed onto
        `output_path` only when complete: on any error (a full disk, Ctrl-C...) the
        temporary file is removed and an existing `output_path` is left as it was.
        Temporary files of this output left by a killed conversion are removed first.

        An input that ends early (truncated or damaged: a decode error, or fewer frames
        than its header announced) is converted up to where it ends: the output is a
        valid, shorter video, and a UserWarning (also in `report.warnings` and the
        summary) gives the frames reached, the frames announced and the reason.

        Args:
            input_path: str | Path. The video of the faces to replace.
            output_path: str | Path. The video to write (tagged as synthetic), in
                `config.codec` (H.264 by default): .mp4, .mov, .m4v or .mkv
                (`faceswap_gan.video.VIDEO_SUFFIXES`; the lossless codec: .mkv).
            max_frames: int | None. Convert only the first `max_frames` frames (the
                audio is cut to match); None = all.
            progress: bool. Show a tqdm progress bar.
            overwrite: bool. Replace `output_path` if it exists (default: refuse),
                and frames in `frames_dir`.
            start: float | None. Seconds into the input where the conversion starts
                (the first frame at or after it); None = 0. The audio starts there too.
            end: float | None. Seconds into the input where it ends (excluded);
                None = the end. `max_frames` still caps the frame count.
            frames_dir: str | Path | None. Also write each output frame as
                `frame_000000.png`, ... there (atomically; numbered from 0 in the
                converted span). Refused if it holds such frames, unless `overwrite`.

        Returns:
            ConversionReport: counts, seconds per step, warnings.

        Raises:
            FileNotFoundError: `input_path` does not exist.
            FaceswapError: `max_frames` < 1; an output suffix not in VIDEO_SUFFIXES;
                unreadable input (or not one frame decodable); the output is the input
                (same path, symlink or hard link); the output exists and `overwrite`
                is False, or is not a regular file; a container that cannot hold
                `config.codec`; bad `start`/`end` (`frame_span`); `frames_dir`
                holds frames and `overwrite` is False; a reference photo that is
                unreadable or shows no face or several. All raised before writing.
            OSError: the output cannot be written (full disk, read-only folder);
                nothing is left at `output_path` or beside it.
        """
        if max_frames is not None and (isinstance(max_frames, bool) or max_frames < 1):
            raise FaceswapError(
                f"max_frames must be a positive int or None; got {max_frames!r}."
            )
        config = self.config
        check_codec(output_path, config.codec, config.crf, config.preset)
        reader = VideoReader(input_path)
        check_output(output_path, [reader.path], overwrite=overwrite)
        span = frame_span(reader, start, end)
        if frames_dir is not None:
            check_frames_dir(frames_dir, overwrite)
        report = ConversionReport(str(input_path), str(output_path))
        self.start_video(reader.fps)
        self.seconds = defaultdict(float)
        self.transformer.seconds.clear()
        started = time.perf_counter()
        plan = None
        if self.config.reference:  # Pass 1: who is who, before anything is written.
            self.reference_embedding()
            plan = self._identify(reader, report, max_frames, progress, span)
            self.start_video(reader.fps)
        width = blending.output_width(self.config.output_type, reader.size[0])
        audio = reader.path if reader.has_audio else None
        size = (width, reader.size[1])
        # Temporaries a killed conversion (kill -9) left for this output only.
        files.remove_partials(Path(output_path).parent, output=output_path)
        writer = VideoWriter(
            output_path,
            reader.fps,
            size,
            audio,
            crf=config.crf,
            preset=config.preset,
            codec=config.codec,
            audio_start=float(span[0] / reader.fps),
        )
        with writer:
            self._stream(
                reader, writer, report, max_frames, progress, plan, span, frames_dir
            )
            if report.frames == 0:  # Raised inside: the writer discards its file.
                raise FaceswapError(
                    f"No frame of {input_path} could be decoded "
                    f"({report.input_ended or 'it has no frames'}); nothing was "
                    f"written to {output_path}."
                )
        report.wall_seconds = time.perf_counter() - started
        report.video_seconds = report.frames / float(reader.fps)
        report.seconds = {
            step: self.seconds.get(step, 0.0) + self.transformer.seconds.get(step, 0.0)
            for step in STEPS
        }
        if report.input_ended is not None:
            report.warnings.append(
                f"{input_path} ended after {report.frames} of the "
                f"{report.frames_expected} frames its header announced "
                f"({report.input_ended}); the output {output_path} has "
                f"{report.frames} frames."
            )
        if plan is not None and not any(track.swapped for track in report.tracks):
            report.warnings.append(
                f"No face of {input_path} matched the reference photos "
                f"({len(report.tracks)} face tracks, similarity_threshold="
                f"{self.config.similarity_threshold}); the frames were written "
                f"through unchanged."
            )
        elif report.frames and report.frames_without_face == report.frames:
            report.warnings.append(
                f"No face was detected in any of the {report.frames} frames of "
                f"{input_path}; they were written through unchanged "
                f"(detection_threshold={self.config.detection_threshold}, "
                f"min_face_area={self.config.min_face_area})."
            )
        for text in report.warnings:
            warnings.warn(text, stacklevel=2)
        return report

    def convert_folder(
        self,
        input_dir: str | Path,
        output_dir: str | Path,
        overwrite: bool = False,
        log=None,
        frames_dir: str | Path | None = None,
        **options,
    ) -> list[FolderItem]:
        """Converts every video of a folder into another folder, one after the other.

        Each input (`folder_outputs`: the folder's video files, sorted by name) is
        converted with `convert` into `output_dir` (created). An output that exists is
        skipped unless `overwrite`. A file that fails (unreadable, damaged, no frame...)
        is recorded as "failed" and the others still run; KeyboardInterrupt stops all.

        Args:
            input_dir: folder of input videos.
            output_dir: folder for the outputs (not `input_dir`).
            overwrite: bool. Replace existing outputs (and their frames).
            log: callable(str) | None. Called with one summary line per file as it
                finishes (e.g. `print`).
            frames_dir: folder | None. PNG frames of each video go to
                `frames_dir/<input stem>/`.
            **options: passed to `convert` (max_frames, progress, start, end).

        Returns:
            list[FolderItem], one per input, in order. Any "failed": the batch failed.

        Raises:
            FaceswapError: the folders are wrong (see `folder_outputs`); per-file errors
                are not raised but recorded.
        """
        return _convert_folder(
            self, input_dir, output_dir, overwrite, log, frames_dir, **options
        )

    def _decode(self, decoded, max_frames, ended: list[str]):
        """Frames of the `decoded` iterator, at most `max_frames` (None: all), each
        `next` timed as "decode". A decode error (FaceswapError: a damaged input)
        ends the frames, keeping those decoded; its message is appended to `ended`.
        """
        count = 0
        while max_frames is None or count < max_frames:
            tic = time.perf_counter()
            try:
                frame = next(decoded)
            except StopIteration:
                return
            except FaceswapError as error:
                ended.append(f"decode error: {error}")
                return
            self._tick("decode", tic)
            count += 1
            yield frame

    def _identify(self, reader, report, max_frames, progress, span) -> TrackReplay:
        """Pass 1 of reference mode: decode, detect, track, embed and vote.

        Keeps per frame only the faces' records (`converter.selection.FaceRecord`);
        fills `report.tracks`. Returns the replay that pass 2 swaps from, limited to
        the frames decoded here (a damaged input ends both passes at the same frame).
        """
        expected = _expected(reader, span, max_frames)
        tracks = IdentityTracks(
            self.reference_embedding(),
            self.detector,
            self.embedder,
            similarity_threshold=self.config.similarity_threshold,
            max_missed=self.tracker.max_missed,
        )
        decoded = reader.frames(*span)
        bar = tqdm(total=expected, desc="identify", unit="frame", disable=not progress)
        try:
            # A decode error ends pass 1 where it ends pass 2, which reports it.
            for frame in self._decode(decoded, max_frames, []):
                tracks.add(frame)
                bar.update()
        finally:
            decoded.close()
            bar.close()
        report.tracks = tracks.finish()
        for step, seconds in tracks.seconds.items():
            self.seconds[step] += seconds
        chosen = [track.track for track in report.tracks if track.swapped]
        return TrackReplay(tracks.frames, chosen, _smoother_factory(self.config))

    def _stream(
        self,
        reader,
        writer,
        report,
        max_frames,
        progress,
        plan=None,
        span=(0, None),
        frames_dir=None,
    ):
        """Decode | convert_frames | encode, overlapped in three threads.

        A reader thread decodes, a worker thread converts the frames in order (the
        face tracks are state), `frames_per_batch` at a time so that their faces
        share one generator pass, and this thread encodes, joined by bounded
        queues (`faces.keyframes.ThreadedMap`, `PIPELINE_DEPTH` frames): decoding and
        encoding (FFmpeg) run while the detector and the model compute, and memory
        holds a few frames whatever the video's length. With `plan` (reference
        mode), each frame's faces come from pass 1's tracks (`TrackReplay`) instead
        of the detector. Sets `report.frames_expected` and, when the input stops
        short of it, `report.input_ended` (a decode error ends the input instead of
        failing)."""
        from faceswap_gan.faces.keyframes import ThreadedMap

        expected = _expected(reader, span, max_frames)
        report.frames_expected = expected
        if plan is not None:  # Never past the frames pass 1 decoded.
            decoded_frames = len(plan.frames)
            max_frames = min(max_frames or decoded_frames, decoded_frames)
        decoded = reader.frames(*span)
        ended: list[str] = []  # The decode error that ended the input, if any.
        index = itertools.count()

        def convert(frames):
            if plan is None:
                return self.convert_frames(frames)
            tracked = [plan.tracked(next(index)) for _ in frames]
            return list(zip(self.swap_frames(frames, tracked), tracked))

        bar = tqdm(total=expected, desc="convert", unit="frame", disable=not progress)
        frames = self._decode(decoded, max_frames, ended)
        size = frames_per_batch(self.config.batch_frames, reader.size)
        batches = iter(lambda: list(itertools.islice(frames, size)), [])
        # Queues of at most about PIPELINE_DEPTH frames each, whatever the batch.
        outputs = ThreadedMap(convert, batches, depth=max(1, PIPELINE_DEPTH // size))
        stream = iter(outputs)
        try:
            for output, tracked in itertools.chain.from_iterable(stream):
                tic = time.perf_counter()
                writer.write(output)
                if frames_dir is not None:
                    name = f"frame_{report.frames:06d}.png"
                    write_image(Path(frames_dir) / name, output)
                self._tick("encode", tic)
                report.frames += 1
                report.faces += len(tracked)
                report.frames_without_face += not tracked
                report.frames_with_predicted_face += any(
                    not t.detected for t in tracked
                )
                bar.update()
        finally:
            stream.close()  # Stops and joins the threads, also on an exception.
            decoded.close()  # Closes the input file now, also after max_frames.
            bar.close()
        if ended:
            report.input_ended = ended[0]
        # An estimated count (no count in the header) may be one frame off.
        short = expected - report.frames > (0 if reader.frame_count_exact else 1)
        if report.input_ended is None and short:
            report.input_ended = "early end of stream: the file is truncated or damaged"


# Inputs `convert_folder` picks up (any FFmpeg-readable video; hidden files skipped).
INPUT_VIDEO_SUFFIXES = (
    ".mp4",
    ".mov",
    ".m4v",
    ".mkv",
    ".avi",
    ".webm",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".ts",
)


@dataclass
class FolderItem:
    """What `VideoConverter.convert_folder` did with one input video.

    Attributes:
        input_path: the input video.
        output_path: the output it was (or would have been) written to.
        status: "converted", "skipped" (the output exists, no overwrite) or "failed".
        report: the ConversionReport when converted, else None.
        error: one line saying why it failed or was skipped, else None.
    """

    input_path: Path
    output_path: Path
    status: str
    report: ConversionReport | None = None
    error: str | None = None

    def line(self) -> str:
        """One summary line."""
        name = self.input_path.name
        if self.status == "converted":
            report = self.report
            return (
                f"converted {name} -> {self.output_path}: {report.frames} frames, "
                f"{report.faces} faces swapped, {report.wall_seconds:.1f} s"
                + (f", {len(report.warnings)} warning(s)" if report.warnings else "")
            )
        return f"{self.status} {name}: {self.error}"


def folder_outputs(
    input_dir: str | Path, output_dir: str | Path, codec: str = "h264"
) -> list[tuple[Path, Path]]:
    """`(input, output)` pairs of a batch conversion, sorted by input name.

    Inputs are the folder's files (not sub-folders, not hidden files) whose suffix is
    in `INPUT_VIDEO_SUFFIXES` (any case). Each output is `output_dir/<stem><suffix>`:
    the input's suffix when the writer takes it (.mp4, .mov, .m4v, .mkv), else .mp4;
    .mkv for the lossless codec. Two inputs that would get one name (a.mp4, a.avi)
    keep their whole name instead (a.avi.mp4).

    Raises:
        FaceswapError: `input_dir` is not a folder, holds no video, or is the same
            folder as `output_dir`; `output_dir` is a file.
    """
    from faceswap_gan.video import CODECS, VIDEO_SUFFIXES

    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise FaceswapError(f"Input folder not found: {input_dir}")
    if output_dir.exists() and not output_dir.is_dir():
        raise FaceswapError(
            f"With an input folder, --output must be a folder; {output_dir} is a file."
        )
    if output_dir.exists() and files.same_file(input_dir, output_dir):
        raise FaceswapError(
            f"The output folder {output_dir} is the input folder; give another one "
            f"(nothing is converted in place)."
        )
    videos = sorted(
        path
        for path in input_dir.iterdir()
        if path.is_file()
        and not path.name.startswith(".")
        and path.suffix.lower() in INPUT_VIDEO_SUFFIXES
    )
    if not videos:
        raise FaceswapError(
            f"No video in {input_dir} (looked for {', '.join(INPUT_VIDEO_SUFFIXES)})."
        )
    allowed = CODECS[codec][2]

    def suffix(path):
        own = path.suffix.lower()
        return own if own in allowed and own in VIDEO_SUFFIXES else allowed[0]

    names = [path.stem + suffix(path) for path in videos]
    pairs = []
    for path, name in zip(videos, names):
        if names.count(name) > 1:
            name = path.name + suffix(path)
        pairs.append((path, output_dir / name))
    return pairs


def _convert_folder(
    converter: VideoConverter,
    input_dir,
    output_dir,
    overwrite: bool = False,
    log=None,
    frames_dir=None,
    **options,
) -> list[FolderItem]:
    """See `VideoConverter.convert_folder`."""
    pairs = folder_outputs(input_dir, output_dir, converter.config.codec)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    items = []
    for source, target in pairs:
        if target.exists() and not overwrite:
            item = FolderItem(
                source, target, "skipped", error=f"{target} exists (--overwrite)"
            )
        else:
            frames = None if frames_dir is None else Path(frames_dir) / source.stem
            try:
                with warnings.catch_warnings():  # In the report; not repeated here.
                    warnings.simplefilter("ignore", UserWarning)
                    report = converter.convert(
                        source,
                        target,
                        overwrite=overwrite,
                        frames_dir=frames,
                        **options,
                    )
                item = FolderItem(source, target, "converted", report)
            except Exception as error:  # One bad file does not stop the others.
                text = " ".join(str(error).split()) or type(error).__name__
                item = FolderItem(source, target, "failed", error=text)
        items.append(item)
        if log is not None:
            log(item.line())
    return items
