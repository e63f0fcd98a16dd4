"""MPI Sintel (training set): rendered frames with exact depth.

Layout ``PATH/final/<scene>/frame_XXXX.png`` (or ``PATH/clean/...`` when there is no
``final`` pass) and ``PATH/depth/<scene>/frame_XXXX.dpt``; ``PATH`` may also be the
folder holding ``training/``. A ``.dpt`` file is little-endian: float32 tag
202021.25, int32 width, int32 height, then height × width float32 depths, row-major
(``DepthAnything/Video-Depth-Anything:
benchmark/dataset_extract/dataset_extract_sintel.py``).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from depthlens.errors import UsageError
from depthlens.eval.datasets.base import Dataset, EvalItem, check_same_size, finish_depth, read_rgb
from depthlens.io.depth_files import write_bytes

__all__ = ["DPT_TAG", "SINTEL_PASSES", "SintelDataset", "read_dpt", "write_dpt"]

DPT_TAG = 202021.25
SINTEL_PASSES = ("final", "clean")
_HEADER = struct.Struct("<fii")
_MAX_SIDE = 1 << 16


def read_dpt(path: str | os.PathLike[str]) -> np.ndarray:
    """A Sintel ``.dpt`` depth file as (H, W) float32 (values as stored)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise UsageError(f"Expected the depth file {path}, but it does not exist.") from err
    except OSError as err:
        raise UsageError(f"Depth file {path} cannot be read ({err.strerror or err}).") from err
    if len(data) < _HEADER.size:
        raise UsageError(
            f"{path} has {len(data)} bytes, too few for a .dpt header (tag, width, height)."
        )
    tag, width, height = _HEADER.unpack_from(data)
    if tag != np.float32(DPT_TAG):
        raise UsageError(f"{path} starts with {tag!r}, not the .dpt tag {DPT_TAG}.")
    if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE):
        raise UsageError(f"{path} declares a {width}×{height} depth map, which cannot be right.")
    expected = _HEADER.size + 4 * width * height
    if len(data) != expected:
        raise UsageError(
            f"{path} has {len(data)} bytes, expected {expected} for its {width}×{height} depth map."
        )
    values = np.frombuffer(data, dtype="<f4", offset=_HEADER.size)
    return values.reshape(height, width).astype(np.float32)


def write_dpt(path: str | os.PathLike[str], depth: np.ndarray) -> Path:
    """Write an (H, W) depth map as a Sintel ``.dpt`` file (atomically); returns the path."""
    array = np.asarray(depth, dtype="<f4")
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"write_dpt takes a non-empty (H, W) array, got {array.shape}")
    height, width = array.shape
    return write_bytes(path, _HEADER.pack(DPT_TAG, width, height) + array.tobytes())


class SintelDataset(Dataset):
    """Sintel frames (final pass, else clean) with their ``.dpt`` depth."""

    kind = "sintel"
    name = "Sintel"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        if not (self.root / "depth").is_dir() and (self.root / "training" / "depth").is_dir():
            self.root = self.root / "training"
        depth_root = self.root / "depth"
        if not depth_root.is_dir():
            raise UsageError(f"Expected Sintel depth maps in {depth_root}/<scene>/*.dpt.")
        passes = [self.root / p for p in SINTEL_PASSES if (self.root / p).is_dir()]
        if not passes:
            raise UsageError(
                f"Expected Sintel frames in {self.root}/final/<scene>/ (or clean/), found neither."
            )
        self.frames = passes[0]
        self.samples: list[tuple[str, Path, Path]] = []  # (name, rgb, depth)
        for depth in sorted(depth_root.glob("*/*.dpt")):
            scene = depth.parent.name
            rgb = self.frames / scene / f"{depth.stem}.png"
            if not rgb.is_file():
                raise UsageError(f"Sintel depth {depth} has no frame {rgb}.")
            self.samples.append((f"{scene}/{depth.stem}", rgb, depth))
        if not self.samples:
            raise UsageError(f"{depth_root} holds no <scene>/*.dpt depth maps.")

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> EvalItem:
        name, rgb_path, depth_path = self.samples[index]
        rgb = read_rgb(rgb_path)
        raw = read_dpt(depth_path)
        check_same_size(rgb, raw, depth_path)
        depth, valid = finish_depth(raw)
        return EvalItem(name=name, rgb=rgb, depth=depth, valid=valid)
