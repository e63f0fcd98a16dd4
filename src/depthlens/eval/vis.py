"""Per-image evaluation panels: RGB | prediction | ground truth | error, side by side.

A panel shows the ``AlignedPair`` that ``protocol.prepare_prediction`` gave the
metrics, so what is seen is what was scored. Prediction and ground truth share one
colour range, the percentiles of the ground truth on the scored pixels, and are
coloured as nearness (inverse depth, or the disparity itself), near bright, as MiDaS
and Depth Anything colour their outputs (``viz/colormaps.py``). The error tile is
the per-pixel AbsRel ``|compared − reference| / reference`` on the scored pixels.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from depthlens.eval.protocol import AlignedPair
from depthlens.viz.colormaps import colorize

__all__ = ["DEPTH_COLORMAP", "ERROR_COLORMAP", "MAX_SHOWN_ABS_REL", "evaluation_panel"]

DEPTH_COLORMAP = "inferno"
# Dark blue (no error) to red: unlike DEPTH_COLORMAP, so the error tile is not read as depth.
ERROR_COLORMAP = "turbo"
# A fixed scale, so panels of different images and models compare; 50 % off and worse
# all get the last colour.
MAX_SHOWN_ABS_REL = 0.5
# A few extreme ground-truth pixels (sky at the cap, a close wall) do not set the range.
RANGE_PERCENTILES = (2.0, 98.0)
# Pixels the protocol does not count, in the ground-truth and error tiles.
UNSCORED_COLOR = (128, 128, 128)


def evaluation_panel(rgb: np.ndarray, pair: AlignedPair) -> np.ndarray:
    """(H, 4W, 3) uint8: ``rgb`` (H, W, 3) uint8, the aligned prediction over the whole
    frame, the reference and the AbsRel error, left to right.

    Prediction and reference are coloured with ``DEPTH_COLORMAP`` over the
    ``RANGE_PERCENTILES`` of the reference's nearness on ``pair.mask``; the error with
    ``ERROR_COLORMAP`` over ``0..MAX_SHOWN_ABS_REL``, clipped. Pixels outside the mask
    are ``UNSCORED_COLOR`` in the reference and error tiles, as are non-finite
    predictions. ValueError when ``rgb`` is not the pair's size or no pixel is scored.
    """
    mask = pair.mask
    if rgb.dtype != np.uint8 or rgb.shape != (*mask.shape, 3):
        raise ValueError(
            f"rgb must be {mask.shape} × 3 uint8 like the scored maps, got {rgb.dtype} {rgb.shape}"
        )
    if not mask.any():
        raise ValueError("an evaluation panel needs at least one scored pixel")
    reference = np.where(mask, pair.reference, np.nan)
    predicted_nearness = _nearness(pair.compared, pair.space)
    reference_nearness = _nearness(reference, pair.space)
    low, high = (float(q) for q in np.percentile(reference_nearness[mask], RANGE_PERCENTILES))
    with np.errstate(divide="ignore", invalid="ignore"):
        abs_rel = np.abs(pair.compared - reference) / reference
    tiles = [
        rgb,
        colorize(predicted_nearness, DEPTH_COLORMAP, low, high, invalid_color=UNSCORED_COLOR),
        colorize(reference_nearness, DEPTH_COLORMAP, low, high, invalid_color=UNSCORED_COLOR),
        colorize(abs_rel, ERROR_COLORMAP, 0.0, MAX_SHOWN_ABS_REL, invalid_color=UNSCORED_COLOR),
    ]
    return np.concatenate(tiles, axis=1)


def _nearness(values: np.ndarray, space: Literal["depth", "disparity"]) -> np.ndarray:
    """Larger for nearer pixels: disparity as it is, depth inverted (non-finite stays so)."""
    if space == "disparity":
        return values
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 / values
