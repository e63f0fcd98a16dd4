"""Video files in and out, one frame at a time: ``VideoReader``, ``VideoWriter``.

Both run the ffmpeg binary that ``imageio-ffmpeg`` ships (no system ffmpeg is used)
through pipes of raw RGB frames, so a video is never held in memory: the reader
yields one (H, W, 3) uint8 RGB frame at a time, the writer encodes each frame as it
is given. GIFs are the exception on the writing side (see ``VideoWriter``).

What gets written:

- ``.mp4``, ``.m4v``, ``.mov``, ``.mkv``, ``.avi``: H.264 (libx264), ``yuv420p``,
  which every player and browser decodes; MP4/MOV get ``+faststart`` (index first,
  so a browser can start playing before the download ends). ``yuv420p`` needs an
  even width and height: an odd-sized frame is **padded** by repeating its last row
  and/or column, never cropped, so pixel (x, y) of the frame stays pixel (x, y) of
  the video and the video is one pixel wider and/or taller than the frames.
- ``.webm``: VP9 (libvpx-vp9), ``yuv420p``, padded the same way (WebM holds no H.264).
- ``.gif``: a looping GIF written with Pillow, one adaptive 256-colour palette per
  frame (Floyd–Steinberg dithering).

Every writer writes to a temporary file beside the target and renames it over the
target on a clean close; on an error, or an exception inside its ``with`` block, the
temporary file is deleted, so no half-written video is ever left under the target
name. Reading problems raise ``VideoError`` with one sentence naming the file.

A file that ends before its header says it should (a download cut short) still
decodes, up to where it stops; ffmpeg reads it without failing. ``VideoReader`` says
so instead: after the frames are read, ``truncated`` tells whether fewer came out
than the header promised (see ``VideoReader``). Frame rates are checked where they
come in (``check_fps``): ``MIN_FPS`` to ``MAX_FPS`` frames per second.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO

import imageio_ffmpeg
import numpy as np
from PIL import Image as PILImage

from depthlens.errors import DepthlensError, OutputError, UsageError
from depthlens.io.depth_files import atomic_write
from depthlens.io.images import check_input_file

__all__ = [
    "MAX_FPS",
    "MIN_FPS",
    "VIDEO_SUFFIXES",
    "FrameRateError",
    "VideoError",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "check_fps",
    "is_video_path",
    "write_video",
]

PathLike = str | os.PathLike[str]

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".gif")

# The frame rates a written video may have, frames per second. A GIF stores each
# frame's delay in hundredths of a second, so 100 is its fastest; 0.1 (one frame each
# ten seconds) is far slower than any slideshow. Outside this range a rate is a
# mistake, and near 0 it overflowed the writers (fps = 1e-300).
MIN_FPS = 0.1
MAX_FPS = 240.0

# Constant-rate-factor defaults, the quality a caller gets without asking: 18 is
# libx264's "visually lossless" point (trac.ffmpeg.org/wiki/Encode/H.264), 31 the
# VP9 value recommended for 1080p (trac.ffmpeg.org/wiki/Encode/VP9).
_DEFAULT_CRF = {"libx264": 18, "libvpx-vp9": 31}
_MAX_CRF = {"libx264": 51, "libvpx-vp9": 63}

# imageio-ffmpeg learns a video's size and rate by parsing ffmpeg's log text: a file it
# cannot make sense of surfaces as OSError/RuntimeError (ffmpeg failed) or, when the
# log has no video stream line, as IndexError/AttributeError/ValueError from the parser.
_FFMPEG_READ_ERRORS = (OSError, RuntimeError, IndexError, AttributeError, ValueError)

# What ffmpeg's demuxers log when a file's data stops before its index or header says
# it should: mov/mp4 ("stream 0, offset 0x…: partial file", libavformat/mov.c),
# Matroska/WebM ("File ended prematurely", libavformat/matroskadec.c) and the packet
# checks every input goes through ("Packet corrupt", "corrupt input packet").
_MISSING_DATA = re.compile(
    rb"partial file|File ended prematurely|Packet corrupt|corrupt input packet"
)

# How many frames short of the header's count a video may come out without a sign of
# missing data in ffmpeg's log before it counts as truncated: the count is the header's
# duration times its rate, and that duration can run a frame or two past the video
# (rounding, an edit list). The log catches a cut file in almost every case; this
# margin is for a cut that falls exactly between two frames. A file with audio or other
# tracks gets no margin rule at all: its duration is its longest track's, and an audio
# track may well outlast the video by seconds.
_SHORT_BY_FRAMES = 2
_SHORT_BY_FRACTION = 0.01


class VideoError(DepthlensError):
    """A video could not be read (missing, not a video, corrupt) or written as asked."""


class FrameRateError(VideoError, UsageError):
    """A frame rate outside ``MIN_FPS`` to ``MAX_FPS``: a video setting, and the caller's
    mistake (a ``UsageError``, which the web API answers with 422)."""


def check_fps(fps: object) -> float:
    """``fps`` (frames per second; numpy scalars too) as a float, or ``FrameRateError``
    unless it is a number from ``MIN_FPS`` to ``MAX_FPS`` (NaN and infinity are not)."""
    rate = _number(fps)
    if not MIN_FPS <= rate <= MAX_FPS:  # False for NaN too
        raise FrameRateError(
            f"The frame rate must be {MIN_FPS:g} to {MAX_FPS:g} frames per second, not {fps}."
        )
    return rate


def is_video_path(path: PathLike) -> bool:
    """Whether ``path`` names a video by its suffix (``VIDEO_SUFFIXES``, any case).

    ``.gif`` counts as a video here, though ``load_image`` also reads a GIF's first
    frame as a photo; a caller that takes both decides which it wants.
    """
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoInfo:
    """What a video file says about itself.

    ``width`` and ``height`` are the size of the frames the reader yields (pixels,
    after the rotation the file asks for). ``fps`` is the nominal frame rate (frames
    per second; 0.0 when the file states none and it cannot be derived).
    ``frame_count`` is the number of frames in the first video stream, counted by
    demuxing it without decoding (None if that failed); ``duration`` is in seconds
    (None when unknown). ``expected_frames`` is the number of frames the header
    promises, ``round(duration · fps)``; in a file with audio the duration is that of
    its longest track, so it may be more. It is None when either is unknown, when
    ffmpeg only estimated the duration from the bitrate, and for GIFs, whose duration
    is summed from the frames present. Whether a file fell short of it is known once
    its frames are read (``VideoReader.truncated``).
    """

    width: int
    height: int
    fps: float
    frame_count: int | None
    duration: float | None
    expected_frames: int | None = None


class VideoReader:
    """Stream the frames of a video file as (H, W, 3) uint8 RGB arrays.

    >>> with VideoReader("clip.mp4") as video:          # doctest: +SKIP
    ...     print(video.info.fps)
    ...     for frame in video:
    ...         ...

    Opening checks the file (missing, empty, not a video → ``VideoError``) and reads
    its header and frame count; iterating decodes one frame at a time from ffmpeg's
    pipe. Frames are the file's own, one per coded frame, in order (no frames are
    dropped or repeated to reach a constant rate). Each frame is a new, writable
    array. Iterating again starts again from the first frame. ``close`` (or leaving
    the ``with`` block) stops ffmpeg.

    ``decoded_frames`` counts the frames the latest iteration has yielded.
    ``truncated`` is set when an iteration reaches the end of the file: True when
    fewer frames came out than ``info.expected_frames`` and the file shows it was cut:
    ffmpeg found data missing, or, in a file of video alone, more than 2 frames and
    1 % are missing (a header's duration that runs a frame or two long, or a longer
    audio track, is not taken for a cut). It is False while an iteration is under way
    and whenever ``expected_frames`` is None.
    A truncated file raises nothing: its frames are still worth having, and the
    caller decides whether a short video is an error.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        _check_video_file(self.path)
        self._active: Iterator[bytes] | None = None
        frames, meta = self._open()
        self._pending: Iterator[bytes] | None = frames
        width, height = (int(v) for v in meta["size"])
        duration = float(meta.get("duration") or 0.0) or None
        scan = _scan(self.path)
        fps = float(meta.get("fps") or 0.0)
        if not math.isfinite(fps) or fps < 0.0:
            fps = 0.0
        if fps <= 0.0 and scan.count and duration:
            fps = scan.count / duration
        expected = None
        if duration and fps > 0.0 and scan.duration_stated:
            expected = round(duration * fps)
        self.info = VideoInfo(width, height, fps, scan.count, duration, expected)
        self._scan = scan
        self.decoded_frames = 0
        self.truncated = False

    def _open(self) -> tuple[Iterator[bytes], dict[str, Any]]:
        """Start ffmpeg on the file; the frame generator and the header it parsed."""
        # Only the first video stream, every coded frame exactly once (passthrough),
        # in the same order ffmpeg's demuxer sees them when counting.
        params = ["-map", "0:v:0", "-an", "-sn", "-fps_mode", "passthrough"]
        frames = imageio_ffmpeg.read_frames(str(self.path), output_params=params)
        try:
            meta = next(frames)
        except _FFMPEG_READ_ERRORS as err:
            frames.close()
            raise VideoError(
                f"{self.path} is not a video depthlens can read ({_ffmpeg_reason(err)})."
            ) from err
        return frames, meta

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._pending is not None:
            frames, self._pending = self._pending, None
        else:
            frames, _ = self._open()
        self._close_active()
        self._active = frames
        self.decoded_frames = 0
        self.truncated = False
        return self._decode(frames)

    def _decode(self, frames: Iterator[bytes]) -> Iterator[np.ndarray]:
        shape = (self.info.height, self.info.width, 3)
        index = 0
        try:
            for data in frames:
                self.decoded_frames = index + 1
                yield np.frombuffer(data, np.uint8).reshape(shape).copy()
                index += 1
            self.truncated = _is_short(index, self.info.expected_frames, self._scan)
        except _FFMPEG_READ_ERRORS as err:
            raise VideoError(
                f"{self.path} is corrupt: frame {index} could not be decoded "
                f"({_ffmpeg_reason(err)})."
            ) from err
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()

    def _close_active(self) -> None:
        for frames in (self._active, self._pending):
            close = getattr(frames, "close", None)
            if close is not None:
                close()
        self._active = None

    def close(self) -> None:
        """Stop ffmpeg; the reader can still be iterated again afterwards."""
        self._close_active()
        self._pending = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _check_video_file(path: Path) -> None:
    """Raise VideoError unless ``path`` is a non-empty regular file we may read (ffmpeg
    would only say it failed)."""
    check_input_file(path, "video", VideoError)
    if not os.access(path, os.R_OK):
        raise VideoError(f"Video file {path} cannot be read: permission denied.")


