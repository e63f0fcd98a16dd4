"""Evaluation panels: the layout, the shared colour range, near-bright colouring in both
spaces and the AbsRel error tile, on the maps ``prepare_prediction`` scores."""

from __future__ import annotations

import numpy as np
import pytest

from depthlens.eval.protocol import AlignedPair, prepare_prediction, protocol_for
from depthlens.eval.vis import (
    CAPTION_BACKGROUND,
    DEPTH_COLORMAP,
    ERROR_COLORMAP,
    UNSCORED_COLOR,
    caption_height,
    evaluation_panel,
)
from depthlens.viz.colormaps import colormap_lut

H, W = 24, 32


def scene(seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    gt = rng.uniform(0.5, 9.0, (H, W))
    valid = rng.random((H, W)) > 0.3
    return rgb, gt, valid


def tiles(panel):
    """The four tiles under the caption strip."""
    top = panel.shape[0] - H
    return [panel[top:, i * W : (i + 1) * W] for i in range(4)]


def prepared(pred, gt, valid, alignment="none"):
    pair = prepare_prediction(pred, gt, valid, protocol_for("folder"), alignment)
    assert pair is not None
    return pair


def test_panel_layout_and_rgb_tile():
    rgb, gt, valid = scene()
    panel = evaluation_panel(rgb, prepared(gt * 1.1, gt, valid))
    assert panel.shape == (caption_height(W, H) + H, 4 * W, 3) and panel.dtype == np.uint8
    np.testing.assert_array_equal(tiles(panel)[0], rgb)


@pytest.mark.parametrize(("width", "height"), [(32, 24), (320, 240), (640, 480), (1216, 352)])
def test_each_tile_has_a_caption_above_it(width, height):
    """A strip of text on the dark background above every tile, as high as
    ``caption_height`` says (a fifth of the tile or less at real sizes), its text within
    its own tile."""
    rng = np.random.default_rng(7)
    gt = rng.uniform(0.5, 10.0, (height, width))
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    panel = evaluation_panel(rgb, AlignedPair(gt, gt, np.ones_like(gt, bool), "depth"))
    strip = caption_height(width, height)
    assert 20 <= strip <= max(25, height // 5)
    assert panel.shape == (strip + height, 4 * width, 3)
    for index in range(4):
        caption = panel[:strip, index * width : (index + 1) * width].astype(int)
        background = (caption == CAPTION_BACKGROUND).all(axis=-1)
        light = (caption > 150).all(axis=-1)  # the text, white and light grey
        assert background.mean() > 0.5, index  # a strip, not a tile
        assert light.sum() > 20, index  # with text in it
        # Both lines are written: text in the upper half and in the lower half.
        assert light[: strip // 2].any() and light[strip // 2 :].any(), index
        # Nothing is drawn in the tile's last columns: no caption runs into the next.
        assert background[:, -1].all(), index


def test_the_captions_follow_the_space_and_the_range():
    """The depth and disparity panels of one scene differ in the captions of the maps
    (m or 1/m, and their ranges), not in that of the photo; a scene three times as far
    has the same colours under other ranges."""
    rgb, gt, valid = scene(6)
    strip = caption_height(W, H)
    depth = evaluation_panel(rgb, AlignedPair(gt, gt, valid, "depth"))
    inverse = np.where(valid, 1.0 / gt, 0.0)
    disparity = evaluation_panel(rgb, AlignedPair(inverse, inverse, valid, "disparity"))
    farther = evaluation_panel(rgb, AlignedPair(gt * 3.0, gt * 3.0, valid, "depth"))
    for other in (disparity, farther):
        np.testing.assert_array_equal(depth[:strip, :W], other[:strip, :W])  # "RGB"
        for index in (1, 2):  # prediction (m) 0.5-9 m, prediction (1/m) 0.11-2 1/m, ...
            tile = slice(index * W, (index + 1) * W)
            assert (depth[:strip, tile] != other[:strip, tile]).any(), index
    np.testing.assert_array_equal(depth[strip:], farther[strip:])


@pytest.mark.parametrize("alignment", ["none", "median"])
def test_a_perfect_prediction_has_equal_tiles_and_zero_error(alignment):
    rgb, gt, valid = scene(1)
    pair = prepared(gt, gt, valid, alignment)
    _, predicted, reference, error = tiles(evaluation_panel(rgb, pair))
    np.testing.assert_array_equal(predicted[pair.mask], reference[pair.mask])
    assert (error[pair.mask] == colormap_lut(ERROR_COLORMAP)[0]).all()
    # The mask matters only for the ground-truth and error tiles.
    assert (reference[~pair.mask] == UNSCORED_COLOR).all()
    assert (error[~pair.mask] == UNSCORED_COLOR).all()
    assert not (predicted[~pair.mask] == UNSCORED_COLOR).all(axis=-1).any()


def test_error_tile_is_abs_rel_over_a_fixed_clipped_range():
    rgb, gt, valid = scene(2)
    lut = colormap_lut(ERROR_COLORMAP)
    too_far = tiles(evaluation_panel(rgb, prepared(gt * 1.3, gt, valid)))[3]
    assert (too_far[valid] == lut[153]).all()  # AbsRel 0.3: bin 0.3 / 0.5 · 256 = 153.6
    double = tiles(evaluation_panel(rgb, prepared(gt * 2.0, gt, valid)))[3]
    assert (double[valid] == lut[255]).all()  # AbsRel 1 is clipped


def test_near_is_bright_in_depth_and_disparity_space():
    rgb, gt, valid = scene(3)
    depth = tiles(evaluation_panel(rgb, AlignedPair(gt, gt, valid, "depth")))
    inverse = np.where(valid, 1.0 / gt, 0.0)
    disparity = tiles(evaluation_panel(rgb, AlignedPair(inverse, inverse, valid, "disparity")))
    np.testing.assert_array_equal(depth[2], disparity[2])
    np.testing.assert_array_equal(depth[1][valid], disparity[1][valid])
    lut = colormap_lut(DEPTH_COLORMAP)
    nearest = np.unravel_index(np.argmin(np.where(valid, gt, np.inf)), gt.shape)
    farthest = np.unravel_index(np.argmax(np.where(valid, gt, -np.inf)), gt.shape)
    assert (depth[2][nearest] == lut[255]).all() and (depth[2][farthest] == lut[0]).all()


def test_prediction_tile_shows_the_whole_aligned_map():
    rgb, gt, valid = scene(4)
    pred = 2.0 / gt + 0.5  # relative inverse depth
    off = np.argwhere(~valid)
    pred[tuple(off[0])] = 100.0  # far nearer than anything scored: the brightest colour
    pred[tuple(off[1])] = np.nan
    predicted = tiles(evaluation_panel(rgb, prepared(pred, gt, valid, "depth_from_disparity")))[1]
    assert (predicted[tuple(off[0])] == colormap_lut(DEPTH_COLORMAP)[255]).all()
    assert (predicted[tuple(off[1])] == UNSCORED_COLOR).all()


def test_panel_errors():
    rgb, gt, valid = scene(5)
    pair = prepared(gt, gt, valid)
    with pytest.raises(ValueError, match="rgb must be"):
        evaluation_panel(rgb[:, :-1], pair)
    with pytest.raises(ValueError, match="at least one scored pixel"):
        evaluation_panel(rgb, AlignedPair(gt, gt, np.zeros_like(valid), "depth"))
