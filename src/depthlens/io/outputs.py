"""The files of one image's depth: what ``depthlens predict`` (through
``pipeline.DepthFiles``) writes beside each output stem.

``write_outputs`` writes the depth formats (colour heatmap, 16-bit PNG, PFM, NPY, the
side-by-side panel), ``write_geometry`` the point cloud and mesh, ``output_stems``
names them so that inputs never collide, and ``align_to_points`` fits a depth map to
metric points first. Every file is written atomically (``io.depth_files``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path, PurePath

import numpy as np

from depthlens.errors import UsageError
from depthlens.geometry.camera import Camera
from depthlens.io.depth_files import write_npy, write_pfm, write_png, write_png16
from depthlens.io.images import Image
from depthlens.models.estimator import DepthResult
from depthlens.viz.colormaps import colorize, side_by_side

__all__ = [
    "CAMERA_FRAME",
    "GEOMETRY_FORMATS",
    "OUTPUT_FORMATS",
    "SUFFIXES",
    "align_to_points",
    "output_stems",
    "parse_formats",
    "write_geometry",
    "write_outputs",
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
    "mesh": "-mesh",  # + .ply, .obj or .glb (mesh_format)
    "json": "-depth.json",
}
# The frame of the 3D outputs, as the sidecar states it.
CAMERA_FRAME = "camera: x right, y down, z forward (OpenCV)"


def parse_formats(formats: str | Sequence[str]) -> list[str]:
    """Output formats from ``"color,png16"`` or a sequence, lower-cased, in order, once
    each; ``UsageError`` naming the choices for an unknown one or none."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    chosen = [f.strip().lower() for f in items if f.strip()]
    unknown = [f for f in chosen if f not in OUTPUT_FORMATS]
    if unknown or not chosen:
        raise UsageError(
            f"Unknown output format {', '.join(unknown) or '(none)'}: "
            f"choose from {', '.join(OUTPUT_FORMATS)}."
        )
    return list(dict.fromkeys(chosen))


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
        if fmt == "color" and heat is not None:
            write_png(path, heat)
        elif fmt == "png16":
            write_png16(path, depth)
        elif fmt == "pfm":
            write_pfm(path, depth)
        else:
            write_npy(path, depth)
        written.append(path)
    if with_side_by_side and heat is not None:
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
    """Write the point cloud (``ply``) and mesh (``mesh``) of one result, if asked for:
    the model's own points, normals and valid mask where the result has them (MoGe-2),
    else the depth back-projected through ``camera``.

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
        points=result.points,
        mask=result.mask,
        normals=result.normals if result.points is not None else None,
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


def align_to_points(
    result: DepthResult, points_file: Path
) -> tuple[DepthResult, dict[str, object], tuple[str, ...]]:
    """``result`` in meters, fitted to the metric points of ``points_file``
    (``geometry.metric_points``), the sidecar entry describing the fit, and its line."""
    from depthlens.geometry.metric_points import align_to_points, read_points

    height, width = result.depth.shape
    points = read_points(points_file, width, height)
    depth, fit_report = align_to_points(result.depth, result.kind, points)
    fit = fit_report.all_points
    note = (
        f"aligned to {fit_report.point_count} points ({fit_report.inlier_count} inliers): "
        f"RMSE {fit.rmse:.3f} m, AbsRel {fit.abs_rel:.3f}"
    )
    aligned = replace(result, depth=depth, kind="metric")
    return aligned, {"alignment": {"points": str(points_file), **fit_report.to_dict()}}, (note,)
