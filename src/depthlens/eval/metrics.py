"""Standard monocular-depth error metrics, per image over the valid pixels, then averaged.

Notation: ``d`` is the predicted depth, ``d*`` the ground-truth depth, both in meters and
positive on the valid mask; means run over the N valid pixels of one image::

    δ_k        = mean[max(d*/d, d/d*) < 1.25^k]             k = 1, 2, 3   (higher is better)
    abs_rel    = mean(|d* − d| / d*)
    sq_rel     = mean((d* − d)² / d*)
    rmse       = sqrt(mean((d* − d)²))
    rmse_log   = sqrt(mean((ln d* − ln d)²))
    rmse_log10 = sqrt(mean((log10(d* + ε) − log10(d + ε))²))       ε = 1e-10 (Metric3D)
    log10      = mean(|log10 d* − log10 d|)
    silog      = one of SILOG_VARIANTS (the papers disagree, so the variant is always named)
    bad_pixel_percent = 100 · mean[max(d/d*, d*/d) > 1.25]    (MiDaS/DPT "δ>1.25", lower is better)

Sources of the formulas (written independently here, nothing copied):

- isl-org/ZoeDepth: zoedepth/utils/misc.py::compute_errors
- cleinc/bts: utils/eval_with_pngs.py::compute_errors
- DepthAnything/Depth-Anything-V2: metric_depth/util/metric.py::eval_depth
- YvanYin/Metric3D: mono/utils/avg_meter.py::get_silog_err, ::get_rmse_log_err
- Ranftl et al., "Towards Robust Monocular Depth Estimation" (MiDaS, TPAMI 2022) and
  "Vision Transformers for Dense Prediction" (DPT, ICCV 2021): the "δ>1.25" percentage.

Every metric is computed per image (``depth_metrics``) and the per-image values are then
averaged over the images (``aggregate``), as all of the protocols above do; this is not
the same as pooling the pixels of all images.

Input policy: pixels outside the mask are never read, so they may hold anything (0, NaN,
inf). Inside the mask, a prediction or ground-truth value that is not finite or not
positive raises ValueError: clipping to a depth range is the protocol layer's job and is
done before these functions are called.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "BAD_PIXEL_THRESHOLD",
    "DELTA_BASE",
    "METRIC_NAMES",
    "SILOG_VARIANTS",
    "SilogVariant",
    "aggregate",
    "depth_metrics",
    "silog_error",
]

SilogVariant = Literal["zoedepth", "depth_anything", "metric3d"]

#: The SILog definitions in use, each with its formula and source (e = log d − log d*).
SILOG_VARIANTS: Mapping[str, str] = {
    "zoedepth": (
        "100·sqrt(mean(e²) − (mean e)²), e = ln d − ln d*; also BTS and Marigold. "
        "isl-org/ZoeDepth: zoedepth/utils/misc.py::compute_errors, "
        "cleinc/bts: utils/eval_with_pngs.py::compute_errors"
    ),
    "depth_anything": (
        "sqrt(mean(e²) − 0.5·(mean e)²), e = ln d − ln d*, no ×100. "
        "DepthAnything/Depth-Anything-V2: metric_depth/util/metric.py::eval_depth"
    ),
    "metric3d": (
        "sqrt(mean(e²) − (mean e)²), e = log10(d + 1e-10) − log10(d* + 1e-10), no ×100. "
        "YvanYin/Metric3D: mono/utils/avg_meter.py::get_silog_err"
    ),
}

#: Names of the per-image metrics, in the order ``depth_metrics`` returns them.
METRIC_NAMES: tuple[str, ...] = (
    "delta1",
    "delta2",
    "delta3",
    "abs_rel",
    "sq_rel",
    "rmse",
    "rmse_log",
    "rmse_log10",
    "log10",
    "silog",
    "bad_pixel_percent",
)

#: δ_k counts the pixels whose ratio max(d*/d, d/d*) is below DELTA_BASE**k.
DELTA_BASE = 1.25
#: bad_pixel_percent counts the pixels whose ratio is above this.
BAD_PIXEL_THRESHOLD = 1.25

_LOG10_EPS = 1e-10  # Metric3D adds this inside its log10s.


def silog_error(
    pred: npt.ArrayLike, gt: npt.ArrayLike, variant: SilogVariant = "zoedepth"
) -> float:
    """The scale-invariant log error of valid pixels ``pred`` and ``gt`` (same shape, > 0).

    - ``"zoedepth"``: ``100·sqrt(mean(e²) − (mean e)²)``, ``e = ln d − ln d*``
      (isl-org/ZoeDepth: zoedepth/utils/misc.py::compute_errors; BTS, Marigold alike).
    - ``"depth_anything"``: ``sqrt(mean(e²) − 0.5·(mean e)²)``, ``e = ln d − ln d*``
      (DepthAnything/Depth-Anything-V2: metric_depth/util/metric.py::eval_depth).
    - ``"metric3d"``: ``sqrt(mean(e²) − (mean e)²)``,
      ``e = log10(d + 1e-10) − log10(d* + 1e-10)``
      (YvanYin/Metric3D: mono/utils/avg_meter.py::get_silog_err).

    The variance form ``mean(e²) − (mean e)²`` can round to a tiny negative number when
    ``e`` is constant; it is clamped at 0 so a pure scale error gives 0, not NaN.
    Inputs are not validated here beyond the variant name; ``depth_metrics`` does that.
    """
    if variant not in SILOG_VARIANTS:
        raise ValueError(
            f"Unknown SILog variant {variant!r}; choose one of {', '.join(SILOG_VARIANTS)}."
        )
    d = np.asarray(pred, dtype=np.float64).ravel()
    d_star = np.asarray(gt, dtype=np.float64).ravel()
    if variant == "metric3d":
        e = np.log10(d + _LOG10_EPS) - np.log10(d_star + _LOG10_EPS)
    else:
        e = np.log(d) - np.log(d_star)
    mean_sq = float(np.mean(e**2))
    mean = float(np.mean(e))
    if variant == "zoedepth":
        return 100.0 * math.sqrt(max(mean_sq - mean**2, 0.0))
    if variant == "depth_anything":
        return math.sqrt(max(mean_sq - 0.5 * mean**2, 0.0))
    return math.sqrt(max(mean_sq - mean**2, 0.0))


def _check_inputs(
    pred: npt.ArrayLike, gt: npt.ArrayLike, mask: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """The valid pixels of ``pred`` and ``gt`` as float64 1-D arrays, after validation."""
    p = np.asarray(pred)
    g = np.asarray(gt)
    m = np.asarray(mask)
    if p.ndim != 2 or p.shape != g.shape or p.shape != m.shape:
        raise ValueError(
            f"pred, gt and mask must be (H, W) arrays of the same shape, got "
            f"{p.shape}, {g.shape} and {m.shape}."
        )
    if m.dtype != np.bool_:
        raise ValueError(f"mask must be a boolean array, got dtype {m.dtype}.")
    d = p[m].astype(np.float64)
    d_star = g[m].astype(np.float64)
    if not (np.all(np.isfinite(d)) and np.all(d > 0)):
        raise ValueError(
            "pred has non-finite or non-positive depths inside the mask; clip it to the "
            "protocol's depth range before computing metrics."
        )
    if not (np.all(np.isfinite(d_star)) and np.all(d_star > 0)):
        raise ValueError(
            "gt has non-finite or non-positive depths inside the mask; leave those pixels "
            "out of the mask."
        )
    return d, d_star


def depth_metrics(
    pred: npt.ArrayLike,
    gt: npt.ArrayLike,
    mask: npt.ArrayLike,
    silog: SilogVariant = "zoedepth",
    min_pixels: int = 1,
) -> dict[str, float] | None:
    """All of ``METRIC_NAMES`` for one image: (H, W) depths ``pred``, ``gt`` and bool ``mask``.

    Only the pixels where ``mask`` is True are read; there ``pred`` and ``gt`` must be
    finite and positive (ValueError otherwise). Computation is in float64. The formulas
    are in the module docstring; ``silog`` picks the SILog variant (see
    ``SILOG_VARIANTS``). Returns None when the image has fewer than ``min_pixels`` valid
    pixels (the Depth Anything protocol uses ``min_pixels=10``), so callers can skip it.
    """
    if silog not in SILOG_VARIANTS:
        raise ValueError(
            f"Unknown SILog variant {silog!r}; choose one of {', '.join(SILOG_VARIANTS)}."
        )
    if min_pixels < 1:
        raise ValueError(f"min_pixels must be at least 1, got {min_pixels}.")
    d, d_star = _check_inputs(pred, gt, mask)
    if d.size < min_pixels:
        return None

    ratio = np.maximum(d_star / d, d / d_star)
    diff = d_star - d
    log_diff = np.log(d_star) - np.log(d)
    log10_diff = np.log10(d_star) - np.log10(d)
    log10_eps_diff = np.log10(d_star + _LOG10_EPS) - np.log10(d + _LOG10_EPS)
    values = {
        "delta1": float(np.mean(ratio < DELTA_BASE)),
        "delta2": float(np.mean(ratio < DELTA_BASE**2)),
        "delta3": float(np.mean(ratio < DELTA_BASE**3)),
        "abs_rel": float(np.mean(np.abs(diff) / d_star)),
        "sq_rel": float(np.mean(diff**2 / d_star)),
        "rmse": math.sqrt(float(np.mean(diff**2))),
        "rmse_log": math.sqrt(float(np.mean(log_diff**2))),
        "rmse_log10": math.sqrt(float(np.mean(log10_eps_diff**2))),
        "log10": float(np.mean(np.abs(log10_diff))),
        "silog": silog_error(d, d_star, silog),
        "bad_pixel_percent": 100.0 * float(np.mean(ratio > BAD_PIXEL_THRESHOLD)),
    }
    return {name: values[name] for name in METRIC_NAMES}


def aggregate(rows: Sequence[Mapping[str, float] | None]) -> dict[str, float]:
    """The mean of each metric over images, plus ``"n"``, the number of images averaged.

    ``rows`` are ``depth_metrics`` results, one per image; None entries (images skipped
    for too few valid pixels) are left out. Every row must have the same metric names.
    Raises ValueError when no row is left to average.
    """
    kept = [row for row in rows if row is not None]
    if not kept:
        raise ValueError("No image had enough valid pixels to average metrics over.")
    names = list(kept[0])
    for row in kept[1:]:
        if set(row) != set(names):
            raise ValueError(
                f"Every row must have the same metric names; got {sorted(names)} and {sorted(row)}."
            )
    result: dict[str, float] = {
        name: float(np.mean(np.array([row[name] for row in kept], dtype=np.float64)))
        for name in names
    }
    result["n"] = len(kept)
    return result
