"""Metric depth from a prediction and a few known metric points (``--align-to POINTS``).

A relative model gives inverse depth up to an unknown scale and shift; a metric
model gives metres, often at a slightly wrong scale. A handful of measured points
(LiDAR or SfM points projected into the image, tape measurements) pins both down.

Points are rows ``u, v, depth_m``: ``u`` the pixel column coordinate, ``v`` the row
coordinate, ``depth_m`` the metric depth (z along the optical axis, in metres).
Pixel coordinates are continuous with the origin at the top-left corner of the
top-left pixel, so pixel ``(row, col)`` has its centre at ``(col + 0.5, row + 0.5)``
and the image covers ``[0, W] × [0, H]``, as in :class:`~depthlens.geometry.camera.Camera`.
Integer pixel indices ``(col, row)`` are written ``(col + 0.5, row + 0.5)``.

The fits, per prediction kind:

* ``relative_inverse`` (larger = nearer, known up to ``a·x + b``): scale and shift in
  disparity space, ``s·p + t ≈ 1 / d``, as in the MiDaS protocol. RANSAC with
  2-point minimal samples scores each candidate by the relative depth error
  ``|1 / (s·p + t) − d| / d`` at every point (inlier: at most ``threshold``, 5 % by
  default; more inliers wins, ties go to the lower truncated squared error, MSAC).
  Every pair is tried when there are at most ``iterations`` pairs, otherwise
  ``iterations`` random pairs from a generator seeded with ``seed``, so a fit is
  deterministic. The winner is refined by least squares in disparity space on its
  inliers (:func:`~depthlens.geometry.align.fit_scale_shift`), re-selecting the
  inliers and refitting until the set is stable.
* ``metric``: a scale only, ``s·p ≈ d``. It starts from the median of the ratios
  ``d / p`` (robust to up to half the points being wrong), then minimises the squared
  relative error ``Σ (s·p / d − 1)²`` over the points within ``threshold``
  (:func:`~depthlens.geometry.align.fit_scale` on ``p / d`` against 1), re-selecting
  the inliers until the set is stable.

Aligned disparity is clamped to the floor ``1 / max_depth`` before it is inverted,
so the output has no negative, zero or infinite depth: pixels below the floor (sky,
or a shift that pushes far surfaces behind the camera) get exactly ``max_depth`` —
``depth == max_depth`` finds them — or NaN with ``beyond="nan"``.

Reference: Ranftl et al., "Towards Robust Monocular Depth Estimation", TPAMI 2022
(scale and shift in disparity space); Fischler & Bolles, "Random Sample Consensus",
CACM 1981; Torr & Zisserman, "MLESAC", CVIU 2000 (truncated-cost scoring).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from depthlens.errors import UsageError
from depthlens.geometry.align import fit_scale, fit_scale_shift

__all__ = [
    "DEFAULT_ITERATIONS",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_THRESHOLD",
    "MIN_POINTS",
    "AlignmentReport",
    "MetricPoints",
    "ResidualStats",
    "align_to_points",
    "read_points",
    "sample_at",
]

MIN_POINTS = 3
DEFAULT_THRESHOLD = 0.05  # relative depth error of an inlier: 5 %
DEFAULT_MAX_DEPTH = 1000.0  # metres; the disparity floor is 1 / DEFAULT_MAX_DEPTH
DEFAULT_ITERATIONS = 1000
_MAX_REFINE = 20
_CHUNK = 1 << 22  # hypotheses × points scored at once, to bound memory
_HEADERS = {("u", "v", "depth"), ("u", "v", "depth_m")}
_NPY_MAGIC = b"\x93NUMPY"

Space = Literal["disparity", "depth"]


@dataclass(frozen=True)
class MetricPoints:
    """Known metric points in an image: three ``(N,)`` float64 arrays.

    ``u``, ``v`` are continuous pixel coordinates (pixel ``(row, col)`` has its
    centre at ``(col + 0.5, row + 0.5)``), ``depth`` is metric depth in metres.
    """

    u: np.ndarray
    v: np.ndarray
    depth: np.ndarray

    def __len__(self) -> int:
        return len(self.depth)


@dataclass(frozen=True)
class ResidualStats:
    """Errors of the aligned depth over a set of points (NaN when the set is empty).

    ``rmse = sqrt(mean((d̂ − d)²))`` in metres, ``abs_rel = mean(|d̂ − d| / d)``,
    ``median_abs = median(|d̂ − d|)`` in metres (mean of the two middle values for an
    even count).
    """

    count: int
    rmse: float
    abs_rel: float
    median_abs: float

    @classmethod
    def of(cls, abs_error: np.ndarray, rel_error: np.ndarray) -> ResidualStats:
        if len(abs_error) == 0:
            return cls(0, math.nan, math.nan, math.nan)
        return cls(
            count=len(abs_error),
            rmse=float(np.sqrt(np.mean(abs_error**2))),
            abs_rel=float(np.mean(rel_error)),
            median_abs=float(np.median(abs_error)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "rmse_m": _json_float(self.rmse),
            "abs_rel": _json_float(self.abs_rel),
            "median_abs_m": _json_float(self.median_abs),
        }


@dataclass(frozen=True)
class AlignmentReport:
    """How a prediction was aligned to metric points, and how well it fits them.

    The mapping is ``depth = 1 / max(scale·p + shift, 1 / max_depth)`` in
    ``"disparity"`` space and ``depth = scale·p`` (``shift = 0``) in ``"depth"``
    space. Per-point arrays are ``(N,)`` in the order of the points: ``predicted`` is
    that mapping applied to the bilinearly sampled prediction (metres), ``abs_error =
    |predicted − depth|`` (metres), ``rel_error = abs_error / depth``; ``inliers``
    marks ``rel_error <= threshold``. ``clamped_pixels`` counts the pixels of the map
    whose aligned disparity fell below the floor (0 in depth space).
    """

    space: Space
    scale: float
    shift: float
    threshold: float
    max_depth: float
    inliers: np.ndarray
    predicted: np.ndarray
    abs_error: np.ndarray
    rel_error: np.ndarray
    all_points: ResidualStats
    inlier_points: ResidualStats
    clamped_pixels: int = 0
    pixels: int = 0

    @property
    def inlier_count(self) -> int:
        return int(self.inliers.sum())

    @property
    def point_count(self) -> int:
        return len(self.inliers)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only; NaN becomes None."""
        return {
            "space": self.space,
            "scale": self.scale,
            "shift": self.shift,
            "threshold": self.threshold,
            "max_depth_m": self.max_depth,
            "points": self.point_count,
            "inliers": self.inlier_count,
            "clamped_pixels": self.clamped_pixels,
            "pixels": self.pixels,
            "all_points": self.all_points.to_dict(),
            "inlier_points": self.inlier_points.to_dict(),
            "per_point": {
                "inlier": [bool(x) for x in self.inliers],
                "predicted_m": [_json_float(x) for x in self.predicted],
                "abs_error_m": [_json_float(x) for x in self.abs_error],
                "rel_error": [_json_float(x) for x in self.rel_error],
            },
        }


