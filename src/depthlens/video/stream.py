"""Depth for every frame of a video, streamed: read a batch, predict, stabilise, write.

``predict_video`` never holds more than one batch of frames (and, for NPZ output, one
chunk of depth maps), whatever the video's length. ``map_video`` is the same stream
for any frame → frame function (stereo or parallax renderings of a video).

A video cut short (``VideoReader.truncated``) is not an error here: the frames it has
are processed and written, and what is returned (and the depth sidecar) says
``truncated`` with the frames expected, so the caller can warn or fail.
"""

from __future__ import annotations

import itertools
import math
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

import numpy as np

from depthlens.errors import OutputError, UsageError
from depthlens.geometry.camera import Camera
from depthlens.io.depth_files import (
    DEPTH_UNITS,
    atomic_write,
    encode_png,
    write_bytes,
    write_sidecar,
)
from depthlens.io.images import Image
from depthlens.io.video import (
    MAX_FPS,
    MIN_FPS,
    VideoError,
    VideoReader,
    VideoWriter,
    check_fps,
)
from depthlens.models.spec import DepthKind
from depthlens.video.stabilize import DEFAULT_MOTION_THRESHOLD, DepthStabilizer
from depthlens.viz.colormaps import COLORMAPS, colorize

__all__ = [
    "DEFAULT_FPS",
    "DepthPredictor",
    "MappedVideo",
    "VideoDepthOutputs",
    "map_video",
    "map_video_batches",
    "predict_video",
]

Progress = Callable[[int, int | None], None]
# How a model that sees time runs over a video, and the family function for each mode.
VideoMode = Literal["windowed", "streaming"]
_CLIP_RUNNERS = {"windowed": "iter_video_depth", "streaming": "iter_video_depth_streaming"}
ClipPredictor = Callable[[Iterator[np.ndarray]], Iterator[np.ndarray]]
# The frames' camera: one Camera, or a function of the frame size (width, height) giving
# it, as the CLI's --fx/--fov flags do (their principal point is the frame's centre).
CameraSpec = Camera | Callable[[int, int], Camera]

# The frame rate written when a video states none (and none can be derived).
DEFAULT_FPS = 30.0

PNG16_MAX = 65535

# The colour range of the depth video: the 2nd and 98th percentiles (as the MiDaS
# and Depth Anything demos clip) of the first batch, then moved 2 % of the way
# towards each new frame's percentiles: a time constant of 50 frames (2 s at 25 fps),
# slow enough that the colours of a still scene hold, fast enough to follow a pan.
_COLOUR_PERCENTILES = (2.0, 98.0)
_COLOUR_RATE = 0.02
# Percentiles are taken on an even grid of at most this many pixels per frame.
_COLOUR_SAMPLES = 16_384

# The 16-bit PNG steps metric depth may be stored in (meters per unit): the first that
# keeps twice the first batch's farthest depth within 65535 units. 1 mm covers 65 m.
_METRIC_STEPS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


class _HasDepth(Protocol):
    @property
    def depth(self) -> np.ndarray: ...


