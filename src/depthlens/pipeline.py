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

import json
import math
import os
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
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
from depthlens.models.tiling import TileOptions
from depthlens.models.weights import weights_sha256
from depthlens.viz.colormaps import COLORMAPS

if TYPE_CHECKING:
    from depthlens.models.spec import ModelSpec
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
    chunks or ``none``; ``mode``: how a model that sees time runs, ``windowed`` or
    ``streaming`` (``predict_video``'s ``video_mode``)."""

    stabilize: bool = True
    smoothing: float = 0.0
    lossless: Literal["png16", "npz", "none"] = "png16"
    mode: Literal["windowed", "streaming"] = "windowed"


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
    record: str | None = None  # what the sink's commit records of it (a manifest line)

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
    last), the model and weights used and the wall time.

    The counts are kept as results arrive; ``results`` holds the results themselves only
    when the run kept them (``keep_results``: a run over millions of inputs reports
    through ``on_result`` and its report file instead).
    """

    model: str
    weights: str
    output_dir: Path
    results: list[InputResult] = field(default_factory=list)
    seconds: float = 0.0
    total: int = 0
    done: int = 0
    skipped: int = 0
    truncated: int = 0
    images: int = 0  # images predicted in this run (not skipped)
    videos: int = 0  # videos streamed (truncated ones too)
    frames: int = 0  # video frames written
    video_seconds: float = 0.0

    def add(self, result: InputResult, keep: bool = True) -> None:
        """Count ``result`` (and keep it, with ``keep``)."""
        self.total += 1
        self.done += result.ok
        self.skipped += result.skipped
        self.truncated += result.truncated
        if result.frames is not None:
            self.videos += 1
            self.frames += result.frames
            self.video_seconds += result.seconds
        else:
            self.images += result.ok and not result.skipped
        if keep:
            self.results.append(result)

    @property
    def failed(self) -> int:
        return self.total - self.done

    @property
    def failures(self) -> list[tuple[str, str]]:
        return [(r.input, r.error) for r in self.results if r.error is not None]


class Sink(Protocol):
    """Where ``predict_files`` puts each image's depth: files beside a stem (the default,
    ``DepthFiles``), or another layout (``train.pseudo_label.PseudoLabelFolder``,
    ``train.shards.PseudoLabelShards``).

    The inputs are planned on the process that runs ``predict_files`` (the driver) and
    predicted in *units* of consecutive inputs, on the driver or on the workers of a
    batch engine (``engines.ray``), each holding its own copy of the sink:

    - ``plan`` (driver) gets the images found, a chunk at a time in input order, as
      ``(source, path relative to its input folder)``, and returns those to predict
      with the key ``write`` will get (an output stem, a sample name), and those to skip
      (done by an earlier run); it keeps what it needs across chunks (names taken), and
      raises ``UsageError`` or ``OutputError`` for a layout that cannot work, before any
      prediction.
    - ``write`` (worker) writes one image's outputs, or buffers them, and returns its
      ``InputResult``.
    - ``flush`` (worker) ends a unit: it gets the unit's results in order (failures
      too) and returns them final (a shard written, its path in each). A unit is
      ``unit`` inputs (a shard's size), or one batch when ``unit`` is None.
    - ``commit`` (driver) gets each unit's final results in input order, once they are
      back: it records them (appends their ``record`` lines to a manifest).

    ``takes_videos``: whether named video files are streamed (else read as images).
    A source is a ``Source``: a ``Path``, or the ``str`` of a URL or ``-`` (its relative
    path is then the URL's file name, ``url-N`` or ``stdin``); a sink uses
    ``str(source)`` to name it. (The methods take ``Any`` so that sinks annotated for
    paths alone still fit.)
    """

    @property
    def takes_videos(self) -> bool: ...

    @property
    def unit(self) -> int | None: ...

    def plan(
        self, found: list[tuple[Any, PurePath]], root: Path
    ) -> tuple[list[tuple[Any, Any]], list[Any]]: ...

    def write(self, path: Any, key: Any, image: Image, result: DepthResult) -> InputResult: ...

    def flush(self, results: list[InputResult]) -> list[InputResult]: ...

    def commit(self, results: list[InputResult]) -> None: ...


Unit = list[tuple[Source, Any]]  # consecutive planned inputs: (source, the sink's key)


@dataclass(frozen=True)
class ModelChoice:
    """The model a run asked for, as the arguments of ``depthlens.load_model``: what a
    worker of a batch engine loads (once) on its side."""

    model: str | Path | None = None
    weights: PathLike | None = None
    device: str = "auto"
    backend: str = "torch"
    precision: str = "fp32"

    def load(self) -> Estimator:
        return _estimator(self.model, self.weights, self.device, self.backend, self.precision)

    def check(self) -> None:
        """``UnknownModelError`` or ``WeightsError`` now if the model cannot load (its name
        or weights), ``UsageError`` for a backend or precision that cannot run, without
        loading the network."""
        import depthlens
        from depthlens.models.backends import check_choice, require

        depthlens._resolve(self.model, Path(self.weights) if self.weights else None)
        chosen, _ = check_choice(self.backend, self.precision)
        require(chosen)


@dataclass(frozen=True)
class UnitWork:
    """Turns one unit of planned inputs into its final results, on whichever process
    runs it (this one, or a batch engine's worker, where it arrives pickled): read each
    image, predict them ``batch_size`` at a time (``predict_each``), hand each to the
    sink's ``write``, and end with the sink's ``flush``."""

    sink: Sink
    batch_size: int = 4
    max_pixels: int = DEFAULT_MAX_PIXELS
    camera: CameraFactory | None = None
    # (file, scale): the prompt depth of the one image of the run (--prompt-depth)
    prompt: tuple[str, float | None] | None = None
    tiling: TileOptions | None = None  # --tiles: each image merged from tiles
    # (input, passes done, passes in all) of a tiled image, in this process only: a
    # batch engine drops it before the work travels
    on_passes: Callable[[str, int, int], None] | None = field(default=None, compare=False)

    def run(
        self, estimator: Estimator, unit: Unit, on_image: Callable[[], None] | None = None
    ) -> list[InputResult]:
        """The unit's results, in its order; ``on_image()`` after each image."""
        results: list[InputResult] = []
        for batch in _chunks(unit, max(1, self.batch_size)):
            decided: dict[int, InputResult] = {}
            loaded: list[tuple[int, Source, Any, Image]] = []
            for index, (source, key) in enumerate(batch):
                try:
                    image = _load(source, self.max_pixels)
                    if self.camera is not None:
                        image = replace(image, camera=self.camera(image.width, image.height))
                    if self.prompt is not None:
                        from depthlens.io.prompt_depth import with_prompt

                        image = with_prompt(image, Path(self.prompt[0]), self.prompt[1])
                    loaded.append((index, source, key, image))
                except Exception as exc:  # any one file's failure is its line; the run goes on
                    decided[index] = InputResult.failed(str(source), exc)
                    _tick(on_image)
            images = [image for _, _, _, image in loaded]
            outcomes = predict_each(estimator, images, self.batch_size, self.tiling, self.on_passes)
            for (index, source, key, image), outcome in zip(loaded, outcomes, strict=True):
                if isinstance(outcome, str):
                    decided[index] = InputResult(str(source), error=outcome)
                else:
                    decided[index] = self.sink.write(source, key, image, outcome)
                _tick(on_image)
            results.extend(decided[index] for index in range(len(batch)))
        try:
            return self.sink.flush(results)
        except Exception as exc:  # the unit's outputs could not be finished: its inputs fail
            return [
                result if not result.ok else InputResult.failed(result.input, exc)
                for result in results
            ]


class Engine(Protocol):
    """What runs the units of a ``predict_files`` job: ``LocalEngine`` (this process),
    or ``engines.ray.RayEngine`` (a Ray Data job over a cluster).

    ``run`` returns each unit's final results, in unit order, with the model's name and
    weights that produced them (empty when no unit ran); ``on_image()`` is called after
    each image where the engine can (else after each unit, once per image). An engine
    that cannot take videos says so: ``takes_videos``. A unit is ``batches_per_unit``
    batches, unless the sink fixes its size (a shard): larger units cost a remote engine
    fewer round trips, and never change the batches.
    """

    @property
    def takes_videos(self) -> bool: ...

    @property
    def batches_per_unit(self) -> int: ...

    def run(
        self,
        work: UnitWork,
        units: Iterator[Unit],
        choice: ModelChoice | Estimator,
        on_image: Callable[[], None],
    ) -> Iterator[tuple[list[InputResult], str, str]]: ...


@dataclass
class LocalEngine:
    """The units in this process, one after the other, with one model loaded here (on
    the first unit: a run with nothing to do loads nothing). ``estimator`` is the model
    it used."""

    takes_videos: bool = True
    batches_per_unit: int = 1
    estimator: Estimator | None = None

    def run(
        self,
        work: UnitWork,
        units: Iterator[Unit],
        choice: ModelChoice | Estimator,
        on_image: Callable[[], None],
    ) -> Iterator[tuple[list[InputResult], str, str]]:
        for unit in units:
            if self.estimator is None:
                self.estimator = choice.load() if isinstance(choice, ModelChoice) else choice
            yield (
                work.run(self.estimator, unit, on_image),
                self.estimator.name,
                self.estimator.weights,
            )


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
    prompt_depth: PathLike | None = None,
    prompt_scale: float | None = None,
    tiling: TileOptions | None = None,
    video: VideoOptions | None = None,
    input_list: PathLike | None = None,
    resume: bool = False,
    engine: Engine | None = None,
    keep_results: bool = True,
    report_file: PathLike | None = None,
    sink: Sink | None = None,
    on_result: Callable[[InputResult], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_video_progress: Callable[[Path, int, int | None], None] | None = None,
    on_tile_progress: Callable[[str, int, int], None] | None = None,
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
    (``geometry.metric_points``) and turns it into meters. ``prompt_depth`` (one image
    only) is the metric depth map a prompt-depth model takes beside it (a 16-bit PNG in
    millimetres or an NPY/NPZ in meters, times ``prompt_scale`` when given:
    ``io.prompt_depth``). ``tiling`` merges each image's depth from a global pass and
    overlapping tiles (``models.tiling``: detail for large photos); videos are not
    tiled. Videos are streamed as ``VideoOptions`` says.

    ``input_list`` is a text file of image paths, one per line (blank lines and lines
    starting with ``#`` skipped), read as a stream after ``inputs`` (which may then be
    empty): a million paths are never held as a list. A relative line is read from the
    current folder and keeps its folders in the output (``a/b.jpg`` ->
    ``output_dir/a/b``); an absolute one keeps its path below the root. Outputs that
    would share a name get ``-2``, ``-3`` (``output_stems``).

    ``resume`` skips the images whose outputs an earlier run completed: their sidecar
    is there (it is written last), lists a file for each of ``formats`` and every file
    it lists exists. ``engine`` runs the predictions (``LocalEngine`` by default;
    ``engines.ray.RayEngine`` on a Ray cluster, with byte-identical outputs).
    ``report_file`` receives one JSON line per input as it is decided
    (``report_line``). ``keep_results=False`` keeps only the counts in the report.

    ``sink`` replaces those depth files by another layout (see ``Sink``); the format,
    colormap, geometry and alignment options are then unused.

    ``model`` is a zoo name, a path to weights, or a loaded ``Estimator``; None is the
    default model (``depthlens.load_model``). Images are
    predicted ``batch_size`` at a time; a batch that fails is retried one image at a
    time. ``on_result`` gets each input's ``InputResult`` as it is decided,
    ``on_progress(done, total)`` counts images (from before the first),
    ``on_video_progress(path, frames, total)`` a video's frames (``(path, 0, None)`` as
    it starts; ``total`` is None while unknown), ``on_tile_progress(input, passes,
    total)`` the passes of a tiled image (local engine). Raises ``UsageError`` (bad formats,
    colormap, options, or nothing found at all) or ``WeightsError`` before any output
    is written.
    """
    chosen = parse_formats(formats)
    mesh_format = mesh_format.strip().lower().lstrip(".")
    _check_options(chosen, colormap, mesh_format, video or VideoOptions(), max_depth)
    engine = engine or LocalEngine()
    if sink is None:
        aligned = Path(align_to) if align_to is not None else None
        sink = DepthFiles(
            chosen, colormap, side_by_side, max_depth, normals, mesh_format, aligned, resume=resume
        )
    listed = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    videos = [
        Path(p)
        for p in listed
        if sink.takes_videos and not _is_remote(p) and is_video_input(Path(p))
    ]
    if videos and not engine.takes_videos:
        raise UsageError(
            f"This engine predicts images; predict videos such as {videos[0]} with the "
            "local engine."
        )
    patterns = [str(p) for p in listed if _is_remote(p) or Path(p) not in videos]
    lines = _list_file(input_list) if input_list is not None else None
    root = Path(output_dir).resolve()
    if root.exists() and not root.is_dir():
        raise OutputError(f"{output_dir} is a file; the outputs need a folder (-o FOLDER).")
    started = time.perf_counter()
    report = PredictReport(model="", weights="", output_dir=root)
    log = _ReportFile(None)  # opened once the arguments are known to be right

    def finish(result: InputResult) -> None:
        report.add(result, keep_results)
        log.write(result)
        if on_result is not None:
            on_result(result)

    found, not_found, order = _find(patterns, recursive)
    if not found and not videos and not not_found and lines is None:
        raise UsageError(f"No images found in {', '.join(patterns)}.")
    if align_to is not None and (
        lines is not None or len(found) + len(not_found) + len(videos) > 1
    ):
        raise UsageError("--align-to holds the points of one image, so give one input image.")
    if prompt_depth is not None:
        if lines is not None or videos or len(found) + len(not_found) > 1:
            raise UsageError(
                "--prompt-depth holds the depth of one image, so give one input image."
            )
        from depthlens.io.prompt_depth import read_prompt_depth

        read_prompt_depth(Path(prompt_depth), prompt_scale)  # unreadable: fail before any output
    _check_prompt_model(model, weights, prompt_depth is not None)
    if tiling is not None and prompt_depth is not None:
        raise UsageError("Tiles cannot share one prompt depth; run prompt-depth models untiled.")
    chunks = _found_chunks(found, lines)
    first_items, first_skipped = sink.plan(next(chunks, []), root)
    log = _ReportFile(report_file)
    for result in not_found:
        finish(result)
    for path in first_skipped:
        finish(InputResult(str(path), skipped=True))
    choice: ModelChoice | Estimator = (
        model
        if model is not None and not isinstance(model, str | os.PathLike)
        else ModelChoice(model, weights, device, backend, precision)
    )
    # A streamed list's total grows as it is planned (units are planned as they start).
    total = len(first_items) + len(first_skipped)
    done = len(first_skipped)

    def more_items() -> Iterator[tuple[Source, Any]]:
        nonlocal total, done
        yield from first_items
        for chunk in chunks:
            items, skipped = sink.plan(chunk, root)
            total += len(items) + len(skipped)
            done += len(skipped)
            for path in skipped:
                finish(InputResult(str(path), skipped=True))
            yield from items

    def image_done() -> None:
        nonlocal done
        done += 1
        _report_progress(on_progress, done, total)

    prompt = None if prompt_depth is None else (str(prompt_depth), prompt_scale)
    work = UnitWork(sink, max(1, batch_size), max_pixels, camera, prompt, tiling, on_tile_progress)
    units = _units(more_items(), sink.unit or work.batch_size * engine.batches_per_unit)
    try:
        if first_items or lines is not None:  # the clock of the rate starts before the first
            _report_progress(on_progress, done, total)
        for results, name, used in engine.run(work, units, choice, image_done):
            report.model, report.weights = name, used
            sink.commit(results)
            for result in results:
                finish(result)
        if videos:
            estimator = _video_estimator(engine, choice)
            report.model, report.weights = estimator.name, estimator.weights
            for path in videos:
                options = video or VideoOptions()
                finish(
                    _predict_video(
                        estimator, path, root, options, colormap, camera, on_video_progress
                    )
                )
    finally:
        log.close()
    if keep_results:
        rank = {name: index for index, name in enumerate(order)}
        report.results.sort(key=lambda result: rank.get(result.input, len(rank)))  # videos last
    report.seconds = time.perf_counter() - started
    return report


def _video_estimator(engine: Engine, choice: ModelChoice | Estimator) -> Estimator:
    """The model for the videos: the local engine's, loaded if no image loaded it."""
    if isinstance(engine, LocalEngine) and engine.estimator is not None:
        return engine.estimator
    estimator = choice.load() if isinstance(choice, ModelChoice) else choice
    if isinstance(engine, LocalEngine):
        engine.estimator = estimator
    return estimator


def _units(items: Iterator[tuple[Source, Any]], size: int) -> Iterator[Unit]:
    """Consecutive items, ``size`` at a time (the last unit may be shorter)."""
    unit: Unit = []
    for item in items:
        unit.append(item)
        if len(unit) == size:
            yield unit
            unit = []
    if unit:
        yield unit


def _tick(callback: Callable[[], None] | None) -> None:
    if callback is not None:
        callback()


LIST_CHUNK = 4096  # list-file lines planned at a time


def _list_file(path: PathLike) -> Iterator[str]:
    """The paths of a list file, one per line, read lazily; ``UsageError`` if it cannot
    be opened (checked now, before any work)."""
    listing = Path(path)
    if not listing.is_file():
        raise UsageError(f"The input list {listing} does not exist or is not a file.")
    try:
        listing.open("rb").close()
    except OSError as exc:
        raise UsageError(f"Cannot read the input list {listing}: {exc.strerror}.") from None

    def lines() -> Iterator[str]:
        with listing.open(encoding="utf-8", errors="surrogateescape") as handle:
            for line in handle:
                text = line.strip()
                if text and not text.startswith("#"):
                    yield text

    return lines()


def _found_chunks(
    found: list[tuple[Source, PurePath]], lines: Iterator[str] | None
) -> Iterator[list[tuple[Source, PurePath]]]:
    """What the sink plans, a chunk at a time: everything the inputs named, then the
    list file's lines ``LIST_CHUNK`` at a time, each with its relative output path."""
    yield found
    if lines is None:
        return
    chunk: list[tuple[Source, PurePath]] = []
    for line in lines:
        if _is_remote(line) and line != STDIN:
            chunk.append((line, PurePath(url_file_name(line) or "url")))
        else:
            chunk.append((Path(line), listed_relative(line)))
        if len(chunk) == LIST_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def listed_relative(line: str) -> PurePath:
    """The output path of a list file's line: the path as written, below the root when
    absolute, with ``.`` and ``..`` folded (never above the output folder)."""
    parts: list[str] = []
    for part in PurePath(line).parts[1 if PurePath(line).is_absolute() else 0 :]:
        if part == "..":
            if parts:
                parts.pop()
        elif part not in (".", ""):
            parts.append(part)
    return PurePath(*parts) if parts else PurePath("image")


class _ReportFile:
    """The run's report as JSON lines (``report_line``), one per input as it is decided;
    nothing without a path."""

    def __init__(self, path: PathLike | None) -> None:
        self._file = None
        if path is not None:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                self._file = Path(path).open("w", encoding="utf-8")  # noqa: SIM115 (closed by close)
            except OSError as exc:
                raise OutputError(f"Cannot write the report {path}: {exc.strerror}.") from None

    def write(self, result: InputResult) -> None:
        if self._file is not None:
            self._file.write(json.dumps(report_line(result)) + "\n")
            self._file.flush()  # a report read while the run goes on is whole up to here

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def report_line(result: InputResult) -> dict[str, object]:
    """One input in a run's report: ``input``, ``status`` (``done``, ``skipped`` or
    ``failed``), then ``outputs`` (the files written) or ``reason`` (one sentence)."""
    if result.error is not None:
        return {"input": result.input, "status": "failed", "reason": result.error}
    status = "skipped" if result.skipped else "done"
    return {"input": result.input, "status": status, "outputs": [str(p) for p in result.written]}


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
    if video.mode not in ("windowed", "streaming"):
        raise UsageError(f"Unknown --video-mode '{video.mode}': choose from windowed, streaming.")
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


def _check_prompt_model(
    model: str | Path | Estimator | None, weights: PathLike | None, prompted: bool
) -> None:
    """``UsageError`` before the model loads when it needs a prompt depth and none was
    given (``prompted``), or takes none and one was (a model that cannot be told from
    its name or path yet is checked as it predicts)."""
    spec: ModelSpec | None = None
    if model is not None and not isinstance(model, str | os.PathLike):
        spec = getattr(model, "spec", None)
    elif model is not None:
        from depthlens.models.registry import MODELS

        spec = MODELS.get(str(model))
        if spec is None and Path(model).exists():
            import depthlens

            try:
                spec = depthlens._resolve(model, Path(weights) if weights is not None else None)[0]
            except DepthlensError:
                return  # loading the model says what is wrong with it
    if spec is None:
        return
    if spec.takes_prompt_depth and not prompted:
        raise UsageError(
            f"{spec.name} needs the photo's metric depth beside it: pass --prompt-depth "
            "(a 16-bit PNG in millimetres or an NPY/NPZ in meters) with one input image."
        )
    if prompted and not spec.takes_prompt_depth:
        raise UsageError(
            f"{spec.name} takes no prompt depth; --prompt-depth is for the "
            "prompt-depth-anything-* models."
        )


def _is_remote(text: object) -> bool:
    """A URL or "-" (standard input): a ``str`` input that is not a file's path."""
    return isinstance(text, str) and (text == STDIN or is_url(text))


def _load(source: Source, max_pixels: int) -> Image:
    """One input's image: read from its file, fetched from its URL, or read from
    standard input."""
    if source == STDIN:
        return load_image(read_stdin(), max_pixels, name="standard input")
    return load_image(source, max_pixels)  # a str URL stays a str: load_image fetches it


def _chunks(items: Unit, size: int) -> Iterator[Unit]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _report_progress(callback: Callable[[int, int], None] | None, done: int, total: int) -> None:
    if callback is not None:
        callback(done, total)


def predict_each(
    estimator: Estimator,
    images: list[Image],
    batch_size: int,
    tiling: TileOptions | None = None,
    on_passes: Callable[[str, int, int], None] | None = None,
) -> Iterator[DepthResult | str]:
    """Each image's result, in order; if the batch fails (out of memory, say), each image
    alone, so one bad image costs only itself. A failure is given as its reason. With
    ``tiling``, ``on_passes(source, done, total)`` follows each image's passes."""
    if not images:
        return
    if tiling is not None:
        for image in images:
            passes = None if on_passes is None else partial(on_passes, image.source)
            try:
                yield estimator.predict_images([image], batch_size, tiling, passes)[0]
            except Exception as exc:  # out of memory, a shape the network refuses: this one
                yield f"the model failed on it ({failure_reason(exc)})"
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
    its output stem (``output_stems``), and videos streamed beside them. With
    ``resume``, images whose outputs are complete (``outputs_complete``) are skipped."""

    formats: list[str]
    colormap: str = "inferno"
    side_by_side: bool = False
    max_depth: float | None = None
    normals: bool = False
    mesh_format: str = "ply"
    align_to: Path | None = None
    takes_videos: bool = True
    resume: bool = False
    unit: int | None = None
    names: UniqueStems = field(default_factory=lambda: UniqueStems())

    def plan(
        self, found: list[tuple[Source, PurePath]], root: Path
    ) -> tuple[list[tuple[Source, Any]], list[Source]]:
        """Every image, with its output stem under ``root`` (never outside it); with
        ``resume``, those whose outputs are complete apart."""
        stems = self.names.claim([relative for _, relative in found])
        items: list[tuple[Source, Any]] = []
        skipped: list[Source] = []
        for (path, _), stem in zip(found, stems, strict=True):
            where = root / stem
            if not where.resolve().is_relative_to(root):
                raise OutputError(f"Output for {path} would fall outside {root}.")
            done = outputs_complete(where, self.formats, self.side_by_side, self.mesh_format)
            if self.resume and done:
                skipped.append(path)
            else:
                items.append((path, where))
        return items, skipped

    def flush(self, results: list[InputResult]) -> list[InputResult]:
        """Nothing to do: every file is complete when written."""
        return results

    def commit(self, results: list[InputResult]) -> None:
        """Nothing to record: the sidecar, written last, says an image is done."""

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


class UniqueStems:
    """Output stems that stay unique over a run planned a chunk at a time: each chunk
    named by ``output_stems``, then a stem an earlier chunk took gets the next free
    ``-2``, ``-3``."""

    def __init__(self) -> None:
        self._taken: set[PurePath] = set()

    def __getstate__(self) -> dict[str, Any]:
        """A copy sent to a batch engine's worker names nothing: only the driver plans (a
        million names are not shipped to every worker)."""
        return {"_taken": set()}

    def claim(self, relatives: list[PurePath]) -> list[PurePath]:
        stems = []
        for stem in output_stems(relatives):
            unique, number = stem, 1
            while unique in self._taken:
                number += 1
                unique = stem.with_name(f"{stem.name}-{number}")
            self._taken.add(unique)
            stems.append(unique)
        return stems


def outputs_complete(
    stem: Path, formats: Sequence[str], side_by_side: bool = False, mesh_format: str = "ply"
) -> bool:
    """Whether an earlier run wrote every output of ``stem``: its sidecar (written last)
    reads, names the file of each of ``formats`` (a mesh in ``mesh_format``; the
    side-by-side panel when asked), and every file it names is there."""
    try:
        info = json.loads(stem.with_name(stem.name + SUFFIXES["json"]).read_text())
        files = {str(name) for name in info["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    suffixes = [SUFFIXES[fmt] + (f".{mesh_format}" if fmt == "mesh" else "") for fmt in formats]
    suffixes += [SUFFIXES["side"]] if side_by_side else []
    named = all(stem.name + suffix in files for suffix in suffixes)
    return named and all((stem.parent / name).is_file() for name in files)


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
            video_mode=options.mode,
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
