"""DIODE (validation split): laser-scanned depth of indoor and outdoor scenes.

Layout ``PATH/.../<scene>/<scan>/NAME.png`` with ``NAME_depth.npy``, (H, W, 1) float32
metres, and ``NAME_depth_mask.npy``, (H, W), non-zero where the depth is valid
(``prs-eth/Marigold: src/dataset/diode_dataset.py``). ``PATH`` is walked recursively
for ``*_depth.npy``, so it may be ``val``, ``val/indoors`` or one scan's folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from depthlens.errors import UsageError
from depthlens.eval.datasets.base import Dataset, EvalItem, check_same_size, finish_depth, read_rgb

__all__ = ["DIODEDataset"]

_DEPTH_SUFFIX = "_depth.npy"
_MASK_SUFFIX = "_depth_mask.npy"


class DIODEDataset(Dataset):
    """DIODE images with their depth and validity mask."""

    kind = "diode"
    name = "DIODE"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self.samples: list[tuple[str, Path, Path, Path]] = []  # (name, rgb, depth, mask)
        for depth in sorted(self.root.rglob(f"*{_DEPTH_SUFFIX}")):
            stem = depth.name.removesuffix(_DEPTH_SUFFIX)
            rgb, mask = depth.with_name(f"{stem}.png"), depth.with_name(f"{stem}{_MASK_SUFFIX}")
            for needed in (rgb, mask):
                if not needed.is_file():
                    raise UsageError(f"DIODE depth {depth} has no {needed.name} beside it.")
            name = (depth.parent / stem).relative_to(self.root).as_posix()
            self.samples.append((name, rgb, depth, mask))
        if not self.samples:
            raise UsageError(f"{self.root} holds no DIODE depth maps (*{_DEPTH_SUFFIX}).")

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> EvalItem:
        name, rgb_path, depth_path, mask_path = self.samples[index]
        rgb = read_rgb(rgb_path)
        raw = _load_npy(depth_path)
        if raw.ndim == 3 and raw.shape[2] == 1:
            raw = raw[:, :, 0]
        check_same_size(rgb, raw, depth_path)
        mask = _load_npy(mask_path)
        if mask.shape != raw.shape:
            raise UsageError(f"DIODE mask {mask_path} is {mask.shape}, expected {raw.shape}.")
        depth, valid = finish_depth(raw, mask != 0)
        return EvalItem(name=name, rgb=rgb, depth=depth, valid=valid)


def _load_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise UsageError(f"{path} cannot be read as an NPY array ({err}).") from err
    if array.dtype.kind not in "biuf":
        raise UsageError(f"{path} does not hold a numeric array.")
    return array
