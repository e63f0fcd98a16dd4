"""ETH3D (high-resolution multi-view, DSLR images): laser-scan depth.

Layout ``PATH/<scene>/images/dslr_images/DSC_xxxx.JPG`` for colour and
``PATH/<scene>/ground_truth_depth/dslr_images/DSC_xxxx.JPG`` for depth, which despite
its name is raw float32 (little-endian, no header), row-major, the image's size
(4032 × 6048 for the DSLR images), metres, ``inf`` where there is no measurement
(``prs-eth/Marigold: src/dataset/eth3d_dataset.py``). The raw file's shape is taken
from its colour image. ``PATH`` may also be one scene's folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from depthlens.errors import UsageError
from depthlens.eval.datasets.base import Dataset, EvalItem, finish_depth, read_rgb

__all__ = ["ETH3DDataset", "read_eth3d_depth"]

_RGB_DIR = Path("images") / "dslr_images"
_DEPTH_DIR = Path("ground_truth_depth") / "dslr_images"


class ETH3DDataset(Dataset):
    """ETH3D DSLR images that have ground-truth depth."""

    kind = "eth3d"
    name = "ETH3D"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        if (self.root / _DEPTH_DIR).is_dir():
            scenes = [self.root]
        else:
            scenes = sorted(p for p in self.root.iterdir() if (p / _DEPTH_DIR).is_dir())
        self.samples: list[tuple[str, Path, Path]] = []  # (name, rgb, depth)
        for scene in scenes:
            for depth in sorted((scene / _DEPTH_DIR).iterdir()):
                if not depth.is_file() or depth.name.startswith("."):
                    continue
                rgb = scene / _RGB_DIR / depth.name
                if not rgb.is_file():
                    raise UsageError(f"ETH3D depth {depth} has no image {rgb}.")
                self.samples.append((f"{scene.name}/{depth.stem}", rgb, depth))
        if not self.samples:
            raise UsageError(
                f"{self.root} holds no ETH3D scenes with {_DEPTH_DIR.as_posix()}/ depth files."
            )

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> EvalItem:
        name, rgb_path, depth_path = self.samples[index]
        rgb = read_rgb(rgb_path)
        height, width = rgb.shape[:2]
        depth, valid = finish_depth(read_eth3d_depth(depth_path, height, width))
        return EvalItem(name=name, rgb=rgb, depth=depth, valid=valid)


def read_eth3d_depth(path: Path, height: int, width: int) -> np.ndarray:
    """An ETH3D raw depth file as (height, width) float32, ``inf`` kept as stored."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UsageError(f"ETH3D depth {path} cannot be read ({err.strerror or err}).") from err
    expected = height * width * 4
    if len(data) != expected:
        raise UsageError(
            f"ETH3D depth {path} has {len(data)} bytes, expected {expected} "
            f"(raw float32 for its {width}×{height} image)."
        )
    return np.frombuffer(data, dtype="<f4").reshape(height, width).astype(np.float32)
