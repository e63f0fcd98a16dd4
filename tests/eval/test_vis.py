"""Evaluation panels: the layout, the shared colour range, near-bright colouring in both
spaces and the AbsRel error tile, on the maps ``prepare_prediction`` scores."""

from __future__ import annotations

import numpy as np
import pytest

from depthlens.eval.protocol import AlignedPair, prepare_prediction, protocol_for
from depthlens.eval.vis import (
    DEPTH_COLORMAP,
    ERROR_COLORMAP,
    UNSCORED_COLOR,
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
    return [panel[:, i * W : (i + 1) * W] for i in range(4)]


def prepared(pred, gt, valid, alignment="none"):
    pair = prepare_prediction(pred, gt, valid, protocol_for("folder"), alignment)
    assert pair is not None
    return pair


def test_panel_layout_and_rgb_tile():
    rgb, gt, valid = scene()
    panel = evaluation_panel(rgb, prepared(gt * 1.1, gt, valid))
    assert panel.shape == (H, 4 * W, 3) and panel.dtype == np.uint8
    np.testing.assert_array_equal(tiles(panel)[0], rgb)


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
