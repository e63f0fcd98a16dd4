"""Thin structures in synthetic scenes: exact depth on a few-pixel pole, the garden kind."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depthlens.synth import objects as obj
from depthlens.synth.render import (
    EXTRA_KINDS,
    SCENE_KINDS,
    choose_kind,
    render_sample,
    render_scene,
)
from depthlens.synth.scene import CameraPose, Lighting, SceneBuilder, Sky, Tex, look_rotation


def thin_runs(depth: np.ndarray, max_width: int, ratio: float = 1.25) -> int:
    """Horizontal runs of 1..max_width pixels bounded on both sides by pixels more than
    ``ratio`` times farther: the image of something thin in front of a background."""
    starts = depth[:, :-1] > ratio * depth[:, 1:]  # column c + 1 is nearer than c
    ends = depth[:, 1:] > ratio * depth[:, :-1]  # column c is nearer than c + 1
    return sum(int((starts[:, :-w] & ends[:, w:]).sum()) for w in range(1, max_width + 1))


def test_a_four_pixel_pole_is_rendered_at_its_exact_depth():
    height, width, hfov = 64, 256, 60.0
    focal = (width / 2) / math.tan(math.radians(hfov) / 2)
    distance, wall = 5.0, 20.0
    radius = 4 * distance / (2 * focal)  # 4 px across at 5 m
    b = SceneBuilder()
    paint = b.material(Tex.FLAT, (0.7, 0.7, 0.7))
    b.quad((0.0, 0.0, wall), 50.0, 50.0, paint)  # faces the camera (normal along z)
    obj.pole(b, np.random.default_rng(0), 0.0, distance, 4.0, radius, base=-2.0)
    pose = CameraPose(look_rotation(0.0, 0.0, 0.0), np.zeros(3), hfov)
    light = Lighting(np.array([0.0, 1.0, 0.0]), np.ones(3), 0.01, np.full(3, 0.3), np.zeros(3))
    blue = np.array([0.3, 0.5, 0.9])
    sky = Sky(blue, blue, blue, 0.0, np.ones(3), 0.3, blue, 0.0)
    s = render_scene(b.build("test", pose, light, sky), height, width, effects=False)
    row = s.depth[height // 2]
    near = np.flatnonzero(row < wall - 1.0)
    # Pixel centres u + 0.5 within ±radius·f/z of the image centre: exactly 4 columns.
    assert near.tolist() == [126, 127, 128, 129]
    # Each hits the cylinder's front: depth = z − sqrt(r² − x²) with x its lateral offset.
    x = (near + 0.5 - width / 2) / focal * row[near]
    np.testing.assert_allclose(row[near], distance - np.sqrt(radius**2 - x**2), rtol=1e-4)
    np.testing.assert_allclose(np.delete(row, near), wall, rtol=1e-5)
    assert thin_runs(s.depth, 4) == height  # one 4-px run in every row


def test_extra_kinds_are_rendered_by_name_only():
    assert "thin_structures" in EXTRA_KINDS and "thin_structures" not in SCENE_KINDS
    assert {choose_kind(seed) for seed in range(200)} <= set(SCENE_KINDS)
    with pytest.raises(ValueError, match="thin_structures"):
        render_sample(0, 16, 16, kind="garden")


@pytest.mark.parametrize("seed", [0, 1])
def test_thin_structures_scenes_are_full_of_thin_near_things(seed):
    s = render_sample(seed, 192, 256, kind="thin_structures")
    assert s.kind == "thin_structures" and s.rgb.std() > 8
    assert 0.5 <= s.valid.mean() < 1.0  # some sky behind the twigs and wires
    depth = np.where(s.valid, s.depth, 1e4)  # the sky is far
    street = render_sample(seed, 192, 256, kind="street")
    street_depth = np.where(street.valid, street.depth, 1e4)
    # Fence bars, poles, legs, twigs and wires: hundreds of runs at most 3 px wide,
    # several times as many as a street scene has.
    runs = thin_runs(depth, 3) + thin_runs(depth.T, 3)
    assert runs > 500
    assert runs > 3 * (thin_runs(street_depth, 3) + thin_runs(street_depth.T, 3))
