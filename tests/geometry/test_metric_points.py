"""Reading metric points, bilinear sampling, and robust alignment of predictions to them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from depthlens.errors import UsageError
from depthlens.geometry.align import fit_scale_shift
from depthlens.geometry.metric_points import (
    MetricPoints,
    align_to_points,
    read_points,
    sample_at,
)

H, W = 24, 32


def scene(seed=0):
    """A smooth metric depth map (2..10 m) and its relative disparity ``p = (1/d − t) / s``."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    depth = 2.0 + 8.0 * (x / (W - 1)) * (0.3 + 0.7 * y / (H - 1))
    scale, shift = 0.02, 0.05
    pred = (1.0 / depth - shift) / scale
    return depth, pred, scale, shift


def points_at(depth, n, seed=0):
    """``n`` points at pixel centres with their exact depth."""
    rng = np.random.default_rng(seed)
    flat = rng.choice(H * W, n, replace=False)
    rows, cols = np.divmod(flat, W)
    return MetricPoints(cols + 0.5, rows + 0.5, depth[rows, cols].astype(np.float64))


# --- read_points ---------------------------------------------------------------------------------

ROWS = [(1.5, 2.5, 3.0), (10.0, 4.25, 7.5), (31.0, 23.0, 12.0), (0.0, 0.0, 0.5)]


def check_rows(points):
    assert len(points) == len(ROWS)
    np.testing.assert_array_equal(np.stack([points.u, points.v, points.depth], 1), ROWS)


@pytest.mark.parametrize("header", ["", "u,v,depth\n", "U, V, depth_m\n"])
def test_read_csv_with_and_without_header(tmp_path, header):
    path = tmp_path / "points.csv"
    body = "".join(f"{u},{v},{d}\n" for u, v, d in ROWS)
    path.write_text(header + "# a comment\n\n" + body)
    check_rows(read_points(path, W, H))


def test_read_whitespace_separated(tmp_path):
    path = tmp_path / "points.txt"
    path.write_text("".join(f"{u} {v}\t{d}\n" for u, v, d in ROWS))
    check_rows(read_points(path, W, H))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_read_npy(tmp_path, dtype):
    path = tmp_path / "points.npy"
    np.save(path, np.array(ROWS, dtype=dtype))
    check_rows(read_points(path, W, H))


def write(tmp_path, text, name="p.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = "1,1,1\n2,2,2\n3,3,3\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD + "4,4\n", r"^Line 4 of .* is not three numbers u, v, depth: '4,4'\.$"),
        ("u,v,depth\n1,1,1\n1,x,2\n3,3,3\n", r"^Line 3 of .* is not three numbers"),
        ("a,b,c\n" + GOOD, r"^Line 1 of .* is not three numbers"),
        (GOOD + "4,nan,1\n", r"^Line 4 of .* has a non-finite pixel coordinate\.$"),
        (GOOD + "4,4,0\n", r"^Line 4 of .* has depth 0; depths must be positive, finite metres\.$"),
        (GOOD + "4,4,-2\n", r"^Line 4 of .* has depth -2;"),
        (GOOD + "4,4,inf\n", r"^Line 4 of .* has depth inf;"),
        ("1,1,1\n\n2,2,nan\n3,3,3\n", r"^Line 3 of .* has depth nan;"),
        (
            GOOD + "32.5,4,1\n",
            r"^Line 4 of .* lies at \(u=32\.5, v=4\), outside the 32x24 image "
            r"\(u in \[0, 32\], v in \[0, 24\]\)\.$",
        ),
        (GOOD + "4,-0.1,1\n", r"^Line 4 of .* lies at \(u=4, v=-0\.1\), outside"),
        ("1,1,1\n2,2,2\n", r"holds 2 metric points; at least 3 are needed to fit a scale"),
        ("u,v,depth\n", r"holds 0 metric points; at least 3"),
    ],
)
def test_read_csv_errors(tmp_path, text, message):
    with pytest.raises(UsageError, match=message):
        read_points(write(tmp_path, text), W, H)


def test_read_missing_file(tmp_path):
    with pytest.raises(UsageError, match=r"^The metric points file .*nope\.csv does not exist\.$"):
        read_points(tmp_path / "nope.csv", W, H)


def test_read_npy_errors(tmp_path):
    path = tmp_path / "p.npy"
    np.save(path, np.ones((4, 2)))
    with pytest.raises(UsageError, match=r"shape \(4, 2\); metric points must be an \(N, 3\)"):
        read_points(path, W, H)
    np.save(path, np.array([[1, 1, 1], [2, 2, 2], [3, 3, -1.0]]))
    with pytest.raises(UsageError, match=r"^Row 3 of .* has depth -1;"):
        read_points(path, W, H)
    np.save(path, np.array([[1, 1, 1], [2, 50, 2], [3, 3, 1.0]]))
    with pytest.raises(UsageError, match=r"^Row 2 of .* outside the 32x24 image"):
        read_points(path, W, H)
    path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(UsageError, match=r"^Cannot read .* as an NPY array"):
        read_points(path, W, H)