@dataclass(frozen=True)
class _Scan:
    """What demuxing the first video stream found: ``count`` frames (None when ffmpeg
    failed or printed no count), whether the container states its duration in a header
    (``duration_stated``), whether ffmpeg found data missing (``data_missing``), and
    whether video is all the file holds (``video_only``: then the duration is the
    video's own, not a longer audio track's)."""

    count: int | None
    duration_stated: bool
    data_missing: bool
    video_only: bool


def _scan(path: Path) -> _Scan:
    """Demux the first video stream into ffmpeg's null muxer and read its log.

    ``-c copy`` counts packets without decoding them: one pass over the file's bytes,
    hundreds of times faster than decoding.
    """
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-i",
        str(path),
        "-map",
        "0:v:0",
        "-c",
        "copy",
        "-f",
        "null",
        "-",
    ]
    try:
        done = subprocess.run(command, capture_output=True, check=False)
    except OSError:
        return _Scan(None, False, False, False)
    log = done.stderr
    header = log.split(b"\nStream mapping:", 1)[0]  # the input's streams, not the output's
    counts = re.findall(rb"frame=\s*(\d+)", log)
    count = int(counts[-1]) if done.returncode == 0 and counts else None
    # A GIF's duration is the sum of the delays of the frames present, and a duration
    # estimated from the bitrate is a guess: neither says how many frames there should be.
    container = re.search(rb"^Input #0, ([^,\s]+)", header, re.MULTILINE)
    stated = not (
        (container is not None and container.group(1) == b"gif")
        or b"Estimating duration from bitrate" in log
    )
    kinds = re.findall(rb"^\s*Stream #0:\d+\S*: (\w+):", header, re.MULTILINE)
    video_only = all(kind == b"Video" for kind in kinds)
    return _Scan(count, stated, _MISSING_DATA.search(log) is not None, video_only)


