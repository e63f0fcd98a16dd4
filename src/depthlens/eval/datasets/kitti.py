"""KITTI, the Eigen test split with the annotated (projected, accumulated) depth.

``PATH`` is the KITTI root (or the split file in it). It holds the raw drives,
``<date>/<drive>/image_02/data/<frame>.png``, the annotated depth,
``data_depth_annotated/{train,val}/<drive>/proj_depth/groundtruth/image_02/<frame>.png``,
and the split file ``eigen_test_files_with_gt.txt``, one line per image::

    2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png \
        2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png 721.5377

(image path, ground-truth path or ``None``, focal length in pixels; 697 lines, of
which 45 have no ground truth and are skipped, leaving 652 images;
``cleinc/bts: train_test_inputs/eigen_test_files_with_gt.txt``). The ground-truth
path is looked for under ``PATH``, ``PATH/data_depth_annotated`` and its ``train`` and
``val`` folders. Depth PNGs are 16-bit, metres = value / 256, 0 = no measurement
(``cleinc/bts: utils/eval_with_pngs.py``). The split gives only the focal length, so
items carry no intrinsics.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depthlens.errors import UsageError
from depthlens.eval.datasets.base import (
    Dataset,
    EvalItem,
    check_same_size,
    finish_depth,
    read_depth_png16,
    read_rgb,
)

__all__ = ["EIGEN_SPLIT", "KITTI_DEPTH_SCALE", "KITTIDataset", "KITTISample"]

EIGEN_SPLIT = "eigen_test_files_with_gt.txt"
KITTI_DEPTH_SCALE = 1.0 / 256.0  # metres per stored unit
_GT_ROOTS = (
    Path(),
    Path("data_depth_annotated"),
    Path("data_depth_annotated") / "train",
    Path("data_depth_annotated") / "val",
)


@dataclass(frozen=True)
class KITTISample:
    """One evaluated line of the split: image and ground-truth paths, focal length (px)."""

    name: str
    rgb: Path
    depth: Path
    focal: float


class KITTIDataset(Dataset):
    """KITTI Eigen test images that have annotated depth (652 with the standard split)."""

    kind = "kitti"
    name = "KITTI"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        if self.root.is_file():
            self.split = self.root
            self.root = self.root.parent
        else:
            self.split = self.root / EIGEN_SPLIT
        if not self.split.is_file():
            raise UsageError(
                f"Expected the Eigen split file {EIGEN_SPLIT} in {self.root}, but it is not there."
            )
        self.samples = self._read_split()
        if not self.samples:
            raise UsageError(f"{self.split} lists no image with ground truth to evaluate.")

    def __len__(self) -> int:
        return len(self.samples)

    def _read_split(self) -> list[KITTISample]:
        try:
            lines = self.split.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(f"{self.split} cannot be read ({err}).") from err
        samples: list[KITTISample] = []
        for number, line in enumerate(lines, 1):
            fields = line.split()
            if not fields:
                continue
            where = f"{self.split} line {number}"
            if len(fields) != 3:
                raise UsageError(
                    f"{where} has {len(fields)} fields, expected 3: image path, ground-truth "
                    "path (or None) and focal length."
                )
            rgb_rel, gt_rel, focal_text = fields
            try:
                focal = float(focal_text)
            except ValueError:
                focal = math.nan
            if not (math.isfinite(focal) and focal > 0):
                raise UsageError(
                    f"{where}: the focal length '{focal_text}' is not a positive number."
                )
            if gt_rel == "None":
                continue
            rgb = self.root / rgb_rel
            if not rgb.is_file():
                raise UsageError(f"{where} names the image {rgb}, which does not exist.")
            depth = self._find_gt(gt_rel, where)
            name = rgb_rel.removesuffix(Path(rgb_rel).suffix)
            samples.append(KITTISample(name, rgb, depth, focal))
        return samples

    def _find_gt(self, relative: str, where: str) -> Path:
        for base in _GT_ROOTS:
            candidate = self.root / base / relative
            if candidate.is_file():
                return candidate
        looked = ", ".join(str(self.root / base) for base in _GT_ROOTS)
        raise UsageError(f"{where} names the depth map {relative}, found in none of {looked}.")

    def _load(self, index: int) -> EvalItem:
        sample = self.samples[index]
        rgb = read_rgb(sample.rgb)
        units = read_depth_png16(sample.depth)
        check_same_size(rgb, units, sample.depth)
        depth, valid = finish_depth(units.astype(np.float32) * np.float32(KITTI_DEPTH_SCALE))
        return EvalItem(name=sample.name, rgb=rgb, depth=depth, valid=valid)
