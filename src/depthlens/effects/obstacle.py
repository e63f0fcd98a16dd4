"""Near-obstacle warning: how much of the view is closer than a threshold, and where the
nearest thing is.

Metric maps are thresholded in meters: a pixel is near when ``0 < depth < threshold``.
Relative maps carry no distance, only an order, so their threshold is on nearness
(``effects.nearness``: 0 at the far end of this scene, 1 at the near end): a pixel is
near when ``nearness >= threshold``, so 0.8 means "in the nearest fifth of this scene's
inverse-depth range", which is not a distance. Any scene with depth variation has a
nearest part, so a relative map nearly always warns; only a metric map can say that
nothing is within reach.

Near pixels are grouped into 8-connected regions; regions smaller than ``min_area`` of
the image are dropped as noise (speckle at depth edges, a hot pixel). The nearest
region is the one with the smallest robust depth (5th percentile, meters) or the
largest robust nearness (95th percentile): robust, so a few stray pixels inside a
region do not decide which is nearest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from depthlens.effects.nearness import nearness
from depthlens.models.spec import DepthKind

__all__ = [
    "DEFAULT_METRIC_THRESHOLD",
    "DEFAULT_RELATIVE_THRESHOLD",
    "ObstacleReport",
    "annotate_obstacles",
    "find_obstacles",
]

DEFAULT_METRIC_THRESHOLD = 1.0  # meters: about arm's length, a step away
DEFAULT_RELATIVE_THRESHOLD = 0.8  # nearness: the nearest fifth of the scene's range
METRIC_PERCENTILE = 5.0  # robust minimum depth of a region
RELATIVE_PERCENTILE = 95.0  # robust maximum nearness of a region

WARNING_RGB = (255, 0, 0)
LABEL_TEXT_RGB = (255, 255, 255)
OVERLAY_OPACITY = 0.45


@dataclass(frozen=True)
class ObstacleReport:
    """What :func:`find_obstacles` found.

    warning: whether any near region is left after dropping those under ``min_area``.
    near_fraction: near pixels / valid pixels (finite, and > 0 for meters), in [0, 1].
    threshold: the threshold used, in ``unit``.
    unit: "m" for metric maps, "nearness" for relative ones.
    nearest_box: (x0, y0, x1, y1) pixel box of the nearest region, x1 and y1
        exclusive; None without a warning.
    nearest_value: that region's 5th-percentile depth in meters, or its
        95th-percentile nearness; None without a warning.
    regions: the number of near regions kept.
    """

    warning: bool
    near_fraction: float
    threshold: float
    unit: Literal["m", "nearness"]
    nearest_box: tuple[int, int, int, int] | None
    nearest_value: float | None
    regions: int

    def to_json(self) -> dict[str, object]:
        """The report as plain JSON types; the box as ``{"x0", "y0", "x1", "y1"}`` or None."""
        box = None
        if self.nearest_box is not None:
            x0, y0, x1, y1 = self.nearest_box
            box = {"x0": int(x0), "y0": int(y0), "x1": int(x1), "y1": int(y1)}
        return {
            "warning": bool(self.warning),
            "near_fraction": float(self.near_fraction),
            "threshold": float(self.threshold),
            "unit": self.unit,
            "nearest_box": box,
            "nearest_value": None if self.nearest_value is None else float(self.nearest_value),
            "regions": int(self.regions),
        }


def find_obstacles(
    depth: np.ndarray,
    kind: DepthKind,
    threshold: float | None = None,
    min_area: float = 0.002,
) -> tuple[ObstacleReport, np.ndarray]:
    """Find the near parts of a depth map (see the module docstring).

    Args:
        depth: (H, W) meters (``kind="metric"``) or relative inverse depth, larger =
            nearer (``kind="relative_inverse"``). Non-finite pixels, and pixels ≤ 0 in
            meters, are invalid: never near, and not part of the view.
        kind: what ``depth`` holds.
        threshold: meters for metric maps (near: ``0 < depth < threshold``), a
            nearness in (0, 1] for relative ones (near: ``nearness >= threshold``, a
            fraction of the scene's depth range, not a distance). None picks
            :data:`DEFAULT_METRIC_THRESHOLD` or :data:`DEFAULT_RELATIVE_THRESHOLD`.
        min_area: regions with fewer pixels than ``min_area`` × H × W are dropped.

    Returns:
        The :class:`ObstacleReport` and the (H, W) bool mask of the near regions kept.

    Raises:
        ValueError: a map that is not 2-D, an unknown ``kind``, a threshold that is not
            positive (or, for relative maps, above 1), or ``min_area`` outside [0, 1].
    """
    values = np.asarray(depth, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"depth must be an (H, W) map, got shape {values.shape}")
    if kind not in ("relative_inverse", "metric"):
        raise ValueError(f"kind must be 'relative_inverse' or 'metric', got {kind!r}")
    metric = kind == "metric"
    if threshold is None:
        threshold = DEFAULT_METRIC_THRESHOLD if metric else DEFAULT_RELATIVE_THRESHOLD
    threshold = float(threshold)
    if metric and not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(
            f"a metric threshold must be a positive distance in meters, got {threshold}"
        )
    if not metric and not 0 < threshold <= 1:
        raise ValueError(f"a relative threshold must be a nearness in (0, 1], got {threshold}")
    if not 0 <= min_area <= 1:
        raise ValueError(f"min_area must be a fraction of the image in [0, 1], got {min_area}")

    valid = np.isfinite(values)
    if metric:
        valid &= values > 0
        score = values  # smaller is nearer
        near = valid & (values < threshold)
    else:
        score = nearness(values, kind)  # larger is nearer
        near = valid & (score >= threshold)

    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        near.astype(np.uint8), connectivity=8
    )
    smallest = min_area * values.size
    kept = np.zeros(values.shape, bool)
    regions = 0
    nearest_box: tuple[int, int, int, int] | None = None
    nearest_value: float | None = None
    for label in range(1, count):  # label 0 is the background
        x, y, w, h, area = (int(s) for s in stats[label])
        if area < smallest:
            continue
        inside = labels[y : y + h, x : x + w] == label
        kept[y : y + h, x : x + w] |= inside
        regions += 1
        region = score[y : y + h, x : x + w][inside]
        value = float(np.percentile(region, METRIC_PERCENTILE if metric else RELATIVE_PERCENTILE))
        if nearest_value is None or (value < nearest_value if metric else value > nearest_value):
            nearest_value, nearest_box = value, (x, y, x + w, y + h)

    valid_count = int(valid.sum())
    report = ObstacleReport(
        warning=regions > 0,
        near_fraction=int(kept.sum()) / valid_count if valid_count else 0.0,
        threshold=threshold,
        unit="m" if metric else "nearness",
        nearest_box=nearest_box,
        nearest_value=nearest_value,
        regions=regions,
    )
    return report, kept


def annotate_obstacles(rgb: np.ndarray, mask: np.ndarray, report: ObstacleReport) -> np.ndarray:
    """(H, W, 3) uint8 RGB copy of ``rgb`` with the near regions marked.

    The near ``mask`` is tinted red (45 % opacity), the nearest region gets a red
    rectangle and a tag above it (inside its top edge when there is no room above) that
    reads its depth ("0.62 m") or "near" for relative maps. Without a warning nothing
    is drawn: the copy equals ``rgb``, so "unchanged" means "clear".

    Raises:
        ValueError: ``rgb`` is not (H, W, 3) uint8 or ``mask`` is not (H, W).
    """
    image = np.asarray(rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"rgb must be an (H, W, 3) uint8 image, got shape {image.shape} and {image.dtype}"
        )
    near = np.asarray(mask, dtype=bool)
    if near.shape != image.shape[:2]:
        raise ValueError(
            f"mask must be (H, W) = {image.shape[:2]} like the image, got shape {near.shape}"
        )
    out = np.ascontiguousarray(image).copy()
    if not report.warning:
        return out

    tinted = out[near].astype(np.float32) * (1.0 - OVERLAY_OPACITY)
    tinted += np.array(WARNING_RGB, np.float32) * OVERLAY_OPACITY
    out[near] = np.rint(tinted).astype(np.uint8)
    if report.nearest_box is None:
        return out

    height, width = near.shape
    x0, y0, x1, y1 = report.nearest_box
    thickness = max(1, round(min(height, width) / 200))
    cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), WARNING_RGB, thickness)
    if report.unit == "m" and report.nearest_value is not None:
        label = f"{report.nearest_value:.2f} m"
    else:
        label = "near"
    _draw_tag(out, label, x0, y0, thickness)
    return out


def _draw_tag(image: np.ndarray, label: str, x: int, y: int, thickness: int) -> None:
    """White ``label`` on a red tag whose bottom-left corner is at (x, y), or whose
    top-left corner is there when the tag does not fit above; drawn in place."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max(0.35, min(image.shape[:2]) / 600)
    (text_w, text_h), baseline = cv2.getTextSize(label, font, scale, thickness)
    pad = 2 * thickness
    tag_h = text_h + baseline + 2 * pad
    top = y - tag_h if y >= tag_h else y
    x = min(max(x, 0), max(image.shape[1] - text_w - 2 * pad, 0))
    cv2.rectangle(image, (x, top), (x + text_w + 2 * pad, top + tag_h), WARNING_RGB, cv2.FILLED)
    origin = (x + pad, top + pad + text_h)
    cv2.putText(image, label, origin, font, scale, LABEL_TEXT_RGB, thickness, cv2.LINE_AA)
