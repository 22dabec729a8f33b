"""Video stability of a conversion: box jitter (raw vs smoothed) and crop flicker.

Converts a clip with `converter.pipeline.VideoConverter` frame by frame and follows
the first face track (track id 0):

- box jitter: `geometry.jitter` of the box centres as MTCNN detected them (raw) and
  as the Kalman tracker smoothed them, over the frames where the face was detected;
- crop change: `geometry.frame_change` of consecutive aligned crops of the output
  frame against that of the input frame. Both are aligned with the same tracked
  landmarks, so head motion is compensated and what remains is content change
  (expression, lighting, and the swap's flicker); a ratio near 1 means the swap
  flickers no more than the real face moves.

It lives in the converter (it converts a clip); `faceswap_gan.evaluation.evaluate`
takes it as its `video_stability` argument, so the library never imports `converter`.
"""

from __future__ import annotations

import itertools

import numpy as np
from tqdm.auto import tqdm

from converter.config import ConverterConfig
from converter.pipeline import VideoConverter
from faceswap_gan.errors import FaceswapError
from faceswap_gan.evaluation import geometry
from faceswap_gan.faces.alignment import align
from faceswap_gan.video import VideoReader, VideoWriter, check_output

CROP_SIZE = 128  # Side of the aligned crops compared between frames.


def _track_zero(converter, tracked):
    """(raw box or None, smoothed box, landmarks5) of track 0 in this frame, or None."""
    for face in tracked:
        if face.track_id == 0:
            raw = None
            if face.detected:
                track = next(t for t in converter.tracker.tracks if t.track_id == 0)
                raw = track.raw_box.copy()
            return raw, face.box.copy(), face.landmarks5
    return None


def video_stability(
    model,
    video_path,
    output_path=None,
    max_frames: int | None = 90,
    direction: str = "AtoB",
    progress: bool = False,
) -> dict:
    """Converts (part of) a clip and measures how stable the swapped face is.

    Args:
        model: FaceSwapGAN.
        video_path: str | Path. A clip with one main face of the direction's source
            person (e.g. person A for "AtoB").
        output_path: str | Path | None. Also write the converted clip (single layout,
            H.264, audio copied) here.
        max_frames: int | None. Frames converted from the start (None = all).
        direction: "AtoB" or "BtoA".
        progress: bool. Show a tqdm bar.

    Returns:
        dict with "frames", "frames_with_face", "jitter_raw_px" and
        "jitter_smoothed_px" (pixels/frame^2), "jitter_ratio" (smoothed / raw),
        "box_side_px" (mean raw box side), "frame_change_input",
        "frame_change_swapped" (mean |diff| in [0, 1]), "frame_change_ratio"
        (swapped / input), and "tracks" {"raw", "smoothed": (T, 4) lists with None
        where undetected} for plotting.

    Raises:
        FileNotFoundError, ValueError: unreadable video; ValueError if no face is
            found in any frame.
    """

    size = model.image_size
    config = ConverterConfig(
        image_shape=(size, size, 3), output_type="single", direction=direction
    )
    converter = VideoConverter(model, config)
    reader = VideoReader(video_path)
    converter.start_video(reader.fps)
    writer = None
    if output_path is not None:
        # Re-created on each evaluation (replaced only once complete), never the input.
        check_output(output_path, [reader.path], overwrite=True)
        audio = reader.path if reader.has_audio else None
        writer = VideoWriter(output_path, reader.fps, reader.size, audio)
    raw, smooth = [], []
    changes_in, changes_out = _PairChanges(), _PairChanges()  # memory: one crop each
    total = (
        reader.frame_count
        if max_frames is None
        else min(max_frames, reader.frame_count)
    )
    frames = itertools.islice(iter(reader), max_frames)
    try:
        for frame in tqdm(frames, total=total, disable=not progress, desc="video"):
            output, tracked = converter.convert_frame(frame)
            if writer is not None:
                writer.write(output)
            found = _track_zero(converter, tracked)
            if found is None:
                raw.append(None), smooth.append(None)
                changes_in.add(None), changes_out.add(None)
                continue
            raw.append(found[0]), smooth.append(found[1])
            changes_in.add(align(frame, found[2], CROP_SIZE)[0])
            changes_out.add(align(output, found[2], CROP_SIZE)[0])
    except BaseException:
        if writer is not None:
            writer.abort()  # No half-written clip; a previous one stays.
        raise
    if writer is not None:
        writer.close()
    return _stability_figures(raw, smooth, changes_in.mean(), changes_out.mean())


def _as_track(boxes) -> np.ndarray:
    """List of (4,) boxes or None -> `(T, 4)` float64 with NaN rows for None."""
    return np.array([np.full(4, np.nan) if b is None else b for b in boxes], float)


class _PairChanges:
    """`frame_change` of consecutive crops as they stream (None: no face in that
    frame, which breaks the pair); keeps only the previous crop."""

    def __init__(self):
        self.previous, self.changes = None, []

    def add(self, crop) -> None:
        if crop is not None and self.previous is not None:
            self.changes.append(geometry.frame_change(np.stack([self.previous, crop])))
        self.previous = crop

    def mean(self) -> float:
        return float(np.mean(self.changes)) if self.changes else float("nan")


def _stability_figures(raw, smooth, change_in: float, change_out: float) -> dict:
    raw_track, smooth_track = _as_track(raw), _as_track(smooth)
    detected = np.isfinite(raw_track[:, 0])
    if not detected.any():
        raise FaceswapError("No face was detected in any converted frame of the video.")
    # Compare on the same frames: smoothed boxes where the detector also saw the face.
    smooth_on_detected = np.where(detected[:, None], smooth_track, np.nan)
    jitter_raw = geometry.jitter(raw_track)
    jitter_smooth = geometry.jitter(smooth_on_detected)
    sides = raw_track[detected, 2:] - raw_track[detected, :2]
    return {
        "frames": len(raw),
        "frames_with_face": int(detected.sum()),
        "jitter_raw_px": jitter_raw,
        "jitter_smoothed_px": jitter_smooth,
        "jitter_ratio": jitter_smooth / jitter_raw if jitter_raw > 0 else float("nan"),
        "box_side_px": float(sides.mean()),
        "frame_change_input": change_in,
        "frame_change_swapped": change_out,
        "frame_change_ratio": change_out / change_in if change_in > 0 else float("nan"),
        "tracks": {
            "raw": [None if b is None else np.round(b, 2).tolist() for b in raw],
            "smoothed": [
                None if b is None else np.round(b, 2).tolist() for b in smooth
            ],
        },
    }
