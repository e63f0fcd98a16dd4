"""Batched analytic ray casting in torch: many rays against many primitives at once.

Rays and primitives meet through **binning**, the way a tiled rasteriser works: each
primitive's bounding box is projected into a 2D grid (screen tiles for camera rays,
light-space cells for shadow rays) and a primitive is only tested against the rays of
the cells its projection covers. The tests themselves are closed-form intersections in
each primitive's unit local frame (see ``scene.py``), run as tensor ops over all
(ray, primitive) pairs of a chunk; the nearest hit per ray is found with one
``scatter_reduce`` over a key that packs (hit distance, primitive index) into an int64,
so ties break the same way whatever the order of the pairs.

Camera rays have unnormalised directions ``((u + 0.5 - cx) / fx, (v + 0.5 - cy) / fy, 1)``
in the camera frame (x right, y down, z forward), so a hit at ray parameter t lies at
depth z = t: depth is exact by construction.

Every function here takes and returns tensors on the caller's device and works the same
on CPU and CUDA.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from depthlens.synth.scene import (
    BOX,
    CAPSULE,
    CONE,
    ELLIPSOID,
    NUM_TYPES,
    QUAD,
    SHADOW_LAMP,
    SHADOW_SUN,
    Scene,
)

__all__ = [
    "MAX_CHUNK",
    "TILE",
    "CameraRays",
    "Primitives",
    "cast_camera_rays",
    "cast_shadow_rays",
    "heightfield_normals",
    "hit_distance",
    "local_normals",
    "march_heightfield",
    "march_heightfield_image",
    "prepare_primitives",
    "ray_slab",
]

TILE = 8  # screen tile edge in pixels: small tiles cull tightly; pair lists stay short
MAX_CHUNK = 1 << 16  # (ray, primitive) pairs per chunk: its temporaries stay in cache (fastest)
_INF = float("inf")
_MISS_KEY = (0x7F800000 << 32) | 0xFFFFFFFF  # packed (t = +inf, no primitive)


# ---------------------------------------------------------------------------------------
# Closed-form intersections in the unit local frame. Arguments are broadcastable tensors:
# the local ray origin (ox, oy, oz), direction (dx, dy, dz), the shape parameter k, and
# t_min; each returns the nearest t > t_min, +inf where the ray misses.


def _quad_t(
    ox: Tensor, oy: Tensor, oz: Tensor, dx: Tensor, dy: Tensor, dz: Tensor, k: Tensor, t_min: float
) -> Tensor:
    t = -oz / dz
    hit = ((ox + t * dx).abs() <= 1.0) & ((oy + t * dy).abs() <= 1.0) & (t > t_min)
    return torch.where(hit, t, _INF)


def _box_t(
    ox: Tensor, oy: Tensor, oz: Tensor, dx: Tensor, dy: Tensor, dz: Tensor, k: Tensor, t_min: float
) -> Tensor:
    # Slabs (Kay & Kajiya 1986). A zero direction component gives ±inf, which orders right.
    ix, iy, iz = 1.0 / dx, 1.0 / dy, 1.0 / dz
    ax, bx = (-1.0 - ox) * ix, (1.0 - ox) * ix
    ay, by = (-1.0 - oy) * iy, (1.0 - oy) * iy
    az, bz = (-1.0 - oz) * iz, (1.0 - oz) * iz
    near = torch.maximum(
        torch.maximum(torch.minimum(ax, bx), torch.minimum(ay, by)), torch.minimum(az, bz)
    )
    far = torch.minimum(
        torch.minimum(torch.maximum(ax, bx), torch.maximum(ay, by)), torch.maximum(az, bz)
    )
    # From inside (a shadow ray starting in a neighbouring box) the exit counts as a hit.
    t = torch.where(near > t_min, near, far)
    return torch.where((near <= far) & (far > t_min), t, _INF)


def _ellipsoid_t(
    ox: Tensor, oy: Tensor, oz: Tensor, dx: Tensor, dy: Tensor, dz: Tensor, k: Tensor, t_min: float
) -> Tensor:
    a = dx * dx + dy * dy + dz * dz
    b = ox * dx + oy * dy + oz * dz
    c = ox * ox + oy * oy + oz * oz - 1.0
    disc = b * b - a * c
    s = disc.clamp(min=0.0).sqrt()
    t0 = (-b - s) / a
    t = torch.where(t0 > t_min, t0, (s - b) / a)
    return torch.where((disc >= 0.0) & (t > t_min), t, _INF)


def _cone_t(
    ox: Tensor, oy: Tensor, oz: Tensor, dx: Tensor, dy: Tensor, dz: Tensor, k: Tensor, t_min: float
) -> Tensor:
    # Side: x² + z² = (ca + cb·y)² with radius 1 at y = -1 and k at y = 1; for
    # y in [-1, 1] the radius is >= 0, so both roots there lie on the real nappe.
    ca, cb = (1.0 + k) * 0.5, (k - 1.0) * 0.5
    r0 = ca + cb * oy
    qa = dx * dx + dz * dz - cb * cb * dy * dy
    qb = ox * dx + oz * dz - cb * dy * r0
    qc = ox * ox + oz * oz - r0 * r0
    disc = qb * qb - qa * qc
    s = disc.clamp(min=0.0).sqrt()
    best = torch.full_like(disc, _INF)
    for root in ((-qb - s) / qa, (s - qb) / qa):
        ok = (disc >= 0.0) & (root > t_min) & ((oy + root * dy).abs() <= 1.0)
        best = torch.where(ok & (root < best), root, best)
    # Caps: y = -1 (radius 1) and y = +1 (radius k).
    for level, radius in ((-1.0, None), (1.0, k)):
        tc = (level - oy) / dy
        x, z = ox + tc * dx, oz + tc * dz
        rr = x * x + z * z
        inside = rr <= 1.0 if radius is None else rr <= radius * radius
        ok = inside & (tc > t_min)
        best = torch.where(ok & (tc < best), tc, best)
    return best


def _capsule_t(
    ox: Tensor, oy: Tensor, oz: Tensor, dx: Tensor, dy: Tensor, dz: Tensor, k: Tensor, t_min: float
) -> Tensor:
    # Inigo Quilez, "capsule - ray intersection" (iquilezles.org/articles/intersectors),
    # for an unnormalised direction: the infinite cylinder of radius 1 about y first; the
    # capsule lies inside it, and where the entry falls beyond the segment (|y| > h), the
    # ray can only enter through the end sphere on that side.
    a = dx * dx + dz * dz
    b = ox * dx + oz * dz
    c = ox * ox + oz * oz - 1.0
    disc = b * b - a * c
    tc = (-b - disc.clamp(min=0.0).sqrt()) / a
    y = oy + tc * dy
    on_side = y.abs() <= k
    ocy = oy - torch.where(y > 0.0, k, -k)
    aa = a + dy * dy
    bb = b + ocy * dy
    cc = ox * ox + ocy * ocy + oz * oz - 1.0
    disc2 = bb * bb - aa * cc
    ts = (-bb - disc2.clamp(min=0.0).sqrt()) / aa
    t = torch.where(on_side, tc, ts)
    ok = (disc >= 0.0) & (on_side | (disc2 >= 0.0)) & (t > t_min)
    return torch.where(ok, t, _INF)


_INTERSECT: dict[int, Callable[..., Tensor]] = {
    QUAD: _quad_t,
    BOX: _box_t,
    ELLIPSOID: _ellipsoid_t,
    CONE: _cone_t,
    CAPSULE: _capsule_t,
}


def hit_distance(
    kind: int,
    origin: tuple[Tensor, ...],
    direction: tuple[Tensor, ...],
    param: Tensor,
    t_min: float = 0.0,
) -> Tensor:
    """Nearest ray parameter t > ``t_min`` where a ray meets a unit shape of type ``kind``.

    ``origin`` and ``direction`` are the (x, y, z) components of the ray in the shape's
    local frame (broadcastable tensors, direction not necessarily unit); ``param`` is the
    shape parameter. Returns t (+inf for a miss), broadcast shape.
    """
    return _INTERSECT[kind](*origin, *direction, param, t_min)


def local_normals(kind: int, q: Tensor, param: Tensor) -> Tensor:
    """Outward normals (N, 3), not normalised, at local points ``q`` (N, 3) on a shape."""
    x, y, z = q.unbind(1)
    if kind == QUAD:
        zero = torch.zeros_like(x)
        return torch.stack([zero, zero, torch.ones_like(x)], 1)
    if kind == BOX:
        ax, ay, az = x.abs(), y.abs(), z.abs()
        is_x = (ax >= ay) & (ax >= az)
        is_y = ~is_x & (ay >= az)
        is_z = ~is_x & ~is_y
        return torch.stack([x.sign() * is_x, y.sign() * is_y, z.sign() * is_z], 1)
    if kind == ELLIPSOID:
        return q
    if kind == CONE:
        ca, cb = (1.0 + param) * 0.5, (param - 1.0) * 0.5
        cap = y.abs() > 0.9999
        side = torch.stack([x, -cb * (ca + cb * y), z], 1)
        caps = torch.stack([torch.zeros_like(x), y.sign(), torch.zeros_like(x)], 1)
        return torch.where(cap[:, None], caps, side)
    # CAPSULE: from the nearest point of the segment
    return torch.stack([x, y - torch.minimum(torch.maximum(y, -param), param), z], 1)


# ---------------------------------------------------------------------------------------
# Primitives on the device, in the camera frame.


@dataclass(frozen=True)
class Primitives:
    """A scene's primitives in the camera frame, as tensors (structure of arrays).

    ``lin`` (9, P) and ``off`` (3, P): the camera -> local affine map, row-major;
    ``param`` (P,); ``scale`` (3, P) metres per local unit; ``material`` (P,) int64;
    ``corners`` (P, 8, 3) the corners of each primitive's bounding box in
    camera coordinates (metres); ``casts_shadow`` (P,) uint8 light bitmask; ``ranges`` the
    (type, start, end) index range of each type present (primitives are sorted by type).
    """

    lin: Tensor
    off: Tensor
    param: Tensor
    scale: Tensor
    material: Tensor
    corners: Tensor
    casts_shadow: Tensor
    ranges: tuple[tuple[int, int, int], ...]

    @property
    def count(self) -> int:
        """Number of primitives P."""
        return int(self.param.shape[0])


_UNIT_CORNERS = np.array([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)])


def prepare_primitives(
    scene: Scene, world_to_camera: tuple[np.ndarray, np.ndarray], device: torch.device
) -> Primitives:
    """Move ``scene``'s primitives into the camera frame and onto ``device``.

    ``world_to_camera`` is (R, p): a world point x maps to R (x - p).
    """
    rot, pos = world_to_camera
    cam_to_world = rot.T
    linear = scene.to_local[:, :, :3] @ cam_to_world  # local = A_w (R^T c + p) + b_w
    offset = np.einsum("pij,j->pi", scene.to_local[:, :, :3], pos) + scene.to_local[:, :, 3]
    # Bounding boxes of the unit shapes (quads are flat; capsules reach h + 1 along y).
    extent = np.ones((scene.num_primitives, 3))
    extent[scene.types == QUAD, 2] = 0.0
    is_capsule = scene.types == CAPSULE
    extent[is_capsule, 1] = scene.param[is_capsule] + 1.0
    local = _UNIT_CORNERS[None, :, :] * extent[:, None, :]
    # local -> world: R diag(scale) q + c, with c = -R diag(scale) b_w; then world -> camera.
    to_world = np.linalg.inv(scene.to_local[:, :, :3])
    world = np.einsum("pij,pkj->pki", to_world, local - scene.to_local[:, None, :, 3])
    camera = (world - pos) @ rot.T
    counts = np.bincount(scene.types.astype(np.int64), minlength=NUM_TYPES)
    starts = np.concatenate([[0], np.cumsum(counts)])
    ranges = tuple(
        (kind, int(starts[kind]), int(starts[kind + 1]))
        for kind in range(NUM_TYPES)
        if counts[kind]
    )

    def tensor(array: np.ndarray, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype).to(device)

    return Primitives(
        lin=tensor(linear.reshape(-1, 9).T),
        off=tensor(offset.T),
        param=tensor(scene.param),
        scale=tensor(scene.scale.T),
        material=tensor(scene.material, torch.int64),
        corners=tensor(camera),
        casts_shadow=tensor(scene.casts_shadow, torch.uint8),
        ranges=ranges,
    )


# ---------------------------------------------------------------------------------------
# Binning helpers.


def _expand_rects(rects: Tensor, grid_width: int) -> tuple[Tensor, Tensor]:
    """All (primitive, cell) pairs covered by inclusive cell rectangles.

    ``rects`` (P, 4) int64 holds (x0, x1, y0, y1) per primitive, empty when x1 < x0 or
    y1 < y0. Returns (pair_prim, pair_cell), int64, ordered by primitive.
    """
    width = (rects[:, 1] - rects[:, 0] + 1).clamp(min=0)
    height = (rects[:, 3] - rects[:, 2] + 1).clamp(min=0)
    counts = width * height
    prim = torch.repeat_interleave(torch.arange(rects.shape[0], device=rects.device), counts)
    first = torch.cumsum(counts, 0) - counts
    local = torch.arange(prim.shape[0], device=rects.device) - first.index_select(0, prim)
    w = width.index_select(0, prim)
    cx = rects[:, 0].index_select(0, prim) + local % w
    cy = rects[:, 2].index_select(0, prim) + torch.div(local, w, rounding_mode="floor")
    return prim, cy * grid_width + cx


def _pack(t: Tensor, prim: Tensor) -> Tensor:
    """int64 keys ordering hits by distance, then by primitive (t must be >= 0 or +inf)."""
    return (t.view(torch.int32).to(torch.int64) << 32) | prim


def _unpack(key: Tensor) -> tuple[Tensor, Tensor]:
    """(t float32, primitive int64, -1 for none) from packed keys."""
    t = (key >> 32).to(torch.int32).view(torch.float32)
    prim = key & 0xFFFFFFFF
    return t, torch.where(prim == 0xFFFFFFFF, -1, prim)


def _type_slices(
    prim: Tensor, ranges: tuple[tuple[int, int, int], ...]
) -> list[tuple[int, int, int]]:
    """(type, lo, hi) slices of a primitive-sorted index tensor, one per type present."""
    if prim.numel() == 0:
        return []
    bounds = torch.tensor([r[1] for r in ranges] + [ranges[-1][2]], device=prim.device)
    cut = torch.searchsorted(prim, bounds).tolist()
    return [(r[0], cut[i], cut[i + 1]) for i, r in enumerate(ranges) if cut[i + 1] > cut[i]]


# ---------------------------------------------------------------------------------------
# Camera rays.


@dataclass(frozen=True)
class CameraRays:
    """Camera rays grouped by screen tile.

    ``dx``, ``dy`` (n_tiles, TILE²): direction components (z = 1); ``index`` (n_tiles,
    TILE²) int64: the raster index v * W + u of each ray, or H * W for the padding rays
    of partial tiles; ``tiles_x``, ``tiles_y``: the tile grid.
    """

    dx: Tensor
    dy: Tensor
    index: Tensor
    tiles_x: int
    tiles_y: int
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def create(
        cls,
        height: int,
        width: int,
        fx: float,
        fy: float,
        cx: float,
        cy: float,
        device: torch.device,
    ) -> CameraRays:
        """Rays through the pixel centres (u + 0.5, v + 0.5) of an H × W image."""
        u, v, index = _tile_layout(height, width)
        return cls(
            dx=_direction(u, cx, fx).to(device),
            dy=_direction(v, cy, fy).to(device),
            index=index.to(device),
            tiles_x=-(-width // TILE),
            tiles_y=-(-height // TILE),
            width=width,
            height=height,
            fx=fx,
            fy=fy,
            cx=cx,
            cy=cy,
        )

    def directions(self) -> Tensor:
        """(3, H * W) unnormalised ray directions in raster order (z = 1), equal bit for
        bit to the tiled ones."""
        v, u = _raster_layout(self.height, self.width)
        device = self.dx.device
        out = torch.ones(3, self.height * self.width, device=device)
        out[0] = _direction(u, self.cx, self.fx).to(device)
        out[1] = _direction(v, self.cy, self.fy).to(device)
        return out


def _direction(pixel: Tensor, centre: float, focal: float) -> Tensor:
    """(pixel + 0.5 - centre) / focal in float64, then float32 (one formula everywhere)."""
    return ((pixel + 0.5 - centre) / focal).float()


@functools.cache
def _tile_layout(height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """Pixel columns u and rows v (float64) and raster indices (int64, H * W for padding)
    of the rays, grouped by tile: (n_tiles, TILE²) each. Cached per image size."""
    tiles_x, tiles_y = -(-width // TILE), -(-height // TILE)
    ty, tx, iy, ix = torch.meshgrid(
        torch.arange(tiles_y),
        torch.arange(tiles_x),
        torch.arange(TILE),
        torch.arange(TILE),
        indexing="ij",
    )
    u = (tx * TILE + ix).reshape(tiles_y * tiles_x, TILE * TILE)
    v = (ty * TILE + iy).reshape(tiles_y * tiles_x, TILE * TILE)
    index = torch.where((u < width) & (v < height), v * width + u, height * width)
    return u.double(), v.double(), index


@functools.cache
def _raster_layout(height: int, width: int) -> tuple[Tensor, Tensor]:
    """Rows v and columns u (H * W,) float64 in raster order. Cached per image size."""
    v, u = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return v.reshape(-1).double(), u.reshape(-1).double()


# The 12 edges of a box, as pairs of corner indices (corner = 4x + 2y + z).
_EDGES = torch.tensor(
    [[a, a | bit] for bit in (1, 2, 4) for a in range(8) if not a & bit], dtype=torch.long
)


def _clip_to_front(corners: Tensor, depth: Tensor, min_depth: float) -> tuple[Tensor, Tensor]:
    """Points bounding the part of each box where ``depth`` >= ``min_depth``.

    ``corners`` (P, 8, 3) and their ``depth`` (P, 8) along some axis. Returns points
    (P, 20, 3) (the 8 corners and the 12 edge crossings of the plane) and a mask
    (P, 20) of those that lie in front: their hull is the clipped box, so projecting
    them bounds the visible part exactly.
    """
    edges = _EDGES.to(corners.device)
    ca, cb = corners[:, edges[:, 0]], corners[:, edges[:, 1]]
    da, db = depth[:, edges[:, 0]], depth[:, edges[:, 1]]
    crosses = (da - min_depth) * (db - min_depth) < 0
    frac = ((min_depth - da) / torch.where(crosses, db - da, 1.0)).clamp(0.0, 1.0)
    cut = ca + (cb - ca) * frac[..., None]
    points = torch.cat([corners, cut], 1)
    mask = torch.cat([depth >= min_depth, crosses], 1)
    return points, mask


def _masked_range(values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row min and max (P,) of ``values`` (P, K) over ``mask``."""
    lo = torch.where(mask, values, _INF).amin(1)
    hi = torch.where(mask, values, -_INF).amax(1)
    return lo, hi


