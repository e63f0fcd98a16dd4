"""Depth maps as colour images: 256-entry colour tables, ``colorize`` and panels.

The convention is that of MiDaS and Depth Anything, which colour inverse depth: the
larger a value, the later its colour in the map (the bright end of inferno, turbo,
viridis, magma and gray; the red end of spectral). Metric depth (larger = farther)
reads the same way after ``1 / depth``, or with ``vmin`` > ``vmax``.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np

__all__ = ["COLORMAPS", "colorize", "colormap_lut", "legend_bar", "side_by_side"]

COLORMAPS = ("inferno", "turbo", "viridis", "magma", "spectral", "gray")

_OPENCV_MAPS = {
    "inferno": cv2.COLORMAP_INFERNO,
    "turbo": cv2.COLORMAP_TURBO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "magma": cv2.COLORMAP_MAGMA,
}

# ColorBrewer "Spectral", 11 classes (Cynthia Brewer, colorbrewer2.org), red to blue:
# the control points of matplotlib's 'Spectral' (matplotlib: lib/matplotlib/_cm.py,
# _Spectral_data), spaced evenly and interpolated linearly.
SPECTRAL_11 = (
    (0x9E, 0x01, 0x42),
    (0xD5, 0x3E, 0x4F),
    (0xF4, 0x6D, 0x43),
    (0xFD, 0xAE, 0x61),
    (0xFE, 0xE0, 0x8B),
    (0xFF, 0xFF, 0xBF),
    (0xE6, 0xF5, 0x98),
    (0xAB, 0xDD, 0xA4),
    (0x66, 0xC2, 0xA5),
    (0x32, 0x88, 0xBD),
    (0x5E, 0x4F, 0xA2),
)


@cache
def colormap_lut(colormap: str) -> np.ndarray:
    """The (256, 3) uint8 RGB table of ``colormap``: entry 0 for the smallest value.

    inferno, turbo, viridis and magma are OpenCV's tables (converted from BGR);
    spectral runs blue to red like matplotlib's 'Spectral_r', which Depth Anything
    uses, so near (large inverse depth) is red; gray is ``(i, i, i)``. Read-only.
    """
    if colormap in _OPENCV_MAPS:
        ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
        lut = cv2.applyColorMap(ramp, _OPENCV_MAPS[colormap])[:, 0, ::-1]
    elif colormap == "spectral":
        points = np.array(SPECTRAL_11[::-1], dtype=np.float64)
        where = np.linspace(0.0, 1.0, len(points))
        x = np.linspace(0.0, 1.0, 256)
        channels = [np.interp(x, where, points[:, c]) for c in range(3)]
        lut = np.rint(np.stack(channels, axis=1)).astype(np.uint8)
    elif colormap == "gray":
        lut = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    else:
        raise ValueError(f"unknown colormap {colormap!r}; choose one of {', '.join(COLORMAPS)}")
    lut = np.ascontiguousarray(lut)
    lut.setflags(write=False)
    return lut


def colorize(
    depth: np.ndarray,
    colormap: str = "inferno",
    vmin: float | None = None,
    vmax: float | None = None,
    invalid_color: tuple[int, int, int] = (0, 0, 0),
    percentile_clip: tuple[float, float] | None = None,
) -> np.ndarray:
    """Colour an (H, W) depth map; returns (H, W, 3) uint8 RGB.

    Values are mapped linearly from ``vmin`` (first colour) to ``vmax`` (last colour)
    and clipped outside. Missing bounds come from the finite values: their min and
    max, or the ``percentile_clip`` percentiles, e.g. ``(2, 98)`` to ignore outliers.
    ``vmin`` > ``vmax`` reverses the map. The value range is cut into 256 equal bins,
    one per table entry; if ``vmin == vmax`` every valid pixel gets the first colour.
    Non-finite pixels get ``invalid_color``.
    """
    lut = colormap_lut(colormap)
    values = np.asarray(depth, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"colorize takes an (H, W) depth map, got shape {values.shape}")
    valid = np.isfinite(values)
    all_valid = bool(valid.all())
    if not valid.any():
        out = np.empty((*values.shape, 3), np.uint8)
        out[...] = np.asarray(invalid_color, dtype=np.uint8)
        return out
    if vmin is None or vmax is None:
        finite = values if all_valid else values[valid]
        if percentile_clip is None:
            low, high = float(finite.min()), float(finite.max())
        else:
            low, high = (float(q) for q in np.percentile(finite, percentile_clip))
        vmin = low if vmin is None else vmin
        vmax = high if vmax is None else vmax
    if vmax == vmin:
        index = np.zeros(values.shape, np.uint8)
    else:
        with np.errstate(invalid="ignore"):
            t = (values - vmin) * (256.0 / (vmax - vmin))  # 256 equal bins, as matplotlib
        if not all_valid:
            t[~valid] = 0.0
        index = np.clip(t, 0.0, 255.0).astype(np.uint8)
    out = np.take(lut, index, axis=0)
    if not all_valid:
        out[~valid] = np.asarray(invalid_color, dtype=np.uint8)
    return out


def side_by_side(
    rgb: np.ndarray,
    heat: np.ndarray,
    gap: int = 8,
    gap_color: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Join two (H, W, 3) uint8 images of equal height left to right, ``gap`` pixels apart.

    Returns (H, W_rgb + gap + W_heat, 3) uint8.
    """
    if rgb.ndim != 3 or heat.ndim != 3 or rgb.shape[2] != 3 or heat.shape[2] != 3:
        raise ValueError(f"side_by_side takes two (H, W, 3) images, got {rgb.shape}, {heat.shape}")
    if rgb.shape[0] != heat.shape[0]:
        raise ValueError(
            f"panels must have the same height, got {rgb.shape[0]} and {heat.shape[0]}"
        )
    if gap < 0:
        raise ValueError(f"gap must be >= 0, got {gap}")
    spacer = np.empty((rgb.shape[0], gap, 3), np.uint8)
    spacer[...] = np.asarray(gap_color, dtype=np.uint8)
    return np.concatenate(
        [rgb.astype(np.uint8, copy=False), spacer, heat.astype(np.uint8, copy=False)], axis=1
    )


def legend_bar(colormap: str, height: int, width: int) -> np.ndarray:
    """A vertical (height, width, 3) uint8 strip of ``colormap``: largest value at the top."""
    if height <= 0 or width <= 0:
        raise ValueError(f"legend size must be positive, got {height}×{width}")
    ramp = np.linspace(1.0, 0.0, height)[:, None].repeat(width, axis=1)
    return colorize(ramp, colormap, vmin=0.0, vmax=1.0)
