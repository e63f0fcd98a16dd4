"""The ``depthlens`` command: one thin function per verb over the library.

Errors the user can act on are printed as one sentence on stderr with a non-zero exit
code (1: some inputs failed; 2: bad model, weights or arguments).
"""

from __future__ import annotations

import io
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Annotated

import click
import numpy as np
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from depthlens.errors import DepthlensError, ImageError, OutputError, UsageError
from depthlens.geometry.camera import MAX_FOV_DEG, MIN_FOV_DEG, Camera
from depthlens.io.depth_files import (
    depth_sidecar,
    write_bytes,
    write_npy,
    write_pfm,
    write_png,
    write_png16,
    write_sidecar,
)
from depthlens.io.images import DEFAULT_MAX_PIXELS, Image, find_images, load_image
from depthlens.io.video import MAX_FPS, MIN_FPS
from depthlens.models.estimator import DepthResult, Estimator
from depthlens.viz.colormaps import COLORMAPS, colorize, side_by_side

if TYPE_CHECKING:
    from depthlens.video.stream import VideoDepthOutputs

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Monocular depth estimation: one photo in, a per-pixel depth map out.",
)
out = Console()
err = Console(stderr=True, highlight=False, soft_wrap=True)

# Options that predict, eval and pseudo-label share.
ModelOption = Annotated[str, typer.Option("--model", "-m", help="Zoo name or weights path.")]
WeightsOption = Annotated[
    Path | None, typer.Option(help="Checkpoint file or folder for the model.")
]
RecursiveOption = Annotated[bool, typer.Option("--recursive", "-r", help="Descend folders.")]
BatchSizeOption = Annotated[int, typer.Option(min=1, help="Images per forward pass.")]
DeviceOption = Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")]
MaxMegapixelsOption = Annotated[
    float, typer.Option(min=0.01, help="Refuse larger images (decompression bombs).")
]
FxOption = Annotated[
    float | None, typer.Option("--fx", help="Focal length in pixels (overrides EXIF).")
]
FyOption = Annotated[float | None, typer.Option("--fy", help="Vertical focal; default --fx.")]
CxOption = Annotated[
    float | None, typer.Option("--cx", help="Principal point x; default the centre.")
]
CyOption = Annotated[
    float | None, typer.Option("--cy", help="Principal point y; default the centre.")
]
AllowTruncatedOption = Annotated[
    bool,
    typer.Option(
        "--allow-truncated",
        help="Video: a file that ends before its header says is not a failure (exit 0).",
    ),
]
FovOption = Annotated[
    float | None,
    typer.Option("--fov", help="Horizontal field of view in degrees (instead of --fx)."),
]

OUTPUT_FORMATS = ("color", "png16", "pfm", "npy", "ply", "mesh")
# 3D outputs, written by write_geometry from the depth and the camera.
GEOMETRY_FORMATS = ("ply", "mesh")
SUFFIXES = {
    "color": "-depth.png",
    "png16": "-depth16.png",
    "pfm": "-depth.pfm",
    "npy": "-depth.npy",
    "side": "-side.png",
    "ply": "-points.ply",
    "mesh": "-mesh",  # + .ply, .obj or .glb (--mesh-format)
    "json": "-depth.json",
}
# The frame of the 3D outputs, as the sidecar states it.
CAMERA_FRAME = "camera: x right, y down, z forward (OpenCV)"
STILL_SUFFIXES = (".png", ".jpg", ".jpeg")  # what depthlens effect writes a photo's result as


def _parse_formats(text: str) -> list[str]:
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in OUTPUT_FORMATS]
    if unknown or not formats:
        raise UsageError(
            f"Unknown output format {', '.join(unknown) or '(none)'}: "
            f"choose from {', '.join(OUTPUT_FORMATS)}."
        )
    return list(dict.fromkeys(formats))


def output_stems(relatives: list[PurePath]) -> list[PurePath]:
    """Output path stems (no suffix) for input paths relative to the output folder.

    ``a/photo.jpg`` -> ``a/photo``. When two inputs would share a stem (``photo.jpg``
    and ``photo.png``), both keep their extension in the name (``photo_jpg``); inputs
    that still collide (the same name found under two input folders) get ``-2``, ``-3``.
    """
    stems = [rel.with_suffix("") for rel in relatives]
    suffixes: dict[PurePath, set[str]] = {}
    for stem, rel in zip(stems, relatives, strict=True):
        suffixes.setdefault(stem, set()).add(rel.suffix)
    named = [
        stem.with_name(f"{rel.stem}_{rel.suffix.lstrip('.')}") if len(suffixes[stem]) > 1 else stem
        for stem, rel in zip(stems, relatives, strict=True)
    ]
    seen: dict[PurePath, int] = {}
    unique = []
    for stem in named:
        seen[stem] = seen.get(stem, 0) + 1
        unique.append(stem if seen[stem] == 1 else stem.with_name(f"{stem.name}-{seen[stem]}"))
    return unique


