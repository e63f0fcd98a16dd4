"""Forward warping with a z-buffer, and disocclusion filling from the background side.

The view effects (``stereo``, ``parallax``) move every pixel of an image to a new
position computed from its depth. Forward warping ("splatting") sends each source
pixel to its target; where several land on one target pixel the nearest wins, as in
a z-buffer, and target pixels nothing lands on are holes. Holes are disocclusions,
background the source view could not see, so they are filled from the farther side,
with that side's texture mirrored into the gap rather than its edge pixel repeated.

All arrays are on the image grid: ``(H, W)`` maps and ``(H, W, 3)`` uint8 RGB images;
positions are float pixel coordinates with pixel centres at integers, ``x`` along
columns and ``y`` along rows.
"""

from __future__ import annotations

import cv2
import numpy as np

from depthlens.effects.nearness import nearness
from depthlens.models.spec import DepthKind

__all__ = [
    "fill_holes",
    "forward_warp",
    "gather",
    "splat_sources",
    "view_nearness",
    "warp_filled",
]

# A one-pixel gap between the targets of neighbouring source pixels is a crack in a
# stretched surface; wider gaps are disocclusions and are left to fill_holes.
CRACK_GAP = 2

# Side of the box that softens filled holes: rows mirrored about different edges meet
# in seams; averaging the filled values over a few rows blurs them without reading the
# occluder on the near side.
SMOOTH_SIZE = 5

# How much nearer than the gap's edge a mirrored pixel may be and still count as the
# same background (nearness is 0 to 1 over the image): a slanted floor changes a little
# over a gap's width, an object in front of it much more.
MIRROR_TOLERANCE = 0.05

INPAINT_RADIUS = 3  # pixels, the radius OpenCV's examples use for INPAINT_TELEA


