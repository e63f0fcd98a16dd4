"""RGB-D folders: colour images with metric depth, intrinsics and normals, plus a manifest.

The format training and evaluation read, for synthetic samples and for RGB-D data of
any origin ("the generic manifest folder")::

    folder/
      manifest.jsonl      one JSON object per sample, one per line
      rgb/NAME.png        colour image (any format ``load_image`` reads)
      depth/NAME.png      16-bit grey PNG: metres = value × depth_scale, 0 = invalid
      depth/NAME.npy      or float32 metres as NPY (exact), 0 = invalid
      normals/NAME.npy    optional (H, W, 3) unit normals, camera frame, float16

A manifest line::

    {"name": "street-00000042", "rgb": "rgb/street-00000042.png",
     "depth": "depth/street-00000042.png", "depth_scale": 0.001,
     "fx": 181.0, "fy": 181.0, "cx": 128.0, "cy": 128.0, "width": 256, "height": 256,
     "kind": "street", "seed": 42, "normals": "normals/street-00000042.npy"}

Required keys: ``name``, ``rgb``, ``depth``; ``depth_scale`` (metres per stored unit)
is required for PNG depth and defaults to 1 for NPY/PFM. ``fx``, ``fy``, ``cx``, ``cy``
(pixels; pixel centres at integer + 0.5, as in ``depthlens.synth``) come all together
or not at all; ``normals``, ``kind``, ``seed`` are optional. Paths are relative to the
folder (or absolute).

PNG depth precision: the writer uses ``PNG16_SCALE`` = 1 mm per unit, which holds
depths up to ``PNG16_MAX_DEPTH`` = 65.535 m with at most 0.5 mm error; an image whose
farthest valid pixel lies beyond that gets its own scale, ``max_depth / 65535``, so its
error is at most half of that. NPY depth is exact.

Every file is written atomically (temporary file, then rename), data files before
their manifest line, so a reader never meets a line whose files are missing.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import cv2
import numpy as np

from depthlens.errors import DepthlensError, ImageError, OutputError
from depthlens.geometry.camera import Camera
from depthlens.io.depth_files import (
    atomic_write,
    read_npy,
    read_pfm,
    read_png16,
    write_bytes,
    write_png,
)
from depthlens.io.images import load_image

__all__ = [
    "DEPTH_FORMATS",
    "MANIFEST",
    "PNG16_MAX_DEPTH",
    "PNG16_SCALE",
    "RGBDFolder",
    "RGBDFolderError",
    "RGBDItem",
    "RGBDWriter",
    "append_lines",
    "png16_scale",
    "sample_name",
    "write_rgbd_folder",
]

MANIFEST = "manifest.jsonl"
DEPTH_FORMATS = ("png16", "npy")
PNG16_SCALE = 0.001  # metres per unit: millimetres
PNG16_MAX_DEPTH = 65535 * PNG16_SCALE  # 65.535 m
_INTRINSICS = ("fx", "fy", "cx", "cy")


class RGBDFolderError(DepthlensError):
    """An RGB-D folder is missing, malformed or inconsistent with its manifest."""


@dataclass(frozen=True)
class RGBDItem:
    """One RGB-D sample read from (or to be written to) a folder.

    ``rgb`` (H, W, 3) uint8; ``depth`` (H, W) float32 metres, 0 where invalid; ``valid``
    (H, W) bool (depth > 0); ``camera`` intrinsics or None when the manifest has none;
    ``normals`` (H, W, 3) float32 camera-frame unit normals or None; ``name`` the
    sample's unique name; ``kind`` and ``seed`` when the manifest records them.
    """

    rgb: np.ndarray
    depth: np.ndarray
    valid: np.ndarray
    camera: Camera | None
    normals: np.ndarray | None
    name: str
    kind: str | None = None
    seed: int | None = None


def png16_scale(depth: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Metres per unit for storing ``depth`` (metres) in a 16-bit PNG: 1 mm, or coarser
    (max / 65535) when the farthest valid depth exceeds 65.535 m."""
    mask = depth > 0 if valid is None else valid & (depth > 0)
    farthest = float(depth[mask].max()) if mask.any() else 0.0
    return PNG16_SCALE if farthest <= PNG16_MAX_DEPTH else farthest / 65535.0


