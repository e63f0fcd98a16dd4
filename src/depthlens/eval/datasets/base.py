"""What every benchmark reader yields (``EvalItem``) and the ``Dataset`` base class.

A dataset is opened by indexing its files (cheap: names and paths only); pixels are
read when an item is asked for, so a 654-image benchmark never sits in memory at once.
Problems with the data on disk raise ``UsageError`` with one sentence naming the file
and what was expected there.
"""

from __future__ import annotations

import operator
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image as PILImage

from depthlens.errors import ImageError, UsageError
from depthlens.io.depth_files import read_png16
from depthlens.io.images import DECODE_ERRORS, DECODED_FORMATS

__all__ = [
    "Dataset",
    "EvalItem",
    "Intrinsics",
    "check_same_size",
    "finish_depth",
    "read_depth_png16",
    "read_rgb",
]

Intrinsics = tuple[float, float, float, float]
"""Pinhole intrinsics ``(fx, fy, cx, cy)`` in pixels, pixel centres at integer + 0.5."""


@dataclass(frozen=True, eq=False)
class EvalItem:
    """One evaluation sample.

    ``rgb`` (H, W, 3) uint8; ``depth`` (H, W) float32 metres, 0 where invalid; ``valid``
    (H, W) bool; ``intrinsics`` ``(fx, fy, cx, cy)`` in pixels when the dataset gives
    them, else None; ``name`` identifies the sample within its dataset.
    """

    name: str
    rgb: np.ndarray
    depth: np.ndarray
    valid: np.ndarray
    intrinsics: Intrinsics | None = None

    def __post_init__(self) -> None:
        rgb, depth, valid = self.rgb, self.depth, self.valid
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(
                f"{self.name}: rgb must be (H, W, 3) uint8, got {rgb.dtype} {rgb.shape}"
            )
        if depth.shape != rgb.shape[:2] or depth.dtype != np.float32:
            raise ValueError(
                f"{self.name}: depth must be {rgb.shape[:2]} float32, "
                f"got {depth.dtype} {depth.shape}"
            )
        if valid.shape != depth.shape or valid.dtype != np.bool_:
            raise ValueError(
                f"{self.name}: valid must be {depth.shape} bool, got {valid.dtype} {valid.shape}"
            )


class Dataset(ABC):
    """A benchmark's evaluation items, read lazily: ``dataset[i]`` loads one ``EvalItem``.

    Subclasses set ``kind`` (the spec prefix, e.g. ``"nyu"``) and ``name`` (a human
    name), index their files in ``__init__`` and implement ``__len__`` and ``_load``.
    """

    kind: ClassVar[str]
    name: ClassVar[str]

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.root = Path(path).expanduser()
        if not self.root.exists():
            raise UsageError(f"The {self.name} path {self.root} does not exist.")

    @abstractmethod
    def __len__(self) -> int:
        """The number of evaluation items."""

    @abstractmethod
    def _load(self, index: int) -> EvalItem:
        """Read item ``index`` (0 <= index < len) from disk."""

    def __getitem__(self, index: int) -> EvalItem:
        index = operator.index(index)
        size = len(self)
        if not -size <= index < size:
            raise IndexError(f"item {index} of a {self.kind} dataset with {size} items")
        return self._load(index % size)

    def __iter__(self) -> Iterator[EvalItem]:
        for index in range(len(self)):
            yield self._load(index)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, {len(self)} items)"


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file, as stored (EXIF orientation is not applied,
    so pixels stay aligned with depth maps stored beside them)."""
    if not path.is_file():
        raise UsageError(f"Expected the image file {path}, but it does not exist.")
    try:
        with PILImage.open(path, formats=DECODED_FORMATS) as pil:
            rgb = np.asarray(pil.convert("RGB"), dtype=np.uint8)
    except (*DECODE_ERRORS, PILImage.DecompressionBombError) as err:
        reason = str(err).rstrip(".") or type(err).__name__
        raise UsageError(f"{path} cannot be read as an image ({reason}).") from err
    return np.ascontiguousarray(rgb)


def read_depth_png16(path: Path) -> np.ndarray:
    """(H, W) uint16 values of a 16-bit grey PNG depth map."""
    if not path.is_file():
        raise UsageError(f"Expected the depth file {path}, but it does not exist.")
    try:
        return read_png16(path)
    except ImageError as err:
        raise UsageError(str(err)) from err


def finish_depth(
    depth: np.ndarray, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(depth, valid)``: float32 metres with 0 wherever invalid (non-finite, <= 0, or
    False in ``valid``), and the matching bool mask."""
    values = np.asarray(depth, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        mask = np.isfinite(values) & (values > 0)
    if valid is not None:
        mask &= np.asarray(valid, dtype=bool)
    return np.where(mask, values, np.float32(0.0)).astype(np.float32), mask


def check_same_size(rgb: np.ndarray, depth: np.ndarray, depth_path: Path) -> None:
    """UsageError unless ``depth`` is (H, W) of the image ``rgb``."""
    if depth.shape != rgb.shape[:2]:
        raise UsageError(
            f"Depth file {depth_path} is {depth.shape}, expected (H, W) = {rgb.shape[:2]} "
            "like its image."
        )
