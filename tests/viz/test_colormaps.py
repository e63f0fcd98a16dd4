"""colorize and its colour tables: endpoints, linearity, monotone brightness, panels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from depthlens.viz.colormaps import (
    COLORMAPS,
    SPECTRAL_11,
    colorize,
    colormap_lut,
    legend_bar,
    side_by_side,
)

RAMP = np.linspace(0.0, 1.0, 256)[None, :]  # one value per table entry


def opencv_rgb(colormap: int, value: int) -> tuple[int, ...]:
    bgr = cv2.applyColorMap(np.array([[value]], np.uint8), colormap)[0, 0]
    return tuple(int(c) for c in bgr[::-1])


@pytest.mark.parametrize("colormap", COLORMAPS)
def test_tables_are_256_rgb_read_only(colormap):
    lut = colormap_lut(colormap)
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert not lut.flags.writeable
    heat = colorize(RAMP, colormap)
    assert heat.shape == (1, 256, 3) and heat.dtype == np.uint8
    np.testing.assert_array_equal(heat[0], lut)  # each value on the grid gets its entry


@pytest.mark.parametrize(
    ("name", "flag"),
    [
        ("inferno", cv2.COLORMAP_INFERNO),
        ("turbo", cv2.COLORMAP_TURBO),
        ("viridis", cv2.COLORMAP_VIRIDIS),
        ("magma", cv2.COLORMAP_MAGMA),
    ],
)
def test_opencv_maps_endpoints_in_rgb(name, flag):
    heat = colorize(np.array([[0.0, 1.0]]), name)
    assert tuple(heat[0, 0]) == opencv_rgb(flag, 0)
    assert tuple(heat[0, 1]) == opencv_rgb(flag, 255)


def test_inferno_known_colours():
    heat = colorize(np.array([[2.0, 7.0]]), "inferno")  # min-max: 2 -> 0, 7 -> 1
    assert tuple(heat[0, 0]) == (0, 0, 4)  # near-black
    assert tuple(heat[0, 1]) == (252, 255, 164)  # pale yellow: larger is brighter


def test_gray_is_linear():
    lut = colormap_lut("gray")
    np.testing.assert_array_equal(lut, np.repeat(np.arange(256)[:, None], 3, axis=1))
    heat = colorize(np.array([[10.0, 15.0, 20.0]]), "gray")
    np.testing.assert_array_equal(heat[0, :, 0], [0, 128, 255])


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.2126, 0.7152, 0.0722])


@pytest.mark.parametrize("colormap", ["inferno", "viridis", "magma", "gray"])
def test_perceptual_maps_brighten_monotonically(colormap):
    lum = luminance(colormap_lut(colormap))
    assert np.all(np.diff(lum) >= -0.5)  # allow table rounding
    assert lum[-1] - lum[0] > 150


def test_spectral_runs_blue_to_red_through_colorbrewer_points():
    lut = colormap_lut("spectral")
    assert tuple(lut[0]) == SPECTRAL_11[-1] == (0x5E, 0x4F, 0xA2)  # far: blue
    assert tuple(lut[255]) == SPECTRAL_11[0] == (0x9E, 0x01, 0x42)  # near: red
    assert tuple(lut[128]) == pytest.approx((0xFF, 0xFF, 0xBF), abs=2)  # the middle point


def test_invalid_pixels_get_invalid_color_and_do_not_shift_range():
    depth = np.array([[np.nan, 1.0, 3.0, np.inf, -np.inf]])
    heat = colorize(depth, "gray", invalid_color=(10, 200, 30))
    for column in (0, 3, 4):
        assert tuple(heat[0, column]) == (10, 200, 30)
    assert tuple(heat[0, 1]) == (0, 0, 0) and tuple(heat[0, 2]) == (255, 255, 255)
    nothing = colorize(np.full((2, 2), np.nan), invalid_color=(1, 2, 3))
    assert (nothing == (1, 2, 3)).all()


def test_explicit_range_clips_and_can_reverse():
    depth = np.array([[-5.0, 0.0, 0.5, 1.0, 9.0]])
    heat = colorize(depth, "gray", vmin=0.0, vmax=1.0)
    np.testing.assert_array_equal(heat[0, :, 0], [0, 0, 128, 255, 255])
    reversed_heat = colorize(depth, "gray", vmin=1.0, vmax=0.0)
    np.testing.assert_array_equal(reversed_heat[0, :, 0], [255, 255, 128, 0, 0])
    constant = colorize(np.full((2, 3), 4.0), "inferno")
    assert (constant == colormap_lut("inferno")[0]).all()


def test_percentile_clip_ignores_outliers():
    depth = np.concatenate([np.linspace(0.0, 1.0, 98), [1000.0, -1000.0]])[None]
    plain = colorize(depth, "gray")
    clipped = colorize(depth, "gray", percentile_clip=(2, 98))
    assert plain[0, 1:97, 0].max() < 140  # squashed into the middle by the outliers
    assert clipped[0, 1:97, 0].max() == 255 and clipped[0, 1:97, 0].min() == 0
    assert clipped[0, 98, 0] == 255 and clipped[0, 99, 0] == 0


def test_unknown_colormap_lists_choices():
    with pytest.raises(ValueError, match="choose one of inferno, turbo") as caught:
        colorize(np.zeros((2, 2)), "jet")
    assert "'jet'" in str(caught.value)
    with pytest.raises(ValueError):
        colorize(np.zeros((2, 2, 2)))


def test_side_by_side():
    rgb = np.full((4, 3, 3), 7, np.uint8)
    heat = np.full((4, 5, 3), 9, np.uint8)
    panel = side_by_side(rgb, heat, gap=2)
    assert panel.shape == (4, 10, 3) and panel.dtype == np.uint8
    assert (panel[:, :3] == 7).all() and (panel[:, 3:5] == 255).all() and (panel[:, 5:] == 9).all()
    assert side_by_side(rgb, heat, gap=0).shape == (4, 8, 3)
    with pytest.raises(ValueError, match="same height"):
        side_by_side(rgb, heat[:3])


def test_legend_bar_is_bright_on_top():
    bar = legend_bar("inferno", 50, 6)
    assert bar.shape == (50, 6, 3) and bar.dtype == np.uint8
    lut = colormap_lut("inferno")
    assert tuple(bar[0, 0]) == tuple(lut[255]) and tuple(bar[-1, -1]) == tuple(lut[0])
    assert (bar == bar[:, :1]).all()