# --- reading -------------------------------------------------------------------------------------


def read_points(path: str | Path, width: int, height: int) -> MetricPoints:
    """Read metric points for a ``width × height`` image from CSV or NPY.

    CSV: one point per line, ``u,v,depth`` separated by commas (or whitespace);
    blank lines and lines starting with ``#`` are skipped; the first row may be the
    header ``u,v,depth`` (or ``u,v,depth_m``). NPY: an ``(N, 3)`` numeric array of
    the same columns (told apart by the NPY magic bytes, not the extension).

    Raises:
        UsageError: a missing or unreadable file, a malformed row (its line), a depth
            that is not a positive finite number, a point outside ``[0, width] ×
            [0, height]``, or fewer than :data:`MIN_POINTS` points.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"The metric points file {path} does not exist.")
    try:
        with path.open("rb") as f:
            is_npy = f.read(len(_NPY_MAGIC)) == _NPY_MAGIC
    except OSError as exc:
        raise UsageError(f"Cannot read the metric points file {path}: {exc.strerror}.") from None
    rows, where = _read_npy(path) if is_npy else _read_csv(path)
    if len(rows) < MIN_POINTS:
        raise UsageError(
            f"{path} holds {len(rows)} metric point{'s' if len(rows) != 1 else ''}; "
            f"at least {MIN_POINTS} are needed to fit a scale and shift."
        )
    u, v, depth = rows[:, 0], rows[:, 1], rows[:, 2]
    for i in range(len(rows)):
        if not (math.isfinite(depth[i]) and depth[i] > 0):
            raise UsageError(
                f"{where(i)} of {path} has depth {depth[i]:g}; depths must be positive, "
                "finite metres."
            )
        if not (0 <= u[i] <= width and 0 <= v[i] <= height):
            raise UsageError(
                f"{where(i)} of {path} lies at (u={u[i]:g}, v={v[i]:g}), outside the "
                f"{width}x{height} image (u in [0, {width}], v in [0, {height}])."
            )
    return MetricPoints(u.copy(), v.copy(), depth.copy())


def _read_npy(path: Path) -> tuple[np.ndarray, Callable[[int], str]]:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"Cannot read {path} as an NPY array: {exc}.") from None
    if array.ndim != 2 or array.shape[1] != 3 or array.dtype.kind not in "fiu":
        raise UsageError(
            f"{path} holds a {array.dtype} array of shape {array.shape}; metric points "
            "must be an (N, 3) numeric array of u, v, depth."
        )
    return array.astype(np.float64), lambda i: f"Row {i + 1}"


def _read_csv(path: Path) -> tuple[np.ndarray, Callable[[int], str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read {path} as UTF-8 CSV text: {exc}.") from None
    rows: list[tuple[float, float, float]] = []
    lines: list[int] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [x.strip() for x in line.split(",")] if "," in line else line.split()
        if not rows and tuple(x.lower() for x in fields) in _HEADERS:
            continue
        try:
            if len(fields) != 3:
                raise ValueError
            u, v, d = (float(x) for x in fields)
        except ValueError:
            raise UsageError(
                f"Line {number} of {path} is not three numbers u, v, depth: {line[:80]!r}."
            ) from None
        if not (math.isfinite(u) and math.isfinite(v)):
            raise UsageError(f"Line {number} of {path} has a non-finite pixel coordinate.")
        rows.append((u, v, d))
        lines.append(number)
    array = np.array(rows, dtype=np.float64).reshape(-1, 3)
    return array, lambda i: f"Line {lines[i]}"


# --- sampling ------------------------------------------------------------------------------------


def sample_at(depth_map: np.ndarray, points: MetricPoints) -> np.ndarray:
    """Bilinear samples of an ``(H, W)`` map at the points: ``(N,)`` float64.

    Pixel ``(row, col)`` holds the value at ``(col + 0.5, row + 0.5)``; a point at
    ``(u, v)`` interpolates between the four pixel centres around it. Within half a
    pixel of the border (outside the outermost centres) the edge value is extended.
    """
    values = np.asarray(depth_map, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"depth_map must be (H, W), got shape {values.shape}")
    height, width = values.shape
    x = np.clip(points.u - 0.5, 0.0, width - 1.0)
    y = np.clip(points.v - 0.5, 0.0, height - 1.0)
    x0 = np.clip(np.floor(x), 0, max(width - 2, 0)).astype(np.int64)
    y0 = np.clip(np.floor(y), 0, max(height - 2, 0)).astype(np.int64)
    x1 = np.minimum(x0 + 1, width - 1)
    y1 = np.minimum(y0 + 1, height - 1)
    fx, fy = x - x0, y - y0
    top = values[y0, x0] * (1 - fx) + values[y0, x1] * fx
    bottom = values[y1, x0] * (1 - fx) + values[y1, x1] * fx
    return np.asarray(top * (1 - fy) + bottom * fy)


# --- alignment -----------------------------------------------------------------------------------


def align_to_points(
    depth_map: np.ndarray,
    kind: Literal["relative_inverse", "metric"],
    points: MetricPoints,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    max_depth: float = DEFAULT_MAX_DEPTH,
    beyond: Literal["clamp", "nan"] = "clamp",
    iterations: int = DEFAULT_ITERATIONS,
    seed: int = 0,
) -> tuple[np.ndarray, AlignmentReport]:
    """Metric depth ``(H, W)`` float32 in metres from a prediction and known points.

    Args:
        depth_map: ``(H, W)`` prediction; relative inverse depth for
            ``kind="relative_inverse"``, metres for ``kind="metric"``.
        kind: what ``depth_map`` holds (see the module docstring for each fit).
        points: at least :data:`MIN_POINTS` points inside the map.
        threshold: the relative depth error ``|d̂ − d| / d`` of an inlier.
        max_depth: metres; aligned disparity is clamped to ``1 / max_depth``.
        beyond: what pixels below that floor become: ``max_depth`` or NaN.
        iterations: RANSAC samples when there are more point pairs than this.
        seed: seed of the RANSAC sampler.

    Returns:
        The aligned depth map and an :class:`AlignmentReport`.

    Raises:
        UsageError: the prediction is not finite at some point, no fit has a
            positive scale, fewer than :data:`MIN_POINTS` points agree with any fit,
            or the fit puts most of the image behind the camera.
    """
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    if not max_depth > 0:
        raise ValueError(f"max_depth must be positive, got {max_depth}")
    if kind not in ("relative_inverse", "metric"):
        raise ValueError(f"unknown prediction kind {kind!r}")
    if len(points) < MIN_POINTS:
        raise UsageError(f"At least {MIN_POINTS} metric points are needed, got {len(points)}.")
    pred_map = np.asarray(depth_map, dtype=np.float64)
    p = sample_at(pred_map, points)
    bad = ~np.isfinite(p)
    if bad.any():
        i = int(np.argmax(bad))
        raise UsageError(
            f"The prediction is not finite at {int(bad.sum())} of the {len(p)} metric points "
            f"(the first at u={points.u[i]:g}, v={points.v[i]:g})."
        )
    d = points.depth
    floor = 1.0 / max_depth
    if kind == "relative_inverse":
        space: Space = "disparity"
        scale, shift = _fit_disparity(p, d, threshold, iterations, seed)
        aligned = scale * pred_map + shift
        behind = float(np.mean(aligned <= 0))
        if behind > 0.5:
            raise UsageError(
                f"The fit to the metric points (scale {scale:.4g}, shift {shift:.4g}) puts "
                f"{behind:.0%} of the image behind the camera; the points may not belong "
                "to this image."
            )
        below = ~(aligned >= floor)
        fill = max_depth if beyond == "clamp" else math.nan
        out = np.where(below, fill, 1.0 / np.maximum(aligned, floor))
        predicted = 1.0 / np.maximum(scale * p + shift, floor)
        clamped = int(below.sum())
    else:
        space = "depth"
        scale, shift = _fit_scale(p, d, threshold), 0.0
        out = scale * pred_map
        predicted = scale * p
        clamped = 0
    abs_error = np.abs(predicted - d)
    rel_error = abs_error / d
    inliers = rel_error <= threshold
    report = AlignmentReport(
        space=space,
        scale=scale,
        shift=shift,
        threshold=threshold,
        max_depth=max_depth,
        inliers=inliers,
        predicted=predicted,
        abs_error=abs_error,
        rel_error=rel_error,
        all_points=ResidualStats.of(abs_error, rel_error),
        inlier_points=ResidualStats.of(abs_error[inliers], rel_error[inliers]),
        clamped_pixels=clamped,
        pixels=int(pred_map.size),
    )
    return out.astype(np.float32), report


def _fit_disparity(
    p: np.ndarray, d: np.ndarray, threshold: float, iterations: int, seed: int
) -> tuple[float, float]:
    """RANSAC (2-point samples) then least squares on the inliers: ``s·p + t ≈ 1 / d``."""
    q = 1.0 / d
    n = len(p)
    if n * (n - 1) // 2 <= iterations:
        i, j = np.triu_indices(n, 1)
    else:
        rng = np.random.default_rng(seed)
        i = rng.integers(0, n, iterations)
        j = (i + rng.integers(1, n, iterations)) % n  # never i itself
    dp = p[j] - p[i]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (q[j] - q[i]) / dp
    t = q[i] - s * p[i]
    ok = np.isfinite(s) & np.isfinite(t) & (s > 0)
    s, t = s[ok], t[ok]
    if len(s) == 0:
        raise UsageError(
            "No positive scale maps the prediction onto the metric points: the prediction "
            "is equal at all of them, or is larger where they are farther."
        )
    best_count, best_cost, best = -1, math.inf, 0
    step = max(1, _CHUNK // n)
    for start in range(0, len(s), step):
        err = _disparity_error(s[start : start + step, None], t[start : start + step, None], p, d)
        count = (err <= threshold).sum(1)
        cost = (np.minimum(err, threshold) ** 2).sum(1)
        # Most inliers first, then the lowest truncated cost (MSAC) among those.
        k = int(np.lexsort((cost, -count))[0])
        if count[k] > best_count or (count[k] == best_count and cost[k] < best_cost):
            best_count, best_cost, best = int(count[k]), float(cost[k]), start + k
    inliers = _disparity_error(s[best], t[best], p, d) <= threshold
    if inliers.sum() < MIN_POINTS:
        raise UsageError(
            f"No scale and shift bring more than {int(inliers.sum())} of the {n} metric "
            f"points within {threshold:.0%} of their depth; the points may not belong to "
            "this image."
        )
    scale, shift = _lstsq_disparity(p[inliers], q[inliers])
    for _ in range(_MAX_REFINE):
        new = _disparity_error(scale, shift, p, d) <= threshold
        if (new == inliers).all() or new.sum() < MIN_POINTS:
            break
        new_scale, new_shift = _lstsq_disparity(p[new], q[new])
        if not new_scale > 0:
            break
        inliers, scale, shift = new, new_scale, new_shift
    if not scale > 0:
        raise UsageError(
            "The least-squares fit to the inlying metric points has a non-positive scale; "
            "the prediction does not get larger where the points are nearer."
        )
    return scale, shift


def _disparity_error(s: Any, t: Any, p: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Relative depth error ``|1 / a − d| / d = |1 − a·d| / (a·d)`` with ``a = s·p + t``.

    inf where ``a <= 0`` (the point would be behind the camera).
    """
    ad = (s * p + t) * d
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(ad > 0, np.abs(1.0 - ad) / ad, np.inf))


