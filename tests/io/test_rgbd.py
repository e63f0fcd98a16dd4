"""RGB-D folders: round trips, the manifest's intrinsics, appending, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from depthlens.errors import DepthlensError
from depthlens.geometry.camera import Camera
from depthlens.io.rgbd import (
    MANIFEST,
    PNG16_MAX_DEPTH,
    PNG16_SCALE,
    RGBDFolder,
    RGBDFolderError,
    RGBDItem,
    RGBDWriter,
    png16_scale,
    write_rgbd_folder,
)


def _item(name: str, max_depth: float = 20.0, seed: int = 0, camera: bool = True) -> RGBDItem:
    rng = np.random.default_rng(seed)
    h, w = 24, 32
    depth = rng.uniform(0.3, max_depth, (h, w)).astype(np.float32)
    depth[0, :5] = 0.0  # invalid
    depth[1, 0] = max_depth
    normals = rng.normal(size=(h, w, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    return RGBDItem(
        rgb=rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        depth=depth,
        valid=depth > 0,
        camera=Camera(30.5, 31.25, 16.2, 11.9, w, h) if camera else None,
        normals=normals,
        name=name,
        kind="street",
        seed=seed,
    )


@pytest.mark.parametrize("max_depth", [20.0, 900.0])
def test_png16_round_trip_within_its_quantisation(tmp_path, max_depth):
    item = _item("a", max_depth)
    write_rgbd_folder([item], tmp_path, "png16")
    back = RGBDFolder(tmp_path)[0]
    scale = png16_scale(item.depth)
    assert scale == (PNG16_SCALE if max_depth <= PNG16_MAX_DEPTH else max_depth / 65535)
    assert np.array_equal(back.valid, item.valid)
    err = np.abs(back.depth - item.depth)[item.valid]
    assert err.max() <= scale / 2 + 1e-6 * max_depth
    assert np.array_equal(back.rgb, item.rgb)
    assert back.depth.dtype == np.float32 and back.valid.dtype == bool


def test_npy_round_trip_is_exact_with_intrinsics_and_normals(tmp_path):
    item = _item("b")
    write_rgbd_folder([item], tmp_path, "npy")
    folder = RGBDFolder(tmp_path)
    back = folder[0]
    assert np.array_equal(back.depth, item.depth)
    assert back.camera == item.camera
    assert back.normals is not None
    np.testing.assert_allclose(back.normals, item.normals, atol=1e-3)  # stored as float16
    assert (back.name, back.kind, back.seed) == ("b", "street", 0)
    entry = json.loads((tmp_path / MANIFEST).read_text().splitlines()[0])
    assert entry["fx"] == 30.5 and entry["cy"] == 11.9 and entry["depth"] == "depth/b.npy"


def test_appending_and_duplicate_names(tmp_path):
    writer = RGBDWriter(tmp_path, "png16", normals=False)
    writer.write([_item("x", seed=1)])
    writer.write([_item("y", seed=2)])
    write_rgbd_folder([_item("z", seed=3)], tmp_path)
    folder = RGBDFolder(tmp_path)
    assert folder.names == ["x", "y", "z"]
    assert folder[0].normals is None and folder[-1].normals is not None
    assert [item.name for item in folder[1:]] == ["y", "z"]
    with pytest.raises(RGBDFolderError, match="already has"):
        write_rgbd_folder([_item("y")], tmp_path)
    with pytest.raises(IndexError):
        folder[3]


def test_synthetic_samples_write_and_read_back(tmp_path):
    from depthlens.synth.render import render_batch

    samples = render_batch([4, 5], 24, 32)
    names = write_rgbd_folder(samples, tmp_path)
    folder = RGBDFolder(tmp_path)
    assert folder.names == names == [f"{s.kind}-{s.seed:08d}" for s in samples]
    for sample, item in zip(samples, folder, strict=True):
        assert item.camera == sample.camera
        assert np.array_equal(item.rgb, sample.rgb)
        assert np.array_equal(item.valid, sample.valid)
        scale = png16_scale(sample.depth, sample.valid)
        assert np.abs(item.depth - sample.depth).max() <= scale / 2 + 1e-5


def test_generic_folder_without_intrinsics(tmp_path):
    item = _item("plain", camera=False)
    write_rgbd_folder([item], tmp_path, "npy", normals=False)
    back = RGBDFolder(tmp_path)[0]
    assert back.camera is None and back.normals is None


def _write_manifest(folder, lines):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["{not json"], "line 1 is not valid JSON"),
        (["[1, 2]"], "must be a JSON object"),
        (['{"name": "a", "rgb": "rgb/a.png"}'], "lacks depth"),
        (['{"name": "a", "rgb": "a.png", "depth": "a.png"}'], "needs 'depth_scale'"),
        (['{"name": "a", "rgb": "a.png", "depth": "a.npy", "fx": 1.0}'], "all four intrinsics"),
        (['{"name": "a", "rgb": "a.png", "depth": "a.tif", "depth_scale": 1}'], "must be .png"),
        (
            ['{"name": "a", "rgb": "a.png", "depth": "a.npy"}'] * 2,
            "line 2 repeats the sample name",
        ),
    ],
)
def test_malformed_manifest_names_the_problem(tmp_path, lines, message):
    _write_manifest(tmp_path / "d", lines)
    with pytest.raises(RGBDFolderError, match=message) as info:
        RGBDFolder(tmp_path / "d")
    assert isinstance(info.value, DepthlensError)
    assert "manifest.jsonl" in str(info.value)


def test_missing_folder_manifest_and_files(tmp_path):
    with pytest.raises(RGBDFolderError, match="No RGB-D folder"):
        RGBDFolder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RGBDFolderError, match=r"has no manifest\.jsonl"):
        RGBDFolder(tmp_path / "empty")
    _write_manifest(tmp_path / "gone", ['{"name": "a", "rgb": "rgb/a.png", "depth": "d/a.npy"}'])
    folder = RGBDFolder(tmp_path / "gone")  # files are only read on access
    with pytest.raises(RGBDFolderError, match=r"rgb/a\.png"):
        folder[0]


def test_depth_that_does_not_match_its_image(tmp_path):
    write_rgbd_folder([_item("a")], tmp_path, "npy")
    np.save(tmp_path / "depth" / "a.npy", np.ones((5, 5), np.float32))
    with pytest.raises(RGBDFolderError, match=r"expected \(H, W\) = \(24, 32\)"):
        RGBDFolder(tmp_path)[0]
