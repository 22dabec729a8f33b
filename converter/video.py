"""Streaming video decode and encode with PyAV (FFmpeg), frame by frame.

Memory stays flat in the video's length: frames are decoded and encoded one at a time
and audio packets are remuxed as the video advances. Frames are `(H, W, 3) uint8 RGB`.
The writer makes H.264 (libx264, yuv420p) MP4, copies the input's audio packets
unchanged (no re-encode; the original kept audio through moviepy, which re-encoded it),
and marks the container as synthetic media (DESIGN.md section 7).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from faceswap_gan.errors import FaceswapError

SYNTHETIC_COMMENT = "synthetic media: face swapped with faceswap-GAN"
SYNTHETIC_METADATA = {
    "comment": SYNTHETIC_COMMENT,
    # Machine-readable tag (a custom key: MP4 udta, written with movflags).
    "synthetic_media": "true",
    "generator": "faceswap-GAN (Keras 3 rebuild)",
}


def _open_input(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"Video not found: {path}")
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as error:
        raise FaceswapError(f"Cannot read video {path}: {error}") from error
    if not container.streams.video:
        container.close()
        raise FaceswapError(f"Cannot read video {path}: it has no video stream.")
    return container


class VideoReader:
    """Iterates the frames of a video file as `(H, W, 3) uint8 RGB` arrays.

    Each iteration opens the file anew and decodes one frame at a time.

    Args:
        path: str | Path. Any container/codec FFmpeg decodes (MP4/H.264, MOV, AVI...).

    Attributes:
        fps: Fraction. Average frame rate (frames per second).
        frame_count: int. Frames in the video stream (header count, else estimated from
            the duration).
        size: tuple[int, int]. (width, height) in pixels.
        duration: float. Seconds.
        has_audio: bool. Whether the file has an audio stream.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: FFmpeg cannot open or decode the file, or it has no video stream.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with _open_input(self.path) as container:
            stream = container.streams.video[0]
            self.fps = Fraction(stream.average_rate or stream.guessed_rate or 25)
            self.size = (stream.codec_context.width, stream.codec_context.height)
            if stream.duration is not None:
                self.duration = float(stream.duration * stream.time_base)
            else:
                self.duration = (container.duration or 0) / av.time_base
            self.frame_count = stream.frames or int(round(self.duration * self.fps))
            self.has_audio = bool(container.streams.audio)

    def __len__(self) -> int:
        return self.frame_count

    def __iter__(self) -> Iterator[np.ndarray]:
        with _open_input(self.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            try:
                for frame in container.decode(stream):
                    yield frame.to_ndarray(format="rgb24")
            except av.FFmpegError as error:
                raise FaceswapError(
                    f"Cannot decode video {self.path}: {error}"
                ) from error


class VideoWriter:
    """Writes `(H, W, 3) uint8 RGB` frames as H.264 MP4, with another file's audio.

    Odd sizes are padded to even (yuv420p needs it) by repeating the last row/column.
    Audio packets of `audio_from`'s first audio stream are copied unchanged, interleaved
    with the video as it is written, and cut at the end of the written video (so a
    `max_frames` conversion has audio of its own length).

    Args:
        path: str | Path. Output file (`.mp4`); parent folders are created.
        fps: float | Fraction. Frame rate (pass `VideoReader.fps` to keep it exactly).
        size: tuple[int, int]. (width, height) of the frames that will be written.
        audio_from: str | Path | None. Video whose audio is copied; None = no audio.
        metadata: Mapping[str, str] | None. Container tags; defaults to
            `SYNTHETIC_METADATA` (pass `{}` for none; keys become MP4 udta tags).
        crf: int. x264 constant rate factor, 0 (lossless) to 51; 18 looks lossless.
        preset: str. x264 speed preset ("ultrafast" ... "veryslow").

    Raises:
        ValueError: a bad size/fps, or a frame of the wrong shape or dtype in `write`.
        FileNotFoundError: `audio_from` does not exist.

    Use as a context manager, or call `close()`.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float | Fraction,
        size: tuple[int, int],
        audio_from: str | Path | None = None,
        metadata: Mapping[str, str] | None = None,
        crf: int = 18,
        preset: str = "veryfast",
    ):
        width, height = (int(v) for v in size)
        if width < 2 or height < 2:
            raise FaceswapError(
                f"size must be (width, height) >= 2 pixels; got {size!r}."
            )
        if not float(fps) > 0:
            raise FaceswapError(f"fps must be > 0; got {fps!r}.")
        self.path, self.size = Path(path), (width, height)
        self.fps = Fraction(fps).limit_denominator(1001 * 1000)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.frames_written = 0
        self._audio_input = _open_input(Path(audio_from)) if audio_from else None
        self._container = av.open(
            str(self.path), mode="w", options={"movflags": "use_metadata_tags"}
        )
        tags = SYNTHETIC_METADATA if metadata is None else metadata
        for key, value in tags.items():
            self._container.metadata[key] = str(value)
        self._video = self._container.add_stream("libx264", rate=self.fps)
        self._video.width, self._video.height = width + width % 2, height + height % 2
        self._video.pix_fmt = "yuv420p"
        self._video.options = {"crf": str(crf), "preset": preset}
        self._video.codec_context.time_base = 1 / self.fps
        self._audio, self._packets, self._pending = None, None, None
        if self._audio_input is not None and self._audio_input.streams.audio:
            source = self._audio_input.streams.audio[0]
            self._audio = self._container.add_stream_from_template(source)
            self._packets = self._audio_input.demux(source)

    def write(self, frame: np.ndarray) -> None:
        """Encodes one `(height, width, 3) uint8 RGB` frame (the size given at init)."""
        width, height = self.size
        if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
            raise FaceswapError(
                f"frame must be ({height}, {width}, 3) uint8 RGB; "
                f"got {frame.shape} {frame.dtype}."
            )
        if width % 2 or height % 2:
            frame = np.pad(
                frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge"
            )
        video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        video_frame.pts, video_frame.time_base = self.frames_written, 1 / self.fps
        self._container.mux(self._video.encode(video_frame))
        self.frames_written += 1
        self._mux_audio_until(self.frames_written / self.fps)

    def _mux_audio_until(self, seconds: float) -> None:
        """Copies audio packets that start before `seconds` into the output."""
        if self._packets is None:
            return
        while True:
            if self._pending is None:
                self._pending = next(self._packets, None)
                if self._pending is None:
                    self._packets = None
                    return
                if self._pending.dts is None:  # Demuxer flush packet: no data.
                    self._pending = None
                    continue
            packet = self._pending
            if packet.pts is not None and packet.pts * packet.time_base >= seconds:
                return
            packet.stream = self._audio
            self._container.mux(packet)
            self._pending = None

    def close(self) -> None:
        """Flushes the encoder, copies the audio up to the video's end, closes files."""
        if self._container is None:
            return
        self._container.mux(self._video.encode(None))
        self._mux_audio_until(self.frames_written / self.fps)
        self._container.close()
        if self._audio_input is not None:
            self._audio_input.close()
        self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_metadata(path: str | Path) -> dict[str, str]:
    """Container-level metadata tags of a media file (e.g. to check the synthetic tag).

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: FFmpeg cannot open the file.
    """
    with _open_input(Path(path)) as container:
        return dict(container.metadata)
