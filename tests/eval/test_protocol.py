"""Evaluation protocols: crops, caps, masks and the alignment of each prediction kind."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depthlens.eval.protocol import (
    align_prediction,
    crop_mask,
    evaluation_mask,
    protocol_for,
    resize_prediction,
    score_prediction,
)


def box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1


def test_crops_match_the_published_pixel_boxes():
    assert box(crop_mask(375, 1242, "garg")) == (153, 371, 44, 1197)
    assert box(crop_mask(375, 1242, "eigen_kitti")) == (124, 342, 44, 1197)
    assert box(crop_mask(480, 640, "eigen_nyu")) == (45, 471, 41, 601)
    assert crop_mask(4, 5, None).all()
    with pytest.raises(ValueError, match="480x640"):
        crop_mask(240, 320, "eigen_nyu")


def test_evaluation_mask_is_strict_and_keeps_the_dataset_mask():
    gt = np.array([[0.001, 0.5, 10.0], [9.99, np.inf, np.nan]])
    valid = np.array([[True, True, True], [True, True, True]])
    kept = evaluation_mask(gt, valid, protocol_for("kitti", crop=None, max_depth=10.0))
    assert kept.tolist() == [[False, True, False], [True, False, False]]
    valid[0, 1] = False
    assert not evaluation_mask(gt, valid, protocol_for("kitti", crop=None, max_depth=10.0))[0, 1]


def test_protocol_overrides_and_errors():
    assert protocol_for("nyu").max_depth == 10.0 and protocol_for("nyu").crop == "eigen_nyu"
    assert protocol_for("kitti", crop="eigen_kitti").crop == "eigen_kitti"
    assert protocol_for("kitti", max_depth=50.0).max_depth == 50.0
    with pytest.raises(ValueError, match="unknown dataset"):
        protocol_for("mars")
    with pytest.raises(ValueError, match="increasing"):
        protocol_for("nyu", max_depth=1e-4)


def scene(seed=0, shape=(24, 32)):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.5, 9.0, shape)
    mask = rng.random(shape) > 0.2
    return gt, mask


def test_affine_distortion_of_disparity_is_removed_in_both_spaces():
    gt, mask = scene()
    protocol = protocol_for("folder", max_depth=10.0)
    pred = 3.0 / gt + 0.25  # relative inverse depth: any positive scale and shift
    depth, reference = align_prediction(pred, gt, mask, "depth_from_disparity", protocol)
    np.testing.assert_allclose(depth[mask], gt[mask], rtol=1e-9)
    assert reference is gt
    disparity, inverse = align_prediction(pred, gt, mask, "disparity", protocol)
    np.testing.assert_allclose(disparity[mask], 1.0 / gt[mask], rtol=1e-9)
    np.testing.assert_allclose(inverse[mask], 1.0 / gt[mask])


def test_disparity_is_capped_at_the_max_depth():
    gt, mask = scene(1)
    protocol = protocol_for("folder", max_depth=10.0)
    pred = 1.0 / gt
    pred[0, :] = -5.0  # behind the camera after alignment: capped to max_depth
    mask[0, :] = False
    depth, _ = align_prediction(pred, gt, mask, "depth_from_disparity", protocol)
    assert np.all(depth[0] == pytest.approx(10.0)) and np.all(depth <= 10.0 + 1e-9)
    # Without a finite cap (ETH3D) the floor is a fixed disparity.
    depth_inf, _ = align_prediction(pred, gt, mask, "depth_from_disparity", protocol_for("eth3d"))
    assert np.all(depth_inf[0] == pytest.approx(1e3))


def test_median_scaling_and_metric_clipping():
    gt, mask = scene(2)
    protocol = protocol_for("nyu", crop=None)
    scaled, _ = align_prediction(gt * 0.37, gt, mask, "median", protocol)
    np.testing.assert_allclose(scaled[mask], gt[mask], rtol=1e-9)
    raw = gt.copy()
    raw[0, 0], raw[0, 1], raw[0, 2], raw[0, 3] = np.nan, np.inf, 50.0, -1.0
    clipped, _ = align_prediction(raw, gt, mask, "none", protocol)
    assert clipped[0, :4].tolist() == [1e-3, 10.0, 10.0, 1e-3]
    np.testing.assert_array_equal(clipped[1:], gt[1:])
    with pytest.raises(ValueError, match="unknown alignment"):
        align_prediction(gt, gt, mask, "cubic", protocol)  # type: ignore[arg-type]


def test_resize_prediction_is_bilinear_without_corner_alignment():
    ramp = np.arange(4, dtype=np.float64)[None, :].repeat(2, 0)
    up = resize_prediction(ramp, 2, 8)
    # align_corners=False: output x maps to input (x + 0.5) / 2 - 0.5, clamped at the edges.
    expected = np.clip((np.arange(8) + 0.5) / 2 - 0.5, 0, 3)
    np.testing.assert_allclose(up[0], expected)
    assert resize_prediction(ramp, 2, 4) is not ramp and math.isclose(up.mean(), 1.5)


def test_score_prediction_end_to_end_perfect_and_distorted():
    gt, mask = scene(3, shape=(30, 40))
    protocol = protocol_for("folder", max_depth=10.0)
    perfect = score_prediction(gt, gt, mask, protocol, "none")
    assert perfect is not None
    assert perfect["abs_rel"] == pytest.approx(0.0, abs=1e-12) and perfect["delta1"] == 1.0
    distorted = score_prediction(2.0 / gt + 0.1, gt, mask, protocol, "depth_from_disparity")
    assert distorted is not None and distorted["abs_rel"] < 1e-9
    # A relative prediction at half the resolution of a smooth scene: the fit removes the
    # distortion and what is left is the bilinear resampling's small error.
    rows, cols = np.mgrid[0:30, 0:40]
    smooth = 1.0 + 0.2 * rows + 0.05 * cols
    coarse = score_prediction(
        (2.0 / smooth + 0.1)[::2, ::2], smooth, mask, protocol, "depth_from_disparity"
    )
    assert coarse is not None and 1e-4 < coarse["abs_rel"] < 0.05
    nothing = np.zeros_like(mask)
    assert score_prediction(gt, gt, nothing, protocol, "none") is None
    assert score_prediction(gt, gt, mask, protocol, "none", min_pixels=10_000) is None
