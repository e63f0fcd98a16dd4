from __future__ import annotations

import numpy as np
import pytest

from depthlens.effects.nearness import disparity_of, nearness


def test_metric_and_relative_maps_of_one_scene_agree():
    depth = np.linspace(1.0, 10.0, 200, dtype=np.float32).reshape(10, 20)
    metric = nearness(depth, "metric")
    relative = nearness(3.0 / depth + 0.0, "relative_inverse")
    np.testing.assert_allclose(metric, relative, atol=1e-5)
    assert metric[0, 0] == 1.0 and metric[-1, -1] == 0.0  # nearest first


def test_invalid_pixels_are_far_and_flat_maps_are_half():
    depth = np.full((4, 4), 2.0, np.float32)
    depth[0, 0] = 0.0
    assert disparity_of(depth, "metric")[0, 0] == 0.0
    assert nearness(np.full((4, 4), 3.0), "metric") == pytest.approx(0.5)
