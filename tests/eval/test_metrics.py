"""Depth error metrics against hand values and an independent reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depthlens.eval.metrics import (
    METRIC_NAMES,
    SILOG_VARIANTS,
    aggregate,
    depth_metrics,
    silog_error,
)

LN2 = math.log(2.0)
LN10 = math.log(10.0)
LOG10_2 = math.log10(2.0)


def reference_metrics(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, variant: str) -> dict:
    """Straight formulas, written out separately from the module under test."""
    d = pred[mask].astype(np.float64)
    t = gt[mask].astype(np.float64)
    n = d.size
    thresh = np.maximum(t / d, d / t)
    out = {
        "delta1": np.sum(thresh < 1.25) / n,
        "delta2": np.sum(thresh < 1.25**2) / n,
        "delta3": np.sum(thresh < 1.25**3) / n,
        "abs_rel": np.sum(np.abs(t - d) / t) / n,
        "sq_rel": np.sum((t - d) ** 2 / t) / n,
        "rmse": np.sqrt(np.sum((t - d) ** 2) / n),
        "rmse_log": np.sqrt(np.sum((np.log(t) - np.log(d)) ** 2) / n),
        "rmse_log10": np.sqrt(np.sum((np.log10(t + 1e-10) - np.log10(d + 1e-10)) ** 2) / n),
        "log10": np.sum(np.abs(np.log10(t) - np.log10(d))) / n,
        "bad_pixel_percent": 100.0 * np.sum(thresh > 1.25) / n,
    }
    if variant == "zoedepth":
        err = np.log(d) - np.log(t)
        out["silog"] = np.sqrt(np.mean(err**2) - np.mean(err) ** 2) * 100
    elif variant == "depth_anything":
        err = np.log(d) - np.log(t)
        out["silog"] = np.sqrt(np.mean(err**2) - 0.5 * np.mean(err) ** 2)
    else:
        err = np.log10(d + 1e-10) - np.log10(t + 1e-10)
        out["silog"] = np.sqrt(np.mean(err**2) - np.mean(err) ** 2)
    return {k: float(v) for k, v in out.items()}


def random_case(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    h, w = rng.integers(3, 40, size=2)
    gt = rng.uniform(0.1, 80.0, size=(h, w))
    pred = gt * np.exp(rng.normal(0.05, 0.3, size=(h, w)))
    mask = rng.random((h, w)) < 0.6
    mask[0, 0] = True
    return pred.astype(np.float32), gt.astype(np.float32), mask


@pytest.mark.parametrize("variant", list(SILOG_VARIANTS))
@pytest.mark.parametrize("seed", range(6))
def test_matches_reference_on_random_images(seed, variant):
    pred, gt, mask = random_case(seed)
    got = depth_metrics(pred, gt, mask, silog=variant)
    want = reference_metrics(pred, gt, mask, variant)
    assert got is not None
    assert tuple(got) == METRIC_NAMES
    for name in METRIC_NAMES:
        assert got[name] == pytest.approx(want[name], rel=1e-6, abs=1e-12), name
    # A noisy prediction must not be trivially perfect, else the comparison proves little.
    assert 0 < got["delta1"] < 1 and got["abs_rel"] > 0.05


def test_hand_computed_2x2():
    gt = np.array([[1.0, 2.0], [4.0, 8.0]])
    pred = np.array([[1.0, 2.0], [2.0, 16.0]])
    mask = np.ones((2, 2), dtype=bool)
    m = depth_metrics(pred, gt, mask)
    assert m is not None
    # Ratios max(d*/d, d/d*) = 1, 1, 2, 2: half the pixels pass every δ threshold
    # (1.25, 1.5625, 1.953125 are all < 2), half are "bad" (> 1.25).
    assert m["delta1"] == 0.5 and m["delta2"] == 0.5 and m["delta3"] == 0.5
    assert m["bad_pixel_percent"] == pytest.approx(50.0)
    # |d* − d| / d* = 0, 0, 2/4, 8/8 -> 1.5 / 4
    assert m["abs_rel"] == pytest.approx(0.375)
    # (d* − d)² / d* = 0, 0, 4/4, 64/8 -> 9 / 4
    assert m["sq_rel"] == pytest.approx(2.25)
    # (d* − d)² = 0, 0, 4, 64 -> sqrt(68 / 4)
    assert m["rmse"] == pytest.approx(math.sqrt(17.0))
    # ln d* − ln d = 0, 0, ln 2, −ln 2 -> sqrt(2 ln²2 / 4) = ln 2 / √2
    assert m["rmse_log"] == pytest.approx(LN2 / math.sqrt(2.0))
    assert m["rmse_log10"] == pytest.approx(LOG10_2 / math.sqrt(2.0), rel=1e-9)
    # |log10 d* − log10 d| = 0, 0, log10 2, log10 2 -> log10 2 / 2
    assert m["log10"] == pytest.approx(LOG10_2 / 2.0)
    # e has mean 0 and mean(e²) = ln²2 / 2 -> 100 · ln 2 / √2 ≈ 49.01
    assert m["silog"] == pytest.approx(100.0 * LN2 / math.sqrt(2.0))
    da = depth_metrics(pred, gt, mask, silog="depth_anything")
    m3 = depth_metrics(pred, gt, mask, silog="metric3d")
    assert da is not None and m3 is not None
    assert da["silog"] == pytest.approx(LN2 / math.sqrt(2.0))
    assert m3["silog"] == pytest.approx(LOG10_2 / math.sqrt(2.0), rel=1e-9)


def test_hand_computed_silog_variants_disagree_when_mean_error_is_not_zero():
    gt = np.array([[1.0, 1.0]])
    pred = np.array([[10.0, 1000.0]])
    # In ln: e = ln 10 · (1, 3); mean e = 2 ln 10, mean e² = 5 ln²10.
    # In log10: e = (1, 3); mean e = 2, mean e² = 5.
    assert silog_error(pred, gt, "zoedepth") == pytest.approx(100.0 * LN10)  # sqrt(5 − 4)
    assert silog_error(pred, gt, "depth_anything") == pytest.approx(math.sqrt(3.0) * LN10)
    assert silog_error(pred, gt, "metric3d") == pytest.approx(1.0, rel=1e-9)


@pytest.mark.parametrize("variant", list(SILOG_VARIANTS))
def test_perfect_prediction(variant):
    _, gt, mask = random_case(11)
    m = depth_metrics(gt.copy(), gt, mask, silog=variant)
    assert m is not None
    assert m["abs_rel"] == 0.0 and m["sq_rel"] == 0.0 and m["rmse"] == 0.0
    assert m["rmse_log"] == 0.0 and m["rmse_log10"] == 0.0 and m["log10"] == 0.0
    assert m["delta1"] == 1.0 and m["delta2"] == 1.0 and m["delta3"] == 1.0
    assert m["bad_pixel_percent"] == 0.0
    assert m["silog"] == 0.0


def test_zoedepth_silog_is_scale_invariant_but_abs_rel_is_not():
    pred, gt, mask = random_case(3)
    base = depth_metrics(pred, gt, mask)
    scaled = depth_metrics(pred * 3.0, gt, mask)
    assert base is not None and scaled is not None
    assert base["silog"] > 1.0  # a real error, in the ×100 units
    assert scaled["silog"] == pytest.approx(base["silog"], rel=1e-6)
    assert abs(scaled["abs_rel"] - base["abs_rel"]) > 0.5
    # Depth Anything's 0.5 weight on the mean term makes it scale dependent.
    da = depth_metrics(pred, gt, mask, silog="depth_anything")
    da_scaled = depth_metrics(pred * 3.0, gt, mask, silog="depth_anything")
    assert da is not None and da_scaled is not None
    assert da_scaled["silog"] > da["silog"] + 0.1


def test_pure_scale_error_gives_zero_silog_not_nan():
    gt = np.full((4, 5), 2.7)
    m = depth_metrics(gt * 1.7, gt, np.ones((4, 5), dtype=bool))
    assert m is not None
    assert m["silog"] == pytest.approx(0.0, abs=1e-4)
    assert not math.isnan(m["silog"])


def test_pixels_outside_the_mask_are_ignored():
    pred, gt, mask = random_case(5)
    clean = depth_metrics(pred, gt, mask)
    bad_pred = pred.copy()
    bad_gt = gt.copy()
    outside = ~mask
    assert outside.sum() >= 4
    garbage = np.resize(np.array([np.nan, 0.0, -5.0, np.inf], dtype=np.float32), outside.sum())
    bad_pred[outside] = garbage
    bad_gt[outside] = garbage[::-1]
    dirty = depth_metrics(bad_pred, bad_gt, mask)
    assert dirty == clean
    # And the mask does matter: using every pixel changes the result.
    everything = depth_metrics(pred, gt, np.ones_like(mask))
    assert everything is not None and clean is not None
    assert everything["abs_rel"] != clean["abs_rel"]


def test_aggregate_averages_per_image_not_pooled_pixels():
    # Image A: one pixel, abs_rel 1. Image B: three perfect pixels, abs_rel 0.
    a = depth_metrics(np.array([[2.0]]), np.array([[1.0]]), np.array([[True]]))
    b = depth_metrics(np.full((1, 3), 5.0), np.full((1, 3), 5.0), np.ones((1, 3), dtype=bool))
    assert a is not None and b is not None
    agg = aggregate([a, b])
    assert agg["n"] == 2
    assert agg["abs_rel"] == pytest.approx(0.5)  # pooled over the 4 pixels it would be 0.25
    assert agg["delta1"] == pytest.approx(0.5)  # pooled: 0.75
    assert set(agg) == {*METRIC_NAMES, "n"}


def test_aggregate_skips_none_and_rejects_empty_or_mismatched():
    a = {"abs_rel": 0.2, "rmse": 1.0}
    b = {"abs_rel": 0.4, "rmse": 3.0}
    agg = aggregate([a, None, b])
    assert agg == pytest.approx({"abs_rel": 0.3, "rmse": 2.0, "n": 2})
    with pytest.raises(ValueError, match="No image"):
        aggregate([None, None])
    with pytest.raises(ValueError, match="No image"):
        aggregate([])
    with pytest.raises(ValueError, match="same metric names"):
        aggregate([a, {"abs_rel": 0.1}])


def test_min_pixels_skips_sparse_images():
    gt = np.full((4, 4), 3.0)
    mask = np.zeros((4, 4), dtype=bool)
    mask.flat[:9] = True
    assert depth_metrics(gt, gt, mask, min_pixels=10) is None
    mask.flat[9] = True
    assert depth_metrics(gt, gt, mask, min_pixels=10) is not None
    assert depth_metrics(gt, gt, np.zeros((4, 4), dtype=bool)) is None
    with pytest.raises(ValueError, match="min_pixels"):
        depth_metrics(gt, gt, mask, min_pixels=0)


def test_shape_and_mask_errors():
    gt = np.ones((3, 4))
    mask = np.ones((3, 4), dtype=bool)
    with pytest.raises(ValueError, match="same shape"):
        depth_metrics(np.ones((4, 3)), gt, mask)
    with pytest.raises(ValueError, match="same shape"):
        depth_metrics(gt, gt, np.ones((3, 5), dtype=bool))
    with pytest.raises(ValueError, match="same shape"):
        depth_metrics(np.ones((1, 3, 4)), np.ones((1, 3, 4)), np.ones((1, 3, 4), dtype=bool))
    with pytest.raises(ValueError, match="boolean"):
        depth_metrics(gt, gt, mask.astype(np.uint8))
    with pytest.raises(ValueError, match="Unknown SILog variant"):
        depth_metrics(gt, gt, mask, silog="kitti")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Unknown SILog variant"):
        silog_error(gt, gt, "bts")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0.0, -1.0, np.nan, np.inf])
def test_invalid_depths_inside_the_mask_raise(value):
    good = np.full((3, 3), 2.0)
    bad = good.copy()
    bad[1, 1] = value
    mask = np.ones((3, 3), dtype=bool)
    with pytest.raises(ValueError, match="pred has"):
        depth_metrics(bad, good, mask)
    with pytest.raises(ValueError, match="gt has"):
        depth_metrics(good, bad, mask)
    mask[1, 1] = False
    assert depth_metrics(bad, bad, mask) is not None