class DepthPredictor(Protocol):
    """What ``predict_video`` needs of a model: an ``Estimator`` or a stand-in."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> DepthKind: ...

    def predict_images(self, images: Sequence[Image], batch_size: int = ...) -> Sequence[_HasDepth]:
        """(H, W) float32 depth per image, in order (see ``Estimator.predict_images``)."""
        ...


@dataclass(frozen=True)
class VideoDepthOutputs:
    """What ``predict_video`` wrote.

    ``colour``: the colourised depth video; ``lossless``: the folder of 16-bit PNG
    frames, or the first NPZ chunk (the sidecar lists them all), or None;
    ``sidecar``: the JSON that says how to read them; ``frames``: frames processed;
    ``fps``: the frame rate written; ``seconds``: wall time of the whole call.
    ``truncated``: the video ended before its header said it would
    (``VideoReader.truncated``), so ``frames`` is less than ``expected_frames``, the
    count its header promised (None when the header does not say).
    """

    colour: Path
    lossless: Path | None
    sidecar: Path
    frames: int
    fps: float
    seconds: float
    truncated: bool
    expected_frames: int | None


@dataclass(frozen=True)
class MappedVideo:
    """What ``map_video`` and ``map_video_batches`` wrote: ``frames`` frames to ``path``
    at ``fps`` frames per second. ``truncated`` and ``expected_frames`` as in
    ``VideoDepthOutputs``: the input ended early, after ``frames`` of the
    ``expected_frames`` its header promised."""

    path: Path
    frames: int
    fps: float
    truncated: bool
    expected_frames: int | None


def predict_video(
    estimator: DepthPredictor,
    video: str | Path,
    out_dir: str | Path,
    *,
    stabilize: bool = True,
    smoothing: float = 0.0,
    lossless: Literal["png16", "npz", "none"] = "png16",
    chunk_frames: int = 100,
    colormap: str = "inferno",
    batch_size: int = 4,
    camera: CameraSpec | None = None,
    on_progress: Progress | None = None,
    video_mode: VideoMode = "windowed",
) -> VideoDepthOutputs:
    """Predict the depth of every frame of ``video`` and write it to ``out_dir``.

    Frames are read ``batch_size`` at a time, predicted together with
    ``estimator.predict_images``, stabilised (``DepthStabilizer(kind, smoothing)``,
    unless ``stabilize`` is False) and written before the next batch is read. With
    ``NAME`` the video's file stem, ``out_dir`` receives:

    - ``NAME-depth.mp4``: the depth as an H.264 colour video (``colormap``, nearer =
      brighter for both kinds, odd sizes padded as ``VideoWriter`` says), at the
      input's frame rate (``DEFAULT_FPS`` if it states none). Its colour range must
      not flicker itself, so it is not per frame: it starts at the 2nd-98th
      percentiles of the first batch's depth (meters for metric, disparity for
      relative) and then moves 2 % of the way to each new frame's percentiles.
    - ``lossless="png16"``: ``NAME-depth/000000.png``, … one 16-bit grey PNG per frame,
      all on one fixed scale so the frames compare: ``depth = offset + scale · value``
      for ``value`` ≥ 1, and 0 where the depth is not finite. Metric depth: ``offset``
      0 and ``scale`` the first of 1, 2, 5 mm, 1, 2, 5 cm, … that holds twice the
      first batch's farthest depth (indoors: millimetres). Relative: the first batch's
      value range ``[lo, hi]`` widened by its width on both sides, ``[lo − w, hi + w]``,
      spread over 1..65535 (error at most ``scale / 2``, 2.3e-5 of ``w``). Values off
      the scale are clipped to it and counted (``clipped_pixels`` in the sidecar).
    - ``lossless="npz"``: ``NAME-depth-chunk0000.npz``, … each with ``depth``,
      ``(n, H, W)`` float32 exactly as predicted (and stabilised), and ``frame_index``,
      ``(n,)`` int64, for up to ``chunk_frames`` frames. One chunk is held in memory:
      ``chunk_frames · H · W · 4`` bytes (100 full-HD frames: 830 MB).
    - ``NAME-depth.json``: the sidecar (model, kind, units, size, fps, frame count,
      how to decode the lossless files, the colour range, the stabilisation used,
      and ``truncated``: true when the video ended before its header said, with
      ``expected_frames`` and ``decoded_frames`` then).

    A truncated video (``VideoReader.truncated``) is not an error: the frames it has
    are written, and ``truncated`` in the result and the sidecar says it.

    A video that cannot be read raises ``VideoError`` before anything is written.
    Lossless files are written into a hidden folder in ``out_dir`` and moved into
    place at the end (an earlier ``NAME-depth/`` is replaced); if anything fails
    midway, that folder and the unfinished colour video are deleted. Stale NPZ chunks
    of an earlier, longer run are removed. ``camera`` (the frames' intrinsics) is what
    a metric model scales by (a Camera, or a function of the frame size giving one);
    without it each frame gets ``Camera.default``.
    ``on_progress(frames_done, total)`` is
    called after each batch; ``total`` is None when the file does not say.

    A model that sees time (Video Depth Anything) predicts the video itself, and no
    stabiliser runs: ``video_mode="windowed"`` is its official windowed inference
    (best consistency, depth comes out a window behind), ``"streaming"`` its
    streaming mode (each frame's depth from that frame and cached past frames). Any
    other model predicts frame by frame and takes ``"windowed"`` only (UsageError).
    """
    started = time.perf_counter()
    _check_options(lossless, colormap, chunk_frames, batch_size)
    clip = clip_predictor(estimator, video_mode)
    if clip is None and video_mode != "windowed":
        raise UsageError(
            f"Video mode '{video_mode}' is for models that see time "
            f"(video-depth-anything-*); {estimator.name} predicts each frame on its own."
        )
    # A model that sees time (its own windows over the clip) needs no stabiliser.
    stabilizer = DepthStabilizer(estimator.kind, smoothing) if stabilize and clip is None else None
    source = Path(video)
    with VideoReader(source) as reader:
        info = reader.info
        if info.frame_count == 0:
            raise VideoError(f"{source} holds no video frames.")
        fps = _output_rate(info.fps)
        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(f"Cannot write to {out}: {err.strerror or err}.") from err
        name = f"{source.stem}-depth"
        staging = out / f".{name}.{secrets.token_hex(4)}.tmp"
        sink = _LosslessSink(lossless, estimator.kind, staging, name, chunk_frames)
        try:
            with VideoWriter(out / f"{name}.mp4", fps) as colour:
                frames, colour_range = _stream(
                    estimator,
                    clip,
                    reader,
                    source,
                    stabilizer,
                    sink,
                    colour,
                    colormap,
                    batch_size,
                    on_progress,
                    camera,
                )
            lossless_path, lossless_info = sink.finish(out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        truncated = reader.truncated
    # A short video says how short, so a reader of the sidecar need not open it again.
    shortfall = {"expected_frames": info.expected_frames, "decoded_frames": frames}

    info_json: dict[str, object] = {
        "source": str(source),
        "model": estimator.name,
        "kind": estimator.kind,
        "units": DEPTH_UNITS[estimator.kind],
        "width": info.width,
        "height": info.height,
        "fps": fps,
        "frame_count": frames,
        "truncated": truncated,
        **(shortfall if truncated else {}),
        "colour_video": {
            "file": f"{name}.mp4",
            "colormap": colormap,
            "nearer": "brighter",
            "range": "2nd-98th percentiles of the first batch, then moved 2 % of the way "
            "to each frame's percentiles",
            "first_range": list(colour_range),
            "padded_to_even": bool(info.width % 2 or info.height % 2),
        },
        "lossless": lossless_info,
        "camera": (
            camera_for(camera, info.width, info.height).as_dict() if camera is not None else None
        ),
        "stabilization": {
            "enabled": stabilizer is not None,
            "smoothing": smoothing if stabilizer is not None else None,
            "motion_threshold": DEFAULT_MOTION_THRESHOLD if stabilizer is not None else None,
            "method": (
                "scale and shift (relative) or scale (metric) per frame, fitted to the "
                "previous stabilised frame on pixels whose colour did not change"
            ),
        },
    }
    sidecar = out / f"{name}.json"
    info_json["seconds"] = round(time.perf_counter() - started, 3)
    write_sidecar(sidecar, info_json)
    return VideoDepthOutputs(
        colour=out / f"{name}.mp4",
        lossless=lossless_path,
        sidecar=sidecar,
        frames=frames,
        fps=fps,
        seconds=time.perf_counter() - started,
        truncated=truncated,
        expected_frames=info.expected_frames,
    )


def _output_rate(fps: float) -> float:
    """The frame rate to write a video read at ``fps`` with: its own, brought within
    ``MIN_FPS`` to ``MAX_FPS`` (a header may state anything), or ``DEFAULT_FPS`` when
    it states none."""
    if not (math.isfinite(fps) and fps > 0):
        return DEFAULT_FPS
    return min(max(fps, MIN_FPS), MAX_FPS)


def _check_options(lossless: str, colormap: str, chunk_frames: int, batch_size: int) -> None:
    if lossless not in ("png16", "npz", "none"):
        raise UsageError(f"Unknown lossless format '{lossless}': use png16, npz or none.")
    if colormap not in COLORMAPS:
        raise UsageError(f"Unknown colormap '{colormap}': use one of {', '.join(COLORMAPS)}.")
    if chunk_frames < 1:
        raise UsageError(f"chunk_frames must be at least 1, not {chunk_frames}.")
    if batch_size < 1:
        raise UsageError(f"The batch size must be at least 1, not {batch_size}.")


def _stream(
    estimator: DepthPredictor,
    clip: ClipPredictor | None,
    reader: VideoReader,
    source: Path,
    stabilizer: DepthStabilizer | None,
    sink: _LosslessSink,
    colour: VideoWriter,
    colormap: str,
    batch_size: int,
    on_progress: Progress | None,
    camera: CameraSpec | None = None,
) -> tuple[int, tuple[float, float]]:
    """Run the batches; the frames done and the first colour range ``(near, far)``."""
    kind = estimator.kind
    done = 0
    colour_range: _ColourRange | None = None
    first_range = (0.0, 0.0)
    if on_progress is not None:  # the total from the header, before the first batch
        on_progress(0, reader.info.frame_count)
    batches = _depth_batches(estimator, clip, reader, source, stabilizer, batch_size, camera)
    for depths in batches:
        if colour_range is None:
            colour_range = _ColourRange(kind, depths)
            first_range = (colour_range.low, colour_range.high)
            sink.start(depths)
        for depth in depths:
            colour.write(colour_range.colorize(depth, colormap))
            sink.add(depth, done)
            done += 1
        if on_progress is not None:
            on_progress(done, reader.info.frame_count)
    if done == 0:
        raise VideoError(f"{source} holds no video frames.")
    return done, first_range


def _depth_batches(
    estimator: DepthPredictor,
    clip: ClipPredictor | None,
    reader: VideoReader,
    source: Path,
    stabilizer: DepthStabilizer | None,
    batch_size: int,
    camera: CameraSpec | None,
) -> Iterator[list[np.ndarray]]:
    """The video's depth, ``batch_size`` frames at a time: from the family's own clip
    inference ``clip`` when it has one (``clip_predictor``), else frame by frame
    (``predict_frames``)."""
    if clip is not None:
        yield from _batches(clip(iter(reader)), batch_size)
        return
    done = 0
    for batch in _batches(iter(reader), batch_size):
        yield predict_frames(estimator, batch, done, source, stabilizer, camera)
        done += len(batch)


def clip_predictor(
    estimator: DepthPredictor, video_mode: VideoMode = "windowed"
) -> ClipPredictor | None:
    """A family that sees time predicts a whole video itself: its module's
    ``iter_video_depth(network, frames)`` (windows over the clip) or, for
    ``video_mode="streaming"``, ``iter_video_depth_streaming`` (one frame at a time),
    both in bounded memory; None for per-frame families.

    The windows run on the estimator's backend: the torch network, or the ONNX Runtime
    or OpenVINO runner of its clip export. The streaming mode feeds each frame's cached
    states back into the torch network, which no export takes: on another backend it
    is a UsageError.
    """
    if video_mode not in _CLIP_RUNNERS:
        raise UsageError(f"Unknown video mode '{video_mode}': use windowed or streaming.")
    spec = getattr(estimator, "spec", None)
    network = getattr(estimator, "network", None)
    if spec is None or network is None:
        return None
    from depthlens.models.weights import family_module

    run = getattr(family_module(spec.family), _CLIP_RUNNERS[video_mode], None)
    if run is None:
        return None
    runner = getattr(estimator, "runner", None)
    backend = getattr(runner, "backend", "torch")
    if backend == "torch":
        return lambda frames: run(network, frames)
    if video_mode == "streaming":
        raise UsageError(
            f"The streaming mode runs on the torch backend only: it feeds cached states of "
            f"past frames back into {spec.name}'s network, which the {backend} export does "
            "not take; use --backend torch or --video-mode windowed."
        )
    metric = spec.kind == "metric"
    return lambda frames: run(runner, frames, metric=metric)


def predict_frames(
    estimator: DepthPredictor,
    frames: Sequence[np.ndarray],
    first_index: int,
    source: str | Path,
    stabilizer: DepthStabilizer | None = None,
    camera: CameraSpec | None = None,
) -> list[np.ndarray]:
    """The (H, W) float32 depth of consecutive frames ``first_index``, … of ``source``
    in one ``predict_images`` call, each stabilised after the one before it when a
    ``stabilizer`` is given (feed it every frame of the video, in order)."""
    images = []
    for i, frame in enumerate(frames):
        height, width = frame.shape[:2]
        frame_camera = camera_for(camera, width, height) if camera is not None else None
        images.append(
            Image(rgb=frame, camera=frame_camera, source=f"{source}#frame{first_index + i}")
        )
    results = estimator.predict_images(images, max(1, len(images)))
    depths = [np.asarray(result.depth, dtype=np.float32) for result in results]
    if stabilizer is not None:
        depths = [stabilizer(depth, frame) for depth, frame in zip(depths, frames, strict=True)]
    return depths


def camera_for(camera: CameraSpec, width: int, height: int) -> Camera:
    """The Camera of frames of this size (``camera`` itself when it is one)."""
    return camera if isinstance(camera, Camera) else camera(width, height)


def _batches(items: Iterator[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    while batch := list(itertools.islice(items, size)):
        yield batch


def _sample(depth: np.ndarray) -> np.ndarray:
    """The finite values on an even grid of at most ``_COLOUR_SAMPLES`` pixels."""
    step = max(1, int(np.sqrt(depth.size / _COLOUR_SAMPLES)))
    values = depth[::step, ::step]
    return values[np.isfinite(values)]


class _ColourRange:
    """The slowly moving value range that ``colorize`` maps onto the colour table."""

    def __init__(self, kind: DepthKind, first: Sequence[np.ndarray]) -> None:
        self.kind = kind
        values = np.concatenate([_sample(depth) for depth in first])
        self.low, self.high = self._percentiles(values) if values.size else (0.0, 1.0)
        self._first = len(first)

    @staticmethod
    def _percentiles(values: np.ndarray) -> tuple[float, float]:
        low, high = (float(v) for v in np.percentile(values, _COLOUR_PERCENTILES))
        return low, high

    def colorize(self, depth: np.ndarray, colormap: str) -> np.ndarray:
        """(H, W, 3) uint8; updates the range first, except on the first batch's frames."""
        if self._first > 0:
            self._first -= 1
        else:
            values = _sample(depth)
            if values.size:
                low, high = self._percentiles(values)
                self.low += _COLOUR_RATE * (low - self.low)
                self.high += _COLOUR_RATE * (high - self.high)
        if self.kind == "metric":  # nearer = brighter: reversed map, near at the top
            return colorize(depth, colormap, vmin=self.high, vmax=self.low)
        return colorize(depth, colormap, vmin=self.low, vmax=self.high)


class _LosslessSink:
    """Writes the lossless depth of each frame into the staging folder."""

    def __init__(
        self, fmt: str, kind: DepthKind, staging: Path, name: str, chunk_frames: int
    ) -> None:
        self.fmt, self.kind, self.staging, self.name = fmt, kind, staging, name
        self.chunk_frames = chunk_frames
        self.offset = 0.0
        self.scale = 1.0
        self.clipped = 0
        self._chunk: np.ndarray | None = None
        self._chunk_used = 0
        self._chunk_start = 0
        self._chunks: list[str] = []

    def start(self, first: Sequence[np.ndarray]) -> None:
        """Fix the PNG scale from the first batch; create the staging folder."""
        if self.fmt == "none":
            return
        try:
            self.staging.mkdir()
        except OSError as err:
            raise OutputError(f"Cannot write to {self.staging.parent}: {err.strerror}.") from err
        if self.fmt != "png16":
            return
        values = np.concatenate([depth[np.isfinite(depth)].ravel() for depth in first])
        if self.kind == "metric":
            farthest = float(values.max()) if values.size else 0.0
            fitting = [s for s in _METRIC_STEPS if s * PNG16_MAX >= 2 * farthest]
            self.offset, self.scale = (
                0.0,
                fitting[0] if fitting else float(2 * farthest / PNG16_MAX),
            )
            return
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
        width = high - low if high > low else max(abs(high), 1e-6)
        self.scale = 3 * width / (PNG16_MAX - 1)
        self.offset = low - width - self.scale  # low - width is value 1, the first valid one

    def add(self, depth: np.ndarray, index: int) -> None:
        if self.fmt == "png16":
            write_bytes(self.staging / f"{index:06d}.png", self._encode_png(depth))
        elif self.fmt == "npz":
            if self._chunk is None:
                self._chunk = np.empty((self.chunk_frames, *depth.shape), np.float32)
                self._chunk_start = index
            self._chunk[self._chunk_used] = depth
            self._chunk_used += 1
            if self._chunk_used == self.chunk_frames:
                self._flush()

    def _encode_png(self, depth: np.ndarray) -> bytes:
        finite = np.isfinite(depth)
        with np.errstate(invalid="ignore"):
            units = np.rint((depth.astype(np.float64) - self.offset) / self.scale)
        off_scale = finite & ((units < 1) | (units > PNG16_MAX))
        self.clipped += int(off_scale.sum())
        values = np.where(finite, np.clip(np.nan_to_num(units), 1, PNG16_MAX), 0)
        return encode_png(values.astype(np.uint16))

    def _flush(self) -> None:
        """Write the chunk held so far as the next NPZ file and start a new one."""
        if self._chunk is None or self._chunk_used == 0:
            return
        depth = self._chunk[: self._chunk_used]
        index = np.arange(self._chunk_start, self._chunk_start + self._chunk_used, dtype=np.int64)
        name = f"{self.name}-chunk{len(self._chunks):04d}.npz"

        def save(file: BinaryIO) -> None:
            np.savez(file, depth=depth, frame_index=index)

        atomic_write(self.staging / name, save)
        self._chunks.append(name)
        self._chunk_start += self._chunk_used
        self._chunk_used = 0

    def finish(self, out: Path) -> tuple[Path | None, dict[str, object] | None]:
        """Move the files into ``out``; the path to report and the sidecar's entry."""
        if self.fmt == "none":
            return None, None
        try:
            if self.fmt == "png16":
                return self._finish_png(out)
            return self._finish_npz(out)
        except OSError as err:
            raise OutputError(f"Cannot write to {out}: {err.strerror or err}.") from err

    def _finish_png(self, out: Path) -> tuple[Path, dict[str, object]]:
        target = out / self.name
        if target.exists():
            old = out / f".{self.name}.{secrets.token_hex(4)}.old"
            os.replace(target, old)
            os.replace(self.staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.staging, target)
        return target, {
            "format": "png16",
            "folder": self.name,
            "files": "%06d.png, one per frame, numbered from 0",
            "decode": "depth = offset + scale * value where value >= 1; value 0: no depth",
            "offset": self.offset,
            "scale": self.scale,
            "clipped_pixels": self.clipped,
        }

    def _finish_npz(self, out: Path) -> tuple[Path, dict[str, object]]:
        self._flush()
        for name in self._chunks:
            os.replace(self.staging / name, out / name)
        for stale in out.glob(f"{self.name}-chunk*.npz"):
            if stale.name not in self._chunks and stale.stem[-4:].isdigit():
                stale.unlink()
        return out / self._chunks[0], {
            "format": "npz",
            "files": self._chunks,
            "chunk_frames": self.chunk_frames,
            "decode": "depth: (n, H, W) float32 as predicted; frame_index: (n,) int64",
        }


def map_video(
    video: str | Path,
    out_path: str | Path,
    per_frame: Callable[[np.ndarray, int], np.ndarray],
    *,
    fps: float | None = None,
    on_progress: Progress | None = None,
) -> MappedVideo:
    """Write ``per_frame(frame, index)`` of every frame of ``video`` to ``out_path``.

    Frames stream through one at a time: ``per_frame`` gets an (H, W, 3) uint8 RGB
    frame and its index from 0, and returns an (H', W', 3) uint8 RGB frame (any size,
    the same for all frames). Otherwise as :func:`map_video_batches`, whose
    ``on_progress`` is then called after each frame.
    """

    def per_batch(frames: list[np.ndarray], first_index: int) -> list[np.ndarray]:
        return [per_frame(frame, first_index + i) for i, frame in enumerate(frames)]

    return map_video_batches(video, out_path, per_batch, fps=fps, on_progress=on_progress)


def map_video_batches(
    video: str | Path,
    out_path: str | Path,
    per_batch: Callable[[list[np.ndarray], int], Sequence[np.ndarray]],
    *,
    batch_size: int = 1,
    fps: float | None = None,
    on_progress: Progress | None = None,
) -> MappedVideo:
    """Write ``per_batch(frames, first_index)`` of every run of ``batch_size`` frames
    of ``video`` to ``out_path`` (one output frame per input frame, in order), so a
    model can take several frames per forward pass.

    The video is written at ``fps`` (``MIN_FPS`` to ``MAX_FPS``, else
    ``FrameRateError`` before anything is read), by default the input's rate (brought
    within that range; ``DEFAULT_FPS`` if it states none), in the format
    ``out_path``'s suffix asks for (see ``VideoWriter``). A bad input raises
    ``VideoError`` before anything is written, and any failure midway (in
    ``per_batch`` too) leaves no file at ``out_path``. An input cut short is not a
    failure: its frames are written and the result says ``truncated``.
    ``on_progress(frames_done, total)`` is called after each batch.
    """
    if batch_size < 1:
        raise UsageError(f"The batch size must be at least 1, not {batch_size}.")
    chosen = check_fps(fps) if fps is not None else None
    source = Path(video)
    done = 0
    with VideoReader(source) as reader:
        rate = chosen if chosen is not None else _output_rate(reader.info.fps)
        with VideoWriter(out_path, rate) as writer:
            if on_progress is not None:  # the total from the header, before the first batch
                on_progress(0, reader.info.frame_count)
            for batch in _batches(iter(reader), batch_size):
                for frame in per_batch(batch, done):
                    writer.write(frame)
                done += len(batch)
                if on_progress is not None:
                    on_progress(done, reader.info.frame_count)
            if writer.frames == 0:
                raise VideoError(f"{source} holds no video frames.")
        return MappedVideo(
            path=Path(out_path),
            frames=writer.frames,
            fps=rate,
            truncated=reader.truncated,
            expected_frames=reader.info.expected_frames,
        )