def write_outputs(
    image: Image,
    depth: np.ndarray,
    kind: str,
    stem: Path,
    formats: list[str],
    colormap: str,
    with_side_by_side: bool,
) -> list[Path]:
    """Write the requested files for one image; each file is written atomically."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    heat = None
    if "color" in formats or with_side_by_side:
        heat = colorize(depth if kind == "relative_inverse" else -depth, colormap)
    for fmt in formats:
        if fmt in GEOMETRY_FORMATS:
            continue  # write_geometry's
        path = stem.with_name(stem.name + SUFFIXES[fmt])
        if fmt == "color":
            assert heat is not None
            write_png(path, heat)
        elif fmt == "png16":
            write_png16(path, depth)
        elif fmt == "pfm":
            write_pfm(path, depth)
        else:
            write_npy(path, depth)
        written.append(path)
    if with_side_by_side:
        assert heat is not None
        path = stem.with_name(stem.name + SUFFIXES["side"])
        write_png(path, side_by_side(image.rgb, heat))
        written.append(path)
    return written


def write_geometry(
    image: Image,
    result: DepthResult,
    camera: Camera,
    stem: Path,
    formats: list[str],
    *,
    max_depth: float | None = None,
    with_normals: bool = False,
    mesh_format: str = "ply",
) -> tuple[list[Path], dict[str, object]]:
    """Write the point cloud (``ply``) and mesh (``mesh``) of one result, if asked for,
    back-projected through ``camera``.

    Returns the paths and what the sidecar should say about them (``{}`` if none).
    """
    from depthlens.geometry.pointcloud import DEFAULT_FAR_FRACTION, point_cloud
    from depthlens.io.pointcloud import write_mesh, write_ply

    wanted = [fmt for fmt in formats if fmt in GEOMETRY_FORMATS]
    if not wanted:
        return [], {}
    cloud = point_cloud(
        result.depth,
        camera,
        image.rgb,
        result.kind,
        max_depth=max_depth,
        with_normals=with_normals,
        mesh="mesh" in wanted,
    )
    written = []
    if "ply" in wanted:
        path = stem.with_name(stem.name + SUFFIXES["ply"])
        comments = [f"depthlens {result.model}", f"units {cloud.units}", f"frame {CAMERA_FRAME}"]
        written.append(write_ply(path, cloud, comments))
    if "mesh" in wanted:
        written.append(
            write_mesh(stem.with_name(f"{stem.name}{SUFFIXES['mesh']}.{mesh_format}"), cloud)
        )
    info: dict[str, object] = {
        "points": len(cloud),
        "units": cloud.units,
        "frame": CAMERA_FRAME,
        "max_depth": max_depth,
    }
    if cloud.units == "relative":
        info["note"] = (
            "relative depth: 1/disparity scaled to a median of 1 (shift taken as 0), "
            f"farthest {DEFAULT_FAR_FRACTION:.0%} dropped; shape only, not to measure"
        )
    if cloud.faces is not None:
        info["faces"] = len(cloud.faces)
    return written, {"pointcloud": info}


def _user_camera(
    fx: float | None,
    fy: float | None,
    cx: float | None,
    cy: float | None,
    fov: float | None,
) -> Callable[[int, int], Camera] | None:
    """The camera the options give, for an image of a given size; None if none given.

    The numbers are checked as they come in (a field of view of 1 to 179 degrees,
    finite positive focal lengths) and, for each image, against its size
    (``Camera.check_physical``): ``--fx 5`` is a 179.9-degree lens on a 4000 px photo.
    """
    if fov is not None:
        if any(v is not None for v in (fx, fy, cx, cy)):
            raise UsageError("Give either --fov or --fx (with --fy, --cx, --cy), not both.")
        if not (math.isfinite(fov) and MIN_FOV_DEG <= fov <= MAX_FOV_DEG):
            raise UsageError(
                f"--fov must be between {MIN_FOV_DEG:g} and {MAX_FOV_DEG:g} degrees, not {fov:g}."
            )
        return lambda width, height: Camera.from_fov(width, height, fov)
    if fx is None:
        if any(v is not None for v in (fy, cx, cy)):
            raise UsageError("--fy, --cx and --cy need --fx (the focal length in pixels).")
        return None
    for name, value in (("--fx", fx), ("--fy", fy)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UsageError(f"{name} must be a positive focal length in pixels, not {value}.")
    for name, value in (("--cx", cx), ("--cy", cy)):
        if value is not None and not math.isfinite(value):
            raise UsageError(f"{name} must be a finite pixel coordinate, not {value}.")
    focal_y = fy if fy is not None else fx

    def camera(width: int, height: int) -> Camera:
        try:
            return Camera(
                fx,
                focal_y,
                cx if cx is not None else width / 2.0,
                cy if cy is not None else height / 2.0,
                width,
                height,
            ).check_physical()
        except ValueError as exc:
            raise UsageError(
                f"The camera options do not fit a {width}×{height} image: {exc}."
            ) from None

    return camera


def _progress_bar(
    label: str, with_rate: bool = True, unit: str = "img/s", with_eta: bool = False
) -> Progress:
    """The stderr progress bar of the batch commands (hidden when stderr is no terminal)."""
    columns: list[ProgressColumn | str] = [
        TextColumn(f"[bold]{label}[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
    ]
    if with_rate:
        columns.append(_RateColumn(unit))
    if with_eta:
        columns.append(TimeRemainingColumn())
    return Progress(*columns, console=err, transient=True, disable=not err.is_terminal)


class _RateColumn(ProgressColumn):
    def __init__(self, unit: str = "img/s") -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} {self.unit}" if speed else f"-- {self.unit}")


@dataclass
class _Item:
    path: Path
    stem: Path


def _batches(items: list[_Item], size: int) -> Iterator[list[_Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@app.command()
def predict(
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the outputs.")],
    model: ModelOption = "depthlens-small",
    weights: WeightsOption = None,
    formats: Annotated[
        str,
        typer.Option("--format", "-f", help="Comma-separated: color,png16,pfm,npy,ply,mesh."),
    ] = "color,png16",
    colormap: Annotated[str, typer.Option(help=f"One of {', '.join(COLORMAPS)}.")] = "inferno",
    with_side_by_side: Annotated[
        bool, typer.Option("--side-by-side", help="Also write photo | heatmap panels.")
    ] = False,
    recursive: RecursiveOption = False,
    batch_size: BatchSizeOption = 4,
    device: DeviceOption = "auto",
    max_megapixels: MaxMegapixelsOption = DEFAULT_MAX_PIXELS / 1e6,
    fx: FxOption = None,
    fy: FyOption = None,
    cx: CxOption = None,
    cy: CyOption = None,
    fov: FovOption = None,
    max_depth: Annotated[
        float | None,
        typer.Option(help="ply/mesh: drop points farther than this (sky)."),
    ] = None,
    with_normals: Annotated[
        bool, typer.Option("--normals", help="ply/mesh: add normals from depth gradients.")
    ] = False,
    mesh_format: Annotated[
        str, typer.Option(help="File type of --format mesh: ply, obj or glb.")
    ] = "ply",
    align_to: Annotated[
        Path | None,
        typer.Option(
            "--align-to",
            help="CSV/NPY of u, v, depth_m points: fit the output to them, in meters.",
        ),
    ] = None,
    stabilize: Annotated[
        bool, typer.Option(help="Video: remove the model's frame-to-frame depth jitter.")
    ] = True,
    smoothing: Annotated[
        float,
        typer.Option(min=0.0, max=0.99, help="Video: average static pixels over time (0: off)."),
    ] = 0.0,
    lossless: Annotated[
        str, typer.Option(help="Video depth files: png16 (frames), npz (chunks) or none.")
    ] = "png16",
    allow_truncated: AllowTruncatedOption = False,
) -> None:
    """Predict depth for images and write colour heatmaps and depth files under OUTPUT.

    Each image also gets NAME-depth.json: the model, depth kind and units, and the
    camera used (from --fx/--fov, else EXIF, else an assumed 60-degree one). With
    --align-to (one image), the depth is fitted to the given metric points and turned
    into meters; the fit and its residuals go into the JSON.

    A video (.mp4, .mov, .mkv, .avi, .webm, .gif) is streamed frame by frame into
    NAME-depth.mp4 (colour) and lossless depth (NAME-depth/ 16-bit PNG frames or
    NAME-depth-chunkNNNN.npz), described by NAME-depth.json.
    """
    import depthlens
    from depthlens.io.pointcloud import MESH_FORMATS

    chosen = _parse_formats(formats)
    user_camera = _user_camera(fx, fy, cx, cy, fov)
    videos = [Path(p) for p in inputs if _is_video_input(Path(p))]
    inputs = [p for p in inputs if Path(p) not in videos]
    if lossless not in ("png16", "npz", "none"):
        raise UsageError(f"Unknown --lossless '{lossless}': choose from png16, npz, none.")
    if max_depth is not None and not (math.isfinite(max_depth) and max_depth > 0):
        raise UsageError(f"--max-depth must be a positive distance, not {max_depth}.")
    mesh_format = mesh_format.strip().lower().lstrip(".")
    if mesh_format not in MESH_FORMATS:
        raise UsageError(f"Unknown mesh format '{mesh_format}': choose from ply, obj, glb.")
    if colormap not in COLORMAPS:
        raise UsageError(f"Unknown colormap '{colormap}': choose from {', '.join(COLORMAPS)}.")
    failures: list[tuple[str, str]] = []
    found: list[tuple[Path, PurePath]] = []
    for pattern in inputs:
        try:
            found.extend(find_images([pattern], recursive=recursive))
        except ImageError as exc:
            failures.append((pattern, str(exc)))
    found = list(dict.fromkeys(found))
    total = len(found) + len(failures) + len(videos)
    root = output.resolve()
    stems = output_stems([rel for _, rel in found])
    items = [_Item(path, root / stem) for (path, _), stem in zip(found, stems, strict=True)]
    for item in items:
        if not item.stem.resolve().is_relative_to(root):
            raise OutputError(f"Output for {item.path} would fall outside {root}.")
    for name, reason in failures:
        err.print(f"failed {name}: {reason}", markup=False)
    if not items and not videos:
        if failures:
            raise typer.Exit(1)
        raise UsageError(f"No images found in {', '.join(inputs)}.")
    if align_to is not None and len(items) + len(failures) > 1:
        raise UsageError("--align-to holds the points of one image, so give one input image.")

    estimator = depthlens.load_model(model, weights, device)
    done = 0
    start = time.perf_counter()
    progress = _progress_bar("depth", with_rate=True)
    with progress:
        task = progress.add_task("predict", total=len(items))
        for batch in _batches(items, batch_size):
            loaded: list[tuple[_Item, Image]] = []
            for item in batch:
                try:
                    image = load_image(item.path, int(max_megapixels * 1e6))
                    if user_camera is not None:
                        image = replace(image, camera=user_camera(image.width, image.height))
                    loaded.append((item, image))
                except Exception as exc:  # any one file's failure is its line; the batch goes on
                    failures.append((str(item.path), failure_reason(exc)))
                    err.print(f"failed {item.path}: {failure_reason(exc)}", markup=False)
                    progress.advance(task)
            if not loaded:
                continue
            for item, image, result in _predict_batch(estimator, loaded, batch_size):
                if isinstance(result, str):
                    failures.append((str(item.path), result))
                    err.print(f"failed {item.path}: {result}", markup=False)
                    progress.advance(task)
                    continue
                try:
                    alignment: dict[str, object] = {}
                    if align_to is not None:
                        result, alignment = _align_to_points(result, align_to)
                    paths = write_outputs(
                        image,
                        result.depth,
                        result.kind,
                        item.stem,
                        chosen,
                        colormap,
                        with_side_by_side,
                    )
                    camera = result.camera or image.camera_or_default
                    more, geometry = write_geometry(
                        image,
                        result,
                        camera,
                        item.stem,
                        chosen,
                        max_depth=max_depth,
                        with_normals=with_normals,
                        mesh_format=mesh_format,
                    )
                    files = [p.name for p in paths + more]
                    info = depth_sidecar(
                        result.depth,
                        result.kind,
                        result.model,
                        camera,
                        files=files,
                        **geometry,
                        **alignment,
                    )
                    write_sidecar(item.stem.with_name(item.stem.name + SUFFIXES["json"]), info)
                    done += 1
                except UsageError:
                    raise  # the --align-to file itself is wrong: no use going on
                except Exception as exc:  # a write or geometry failure costs this file only
                    failures.append((str(item.path), failure_reason(exc)))
                    err.print(f"failed {item.path}: {failure_reason(exc)}", markup=False)
                progress.advance(task)
    truncated = 0
    for video in videos:
        try:
            written = _predict_video(
                estimator, video, root, stabilize, smoothing, lossless, colormap, user_camera
            )
        except Exception as exc:  # one broken video fails alone
            failures.append((str(video), failure_reason(exc)))
            err.print(f"failed {video}: {failure_reason(exc)}", markup=False)
            continue
        done += 1
        if written.truncated:
            _truncated_warning(video, written.frames, written.expected_frames)
            truncated += 1
    elapsed = time.perf_counter() - start
    rate = done / elapsed if elapsed > 0 else 0.0
    summary = (
        f"{done} of {total} inputs -> {root} in {elapsed:.1f} s "
        f"({rate:.2f} images/s) with {estimator.name}"
    )
    if failures:
        summary += f"; {len(failures)} failed"
    if truncated:
        summary += f"; {truncated} truncated"
    out.print(summary, highlight=False)
    if failures or (truncated and not allow_truncated):
        raise typer.Exit(1)


def _predict_video(
    estimator: Estimator,
    video: Path,
    root: Path,
    stabilize: bool,
    smoothing: float,
    lossless: str,
    colormap: str,
    user_camera: Callable[[int, int], Camera] | None,
) -> VideoDepthOutputs:
    """One video through ``video.stream.predict_video``, with a bar showing frames per
    second and the time left."""
    from depthlens.video.stream import predict_video

    bar = _progress_bar(video.name, unit="frames/s", with_eta=True)
    with bar:
        task = bar.add_task("video", total=None)
        written = predict_video(
            estimator,
            video,
            root,
            stabilize=stabilize,
            smoothing=smoothing,
            lossless=lossless,  # type: ignore[arg-type]
            colormap=colormap,
            camera=user_camera,
            on_progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    err.print(
        f"{video}: {written.frames} frames -> {written.colour}, {written.sidecar} "
        f"({written.frames / max(written.seconds, 1e-9):.1f} frames/s)",
        markup=False,
    )
    return written


def _truncated_warning(video: Path, frames: int, expected: int | None) -> None:
    """The one line for a video that ended before its header said it would."""
    err.print(
        f"warning: {video} is truncated: {frames} of {expected} frames could be decoded, "
        "and the outputs hold those (--allow-truncated accepts this).",
        markup=False,
    )


def _is_video_input(path: Path) -> bool:
    """A video file to stream frame by frame (a GIF is read as a photo, its first frame)."""
    from depthlens.io.video import is_video_path

    return is_video_path(path) and path.suffix.lower() != ".gif" and path.is_file()


def _align_to_points(result: DepthResult, points_file: Path) -> tuple[DepthResult, dict]:
    """``result`` in meters, fitted to the metric points of ``points_file``
    (``geometry.metric_points``), and the sidecar entry describing the fit."""
    from depthlens.geometry.metric_points import align_to_points, read_points

    height, width = result.depth.shape
    points = read_points(points_file, width, height)
    depth, report = align_to_points(result.depth, result.kind, points)
    fit = report.all_points
    err.print(
        f"aligned to {report.point_count} points ({report.inlier_count} inliers): "
        f"RMSE {fit.rmse:.3f} m, AbsRel {fit.abs_rel:.3f}",
        highlight=False,
    )
    aligned = replace(result, depth=depth, kind="metric")
    return aligned, {"alignment": {"points": str(points_file), **report.to_dict()}}


def _predict_batch(
    estimator: Estimator, loaded: list[tuple[_Item, Image]], batch_size: int
) -> Iterator[tuple[_Item, Image, DepthResult | str]]:
    """Results of a batch; if the batch fails (out of memory, say), each image alone,
    so one bad image costs only itself. A failure is given as its reason."""
    try:
        results = estimator.predict_images([image for _, image in loaded], batch_size)
    except Exception as exc:  # out of memory, a shape the network refuses: this batch only
        if len(loaded) == 1:
            item, image = loaded[0]
            yield item, image, f"the model failed on it ({failure_reason(exc)})"
            return
        for pair in loaded:
            yield from _predict_batch(estimator, [pair], 1)
        return
    for (item, image), result in zip(loaded, results, strict=True):
        yield item, image, result


@app.command("models")
def list_models() -> None:
    """List the model zoo: family, size, output kind, licence, local weights."""
    from depthlens.errors import WeightsError
    from depthlens.models.registry import MODELS
    from depthlens.models.weights import find_weights

    table = Table(show_edge=False, header_style="bold")
    for column in ("name", "family", "params (M)", "output", "licence", "weights here"):
        table.add_column(column)
    for spec in MODELS.values():
        try:
            location = find_weights(spec, download=False)
            present = f"yes ({location.origin})"
        except WeightsError:
            present = "no"
        table.add_row(
            spec.name,
            spec.family,
            f"{spec.params_millions:.1f}",
            spec.kind,
            spec.licence,
            present,
        )
    # Piped output is not cut to 80 columns: the names must stay whole for scripts.
    console = out if out.is_terminal else Console(width=200, highlight=False)
    console.print(table)


@app.command()
def convert(
    checkpoint: Annotated[Path, typer.Argument(help="An official .pt/.pth checkpoint.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder to write.")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Zoo name (guessed from the file name).")
    ] = None,
) -> None:
    """Convert an official checkpoint to safetensors + depthlens.json (strictly checked)."""
    from depthlens.models.registry import get_spec, spec_for_official_file
    from depthlens.models.weights import build_network, classify_path, save_converted

    spec = get_spec(model) if model else spec_for_official_file(checkpoint.name)
    if spec is None:
        raise UsageError(f"Cannot tell which model {checkpoint.name} is; pass --model NAME.")
    location = classify_path(checkpoint)
    network = build_network(spec, location)
    save_converted(spec, network, output)
    out.print(
        f"Wrote {spec.name} to {output} (model.safetensors, depthlens.json); "
        f"load it with depthlens.load_model('{output}').",
        highlight=False,
    )


@app.command()
def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder to write.")] = Path(
        "demo-output"
    ),
) -> None:
    """Render a demo scene, predict its depth with the default model, write the results
    (heatmap, photo | heatmap panel, a depth-of-field blur and an anaglyph)."""
    import depthlens
    from depthlens.errors import WeightsError
    from depthlens.synth.demo import demo_scene

    output.mkdir(parents=True, exist_ok=True)
    scene = demo_scene()
    input_path = output / "input.png"
    write_png(input_path, scene)
    try:
        estimator = depthlens.load_model()
    except WeightsError as exc:
        out.print(f"Demo input written to {input_path}. No depth predicted: {exc}", highlight=False)
        return
    result = estimator.predict(scene)
    image = load_image(input_path)
    paths = write_outputs(
        image, result.depth, result.kind, output / "input", ["color"], "inferno", True
    )
    from depthlens.effects.apply import EffectSettings, render_still

    for label, name, settings in (
        ("bokeh", "bokeh", EffectSettings()),
        ("anaglyph", "stereo", EffectSettings(layout="anaglyph")),
    ):
        still = render_still(name, scene, result.depth, result.kind, settings)
        paths.append(write_png(output / f"input-{label}.png", still.image))
    out.print(
        f"Demo outputs: input {input_path}, " + ", ".join(str(p) for p in paths), highlight=False
    )


@app.command()
def effect(
    name: Annotated[str, typer.Argument(help="bokeh, parallax, stereo or obstacle.")],
    source: Annotated[Path, typer.Argument(metavar="INPUT", help="A photo or a video.")],
    output: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            help="Output file: .png or .jpg for a photo's bokeh, stereo and obstacle; "
            ".mp4 or .gif for parallax and for any effect of a video.",
        ),
    ],
    model: ModelOption = "depthlens-small",
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    max_megapixels: MaxMegapixelsOption = DEFAULT_MAX_PIXELS / 1e6,
    focus: Annotated[
        str | None,
        typer.Option(help="bokeh: X,Y pixel to focus on (default: the subject at the centre)."),
    ] = None,
    focus_depth: Annotated[
        float | None,
        typer.Option(help="bokeh: focus at this depth, in the model's units (meters if metric)."),
    ] = None,
    aperture: Annotated[
        float, typer.Option(min=0, help="bokeh: the largest blur radius, in pixels.")
    ] = 12.0,
    path: Annotated[
        str, typer.Option(help="parallax: circle, swing, zoom or dolly-zoom.")
    ] = "circle",
    frames: Annotated[
        int | None,
        typer.Option(min=1, help="parallax: frames per loop (default: --duration × fps, or 60)."),
    ] = None,
    duration: Annotated[
        float | None, typer.Option(min=0.1, help="parallax: seconds per loop.")
    ] = None,
    fps: Annotated[
        float | None,
        typer.Option(
            min=MIN_FPS,
            max=MAX_FPS,
            help="Frame rate of the output (default: 30, or the video's own).",
        ),
    ] = None,
    amplitude: Annotated[
        float, typer.Option(min=0, help="parallax: size of the camera motion.")
    ] = 1.0,
    strength: Annotated[
        float, typer.Option(min=0, help="parallax: camera travel, a fraction of the nearest depth.")
    ] = 0.05,
    layout: Annotated[
        str, typer.Option(help="stereo: side-by-side, top-bottom or anaglyph.")
    ] = "side-by-side",
    baseline: Annotated[
        float, typer.Option(min=0, help="stereo: the largest disparity, a fraction of the width.")
    ] = 0.03,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="obstacle: meters for metric models (default 1), nearness 0-1 otherwise (0.8)."
        ),
    ] = None,
    stabilize: Annotated[
        bool, typer.Option(help="Video: remove the model's frame-to-frame depth jitter.")
    ] = True,
    fx: FxOption = None,
    fy: FyOption = None,
    cx: CxOption = None,
    cy: CyOption = None,
    fov: FovOption = None,
    allow_truncated: AllowTruncatedOption = False,
) -> None:
    """Apply a depth effect to a photo or a video and write it to OUTPUT.

    bokeh blurs by depth around a focus; parallax makes the 3D-photo clip; stereo makes
    a stereo pair or anaglyph; obstacle marks what is near and writes its report as JSON
    beside the output (OUTPUT.json, or OUTPUT.jsonl with one line per video frame).
    """
    import depthlens
    from depthlens.effects.apply import (
        EffectSettings,
        check_effect,
        convert_video,
        loop_frames,
        parallax_animation,
        render_still,
    )
    from depthlens.io.video import VIDEO_SUFFIXES, write_video

    check_effect(name)
    if not source.is_file():
        raise ImageError(f"{source} does not exist or is not a file.")
    video_in = _is_video_input(source)
    clip_out = video_in or name == "parallax"
    suffix = output.suffix.lower()
    if clip_out and suffix not in VIDEO_SUFFIXES:
        raise UsageError(
            f"{'A video' if video_in else 'The parallax effect'} gives a clip: name the output "
            f"{output.with_suffix('.mp4').name} or {output.with_suffix('.gif').name}."
        )
    if not clip_out and suffix not in STILL_SUFFIXES:
        raise UsageError(f"Name the output .png or .jpg, not {output.name}.")
    loop = loop_frames(frames, duration, fps or 30.0)
    settings = EffectSettings(
        focus_point=_parse_point(focus) if focus else None,
        focus_depth=focus_depth,
        aperture=aperture,
        path=path,
        frames=loop,
        amplitude=amplitude,
        strength=strength,
        layout=layout,
        baseline=baseline,
        threshold=threshold,
    )
    user_camera = _user_camera(fx, fy, cx, cy, fov)
    estimator = depthlens.load_model(model, weights, device)
    start = time.perf_counter()
    if video_in:
        reports: list[dict[str, object]] = []
        progress = _progress_bar(name, unit="frames/s", with_eta=True)
        with progress:
            task = progress.add_task(name, total=None)
            written = convert_video(
                estimator,
                name,
                source,
                output,
                settings,
                stabilize=stabilize,
                fps=fps,
                camera=user_camera,
                on_report=(lambda i, r: reports.append({"frame": i, **r}))
                if name == "obstacle"
                else None,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        if reports:
            lines = "".join(json.dumps(report) + "\n" for report in reports)
            write_bytes(output.with_suffix(".jsonl"), lines.encode())
        elapsed = time.perf_counter() - start
        out.print(
            f"{name}: {written.frames} frames -> {output} in {elapsed:.1f} s "
            f"({written.frames / max(elapsed, 1e-9):.2f} frames/s) with {estimator.name}",
            highlight=False,
        )
        if written.truncated:
            _truncated_warning(source, written.frames, written.expected_frames)
            if not allow_truncated:
                raise typer.Exit(1)
        return
    image = load_image(source, int(max_megapixels * 1e6))
    if user_camera is not None:
        image = replace(image, camera=user_camera(image.width, image.height))
    result = estimator.predict(image)
    if name == "parallax":
        count = write_video(
            output, parallax_animation(image.rgb, result.depth, result.kind, settings), fps or 30.0
        )
        out.print(f"parallax: {count} frames -> {output}", highlight=False)
        return
    still = render_still(name, image.rgb, result.depth, result.kind, settings)
    _write_still(output, still.image)
    if name == "obstacle":
        report = {"model": result.model, "kind": result.kind, **still.report}
        write_bytes(output.with_suffix(".json"), (json.dumps(report, indent=2) + "\n").encode())
        sys.stdout.write(json.dumps(report) + "\n")  # one line, for pipes (no wrapping)
        err.print(f"wrote {output} and {output.with_suffix('.json')}")
        return
    out.print(f"{name}: {output}", highlight=False)


def _parse_point(text: str) -> tuple[int, int]:
    """``"X,Y"`` pixel coordinates."""
    parts = text.replace(" ", "").split(",")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise UsageError(f"--focus takes a pixel as X,Y (e.g. 320,240), not '{text}'.")
    return int(parts[0]), int(parts[1])


def _write_still(path: Path, rgb: np.ndarray) -> None:
    """An effect image as PNG or JPEG (by the suffix), written atomically."""
    if path.suffix.lower() == ".png":
        write_png(path, rgb)
        return
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format="JPEG", quality=95)
    write_bytes(path, buffer.getvalue())


@app.command()
def train(
    config: Annotated[
        Path, typer.Argument(help="Training config (YAML), e.g. configs/bundled.yaml.")
    ],
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run from its last checkpoint.")
    ] = False,
    steps: Annotated[int | None, typer.Option(min=1, help="Override the number of steps.")] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Override the config's output_dir.")
    ] = None,
    stop_at: Annotated[
        int | None,
        typer.Option("--stop-at", min=1, help="End this session after step N (resumable)."),
    ] = None,
) -> None:
    """Train a depth network from a YAML config; run it under torchrun for several processes."""
    import dataclasses
    import os

    from depthlens.train.config import check_config, load_config
    from depthlens.train.loop import train as run_training

    settings = load_config(config)
    overrides: dict[str, object] = {}
    if steps is not None:
        overrides["steps"] = steps
    if out_dir is not None:
        overrides["output_dir"] = str(out_dir)
    if overrides:
        settings = dataclasses.replace(settings, **overrides)  # type: ignore[arg-type]
        check_config(settings, str(config))
    result = run_training(settings, resume=resume, stop_at=stop_at)
    if os.environ.get("RANK", "0") == "0":
        out.print(f"Training output: {result}", highlight=False)


@app.command("eval")
def evaluate(
    dataset: Annotated[
        list[str],
        typer.Option(
            "--dataset",
            "-d",
            help="KIND:PATH, repeatable; nyu, kitti, diode, eth3d, sintel, folder.",
        ),
    ],
    models: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Zoo name or weights path; repeat to compare models."),
    ] = None,
    weights: WeightsOption = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Folder for results.json and CSVs.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N images.")] = None,
    recipe: Annotated[
        str | None,
        typer.Option(
            "--protocol",
            help="A paper's scoring: midas, depth_anything, zoedepth or metric3d "
            "(alignment, SILog variant, fewest pixels).",
        ),
    ] = None,
    alignment: Annotated[
        str | None,
        typer.Option(help="depth_from_disparity, disparity, median or none (default: by model)."),
    ] = None,
    crop: Annotated[
        str | None, typer.Option(help="eigen_nyu, garg, eigen_kitti or none (default: dataset's).")
    ] = None,
    max_depth: Annotated[float | None, typer.Option(help="Override the depth cap (m).")] = None,
    kb_crop: Annotated[
        bool,
        typer.Option(
            "--kb-crop", help="Cut KITTI frames to the 352x1216 benchmark crop before predicting."
        ),
    ] = False,
    silog: Annotated[
        str | None, typer.Option(help="SILog variant: zoedepth, depth_anything or metric3d.")
    ] = None,
    device: DeviceOption = "auto",
    cache: Annotated[
        bool, typer.Option(help="Keep predictions in OUTPUT/predictions and reuse them.")
    ] = True,
    save_vis: Annotated[
        bool,
        typer.Option(
            "--save-vis", help="Write RGB | prediction | ground truth | error panels to OUTPUT/vis."
        ),
    ] = False,
) -> None:
    """Score a model on depth benchmarks with the papers' protocols; prints a table."""
    import functools
    from typing import Any, cast

    import depthlens
    from depthlens.eval import protocol as protocols
    from depthlens.eval.datasets import open_dataset
    from depthlens.eval.metrics import SILOG_VARIANTS, SilogVariant
    from depthlens.eval.run import evaluate_dataset, markdown_table, write_reports

    if recipe is not None and recipe not in protocols.RECIPES:
        raise UsageError(f"Unknown protocol {recipe!r}; use one of {', '.join(protocols.RECIPES)}.")
    if alignment is not None and alignment not in protocols.ALIGNMENTS:
        raise UsageError(
            f"Unknown alignment {alignment!r}; use one of {', '.join(protocols.ALIGNMENTS)}."
        )
    if silog is not None and silog not in SILOG_VARIANTS:
        raise UsageError(
            f"Unknown SILog variant {silog!r}; use one of {', '.join(SILOG_VARIANTS)}."
        )
    if save_vis and output is None:
        raise UsageError("--save-vis needs -o/--output: the panels are written to OUTPUT/vis.")
    crop_choice = "default" if crop is None else (None if crop == "none" else crop)
    if crop_choice not in ("default", None, *protocols.CROPS):
        raise UsageError(f"Unknown crop {crop!r}; use one of {', '.join(protocols.CROPS)} or none.")
    datasets = [open_dataset(spec) for spec in dataset]
    if kb_crop and any(d.kind != "kitti" for d in datasets):
        raise UsageError("--kb-crop applies to kitti: datasets only.")
    try:  # every protocol is settled before the model loads
        settled = [
            protocols.protocol_for(d.kind, cast(Any, crop_choice), max_depth, kb_crop=kb_crop)
            for d in datasets
        ]
    except ValueError as exc:
        raise UsageError(f"{exc}.") from None
    scoring = protocols.RECIPES[recipe] if recipe is not None else None
    if scoring is not None:  # explicit --alignment / --silog win over the recipe's
        alignment = alignment or scoring.alignment
        silog = silog or scoring.silog
    names = models or [depthlens.DEFAULT_MODEL]
    if weights is not None and len(names) > 1:
        raise UsageError("--weights names one checkpoint, so it takes a single --model.")
    estimators = [depthlens.load_model(name, weights, device=device) for name in names]
    results = []
    for estimator in estimators:
        for data, protocol in zip(datasets, settled, strict=True):
            total = len(data) if limit is None else min(limit, len(data))
            progress = _progress_bar(f"{estimator.name} on {data.kind}", with_rate=True)
            with progress:
                task = progress.add_task("", total=total)
                results.append(
                    evaluate_dataset(
                        estimator,
                        data,
                        protocol,
                        cast(protocols.Alignment | None, alignment),
                        cast(SilogVariant, silog or "zoedepth"),
                        limit,
                        min_pixels=scoring.min_pixels if scoring is not None else 1,
                        on_item=functools.partial(progress.advance, task),
                        cache=output / "predictions" if output is not None and cache else None,
                        save_vis=output / "vis" if output is not None and save_vis else None,
                    )
                )
    out.print(markdown_table(results), highlight=False, markup=False, soft_wrap=True)
    for result in results:
        if result.skipped:
            err.print(
                f"{result.model} on {result.dataset}: {len(result.skipped)} images had too few "
                "valid pixels to score."
            )
    if output is not None:
        for path in write_reports(results, output):
            err.print(f"wrote {path}")
        if save_vis and any(result.rows for result in results):
            err.print(f"wrote {output / 'vis'}")