def _screen_rects(prims: Primitives, rays: CameraRays, near: float) -> Tensor:
    """Inclusive tile rectangles (P, 4) covered by each primitive's projected bounds."""
    points, mask = _clip_to_front(prims.corners, prims.corners[..., 2], near)
    z = points[..., 2].clamp(min=near)
    u0, u1 = _masked_range(rays.fx * points[..., 0] / z + rays.cx, mask)
    v0, v1 = _masked_range(rays.fy * points[..., 1] / z + rays.cy, mask)
    # One pixel of margin covers float error in the projection.
    u0, u1, v0, v1 = u0 - 1.0, u1 + 1.0, v0 - 1.0, v1 + 1.0
    keep = mask.any(1) & (u1 >= 0) & (u0 <= rays.width) & (v1 >= 0) & (v0 <= rays.height)
    tx0 = torch.floor(u0.clamp(-1.0, rays.width + 1.0) / TILE).clamp(0, rays.tiles_x - 1)
    tx1 = torch.floor(u1.clamp(-1.0, rays.width + 1.0) / TILE).clamp(0, rays.tiles_x - 1)
    ty0 = torch.floor(v0.clamp(-1.0, rays.height + 1.0) / TILE).clamp(0, rays.tiles_y - 1)
    ty1 = torch.floor(v1.clamp(-1.0, rays.height + 1.0) / TILE).clamp(0, rays.tiles_y - 1)
    tx1 = torch.where(keep, tx1, -1.0)
    return torch.stack([tx0, tx1, ty0, ty1], 1).long()


