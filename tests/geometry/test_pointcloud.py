"""Back-projection, normals and grid meshes against scenes of known geometry."""

from __future__ import annotations

import numpy as np
import pytest

from depthlens.geometry.camera import Camera
from depthlens.geometry.pointcloud import (
    backproject,
    depth_from_inverse,
    grid_faces,
    normals_from_points,
    point_cloud,
)

H, W = 48, 64
# Off-centre principal point and non-square pixels, so a wrong convention shows.
CAMERA = Camera(fx=50.0, fy=55.0, cx=27.3, cy=29.1, width=W, height=H)


def rays(camera: Camera) -> np.ndarray:
    """(H, W, 3) direction of each pixel centre with z = 1."""
    u = (np.arange(camera.width) + 0.5 - camera.cx) / camera.fx
    v = (np.arange(camera.height) + 0.5 - camera.cy) / camera.fy
    grid_u, grid_v = np.meshgrid(u, v)
    return np.stack([grid_u, grid_v, np.ones_like(grid_u)], axis=-1)


def plane_depth(normal: np.ndarray, distance: float, camera: Camera) -> np.ndarray:
    """Depth (z) of the plane ``n · P = distance`` seen through every pixel centre."""
    return (distance / (rays(camera) @ normal)).astype(np.float32)


def box_depth() -> tuple[np.ndarray, np.ndarray]:
    """A wall at 4 m with a box whose front face is at 2 m; and the box's mask."""
    depth = np.full((H, W), 4.0, np.float32)
    box = np.zeros((H, W), bool)
    box[12:30, 20:44] = True
    depth[box] = 2.0
    return depth, box