def sample_name(kind: str, seed: int) -> str:
    """The default name of a synthetic sample: ``KIND-SEED`` (``street-00000042``)."""
    return f"{kind}-{seed:08d}" if seed >= 0 else f"{kind}-m{-seed:08d}"


def _sample_name(sample: Any) -> str:
    name = getattr(sample, "name", None)
    if isinstance(name, str) and name:
        return name
    kind, seed = getattr(sample, "kind", None), getattr(sample, "seed", None)
    if kind is not None and seed is not None:
        return sample_name(str(kind), int(seed))
    raise ValueError("a sample needs a name, or a kind and a seed to name it by")


class RGBDWriter:
    """Appends samples to an RGB-D folder (created if needed); remembers the names it
    holds so that a name is never written twice.

    ``depth_format`` is "png16" or "npy"; ``normals`` False leaves normals out.
    """

    def __init__(
        self, folder: str | os.PathLike[str], depth_format: str = "png16", normals: bool = True
    ) -> None:
        if depth_format not in DEPTH_FORMATS:
            raise RGBDFolderError(
                f"Unknown depth format '{depth_format}': choose from {', '.join(DEPTH_FORMATS)}."
            )
        self.folder = Path(folder)
        self.depth_format = depth_format
        self.normals = normals
        manifest = self.folder / MANIFEST
        self.names: set[str] = set()
        if manifest.exists():
            self.names = {entry["name"] for entry in _read_manifest(self.folder)}
        elif self.folder.exists() and not self.folder.is_dir():
            raise RGBDFolderError(f"{self.folder} exists and is not a folder.")

    def write(self, samples: Iterable[Any], names: Sequence[str] | None = None) -> list[str]:
        """Write ``samples`` (``SynthSample``, ``RGBDItem`` or anything with ``rgb``,
        ``depth`` and optionally ``valid``, ``normals``, ``camera``, ``kind``, ``seed``)
        and append their manifest lines; returns their names (``names`` overrides the
        default ``KIND-SEED`` / ``item.name``)."""
        batch = list(samples)
        chosen = list(names) if names is not None else [_sample_name(s) for s in batch]
        if len(chosen) != len(batch):
            raise ValueError(f"{len(chosen)} names for {len(batch)} samples")
        clash = sorted((set(chosen) & self.names) | {n for n in chosen if chosen.count(n) > 1})
        if clash:
            raise RGBDFolderError(
                f"{self.folder / MANIFEST} already has (or would get twice) the sample "
                f"{clash[0]}; choose other seeds or names, or another folder."
            )
        for name in chosen:
            if not name or "/" in name or "\\" in name or name.startswith("."):
                raise RGBDFolderError(f"'{name}' cannot be a sample name (it names a file).")
        lines = [
            self._write_files(sample, name) for sample, name in zip(batch, chosen, strict=True)
        ]
        if lines:
            append_lines(self.folder / MANIFEST, lines)
            self.names.update(chosen)
        return chosen

    def _write_files(self, sample: Any, name: str) -> str:
        rgb = np.asarray(sample.rgb)
        depth = np.asarray(sample.depth, dtype=np.float32)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"{name}: rgb must be (H, W, 3) uint8, got {rgb.dtype} {rgb.shape}")
        if depth.shape != rgb.shape[:2]:
            raise ValueError(f"{name}: depth {depth.shape} does not match rgb {rgb.shape[:2]}")
        valid = getattr(sample, "valid", None)
        valid = np.isfinite(depth) & (depth > 0) if valid is None else np.asarray(valid, bool)
        depth = np.where(valid & np.isfinite(depth), depth, 0.0).astype(np.float32)
        entry: dict[str, Any] = {"name": name, "rgb": f"rgb/{name}.png"}
        write_png(self.folder / entry["rgb"], rgb)
        if self.depth_format == "png16":
            scale = png16_scale(depth, valid)
            units = np.rint(depth.astype(np.float64) / scale)
            # A valid depth never rounds to 0 (which means invalid).
            units = np.where(depth > 0, np.clip(units, 1, 65535), 0).astype(np.uint16)
            entry["depth"] = f"depth/{name}.png"
            _write_uint16_png(self.folder / entry["depth"], units)
            entry["depth_scale"] = scale
        else:
            entry["depth"] = f"depth/{name}.npy"
            _write_array(self.folder / entry["depth"], depth)
            entry["depth_scale"] = 1.0
        camera = getattr(sample, "camera", None)
        if camera is not None:
            entry.update(
                fx=camera.fx,
                fy=camera.fy,
                cx=camera.cx,
                cy=camera.cy,
                width=camera.width,
                height=camera.height,
            )
        else:
            entry.update(width=int(rgb.shape[1]), height=int(rgb.shape[0]))
        for key in ("kind", "seed"):
            value = getattr(sample, key, None)
            if value is not None:
                entry[key] = value if key == "kind" else int(value)
        normals = getattr(sample, "normals", None)
        if self.normals and normals is not None:
            entry["normals"] = f"normals/{name}.npy"
            _write_array(self.folder / entry["normals"], np.asarray(normals, dtype=np.float16))
        return json.dumps(entry, separators=(", ", ": "))


