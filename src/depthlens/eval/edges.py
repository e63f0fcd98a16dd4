"""Sharpness of predicted depth: the Depth Pro boundary metric and a tile-seam score.

**Boundary precision / recall / F1** (Bochkovskii et al., "Depth Pro: Sharp Monocular
Metric Depth in Less Than a Second", ICLR 2025, sec. 4; definition as in
apple/ml-depth-pro: src/depth_pro/eval/boundary_metrics.py, ``SI_boundary_F1``, commit
9efe5c1). An *occluding contour* at threshold ``t`` lies between two neighbouring pixels
when one is more than ``t`` times farther than the other::

    far / near > t        (depth d > 0; the same test as ratio of inverse depths)

Each such pair is recorded in one of four directions, by which neighbour is the near
one (left, top, right or bottom). For each direction ``k`` with ground-truth contours
``G_k`` and predicted contours ``P_k``::

    recall_k = |P_k ∩ G_k| / max(|G_k|, 1)      precision_k = |P_k ∩ G_k| / max(|P_k|, 1)
    R = mean_k recall_k,  P = mean_k precision_k,  F1_t = 2PR / (P + R)   (0 when P + R = 0)

and the reported score is the average over the thresholds ``t_i = linspace(1.05, 1.25,
10)`` weighted by ``t_i / Σ t_i``. Precision and recall are averaged the same way here
(the reference returns only F1). Consequences of the definition worth knowing:

- a direction without any ground-truth contour contributes recall 0 (and precision 0
  unless it predicts some), so a perfect prediction of a map whose only contour is a
  single vertical step scores F1 = 0.25; a map without contours scores 0;
- the test is invariant to the *scale* of depth but not to a shift, so a relative
  prediction must be aligned first. For relative inverse depth (``relative_inverse``
  results) use the MiDaS alignment the rest of the evaluation uses:
  ``eval.protocol.prepare_prediction(pred, gt, valid, protocol, "depth_from_disparity")``
  and pass its ``compared`` depth here. A metric prediction is passed as it is.

Depths at or below 1e-6 are raised to 1e-6 before the test, as the reference's
``invert_depth`` does. ``valid`` (optional, not in the reference) drops every pair that
touches an invalid pixel from both maps: holes in real ground truth. Where the sky
should count as far, give it a far depth instead of masking it.

**Seam score**: how much stronger the depth gradient is along the interior borders of
tiles than elsewhere, ``mean |∇d| on the band / mean |∇d| off the band``; 1.0 means the
borders are unremarkable. Scene edges that happen to fall near a border move it too, so
compare it against a one-pass prediction measured on the same tile layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from depthlens.errors import UsageError

__all__ = [
    "BOUNDARY_THRESHOLDS",
    "BoundaryScores",
    "TileBounds",
    "boundary_scores",
    "occluding_contours",
    "seam_mask",
    "seam_score",
]

#: The depth ratios at which contours are found, and the weight of each in the average
#: (apple/ml-depth-pro: boundary_metrics.py, ``get_thresholds_and_weights(1.05, 1.25, 10)``).
BOUNDARY_THRESHOLDS = np.linspace(1.05, 1.25, 10)
_MIN_DEPTH = 1e-6  # the reference's invert_depth clip


@dataclass(frozen=True)
class BoundaryScores:
    """Threshold-weighted boundary precision, recall and F1 of one prediction, in [0, 1]."""

    precision: float
    recall: float
    f1: float


def _check(depth: npt.ArrayLike, name: str) -> np.ndarray:
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2 or min(d.shape) < 2:
        raise UsageError(f"{name} must be an (H, W) depth map of at least 2 × 2, got {d.shape}.")
    return d


def _ratios(depth: np.ndarray) -> tuple[np.ndarray, ...]:
    """far / near for each neighbour pair, per direction of the near pixel: left, top,
    right, bottom; horizontal pairs are (H, W − 1), vertical ones (H − 1, W)."""
    d = np.maximum(depth, _MIN_DEPTH)
    return (
        d[:, 1:] / d[:, :-1],  # left pixel is nearer
        d[1:, :] / d[:-1, :],  # top pixel is nearer
        d[:, :-1] / d[:, 1:],  # right pixel is nearer
        d[:-1, :] / d[1:, :],  # bottom pixel is nearer
    )


def _pair_masks(valid: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per direction (as ``_ratios``): True where both pixels of the pair are valid."""
    horizontal = valid[:, 1:] & valid[:, :-1]
    vertical = valid[1:, :] & valid[:-1, :]
    return horizontal, vertical, horizontal, vertical


def occluding_contours(
    depth: npt.ArrayLike, threshold: float, valid: npt.ArrayLike | None = None
) -> tuple[np.ndarray, ...]:
    """The contours of ``depth`` (H, W) at one ratio ``threshold``: four bool maps, one
    per direction of the near pixel (left, top, right, bottom). Left/right maps are
    (H, W − 1) over horizontal pairs, top/bottom maps (H − 1, W) over vertical pairs."""
    d = _check(depth, "depth")
    pairs = _pair_masks(_valid(valid, d.shape))
    return tuple((ratio > threshold) & ok for ratio, ok in zip(_ratios(d), pairs, strict=True))


def _valid(valid: npt.ArrayLike | None, shape: tuple[int, ...]) -> np.ndarray:
    if valid is None:
        return np.ones(shape, dtype=bool)
    v = np.asarray(valid)
    if v.shape != shape or v.dtype != np.bool_:
        raise UsageError(f"valid must be a bool map of shape {shape}, got {v.dtype} {v.shape}.")
    return v