def _is_short(decoded: int, expected: int | None, scan: _Scan) -> bool:
    """Whether ``decoded`` frames are fewer than a file promising ``expected`` should
    give (see ``VideoReader.truncated``)."""
    if expected is None or decoded >= expected:
        return False
    if scan.data_missing:
        return True
    margin = max(_SHORT_BY_FRAMES, _SHORT_BY_FRACTION * expected)
    return scan.video_only and expected - decoded > margin


def _ffmpeg_reason(err: BaseException) -> str:
    """The line of ffmpeg's log (inside imageio-ffmpeg's message) that says what failed."""
    lines = [re.sub(r"^(\[[^\]]*\]\s*)+", "", line).strip() for line in str(err).splitlines()]
    if any("matches no streams" in line for line in lines):  # -map 0:v:0 found nothing
        return "it has no video stream"
    for line in lines:
        if line.startswith("Error opening input files:"):
            return line.split(":", 1)[1].strip().rstrip(".")
    for line in lines:
        if any(cause in line for cause in _FFMPEG_CAUSES):
            return line.rstrip(".")
    return "ffmpeg found no readable video stream in it"


# Phrases of ffmpeg's log that name why a file could not be read, most specific first.
_FFMPEG_CAUSES = (
    "moov atom not found",
    "partial file",
    "corrupt",
    "Invalid data found",
    "does not contain any stream",
    "Permission denied",
)


