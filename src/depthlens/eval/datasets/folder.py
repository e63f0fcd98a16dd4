"""depthlens' own RGB-D folder format (``depthlens.io.rgbd``) as an evaluation dataset."""

from __future__ import annotations

import os

from depthlens.errors import UsageError
from depthlens.eval.datasets.base import Dataset, EvalItem
from depthlens.io.rgbd import RGBDFolder, RGBDFolderError

__all__ = ["FolderDataset"]


class FolderDataset(Dataset):
    """The samples of an RGB-D folder (``manifest.jsonl`` + files), read lazily."""

    kind = "folder"
    name = "RGB-D folder"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        try:
            self.folder = RGBDFolder(self.root)
        except RGBDFolderError as err:
            raise UsageError(str(err)) from err

    def __len__(self) -> int:
        return len(self.folder)

    def _load(self, index: int) -> EvalItem:
        try:
            item = self.folder[index]
        except RGBDFolderError as err:
            raise UsageError(str(err)) from err
        camera = item.camera
        intrinsics = None if camera is None else (camera.fx, camera.fy, camera.cx, camera.cy)
        return EvalItem(
            name=item.name, rgb=item.rgb, depth=item.depth, valid=item.valid, intrinsics=intrinsics
        )
