"""One scale for every effect: nearness, a disparity normalised to [0, 1].

Effects need "how near is this pixel" in a form that does not depend on the model.
Relative models already give inverse depth (larger = nearer) up to scale and shift;
metric models give meters, whose reciprocal is the disparity a camera translation
produces. Either way the map is rescaled so the farthest valid pixel is 0 and the
nearest 1, robustly (percentiles, so a few stray pixels do not set the range).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depthlens.models.spec import DepthKind

# Percentiles that set 0 and 1: a few outliers (sky speckle, a hot pixel) must not
# compress the whole scene into a sliver of the range.
LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.5


def disparity_of(depth: np.ndarray, kind: DepthKind) -> np.ndarray:
    """(H, W) float32 disparity-like map: ``depth`` itself for relative inverse depth,
    ``1 / depth`` for meters. Invalid pixels (non-finite, or depth ≤ 0 in meters) are
    0, as far as far gets."""
    values = np.asarray(depth, dtype=np.float32)
    if kind == "metric":
        valid = np.isfinite(values) & (values > 0)
        return np.divide(1.0, values, out=np.zeros_like(values), where=valid)
    return np.where(np.isfinite(values), values, 0.0).astype(np.float32)


@dataclass(frozen=True)
class NearnessScale:
    """The disparities a depth map's nearness 0 and 1 stand for (its robust far and
    near ends), so other values, a chosen focus depth say, land on the same scale."""

    low: float
    high: float

    @classmethod
    def of(cls, disparity: np.ndarray) -> NearnessScale:
        """The scale of a ``disparity_of`` map: its LOW and HIGH percentiles."""
        low, high = np.percentile(disparity, [LOW_PERCENTILE, HIGH_PERCENTILE])
        return cls(float(low), float(high))

    def apply(self, disparity: np.ndarray) -> np.ndarray:
        """Nearness in [0, 1] of disparities (float32); all 0.5 on a flat scale."""
        values = np.asarray(disparity, dtype=np.float32)
        if not self.high > self.low:
            return np.full(values.shape, 0.5, np.float32)
        return np.clip((values - self.low) / (self.high - self.low), 0.0, 1.0).astype(np.float32)


def nearness(depth: np.ndarray, kind: DepthKind) -> np.ndarray:
    """(H, W) float32 in [0, 1]: 0 at the far end of the scene, 1 at the near end.

    A flat map (no depth variation) is all 0.5.
    """
    disparity = disparity_of(depth, kind)
    return NearnessScale.of(disparity).apply(disparity)
