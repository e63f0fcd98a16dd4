"""NYU Depth V2, the 654-image official test split.

Two layouts are read:

* The labeled MATLAB file ``nyu_depth_v2_labeled.mat`` with ``splits.mat`` beside it
  (``PATH`` is their folder or the labeled file itself). The labeled file is MATLAB
  v7.3, i.e. HDF5: ``images`` is stored (N, 3, 640, 480) in h5py order, so
  ``images[i]`` is (3, W, H) and swapping axes 0 and 2 gives (H, W, 3);
  ``rawDepths[i]`` is (W, H), metres, 0 where the Kinect measured nothing (the
  inpainted ``depths`` are not used). ``testNdxs`` in ``splits.mat`` lists the test
  images, 1-based. Sources: gist ranftlr/a1c7a24ebb24ce0e2f2ace5bce917022 (MiDaS NYU
  evaluation), ``cleinc/bts: utils/extract_official_train_test_set_from_mat.py``.
  ``splits.mat`` is read with ``scipy.io.loadmat`` (the official file is MATLAB v5),
  or with h5py when it was saved as v7.3/HDF5.
* The BTS / ZoeDepth extraction ``PATH/official_splits/test/<scene>/rgb_XXXXX.jpg``
  with ``sync_depth_XXXXX.png`` (16-bit, millimetres) beside each image
  (``cleinc/bts: utils/extract_official_train_test_set_from_mat.py``).

Intrinsics: the RGB camera of the NYU toolbox's ``camera_params.m`` (fx 518.858,
fy 519.470, cx 325.582, cy 253.736 in MATLAB's 1-based pixel coordinates, shifted by
-0.5 to depthlens' pixel centres at integer + 0.5), given for 640×480 images only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from depthlens.errors import UsageError
from depthlens.eval.datasets.base import (
    Dataset,
    EvalItem,
    Intrinsics,
    check_same_size,
    finish_depth,
    read_depth_png16,
    read_rgb,
)

__all__ = ["LABELED_MAT", "NYU_INTRINSICS", "SPLITS_MAT", "NYUDataset"]

LABELED_MAT = "nyu_depth_v2_labeled.mat"
SPLITS_MAT = "splits.mat"
NYU_INTRINSICS: Intrinsics = (
    518.8579011745019,
    519.4696111212749,
    325.58244941119034 - 0.5,
    253.73616633400465 - 0.5,
)
_NYU_SIZE = (480, 640)  # (H, W) the intrinsics belong to
_EXTRACTED = Path("official_splits") / "test"


class NYUDataset(Dataset):
    """NYU Depth V2 test images from the labeled .mat or from the BTS extraction."""

    kind = "nyu"
    name = "NYU Depth V2"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self.mat: Path | None = None
        self.indices: list[int] = []  # 1-based, as in testNdxs
        self.pairs: list[tuple[str, Path, Path]] = []  # (name, rgb, depth) when extracted
        root = self.root
        if root.is_file():
            self._index_mat(root, root.parent / SPLITS_MAT)
        elif (root / LABELED_MAT).is_file():
            self._index_mat(root / LABELED_MAT, root / SPLITS_MAT)
        elif (root / _EXTRACTED).is_dir():
            self._index_extracted(root / _EXTRACTED)
        elif root.name == "test" and root.parent.name == "official_splits":
            self._index_extracted(root)
        else:
            raise UsageError(
                f"The NYU path {root} holds neither {LABELED_MAT} (with {SPLITS_MAT}) nor the "
                f"extracted {_EXTRACTED.as_posix()}/<scene>/rgb_*.jpg layout."
            )

    def __len__(self) -> int:
        return len(self.indices) if self.mat is not None else len(self.pairs)

    def _index_mat(self, mat: Path, splits: Path) -> None:
        if not h5py.is_hdf5(mat):
            raise UsageError(
                f"{mat} is not a MATLAB v7.3 (HDF5) file, which nyu_depth_v2_labeled.mat is."
            )
        try:
            with h5py.File(mat, "r") as file:
                images, depths = _dataset(file, "images", mat), _dataset(file, "rawDepths", mat)
                shape, depth_shape, dtype = images.shape, depths.shape, images.dtype
        except OSError as err:
            raise UsageError(f"{mat} cannot be read as HDF5 ({err}).") from err
        if len(shape) != 4 or shape[1] != 3 or depth_shape != (shape[0], *shape[2:]):
            raise UsageError(
                f"{mat} has images {shape} and rawDepths {depth_shape}, expected "
                "(N, 3, W, H) and (N, W, H) as in nyu_depth_v2_labeled.mat."
            )
        if dtype != np.uint8:
            raise UsageError(f"{mat} has images of type {dtype}, expected uint8.")
        self.mat = mat
        self.indices = _read_test_indices(splits, count=shape[0])

    def _index_extracted(self, folder: Path) -> None:
        for rgb in sorted(folder.glob("*/rgb_*.jpg")):
            number = rgb.stem.removeprefix("rgb_")
            depth = rgb.with_name(f"sync_depth_{number}.png")
            if not depth.is_file():
                raise UsageError(f"NYU image {rgb} has no depth map {depth.name} beside it.")
            self.pairs.append((f"{rgb.parent.name}/{number}", rgb, depth))
        if not self.pairs:
            raise UsageError(f"{folder} holds no <scene>/rgb_*.jpg images of the NYU test split.")

    def _load(self, index: int) -> EvalItem:
        if self.mat is None:
            name, rgb_path, depth_path = self.pairs[index]
            rgb = read_rgb(rgb_path)
            millimetres = read_depth_png16(depth_path)
            check_same_size(rgb, millimetres, depth_path)
            depth, valid = finish_depth(millimetres.astype(np.float32) / np.float32(1000.0))
        else:
            ndx = self.indices[index]
            name = f"{ndx:05d}"
            try:
                with h5py.File(self.mat, "r") as file:
                    image = np.asarray(file["images"][ndx - 1])
                    raw = np.asarray(file["rawDepths"][ndx - 1])
            except (OSError, KeyError) as err:
                raise UsageError(f"Image {ndx} of {self.mat} cannot be read ({err}).") from err
            rgb = np.ascontiguousarray(np.swapaxes(image, 0, 2), dtype=np.uint8)
            depth, valid = finish_depth(np.ascontiguousarray(np.swapaxes(raw, 0, 1)))
        intrinsics = NYU_INTRINSICS if rgb.shape[:2] == _NYU_SIZE else None
        return EvalItem(name=name, rgb=rgb, depth=depth, valid=valid, intrinsics=intrinsics)


def _dataset(file: h5py.File, key: str, path: Path) -> Any:
    item = file.get(key)
    if not isinstance(item, h5py.Dataset):
        raise UsageError(f"{path} has no '{key}' dataset, which nyu_depth_v2_labeled.mat holds.")
    return item


def _read_test_indices(path: Path, count: int) -> list[int]:
    """The 1-based ``testNdxs`` of ``splits.mat``, checked against ``count`` images."""
    if not path.is_file():
        raise UsageError(
            f"Expected {SPLITS_MAT} (with testNdxs) at {path}, beside the labeled .mat file."
        )
    if h5py.is_hdf5(path):
        try:
            with h5py.File(path, "r") as file:
                values = np.asarray(_read_array(file, "testNdxs", path))
        except OSError as err:
            raise UsageError(f"{path} cannot be read as HDF5 ({err}).") from err
    else:
        values = _loadmat_v5(path)
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size == 0 or not np.all(np.isfinite(flat)) or np.any(flat != np.rint(flat)):
        raise UsageError(f"testNdxs in {path} must be a non-empty list of whole numbers.")
    indices = [int(v) for v in flat]
    if min(indices) < 1 or max(indices) > count:
        raise UsageError(
            f"testNdxs in {path} runs from {min(indices)} to {max(indices)}, but the labeled "
            f"file has images 1 to {count}."
        )
    return indices


def _read_array(file: h5py.File, key: str, path: Path) -> Any:
    item = file.get(key)
    if not isinstance(item, h5py.Dataset):
        raise UsageError(f"{path} has no '{key}' array of 1-based test image numbers.")
    return item[()]


def _loadmat_v5(path: Path) -> Any:
    """``testNdxs`` from an old-style (v5) MATLAB file, the format of the official one."""
    import scipy.io

    try:
        contents = scipy.io.loadmat(str(path))
    except Exception as err:  # scipy raises many types on malformed files
        raise UsageError(f"{path} cannot be read as a MATLAB file ({err}).") from err
    if "testNdxs" not in contents:
        raise UsageError(f"{path} has no 'testNdxs' array of 1-based test image numbers.")
    return contents["testNdxs"]