def boundary_scores(
    pred: npt.ArrayLike,
    gt: npt.ArrayLike,
    valid: npt.ArrayLike | None = None,
    thresholds: Sequence[float] | np.ndarray = BOUNDARY_THRESHOLDS,
) -> BoundaryScores:
    """Depth Pro's scale-invariant boundary precision, recall and F1 of ``pred`` against
    ``gt``: (H, W) depths in one unit (see the module docstring for the formula and for
    aligning relative predictions first). ``valid`` (H, W) bool drops the pairs that
    touch an invalid pixel; ``thresholds`` are weighted by their own values."""
    p, g = _check(pred, "pred"), _check(gt, "gt")
    if p.shape != g.shape:
        raise UsageError(f"pred {p.shape} and gt {g.shape} must have the same shape.")
    mask = _valid(valid, g.shape)
    if not (np.isfinite(p[mask]).all() and np.isfinite(g[mask]).all()):
        raise UsageError("pred and gt must be finite depths at the valid pixels.")
    ts = np.asarray(thresholds, dtype=np.float64)
    if ts.ndim != 1 or ts.size == 0 or not np.all(ts > 0):
        raise UsageError("thresholds must be a non-empty list of positive depth ratios.")
    # Invalid pixels are never read: every pair touching one is dropped below.
    p, g = np.where(mask, p, 1.0), np.where(mask, g, 1.0)
    # Both maps are contours at t exactly when min(ratio_pred, ratio_gt) > t, so each
    # direction needs the sorted ratios of three sets, counted at every t at once.
    hits = np.zeros((4, ts.size))
    n_pred = np.zeros((4, ts.size))
    n_gt = np.zeros((4, ts.size))
    pairs = _pair_masks(mask)
    for k, (rp, rg, ok) in enumerate(zip(_ratios(p), _ratios(g), pairs, strict=True)):
        rp, rg = rp[ok], rg[ok]
        n_pred[k] = _count_above(rp, ts)
        n_gt[k] = _count_above(rg, ts)
        hits[k] = _count_above(np.minimum(rp, rg), ts)
    recall = (hits / np.maximum(n_gt, 1)).mean(0)
    precision = (hits / np.maximum(n_pred, 1)).mean(0)
    total = precision + recall
    f1 = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1.0), 0.0)
    weights = ts / ts.sum()
    return BoundaryScores(
        precision=float(weights @ precision),
        recall=float(weights @ recall),
        f1=float(weights @ f1),
    )


def _count_above(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many ``values`` are strictly greater than each threshold."""
    ordered = np.sort(values[values > thresholds.min()])
    return ordered.size - np.searchsorted(ordered, thresholds, side="right")


class TileBounds(Protocol):
    """A tile's pixel bounds: rows ``y0:y1``, columns ``x0:x1`` (ends exclusive)."""

    @property
    def y0(self) -> int: ...
    @property
    def x0(self) -> int: ...
    @property
    def y1(self) -> int: ...
    @property
    def x1(self) -> int: ...


def seam_mask(height: int, width: int, tiles: Sequence[TileBounds], band: int = 2) -> np.ndarray:
    """(H, W) bool: the pixels within ``band`` px of a tile border inside the image.

    A tile edge at column ``x`` (between pixel columns x − 1 and x) marks columns
    ``x − band .. x + band − 1`` over the tile's rows; edges on the image border are not
    seams. Likewise for rows.
    """
    if band < 1:
        raise UsageError(f"The seam band must be at least 1 px wide, not {band}.")
    mask = np.zeros((height, width), dtype=bool)
    for tile in tiles:
        y0, x0, y1, x1 = int(tile.y0), int(tile.x0), int(tile.y1), int(tile.x1)
        if not (0 <= y0 < y1 <= height and 0 <= x0 < x1 <= width):
            raise UsageError(
                f"Tile rows {y0}:{y1}, columns {x0}:{x1} do not fit a {height} × {width} map."
            )
        for x in (x0, x1):
            if 0 < x < width:
                mask[y0:y1, max(x - band, 0) : x + band] = True
        for y in (y0, y1):
            if 0 < y < height:
                mask[max(y - band, 0) : y + band, x0:x1] = True
    return mask


def seam_score(depth: npt.ArrayLike, tiles: Sequence[TileBounds], band: int = 2) -> float:
    """Mean gradient magnitude of ``depth`` (H, W) within ``band`` px of the tiles'
    interior borders over its mean elsewhere (1.0: no seam; the unit cancels).

    Gradients are central differences (``np.gradient``), so a step between two pixel
    columns shows on both of them. Returns 1.0 for a constant map.
    """
    d = _check(depth, "depth")
    if not np.isfinite(d).all():
        raise UsageError("depth must be finite everywhere to score seams.")
    on = seam_mask(d.shape[0], d.shape[1], tiles, band)
    if not on.any():
        raise UsageError("The tiles have no border inside the image, so there is no seam.")
    if on.all():
        raise UsageError("The seam band covers the whole image; use a narrower band.")
    gy, gx = np.gradient(d)
    magnitude = np.hypot(gx, gy)
    inside, outside = float(magnitude[on].mean()), float(magnitude[~on].mean())
    if outside == 0.0:
        return 1.0 if inside == 0.0 else float("inf")
    return inside / outside