def write_rgbd_folder(
    samples: Iterable[Any],
    folder: str | os.PathLike[str],
    depth_format: str = "png16",
    *,
    normals: bool = True,
    names: Sequence[str] | None = None,
) -> list[str]:
    """Write samples into ``folder`` as an RGB-D folder (appending to an existing one);
    returns the names written. See ``RGBDWriter.write``; for many batches keep one
    ``RGBDWriter``, which reads the existing manifest only once."""
    return RGBDWriter(folder, depth_format, normals).write(samples, names)


def _write_uint16_png(path: Path, units: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(units))
    if not ok:
        raise OutputError(f"Cannot encode the depth image for {path} as PNG.")
    write_bytes(path, encoded.tobytes())


def _write_array(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda file: np.save(file, np.ascontiguousarray(array), allow_pickle=False))


def append_lines(path: Path, lines: list[str]) -> None:
    """Append whole lines to a manifest in one write, so a concurrent reader sees all or
    none (write the data files first, then their lines)."""
    if not lines:
        return
    data = ("\n".join(lines) + "\n").encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            # A manifest left without its final newline (an interrupted writer) would
            # glue our first line to its last: start on a fresh line.
            if os.fstat(fd).st_size and _last_byte(path) != b"\n":
                data = b"\n" + data
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as err:
        raise OutputError(f"Cannot write {path}: {err.strerror or err}.") from err


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as file:
        file.seek(-1, os.SEEK_END)
        return file.read(1)


# ------------------------------------------------------------------------------ reading


