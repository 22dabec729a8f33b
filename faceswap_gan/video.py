"""The one video module: streaming decode and encode with PyAV (FFmpeg), frame by frame.

Used by extraction (`faces.extract`), conversion (`converter.pipeline`), evaluation and
the demo. `VideoReader` / `iter_video_frames` read, `VideoWriter` writes H.264 with the
input's audio copied, `read_metadata` reads container tags.

Memory stays flat in the video's length: frames are decoded and encoded one at a time
and audio packets are remuxed as the video advances. Frames are `(H, W, 3) uint8 RGB`.
The writer makes H.264 (libx264, yuv420p) by default, or H.265 (libx265) or lossless
FFV1 RGB (`CODECS`), copies the input's audio packets unchanged (no re-encode; the
original kept audio through moviepy, which re-encoded it), optionally from a start
time, and marks the container as synthetic media (DESIGN.md section 7).

Nothing is half-written: the writer encodes into a hidden temporary file next to the
output (`files.atomic_output`, same suffix so FFmpeg picks the same format) and renames
it onto the output only when the video is complete. An error (a full disk, a bad frame,
Ctrl-C) removes the temporary file and leaves a previous output as it was; a killed
process (kill -9) leaves at most a hidden `.NAME.partial-XXXX.mp4` beside it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from faceswap_gan import files
from faceswap_gan.errors import FaceswapError

# Output containers that take H.264 video, a copied AAC track and the synthetic-media
# tags (.avi and .ts drop the custom tags; .webm refuses H.264).
# FFmpeg muxer of each (named explicitly: a symlinked output's target may be named
# otherwise, and so its temporary file).
_MUXERS = {".mp4": "mp4", ".mov": "mov", ".m4v": "ipod", ".mkv": "matroska"}
VIDEO_SUFFIXES = tuple(_MUXERS)
_MOV_SUFFIXES = (".mp4", ".mov", ".m4v")  # Take `movflags` (custom udta tags).

# Video codecs the writer offers: name -> (FFmpeg encoder, pixel format, suffixes).
# "lossless" is FFV1 (FFmpeg's lossless intra codec, RFC 9043) on packed RGB (bgr0):
# decoding gives back exactly the RGB frames written. Matroska holds it (MP4/MOV do
# not take FFV1 with the tags here), so it needs a .mkv output.
CODECS = {
    "h264": ("libx264", "yuv420p", VIDEO_SUFFIXES),
    "h265": ("libx265", "yuv420p", VIDEO_SUFFIXES),
    "lossless": ("ffv1", "bgr0", (".mkv",)),
}
# x264 / x265 speed presets, fastest first.
PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)

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


def check_output_suffix(path: str | Path) -> None:
    """Refuses an output video name FFmpeg would not write as H.264 with tags.

    Raises:
        FaceswapError: the suffix is not one of VIDEO_SUFFIXES (case-insensitive).
    """
    if Path(path).suffix.lower() not in VIDEO_SUFFIXES:
        raise FaceswapError(
            f"Cannot write the video {path}: the name must end in one of "
            f"{', '.join(VIDEO_SUFFIXES)} (H.264 video with the synthetic-media tags)."
        )


def check_codec(
    path: str | Path, codec: str = "h264", crf: int = 18, preset: str = "veryfast"
) -> None:
    """Refuses a codec, quality or preset the writer cannot use for `path`.

    Args:
        path: str | Path. The output video (its suffix picks the container).
        codec: str. One of `CODECS`: "h264", "h265" or "lossless" (FFV1, .mkv only).
        crf: int in [0, 51]. Constant rate factor of h264/h265 (lower: better).
        preset: str. One of `PRESETS` (h264/h265 speed against size).

    Raises:
        FaceswapError: an unknown codec, one this FFmpeg build lacks, a container
            that cannot hold it, a crf outside [0, 51] or an unknown preset.
    """
    check_output_suffix(path)
    if codec not in CODECS:
        raise FaceswapError(
            f"Unknown codec {codec!r}; expected one of {', '.join(CODECS)}."
        )
    encoder, _, suffixes = CODECS[codec]
    if encoder not in av.codecs_available:
        raise FaceswapError(
            f"This FFmpeg build (PyAV {av.__version__}) has no {encoder} encoder for "
            f"codec {codec!r}; use one of "
            f"{', '.join(c for c, v in CODECS.items() if v[0] in av.codecs_available)}."
        )
    suffix = Path(path).suffix.lower()
    if suffix not in suffixes:
        raise FaceswapError(
            f"The {suffix} container cannot hold codec {codec!r} ({encoder}); name the "
            f"output {Path(path).with_suffix(suffixes[0]).name} (allowed: "
            f"{', '.join(suffixes)})."
        )
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
        raise FaceswapError(
            f"crf must be an int in [0, 51] (0 best, 18 looks lossless); got {crf!r}."
        )
    if preset not in PRESETS:
        raise FaceswapError(
            f"Unknown preset {preset!r}; expected one of {', '.join(PRESETS)}."
        )


def check_output(
    path: str | Path, inputs: Iterable[str | Path] = (), overwrite: bool = False
) -> None:
    """Checks an output video path before anything is read or written.

    Args:
        path: str | Path. The video to write.
        inputs: the files it is made from; the output must not be (or link to) one.
        overwrite: bool. Allow replacing an existing output file.

    Raises:
        FaceswapError: a suffix not in VIDEO_SUFFIXES; the output is an input (the
            same path, a symlink or a hard link); it exists and `overwrite` is False;
            it exists and is not a regular file (a folder, a device such as
            /dev/full).
    """
    check_output_suffix(path)
    files.check_output_not_input(path, inputs, "output video")
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise FaceswapError(
                f"The output video {path} exists and is not a regular file (a "
                f"folder, a device or a broken link); give a new file path."
            )
        if not overwrite:
            raise FaceswapError(f"{path} exists; pass --overwrite to replace it.")


class VideoReader:
    """Iterates the frames of a video file as `(H, W, 3) uint8 RGB` arrays.

    Each iteration opens the file anew and decodes one frame at a time.

    Args:
        path: str | Path. Any container/codec FFmpeg decodes (MP4/H.264, MOV, AVI...).

    Attributes:
        fps: Fraction. Average frame rate (frames per second).
        frame_count: int. Frames in the video stream (header count, else estimated from
            the duration).
        frame_count_exact: bool. Whether `frame_count` is the header's count (False:
            estimated, possibly off by a frame).
        size: tuple[int, int]. (width, height) in pixels.
        duration: float. Seconds.
        has_audio: bool. Whether the file has an audio stream.

    Raises:
        FileNotFoundError: `path` does not exist.
        FaceswapError: FFmpeg cannot open or decode the file, or it has no video stream.
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
            self.frame_count_exact = bool(stream.frames)
            self.has_audio = bool(container.streams.audio)

    def __len__(self) -> int:
        return self.frame_count

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.frames()

    def frames(self, first: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Frames `first` (0-based) up to `stop` (excluded; None: the end), decoded
        one at a time. For `first > 0` the file is sought to the key frame before it
        and decoded from there, the frames before `first` dropped (a frame's index
        is its time from the stream's start times the frame rate, rounded).

        Yields:
            `(H, W, 3)` uint8 RGB.

        Raises:
            FaceswapError: a decoding error (the frames before it were yielded).
        """
        with _open_input(self.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            origin = stream.start_time or 0
            to_pts = 1 / (self.fps * stream.time_base)  # index -> pts
            try:
                if first > 0:
                    container.seek(
                        int(origin + first * to_pts), stream=stream, backward=True
                    )
                index = first - 1
                for frame in container.decode(stream):
                    if first > 0:
                        pts = frame.pts if frame.pts is not None else origin
                        index = int(round((pts - origin) / to_pts))
                    else:
                        index += 1
                    if index < first:
                        continue
                    if stop is not None and index >= stop:
                        return
                    yield frame.to_ndarray(format="rgb24")
            except av.FFmpegError as error:
                raise FaceswapError(
                    f"Cannot decode video {self.path}: {error}"
                ) from error


def iter_video_frames(
    path: str | Path, every: int = 1, limit: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Streams `(index, frame)` for every `every`-th frame of a video, from index 0.

    Frames are `(H, W, 3)` uint8 RGB, decoded one at a time (memory stays flat).

    Args:
        path: str | Path. A video file.
        every: int >= 1. Yield frames 0, every, 2*every, ...
        limit: int | None. Stop after this many yielded frames (None: to the end).

    Raises:
        FileNotFoundError: `path` does not exist.
        FaceswapError: not a readable video, or a decoding error mid-stream.
    """
    if int(every) < 1:
        raise FaceswapError(f"every must be >= 1; got {every!r}.")
    yielded = 0
    for index, frame in enumerate(VideoReader(path)):
        if limit is not None and yielded >= limit:
            return
        if index % every == 0:
            yielded += 1
            yield index, frame


class _Aborted(Exception):
    """Passed to `files.atomic_output` to discard the temporary file."""


class VideoWriter:
    """Writes `(H, W, 3) uint8 RGB` frames as H.264 (or H.265, or lossless FFV1)
    video, with another file's audio.

    For h264/h265, odd sizes are padded to even (yuv420p needs it) by repeating the
    last row/column; "lossless" keeps the size and the exact RGB values.
    Audio packets of `audio_from`'s first audio stream are copied unchanged, interleaved
    with the video as it is written, and cut at the end of the written video (so a
    `max_frames` conversion has audio of its own length). With `audio_start`, the
    audio is taken from that time on (packets starting earlier are dropped and the
    rest shifted to start at 0), for a video cut from `audio_start` seconds.

    The frames go to a hidden temporary file in the output's folder; `close()` (or the
    end of a `with` block) renames it onto `path`, replacing an existing file (check
    with `check_output` first to refuse that). An exception in the `with` block, an
    error while encoding or writing, or `abort()` removes the temporary file and leaves
    `path` untouched. If `path` is a symlink, the file it points to is replaced.

    Args:
        path: str | Path. Output file (VIDEO_SUFFIXES: .mp4, .mov, .m4v, .mkv); parent
            folders are created.
        fps: float | Fraction. Frame rate (pass `VideoReader.fps` to keep it exactly).
        size: tuple[int, int]. (width, height) of the frames that will be written.
        audio_from: str | Path | None. Video whose audio is copied; None = no audio.
        metadata: Mapping[str, str] | None. Container tags; defaults to
            `SYNTHETIC_METADATA` (pass `{}` for none; keys become MP4 udta tags).
        crf: int. x264/x265 constant rate factor, 0 (best) to 51; 18 looks lossless.
        preset: str. x264/x265 speed preset (`PRESETS`: "ultrafast" ... "veryslow").
        codec: str. "h264" (libx264), "h265" (libx265, tagged hvc1 in MP4/MOV) or
            "lossless" (FFV1 RGB, .mkv only; crf and preset do not apply).
        audio_start: float >= 0. Seconds of `audio_from` where the audio starts.

    Raises:
        FaceswapError: a bad size/fps/suffix/codec/crf/preset, a frame of the
            wrong shape or dtype in `write` (the writer stays usable), or no frame
            written at `close()`.
        FileNotFoundError: `audio_from` does not exist.
        OSError: the output cannot be written (a full disk, a read-only folder...),
            from `__init__`, `write` or `close`, naming `path` (not the temporary
            file); the temporary file is removed by then.

    Use as a context manager, or call `close()` (or `abort()` on failure).
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
        codec: str = "h264",
        audio_start: float = 0.0,
    ):
        width, height = (int(v) for v in size)
        if width < 2 or height < 2:
            raise FaceswapError(
                f"size must be (width, height) >= 2 pixels; got {size!r}."
            )
        if not float(fps) > 0:
            raise FaceswapError(f"fps must be > 0; got {fps!r}.")
        check_codec(path, codec, crf, preset)
        if not float(audio_start) >= 0:
            raise FaceswapError(f"audio_start must be >= 0 s; got {audio_start!r}.")
        self.codec, self.audio_start = codec, float(audio_start)
        self._pad = codec != "lossless"  # yuv420p needs even sizes.
        self.path, self.size = Path(path), (width, height)
        self.fps = Fraction(fps).limit_denominator(1001 * 1000)
        self.frames_written = 0
        self._container, self._audio_input, self._failed = None, None, False
        self._audio_input = _open_input(Path(audio_from)) if audio_from else None
        # Write through a symlink (replace its target, keep the link).
        target = Path(os.path.realpath(path)) if self.path.is_symlink() else self.path
        if target.exists() and not target.is_file():
            self._close_audio()
            raise FaceswapError(
                f"The output video {path} exists and is not a regular file (a "
                f"folder or a device); give a new file path."
            )
        self._atomic = files.atomic_output(target)
        try:
            self._tmp = self._atomic.__enter__()
            self._open(metadata, crf, preset)
        except BaseException as error:
            self._abort(error)
            self._raise_naming_output(error)
            raise

    def _open(self, metadata, crf, preset) -> None:
        """Opens the temporary output container and its video (and audio) streams."""
        suffix = self.path.suffix.lower()
        movflags = suffix in _MOV_SUFFIXES
        self._container = av.open(
            str(self._tmp),
            mode="w",
            format=_MUXERS[suffix],
            options={"movflags": "use_metadata_tags"} if movflags else {},
        )
        width, height = self.size
        tags = SYNTHETIC_METADATA if metadata is None else metadata
        for key, value in tags.items():
            self._container.metadata[key] = str(value)
        encoder, pix_fmt, _ = CODECS[self.codec]
        self._video = self._container.add_stream(encoder, rate=self.fps)
        if self._pad:
            width, height = width + width % 2, height + height % 2
        self._video.width, self._video.height = width, height
        self._video.pix_fmt = pix_fmt
        if self.codec == "h264":
            self._video.options = {"crf": str(crf), "preset": preset}
        elif self.codec == "h265":
            self._video.options = {
                "crf": str(crf),
                "preset": preset,
                "x265-params": "log-level=error",
            }
            if movflags:
                self._video.codec_context.codec_tag = "hvc1"  # Plays on Apple.
        self._video.codec_context.time_base = 1 / self.fps
        self._audio, self._packets, self._pending = None, None, None
        self._audio_offset = 0  # audio_start in the audio's time base.
        if self._audio_input is not None and self._audio_input.streams.audio:
            source = self._audio_input.streams.audio[0]
            self._audio = self._container.add_stream_from_template(source)
            self._audio_offset = 0
            if self.audio_start > 0:
                self._audio_offset = int(round(self.audio_start / source.time_base))
                self._audio_input.seek(
                    self._audio_offset, stream=source, backward=True, any_frame=False
                )
            self._packets = self._audio_input.demux(source)

    def write(self, frame: np.ndarray) -> None:
        """Encodes one `(height, width, 3) uint8 RGB` frame (the size given at init)."""
        width, height = self.size
        if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
            raise FaceswapError(
                f"frame must be ({height}, {width}, 3) uint8 RGB; "
                f"got {frame.shape} {frame.dtype}."
            )
        if self._pad and (width % 2 or height % 2):
            frame = np.pad(
                frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge"
            )
        if self._container is None:
            raise FaceswapError(f"The video writer of {self.path} is already closed.")
        video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        if self.codec == "lossless":  # Exact: a byte reorder, no colour conversion.
            video_frame = video_frame.reformat(format="bgr0")
        video_frame.pts, video_frame.time_base = self.frames_written, 1 / self.fps
        try:
            self._container.mux(self._video.encode(video_frame))
            self.frames_written += 1
            self._mux_audio_until(self.frames_written / self.fps)
        except BaseException as error:
            # The container may be broken (FFmpeg crashes if it is flushed now):
            # close() and __exit__ will discard it without encoding or muxing again.
            self._failed = True
            self._raise_naming_output(error)
            raise

    def _mux_audio_until(self, seconds: float) -> None:
        """Copies audio packets that start before `seconds` into the output."""
        if self._packets is None:
            return
        while True:
            if self._pending is None:
                try:
                    self._pending = next(self._packets, None)
                except av.FFmpegError:  # A damaged or truncated input: audio ends.
                    self._pending = None
                if self._pending is None:
                    self._packets = None
                    return
                if self._pending.dts is None:  # Demuxer flush packet: no data.
                    self._pending = None
                    continue
                if self._audio_offset and (
                    self._pending.pts is None or self._pending.pts < self._audio_offset
                ):
                    self._pending = None  # Before audio_start: dropped.
                    continue
                if self._audio_offset:
                    self._pending.pts -= self._audio_offset
                    self._pending.dts -= self._audio_offset
            packet = self._pending
            if packet.pts is not None and packet.pts * packet.time_base >= seconds:
                return
            packet.stream = self._audio
            self._container.mux(packet)
            self._pending = None

    def close(self) -> None:
        """Flushes the encoder, copies the audio up to the video's end, closes files
        and renames the temporary file onto `path`. After a failed `write` it only
        discards the temporary file (like `abort`) and raises.

        Raises:
            FaceswapError: no frame was written, or a previous `write` failed.
            OSError: writing failed (the temporary file is removed; `path` untouched).
        """
        if self._container is None:
            return
        if self._failed:
            self.abort()
            raise FaceswapError(
                f"Writing {self.path} failed earlier; nothing was saved there."
            )
        if self.frames_written == 0:
            self.abort()
            raise FaceswapError(f"No frame was written to {self.path}; nothing saved.")
        try:
            self._container.mux(self._video.encode(None))
            self._mux_audio_until(self.frames_written / self.fps)
            container, self._container = self._container, None
            container.close()  # Writes the trailer; may fail on a full disk.
            self._close_audio()
            atomic, self._atomic = self._atomic, None
            atomic.__exit__(None, None, None)  # Rename onto `path`.
        except BaseException as error:
            self._abort(error)
            self._raise_naming_output(error)
            raise

    def abort(self) -> None:
        """Discards the video: closes the files without encoding or writing more and
        removes the temporary file; `path` keeps what it had. Safe to call twice."""
        self._abort(_Aborted())

    def _abort(self, error: BaseException) -> None:
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except Exception:  # Already failed; the file is removed below.
                pass
        self._close_audio()
        atomic, self._atomic = getattr(self, "_atomic", None), None
        if atomic is not None:
            try:
                atomic.__exit__(type(error), error, error.__traceback__)
            except BaseException as raised:  # Re-raised by atomic_output.
                if raised is not error:
                    raise

    def _close_audio(self) -> None:
        if self._audio_input is not None:
            self._audio_input.close()
            self._audio_input = None

    def _raise_naming_output(self, error: BaseException) -> None:
        """Raises an OSError about the temporary file again, naming `path` instead
        (e.g. "No space left on device: out.mp4"); returns for any other error."""
        if (
            isinstance(error, OSError)
            and error.errno
            and error.filename is not None
            and files.TEMP_MARK in str(error.filename)
        ):
            raise OSError(error.errno, error.strerror, str(self.path)) from error

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc is None:
            self.close()
        else:
            self._abort(exc)


def read_metadata(path: str | Path) -> dict[str, str]:
    """Container-level metadata tags of a media file (e.g. to check the synthetic tag).

    Keys are lower-cased: Matroska (.mkv) stores tag names in capitals
    ("SYNTHETIC_MEDIA"), MP4/MOV as written ("synthetic_media").

    Raises:
        FileNotFoundError: `path` does not exist.
        FaceswapError: FFmpeg cannot open the file.
    """
    with _open_input(Path(path)) as container:
        return {key.lower(): value for key, value in container.metadata.items()}
