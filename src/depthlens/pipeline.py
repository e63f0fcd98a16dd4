"""Files in, outputs out: ``predict_files``, the one path from images, folders, globs
and videos on disk to depth files written under an output folder.

The CLI's ``depthlens predict``, and every batch engine after it, call it and report
what it returns; none has a loop over files of its own. It finds the inputs (files,
folders, globs, http(s) URLs and ``-`` for standard input), loads the model, reads and
predicts images in batches (``Estimator.predict_images``), writes each image's files
atomically (``io.depth_files``), its point cloud or mesh (``geometry.pointcloud``) and
its sidecar JSON, and streams videos through ``video.stream.predict_video``. One
input's failure (a missing or corrupt file, an unreachable URL, a camera that does not
fit it, the network running out of memory, a write error) is that input's
``InputResult.error``, one sentence, and the run goes on; only mistakes in the
arguments themselves (``UsageError``, ``WeightsError``) stop it, before any work.

>>> report = predict_files(["photos/"], "out/", formats=("color", "npy"))  # doctest: +SKIP
>>> report.done, report.failed                                            # doctest: +SKIP
(23, 1)
"""

from __future__ import annotations

import math
import os
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Literal, Protocol

from depthlens.errors import DepthlensError, ImageError, OutputError, UsageError
from depthlens.geometry.camera import Camera
from depthlens.io.depth_files import depth_sidecar, write_sidecar
from depthlens.io.images import DEFAULT_MAX_PIXELS, Image, load_image
from depthlens.io.inputs import find_images
from depthlens.io.outputs import (
    CAMERA_FRAME,
    OUTPUT_FORMATS,
    SUFFIXES,
    align_to_points,
    output_stems,
    parse_formats,
    write_geometry,
    write_outputs,
)
from depthlens.io.remote import STDIN, is_url, read_stdin, url_file_name
from depthlens.models.estimator import DepthResult, Estimator
from depthlens.models.weights import weights_sha256
from depthlens.viz.colormaps import COLORMAPS

if TYPE_CHECKING:
    from depthlens.video.stream import VideoDepthOutputs

__all__ = [
    "CAMERA_FRAME",
    "OUTPUT_FORMATS",
    "SUFFIXES",
    "DepthFiles",
    "InputResult",
    "PredictReport",
    "Sink",
    "VideoOptions",
    "failure_reason",
    "is_video_input",
    "output_stems",
    "parse_formats",
    "predict_files",
]

PathLike = str | os.PathLike[str]
CameraFactory = Callable[[int, int], Camera]
# Where one image comes from: a file, or (a str) a URL or "-" for standard input, kept
# as the user wrote it (Path("https://host/a.jpg") would fold the "//").
Source = Path | str

LOSSLESS = ("png16", "npz", "none")


@dataclass(frozen=True)
class VideoOptions:
    """How videos among the inputs are predicted (``video.stream.predict_video``):
    ``stabilize`` the model's frame-to-frame scale jitter, average static pixels over
    time by ``smoothing`` (0: off), write lossless depth as ``png16`` frames, ``npz``
    chunks or ``none``."""

    stabilize: bool = True
    smoothing: float = 0.0
    lossless: Literal["png16", "npz", "none"] = "png16"


