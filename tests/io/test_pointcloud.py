"""PLY point clouds and trimesh meshes: written atomically, read back exactly."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from depthlens.errors import ImageError, OutputError
from depthlens.geometry.camera import Camera
from depthlens.geometry.pointcloud import point_cloud
from depthlens.io.depth_files import depth_sidecar, read_sidecar, write_sidecar
from depthlens.io.pointcloud import encode_ply, read_ply, write_mesh, write_ply

H, W = 24, 32
CAMERA = Camera(30.0, 31.0, 13.7, 14.2, W, H)


def box_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth (wall at 4 m, box front at 2 m, a hole), colours, and the box mask."""
    depth = np.full((H, W), 4.0, np.float32)
    box = np.zeros((H, W), bool)
    box[6:15, 8:22] = True
    depth[box] = 2.0
    depth[0, :5] = np.nan
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    return depth, rgb, box


@pytest.mark.parametrize("with_normals", [False, True])
def test_ply_round_trip(tmp_path, with_normals):
    depth, rgb, _ = box_scene()
    cloud = point_cloud(depth, CAMERA, rgb, "metric", with_normals=with_normals)
    path = write_ply(tmp_path / "cloud.ply", cloud, comments=["made by a test"])
    assert len(cloud) == H * W - 5  # the valid pixels
    vertices = read_ply(path)
    assert len(vertices) == len(cloud)
    np.testing.assert_array_equal(np.stack([vertices[a] for a in "xyz"], 1), cloud.points)
    colors = np.stack([vertices[c] for c in ("red", "green", "blue")], 1)
    np.testing.assert_array_equal(colors, cloud.colors)
    if with_normals:
        normals = np.stack([vertices[n] for n in ("nx", "ny", "nz")], 1)
        np.testing.assert_array_equal(normals, cloud.normals)
    else:
        assert "nx" not in (vertices.dtype.names or ())
    loaded = trimesh.load(path)
    assert isinstance(loaded, trimesh.PointCloud)
    np.testing.assert_allclose(loaded.vertices, cloud.points, rtol=1e-6)
    np.testing.assert_array_equal(loaded.colors[:, :3], cloud.colors)
    assert list(tmp_path.iterdir()) == [path]  # no temporary left behind


def test_ply_header_is_binary_little_endian():
    depth, rgb, _ = box_scene()
    data = encode_ply(point_cloud(depth, CAMERA, rgb, "metric"))
    header = data[: data.index(b"end_header\n")].decode("ascii")
    assert header.startswith("ply\nformat binary_little_endian 1.0\n")
    assert f"element vertex {H * W - 5}" in header


def test_read_ply_refuses_other_files(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        read_ply(tmp_path / "missing.ply")
    (tmp_path / "a.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 0\nend_header\n")
    with pytest.raises(ImageError, match="binary little-endian"):
        read_ply(tmp_path / "a.ply")
    (tmp_path / "t.ply").write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\n"
        b"end_header\n\x00\x00"
    )
    with pytest.raises(ImageError, match="truncated"):
        read_ply(tmp_path / "t.ply")


@pytest.mark.parametrize("suffix", ["ply", "obj", "glb"])
def test_mesh_opens_in_trimesh_without_faces_across_edges(tmp_path, suffix):
    depth, rgb, box = box_scene()
    cloud = point_cloud(depth, CAMERA, rgb, "metric", mesh=True)
    assert cloud.faces is not None
    path = write_mesh(tmp_path / f"mesh.{suffix}", cloud)
    loaded = trimesh.load(path, process=False)
    if isinstance(loaded, trimesh.Scene):  # GLB holds a scene of one mesh
        (loaded,) = loaded.geometry.values()
    assert len(loaded.faces) == len(cloud.faces)
    # Vertices may be reordered by the format; find each by position.
    depth_of_vertex = np.asarray(loaded.vertices)[:, 2]
    on_box = np.isclose(depth_of_vertex, 2.0)[np.asarray(loaded.faces)]
    assert (on_box.all(axis=1) | ~on_box.any(axis=1)).all()
    assert np.isclose(depth_of_vertex, 2.0).sum() == box.sum()


def test_write_mesh_refuses_unknown_suffix_and_bare_clouds(tmp_path):
    depth, rgb, _ = box_scene()
    with pytest.raises(OutputError, match=r"\.glb"):
        write_mesh(tmp_path / "mesh.stl", point_cloud(depth, CAMERA, rgb, "metric", mesh=True))
    with pytest.raises(ValueError, match="no faces"):
        write_mesh(tmp_path / "mesh.ply", point_cloud(depth, CAMERA, rgb, "metric"))


def test_sidecar_round_trip(tmp_path):
    depth, _, _ = box_scene()
    info = depth_sidecar(depth, "metric", "metric3d-small", CAMERA, files=["a.png"])
    path = write_sidecar(tmp_path / "x-depth.json", info)
    back = read_sidecar(path)
    assert back == info
    assert back["units"] == "m" and back["camera_source"] == "user"
    assert (back["fx"], back["fy"], back["cx"], back["cy"]) == (30.0, 31.0, 13.7, 14.2)
    assert (back["width"], back["height"]) == (W, H)
    assert (back["min_depth"], back["max_depth"]) == (2.0, 4.0)  # NaN left out
    empty = depth_sidecar(np.full((2, 2), np.nan), "relative_inverse", "m", Camera.default(2, 2))
    assert empty["min_depth"] is None and empty["camera_source"] == "default"
    with pytest.raises(ImageError, match="JSON"):
        (tmp_path / "bad.json").write_text("{")
        read_sidecar(tmp_path / "bad.json")