@app.command("pseudo-label")
def pseudo_label(
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders or glob patterns.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the dataset.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Teacher: zoo name or path.")],
    weights: WeightsOption = None,
    recursive: RecursiveOption = False,
    batch_size: BatchSizeOption = 4,
    device: DeviceOption = "auto",
    max_megapixels: MaxMegapixelsOption = DEFAULT_MAX_PIXELS / 1e6,
) -> None:
    """Label images with a teacher's relative inverse depth, as a training folder."""
    from depthlens.train.pseudo_label import pseudo_label as run_pseudo_label

    progress = _progress_bar("label", with_rate=False)
    with progress:
        task = progress.add_task("label", total=None)
        report = run_pseudo_label(
            inputs,
            output,
            model,
            weights=weights,
            device=device,
            batch_size=batch_size,
            recursive=recursive,
            max_pixels=int(max_megapixels * 1e6),
            on_failure=lambda name, reason: err.print(f"failed {name}: {reason}", markup=False),
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    out.print(
        f"{report.written} of {report.total} images labelled by {report.model} -> {output}"
        + (f"; {len(report.failures)} failed" if report.failures else ""),
        highlight=False,
    )
    if report.failures:
        raise typer.Exit(1)


@app.command()
def synth(
    count: Annotated[int, typer.Option("-n", "--count", min=1, help="How many samples.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="RGB-D folder to write (or append to).")
    ],
    size: Annotated[str, typer.Option(help="WIDTHxHEIGHT, or one number.")] = "256x256",
    seed: Annotated[int, typer.Option(help="First seed; samples use seed, seed+1, ...")] = 0,
    kinds: Annotated[
        str | None, typer.Option(help="Comma-separated: indoor,street,landscape,tabletop.")
    ] = None,
    depth_format: Annotated[str, typer.Option("--format", help="Depth files: png16 or npy.")] = (
        "png16"
    ),
    batch_size: Annotated[int, typer.Option(min=1, help="Samples rendered per batch.")] = 16,
    normals: Annotated[bool, typer.Option(help="Also write normals/*.npy.")] = True,
    workers: Annotated[int, typer.Option(min=1, help="Rendering processes (CPU cores).")] = 1,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Render synthetic RGB-D samples (exact depth, normals, intrinsics) into a folder."""
    from depthlens.io.rgbd import DEPTH_FORMATS, RGBDWriter, sample_name
    from depthlens.synth.render import SCENE_KINDS, choose_kind, render_batches

    match = size.lower().split("x")
    if len(match) == 1:
        match = match * 2
    if len(match) != 2 or not all(part.strip().isdigit() for part in match):
        raise UsageError(f"--size must look like 256x192 (WIDTHxHEIGHT), not '{size}'.")
    width, height = (int(part) for part in match)
    if not (8 <= width <= 8192 and 8 <= height <= 8192):
        raise UsageError(f"--size {width}x{height} is outside 8..8192 pixels per side.")
    pool = None
    if kinds:
        pool = [k.strip().lower() for k in kinds.split(",") if k.strip()]
        unknown = [k for k in pool if k not in SCENE_KINDS]
        if unknown or not pool:
            raise UsageError(
                f"Unknown scene kind {', '.join(unknown) or '(none)'}: "
                f"choose from {', '.join(SCENE_KINDS)}."
            )
    if depth_format not in DEPTH_FORMATS:
        raise UsageError(
            f"Unknown depth format '{depth_format}': choose from {', '.join(DEPTH_FORMATS)}."
        )
    writer = RGBDWriter(output, depth_format, normals)
    seeds = list(range(seed, seed + count))
    taken = [s for s in seeds if sample_name(choose_kind(s, pool), s) in writer.names]
    if taken:
        raise UsageError(
            f"{output} already holds the sample of seed {taken[0]} ({len(taken)} of these "
            "seeds in all): pass another --seed or another folder."
        )
    start = time.perf_counter()
    progress = _progress_bar("synth", with_rate=True)
    with progress:
        task = progress.add_task("synth", total=count)
        for batch in render_batches(seeds, height, width, pool, batch_size, workers, device):
            writer.write(batch)
            progress.advance(task, len(batch))
    elapsed = time.perf_counter() - start
    out.print(
        f"Wrote {count} samples ({width}x{height}, seeds {seeds[0]}..{seeds[-1]}) to {output} "
        f"in {elapsed:.1f} s ({count / max(elapsed, 1e-9):.1f} samples/s); "
        f"read it with depthlens.io.rgbd.RGBDFolder('{output}').",
        highlight=False,
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--model", "-m", help="Zoo name to serve; repeat for more (the first is the default)."
        ),
    ] = None,
    weights: Annotated[
        list[str] | None,
        typer.Option(help="NAME=PATH: weights for a served model (a bare PATH: the first)."),
    ] = None,
    device: DeviceOption = "auto",
    max_upload_mb: Annotated[
        float, typer.Option(min=0.001, help="Refuse larger uploads (1 MB = 10^6 bytes).")
    ] = 20.0,
    max_megapixels: Annotated[
        float, typer.Option(min=0.01, help="Refuse larger images (decompression bombs).")
    ] = 40.0,
    workers: Annotated[
        int, typer.Option(min=1, help="Inference threads (they share torch's CPU threads).")
    ] = 1,
    queue_size: Annotated[
        int | None,
        typer.Option(min=0, help="Requests that may wait for a worker [default: 4 × workers]."),
    ] = None,
) -> None:
    """Serve depth over HTTP: a REST API under /v1 (docs at /docs) and a web page at /."""
    import uvicorn

    from depthlens.serve import ServeSettings, create_app, load_models

    names = tuple(models or ("depthlens-small",))
    settings = ServeSettings(
        models=names,
        weights=_served_weights(weights or [], names),
        device=device,
        max_upload_mb=max_upload_mb,
        max_megapixels=max_megapixels,
        workers=workers,
        queue_size=queue_size,
    )
    load_models(settings)  # before binding: a bad model or weights stops here, nothing started
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    out.print(
        f"Serving {', '.join(settings.models)} at {url} (API docs at {url}/docs); Ctrl+C stops.",
        highlight=False,
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


def _served_weights(values: list[str], models: tuple[str, ...]) -> dict[str, Path]:
    """``--weights`` values as {model: path}: ``NAME=PATH``, or a bare PATH for the first."""
    from depthlens.models.registry import MODELS

    chosen: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if sep and name in MODELS:
            chosen[name] = Path(path)  # ServeSettings refuses it unless the model is served
        else:
            chosen[models[0]] = Path(value)
    return chosen


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


def _quiet_library_warnings() -> None:
    """Send Python warnings (Pillow's, torch's) to logging, where nothing prints them:
    a file's problem is reported as its one line, never as a library's warning text."""
    logging.captureWarnings(True)
    captured = logging.getLogger("py.warnings")
    captured.addHandler(logging.NullHandler())
    captured.propagate = False


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and an exit code."""
    from transformers.utils import logging as transformers_logging

    _quiet_library_warnings()
    transformers_logging.disable_progress_bar()  # our own bar reports progress
    transformers_logging.set_verbosity_error()
    try:
        code = app(args=argv, standalone_mode=False)
    except DepthlensError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except (typer.Exit, click.exceptions.Exit) as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, click.exceptions.Abort, KeyboardInterrupt):
        err.print("interrupted")
        sys.exit(130)
    # typer 0.29 parses with a click of its own (typer._click), whose errors are not
    # click's: both kinds are caught, by their public base classes.
    except (typer.TyperException, click.ClickException) as exc:
        err.print(f"error: {_usage_message(exc)}", markup=False)
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)


def _usage_message(exc: Exception) -> str:
    """A parser error as one sentence, pointing at the command's --help."""
    format_message = getattr(exc, "format_message", None)
    text = format_message() if callable(format_message) else str(exc)
    text = " ".join(str(text).split()).rstrip(".")
    context = getattr(exc, "ctx", None)
    where = getattr(context, "command_path", None) or "depthlens"
    return f"{text} (see {where} --help)."


if __name__ == "__main__":
    main()