@dataclass(frozen=True)
class InputResult:
    """What became of one input: the ``written`` files, or the one-sentence ``error``.

    ``notes`` are lines worth showing (an alignment's residuals). Videos also say how
    many ``frames`` were decoded and whether the file was ``truncated`` (it ended
    before its header said; the outputs hold the frames that were there).
    """

    input: str
    written: tuple[Path, ...] = ()
    error: str | None = None
    notes: tuple[str, ...] = ()
    frames: int | None = None
    expected_frames: int | None = None
    truncated: bool = False
    skipped: bool = False  # its outputs were there from an earlier run
    seconds: float = 0.0
    trace: str | None = None  # the traceback of an unexpected failure (a bug), for -v

    @classmethod
    def failed(cls, input: str, exc: BaseException) -> InputResult:
        """The result of an input that raised ``exc``: its one-sentence reason, and the
        traceback when it was not a failure depthlens foresaw."""
        foreseen = isinstance(exc, DepthlensError | OSError)
        trace = None if foreseen else "".join(traceback.format_exception(exc)).rstrip()
        return cls(input, error=failure_reason(exc), trace=trace)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class PredictReport:
    """What ``predict_files`` did: one ``InputResult`` per input, in input order (videos
    last), the model and weights used and the wall time."""

    model: str
    weights: str
    output_dir: Path
    results: list[InputResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def done(self) -> int:
        return sum(result.ok for result in self.results)

    @property
    def failed(self) -> int:
        return len(self.results) - self.done

    @property
    def truncated(self) -> int:
        return sum(result.truncated for result in self.results)

    @property
    def skipped(self) -> int:
        return sum(result.skipped for result in self.results)

    @property
    def failures(self) -> list[tuple[str, str]]:
        return [(r.input, r.error) for r in self.results if r.error is not None]


class Sink(Protocol):
    """Where ``predict_files`` puts each image's depth: files beside a stem (the default,
    ``DepthFiles``), or another layout (``train.pseudo_label.PseudoLabelFolder``).

    ``plan`` gets the images found, as ``(source, path relative to its input folder)``,
    and returns those to predict with the key ``write`` will get (an output stem, a
    sample name), and those to skip (done by an earlier run); it raises ``UsageError``
    or ``OutputError`` for a layout that cannot work, before any prediction. ``write``
    writes one image's outputs and returns their paths; ``flush`` runs after each batch.
    ``takes_videos``: whether named video files are streamed (else read as images).

    A source is a ``Source``: a ``Path``, or the ``str`` of a URL or ``-`` (its
    relative path is then the URL's file name, ``url-N`` or ``stdin``); a sink uses
    ``str(source)`` to name it. (The methods take ``Any`` so that sinks annotated for
    paths alone still fit.)
    """

    @property
    def takes_videos(self) -> bool: ...

    def plan(
        self, found: list[tuple[Any, PurePath]], root: Path
    ) -> tuple[list[tuple[Any, Any]], list[Any]]: ...

    def write(self, path: Any, key: Any, image: Image, result: DepthResult) -> InputResult: ...

    def flush(self) -> None: ...


def predict_files(
    inputs: Sequence[PathLike] | PathLike,
    output_dir: PathLike,
    *,
    model: str | Path | Estimator | None = None,
    weights: PathLike | None = None,
    device: str = "auto",
    backend: str = "torch",
    precision: str = "fp32",
    formats: Sequence[str] = ("color", "png16"),
    colormap: str = "inferno",
    side_by_side: bool = False,
    recursive: bool = False,
    batch_size: int = 4,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    camera: CameraFactory | None = None,
    max_depth: float | None = None,
    normals: bool = False,
    mesh_format: str = "ply",
    align_to: PathLike | None = None,
    video: VideoOptions | None = None,
    sink: Sink | None = None,
    on_result: Callable[[InputResult], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_video_progress: Callable[[Path, int, int | None], None] | None = None,
) -> PredictReport:
    """Predict the depth of image and video files and write it under ``output_dir``.

    ``inputs`` are files, folders (their images; below them too when ``recursive``),
    glob patterns, video files (``.mp4``, ``.mov``, ``.mkv``, ``.avi``, ``.webm``;
    a ``.gif`` is read as a photo), ``http(s)://`` URLs of images (``str``s; fetched
    by ``io.remote.fetch_url``, named after the URL's last path segment, else
    ``url-N``) and ``"-"``: one image read from standard input, named ``stdin``. Each
    image ``a/photo.jpg`` found under a named folder gets ``output_dir/a/photo`` +
    ``SUFFIXES[fmt]`` for each of ``formats`` (``OUTPUT_FORMATS``), a ``-side.png``
    panel with ``side_by_side``, and ``photo-depth.json``: the sidecar (model, kind,
    units, size, camera and where it came from, the files written). ``ply``/``mesh``
    back-project through the camera: ``camera(width, height)`` (from the user), else
    the image's EXIF one, else the default; points beyond ``max_depth`` are dropped.
    ``align_to`` (one image only) fits the depth to the metric points of a CSV/NPY file
    (``geometry.metric_points``) and turns it into meters. Videos are streamed as
    ``VideoOptions`` says.

    ``sink`` replaces those depth files by another layout (see ``Sink``); the format,
    colormap, geometry and alignment options are then unused.

    ``model`` is a zoo name, a path to weights, or a loaded ``Estimator``; None is the
    default model (``depthlens.load_model``). Images are
    predicted ``batch_size`` at a time; a batch that fails is retried one image at a
    time. ``on_result`` gets each input's ``InputResult`` as it is decided,
    ``on_progress(done, total)`` counts images (from before the first),
    ``on_video_progress(path, frames, total)`` a video's frames (``(path, 0, None)`` as
    it starts; ``total`` is None while unknown). Raises ``UsageError`` (bad formats,
    colormap, options, or nothing found at all) or ``WeightsError`` before any output
    is written.
    """
    chosen = parse_formats(formats)
    mesh_format = mesh_format.strip().lower().lstrip(".")
    _check_options(chosen, colormap, mesh_format, video or VideoOptions(), max_depth)
    if sink is None:
        aligned = Path(align_to) if align_to is not None else None
        sink = DepthFiles(chosen, colormap, side_by_side, max_depth, normals, mesh_format, aligned)
    listed = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    videos = [
        Path(p)
        for p in listed
        if sink.takes_videos and not _is_remote(p) and is_video_input(Path(p))
    ]
    patterns = [str(p) for p in listed if _is_remote(p) or Path(p) not in videos]
    root = Path(output_dir).resolve()
    if root.exists() and not root.is_dir():
        raise OutputError(f"{output_dir} is a file; the outputs need a folder (-o FOLDER).")
    started = time.perf_counter()
    report = PredictReport(model="", weights="", output_dir=root)

    def finish(result: InputResult) -> None:
        report.results.append(result)
        if on_result is not None:
            on_result(result)

    found, not_found, order = _find(patterns, recursive)
    items, skipped = sink.plan(found, root)
    if not found and not videos and not not_found:
        raise UsageError(f"No images found in {', '.join(patterns)}.")
    if align_to is not None and len(items) + len(not_found) + len(videos) > 1:
        raise UsageError("--align-to holds the points of one image, so give one input image.")
    for result in not_found:
        finish(result)
    for path in skipped:
        finish(InputResult(str(path), skipped=True))
    if not items and not videos:
        report.seconds = time.perf_counter() - started
        return report

    estimator = _estimator(model, weights, device, backend, precision)
    report.model, report.weights = estimator.name, estimator.weights
    done = len(skipped)
    total = len(items) + len(skipped)
    if items:  # the count, and the clock of the rate, start before the first batch
        _report_progress(on_progress, done, total)
    for batch in _chunks(items, max(1, batch_size)):
        loaded: list[tuple[Source, Any, Image]] = []
        for path, key in batch:
            try:
                image = _load(path, max_pixels)
                if camera is not None:
                    image = replace(image, camera=camera(image.width, image.height))
                loaded.append((path, key, image))
            except Exception as exc:  # any one file's failure is its line; the run goes on
                finish(InputResult.failed(str(path), exc))
                done += 1
                _report_progress(on_progress, done, total)
        outcomes = list(predict_each(estimator, [image for _, _, image in loaded], batch_size))
        for (path, key, image), outcome in zip(loaded, outcomes, strict=True):
            if isinstance(outcome, str):
                finish(InputResult(str(path), error=outcome))
            else:
                finish(sink.write(path, key, image, outcome))
            done += 1
            _report_progress(on_progress, done, total)
        sink.flush()
    for path in videos:
        options = video or VideoOptions()
        finish(_predict_video(estimator, path, root, options, colormap, camera, on_video_progress))
    rank = {name: index for index, name in enumerate(order)}
    report.results.sort(key=lambda result: rank.get(result.input, len(rank)))  # videos last
    report.seconds = time.perf_counter() - started
    return report


def _check_options(
    formats: list[str],
    colormap: str,
    mesh_format: str,
    video: VideoOptions,
    max_depth: float | None,
) -> None:
    """UsageError for an option no input could use."""
    from depthlens.io.pointcloud import MESH_FORMATS

    if video.lossless not in LOSSLESS:
        raise UsageError(f"Unknown --lossless '{video.lossless}': choose from png16, npz, none.")
    if max_depth is not None and not (math.isfinite(max_depth) and max_depth > 0):
        raise UsageError(f"--max-depth must be a positive distance, not {max_depth}.")
    if mesh_format not in MESH_FORMATS:
        raise UsageError(f"Unknown mesh format '{mesh_format}': choose from ply, obj, glb.")
    if colormap not in COLORMAPS:
        raise UsageError(f"Unknown colormap '{colormap}': choose from {', '.join(COLORMAPS)}.")


def _find(
    patterns: list[str], recursive: bool
) -> tuple[list[tuple[Source, PurePath]], list[InputResult], list[str]]:
    """The image files the patterns name (URLs and "-" as they are), a failed result for
    each pattern that names none, and every input's name in the order the report lists
    them."""
    found: list[tuple[Source, PurePath]] = []
    seen: set[tuple[Source, PurePath]] = set()  # a folder of a million files: no list scans
    failed: list[InputResult] = []
    order: list[str] = []
    urls = 0
    for pattern in patterns:
        if _is_remote(pattern):
            urls += pattern != STDIN
            name = "stdin" if pattern == STDIN else url_file_name(pattern) or f"url-{urls}"
            if (pattern, PurePath(name)) not in seen:
                seen.add((pattern, PurePath(name)))
                found.append((pattern, PurePath(name)))
                order.append(pattern)
            continue
        try:
            matches = find_images([pattern], recursive=recursive)
        except ImageError as exc:
            failed.append(InputResult(pattern, error=str(exc)))
            order.append(pattern)
            continue
        fresh = [match for match in matches if match not in seen]
        seen.update(fresh)
        found.extend(fresh)
        order.extend(str(path) for path, _ in fresh)
    return found, failed, order


def _estimator(
    model: str | Path | Estimator | None,
    weights: PathLike | None,
    device: str,
    backend: str = "torch",
    precision: str = "fp32",
) -> Estimator:
    """A loaded model as given (anything with ``predict_images``), else ``load_model``
    (None: the default model)."""
    if model is not None and not isinstance(model, str | os.PathLike):
        return model
    import depthlens

    path = Path(weights) if weights is not None else None
    return depthlens.load_model(model, path, device, backend=backend, precision=precision)


def _is_remote(text: object) -> bool:
    """A URL or "-" (standard input): a ``str`` input that is not a file's path."""
    return isinstance(text, str) and (text == STDIN or is_url(text))


def _load(source: Source, max_pixels: int) -> Image:
    """One input's image: read from its file, fetched from its URL, or read from
    standard input."""
    if source == STDIN:
        return load_image(read_stdin(), max_pixels, name="standard input")
    return load_image(source, max_pixels)  # a str URL stays a str: load_image fetches it


def _chunks(items: list[tuple[Source, Any]], size: int) -> Iterator[list[tuple[Source, Any]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _report_progress(callback: Callable[[int, int], None] | None, done: int, total: int) -> None:
    if callback is not None:
        callback(done, total)


def predict_each(
    estimator: Estimator, images: list[Image], batch_size: int
) -> Iterator[DepthResult | str]:
    """Each image's result, in order; if the batch fails (out of memory, say), each image
    alone, so one bad image costs only itself. A failure is given as its reason."""
    if not images:
        return
    try:
        results = estimator.predict_images(images, batch_size)
    except Exception as exc:  # out of memory, a shape the network refuses: this batch only
        if len(images) == 1:
            yield f"the model failed on it ({failure_reason(exc)})"
            return
        for image in images:
            yield from predict_each(estimator, [image], 1)
        return
    yield from results


@dataclass(frozen=True)
class DepthFiles:
    """The default ``Sink``: each image's depth formats, geometry and sidecar JSON beside
    its output stem (``output_stems``), and videos streamed beside them."""

    formats: list[str]
    colormap: str = "inferno"
    side_by_side: bool = False
    max_depth: float | None = None
    normals: bool = False
    mesh_format: str = "ply"
    align_to: Path | None = None
    takes_videos: bool = True

    def plan(
        self, found: list[tuple[Source, PurePath]], root: Path
    ) -> tuple[list[tuple[Source, Any]], list[Source]]:
        """Every image, with its output stem under ``root`` (never outside it)."""
        stems = output_stems([relative for _, relative in found])
        items = [(path, root / stem) for (path, _), stem in zip(found, stems, strict=True)]
        for path, stem in items:
            if not stem.resolve().is_relative_to(root):
                raise OutputError(f"Output for {path} would fall outside {root}.")
        return list(items), []

    def flush(self) -> None:
        """Nothing to do: every file is complete when written."""

    def write(self, path: Source, key: Any, image: Image, result: DepthResult) -> InputResult:
        """The files of one predicted image, or the one-sentence reason they are not."""
        stem = Path(key)
        alignment: dict[str, object] = {}
        notes: tuple[str, ...] = ()
        try:
            if self.align_to is not None:
                result, alignment, notes = align_to_points(result, self.align_to)
            paths = write_outputs(
                image,
                result.depth,
                result.kind,
                stem,
                self.formats,
                self.colormap,
                self.side_by_side,
            )
            camera = result.camera or image.camera_or_default
            more, geometry = write_geometry(
                image,
                result,
                camera,
                stem,
                self.formats,
                max_depth=self.max_depth,
                with_normals=self.normals,
                mesh_format=self.mesh_format,
            )
            info = depth_sidecar(
                result.depth,
                result.kind,
                result.model,
                camera,
                files=[p.name for p in paths + more],
                weights=result.weights,
                weights_sha256=weights_sha256(result.weights) if result.weights else None,
                **geometry,
                **alignment,
            )
            sidecar = write_sidecar(stem.with_name(stem.name + SUFFIXES["json"]), info)
        except UsageError:
            raise  # the --align-to file itself is wrong: no use going on
        except Exception as exc:  # a write or geometry failure costs this file only
            return InputResult.failed(str(path), exc)
        return InputResult(str(path), written=(*paths, *more, sidecar), notes=notes)


def is_video_input(path: Path) -> bool:
    """A video file to stream frame by frame (a GIF is read as a photo, its first frame)."""
    from depthlens.io.video import is_video_path

    return is_video_path(path) and path.suffix.lower() != ".gif" and path.is_file()


def _predict_video(
    estimator: Estimator,
    path: Path,
    root: Path,
    options: VideoOptions,
    colormap: str,
    camera: CameraFactory | None,
    on_progress: Callable[[Path, int, int | None], None] | None,
) -> InputResult:
    """One video through ``video.stream.predict_video``; a failure is its result."""
    from depthlens.video.stream import predict_video

    if on_progress is not None:  # it starts now; the frame count comes with the first frames
        on_progress(path, 0, None)
    try:
        written: VideoDepthOutputs = predict_video(
            estimator,
            path,
            root,
            stabilize=options.stabilize,
            smoothing=options.smoothing,
            lossless=options.lossless,
            colormap=colormap,
            camera=camera,
            on_progress=(lambda done, total: on_progress(path, done, total))
            if on_progress is not None
            else None,
        )
    except Exception as exc:  # one broken video fails alone
        return InputResult.failed(str(path), exc)
    files = [written.colour, *([written.lossless] if written.lossless else []), written.sidecar]
    return InputResult(
        str(path),
        written=tuple(files),
        frames=written.frames,
        expected_frames=written.expected_frames,
        truncated=written.truncated,
        seconds=written.seconds,
    )


def failure_reason(exc: BaseException) -> str:
    """Why one input failed, as the end of its one line: a DepthlensError's sentence, an
    OS error's reason, else the exception's type and first line (a bug, but still only
    that input's)."""
    if isinstance(exc, DepthlensError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}."
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"unexpected {type(exc).__name__}" + (f": {first}" if first else "") + "."
