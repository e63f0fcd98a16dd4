"""``depthlens predict``: images, folders, globs and videos in, depth files out.

The command parses its options, calls ``depthlens.pipeline.predict_files`` and reports
what it returns: progress bars, one line per failed input, the summary, the exit code
(1 if any input failed or a video was truncated without ``--allow-truncated``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, NoReturn

import typer
from rich.progress import Progress, TaskID

from depthlens.cli.common import (
    ActorsOption,
    AllowTruncatedOption,
    BackendOption,
    BatchSizeOption,
    CpusPerActorOption,
    CxOption,
    CyOption,
    DeviceOption,
    EngineOption,
    FovOption,
    FxOption,
    FyOption,
    InputListOption,
    MaxMegapixelsOption,
    ModelOption,
    PrecisionOption,
    RayAddressOption,
    RecursiveOption,
    ReportOption,
    ResumeOption,
    WeightsOption,
    _progress_bar,
    _user_camera,
    engine_from_options,
    err,
    info,
    say,
    show_trace,
)
from depthlens.errors import UsageError
from depthlens.geometry.camera import Camera
from depthlens.io.images import DEFAULT_MAX_PIXELS
from depthlens.models.tiling import DEFAULT_OVERLAP, TileOptions
from depthlens.models.weights import describe_weights
from depthlens.pipeline import (
    OUTPUT_FORMATS,
    InputResult,
    PredictReport,
    VideoOptions,
    output_stems,
    predict_files,
)
from depthlens.viz.colormaps import COLORMAPS

__all__ = ["output_stems", "predict", "truncated_warning"]

InputsArgument = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="INPUTS",
        help="Image files (HEIC too), folders, glob patterns, http(s) URLs, - for an image "
        "on standard input, and video files.",
        show_default=False,
    ),
]
OutputOption = Annotated[Path, typer.Option("-o", "--output", help="Folder for the outputs.")]
FormatsOption = Annotated[
    str, typer.Option("--format", "-f", help=f"Comma-separated, of: {', '.join(OUTPUT_FORMATS)}.")
]
ColormapOption = Annotated[str, typer.Option(help=f"One of {', '.join(COLORMAPS)}.")]
SideBySideOption = Annotated[
    bool, typer.Option("--side-by-side", help="Also write photo | heatmap panels.")
]
MaxDepthOption = Annotated[
    float | None, typer.Option(help="ply/mesh: drop points farther than this (sky).")
]
NormalsOption = Annotated[
    bool, typer.Option("--normals", help="ply/mesh: add normals from depth gradients.")
]
MeshFormatOption = Annotated[str, typer.Option(help="File type of --format mesh: ply, obj, glb.")]
AlignToOption = Annotated[
    Path | None,
    typer.Option(
        "--align-to", help="CSV/NPY of u, v, depth_m points: fit the output to them, in meters."
    ),
]
PromptDepthOption = Annotated[
    Path | None,
    typer.Option(
        "--prompt-depth",
        help="Prompt-depth models: low-res metric depth of the photo (16-bit PNG in mm, "
        "or NPY/NPZ in meters), e.g. an iPhone LiDAR frame.",
    ),
]
PromptScaleOption = Annotated[
    float | None,
    typer.Option(
        "--prompt-scale",
        help="Multiplies --prompt-depth values into meters (default: 0.001 for PNG, 1 for NPY).",
    ),
]
TilesOption = Annotated[
    str | None,
    typer.Option(
        "--tiles",
        help="Detail for large photos: merge a global pass with overlapping tiles at the "
        "model's input size; auto (from the photo's size) or N tiles along the long side.",
        show_default=False,
    ),
]
TileOverlapOption = Annotated[
    float, typer.Option("--tile-overlap", help="--tiles: fraction of a tile its neighbour shares.")
]
UpsampleOption = Annotated[
    str,
    typer.Option(
        help="How the depth reaches the photo's size: bilinear, or guided (edges snapped "
        "to the photo's); auto: guided with --tiles. guided without --tiles: of one pass.",
    ),
]
StabilizeOption = Annotated[
    bool, typer.Option(help="Video: remove the model's frame-to-frame depth jitter.")
]
SmoothingOption = Annotated[
    float, typer.Option(min=0.0, max=0.99, help="Video: average static pixels over time (0: off).")
]
LosslessOption = Annotated[
    str, typer.Option(help="Video depth files: png16 (frames), npz (chunks) or none.")
]
VideoModeOption = Annotated[
    str,
    typer.Option(
        help="Video, models that see time (video-depth-anything-*): windowed (official "
        "32-frame windows, most consistent) or streaming (each frame as it comes, from "
        "cached past frames); other models predict frame by frame and reject streaming.",
    ),
]

# The options handed to predict_files as they are (the others are combined first).
_PASSED_ON = (
    "model",
    "weights",
    "formats",
    "colormap",
    "side_by_side",
    "recursive",
    "batch_size",
    "device",
    "backend",
    "precision",
    "max_depth",
    "normals",
    "mesh_format",
    "align_to",
    "prompt_depth",
    "prompt_scale",
    "input_list",
    "resume",
)


def predict(
    output: OutputOption,
    inputs: InputsArgument = None,
    model: ModelOption = None,
    weights: WeightsOption = None,
    formats: FormatsOption = "color,png16",
    colormap: ColormapOption = "inferno",
    side_by_side: SideBySideOption = False,
    recursive: RecursiveOption = False,
    batch_size: BatchSizeOption = 4,
    device: DeviceOption = "auto",
    backend: BackendOption = "torch",
    precision: PrecisionOption = "fp32",
    max_megapixels: MaxMegapixelsOption = DEFAULT_MAX_PIXELS / 1e6,
    fx: FxOption = None,
    fy: FyOption = None,
    cx: CxOption = None,
    cy: CyOption = None,
    fov: FovOption = None,
    max_depth: MaxDepthOption = None,
    normals: NormalsOption = False,
    mesh_format: MeshFormatOption = "ply",
    align_to: AlignToOption = None,
    prompt_depth: PromptDepthOption = None,
    prompt_scale: PromptScaleOption = None,
    tiles: TilesOption = None,
    tile_overlap: TileOverlapOption = DEFAULT_OVERLAP,
    upsample: UpsampleOption = "auto",
    stabilize: StabilizeOption = True,
    smoothing: SmoothingOption = 0.0,
    lossless: LosslessOption = "png16",
    video_mode: VideoModeOption = "windowed",
    allow_truncated: AllowTruncatedOption = False,
    input_list: InputListOption = None,
    resume: ResumeOption = False,
    report: ReportOption = None,
    engine: EngineOption = "local",
    ray_address: RayAddressOption = None,
    actors: ActorsOption = None,
    cpus_per_actor: CpusPerActorOption = None,
) -> None:
    """Predict depth for images and videos and write depth files under OUTPUT.

    Every input gets NAME-depth.json (model, units, camera); a video NAME-depth.mp4 too.
    With --engine ray the images are predicted on a Ray cluster, with the same outputs.
    """
    given = {name: value for name, value in locals().items() if name in _PASSED_ON}
    camera = _user_camera(fx, fy, cx, cy, fov)
    video = VideoOptions(stabilize, smoothing, lossless, video_mode)  # type: ignore[arg-type]
    if not inputs and input_list is None:
        raise UsageError("Give the images to predict: files, folders, globs or --input-list.")
    given["engine"] = engine_from_options(engine, ray_address, actors, cpus_per_actor)
    given["report_file"] = report
    given["tiling"] = TileOptions.parse(tiles, tile_overlap, upsample)
    given["keep_results"] = input_list is None  # a streamed list keeps counts only
    pixels = int(max_megapixels * 1e6)
    _run(inputs or [], output, pixels, camera, video, given, allow_truncated)


def _run(
    inputs: list[str],
    output: Path,
    max_pixels: int,
    camera: Callable[[int, int], Camera] | None,
    video: VideoOptions,
    given: dict[str, Any],
    allow_truncated: bool,
) -> None:
    """``predict_files`` with the terminal's reporter; exit 1 on any failure, 130 with
    a count of what was written on Ctrl-C (every file is whole: writes are atomic)."""
    with _Reporter() as reporter:
        try:
            report = predict_files(
                inputs,
                output,
                max_pixels=max_pixels,
                camera=camera,
                video=video,
                on_result=reporter.result,
                on_progress=reporter.progress,
                on_video_progress=reporter.video_progress,
                on_tile_progress=reporter.tile_progress,
                **given,
            )
        except KeyboardInterrupt:
            reporter.interrupted()
    reporter.summary(report, allow_truncated)


class _Reporter:
    """The terminal side of a run: a bar for the images, one per video, a line for each
    failure as it happens, and the summary at the end.

    A bar's clock starts when its work does (``predict_files`` calls ``progress`` before
    the first image and ``video_progress(path, 0, None)`` as a video starts), so its rate
    is right from the first items; a video's bar opens once its frame count is known.
    """

    def __init__(self) -> None:
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._video: Path | None = None
        self._video_started = 0.0
        self._tiled: str | None = None  # the image whose tiles the bar follows
        self._written = 0
        self._total = 0
        self._done = 0

    def __enter__(self) -> _Reporter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        self._bar, self._task = None, None

    def _open(self, label: str, unit: str, total: int | None, done: int, started: float) -> None:
        self._close()
        self._bar = _progress_bar(label, unit=unit, with_eta=True)
        self._bar.start()
        self._task = self._bar.add_task(
            label, total=total, completed=done, done_before=done, started=started
        )

    def interrupted(self) -> NoReturn:
        """Ctrl-C: say how far the run got and exit 130."""
        self._close()
        total = f" of {self._total}" if self._total else ""
        err.print(f"interrupted: {self._written}{total} inputs written", markup=False)
        raise typer.Exit(130)

    def progress(self, done: int, total: int) -> None:
        self._total, self._done = total, done
        if self._tiled is not None:  # a tiled run: the bars follow each image's passes
            return
        if self._bar is None:
            self._open("depth", "img/s", total, done, time.monotonic())
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, total=total)

    def video_progress(self, path: Path, done: int, total: int | None) -> None:
        if self._video != path:  # a new video: its clock starts now
            self._close()
            self._video, self._video_started = path, time.monotonic()
        if self._bar is None and (total is not None or done > 0):
            self._open(path.name, "frames/s", total, 0, self._video_started)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, total=total)

    def tile_progress(self, name: str, done: int, total: int) -> None:
        if self._tiled != name:  # a new image: a bar for its passes, labelled with its place
            self._close()
            self._tiled = name
            place = f" ({self._done + 1}/{self._total})" if self._total > 1 else ""
            self._open(f"{Path(name).name}{place} tiles", "passes/s", total, 0, time.monotonic())
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, total=total)

    def result(self, result: InputResult) -> None:
        self._written += result.ok
        if result.error is not None:
            show_trace(result.trace)
            err.print(f"failed {result.input}: {result.error}", markup=False)
            return
        for note in result.notes:
            info(note)
        if result.frames is not None:
            rate = result.frames / max(result.seconds, 1e-9)
            colour, sidecar = result.written[0], result.written[-1]
            info(
                f"{result.input}: {result.frames} frames -> {colour}, {sidecar} "
                f"({rate:.1f} frames/s)"
            )
        if result.truncated:
            truncated_warning(Path(result.input), result.frames or 0, result.expected_frames)

    def summary(self, report: PredictReport, allow_truncated: bool) -> None:
        """Print the summary line; exit 1 if an input failed or a video was cut short.

        Its rates are those of each kind of input: images per second over the run's
        time less the videos' (model loading included), frames per second over the
        videos' own time; a run of videos alone gives only the second.
        """
        line = (
            f"{report.done} of {report.total} inputs -> {report.output_dir} in "
            f"{report.seconds:.1f} s ({summary_rates(report)}) with {report.model or '-'}"
        )
        if report.weights:
            line += f" ({describe_weights(report.weights)} weights)"
        line += f"; {report.skipped} done before (--resume)" if report.skipped else ""
        line += f"; {report.failed} failed" if report.failed else ""
        line += f"; {report.truncated} truncated" if report.truncated else ""
        say(line)
        if report.failed or (report.truncated and not allow_truncated):
            raise typer.Exit(1)


def summary_rates(report: PredictReport) -> str:
    """``0.60 images/s``, ``9.4 frames/s`` or both: the images predicted (not skipped)
    and the video frames written, each over the time spent on them."""
    images, videos, frames = report.images, report.videos, report.frames
    video_seconds = report.video_seconds
    rates = []
    if images or not videos:
        image_seconds = report.seconds - video_seconds
        rates.append(f"{images / image_seconds if image_seconds > 0 else 0.0:.2f} images/s")
    if videos:
        rates.append(f"{frames / video_seconds if video_seconds > 0 else 0.0:.1f} frames/s")
    return ", ".join(rates)


def truncated_warning(video: Path, frames: int, expected: int | None) -> None:
    """The one line for a video that ended before its header said it would."""
    err.print(
        f"warning: {video} is truncated: {frames} of {expected} frames could be decoded, "
        "and the outputs hold those (--allow-truncated accepts this).",
        markup=False,
    )
