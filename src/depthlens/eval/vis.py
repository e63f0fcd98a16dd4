"""Per-image evaluation panels: RGB | prediction | ground truth | error, side by side,
each tile under a caption that says what it shows, in which units, over which range.

A panel shows the ``AlignedPair`` that ``protocol.prepare_prediction`` gave the
metrics, so what is seen is what was scored. Prediction and ground truth share one
colour range, the percentiles of the ground truth on the scored pixels, and are
coloured as nearness (inverse depth, or the disparity itself), near bright, as MiDaS
and Depth Anything colour their outputs (``viz/colormaps.py``). The error tile is
the per-pixel AbsRel ``|compared − reference| / reference`` on the scored pixels.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from depthlens.eval.protocol import AlignedPair
from depthlens.viz.colormaps import colorize

__all__ = [
    "CAPTION_BACKGROUND",
    "DEPTH_COLORMAP",
    "ERROR_COLORMAP",
    "MAX_SHOWN_ABS_REL",
    "caption_height",
    "evaluation_panel",
]

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

# The caption strip: two lines of OpenCV's built-in Hershey font (no font file), light
# on dark, sized to the tile: font scale 1 for a tile 800 pixels wide, less for a
# narrower one, and never a strip of more than a fifth of the tile's height (a KITTI
# frame is 1216 × 352), within the bounds below.
CAPTION_BACKGROUND = (24, 24, 24)
_TITLE_COLOR = (255, 255, 255)
_DETAIL_COLOR = (200, 200, 200)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_WIDTH_AT_SCALE_1 = 800
_HEIGHT_AT_SCALE_1 = 360
_SCALE_BOUNDS = (0.35, 1.5)
_SMALLEST_SCALE = 0.3  # a longer line shrinks to fit down to this, then loses its end
_LINE_PIXELS = 30  # a line's height at scale 1 (the font's capitals are 22 high)
_STRIP_PIXELS = 70  # the strip's height at scale 1: two lines and a margin


def _caption_scale(width: int, height: int) -> float:
    low, high = _SCALE_BOUNDS
    fit = min(width / _WIDTH_AT_SCALE_1, height / _HEIGHT_AT_SCALE_1)
    return min(max(fit, low), high)


def caption_height(width: int, height: int) -> int:
    """The height in pixels of the caption strip above tiles of ``width`` × ``height``."""
    return round(_STRIP_PIXELS * _caption_scale(width, height))


def evaluation_panel(rgb: np.ndarray, pair: AlignedPair) -> np.ndarray:
    """(c + H, 4W, 3) uint8: ``rgb`` (H, W, 3) uint8, the aligned prediction over the
    whole frame, the reference and the AbsRel error, left to right, under a caption
    strip ``c = caption_height(W, H)`` pixels high.

    The captions name each tile with its units and its colour range: "RGB" and the
    share of pixels scored; "prediction (m)" and "ground truth (m)" (``1/m`` in
    disparity space) with the shared range, nearest to farthest; "AbsRel error" from 0
    to ``MAX_SHOWN_ABS_REL``. Prediction and reference are coloured with
    ``DEPTH_COLORMAP`` over the ``RANGE_PERCENTILES`` of the reference's nearness on
    ``pair.mask``; the error with ``ERROR_COLORMAP`` over ``0..MAX_SHOWN_ABS_REL``,
    clipped. Pixels outside the mask are ``UNSCORED_COLOR`` in the reference and error
    tiles, as are non-finite predictions. ValueError when ``rgb`` is not the pair's
    size or no pixel is scored.
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
    unit = "m" if pair.space == "depth" else "1/m"
    shown = _shown_range(low, high, pair.space)
    captions = [
        ("RGB", f"{mask.mean():.0%} of pixels scored"),
        (f"prediction ({unit})", shown),
        (f"ground truth ({unit})", f"{shown}; grey: not scored"),
        ("AbsRel error", f"0-{MAX_SHOWN_ABS_REL:g}, clipped"),
    ]
    height, width = mask.shape
    strip = np.concatenate(
        [_caption(title, detail, width, height) for title, detail in captions], 1
    )
    return np.concatenate([strip, np.concatenate(tiles, axis=1)], axis=0)


def _shown_range(low: float, high: float, space: Literal["depth", "disparity"]) -> str:
    """The colour range as values of the tile's own units, smallest first: depth from
    ``1 / high`` (nearest) to ``1 / low``, disparity from ``low`` to ``high``."""
    unit = "m" if space == "depth" else "1/m"
    if space == "depth":
        low, high = (1.0 / high if high > 0 else np.inf), (1.0 / low if low > 0 else np.inf)
    return f"{low:.3g}-{high:.3g} {unit}"


def _caption(title: str, detail: str, width: int, height: int) -> np.ndarray:
    """(caption_height(width, height), width, 3) uint8: ``title`` over ``detail``, each
    shrunk to fit the width, and cut short when even that is too small, so that a
    caption never runs into the next tile's."""
    scale = _caption_scale(width, height)
    strip = np.empty((caption_height(width, height), width, 3), np.uint8)
    strip[:] = CAPTION_BACKGROUND
    margin = max(2, round(8 * scale))
    room = width - 2 * margin
    for line, (text, color) in enumerate(((title, _TITLE_COLOR), (detail, _DETAIL_COLOR))):
        thickness = 2 if scale >= 1.0 and line == 0 else 1
        fitted = scale
        text_width = cv2.getTextSize(text, _FONT, fitted, thickness)[0][0]
        if text_width > room:
            fitted = max(scale * room / text_width, _SMALLEST_SCALE)
        while text and cv2.getTextSize(text, _FONT, fitted, thickness)[0][0] > room:
            text = text[:-1]
        baseline = round((line + 1) * _LINE_PIXELS * scale)
        cv2.putText(strip, text, (margin, baseline), _FONT, fitted, color, thickness, cv2.LINE_AA)
    return strip


def _nearness(values: np.ndarray, space: Literal["depth", "disparity"]) -> np.ndarray:
    """Larger for nearer pixels: disparity as it is, depth inverted (non-finite stays so)."""
    if space == "disparity":
        return values
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 / values