def cast_camera_rays(prims: Primitives, rays: CameraRays, near: float) -> tuple[Tensor, Tensor]:
    """Nearest hit of every camera ray among all primitives.

    Returns (t, prim): (H * W,) float32 depth in metres (+inf where nothing is hit) and
    (H * W,) int64 primitive index (-1 where nothing is hit), in raster order.
    """
    n = rays.width * rays.height
    device = rays.dx.device
    best = torch.full((n + 1,), _MISS_KEY, dtype=torch.int64, device=device)
    if prims.count == 0:
        return _unpack(best[:n])
    pair_prim, pair_tile = _expand_rects(_screen_rects(prims, rays, near), rays.tiles_x)
    per_chunk = max(1, MAX_CHUNK // (TILE * TILE))
    for kind, lo, hi in _type_slices(pair_prim, prims.ranges):
        for start in range(lo, hi, per_chunk):
            stop = min(hi, start + per_chunk)
            prim = pair_prim[start:stop]
            tile = pair_tile[start:stop]
            dx, dy = rays.dx.index_select(0, tile), rays.dy.index_select(0, tile)
            lin = prims.lin.index_select(1, prim).unsqueeze(2)  # (9, pairs, 1)
            off = prims.off.index_select(1, prim).unsqueeze(2)
            direction = (
                lin[0] * dx + lin[1] * dy + lin[2],
                lin[3] * dx + lin[4] * dy + lin[5],
                lin[6] * dx + lin[7] * dy + lin[8],
            )
            origin = (off[0], off[1], off[2])  # the camera centre is the origin
            param = prims.param.index_select(0, prim).unsqueeze(1)
            t = hit_distance(kind, origin, direction, param, near)
            key = _pack(t, prim.unsqueeze(1))
            target = rays.index.index_select(0, tile).reshape(-1)
            best.scatter_reduce_(0, target, key.reshape(-1), "amin")
    return _unpack(best[:n])


# ---------------------------------------------------------------------------------------
# Shadow rays.

_GRID = 48  # light-space cells per axis
_LAMP_CLAMP = 6.0  # lamp-space coordinates are clamped to ±this (80° from the vertical)
_BRUTE_FORCE = 1 << 16  # below this many (ray, caster) pairs, skip the binning
_MAX_DRIFT = 0.5  # metres: cap on the light-space margin for jittered sun rays


def _quantile_edges(values: Tensor, cells: int) -> Tensor:
    """(cells - 1,) increasing cell edges putting about equally many ``values`` per cell.

    Quantiles come from a fine histogram (an exact float sort is far slower on CPU).
    """
    lo, hi = values.min(), values.max()
    bins = 16 * cells
    span = (hi - lo).clamp(min=1e-6)
    which = ((values - lo) / span * bins).long().clamp(0, bins - 1)
    cdf = torch.cumsum(torch.bincount(which, minlength=bins), 0)
    targets = torch.arange(1, cells, device=values.device) * (values.numel() / cells)
    pos = torch.searchsorted(cdf.double(), targets.double(), right=True)
    return lo + span * pos.to(values.dtype) / bins


def cast_shadow_rays(
    prims: Primitives,
    origins: Tensor,
    targets: Tensor,
    *,
    sun_dir: Tensor | None = None,
    sun_spread: float = 0.0,
    lamp: Tensor | None = None,
    lamp_up: Tensor | None = None,
    lamp_radius: float = 0.0,
) -> Tensor:
    """Which shadow rays are blocked by a shadow-casting primitive.

    ``origins`` (3, R) camera-frame start points (already offset off their surface).
    For sunlight, ``targets`` (3, R) are the (jittered) directions towards the sun, each
    within ``sun_spread`` (tangent of the half-angle) of ``sun_dir`` (3,), and rays are
    unbounded. For a lamp at ``lamp`` (3,) with upward direction ``lamp_up`` (3,),
    ``targets`` are points on the lamp's disc of radius ``lamp_radius`` and rays end there.
    Returns (R,) bool, True where something lies in between.
    """
    device = origins.device
    n = origins.shape[1]
    blocked = torch.zeros(n + 1, dtype=torch.bool, device=device)
    bit = SHADOW_SUN if sun_dir is not None else SHADOW_LAMP
    caster = torch.nonzero(prims.casts_shadow & bit).squeeze(1)
    if n == 0 or caster.numel() == 0:
        return blocked[:n]
    if n * caster.numel() <= _BRUTE_FORCE:
        # Few rays (filling gaps) or few casters: test every pair; binning costs more.
        ray = torch.arange(n, device=device).repeat(caster.numel())
        prim = caster.repeat_interleave(n)
        if sun_dir is not None:
            _test_shadow_chunk(prims, origins, targets, ray, prim, _INF, blocked)
        else:
            _test_shadow_chunk(prims, origins, targets - origins, ray, prim, 1.0, blocked)
        return blocked[:n]
    corners = prims.corners.index_select(0, caster)  # (C, 8, 3)
    if sun_dir is not None:
        e1, e2 = _basis(sun_dir)
        c1, c2 = e1 @ origins, e2 @ origins
        k1, k2 = corners @ e1, corners @ e2
        along = corners @ sun_dir
        # A jittered ray drifts sideways by at most (distance along the sun) * spread. The
        # margin is capped: beyond the cap only the outer fringe of a long penumbra is lost.
        reach = along.amax(1) - (sun_dir @ origins).min()
        margin = (reach.clamp(min=0.0) * sun_spread).clamp(max=_MAX_DRIFT) + 1e-4
        live = reach > 0
        mask = torch.ones_like(k1, dtype=torch.bool)
        directions = targets
        t_max = _INF
        valid = torch.ones(n, dtype=torch.bool, device=device)
    else:
        assert lamp is not None and lamp_up is not None
        e1, e2 = _basis(lamp_up)
        rel = origins - lamp[:, None]
        below = -(lamp_up @ rel)
        valid = below > 1e-3
        scale = 1.0 / below.clamp(min=1e-3)
        c1 = ((e1 @ rel) * scale).clamp(-_LAMP_CLAMP, _LAMP_CLAMP)
        c2 = ((e2 @ rel) * scale).clamp(-_LAMP_CLAMP, _LAMP_CLAMP)
        # Only the part of a box below the lamp can shade points below it: clip, then
        # project from the lamp.
        crel = corners - lamp
        points, mask = _clip_to_front(crel, -(crel @ lamp_up), 1e-3)
        pbelow = (-(points @ lamp_up)).clamp(min=1e-3)
        k1 = ((points @ e1) / pbelow).clamp(-_LAMP_CLAMP, _LAMP_CLAMP)
        k2 = ((points @ e2) / pbelow).clamp(-_LAMP_CLAMP, _LAMP_CLAMP)
        nearest = torch.where(mask, pbelow, _INF).amin(1)
        margin = lamp_radius / nearest.clamp(min=1e-3) + 1e-4
        live = mask.any(1)
        directions = targets - origins
        t_max = 1.0
    rows = torch.nonzero(valid).squeeze(1)
    if rows.numel() == 0:
        return blocked[:n]
    c1, c2 = c1.index_select(0, rows), c2.index_select(0, rows)
    edges1, edges2 = _quantile_edges(c1, _GRID), _quantile_edges(c2, _GRID)
    cell = torch.searchsorted(edges1, c1) * _GRID + torch.searchsorted(edges2, c2)
    order = rows.index_select(0, torch.sort(cell, stable=True).indices)
    counts = torch.bincount(cell, minlength=_GRID * _GRID)
    starts = torch.cumsum(counts, 0) - counts
    lo1, hi1 = _masked_range(k1, mask)
    lo2, hi2 = _masked_range(k2, mask)
    live = live & torch.isfinite(lo1) & torch.isfinite(lo2)
    lo1, hi1 = torch.nan_to_num(lo1 - margin), torch.nan_to_num(hi1 + margin)
    lo2, hi2 = torch.nan_to_num(lo2 - margin), torch.nan_to_num(hi2 + margin)
    x0 = torch.searchsorted(edges1, lo1.contiguous())
    x1 = torch.searchsorted(edges1, hi1.contiguous())
    y0 = torch.searchsorted(edges2, lo2.contiguous())
    y1 = torch.searchsorted(edges2, hi2.contiguous())
    x1 = torch.where(live, x1, -1)
    # Cells index (row = axis 1, column = axis 2): x is the row here.
    rects = torch.stack([y0, y1, x0, x1], 1)
    pair_caster, pair_cell = _expand_rects(rects, _GRID)
    per_pair = counts.index_select(0, pair_cell)
    keep = per_pair > 0
    pair_caster, pair_cell, per_pair = pair_caster[keep], pair_cell[keep], per_pair[keep]
    if pair_caster.numel() == 0:
        return blocked[:n]
    ends = torch.cumsum(per_pair, 0)
    # Chunk boundaries at whole pairs, each chunk holding about MAX_CHUNK rays.
    total = int(ends[-1])
    marks = torch.arange(MAX_CHUNK, max(total, MAX_CHUNK), MAX_CHUNK, device=device)
    cuts = [0, *torch.searchsorted(ends, marks, right=True).tolist(), pair_caster.numel()]
    prim_of_caster = caster
    for lo, hi in itertools.pairwise(cuts):
        if hi <= lo:
            continue
        count = per_pair[lo:hi]
        pair = torch.repeat_interleave(torch.arange(lo, hi, device=device), count)
        first = (ends[lo:hi] - count).index_select(0, pair - lo)
        offset = torch.arange(pair.numel(), device=device) + (ends[lo] - count[0]) - first
        cell_start = starts.index_select(0, pair_cell.index_select(0, pair))
        ray = order.index_select(0, cell_start + offset)
        prim = prim_of_caster.index_select(0, pair_caster.index_select(0, pair))
        _test_shadow_chunk(prims, origins, directions, ray, prim, t_max, blocked)
    return blocked[:n]


def _test_shadow_chunk(
    prims: Primitives,
    origins: Tensor,
    directions: Tensor,
    ray: Tensor,
    prim: Tensor,
    t_max: float,
    blocked: Tensor,
) -> None:
    """Intersect the (ray, prim) pairs of one chunk; mark blocked rays."""
    # Sort by primitive so each type is one contiguous run (pairs arrive grouped by
    # caster index, which is already primitive order).
    o = origins.index_select(1, ray)
    d = directions.index_select(1, ray)
    lin = prims.lin.index_select(1, prim)
    off = prims.off.index_select(1, prim)
    lo_x = lin[0] * o[0] + lin[1] * o[1] + lin[2] * o[2] + off[0]
    lo_y = lin[3] * o[0] + lin[4] * o[1] + lin[5] * o[2] + off[1]
    lo_z = lin[6] * o[0] + lin[7] * o[1] + lin[8] * o[2] + off[2]
    ld_x = lin[0] * d[0] + lin[1] * d[1] + lin[2] * d[2]
    ld_y = lin[3] * d[0] + lin[4] * d[1] + lin[5] * d[2]
    ld_z = lin[6] * d[0] + lin[7] * d[1] + lin[8] * d[2]
    param = prims.param.index_select(0, prim)
    for kind, lo, hi in _type_slices(prim, prims.ranges):
        s = slice(lo, hi)
        t = hit_distance(
            kind, (lo_x[s], lo_y[s], lo_z[s]), (ld_x[s], ld_y[s], ld_z[s]), param[s], 1e-4
        )
        hit = torch.nonzero(t < t_max).squeeze(1)
        blocked.index_fill_(0, ray[s].index_select(0, hit), True)


def _basis(axis: Tensor) -> tuple[Tensor, Tensor]:
    """Two unit vectors (3,) perpendicular to the unit vector ``axis`` and each other."""
    a = axis.detach().cpu().double().numpy()
    helper = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(a, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(a, e1)
    return (
        torch.as_tensor(e1, dtype=axis.dtype, device=axis.device),
        torch.as_tensor(e2, dtype=axis.dtype, device=axis.device),
    )


# ---------------------------------------------------------------------------------------
# Heightfield terrain.


def march_heightfield(
    heights: Tensor,
    x0: float,
    z0: float,
    size: float,
    origin: Tensor,
    directions: Tensor,
    t_lo: Tensor,
    t_hi: Tensor,
    steps: int = 40,
    refine: int = 6,
) -> Tensor:
    """First crossing of rays below the terrain y = h(x, z), h bilinear in ``heights``.

    ``heights`` (G, G) metres over x in [x0, x0 + size] (columns), z in [z0, z0 + size]
    (rows); ``origin`` (3,) and ``directions`` (3, R) in world coordinates (y up); the
    search runs over [t_lo, t_hi] (R,) with ``steps`` geometrically spaced samples (dense
    near, sparse far, like the projected size of the terrain), then ``refine``
    bisections and a final secant step. Returns t (R,), +inf where the ray stays above.
    Features thinner than a step can be missed; the terrain is smooth at that scale.
    """
    r = directions.shape[1]
    out = torch.full((r,), _INF, device=directions.device)
    live = torch.nonzero(t_hi > t_lo).squeeze(1)
    if live.numel() == 0:
        return out
    grid = heights[None, None]
    scale = 2.0 / size

    def height(x: Tensor, z: Tensor) -> Tensor:
        coords = torch.stack([(x - x0) * scale - 1.0, (z - z0) * scale - 1.0], -1)
        sampled = torch.nn.functional.grid_sample(
            grid,
            coords.reshape(1, 1, -1, 2),
            mode="bilinear",
            padding_mode="border",
            align_corners=True,
        )
        return sampled.reshape(x.shape)

    chunk = max(1, MAX_CHUNK // steps)
    for start in range(0, live.numel(), chunk):
        rows = live[start : start + chunk]
        d = directions.index_select(1, rows)
        lo, hi = t_lo.index_select(0, rows).clamp(min=1e-3), t_hi.index_select(0, rows)
        frac = torch.arange(steps + 1, device=d.device, dtype=d.dtype) / steps
        ts = lo[:, None] * torch.exp(torch.log(hi / lo)[:, None] * frac)  # (n, steps + 1)
        f = (
            origin[1]
            + ts * d[1][:, None]
            - height(origin[0] + ts * d[0][:, None], origin[2] + ts * d[2][:, None])
        )
        below = f < 0
        found = below.any(1)
        first = torch.argmax(below.to(torch.uint8), 1)
        hit_rows = torch.nonzero(found).squeeze(1)
        if hit_rows.numel() == 0:
            continue
        i = first.index_select(0, hit_rows)
        prev = (i - 1).clamp(min=0)[:, None]
        ts_hit, f_hit = ts.index_select(0, hit_rows), f.index_select(0, hit_rows)
        a_t, b_t = ts_hit.gather(1, prev)[:, 0], ts_hit.gather(1, i[:, None])[:, 0]
        a_f, b_f = f_hit.gather(1, prev)[:, 0], f_hit.gather(1, i[:, None])[:, 0]
        dh = d.index_select(1, hit_rows)
        for _ in range(refine):
            mid = 0.5 * (a_t + b_t)
            fm = origin[1] + mid * dh[1] - height(origin[0] + mid * dh[0], origin[2] + mid * dh[2])
            under = fm < 0
            b_t, b_f = torch.where(under, mid, b_t), torch.where(under, fm, b_f)
            a_t, a_f = torch.where(under, a_t, mid), torch.where(under, a_f, fm)
        # Secant between the bracket ends (exact for a locally planar surface).
        w = (a_f / (a_f - b_f).clamp(min=1e-12)).clamp(0.0, 1.0)
        t = torch.where(i == 0, a_t, a_t + (b_t - a_t) * w)
        out.index_copy_(0, rows.index_select(0, hit_rows), t)
    return out


def march_heightfield_image(
    heights: Tensor,
    x0: float,
    z0: float,
    size: float,
    origin: Tensor,
    directions: Tensor,
    t_lo: Tensor,
    t_hi: Tensor,
    height: int,
    width: int,
    block: int = 4,
) -> Tensor:
    """``march_heightfield`` for the H × W rays of an image (raster order), coarse to fine.

    Every ``block``-th ray is marched densely first; each full-resolution ray then only
    searches around the hits of its 3 × 3 coarse neighbourhood (from 0.7× the nearest to
    1.4× the farthest), which needs few steps; where the neighbourhood is only partly
    hit (silhouettes) the far end stays open. Rays whose whole neighbourhood misses are
    taken to miss. Returns t (H * W,), +inf where nothing is hit.
    """
    device = directions.device
    rows = torch.arange(block // 2, height + block - 1, block, device=device).clamp(max=height - 1)
    cols = torch.arange(block // 2, width + block - 1, block, device=device).clamp(max=width - 1)
    hc, wc = rows.numel(), cols.numel()
    coarse = (rows[:, None] * width + cols[None, :]).reshape(-1)
    tc = march_heightfield(
        heights,
        x0,
        z0,
        size,
        origin,
        directions.index_select(1, coarse),
        t_lo.index_select(0, coarse),
        t_hi.index_select(0, coarse),
        steps=48,
        refine=5,
    )
    tc = tc.reshape(1, 1, hc, wc)
    hit = torch.isfinite(tc)
    pool = torch.nn.functional.max_pool2d
    nearest = -pool(torch.where(hit, -tc, -_INF), 3, 1, 1)
    farthest = pool(torch.where(hit, tc, -_INF), 3, 1, 1)
    all_hit = -pool(-hit.float(), 3, 1, 1) > 0.5
    # Each pixel takes the bounds of the coarse cell it falls in.
    cell = (
        (torch.arange(height, device=device) // block).clamp(max=hc - 1)[:, None] * wc
        + (torch.arange(width, device=device) // block).clamp(max=wc - 1)[None, :]
    ).reshape(-1)
    near_px = nearest.reshape(-1).index_select(0, cell)
    far_px = farthest.reshape(-1).index_select(0, cell)
    all_px = all_hit.reshape(-1).index_select(0, cell)
    any_px = torch.isfinite(near_px)
    lo = torch.where(any_px, torch.maximum(t_lo, 0.7 * near_px), t_lo)
    hi = torch.where(all_px, torch.minimum(t_hi, 1.4 * far_px), t_hi)
    # Where no coarse neighbour met the terrain (sky, mostly), assume a miss: only a
    # feature narrower than ``block`` pixels between the coarse rays could be lost.
    # Inside the terrain a short bracket needs few steps; silhouettes get more.
    out = torch.full_like(t_lo, _INF)
    for group, steps in ((all_px, 6), (any_px & ~all_px, 16)):
        rows = torch.nonzero(group).squeeze(1)
        if rows.numel():
            sub_dirs = directions.index_select(1, rows)
            sub_lo, sub_hi = lo.index_select(0, rows), hi.index_select(0, rows)
            t = march_heightfield(
                heights, x0, z0, size, origin, sub_dirs, sub_lo, sub_hi, steps=steps, refine=4
            )
            out.index_copy_(0, rows, t)
    return out


def heightfield_normals(
    heights: Tensor, x0: float, z0: float, size: float, x: Tensor, z: Tensor
) -> Tensor:
    """World-frame unit normals (3, N) of the terrain at (x, z), from central differences
    one grid cell wide (smoother than the bilinear facets, like vertex normals)."""
    g = heights.shape[0]
    step = size / (g - 1)
    grid = heights[None, None]
    scale = 2.0 / size
    offsets = torch.tensor([[step, 0.0], [-step, 0.0], [0.0, step], [0.0, -step]], device=x.device)
    px = x[None, :] + offsets[:, 0:1]
    pz = z[None, :] + offsets[:, 1:2]
    coords = torch.stack([(px - x0) * scale - 1.0, (pz - z0) * scale - 1.0], -1)
    h = torch.nn.functional.grid_sample(
        grid,
        coords.reshape(1, 1, -1, 2),
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    ).reshape(4, -1)
    gx = (h[0] - h[1]) / (2 * step)
    gz = (h[2] - h[3]) / (2 * step)
    inv = torch.rsqrt(gx * gx + gz * gz + 1.0)
    return torch.stack([-gx * inv, inv, -gz * inv], 0)


def ray_slab(origin_y: float, dir_y: Tensor, y_lo: float, y_hi: float) -> tuple[Tensor, Tensor]:
    """The t interval (R,), (R,) during which rays have lo <= y <= hi (may be empty)."""
    inv = 1.0 / dir_y
    ta = (y_lo - origin_y) * inv
    tb = (y_hi - origin_y) * inv
    lo = torch.minimum(ta, tb)
    hi = torch.maximum(ta, tb)
    inside = (origin_y >= y_lo) & (origin_y <= y_hi)
    flat = dir_y == 0
    lo = torch.where(flat, 0.0 if inside else _INF, lo)
    hi = torch.where(flat, _INF if inside else 0.0, hi)
    return lo.clamp(min=0.0), hi