def splat_sources(x: np.ndarray, y: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """For each target pixel, the flat index ``i * W + j`` of the source pixel it shows.

    ``x``, ``y`` and ``priority`` are ``(H, W)``: source pixel ``(i, j)`` goes to
    ``(x[i, j], y[i, j])``, rounded to the nearest pixel (halves to even). Where two
    neighbouring source pixels (along a row or a column) land two pixels apart, the
    pixel between them is a crack in a stretched surface and the first of the two
    covers it too (a pixel whose right and lower neighbours both do so also covers the
    diagonal pixel); wider gaps are disocclusions and stay holes. Where several sources
    land on one target the highest ``priority`` wins; among equals a direct hit beats
    a crack cover, then the later source in row-major order wins. Targets off the grid
    and non-finite positions are dropped. Returns ``(H, W)`` int64, -1 where nothing
    landed.
    """
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    priority = np.asarray(priority, dtype=np.float32)
    if x.ndim != 2 or x.shape != y.shape or x.shape != priority.shape:
        raise ValueError(
            f"x, y and priority must be (H, W) maps of one shape, got {x.shape}, {y.shape} "
            f"and {priority.shape}"
        )
    if np.isnan(priority).any():
        raise ValueError("priority must not contain NaN")
    h, w = x.shape
    finite = np.isfinite(x) & np.isfinite(y)
    # Clipping just past the border keeps the integers small; clipped targets stay off
    # the grid and are dropped below.
    tx = np.rint(np.clip(np.where(finite, x, -2.0), -2.0, w + 1.0)).astype(np.int64)
    ty = np.rint(np.clip(np.where(finite, y, -2.0), -2.0, h + 1.0)).astype(np.int64)
    crack_x = np.zeros((h, w), bool)
    crack_x[:, :-1] = (tx[:, 1:] - tx[:, :-1] == CRACK_GAP) & finite[:, 1:] & finite[:, :-1]
    crack_y = np.zeros((h, w), bool)
    crack_y[:-1] = (ty[1:] - ty[:-1] == CRACK_GAP) & finite[1:] & finite[:-1]

    source = np.arange(h * w, dtype=np.int64).reshape(h, w)
    # Crack covers first and direct hits last: the splat order breaks priority ties.
    covers = [
        (crack_x & crack_y, 1, 1),
        (crack_y, 0, 1),
        (crack_x, 1, 0),
        (finite, 0, 0),
    ]
    targets_x = np.concatenate([tx[m] + dx for m, dx, _ in covers])
    targets_y = np.concatenate([ty[m] + dy for m, _, dy in covers])
    sources = np.concatenate([source[m] for m, _, _ in covers])
    on_grid = (targets_x >= 0) & (targets_x < w) & (targets_y >= 0) & (targets_y < h)
    targets = (targets_y * w + targets_x)[on_grid]
    sources = sources[on_grid]

    # z-buffer: one uint64 key per splat, priority in the high 32 bits (as an order-
    # preserving integer) and splat order + 1 in the low; the largest key per target
    # wins, and key 0 means nothing landed.
    keys = (_sortable_bits(priority.ravel()[sources]) << np.uint64(32)) | (
        np.arange(1, len(sources) + 1, dtype=np.uint64)
    )
    zbuffer = np.zeros(h * w, np.uint64)
    np.maximum.at(zbuffer, targets, keys)
    landed = zbuffer > 0
    winners = np.full(h * w, -1, np.int64)
    order = (zbuffer[landed] & np.uint64(0xFFFFFFFF)).astype(np.int64) - 1
    winners[landed] = sources[order]
    return winners.reshape(h, w)


def _sortable_bits(values: np.ndarray) -> np.ndarray:
    """float32 → uint64 with the same order: flip every bit of negatives, set the sign
    bit of the rest (the usual radix-sort key for IEEE floats)."""
    bits = values.astype(np.float32).view(np.uint32)
    negative = (bits >> np.uint32(31)).astype(bool)
    return np.where(negative, ~bits, bits | np.uint32(0x80000000)).astype(np.uint64)


def gather(values: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """``values`` (H, W, ...) seen through ``sources`` from :func:`splat_sources`: each
    target pixel takes its source's value, 0 where ``sources`` is -1."""
    h, w = sources.shape
    flat = values.reshape(h * w, *values.shape[2:])
    out = flat[np.maximum(sources, 0).ravel()].reshape(values.shape)
    out[sources < 0] = 0
    return out


def forward_warp(
    rgb: np.ndarray, x: np.ndarray, y: np.ndarray, priority: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Splat each source pixel ``(i, j)`` of ``rgb`` (H, W, 3) uint8 to ``(x[i, j],
    y[i, j])`` on the same (H, W) grid; where several land on one pixel the highest
    ``priority`` (nearness: near occludes far) wins. See :func:`splat_sources` for the
    rounding and crack rule.

    Returns ``(warped, holes)``: (H, W, 3) uint8, black where nothing landed, and the
    (H, W) bool map of those holes.
    """
    _check_rgb(rgb, "rgb")
    if np.shape(x) != rgb.shape[:2]:
        raise ValueError(f"x, y and priority must be {rgb.shape[:2]} maps, got {np.shape(x)}")
    sources = splat_sources(x, y, priority)
    return gather(rgb, sources), sources < 0


def fill_holes(
    image: np.ndarray, holes: np.ndarray, nearness: np.ndarray | None = None
) -> np.ndarray:
    """Fill the ``holes`` (H, W) bool of ``image`` (H, W, 3) uint8; returns a new image
    in which every pixel has a value (unless ``holes`` covers everything: then black).

    With ``nearness`` (H, W) of the warped image (1 near, 0 far; read only outside the
    holes), holes are treated as disocclusions, background revealed beside a nearer
    occluder, and filled along their row from the farther side of the gap (lower
    nearness; the only side at the image border) by mirroring that side's pixels about
    the gap's edge: the hole pixel ``d`` pixels from the edge takes the known pixel
    ``d − 1`` pixels behind it, reflecting back and forth within the run of known
    pixels there. Copying the edge pixel alone would repeat one colour along the row, a
    streak as long as the gap; the mirror carries the background's texture into the
    gap instead. A mirrored pixel nearer than the edge pixel (by more than
    ``MIRROR_TOLERANCE``) belongs to some other object: there the run is halved until
    the mirror stays on the background (down to the edge pixel itself). Rows without
    any known pixel are filled the same way along columns, and what is still left with
    ``cv2.inpaint`` (Telea). The filled pixels are then averaged over a 5 × 5 box of
    filled pixels only, which hides the seams between rows mirrored about different
    edges without pulling in the occluder's colour (inpainting would read the
    occluder's edge too).

    Without ``nearness`` the holes are simply inpainted (``cv2.INPAINT_TELEA``,
    radius 3).
    """
    _check_rgb(image, "image")
    holes = np.asarray(holes, dtype=bool)
    if holes.shape != image.shape[:2]:
        raise ValueError(f"holes must be a {image.shape[:2]} map, got {holes.shape}")
    if not holes.any():
        return image.copy()
    if holes.all():
        return np.zeros_like(image)
    if nearness is None:
        return _inpaint(image, holes)
    near = np.asarray(nearness, dtype=np.float32)
    if near.shape != holes.shape:
        raise ValueError(f"nearness must be a {holes.shape} map, got {near.shape}")

    known = ~holes
    filled = image.copy()
    rows, columns, values = _mirror_from_far_side(image, near, known)
    filled[rows, columns] = values
    left = holes.copy()
    left[rows, columns] = False
    if left.any():
        # Transposed, rows are the columns: the same fill along each column.
        columns, rows, values = _mirror_from_far_side(image.transpose(1, 0, 2), near.T, known.T)
        use = left[rows, columns]
        filled[rows[use], columns[use]] = values[use]
        left[rows[use], columns[use]] = False
    if left.any():
        filled = _inpaint(filled, left)

    weight = holes.astype(np.float32)
    size = (SMOOTH_SIZE, SMOOTH_SIZE)
    total = cv2.blur(filled.astype(np.float32) * weight[..., None], size)[holes]
    count = cv2.blur(weight, size)[holes]  # ≥ 1/25: each hole pixel counts itself
    filled[holes] = np.clip(np.rint(total / count[:, None]), 0, 255).astype(np.uint8)
    return filled


def warp_filled(rgb: np.ndarray, x: np.ndarray, y: np.ndarray, nearness: np.ndarray) -> np.ndarray:
    """:func:`forward_warp` with ``nearness`` as the priority, then :func:`fill_holes`
    with the nearness carried along to the warped view. Returns (H, W, 3) uint8."""
    _check_rgb(rgb, "rgb")
    sources = splat_sources(x, y, nearness)
    near = np.asarray(nearness, dtype=np.float32)
    return fill_holes(gather(rgb, sources), sources < 0, gather(near, sources))


def view_nearness(rgb: np.ndarray, depth: np.ndarray, kind: DepthKind) -> np.ndarray:
    """Check that ``rgb`` is (H, W, 3) uint8 and ``depth`` an (H, W) map of the same size;
    return the (H, W) float32 nearness of ``depth`` (``depthlens.effects.nearness``)."""
    _check_rgb(rgb, "rgb")
    if np.ndim(depth) != 2 or np.shape(depth) != rgb.shape[:2]:
        raise ValueError(
            f"depth must be an (H, W) map the size of the image {rgb.shape[:2]}, "
            f"got shape {np.shape(depth)}"
        )
    return nearness(depth, kind)


def _mirror_from_far_side(
    image: np.ndarray, near: np.ndarray, known: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-wise mirror fill (see :func:`fill_holes`): every hole pixel whose row has a
    known pixel takes one from the farther of its two nearest known neighbours' sides
    (the one side there is at a border), reflected about that neighbour. Returns the
    filled pixels' ``rows`` and ``columns`` (int arrays) and their ``values`` (N, 3)."""
    w = known.shape[1]
    index = np.arange(w, dtype=np.int32)
    # Per pixel: the nearest known pixel at or to its left / right, and the nearest hole
    # at or to its left / right (the ends of a known run, for the reflection).
    left = np.maximum.accumulate(np.where(known, index, -1), axis=1)
    right = np.minimum.accumulate(np.where(known, index, w)[:, ::-1], axis=1)[:, ::-1]
    hole_left = np.maximum.accumulate(np.where(known, -1, index), axis=1)
    hole_right = np.minimum.accumulate(np.where(known, w, index)[:, ::-1], axis=1)[:, ::-1]

    rows, columns = np.nonzero(~known)
    edge_left, edge_right = left[rows, columns], right[rows, columns]
    has_left, has_right = edge_left >= 0, edge_right < w
    reached = has_left | has_right
    rows, columns = rows[reached], columns[reached]
    has_left, has_right = has_left[reached], has_right[reached]
    edge_left = np.clip(edge_left[reached], 0, w - 1)
    edge_right = np.clip(edge_right[reached], 0, w - 1)
    use_right = has_right & (~has_left | (near[rows, edge_right] < near[rows, edge_left]))

    # Mirror about the edge within the run of known pixels behind it (at least 1 on a
    # side that exists); where the mirror lands on something nearer, halve the run and
    # try again: a sliver of background between two objects is mirrored within itself.
    edge = np.where(use_right, edge_right, edge_left)
    step = np.where(use_right, 1, -1)
    offset = np.where(use_right, edge_right - columns, columns - edge_left) - 1
    run = np.where(
        use_right, hole_right[rows, edge_right] - edge_right, edge_left - hole_left[rows, edge_left]
    )
    run = np.maximum(run, 1)
    limit = near[rows, edge] + np.float32(MIRROR_TOLERANCE)
    source = edge + step * _reflect(offset, run)
    redo = np.flatnonzero(near[rows, source] > limit)
    while redo.size:
        run[redo] //= 2  # a run of 1 mirrors the edge itself, which always passes
        source[redo] = edge[redo] + step[redo] * _reflect(offset[redo], run[redo])
        redo = redo[near[rows[redo], source[redo]] > limit[redo]]
    return rows, columns, image[rows, source]


def _reflect(offset: np.ndarray, run: np.ndarray) -> np.ndarray:
    """``offset`` ≥ 0 folded into ``[0, run)`` back and forth: 0, 1, …, run − 1,
    run − 1, …, 0, 0, 1, … (a mirror that repeats without a jump)."""
    phase = offset % (2 * run)
    return np.where(phase < run, phase, 2 * run - 1 - phase)


def _inpaint(image: np.ndarray, holes: np.ndarray) -> np.ndarray:
    mask = holes.astype(np.uint8) * 255
    return cv2.inpaint(np.ascontiguousarray(image), mask, INPAINT_RADIUS, cv2.INPAINT_TELEA)


def _check_rgb(image: np.ndarray, name: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(
            f"{name} must be a uint8 numpy array, got {getattr(image, 'dtype', type(image))}"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must be an (H, W, 3) RGB image, got shape {image.shape}")
