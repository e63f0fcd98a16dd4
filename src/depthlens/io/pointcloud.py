"""Point clouds and meshes on disk: binary PLY written here, meshes through trimesh.

``encode_ply`` writes a binary little-endian PLY with one ``vertex`` element: ``x y z``
float32, ``red green blue`` uchar and, when the cloud has normals, ``nx ny nz``
float32. ``read_ply`` reads such files back (and any binary little-endian PLY whose
vertex element has only fixed-size properties). Meshes (a cloud with ``faces``) are
written by trimesh as PLY, OBJ or GLB with vertex colours.

Coordinates are those of the cloud: the camera frame (x right, y down, z forward),
as :mod:`depthlens.geometry.pointcloud` makes them. Every file is written atomically
by :func:`depthlens.io.depth_files.write_bytes`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from depthlens.errors import ImageError, OutputError
from depthlens.geometry.pointcloud import PointCloud
from depthlens.io.depth_files import read_file, write_bytes

__all__ = ["MESH_FORMATS", "encode_mesh", "encode_ply", "read_ply", "write_mesh", "write_ply"]

PathLike = str | os.PathLike[str]

MESH_FORMATS = ("ply", "obj", "glb")

# PLY scalar types (Turk's PLY format; both the old and the sized names).
_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


def _vertex_dtype(with_normals: bool) -> np.dtype:
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    if with_normals:
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    return np.dtype(fields)


def encode_ply(cloud: PointCloud, comments: Sequence[str] = ()) -> bytes:
    """The binary little-endian PLY of ``cloud``'s points (its faces are not written).

    ``comments`` become ``comment`` header lines (one line each, ASCII).
    """
    with_normals = cloud.normals is not None
    vertices = np.empty(len(cloud), _vertex_dtype(with_normals))
    for axis, name in enumerate("xyz"):
        vertices[name] = cloud.points[:, axis]
    for channel, name in enumerate(("red", "green", "blue")):
        vertices[name] = cloud.colors[:, channel]
    if cloud.normals is not None:
        for axis, name in enumerate(("nx", "ny", "nz")):
            vertices[name] = cloud.normals[:, axis]
    lines = ["ply", "format binary_little_endian 1.0"]
    lines += [f"comment {' '.join(c.split())}" for c in comments]
    lines.append(f"element vertex {len(cloud)}")
    for name in vertices.dtype.names or ():
        lines.append(f"property {'uchar' if vertices.dtype[name] == np.uint8 else 'float'} {name}")
    lines.append("end_header")
    header = ("\n".join(lines) + "\n").encode("ascii")
    return header + vertices.tobytes()


def write_ply(path: PathLike, cloud: PointCloud, comments: Sequence[str] = ()) -> Path:
    """Write :func:`encode_ply` of ``cloud`` to ``path`` atomically; returns the path."""
    return write_bytes(path, encode_ply(cloud, comments))


def read_ply(path: PathLike) -> np.ndarray:
    """The vertices of a binary little-endian PLY as a structured array (one field each).

    Only the first element is read and it must be ``vertex``. Raises ``ImageError``
    for a missing file, an ASCII or big-endian PLY, list properties in the vertex
    element, or data shorter than the header says.
    """
    data = read_file(path, "Point cloud file")
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise ImageError(f"{path} is not a PLY file.")
    header = data[:end].decode("ascii", "replace").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise ImageError(f"{path} is not a binary little-endian PLY file.")
    count, fields, element = 0, [], None
    for line in header:
        words = line.split()
        if words[:1] == ["element"] and len(words) == 3:
            if element is not None:
                break  # only the first element is read; its data starts the body
            element, count = words[1], int(words[2])
        elif words[:1] == ["property"] and element == "vertex":
            if words[1] == "list" or words[1] not in _PLY_TYPES or len(words) != 3:
                raise ImageError(f"{path} has a vertex property depthlens cannot read: {line}.")
            fields.append((words[2], "<" + _PLY_TYPES[words[1]]))
    if element != "vertex":
        raise ImageError(f"{path} does not start with a vertex element.")
    dtype = np.dtype(fields)
    body = data[end + len(b"end_header\n") :]
    if len(body) < count * dtype.itemsize:
        raise ImageError(f"{path} is truncated: {count} vertices announced, fewer stored.")
    return np.frombuffer(body, dtype, count=count).copy()


def encode_mesh(cloud: PointCloud, file_type: str) -> bytes:
    """The mesh of ``cloud`` (points, ``faces``, vertex colours) as PLY, OBJ or GLB bytes."""
    import trimesh

    if cloud.faces is None:
        raise ValueError("the point cloud has no faces; make it with point_cloud(mesh=True)")
    if file_type not in MESH_FORMATS:
        raise ValueError(f"mesh format must be one of {', '.join(MESH_FORMATS)}, not {file_type}")
    colors = np.concatenate([cloud.colors, np.full((len(cloud), 1), 255, np.uint8)], axis=1)
    mesh = trimesh.Trimesh(
        vertices=cloud.points,
        faces=cloud.faces,
        vertex_colors=colors,
        vertex_normals=cloud.normals,
        process=False,  # keep every vertex and face as given: no merging or reordering
    )
    data = mesh.export(file_type=file_type)
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def write_mesh(path: PathLike, cloud: PointCloud) -> Path:
    """Write the mesh of ``cloud`` in the format of ``path``'s suffix (.ply, .obj, .glb)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in MESH_FORMATS:
        raise OutputError(f"Cannot write a mesh as {path}: use a .ply, .obj or .glb name.")
    return write_bytes(path, encode_mesh(cloud, suffix))