def _read_manifest(folder: Path) -> list[dict[str, Any]]:
    """Parse and check ``folder/manifest.jsonl``; RGBDFolderError on any problem."""
    manifest = folder / MANIFEST
    if not folder.exists():
        raise RGBDFolderError(f"No RGB-D folder at {folder}: expected a folder with {MANIFEST}.")
    if not folder.is_dir():
        raise RGBDFolderError(f"{folder} is not a folder; an RGB-D folder holds {MANIFEST}.")
    if not manifest.is_file():
        raise RGBDFolderError(
            f"{folder} has no {MANIFEST}: an RGB-D folder lists its samples there, one JSON "
            "object per line (name, rgb, depth, depth_scale, fx, fy, cx, cy)."
        )
    try:
        text = manifest.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise RGBDFolderError(f"{manifest} cannot be read ({err}).") from err
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{manifest} line {number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as err:
            raise RGBDFolderError(f"{where} is not valid JSON ({err.msg}).") from err
        if not isinstance(entry, dict):
            raise RGBDFolderError(f"{where} must be a JSON object, not {type(entry).__name__}.")
        _check_entry(entry, where)
        if entry["name"] in seen:
            raise RGBDFolderError(f"{where} repeats the sample name '{entry['name']}'.")
        seen.add(entry["name"])
        entries.append(entry)
    return entries


def _check_entry(entry: dict[str, Any], where: str) -> None:
    missing = [k for k in ("name", "rgb", "depth") if k not in entry]
    if missing:
        raise RGBDFolderError(
            f"{where} lacks {', '.join(missing)}: each sample needs name, rgb and depth "
            "(paths relative to the folder)."
        )
    for key in ("name", "rgb", "depth"):
        if not isinstance(entry[key], str) or not entry[key]:
            raise RGBDFolderError(f"{where}: '{key}' must be a non-empty string.")
    suffix = Path(entry["depth"]).suffix.lower()
    if suffix not in (".png", ".npy", ".pfm"):
        raise RGBDFolderError(
            f"{where}: depth file {entry['depth']} must be .png (16-bit), .npy or .pfm."
        )
    if suffix == ".png" and "depth_scale" not in entry:
        raise RGBDFolderError(
            f"{where}: a PNG depth needs 'depth_scale' (metres per stored unit, e.g. 0.001)."
        )
    scale = entry.get("depth_scale", 1.0)
    if not isinstance(scale, int | float) or isinstance(scale, bool) or not scale > 0:
        raise RGBDFolderError(f"{where}: 'depth_scale' must be a positive number, got {scale!r}.")
    present = [k for k in _INTRINSICS if k in entry]
    if present and len(present) != len(_INTRINSICS):
        absent = [k for k in _INTRINSICS if k not in entry]
        raise RGBDFolderError(
            f"{where} has {', '.join(present)} but not {', '.join(absent)}: give all four "
            "intrinsics (pixels) or none."
        )
    for key in present:
        value = entry[key]
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise RGBDFolderError(f"{where}: '{key}' must be a number, got {value!r}.")
    if present and not (entry["fx"] > 0 and entry["fy"] > 0):
        raise RGBDFolderError(f"{where}: focal lengths fx, fy must be positive.")


class RGBDFolder(Sequence[RGBDItem]):
    """The samples of an RGB-D folder, read lazily: ``folder[i]`` loads one ``RGBDItem``.

    The manifest is read and checked when the folder is opened (RGBDFolderError names
    the file and line of any problem); image files are read on access (a missing or
    unreadable file raises RGBDFolderError naming it).
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.entries = _read_manifest(self.folder)

    @property
    def names(self) -> list[str]:
        """Sample names in manifest order."""
        return [entry["name"] for entry in self.entries]

    def __len__(self) -> int:
        return len(self.entries)

    @overload
    def __getitem__(self, index: int) -> RGBDItem: ...

    @overload
    def __getitem__(self, index: slice) -> list[RGBDItem]: ...

    def __getitem__(self, index: int | slice) -> RGBDItem | list[RGBDItem]:
        if isinstance(index, slice):
            return [self._load(i) for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample {index} of an RGB-D folder with {len(self)} samples")
        return self._load(index % len(self))

    def __iter__(self) -> Iterator[RGBDItem]:
        for i in range(len(self)):
            yield self._load(i)

    def _path(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else self.folder / path

    def _load(self, i: int) -> RGBDItem:
        entry = self.entries[i]
        name = entry["name"]
        rgb_path = self._path(entry["rgb"])
        depth_path = self._path(entry["depth"])
        try:
            rgb = load_image(rgb_path).rgb
            suffix = depth_path.suffix.lower()
            if suffix == ".png":
                raw = read_png16(depth_path).astype(np.float64)
            elif suffix == ".npy":
                raw = read_npy(depth_path).astype(np.float64)
            else:
                raw = read_pfm(depth_path).astype(np.float64)
        except ImageError as err:
            raise RGBDFolderError(f"Sample {name} of {self.folder}: {err}") from err
        if raw.ndim != 2 or raw.shape != rgb.shape[:2]:
            raise RGBDFolderError(
                f"Sample {name} of {self.folder}: depth {depth_path.name} is {raw.shape}, "
                f"expected (H, W) = {rgb.shape[:2]} like its image."
            )
        depth = raw * float(entry.get("depth_scale", 1.0))
        valid = np.isfinite(depth) & (depth > 0)
        depth = np.where(valid, depth, 0.0).astype(np.float32)
        camera = None
        if "fx" in entry:
            height, width = rgb.shape[:2]
            camera = Camera(
                float(entry["fx"]),
                float(entry["fy"]),
                float(entry["cx"]),
                float(entry["cy"]),
                width,
                height,
            )
        normals = None
        if entry.get("normals"):
            normals_path = self._path(entry["normals"])
            try:
                normals = read_npy(normals_path)
            except ImageError as err:
                raise RGBDFolderError(f"Sample {name} of {self.folder}: {err}") from err
            if normals.shape != (*rgb.shape[:2], 3):
                raise RGBDFolderError(
                    f"Sample {name} of {self.folder}: normals {normals_path.name} are "
                    f"{normals.shape}, expected {(*rgb.shape[:2], 3)}."
                )
        seed = entry.get("seed")
        return RGBDItem(
            rgb=rgb,
            depth=depth,
            valid=valid,
            camera=camera,
            normals=normals,
            name=name,
            kind=entry.get("kind"),
            seed=int(seed) if isinstance(seed, int) else None,
        )
