"""VideoConverter: the per-frame face-swap loop over a video, streamed frame by frame.

faceswap-GAN v2.2 `converter/video_converter.py` (REFERENCE 1.7), rebuilt as a
pipeline of swappable parts (detector, tracker, aligner, transformer, blender) with the
loop spelled out in `convert_frame`. Fixes over the original: one smoothing track per
face, each face aligned with its own landmarks, faces kept for a few frames when the
detector misses them, all faces of a frame in one generator batch, audio copied
unchanged, output marked as synthetic (metadata tag and visible label).

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
from converter.transformer import FaceTransformer
from faceswap_gan import files
from faceswap_gan.errors import FaceswapError
from faceswap_gan.faces.alignment import align, transform_points
from faceswap_gan.faces.tracking import (
    FaceTracker,
    KalmanBoxSmoother,
    MovingAverageBoxSmoother,
)
from faceswap_gan.video import (
    VideoReader,
    VideoWriter,
    check_output,
    check_output_suffix,
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


MAX_CROP_SIZE = 512  # Largest aligned crop side in pixels (bigger faces are shrunk).
STEPS = (
    "decode",
    "detect",
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
    seconds: dict[str, float] = field(default_factory=dict)  # Wall time per step.
    frames_expected: int = 0  # Frames the input's header announced (<= max_frames).
    # Why the input ended before `frames_expected` ("decode error: ..." or "early end
    # of stream"); None when every expected frame was read.
    input_ended: str | None = None
    warnings: list[str] = field(default_factory=list)  # Also issued as UserWarning.

    @property
    def total_seconds(self) -> float:
        """Wall time of all steps together."""
        return float(sum(self.seconds.values()))

    @property
    def frames_per_second(self) -> float:
        """Processing speed in frames per second."""
        return self.frames / max(self.total_seconds, 1e-9)

    @property
    def realtime_factor(self) -> float:
        """Processing time / video duration (1.0 = real time; lower is faster)."""
        return self.total_seconds / max(self.video_seconds, 1e-9)

    def summary(self) -> str:
        """A few human-readable lines: counts, speed, share of time per step."""
        lines = [
            f"{self.frames} frames, {self.faces} faces swapped, "
            f"{self.frames_without_face} frames without a face; "
            f"{self.frames_per_second:.2f} frames/s, "
            f"{self.realtime_factor:.1f}x the video's duration",
        ]
        total = max(self.total_seconds, 1e-9)
        lines += [
            f"  {step:<10}{sec:8.2f} s  {100 * sec / total:5.1f} %"
            for step, sec in self.seconds.items()
        ]
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

    Raises:
        ValueError: the model's resolution differs from `config.image_shape`.
    """

    def __init__(
        self, model, config: ConverterConfig, detector=None, landmark_detector=None
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
        self.model, self.config, self.detector = model, config, detector
        self.landmark_detector = landmark_detector
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
        tic = time.perf_counter()
        # 1. Detect faces (MTCNN).
        faces = self.detector.detect(frame)
        tic = self._tick("detect", tic)
        # 2. Smooth: one Kalman/EMA track per face; missed faces keep a predicted box.
        tracked = self.tracker.update(faces)
        tic = self._tick("smooth", tic)
        result, frame_alpha = frame, np.zeros(frame.shape[:2], np.float32)
        if tracked:
            # 3. Align each face on its own raw landmarks (v2.2); crop side from the
            #    smoothed boxes, all faces to one size.
            crops, matrices, part_masks = self._align(frame, tracked)
            tic = self._tick("align", tic)
            # 4. Transform: ROI -> generator (one batch) -> colour -> feathered alpha.
            _, alphas, raws = self.transformer.transform(crops, part_masks)
            tic = time.perf_counter()
            # 5. Cut each alpha to its smoothed box (v2.2 pasted the swapped crop back
            #    into the smoothed box only), unalign and blend it into the frame.
            for face, raw, alpha, matrix in zip(tracked, raws, alphas, matrices):
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
        # 8. Compose: [result], [source | result] or [source | result | mask heatmap].
        output = blending.compose_output(
            self.config.output_type, frame, result, frame_alpha
        )
        self._tick("compose", tic)
        return output, tracked

    def _align(self, frame, tracked):
        """Aligned crops `(N, S, S, 3)`, matrices, part masks `(N, S, S)` or None.

        Each face is aligned on `TrackedFace.landmarks5` (the raw detected points);
        the smoothed boxes set only the side S (the largest box side, clipped to
        [model size, MAX_CROP_SIZE]) and the 68-point landmark search region.
        """
        sides = [max(t.box[2] - t.box[0], t.box[3] - t.box[1]) for t in tracked]
        size = int(np.clip(round(max(sides)), self.model.image_size, MAX_CROP_SIZE))
        crops, matrices = zip(*(align(frame, t.landmarks5, size) for t in tracked))
        if self.config.segmentation == SegmentationType.ALL:
            return np.stack(crops), matrices, None
        from faceswap_gan.faces.masks import part_mask

        if self.landmark_detector is None:
            from faceswap_gan.faces.landmarks import LandmarkDetector

            self.landmark_detector = LandmarkDetector("face_api")
        height, width = frame.shape[:2]
        boxes = np.stack([t.box for t in tracked]).astype(np.float32)
        boxes = np.clip(boxes, 0, [width - 1, height - 1, width, height])
        landmarks68 = self.landmark_detector.detect(frame, boxes)  # (N, 68, 2) frame px
        parts = self.config.segmentation.parts
        blur = int(round(9 * size / 256)) | 1  # Soft edges (the fork had none).
        masks = [
            part_mask(transform_points(points, matrix), parts, (size, size), blur=blur)
            for points, matrix in zip(landmarks68, matrices)
        ]
        return np.stack(crops), matrices, np.stack(masks)

    def convert_image(self, frame: np.ndarray) -> np.ndarray:
        """Swaps the faces of a single image (no temporal smoothing).

        Args:
            frame: `(H, W, 3)` uint8 RGB.

        Returns:
            `(H, k * W, 3)` uint8 RGB laid out as `config.output_type`.
        """
        self.tracker.reset()
        output, _ = self.convert_frame(frame)
        self.tracker.reset()
        return output

    def convert(
        self,
        input_path: str | Path,
        output_path: str | Path,
        max_frames: int | None = None,
        progress: bool = True,
        overwrite: bool = False,
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
            output_path: str | Path. The H.264 video to write (tagged as synthetic):
                .mp4, .mov, .m4v or .mkv (`faceswap_gan.video.VIDEO_SUFFIXES`).
            max_frames: int | None. Convert only the first `max_frames` frames (the
                audio is cut to match); None = all.
            progress: bool. Show a tqdm progress bar.
            overwrite: bool. Replace `output_path` if it exists (default: refuse).

        Returns:
            ConversionReport: counts, seconds per step, warnings.

        Raises:
            FileNotFoundError: `input_path` does not exist.
            FaceswapError: `max_frames` < 1; an output suffix not in VIDEO_SUFFIXES;
                unreadable input (or not one frame decodable); the output is the input
                (same path, symlink or hard link); the output exists and `overwrite`
                is False, or is not a regular file. All raised before writing.
            OSError: the output cannot be written (full disk, read-only folder);
                nothing is left at `output_path` or beside it.
        """
        if max_frames is not None and (isinstance(max_frames, bool) or max_frames < 1):
            raise FaceswapError(
                f"max_frames must be a positive int or None; got {max_frames!r}."
            )
        check_output_suffix(output_path)  # Before reading anything.
        reader = VideoReader(input_path)
        check_output(output_path, [reader.path], overwrite=overwrite)
        report = ConversionReport(str(input_path), str(output_path))
        self.tracker.reset()
        self.seconds = defaultdict(float)
        self.transformer.seconds.clear()
        width = blending.output_width(self.config.output_type, reader.size[0])
        audio = reader.path if reader.has_audio else None
        size = (width, reader.size[1])
        # Temporaries a killed conversion (kill -9) left for this output only.
        files.remove_partials(Path(output_path).parent, output=output_path)
        with VideoWriter(output_path, reader.fps, size, audio) as writer:
            self._stream(reader, writer, report, max_frames, progress)
            if report.frames == 0:  # Raised inside: the writer discards its file.
                raise FaceswapError(
                    f"No frame of {input_path} could be decoded "
                    f"({report.input_ended or 'it has no frames'}); nothing was "
                    f"written to {output_path}."
                )
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
        if report.frames and report.frames_without_face == report.frames:
            report.warnings.append(
                f"No face was detected in any of the {report.frames} frames of "
                f"{input_path}; they were written through unchanged "
                f"(detection_threshold={self.config.detection_threshold}, "
                f"min_face_area={self.config.min_face_area})."
            )
        for text in report.warnings:
            warnings.warn(text, stacklevel=2)
        return report

    def _stream(self, reader, writer, report, max_frames, progress) -> None:
        """Decode -> convert_frame -> encode, one frame at a time (memory flat).

        Sets `report.frames_expected` and, when the input stops short of it,
        `report.input_ended` (a decode error ends the input instead of failing)."""
        expected = reader.frame_count
        if max_frames is not None:
            expected = min(expected, max_frames)
        report.frames_expected = expected
        decoded = iter(reader)
        bar = tqdm(total=expected, desc="convert", unit="frame", disable=not progress)
        try:
            tic = time.perf_counter()
            while max_frames is None or report.frames < max_frames:
                try:
                    frame = next(decoded)
                except StopIteration:
                    break
                except FaceswapError as error:  # Damaged input: keep what decoded.
                    report.input_ended = f"decode error: {error}"
                    break
                self._tick("decode", tic)
                output, tracked = self.convert_frame(frame)
                tic = time.perf_counter()
                writer.write(output)
                tic = self._tick("encode", tic)
                report.frames += 1
                report.faces += len(tracked)
                report.frames_without_face += not tracked
                report.frames_with_predicted_face += any(
                    not t.detected for t in tracked
                )
                bar.update()
        finally:
            decoded.close()  # Closes the input file now, also after max_frames.
            bar.close()
        # An estimated count (no count in the header) may be one frame off.
        short = expected - report.frames > (0 if reader.frame_count_exact else 1)
        if report.input_ended is None and short:
            report.input_ended = "early end of stream: the file is truncated or damaged"