# --- sample_at -----------------------------------------------------------------------------------


def test_sample_at_hand_computed():
    depth_map = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    # (u, v) = (1.25, 0.75): x = 0.75, y = 0.25 in centre coordinates.
    # top = 1·0.25 + 2·0.75 = 1.75, bottom = 4·0.25 + 5·0.75 = 4.75,
    # value = 1.75·0.75 + 4.75·0.25 = 2.5
    pts = MetricPoints(np.array([1.25, 0.5, 2.5, 0.0, 3.0]), np.array([0.75, 0.5, 1.5, 0.0, 2.0]),
                       np.ones(5))  # fmt: skip
    np.testing.assert_allclose(sample_at(depth_map, pts), [2.5, 1.0, 6.0, 1.0, 6.0])


def test_sample_at_pixel_centres_and_single_row():
    depth, *_ = scene()
    pts = points_at(depth, 20)
    np.testing.assert_allclose(sample_at(depth, pts), pts.depth, rtol=0, atol=0)
    one_row = np.array([[1.0, 3.0]])
    pts = MetricPoints(np.array([1.0]), np.array([0.9]), np.ones(1))
    np.testing.assert_allclose(sample_at(one_row, pts), [2.0])


# --- align_to_points: relative_inverse -----------------------------------------------------------


def test_exact_recovery_from_noiseless_points():
    depth, pred, scale, shift = scene()
    out, report = align_to_points(pred.astype(np.float32), "relative_inverse", points_at(depth, 12))
    assert report.space == "disparity"
    # The float32 prediction rounds p; the fit itself runs in float64.
    assert report.scale == pytest.approx(scale, rel=1e-6)
    assert report.shift == pytest.approx(shift, rel=1e-6)
    assert report.inlier_count == 12
    assert out.dtype == np.float32 and out.shape == (H, W)
    np.testing.assert_allclose(out, depth, rtol=1e-5)
    _, report = align_to_points(pred, "relative_inverse", points_at(depth, 12))
    assert abs(report.scale - scale) <= 1e-6 * scale and abs(report.shift - shift) <= 1e-6
    assert report.all_points.rmse <= 1e-9


def noisy_points(n=60, outliers=0.3, seed=1):
    depth, pred, scale, shift = scene()
    pts = points_at(depth, n, seed=seed)
    rng = np.random.default_rng(seed)
    d = pts.depth * (1 + rng.normal(0, 0.002, n))  # 0.2 % noise on every point
    bad = rng.permutation(n)[: int(outliers * n)]
    d[bad] = d[bad] * rng.choice([0.3, 0.5, 2.0, 3.0], len(bad))  # gross outliers
    return pred, MetricPoints(pts.u, pts.v, d), scale, shift, bad


@pytest.mark.parametrize("iterations", [1000, 200])  # all 1770 pairs vs 200 random ones
def test_ransac_survives_thirty_percent_outliers(iterations):
    pred, pts, scale, shift, bad = noisy_points()
    _, report = align_to_points(pred, "relative_inverse", pts, iterations=iterations)
    assert report.scale == pytest.approx(scale, rel=0.01)
    assert report.shift == pytest.approx(shift, rel=0.01)
    good = np.ones(len(pts), dtype=bool)
    good[bad] = False
    np.testing.assert_array_equal(report.inliers, good)
    # the result is the least-squares fit on exactly the true inliers
    assert (report.scale, report.shift) == pytest.approx(least_squares(pred, pts, good), rel=1e-9)
    # plain least squares over every point is pulled away by the outliers
    ls_scale, ls_shift = least_squares(pred, pts, np.ones(len(pts), dtype=bool))
    assert abs(ls_scale / scale - 1) > 0.01 or abs(ls_shift / shift - 1) > 0.01


def least_squares(pred, pts, keep):
    p = torch.from_numpy(sample_at(pred, pts)[keep])[None, None]
    q = torch.from_numpy(1.0 / pts.depth[keep])[None, None]
    scale, shift = fit_scale_shift(p, q, torch.ones_like(p, dtype=torch.bool))
    return float(scale), float(shift)


def test_ransac_is_deterministic():
    pred, pts, *_ = noisy_points(n=80)
    a = align_to_points(pred, "relative_inverse", pts, iterations=50)[1]
    b = align_to_points(pred, "relative_inverse", pts, iterations=50)[1]
    assert (a.scale, a.shift) == (b.scale, b.shift)