def _lstsq_disparity(p: np.ndarray, q: np.ndarray) -> tuple[float, float]:
    pred = torch.from_numpy(p)[None, None]
    scale, shift = fit_scale_shift(pred, torch.from_numpy(q)[None, None], _all(pred))
    return float(scale), float(shift)


def _fit_scale(p: np.ndarray, d: np.ndarray, threshold: float) -> float:
    """Median of ``d / p``, then least squares on the relative error over the inliers."""
    usable = p > 0
    if usable.sum() < MIN_POINTS:
        raise UsageError(
            f"The metric prediction is positive at only {int(usable.sum())} of the {len(p)} "
            f"metric points; at least {MIN_POINTS} are needed to fit its scale."
        )
    scale = float(np.median(d[usable] / p[usable]))
    inliers = np.zeros_like(usable)
    for _ in range(_MAX_REFINE):
        new = usable & (np.abs(scale * p - d) / d <= threshold)
        if (new == inliers).all() or new.sum() < MIN_POINTS:
            break
        inliers = new
        # s minimising Σ (s·p/d − 1)²: a plain scale fit of p/d against 1.
        ratio = torch.from_numpy(p[new] / d[new])[None, None]
        scale = float(fit_scale(ratio, torch.ones_like(ratio), _all(ratio)))
    if not scale > 0:
        raise UsageError("The scale fitted to the metric points is not positive.")
    return scale


def _all(x: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(x, dtype=torch.bool)


def _json_float(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None
