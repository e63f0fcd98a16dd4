"""Detail for large photos: a global pass, overlapping tiles, one merged map.

A depth network sees a 12-megapixel photo at about 518 px, so thin structures vanish
and edges come back soft. Patch merging recovers detail with any model and no
retraining (the principle of Boosting Monocular Depth, Miangoleh et al. CVPR 2021, and
PatchFusion, Li et al. CVPR 2024; this is our own, simpler form of it):

1. The **global pass**: the whole photo through the model once, as without tiling. It
   fixes the layout and, for relative models, the one scale and shift of the result.
2. The photo is brought to a **working size** at which a grid of overlapping tiles,
   each at the model's native input side, covers it (``working_plan``).
3. Each **tile** runs through the model in batches (memory grows with one batch of
   tiles, not with the photo) and is fitted to the global pass over its own pixels:
   ``a * tile + b`` by trimmed least squares in the model's output space for relative
   models, a median ratio ``a * tile`` for metric ones (their tiles already hold
   meters; only the scale a crop's field of view misleads them about is refitted).
4. The fitted tiles are **blended** with raised-cosine weights that fall to zero
   across each overlap, so no seam shows where one tile hands over to the next; below
   the global pass's own resolution, its layout replaces theirs (``LAYOUT_SIGMA``).
5. The merged map is **upsampled** to the photo: guided by the photo
   (``guided_upsample``, the default with tiles) so that depth edges snap to the
   image's edges, or bilinear.

A tile whose fit fails (flat, or a negative scale: nothing in it the global pass can
anchor) keeps the global pass there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from depthlens.errors import UsageError
from depthlens.geometry.camera import Camera
from depthlens.io.images import Image
from depthlens.models.hooks import network_input_size

if TYPE_CHECKING:
    from depthlens.models.estimator import DepthResult, Estimator

__all__ = [
    "MAX_TILES",
    "Tile",
    "TileOptions",
    "blend_weights",
    "fit_tile",
    "guided_upsample",
    "plan_tiles",
    "predict_tiled",
    "working_plan",
]

Upsample = Literal["auto", "bilinear", "guided"]
UPSAMPLES: tuple[Upsample, ...] = ("auto", "bilinear", "guided")

MAX_TILES = 16  # tiles along the long side a user may ask for (16 x 12 = 192 passes)
MAX_AUTO_TILES = 4  # auto stops here: 4 x 3 tiles already take 13 passes instead of 1
DEFAULT_OVERLAP = 0.25
FIT_SAMPLES = 65_536  # pixels per tile the fit looks at (a regular subsample)
TRIM = 2.5  # the fit drops residuals beyond TRIM robust standard deviations, twice
# Guided upsampling (He & Sun, "Fast Guided Filter", 2015): window radius in working
# pixels and the regulariser on the [0, 1] grey guide's variance.
GUIDE_RADIUS = 4
GUIDE_EPS = 1e-3
# The global pass keeps the merged map's layout below this many of its own pixels (a
# Gaussian's sigma): a tile's own idea of the layout (each crop looks like a whole
# scene to the model) is replaced by the global pass's, its detail is kept.
# benchmarks/bench_tiles.py: sigma 2 lifts δ1 and boundary F1 over plain tiles, 1 less.
LAYOUT_SIGMA = 2.0


@dataclass(frozen=True)
class TileOptions:
    """How to tile a photo: ``tiles`` along its long side (``"auto"`` chooses from the
    photo and the model's input side; 1 means the global pass alone), ``overlap`` the
    fraction of a tile shared with its neighbour, ``upsample`` how the merged map
    reaches the photo's size."""

    tiles: int | Literal["auto"] = "auto"
    overlap: float = DEFAULT_OVERLAP
    upsample: Upsample = "auto"

    def __post_init__(self) -> None:
        if self.tiles != "auto" and not (
            isinstance(self.tiles, int) and 1 <= self.tiles <= MAX_TILES
        ):
            raise UsageError(f"Tiles must be auto or a whole number from 1 to {MAX_TILES}.")
        if not (isinstance(self.overlap, int | float) and 0.05 <= self.overlap <= 0.5):
            raise UsageError("The tile overlap must be a fraction from 0.05 to 0.5 of a tile.")
        if self.upsample not in UPSAMPLES:
            raise UsageError(f"Upsample must be one of {', '.join(UPSAMPLES)}.")

    @classmethod
    def parse(
        cls, tiles: str | int | None, overlap: float = DEFAULT_OVERLAP, upsample: str = "auto"
    ) -> TileOptions | None:
        """Options from what a user asked (flags, form fields, keywords): ``tiles`` is
        ``auto`` or a whole number; None when neither tiles nor an upsampling was asked
        for (one pass, as the model's own code), and 1 tile when only the upsampling was."""
        way = upsample.strip().lower()
        if tiles is None and way == "auto":
            return None
        text = "1" if tiles is None else str(tiles).strip().lower()
        if text != "auto" and not text.isdigit():
            raise UsageError(f"Tiles must be auto or a whole number from 1 to {MAX_TILES}.")
        count: int | Literal["auto"] = "auto" if text == "auto" else int(text)
        return cls(count, float(overlap), way)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Tile:
    """A tile's pixel bounds, rows ``y0:y1`` and columns ``x0:x1``."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        return self.x1 - self.x0


@dataclass(frozen=True)
class WorkingPlan:
    """The size the photo is merged at and its tiles there (all the same size)."""

    height: int
    width: int
    tiles: tuple[Tile, ...]


def _count_along(length: int, tile: int, overlap: float) -> int:
    """Tiles of ``tile`` px overlapping by at least ``overlap`` to cover ``length`` px."""
    if tile >= length:
        return 1
    return math.ceil((length - tile) / (tile * (1.0 - overlap))) + 1


def _starts(length: int, tile: int, count: int) -> list[int]:
    """``count`` start offsets, evenly spread, the first at 0 and the last at the end."""
    if count == 1:
        return [0]
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def working_plan(
    height: int, width: int, tiles: int | Literal["auto"], overlap: float, network_side: int
) -> WorkingPlan:
    """The working size and tile grid for a ``height`` x ``width`` photo.

    ``tiles`` tiles of side ``network_side`` along the long side, overlapping by
    ``overlap``, span the working long side; ``"auto"`` takes the fewest that reach the
    photo's own long side (at most ``MAX_AUTO_TILES``). The working size is the photo's
    scaled to that span, never above the photo's own: tiles of a small photo are then
    smaller than the network side, and the model sees them enlarged. Along the short
    side, as many tiles of the same size as it takes to cover it with at least the same
    overlap.
    """
    long_side = max(height, width)
    if tiles == "auto":
        count = min(MAX_AUTO_TILES, _count_along(long_side, network_side, overlap))
    else:
        count = tiles
    span = network_side * (count - (count - 1) * overlap)
    scale = min(1.0, span / long_side)
    work_h, work_w = max(1, round(height * scale)), max(1, round(width * scale))
    if count == 1:
        return WorkingPlan(work_h, work_w, (Tile(0, 0, work_h, work_w),))
    side = math.ceil(max(work_h, work_w) / (count - (count - 1) * overlap))
    tile_h, tile_w = min(side, work_h), min(side, work_w)
    rows = _starts(work_h, tile_h, _count_along(work_h, tile_h, overlap))
    cols = _starts(work_w, tile_w, _count_along(work_w, tile_w, overlap))
    grid = tuple(Tile(y, x, y + tile_h, x + tile_w) for y in rows for x in cols)
    return WorkingPlan(work_h, work_w, grid)


def plan_tiles(
    height: int,
    width: int,
    tiles: int | Literal["auto"] = "auto",
    overlap: float = DEFAULT_OVERLAP,
    network_side: int = 518,
) -> list[Tile]:
    """The tiles ``predict_tiled`` runs, in the photo's own pixels (for drawing them or
    scoring seams along their borders)."""
    plan = working_plan(height, width, tiles, overlap, network_side)
    sy, sx = height / plan.height, width / plan.width
    return [
        Tile(round(t.y0 * sy), round(t.x0 * sx), round(t.y1 * sy), round(t.x1 * sx))
        for t in plan.tiles
    ]


def network_side(estimator: Estimator) -> int:
    """The side of a square tile the model takes without scaling it: the smaller of
    its preset input height and width."""
    return int(min(estimator.spec.input.size))


def _ramp(length: int, low_open: bool, high_open: bool, fade: int) -> np.ndarray:
    """(length,) weights: 1 inside, a raised cosine from ~0 to 1 over ``fade`` px at an
    end that a neighbouring tile overlaps (``*_open``), 1 up to an end on the border."""
    ramp = np.ones(length, np.float32)
    if fade <= 0:
        return ramp
    fade = min(fade, length // 2)
    # pixel centres at (i + 0.5) / fade: never exactly 0, so every pixel keeps a weight
    rise = (0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)).astype(np.float32)
    if low_open:
        ramp[:fade] = rise
    if high_open:
        ramp[length - fade :] = np.minimum(ramp[length - fade :], rise[::-1])
    return ramp


def blend_weights(tile: Tile, height: int, width: int, overlap: float) -> np.ndarray:
    """(tile.height, tile.width) float32 weights of ``tile`` in a ``height`` x ``width``
    merge: raised-cosine fades over the overlap on each side another tile shares."""
    fade_y = int(tile.height * overlap)
    fade_x = int(tile.width * overlap)
    wy = _ramp(tile.height, tile.y0 > 0, tile.y1 < height, fade_y)
    wx = _ramp(tile.width, tile.x0 > 0, tile.x1 < width, fade_x)
    return np.outer(wy, wx)


def fit_tile(tile: np.ndarray, target: np.ndarray, metric: bool) -> tuple[float, float] | None:
    """``(a, b)`` with ``a * tile + b`` closest to ``target`` over their finite pixels,
    or None when no positive scale fits.

    Relative (``metric=False``): least squares, refitted twice without the residuals
    beyond ``TRIM`` robust standard deviations (1.4826 x the median absolute residual),
    so a thin structure the global pass missed does not pull the fit. Metric: ``b = 0``
    and ``a`` the median ratio of target to tile over pixels where both are positive.
    """
    step = max(1, int(math.sqrt(tile.size / FIT_SAMPLES)))
    x = tile[::step, ::step].ravel().astype(np.float64)
    y = target[::step, ::step].ravel().astype(np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if metric:
        keep &= (x > 0) & (y > 0)
        if keep.sum() < 16:
            return None
        return float(np.median(y[keep] / x[keep])), 0.0
    x, y = x[keep], y[keep]
    scale = 0.0
    shift = 0.0
    for _ in range(3):
        if x.size < 16 or np.ptp(x) <= 1e-12 * max(1.0, float(np.abs(x).max())):
            return None
        scale, shift = np.polyfit(x, y, 1)
        residual = np.abs(scale * x + shift - y)
        spread = 1.4826 * float(np.median(residual))
        if spread <= 0:
            break
        inliers = residual <= TRIM * spread
        x, y = x[inliers], y[inliers]
    if not (math.isfinite(scale) and scale > 0):
        return None
    return float(scale), float(shift)


def _grey(rgb: np.ndarray) -> np.ndarray:
    """(H, W) float32 luma in [0, 1] (ITU-R BT.601 weights, as OpenCV's RGB2GRAY)."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0


def _box(values: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window, the window clipped at the border."""
    return cv2.boxFilter(
        values, -1, (2 * radius + 1, 2 * radius + 1), normalize=True, borderType=cv2.BORDER_REFLECT
    )


def guided_upsample(
    depth: np.ndarray,
    guide_low: np.ndarray,
    guide_high: np.ndarray,
    radius: int = GUIDE_RADIUS,
    eps: float = GUIDE_EPS,
) -> np.ndarray:
    """``depth`` (h, w) brought to ``guide_high``'s (H, W) with its edges where the guide's
    are: the fast guided filter (He & Sun 2015; the guided filter of He, Sun & Tang,
    ECCV 2010, with its linear coefficients found at low resolution).

    In each (2r+1)^2 window of the low-resolution grey guide ``I`` (h, w), depth is
    modelled as ``a * I + b``: ``a = cov(I, d) / (var(I) + eps)``, ``b = mean(d) -
    a * mean(I)``; ``a`` and ``b`` are averaged over the windows, upsampled bilinearly
    and applied to the full-resolution guide: ``q = a * I_high + b``. Where the guide is
    flat (``var(I) << eps``) this is the bilinear upsampling of ``depth``.
    """
    d = depth.astype(np.float32)
    mean_i, mean_d = _box(guide_low, radius), _box(d, radius)
    cov = _box(guide_low * d, radius) - mean_i * mean_d
    var = _box(guide_low * guide_low, radius) - mean_i * mean_i
    a = cov / (np.maximum(var, 0.0) + eps)
    b = mean_d - a * mean_i
    size = (guide_high.shape[1], guide_high.shape[0])
    a_high = cv2.resize(_box(a, radius), size, interpolation=cv2.INTER_LINEAR)
    b_high = cv2.resize(_box(b, radius), size, interpolation=cv2.INTER_LINEAR)
    return a_high * guide_high + b_high


def _crop_camera(camera: Camera, tile: Tile, scale_y: float, scale_x: float) -> Camera:
    """The camera of a tile cut from the photo brought to the working size: focal
    lengths scale with the photo, the principal point moves with the cut."""
    fx, fy = camera.fx * scale_x, camera.fy * scale_y
    cx, cy = camera.cx * scale_x - tile.x0, camera.cy * scale_y - tile.y0
    cx = min(max(cx, -tile.width), 2 * tile.width)
    cy = min(max(cy, -tile.height), 2 * tile.height)
    return replace(camera, fx=fx, fy=fy, cx=cx, cy=cy, width=tile.width, height=tile.height)


def _blur(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian low-pass of a float map (NaN as 0: the mask is applied afterwards)."""
    return cv2.GaussianBlur(np.nan_to_num(values), (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def _resize(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """A float map at (height, width): area-averaged down, bilinear up."""
    if values.shape == (height, width):
        return values
    shrink = height * width < values.shape[0] * values.shape[1]
    method = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(values.astype(np.float32), (width, height), interpolation=method)


def predict_tiled(
    estimator: Estimator,
    image: Image,
    options: TileOptions,
    batch_size: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> DepthResult:
    """``image``'s depth from a global pass merged with tiles (module docstring).

    ``progress(done, total)`` is called as the global pass and each batch of tiles
    finish (``total`` counts the global pass and every tile). The result holds the
    merged depth at the image's size with the global pass's camera, mask and sky;
    confidence, normals and points, which the merged depth no longer matches, are
    dropped. With one tile and bilinear upsampling it is the global pass itself.
    ``options.upsample`` ``"auto"`` is guided.
    """
    if estimator.spec.takes_prompt_depth:
        raise UsageError(
            f"{estimator.spec.name} takes a prompt depth, which tiles cannot share; run it "
            "without tiles."
        )
    plan = working_plan(
        image.height, image.width, options.tiles, options.overlap, network_side(estimator)
    )
    tiled = len(plan.tiles) > 1
    started = time.perf_counter()
    whole = estimator.predict_images([image], batch_size)[0]
    if progress is not None:
        progress(1, 1 + len(plan.tiles) if tiled else 1)
    # auto: guided, which lifts boundary F1 ~20x at no cost in AbsRel (BENCHMARKS.md)
    upsample = "guided" if options.upsample == "auto" else options.upsample
    if not tiled and upsample == "bilinear":
        return whole
    network_h, network_w = network_input_size(image.height, image.width, estimator.spec.input)
    if tiled:
        target = _resize(whole.depth, plan.height, plan.width)
        merged = _merge_tiles(estimator, image, whole, plan, target, options, batch_size, progress)
        sigma = LAYOUT_SIGMA * plan.width / network_w
        merged = merged + _blur(target, sigma) - _blur(merged, sigma)
    else:  # guided upsampling of the global pass from the network's own resolution
        merged = _resize(whole.depth, min(network_h, image.height), min(network_w, image.width))
    tiles_done = time.perf_counter()
    if merged.shape == (image.height, image.width):
        depth = merged
    elif upsample == "guided":
        guide_high = _grey(image.rgb)
        guide_low = _resize(guide_high, *merged.shape)
        depth = guided_upsample(np.nan_to_num(merged), guide_low, guide_high)
    else:
        depth = _resize(merged, image.height, image.width)
    if whole.mask is not None:
        depth = np.where(whole.mask, depth, np.nan)
    if whole.kind == "metric":
        depth = np.maximum(depth, 0.0)
    timings = {
        **whole.timings,
        "tiles": tiles_done - started,
        "upsample": time.perf_counter() - tiles_done,
    }
    return replace(
        whole,
        depth=depth.astype(np.float32),
        timings=timings,
        confidence=None,
        normals=None,
        points=None,
    )


def _merge_tiles(
    estimator: Estimator,
    image: Image,
    whole: DepthResult,
    plan: WorkingPlan,
    target: np.ndarray,
    options: TileOptions,
    batch_size: int,
    progress: Callable[[int, int], None] | None,
) -> np.ndarray:
    """The tiles of ``plan`` fitted to ``target`` (the global pass at the working size)
    and blended, at the working size."""
    metric = whole.kind == "metric"
    working = cv2.resize(image.rgb, (plan.width, plan.height), interpolation=cv2.INTER_AREA)
    camera = whole.camera or image.camera_or_default
    scale_y, scale_x = plan.height / image.height, plan.width / image.width
    total_weight = np.zeros((plan.height, plan.width), np.float32)
    total = np.zeros((plan.height, plan.width), np.float32)
    step = max(1, batch_size)
    for first in range(0, len(plan.tiles), step):
        batch: Sequence[Tile] = plan.tiles[first : first + step]
        crops = [
            Image(
                np.ascontiguousarray(working[t.y0 : t.y1, t.x0 : t.x1]),
                _crop_camera(camera, t, scale_y, scale_x),
                f"{image.source}#tile{first + i}",
            )
            for i, t in enumerate(batch)
        ]
        for tile, result in zip(batch, estimator.predict_images(crops, step), strict=True):
            anchor = target[tile.y0 : tile.y1, tile.x0 : tile.x1]
            fit = fit_tile(result.depth, anchor, metric)
            values = anchor if fit is None else fit[0] * result.depth + fit[1]
            weight = blend_weights(tile, plan.height, plan.width, options.overlap)
            weight = np.where(np.isfinite(values), weight, 0.0).astype(np.float32)
            total[tile.y0 : tile.y1, tile.x0 : tile.x1] += weight * np.nan_to_num(values)
            total_weight[tile.y0 : tile.y1, tile.x0 : tile.x1] += weight
        if progress is not None:
            progress(1 + first + len(batch), 1 + len(plan.tiles))
    covered = total_weight > 0
    return np.where(covered, total / np.where(covered, total_weight, 1.0), target)
