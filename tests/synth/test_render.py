"""Rendered samples: exact depth and normals on known scenes, determinism, every kind."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depthlens.geometry.camera import Camera
from depthlens.synth.render import (
    SCENE_KINDS,
    SynthSample,
    build_scene,
    choose_kind,
    render_batch,
    render_sample,
    render_scene,
)
from depthlens.synth.scene import (
    CameraPose,
    Lighting,
    Scene,
    SceneBuilder,
    Sky,
    Tex,
    look_rotation,
    rot_axis,
)

H, W = 48, 64


def _pose(position, yaw=0.0, pitch=0.0, roll=0.0, hfov=70.0, offset=(0.03, -0.02)):
    return CameraPose(look_rotation(yaw, pitch, roll), np.asarray(position, float), hfov, offset)


def _light(sun=(0.3, 1.0, 0.2)):
    sun_dir = np.asarray(sun, float) / np.linalg.norm(sun)
    return Lighting(sun_dir, np.full(3, 3.0), math.radians(0.5), np.full(3, 0.4), np.full(3, 0.1))


def _sky():
    blue = np.array([0.3, 0.5, 0.9])
    return Sky(blue, blue * 1.5, blue, 0.0, np.ones(3), 0.3, blue, 0.0)


def _rays(camera: Camera) -> np.ndarray:
    """(H, W, 3) camera-frame ray directions with z = 1 through the pixel centres."""
    v, u = np.mgrid[0 : camera.height, 0 : camera.width].astype(np.float64)
    return np.stack(
        [(u + 0.5 - camera.cx) / camera.fx, (v + 0.5 - camera.cy) / camera.fy, np.ones_like(u)],
        -1,
    )


def _back_project(sample: SynthSample, pose: CameraPose) -> np.ndarray:
    """World points (H, W, 3) of every pixel from its depth and the intrinsics."""
    cam_points = _rays(sample.camera) * sample.depth[..., None]
    return cam_points @ pose.rotation.T + pose.position


def _plane_scene(point, normal, pose) -> Scene:
    b = SceneBuilder()
    m = b.material(Tex.CHECKER, (0.8, 0.8, 0.8), (0.2, 0.2, 0.2), scale=0.5)
    b.quad(point, 1e4, 1e4, m, rot_axis(normal) @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]]))
    return b.build("test", pose, _light(), _sky())


def test_tilted_plane_depth_is_closed_form():
    pose = _pose((0.5, 1.6, -1.0), yaw=0.2, pitch=-0.15, roll=0.05)
    point = np.array([0.0, 0.0, 6.0])
    normal = np.array([0.1, 1.0, -0.4])
    normal /= np.linalg.norm(normal)
    scene = _plane_scene(point, normal, pose)
    sample = render_scene(scene, H, W, effects=False)
    # t along d = R (x, y, 1): n . (C + t R d - P) = 0, and t is the z-depth.
    world_dirs = _rays(sample.camera) @ pose.rotation.T
    t = (normal @ (point - pose.position)) / (world_dirs @ normal)
    expected_valid = (t > 0) & (t <= scene.far)  # beyond the far limit counts as sky
    assert np.array_equal(sample.valid, expected_valid)
    assert expected_valid.mean() > 0.3 and not expected_valid.all()
    np.testing.assert_allclose(sample.depth[expected_valid], t[expected_valid], rtol=2e-5)
    assert np.all(sample.depth[~expected_valid] == 0)
    # Normals: the plane's normal, turned towards the camera, in the camera frame.
    n_cam = pose.rotation.T @ normal
    n_cam = n_cam if n_cam @ [0, 0, 1] < 0 else -n_cam
    np.testing.assert_allclose(
        sample.normals[expected_valid], np.broadcast_to(n_cam, (expected_valid.sum(), 3)), atol=1e-5
    )
    # Intrinsics: back-projected pixels lie on the plane.
    world = _back_project(sample, pose)[expected_valid]
    assert np.abs((world - point) @ normal).max() < 1e-3 * t[expected_valid].max()


def test_sphere_depth_and_normals_are_analytic():
    pose = _pose((0.0, 0.0, 0.0), yaw=0.1, pitch=0.05)
    centre, radius = np.array([0.4, 0.2, 5.0]), 1.3
    b = SceneBuilder()
    b.sphere(centre, radius, b.material(Tex.NOISE, (0.7, 0.3, 0.2), (0.5, 0.2, 0.1)))
    scene = b.build("test", pose, _light(), _sky())
    sample = render_scene(scene, H, W, effects=False)
    dirs = _rays(sample.camera) @ pose.rotation.T
    oc = pose.position - centre
    a = (dirs * dirs).sum(-1)
    half_b = dirs @ oc
    disc = half_b**2 - a * (oc @ oc - radius**2)
    hit = disc > 0
    t = np.where(hit, (-half_b - np.sqrt(np.maximum(disc, 0))) / a, 0.0)
    # Pixels whose ray grazes the silhouette may differ by float rounding; skip a rim.
    clear = np.abs(disc) > 1e-3 * a
    assert np.array_equal(sample.valid[clear], hit[clear])
    inner = hit & clear
    np.testing.assert_allclose(sample.depth[inner], t[inner], rtol=1e-5)
    world = pose.position + t[..., None] * dirs
    n_world = (world - centre) / radius
    n_cam = n_world @ pose.rotation  # R^T n
    np.testing.assert_allclose(sample.normals[inner], n_cam[inner], atol=2e-4)
    # Back-projection with the sample's intrinsics lands on the sphere.
    back = _back_project(sample, pose)[inner]
    assert np.abs(np.linalg.norm(back - centre, axis=1) - radius).max() < 1e-4


def test_shadow_darkens_the_ground_under_a_box():
    pose = _pose((0.0, 6.0, -6.0), pitch=-0.7, hfov=60.0, offset=(0.0, 0.0))
    b = SceneBuilder()
    b.ground_plane(0.0, b.material(Tex.FLAT, (0.6, 0.6, 0.6), noise=0.0))
    b.box((0.0, 1.5, 2.0), (1.0, 0.1, 1.0), b.material(Tex.FLAT, (0.5, 0.2, 0.2), noise=0.0))
    scene = b.build("test", pose, _light(sun=(0.0, 1.0, 0.0)), _sky())
    sample = render_scene(scene, 96, 96, effects=False)
    world = _back_project(sample, pose)
    ground = sample.valid & (np.abs(world[..., 1]) < 1e-3)
    under = ground & (np.abs(world[..., 0]) < 0.7) & (np.abs(world[..., 2] - 2.0) < 0.7)
    open_ground = ground & ((np.abs(world[..., 0]) > 1.6) | (np.abs(world[..., 2] - 2.0) > 1.6))
    assert under.sum() > 20 and open_ground.sum() > 200
    lum = sample.rgb.astype(float).mean(-1)
    assert lum[under].mean() < 0.6 * lum[open_ground].mean()


def test_sky_is_invalid_and_samples_are_well_formed():
    pose = _pose((0.0, 1.5, 0.0), pitch=0.1)
    b = SceneBuilder()
    b.ground_plane(0.0, b.material(Tex.NOISE, (0.4, 0.5, 0.3), (0.3, 0.3, 0.2)))
    scene = b.build("test", pose, _light(), _sky(), far=500.0)
    s = render_scene(scene, H, W)
    assert s.rgb.shape == (H, W, 3) and s.rgb.dtype == np.uint8
    assert s.depth.shape == (H, W) and s.depth.dtype == np.float32
    assert s.normals.shape == (H, W, 3) and s.normals.dtype == np.float32
    assert s.valid.dtype == bool
    world_up_cam = pose.rotation.T @ [0, 1, 0]
    dirs = _rays(s.camera)
    above_horizon = dirs @ world_up_cam > 0
    assert not s.valid[above_horizon].any()
    assert np.all(s.depth[~s.valid] == 0) and np.all(s.normals[~s.valid] == 0)
    assert np.all(s.depth[s.valid] <= 500.0)


def test_same_seed_same_sample_in_any_batch():
    alone = render_sample(11, H, W)
    again = render_batch([3, 11, 27], H, W)[1]
    for field in ("rgb", "depth", "valid", "normals"):
        assert np.array_equal(getattr(alone, field), getattr(again, field)), field
    assert alone.camera == again.camera and alone.kind == again.kind and alone.seed == 11
    other = render_sample(12, H, W)
    assert not np.array_equal(alone.rgb, other.rgb)


def test_kind_choice_is_by_seed_and_respects_the_pool():
    kinds = {choose_kind(seed) for seed in range(40)}
    assert kinds == set(SCENE_KINDS)
    assert all(choose_kind(s, ["street", "indoor"]) in ("street", "indoor") for s in range(20))
    assert render_sample(5, 16, 16, kind="tabletop").kind == "tabletop"
    with pytest.raises(ValueError, match="unknown scene kind"):
        render_batch([1], 16, 16, kinds=["moon"])


@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_every_kind_renders_sensible_samples(kind):
    for seed in (0, 1):
        s = render_sample(seed, 64, 64, kind=kind)
        scene = build_scene(seed, kind)
        assert s.kind == kind
        assert s.rgb.std() > 8, "blank image"
        assert 0.25 <= s.valid.mean() <= 1.0
        depth = s.depth[s.valid]
        assert np.all(np.isfinite(depth)) and depth.min() >= scene.near * 0.99
        assert depth.max() <= scene.far
        lengths = np.linalg.norm(s.normals[s.valid], axis=-1)
        np.testing.assert_allclose(lengths, 1.0, atol=1e-4)
        # Normals face the camera: n . ray < 0.
        facing = (s.normals * _rays(s.camera)).sum(-1)[s.valid]
        assert np.all(facing <= 1e-6)
        hfov = math.degrees(2 * math.atan(s.camera.width / 2 / s.camera.fx))
        assert 30.0 <= hfov <= 100.0
        if kind in ("indoor", "tabletop"):
            assert np.median(depth) < 12.0  # rooms are small (windows may see far)