def fit_plane(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares plane ``n · P = d`` (unit n with d > 0) through (N, 3) points."""
    centre = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centre)
    normal = vt[-1]
    distance = float(normal @ centre)
    return (normal, distance) if distance > 0 else (-normal, -distance)


def test_backproject_formula_at_one_pixel():
    depth = np.full((H, W), 3.0, np.float32)
    points = backproject(depth, CAMERA)
    v, u = 7, 40
    expected = [(u + 0.5 - 27.3) * 3.0 / 50.0, (v + 0.5 - 29.1) * 3.0 / 55.0, 3.0]
    np.testing.assert_allclose(points[v, u], expected, rtol=1e-6)
    assert points.shape == (H, W, 3) and points.dtype == np.float32
    # The principal point projects onto the optical axis: no pixel centre sits on
    # it here, but X changes sign between the columns around cx.
    assert points[0, 26, 0] < 0 < points[0, 27, 0]


@pytest.mark.parametrize("tilt_deg", [0.0, 25.0, 50.0])
def test_tilted_plane_is_recovered(tilt_deg):
    tilt = np.radians(tilt_deg)
    normal = np.array([np.sin(tilt) * 0.6, np.sin(tilt) * 0.8, -np.cos(tilt)])
    normal = -normal / np.linalg.norm(normal)  # n · P = d with d > 0
    depth = plane_depth(normal, 2.5, CAMERA)
    rgb = np.zeros((H, W, 3), np.uint8)
    cloud = point_cloud(depth, CAMERA, rgb, "metric", with_normals=True)
    assert len(cloud) == H * W and cloud.units == "m"
    fitted, distance = fit_plane(cloud.points.astype(np.float64))
    assert abs(fitted @ normal) == pytest.approx(1.0, abs=1e-6)
    assert distance == pytest.approx(2.5, rel=1e-5)
    residual = cloud.points @ normal - 2.5
    assert np.abs(residual).max() < 1e-4
    # Normals from depth gradients face the camera and match the plane's.
    assert cloud.normals is not None
    facing = -normal  # n · P = d > 0: n points away from the camera
    np.testing.assert_allclose(cloud.normals, np.broadcast_to(facing, (H * W, 3)), atol=1e-4)


def test_wrong_camera_size_is_refused():
    with pytest.raises(ValueError, match="camera"):
        backproject(np.ones((H + 1, W), np.float32), CAMERA)


def test_invalid_and_far_pixels_are_dropped():
    depth, box = box_depth()
    depth[0, 0] = np.nan
    depth[0, 1] = -1.0
    depth[0, 2] = 0.0
    depth[0, 3] = np.inf
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[box] = (255, 0, 0)
    cloud = point_cloud(depth, CAMERA, rgb, "metric")
    assert len(cloud) == H * W - 4
    assert set(cloud.pixels.tolist()).isdisjoint({0, 1, 2, 3})
    capped = point_cloud(depth, CAMERA, rgb, "metric", max_depth=3.0)  # the wall is "sky"
    assert len(capped) == box.sum()
    assert (capped.colors == (255, 0, 0)).all()
    np.testing.assert_allclose(capped.points[:, 2], 2.0)


def test_mesh_has_no_face_across_the_box_edge():
    depth, box = box_depth()
    rgb = np.zeros((H, W, 3), np.uint8)
    cloud = point_cloud(depth, CAMERA, rgb, "metric", mesh=True)
    assert cloud.faces is not None and len(cloud.faces) > 0
    on_box = box.reshape(-1)[cloud.pixels]
    corners = on_box[cloud.faces]  # (F, 3) bool: which corners lie on the box
    assert (corners.all(axis=1) | ~corners.any(axis=1)).all()
    # Every grid triangle wholly on the box or wholly on the wall is kept.
    expected = 0
    for v in range(H - 1):
        for u in range(W - 1):
            a, b, c, d = box[v, u], box[v, u + 1], box[v + 1, u], box[v + 1, u + 1]
            expected += int(a == b == c) + int(b == c == d)
    assert len(cloud.faces) == expected
    # Faces wind counter-clockwise seen from the camera: their normals face it.
    a, b, c = (cloud.points[cloud.faces[:, i]] for i in range(3))
    face_normals = np.cross(b - a, c - a)
    assert (np.sum(face_normals * a, axis=1) < 0).all()


def test_grid_faces_threshold():
    depth = np.array([[1.0, 1.05], [1.0, 1.2]], np.float32)
    valid = np.ones_like(depth, bool)
    assert grid_faces(depth, valid, max_jump=0.1).tolist() == [[0, 2, 1]]  # 1.05 vs 1.2: 14 %
    assert len(grid_faces(depth, valid, max_jump=0.25)) == 2
    valid[0, 0] = False
    assert grid_faces(depth, valid, max_jump=0.25).tolist() == [[1, 2, 3]]
    with pytest.raises(ValueError):
        grid_faces(depth, valid, max_jump=0.0)


def test_relative_inverse_depth_is_converted_and_marked():
    depth, box = box_depth()
    disparity = 1.0 / depth
    disparity[0, :] = -0.5  # "beyond infinity": dropped
    converted = depth_from_inverse(disparity, far_fraction=0.0)
    assert np.isnan(converted[0]).all()
    # Median depth 1; ratios kept (the box is half as far as the wall).
    assert np.nanmedian(converted) == pytest.approx(1.0)
    assert converted[box].mean() / converted[~box][W:].mean() == pytest.approx(0.5)
    rgb = np.zeros((H, W, 3), np.uint8)
    cloud = point_cloud(disparity, CAMERA, rgb, "relative_inverse")
    assert cloud.units == "relative"
    assert len(cloud) <= (H - 1) * W  # row 0 gone; the farthest 1 % (wall ties) may go too
    ramp = np.linspace(1.0, 2.0, 10_000, dtype=np.float32).reshape(100, 100)
    assert np.isnan(depth_from_inverse(ramp)).sum() == 100  # the smallest 1 %


def test_normals_of_a_sphere_point_outwards_to_the_camera():
    camera = Camera(40.0, 40.0, 32.0, 24.0, W, H)
    r = rays(camera)
    centre = np.array([0.0, 0.0, 5.0])
    # Ray-sphere intersection, radius 10 (the sphere fills the view).
    direction = r / np.linalg.norm(r, axis=-1, keepdims=True)
    b = direction @ centre
    t = b - np.sqrt(b**2 - (centre @ centre - 100.0))
    points = direction * t[..., None]
    normals = normals_from_points(points.astype(np.float32))
    # Seen from inside, the surface faces the centre; the camera sees that side.
    expected = centre - points
    expected /= np.linalg.norm(expected, axis=-1, keepdims=True)
    np.testing.assert_allclose(normals[2:-2, 2:-2], expected[2:-2, 2:-2], atol=2e-2)
