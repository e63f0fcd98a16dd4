"""Benchmark dataset readers: tiny files in each on-disk format, read back exactly."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import scipy.io

from depthlens.errors import UsageError
from depthlens.eval.datasets import (
    KINDS,
    DIODEDataset,
    ETH3DDataset,
    EvalItem,
    FolderDataset,
    KITTIDataset,
    NYUDataset,
    SintelDataset,
    open_dataset,
    read_dpt,
    write_dpt,
)
from depthlens.eval.datasets.nyu import NYU_INTRINSICS
from depthlens.geometry.camera import Camera
from depthlens.io.depth_files import write_png
from depthlens.io.rgbd import RGBDItem, write_rgbd_folder

H, W = 4, 5  # non-square, so a transposed read cannot pass


def _rgb(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """A distinctive (h, w, 3) uint8 image: every pixel and channel differs."""
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    return ((seed * 60 + y * 3 * w + x * 3 + c) % 256).astype(np.uint8)


def _depth(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """Distinct depths in metres, with (0, 0) invalid (0)."""
    depth = (1.0 + seed + np.arange(h * w, dtype=np.float32).reshape(h, w) * 0.25).astype(
        np.float32
    )
    depth[0, 0] = 0.0
    return depth


def _write_png16(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), values.astype(np.uint16))


def _check_item(item: EvalItem, rgb: np.ndarray | None, depth: np.ndarray) -> None:
    if rgb is not None:
        np.testing.assert_array_equal(item.rgb, rgb)
    assert item.rgb.dtype == np.uint8 and item.rgb.shape == (*depth.shape, 3)
    assert item.depth.dtype == np.float32 and item.valid.dtype == np.bool_
    np.testing.assert_allclose(item.depth, depth, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(item.valid, depth > 0)


# ------------------------------------------------------------------------------ NYU


def _write_nyu(folder: Path, count: int = 3, test=((1, 3),), userblock: int = 512) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # MATLAB v7.3 files are HDF5 behind a 512-byte user block; h5py order is (N, 3, W, H).
    with h5py.File(folder / "nyu_depth_v2_labeled.mat", "w", userblock_size=userblock) as f:
        f["images"] = np.stack([_rgb(n).transpose(2, 1, 0) for n in range(count)])
        f["rawDepths"] = np.stack([_depth(n).T for n in range(count)])
        f["depths"] = np.full((count, W, H), 7.0, np.float32)  # inpainted: must not be read
    with h5py.File(folder / "splits.mat", "w") as f:
        f["testNdxs"] = np.asarray(test, dtype=np.float64)


@pytest.mark.parametrize("test", [((1, 3),), ((1,), (3,))])
def test_nyu_mat_reads_test_split_upright(tmp_path: Path, test) -> None:
    _write_nyu(tmp_path, test=test)
    for spec in (f"nyu:{tmp_path}", f"nyu:{tmp_path / 'nyu_depth_v2_labeled.mat'}"):
        data = open_dataset(spec)
        assert isinstance(data, NYUDataset) and len(data) == 2
        first, last = data[0], data[-1]
        assert (first.name, last.name) == ("00001", "00003")
        _check_item(first, _rgb(0), _depth(0))
        _check_item(last, _rgb(2), _depth(2))
        assert first.intrinsics is None  # not 640×480
        assert [item.name for item in data] == ["00001", "00003"]
    with pytest.raises(IndexError):
        data[2]


def test_nyu_official_splits_mat_is_matlab_v5(tmp_path: Path) -> None:
    _write_nyu(tmp_path)
    # The official splits.mat is an old-style MATLAB file: a (654, 1) column of doubles.
    scipy.io.savemat(tmp_path / "splits.mat", {"testNdxs": np.asarray([[2.0], [3.0]])})
    assert (tmp_path / "splits.mat").read_bytes().startswith(b"MATLAB 5.0 MAT-file")
    data = open_dataset(f"nyu:{tmp_path}")
    assert [item.name for item in data] == ["00002", "00003"]
    _check_item(data[0], _rgb(1), _depth(1))
    scipy.io.savemat(tmp_path / "splits.mat", {"trainNdxs": np.asarray([[1.0]])})
    with pytest.raises(UsageError, match="no 'testNdxs'"):
        open_dataset(f"nyu:{tmp_path}")


def test_nyu_intrinsics_at_full_size(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "nyu_depth_v2_labeled.mat", "w") as f:
        f["images"] = np.zeros((1, 3, 640, 480), np.uint8)
        f["rawDepths"] = np.ones((1, 640, 480), np.float32)
    with h5py.File(tmp_path / "splits.mat", "w") as f:
        f["testNdxs"] = np.ones((1, 1))
    item = NYUDataset(tmp_path)[0]
    assert item.rgb.shape == (480, 640, 3) and item.depth.shape == (480, 640)
    assert item.intrinsics == NYU_INTRINSICS


def test_nyu_extracted_layout(tmp_path: Path) -> None:
    scene = tmp_path / "official_splits" / "test" / "bathroom"
    scene.mkdir(parents=True)
    rgb = np.full((H, W, 3), (200, 100, 50), np.uint8)
    assert cv2.imwrite(str(scene / "rgb_00045.jpg"), rgb[:, :, ::-1])
    millimetres = (_depth(0) * 1000).astype(np.uint16)
    _write_png16(scene / "sync_depth_00045.png", millimetres)
    data = open_dataset(f"nyu:{tmp_path}")
    assert len(data) == 1
    item = data[0]
    assert item.name == "bathroom/00045"
    assert np.abs(item.rgb.astype(int) - rgb).max() <= 3  # JPEG
    _check_item(item, None, millimetres / 1000.0)


def test_nyu_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"neither nyu_depth_v2_labeled.mat"):
        open_dataset(f"nyu:{tmp_path}")
    _write_nyu(tmp_path)
    (tmp_path / "splits.mat").unlink()
    with pytest.raises(UsageError, match=r"Expected splits\.mat .* beside the labeled"):
        open_dataset(f"nyu:{tmp_path}")
    (tmp_path / "splits.mat").write_bytes(b"MATLAB 5.0 MAT-file, not really")
    with pytest.raises(UsageError, match=r"splits.mat"):
        open_dataset(f"nyu:{tmp_path}")
    with h5py.File(tmp_path / "splits.mat", "w") as f:
        f["testNdxs"] = np.asarray([[1.0, 4.0]])
    with pytest.raises(UsageError, match="images 1 to 3"):
        open_dataset(f"nyu:{tmp_path}")
    with h5py.File(tmp_path / "splits.mat", "w") as f:
        f["trainNdxs"] = np.asarray([[1.0]])
    with pytest.raises(UsageError, match="no 'testNdxs'"):
        open_dataset(f"nyu:{tmp_path}")
    mat = tmp_path / "nyu_depth_v2_labeled.mat"
    with h5py.File(mat, "w") as f:
        f["images"] = np.zeros((2, 3, W, H), np.uint8)
    with pytest.raises(UsageError, match="no 'rawDepths' dataset"):
        open_dataset(f"nyu:{mat}")
    mat.write_bytes(b"not hdf5")
    with pytest.raises(UsageError, match=r"not a MATLAB v7.3"):
        open_dataset(f"nyu:{mat}")


# ------------------------------------------------------------------------------ KITTI

_DRIVE = "2011_09_26_drive_0002_sync"


def _write_kitti(root: Path) -> list[np.ndarray]:
    lines, units = [], []
    for i, split in enumerate(("val", None, "train")):
        frame = f"{i:010d}"
        rgb_rel = f"2011_09_26/{_DRIVE}/image_02/data/{frame}.png"
        write_png(root / rgb_rel, _rgb(i))
        if split is None:
            lines.append(f"{rgb_rel} None 721.5377")
            continue
        gt_rel = f"{_DRIVE}/proj_depth/groundtruth/image_02/{frame}.png"
        values = (_depth(i) * 256).astype(np.uint16)
        _write_png16(root / "data_depth_annotated" / split / gt_rel, values)
        units.append(values)
        lines.append(f"{rgb_rel} {gt_rel} 721.5377")
    (root / "eigen_test_files_with_gt.txt").write_text("\n".join(lines) + "\n\n")
    return units


def test_kitti_skips_none_and_divides_by_256(tmp_path: Path) -> None:
    units = _write_kitti(tmp_path)
    for spec in (f"kitti:{tmp_path}", f"kitti:{tmp_path / 'eigen_test_files_with_gt.txt'}"):
        data = open_dataset(spec)
        assert isinstance(data, KITTIDataset) and len(data) == 2
        assert [s.focal for s in data.samples] == [721.5377, 721.5377]
        first, second = data[0], data[1]
        assert first.name == f"2011_09_26/{_DRIVE}/image_02/data/0000000000"
        assert second.name.endswith("0000000002")
        _check_item(first, _rgb(0), units[0] / 256.0)
        _check_item(second, _rgb(2), units[1] / 256.0)
        assert first.intrinsics is None


def test_kitti_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"Eigen split file eigen_test_files_with_gt.txt"):
        open_dataset(f"kitti:{tmp_path}")
    _write_kitti(tmp_path)
    split = tmp_path / "eigen_test_files_with_gt.txt"
    good = split.read_text()
    data = KITTIDataset(tmp_path)  # indexed; pixels are read on access
    next(tmp_path.rglob("0000000000.png")).unlink()
    with pytest.raises(UsageError, match="does not exist"):
        data[0]
    _write_kitti(tmp_path)
    split.write_text(good.rstrip("\n") + "\na.png b.png\n")
    with pytest.raises(UsageError, match=r"line 4 has 2 fields, expected 3"):
        KITTIDataset(tmp_path)
    split.write_text("a.png None abc\n")
    with pytest.raises(UsageError, match="focal length 'abc'"):
        KITTIDataset(tmp_path)
    split.write_text(good.splitlines()[2].replace("0000000002.png ", "0000000009.png ", 1) + "\n")
    with pytest.raises(UsageError, match="names the image"):
        KITTIDataset(tmp_path)
    split.write_text(good.splitlines()[2].replace("_sync/proj", "_sync/nope") + "\n")
    with pytest.raises(UsageError, match="found in none of"):
        KITTIDataset(tmp_path)
    split.write_text(good.splitlines()[1] + "\n")
    with pytest.raises(UsageError, match="lists no image with ground truth"):
        KITTIDataset(tmp_path)


# ------------------------------------------------------------------------------ DIODE


def test_diode_depth_and_mask(tmp_path: Path) -> None:
    scan = tmp_path / "val" / "indoors" / "scene_00019" / "scan_00183"
    scan.mkdir(parents=True)
    stem = "00019_00183_indoors_000_010"
    write_png(scan / f"{stem}.png", _rgb(1))
    depth = _depth(1)
    depth[1, 2] = 5.0  # measured but masked out
    np.save(scan / f"{stem}_depth.npy", depth[:, :, None])
    mask = (depth > 0).astype(np.float32)
    mask[1, 2] = 0.0
    np.save(scan / f"{stem}_depth_mask.npy", mask)
    data = open_dataset(f"diode:{tmp_path / 'val'}")
    assert isinstance(data, DIODEDataset) and len(data) == 1
    item = data[0]
    assert item.name == f"indoors/scene_00019/scan_00183/{stem}"
    expected = np.where(mask > 0, depth, 0.0)
    _check_item(item, _rgb(1), expected)
    assert item.depth[1, 2] == 0.0 and not item.valid[1, 2]


def test_diode_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"holds no DIODE depth maps \(\*_depth\.npy\)"):
        open_dataset(f"diode:{tmp_path}")
    np.save(tmp_path / "a_depth.npy", _depth(0))
    with pytest.raises(UsageError, match=r"has no a.png beside it"):
        open_dataset(f"diode:{tmp_path}")
    write_png(tmp_path / "a.png", _rgb(0))
    np.save(tmp_path / "a_depth_mask.npy", np.ones((H + 1, W)))
    with pytest.raises(UsageError, match=r"mask .* is"):
        open_dataset(f"diode:{tmp_path}")[0]
    (tmp_path / "a_depth.npy").write_bytes(b"garbage")
    with pytest.raises(UsageError, match="cannot be read as an NPY array"):
        open_dataset(f"diode:{tmp_path}")[0]


# ------------------------------------------------------------------------------ ETH3D


def _write_eth3d(root: Path, depth: np.ndarray) -> None:
    images = root / "courtyard" / "images" / "dslr_images"
    depths = root / "courtyard" / "ground_truth_depth" / "dslr_images"
    images.mkdir(parents=True)
    depths.mkdir(parents=True)
    h, w = depth.shape
    assert cv2.imwrite(str(images / "DSC_0286.JPG"), np.full((h, w, 3), 90, np.uint8))
    depth.astype("<f4").tofile(depths / "DSC_0286.JPG")  # raw float32 despite the name


def test_eth3d_raw_depth_row_major_inf_invalid(tmp_path: Path) -> None:
    depth = _depth(2, h=3, w=7)
    depth[2, 6] = np.inf
    _write_eth3d(tmp_path, depth)
    data = open_dataset(f"eth3d:{tmp_path}")
    assert isinstance(data, ETH3DDataset) and len(data) == 1
    item = data[0]
    assert item.name == "courtyard/DSC_0286"
    expected = np.where(np.isfinite(depth), depth, 0.0)
    _check_item(item, None, expected)
    assert item.depth[2, 6] == 0.0 and not item.valid[2, 6]
    assert len(ETH3DDataset(tmp_path / "courtyard")) == 1  # one scene's folder


def test_eth3d_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="holds no ETH3D scenes"):
        open_dataset(f"eth3d:{tmp_path}")
    _write_eth3d(tmp_path, _depth(0))
    raw = next((tmp_path / "courtyard" / "ground_truth_depth").rglob("*.JPG"))
    raw.write_bytes(raw.read_bytes()[:-4])
    with pytest.raises(UsageError, match=r"has 76 bytes, expected 80 \(raw float32 for its 5×4"):
        open_dataset(f"eth3d:{tmp_path}")[0]
    next((tmp_path / "courtyard" / "images").rglob("*.JPG")).unlink()
    with pytest.raises(UsageError, match="has no image"):
        open_dataset(f"eth3d:{tmp_path}")


# ------------------------------------------------------------------------------ Sintel


def test_dpt_round_trip_and_layout(tmp_path: Path) -> None:
    depth = _depth(3)
    path = write_dpt(tmp_path / "frame_0001.dpt", depth)
    data = path.read_bytes()
    assert len(data) == 12 + 4 * H * W
    assert struct.unpack("<fii", data[:12]) == (202021.25, W, H)
    np.testing.assert_array_equal(read_dpt(path), depth)
    with pytest.raises(ValueError):
        write_dpt(tmp_path / "bad.dpt", np.zeros(3))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00" * 8, "too few for a .dpt header"),
        (struct.pack("<fii", 1.5, W, H) + bytes(4 * H * W), "not the .dpt tag 202021.25"),
        (struct.pack("<fii", 202021.25, W, H) + bytes(4 * H * W - 1), "expected 92 for its 5×4"),
        (struct.pack("<fii", 202021.25, -1, H), r"declares a -1×4 depth map"),
    ],
)
def test_dpt_malformed(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad.dpt"
    path.write_bytes(data)
    with pytest.raises(UsageError, match=message):
        read_dpt(path)


def test_dpt_missing(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        read_dpt(tmp_path / "none.dpt")


@pytest.mark.parametrize("frames", ["final", "clean"])
def test_sintel_dataset(tmp_path: Path, frames: str) -> None:
    training = tmp_path / "training"
    for i, scene in enumerate(("alley_1", "bamboo_2")):
        write_png(training / frames / scene / "frame_0001.png", _rgb(i))
        write_dpt(training / "depth" / scene / "frame_0001.dpt", _depth(i))
    data = open_dataset(f"sintel:{tmp_path}")
    assert isinstance(data, SintelDataset) and len(data) == 2
    assert data.frames.name == frames
    assert [item.name for item in data] == ["alley_1/frame_0001", "bamboo_2/frame_0001"]
    _check_item(data[1], _rgb(1), _depth(1))


def test_sintel_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="Expected Sintel depth maps"):
        open_dataset(f"sintel:{tmp_path}")
    write_dpt(tmp_path / "depth" / "alley_1" / "frame_0001.dpt", _depth(0))
    with pytest.raises(UsageError, match="final/<scene>/ \\(or clean/\\), found neither"):
        open_dataset(f"sintel:{tmp_path}")
    (tmp_path / "final" / "alley_1").mkdir(parents=True)
    with pytest.raises(UsageError, match="has no frame"):
        open_dataset(f"sintel:{tmp_path}")
    write_png(tmp_path / "final" / "alley_1" / "frame_0001.png", _rgb(0, h=H + 1))
    with pytest.raises(UsageError, match=r"is \(4, 5\), expected \(H, W\) = \(5, 5\)"):
        open_dataset(f"sintel:{tmp_path}")[0]


# ------------------------------------------------------------------------------ folder


def test_folder_dataset_with_intrinsics(tmp_path: Path) -> None:
    camera = Camera(4.0, 4.5, 2.5, 2.0, W, H)
    item = RGBDItem(_rgb(0), _depth(0), _depth(0) > 0, camera, None, "s0")
    write_rgbd_folder([item], tmp_path / "rgbd", depth_format="npy")
    data = open_dataset(f"folder:{tmp_path / 'rgbd'}")
    assert isinstance(data, FolderDataset) and len(data) == 1
    read = data[0]
    assert read.name == "s0" and read.intrinsics == (4.0, 4.5, 2.5, 2.0)
    _check_item(read, _rgb(0), _depth(0))


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"has no manifest.jsonl"):
        open_dataset(f"folder:{tmp_path}")


# ------------------------------------------------------------------------------ specs


def test_open_dataset_spec_errors(tmp_path: Path) -> None:
    assert KINDS == ("nyu", "kitti", "diode", "eth3d", "sintel", "folder")
    with pytest.raises(UsageError, match="must be given as KIND:PATH with KIND one of nyu, kitti"):
        open_dataset(str(tmp_path).lstrip("/").replace(":", ""))
    with pytest.raises(
        UsageError,
        match=r"Unknown dataset kind 'scannet' .* choose from nyu, kitti, diode, eth3d, sintel, "
        "folder",
    ):
        open_dataset(f"scannet:{tmp_path}")
    with pytest.raises(UsageError, match="names no path after 'nyu:'"):
        open_dataset("nyu:")
    with pytest.raises(UsageError, match=r"The KITTI path .*missing does not exist"):
        open_dataset(f"KITTI:{tmp_path / 'missing'}")


def test_eval_item_checks_shapes() -> None:
    with pytest.raises(ValueError, match="depth must be"):
        EvalItem("x", _rgb(0), np.zeros((W, H), np.float32), np.zeros((W, H), bool))
