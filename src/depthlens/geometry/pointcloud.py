"""Depth maps to 3D: back-projection through a pinhole camera, normals, grid meshes.

Points are in the camera frame of :mod:`depthlens.geometry.camera` (OpenCV's): x to
the right, y down, z forward along the optical axis, in the units of the depth. The
centre of pixel ``(v, u)`` (row, column) is ``(u + 0.5, v + 0.5)``, so a pixel at
depth ``Z`` lies at

    X = (u + 0.5 − cx) · Z / fx,    Y = (v + 0.5 − cy) · Z / fy,    Z = Z.

Depth here is the z coordinate (distance along the optical axis), not the distance
along the ray, as the metric models and the datasets give it.

Relative models give inverse depth known only up to scale and shift;
:func:`depth_from_inverse` turns it into a depth-like map (``1 / disparity``, median
1, shift taken as 0), which is good for a look at the shape, not for measuring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from depthlens.geometry.camera import Camera

__all__ = [
    "DEFAULT_FAR_FRACTION",
    "DEFAULT_MAX_JUMP",
    "PointCloud",
    "backproject",
    "depth_from_inverse",
    "grid_faces",
    "normals_from_points",
    "point_cloud",
]

# Relative depth has no metric cap for the sky; the farthest 1 % of valid pixels is
# dropped instead, which removes sky and far background without eating the scene.
DEFAULT_FAR_FRACTION = 0.01

# A mesh triangle is dropped when two of its corners differ in depth by more than
# this fraction of the nearer one: a 10 % jump between neighbouring pixels is far
# steeper than any surface seen at a sane angle (a plane would have to be within
# about 6 degrees of the viewing ray at 60 degrees of field of view across 640 px),
# so it marks an occlusion edge, and no sheet is stretched from foreground to back.
DEFAULT_MAX_JUMP = 0.1

Units = Literal["m", "relative"]


@dataclass(frozen=True)
class PointCloud:
    """Coloured 3D points of the valid pixels of a depth map, in row-major pixel order.

    ``points`` (N, 3) float32 in the camera frame (x right, y down, z forward);
    ``colors`` (N, 3) uint8 RGB; ``normals`` (N, 3) float32 unit vectors facing the
    camera, or None; ``faces`` (F, 3) int64 triangles over the points (counter-
    clockwise seen from the camera), or None for a bare cloud; ``pixels`` (N,) int64
    flat pixel indices ``v * W + u`` the points came from. ``units`` is ``"m"`` for
    metric depth and ``"relative"`` for :func:`depth_from_inverse` output.
    """

    points: np.ndarray
    colors: np.ndarray
    normals: np.ndarray | None
    faces: np.ndarray | None
    pixels: np.ndarray
    units: Units

    def __len__(self) -> int:
        return int(self.points.shape[0])


def backproject(depth: np.ndarray, camera: Camera) -> np.ndarray:
    """(H, W) depth -> (H, W, 3) float32 camera-frame points; non-finite depth stays so.

    ``X = (u + 0.5 − cx) Z / fx``, ``Y = (v + 0.5 − cy) Z / fy``. The camera must be
    the one of this image (``camera.width × camera.height == W × H``).
    """
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
    height, width = depth.shape
    if (camera.width, camera.height) != (width, height):
        raise ValueError(
            f"camera is for a {camera.width}×{camera.height} image, depth is {width}×{height}"
        )
    z = depth.astype(np.float64)
    u = (np.arange(width, dtype=np.float64) + 0.5 - camera.cx) / camera.fx
    v = (np.arange(height, dtype=np.float64) + 0.5 - camera.cy) / camera.fy
    points = np.empty((height, width, 3), np.float32)
    points[..., 0] = u[None, :] * z
    points[..., 1] = v[:, None] * z
    points[..., 2] = z
    return points


def depth_from_inverse(
    disparity: np.ndarray, far_fraction: float = DEFAULT_FAR_FRACTION
) -> np.ndarray:
    """Relative inverse depth -> a depth-like (H, W) float32 map, NaN where dropped.

    ``z = median(d) / d`` over the pixels with finite ``d > 0``: the shift of the
    disparity is unknown and taken as 0, the scale is fixed by making the median
    depth 1. Pixels with ``d ≤ 0`` or non-finite (infinitely far, or nothing) and the
    farthest ``far_fraction`` of the rest (smallest ``d``: sky, far background) are NaN.
    """
    if not 0.0 <= far_fraction < 1.0:
        raise ValueError(f"far_fraction must be in [0, 1), got {far_fraction}")
    d = disparity.astype(np.float64)
    usable = np.isfinite(d) & (d > 0)
    out = np.full(d.shape, np.nan, np.float32)
    if not usable.any():
        return out
    values = d[usable]
    if far_fraction > 0.0:
        usable &= d > np.quantile(values, far_fraction)
        if not usable.any():
            return out
    out[usable] = (np.median(values) / d[usable]).astype(np.float32)
    return out


def normals_from_points(points: np.ndarray) -> np.ndarray:
    """(H, W, 3) points -> (H, W, 3) float32 unit normals facing the camera.

    ``n ∝ ∂P/∂v × ∂P/∂u`` from central differences (one-sided at the border), turned
    to the camera's side (``n · P < 0``). Where it cannot be
    computed (a non-finite neighbour, a degenerate patch) the normal is the unit
    vector from the point back to the camera.
    """
    d_du = np.gradient(points.astype(np.float64), axis=1)
    d_dv = np.gradient(points.astype(np.float64), axis=0)
    normals = np.cross(d_dv, d_du)
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    good = np.isfinite(length) & (length > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = normals / length
        back = -points / np.linalg.norm(points, axis=-1, keepdims=True)
    unit = np.where(good, unit, back)
    # The sign of the cross product follows the pixel grid; turn every normal to the
    # camera's side of its surface (n · P < 0), the side the camera sees.
    flip = np.sum(unit * points, axis=-1, keepdims=True) > 0
    unit = np.where(flip, -unit, unit)
    return np.nan_to_num(unit, nan=0.0).astype(np.float32)


def grid_faces(
    depth: np.ndarray, valid: np.ndarray, max_jump: float = DEFAULT_MAX_JUMP
) -> np.ndarray:
    """Triangles of the pixel grid over valid pixels, cut at depth discontinuities.

    Each 2×2 block of pixels ``a b / c d`` gives triangles ``(a, c, b)`` and
    ``(b, c, d)`` (counter-clockwise seen from the camera), as flat pixel indices
    ``v * W + u``. A triangle is kept when its three pixels are valid and every edge
    has ``|z_a − z_b| / min(z_a, z_b) ≤ max_jump``. Returns (F, 3) int64.
    """
    if max_jump <= 0:
        raise ValueError(f"max_jump must be positive, got {max_jump}")
    height, width = depth.shape
    z = np.where(valid, depth, np.nan).astype(np.float64)
    index = np.arange(height * width, dtype=np.int64).reshape(height, width)
    a, b = index[:-1, :-1], index[:-1, 1:]
    c, d = index[1:, :-1], index[1:, 1:]
    za, zb, zc, zd = z[:-1, :-1], z[:-1, 1:], z[1:, :-1], z[1:, 1:]

    def smooth(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.abs(p - q) <= max_jump * np.minimum(p, q)  # False where either is NaN

    shared = smooth(zb, zc)  # the diagonal both triangles use
    first = shared & smooth(za, zb) & smooth(za, zc)
    second = shared & smooth(zb, zd) & smooth(zc, zd)
    faces = np.concatenate(
        [
            np.stack([a[first], c[first], b[first]], axis=1),
            np.stack([b[second], c[second], d[second]], axis=1),
        ]
    )
    return faces.astype(np.int64, copy=False)


def point_cloud(
    depth: np.ndarray,
    camera: Camera,
    rgb: np.ndarray,
    kind: Literal["metric", "relative_inverse"],
    *,
    max_depth: float | None = None,
    far_fraction: float = DEFAULT_FAR_FRACTION,
    with_normals: bool = False,
    mesh: bool = False,
    max_jump: float = DEFAULT_MAX_JUMP,
    points: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    normals: np.ndarray | None = None,
) -> PointCloud:
    """The coloured point cloud (or grid mesh) of a depth map seen by ``camera``.

    ``depth`` is (H, W): metres when ``kind`` is ``"metric"``, relative inverse depth
    when ``"relative_inverse"`` (converted by :func:`depth_from_inverse`, dropping its
    farthest ``far_fraction``; units ``"relative"``). ``rgb`` is (H, W, 3) uint8.
    Pixels whose depth is non-finite or ≤ 0, or above ``max_depth`` (sky, in the
    cloud's units), are left out. ``mesh`` adds :func:`grid_faces` triangles,
    ``with_normals`` per-point normals (:func:`normals_from_points`).

    A model that predicts its own geometry (MoGe-2) passes it: ``points`` (H, W, 3)
    in the depth's units, camera frame, used instead of back-projecting through
    ``camera``; ``mask`` (H, W) bool, its valid pixels (the others are left out);
    ``normals`` (H, W, 3) unit vectors, used for ``with_normals`` instead of normals
    from the points.
    """
    if rgb.shape != (*depth.shape, 3):
        raise ValueError(f"rgb must be {(*depth.shape, 3)}, got {rgb.shape}")
    if kind == "metric":
        z = depth.astype(np.float32, copy=False)
        units: Units = "m"
    elif kind == "relative_inverse":
        z = depth_from_inverse(depth, far_fraction)
        units = "relative"
    else:
        raise ValueError(f"kind must be metric or relative_inverse, got {kind!r}")
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(z) & (z > 0)
        if max_depth is not None:
            valid &= z <= max_depth
    if mask is not None:
        valid &= mask.astype(bool, copy=False)
    if points is not None:
        if points.shape != (*depth.shape, 3):
            raise ValueError(f"points must be {(*depth.shape, 3)}, got {points.shape}")
        grid = points.astype(np.float32, copy=False)
        valid &= np.isfinite(grid).all(axis=-1)
    else:
        grid = backproject(z, camera)
    pixels = np.flatnonzero(valid)
    cloud_normals = None
    if with_normals:
        given = normals is not None and normals.shape == grid.shape
        source = normals.astype(np.float32) if given else normals_from_points(grid)  # type: ignore[union-attr]
        cloud_normals = source.reshape(-1, 3)[pixels]
    faces = None
    if mesh:
        remap = np.full(valid.size, -1, np.int64)
        remap[pixels] = np.arange(pixels.size)
        faces = remap[grid_faces(z, valid, max_jump)]
    return PointCloud(
        points=np.ascontiguousarray(grid.reshape(-1, 3)[pixels]),
        colors=np.ascontiguousarray(rgb.reshape(-1, 3)[pixels].astype(np.uint8, copy=False)),
        normals=cloud_normals,
        faces=faces,
        pixels=pixels.astype(np.int64, copy=False),
        units=units,
    )