def test_report_residuals_equal_direct_computation():
    pred, pts, *_ = noisy_points()
    _, r = align_to_points(pred, "relative_inverse", pts)
    predicted = 1.0 / np.maximum(r.scale * sample_at(pred, pts) + r.shift, 1.0 / r.max_depth)
    abs_err = np.abs(predicted - pts.depth)
    rel_err = abs_err / pts.depth
    inl = rel_err <= r.threshold
    np.testing.assert_allclose(r.predicted, predicted)
    np.testing.assert_allclose(r.abs_error, abs_err)
    np.testing.assert_allclose(r.rel_error, rel_err)
    np.testing.assert_array_equal(r.inliers, inl)
    for stats, m in ((r.all_points, np.ones_like(inl)), (r.inlier_points, inl)):
        assert stats.count == m.sum()
        assert stats.rmse == pytest.approx(np.sqrt(np.mean(abs_err[m] ** 2)))
        assert stats.abs_rel == pytest.approx(np.mean(rel_err[m]))
        assert stats.median_abs == pytest.approx(np.median(abs_err[m]))
    d = json.loads(json.dumps(r.to_dict()))
    assert d["space"] == "disparity" and d["inliers"] == r.inlier_count
    assert d["all_points"]["rmse_m"] == pytest.approx(r.all_points.rmse)
    assert d["per_point"]["abs_error_m"] == pytest.approx(list(abs_err))


def test_floor_clamps_or_marks_far_pixels():
    depth, pred, scale, shift = scene()
    pts = points_at(depth, 10)
    pred = pred.copy()
    pred[0, :4] = -shift / scale - 5.0  # aligned disparity < 0 there: "behind the camera"
    out, report = align_to_points(pred, "relative_inverse", pts, max_depth=50.0)
    assert np.isfinite(out).all() and (out > 0).all()
    assert report.clamped_pixels == 4 and (out[0, :4] == 50.0).all()
    out, _ = align_to_points(pred, "relative_inverse", pts, max_depth=50.0, beyond="nan")
    assert np.isnan(out[0, :4]).all() and np.isfinite(out[1:]).all()


# --- align_to_points: metric ---------------------------------------------------------------------


def test_metric_scale_only():
    depth, *_ = scene()
    pts = points_at(depth, 30, seed=3)
    out, report = align_to_points(depth / 1.3, "metric", pts)
    assert report.space == "depth" and report.shift == 0.0
    assert report.scale == pytest.approx(1.3, rel=1e-9)
    np.testing.assert_allclose(out, depth, rtol=1e-6)
    # with 30 % gross outliers and 0.5 % noise
    rng = np.random.default_rng(0)
    d = pts.depth * (1 + rng.normal(0, 0.005, 30))
    d[:9] *= 2.5
    _, report = align_to_points(depth / 1.3, "metric", MetricPoints(pts.u, pts.v, d))
    assert report.scale == pytest.approx(1.3, rel=0.01)
    assert report.inlier_count == 21 and not report.inliers[:9].any()


# --- align_to_points: errors ---------------------------------------------------------------------


def test_align_errors():
    depth, pred, *_ = scene()
    pts = points_at(depth, 10)
    with pytest.raises(UsageError, match=r"^No positive scale maps the prediction onto the metric"):
        align_to_points(np.ones((H, W)), "relative_inverse", pts)
    with pytest.raises(UsageError, match=r"^No positive scale"):
        align_to_points(-pred, "relative_inverse", pts)  # farther where larger
    with pytest.raises(UsageError, match=r"^The prediction is not finite at 10 of the 10 metric"):
        align_to_points(np.full((H, W), np.nan), "relative_inverse", pts)
    rng = np.random.default_rng(0)
    scattered = MetricPoints(pts.u, pts.v, rng.uniform(1, 100, 10))
    with pytest.raises(UsageError, match=r"^No scale and shift bring more than 2 of the 10 metric"):
        align_to_points(pred, "relative_inverse", scattered, threshold=0.001)
    with pytest.raises(UsageError, match=r"positive at only 0 of the 10 metric points"):
        align_to_points(-depth, "metric", pts)
    with pytest.raises(UsageError, match=r"^At least 3 metric points are needed, got 2\.$"):
        align_to_points(pred, "relative_inverse", MetricPoints(pts.u[:2], pts.v[:2], pts.depth[:2]))


def test_fit_behind_camera_on_most_of_the_image():
    # Three points fit exactly by a large negative shift: most pixels fall behind the camera.
    pred = np.tile(np.linspace(0.0, 1.0, W), (H, 1))
    u = np.array([W - 2.5, W - 1.5, W - 0.5])
    p = sample_at(pred, MetricPoints(u, np.full(3, 5.5), np.ones(3)))
    d = 1.0 / (10.0 * p - 9.5)
    with pytest.raises(UsageError, match=r"puts \d+% of the image behind the camera"):
        align_to_points(pred, "relative_inverse", MetricPoints(u, np.full(3, 5.5), d))