class VideoWriter:
    """Write (H, W, 3) uint8 RGB frames to a video file, encoding each as it arrives.

    >>> with VideoWriter("out.mp4", fps=25) as video:   # doctest: +SKIP
    ...     for frame in frames:
    ...         video.write(frame)

    The codec follows the suffix (see the module docstring); every frame must have
    the first frame's size. ``fps`` must be ``MIN_FPS`` to ``MAX_FPS`` (else
    ``FrameRateError``). ``quality`` is 1 (smallest file) to 10 (best; for H.264
    lossless in ``yuv420p``), mapped linearly onto the codec's constant rate factor
    as imageio does (``crf = round(max_crf · (1 − quality / 10))``); None gives
    CRF 18 (H.264) or 31 (VP9). GIFs ignore it.

    GIFs are for short clips: Pillow writes a GIF in one go, so the frames are kept
    (quantised to 1 byte per pixel) until ``close``. Frame delays are whole
    hundredths of a second, so ``fps`` is rounded to ``100 / round(100 / fps)``, and
    Pillow stores a frame identical to the one before it only once, with the two
    delays added: such a GIF reads back with fewer frames but the same timing.

    ``close`` renames the finished file over ``path`` (``frames`` says how many frames
    it holds); ``abort``, an error, or an exception inside the ``with`` block deletes
    the temporary file instead. Closing without having written a frame is a
    ``VideoError`` (a video of no frames is not a video) and leaves nothing behind.
    """

    def __init__(self, path: PathLike, fps: float, *, quality: int | None = None) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_SUFFIXES:
            raise VideoError(
                f"Cannot write {self.path}: a video's name must end in one of "
                f"{', '.join(VIDEO_SUFFIXES)}."
            )
        rate = check_fps(fps)
        if quality is not None and not 1 <= _number(quality) <= 10:
            raise VideoError(f"Cannot write {self.path}: quality must be 1 to 10, not {quality}.")
        self.fps = rate
        self.quality = quality
        self.frames = 0
        self._gif = suffix == ".gif"
        self._codec = "libvpx-vp9" if suffix == ".webm" else "libx264"
        self._size: tuple[int, int] | None = None  # (height, width) of the frames given
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._gif_frames: list[PILImage.Image] = []
        self._temp = self.path.with_name(f".{self.path.stem}.{secrets.token_hex(4)}.tmp{suffix}")
        self._done = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(f"Cannot write {self.path}: {err.strerror or err}.") from err

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        if self._done:
            raise ValueError(f"VideoWriter for {self.path} is closed")
        image = np.asarray(frame)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"VideoWriter takes (H, W, 3) uint8 RGB frames, got {image.dtype} {image.shape}"
            )
        size = (int(image.shape[0]), int(image.shape[1]))
        if self._size is None:
            self._size = size
        elif size != self._size:
            raise ValueError(
                f"every frame of {self.path} must be {self._size[1]}×{self._size[0]} "
                f"like the first, got {size[1]}×{size[0]}"
            )
        if self._gif:
            pil = PILImage.fromarray(np.ascontiguousarray(image))
            self._gif_frames.append(pil.quantize(256))
        else:
            self._write_ffmpeg(_pad_to_even(image))
        self.frames += 1

    def _write_ffmpeg(self, image: np.ndarray) -> None:
        if self._process is None:
            self._start(image.shape[1], image.shape[0])
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write(np.ascontiguousarray(image).data)
        except OSError as err:  # BrokenPipeError: ffmpeg quit
            reason = self._ffmpeg_log() or err.strerror or str(err)
            self.abort()
            raise VideoError(f"Cannot write {self.path}: ffmpeg stopped ({reason}).") from err

    def _start(self, width: int, height: int) -> None:
        """Launch ffmpeg reading raw RGB frames of ``width`` × ``height`` on stdin."""
        rate = Fraction(self.fps).limit_denominator(1_000_000)
        crf = _DEFAULT_CRF[self._codec]
        if self.quality is not None:
            crf = round(_MAX_CRF[self._codec] * (1 - self.quality / 10))
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{width}x{height}",
            "-r",
            str(rate),
            "-i",
            "-",
            "-an",
            "-c:v",
            self._codec,
            "-pix_fmt",
            "yuv420p",
            "-crf",
            str(crf),
        ]
        if self._codec == "libvpx-vp9":
            command += ["-b:v", "0"]  # constant quality: crf alone, no bitrate cap
        if self.path.suffix.lower() in (".mp4", ".m4v", ".mov"):
            command += ["-movflags", "+faststart"]
        command.append(str(self._temp))
        # ffmpeg's log goes to a file, not a pipe: a pipe nobody reads would fill up
        # and block ffmpeg if it ever wrote more than the pipe holds.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in _finish)
        try:
            self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=self._log)
        except OSError as err:
            self._log.close()
            self._log = None
            raise VideoError(f"Cannot write {self.path}: ffmpeg did not start ({err}).") from err

    def _ffmpeg_log(self) -> str:
        """The last line ffmpeg logged (errors only), or ''."""
        if self._log is None:
            return ""
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").strip().splitlines()
        return lines[-1].strip().rstrip(".") if lines else ""

    def close(self) -> None:
        """Finish the file and rename it over ``path``; a no-op once closed or aborted."""
        if self._done:
            return
        if self.frames == 0:
            self.abort()
            raise VideoError(f"Cannot write {self.path}: no frames were given.")
        if self._gif:
            self._close_gif()
            return
        process = self._process
        assert process is not None and process.stdin is not None
        with contextlib.suppress(OSError):  # ffmpeg already quit; its exit status says why
            process.stdin.close()
        code = process.wait()
        if code != 0:
            reason = self._ffmpeg_log() or f"exit status {code}"
            self.abort()
            raise VideoError(f"Cannot write {self.path}: ffmpeg failed ({reason}).")
        try:
            os.replace(self._temp, self.path)
        except OSError as err:
            self.abort()
            raise OutputError(f"Cannot write {self.path}: {err.strerror or err}.") from err
        self._finish()

    def _close_gif(self) -> None:
        first, *rest = self._gif_frames
        # GIF delays are in hundredths of a second (GIF89a spec, Graphic Control Extension).
        delay_ms = 10 * max(1, round(100 / self.fps))

        def save(file: BinaryIO) -> None:
            first.save(
                file, format="GIF", save_all=True, append_images=rest, duration=delay_ms, loop=0
            )

        try:
            atomic_write(self.path, save)
        finally:
            self._finish()

    def abort(self) -> None:
        """Stop without writing: ffmpeg is stopped and the temporary file deleted."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        if self._process is not None and self._process.stdin is not None:
            with contextlib.suppress(OSError):  # the pipe broke when ffmpeg was killed
                self._process.stdin.close()
        self._temp.unlink(missing_ok=True)
        self._finish()

    def _finish(self) -> None:
        self._done = True
        self._gif_frames = []
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _number(value: object) -> float:
    """``value`` as a float (numpy scalars too); NaN when it is not a number."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _pad_to_even(image: np.ndarray) -> np.ndarray:
    """Repeat the last row and/or column of an odd-sized frame (``yuv420p`` needs even)."""
    pad_h, pad_w = image.shape[0] % 2, image.shape[1] % 2
    if not (pad_h or pad_w):
        return image
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def write_video(path: PathLike, frames: Iterable[np.ndarray], fps: float) -> int:
    """Write (H, W, 3) uint8 RGB ``frames`` to ``path`` (see ``VideoWriter``); the
    number of frames written."""
    with VideoWriter(path, fps) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.frames
