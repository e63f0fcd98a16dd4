"""find_obstacles and annotate_obstacles on a wall 5 m away with a box 0.5 m away."""

from __future__ import annotations

import json

import numpy as np
import pytest

from depthlens.effects.obstacle import ObstacleReport, annotate_obstacles, find_obstacles

H, W = 120, 160
BOX = (90, 60, 130, 100)  # x0, y0, x1, y1 (exclusive): bottom right, clear of the left half
BOX_AREA = (BOX[2] - BOX[0]) * (BOX[3] - BOX[1])


def scene(box_m: float = 0.5) -> np.ndarray:
    depth = np.full((H, W), 5.0, np.float32)
    x0, y0, x1, y1 = BOX
    depth[y0:y1, x0:x1] = box_m
    return depth


def box_mask() -> np.ndarray:
    mask = np.zeros((H, W), bool)
    x0, y0, x1, y1 = BOX
    mask[y0:y1, x0:x1] = True
    return mask


def test_a_near_box_is_found_where_it_is():
    report, mask = find_obstacles(scene(), "metric")
    assert report.warning and report.regions == 1
    assert report.near_fraction == BOX_AREA / (H * W)
    assert report.nearest_box == BOX
    assert report.nearest_value == pytest.approx(0.5)
    assert report.threshold == 1.0 and report.unit == "m"
    np.testing.assert_array_equal(mask, box_mask())


def test_nothing_within_the_threshold_is_no_warning():
    report, mask = find_obstacles(scene(box_m=2.0), "metric")
    assert not report.warning and report.regions == 0 and report.near_fraction == 0.0
    assert report.nearest_box is None and report.nearest_value is None
    assert not mask.any()
    assert find_obstacles(scene(box_m=2.0), "metric", threshold=2.5)[0].nearest_box == BOX


def test_specks_below_min_area_are_ignored_and_the_nearest_region_wins():
    depth = scene()
    depth[10:40:10, 10:40:10] = 0.1  # 9 single pixels, nearer than the box
    depth[5:25, 100:140] = 0.8  # a second, farther near region of 800 px
    report, mask = find_obstacles(depth, "metric")
    assert report.regions == 2
    assert report.nearest_box == BOX and report.nearest_value == pytest.approx(0.5)
    assert report.near_fraction == (BOX_AREA + 800) / (H * W)
    assert not mask[10:40:10, 10:40:10].any()
    assert find_obstacles(depth, "metric", min_area=0.0)[0].nearest_value == pytest.approx(0.1)


def test_invalid_pixels_are_not_part_of_the_view():
    depth = scene()
    depth[:, :20] = 0.0  # no depth: not near although 0 < 1 m fails
    depth[:10, 20:] = np.nan
    report, mask = find_obstacles(depth, "metric")
    valid = H * W - H * 20 - 10 * (W - 20)
    assert report.near_fraction == BOX_AREA / valid
    np.testing.assert_array_equal(mask, box_mask())


def test_a_relative_map_of_the_scene_finds_the_same_box():
    report, mask = find_obstacles(1.0 / scene(), "relative_inverse")
    assert report.warning and report.regions == 1 and report.nearest_box == BOX
    assert report.unit == "nearness" and report.threshold == 0.8
    assert report.nearest_value == pytest.approx(1.0)
    assert report.near_fraction == BOX_AREA / (H * W)
    np.testing.assert_array_equal(mask, box_mask())


def test_annotate_tints_the_box_red_and_leaves_the_rest():
    rgb = np.random.default_rng(0).integers(10, 200, (H, W, 3), dtype=np.uint8)
    report, mask = find_obstacles(scene(), "metric")
    out = annotate_obstacles(rgb, mask, report)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    x0, y0, x1, y1 = BOX
    inside = (slice(y0 + 3, y1 - 3), slice(x0 + 3, x1 - 3))  # clear of the frame
    assert (out[inside][..., 0] > rgb[inside][..., 0]).all()
    assert (out[inside][..., 1:] < rgb[inside][..., 1:]).all()
    frame = out[y1 - 1, x0:x1]
    assert (frame == (255, 0, 0)).all()
    assert not np.array_equal(out[y0 - 12 : y0, x0:x1], rgb[y0 - 12 : y0, x0:x1])  # tag
    np.testing.assert_array_equal(out[:, : W // 2], rgb[:, : W // 2])
    np.testing.assert_array_equal(out[y1 + 2 :], rgb[y1 + 2 :])


def test_annotate_without_warning_returns_an_unchanged_copy():
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    report, mask = find_obstacles(scene(box_m=2.0), "metric")
    out = annotate_obstacles(rgb, mask, report)
    np.testing.assert_array_equal(out, rgb)
    assert out is not rgb


@pytest.mark.parametrize("box_m", [0.5, 2.0])
def test_to_json_round_trips(box_m):
    report, _ = find_obstacles(scene(box_m), "metric")
    data = report.to_json()
    assert json.loads(json.dumps(data)) == data
    expected_box = {"x0": 90, "y0": 60, "x1": 130, "y1": 100} if box_m < 1 else None
    assert data["nearest_box"] == expected_box
    assert ObstacleReport(**{**data, "nearest_box": report.nearest_box}) == report


@pytest.mark.parametrize(
    ("kind", "threshold", "min_area"),
    [
        ("metric", 0.0, 0.002),
        ("metric", -1.0, 0.002),
        ("metric", float("nan"), 0.002),
        ("relative_inverse", 0.0, 0.002),
        ("relative_inverse", 1.5, 0.002),
        ("metric", 1.0, -0.1),
        ("meters", 1.0, 0.002),
    ],
)
def test_bad_arguments_raise_value_error(kind, threshold, min_area):
    with pytest.raises(ValueError):
        find_obstacles(scene(), kind, threshold, min_area)


def test_mismatched_shapes_raise_value_error():
    with pytest.raises(ValueError, match="depth must be"):
        find_obstacles(np.ones((H, W, 3), np.float32), "metric")
    report, mask = find_obstacles(scene(), "metric")
    with pytest.raises(ValueError, match="mask must be"):
        annotate_obstacles(np.zeros((H, W, 3), np.uint8), mask[:, :-1], report)
    with pytest.raises(ValueError, match="rgb must be"):
        annotate_obstacles(np.zeros((H, W), np.uint8), mask, report)
