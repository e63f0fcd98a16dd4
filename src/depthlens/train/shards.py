"""Pseudo-labels as tar shards (the WebDataset layout), and the training source that reads them.

``PseudoLabelShards`` is the ``pipeline.Sink`` that writes a teacher's labels for
millions of photos as a few large files instead of millions of small ones::

    DIR/shards.jsonl        the index: one JSON line per sample of a finished shard
    DIR/shard-000000.tar    the first ``shard_size`` photos
    DIR/shard-000001.tar    the next ``shard_size``, ...

Members sharing a basename are one sample (the WebDataset convention); sample ``NAME``
is three members, in this order:

    NAME.png        the photo as the teacher saw it (upright, RGB)
    NAME.depth.npy  the float32 target, exactly as an RGB-D pseudo-label folder stores
                    it (``pseudo_label.encode_disparity``: in [1, 2], 0 = invalid)
    NAME.json       the metadata of the folder's manifest line: name, width, height,
                    fx, fy, cx, cy (when the photo has a camera), target, teacher,
                    disparity_min, disparity_max, source

An index line::

    {"name": "a--photo", "shard": "shard-000003.tar", "source": "/photos/a/photo.jpg",
     "members": {"png": [1536, 20431], "depth.npy": [22528, 49280], "json": [72704, 240]}}

``members`` gives each member's data as ``[offset, size]`` in bytes within the tar, so
``ShardSource`` reads one sample with three seeks and no scan.

Each tar is written whole and atomically (a temporary file, then a rename), and its
index lines are appended after it, so only shards the index lists count: a tar a
killed run left unlisted is ignored by readers and overwritten by the next run, which
skips the names already in the index and numbers its shards after the largest listed
one. The bytes are a function of the inputs alone (POSIX pax format, mtime 0, owner 0
with empty names, mode 0o644, members in input order): two runs on the same photos
with the same teacher write identical tars.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import numpy as np

from depthlens.errors import ImageError, OutputError, UsageError
from depthlens.geometry.camera import Camera
from depthlens.io.depth_files import atomic_write, encode_npy, encode_png
from depthlens.io.images import Image, load_image
from depthlens.io.rgbd import MANIFEST, append_lines
from depthlens.models.estimator import DepthResult
from depthlens.train.pseudo_label import (
    encode_disparity,
    label_metadata,
    sample_names,
    teacher_disparity,
)

if TYPE_CHECKING:
    from depthlens.pipeline import InputResult, Source
    from depthlens.train.data import RawSample, TargetKind

__all__ = [
    "DEFAULT_SHARD_SIZE",
    "INDEX",
    "MEMBER_SUFFIXES",
    "PseudoLabelShards",
    "SampleKey",
    "ShardSource",
    "label_metadata",
    "read_index",
    "sample_members",
    "shard_file_name",
    "teacher_disparity",
    "write_shard",
]

INDEX = "shards.jsonl"
DEFAULT_SHARD_SIZE = 1000
MEMBER_SUFFIXES = ("png", "depth.npy", "json")
_SHARD_FILE = re.compile(r"shard-(\d{6,})\.tar")

Members = tuple[tuple[str, bytes], ...]  # (suffix, data) of one sample, in MEMBER_SUFFIXES order


# ------------------------------------------------------------------------------ a sample


def sample_members(name: str, source: str, image: Image, result: DepthResult) -> Members:
    """The three encoded members of one sample (see the module), as ``(suffix, data)``."""
    stored, lo, hi = encode_disparity(teacher_disparity(result))
    metadata = label_metadata(name, source, image, result.model, lo, hi)
    return (
        ("png", encode_png(image.rgb)),
        ("depth.npy", encode_npy(stored)),
        ("json", json.dumps(metadata).encode("utf-8")),
    )


# ------------------------------------------------------------------------------ a shard


def shard_file_name(number: int) -> str:
    """The file name of shard ``number``: ``shard-000042.tar``."""
    return f"shard-{number:06d}.tar"


def _member_info(name: str, size: int) -> tarfile.TarInfo:
    """The header of a regular file member whose bytes depend on its name and size only."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write_shard(path: Path, samples: Sequence[tuple[str, Members]]) -> list[dict[str, list[int]]]:
    """Write ``(name, members)`` samples as one tar at ``path``, atomically; returns, per
    sample, ``{suffix: [offset, size]}`` of its members' data in the tar (bytes)."""
    spans: list[dict[str, list[int]]] = []

    def write(file: BinaryIO) -> None:
        spans.clear()
        with tarfile.open(fileobj=file, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, members in samples:
                where: dict[str, list[int]] = {}
                for suffix, data in members:
                    tar.addfile(_member_info(f"{name}.{suffix}", len(data)), io.BytesIO(data))
                    # The data ends padded to a 512-byte block, where the file now stands.
                    padded = -(-len(data) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
                    where[suffix] = [file.tell() - padded, len(data)]
                spans.append(where)

    atomic_write(path, write)
    return spans


# ------------------------------------------------------------------------------ the index


def read_index(folder: Path) -> list[dict[str, Any]]:
    """The lines of ``folder/shards.jsonl`` (none when it is absent); UsageError for a
    line that is not a JSON object with a name, a shard file name and member spans."""
    index = folder / INDEX
    if not index.is_file():
        return []
    try:
        text = index.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"The shard index {index} cannot be read ({err}).") from None
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise UsageError(f"{index} line {number} is not valid JSON.") from None
        if not _is_index_entry(entry):
            raise UsageError(
                f"{index} line {number} is not a shard index line (name, shard, members)."
            )
        entries.append(entry)
    return entries


def _is_index_entry(entry: object) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        return False
    if not isinstance(entry.get("shard"), str) or not _SHARD_FILE.fullmatch(entry["shard"]):
        return False
    members = entry.get("members")
    return isinstance(members, dict) and all(
        isinstance(members.get(suffix), list)
        and len(members[suffix]) == 2
        and all(isinstance(n, int) and n >= 0 for n in members[suffix])
        for suffix in MEMBER_SUFFIXES
    )


def _shard_number(file_name: str) -> int:
    match = _SHARD_FILE.fullmatch(file_name)
    if match is None:
        raise ValueError(f"{file_name} is not a shard file name")
    return int(match.group(1))


def _unique_name(name: str, taken: set[str]) -> str:
    """``name``, or the first of ``name-2``, ``name-3``, ... not in ``taken``."""
    if name not in taken:
        return name
    count = 2
    while f"{name}-{count}" in taken:
        count += 1
    return f"{name}-{count}"


# ------------------------------------------------------------------------------ the sink


@dataclass(frozen=True)
class SampleKey:
    """Where ``plan`` puts one photo: its sample ``name`` and the ``shard`` number."""

    name: str
    shard: int


@dataclass(frozen=True)
class _Buffered:
    """One written sample waiting for its shard's ``flush``."""

    input: str
    name: str
    shard: int
    members: Members


@dataclass
class PseudoLabelShards:
    """The ``pipeline.Sink`` of pseudo-labelling into tar shards (see the module).

    ``plan`` runs on the driver and keeps, across its calls, the names seen and the
    shards numbered; ``write`` and ``flush`` run on a worker, which holds a unit of
    ``shard_size`` samples in memory until ``flush`` writes them as one tar; ``commit``
    runs on the driver and appends their index lines.
    """

    path: Path
    shard_size: int = DEFAULT_SHARD_SIZE
    takes_videos: bool = False  # a video named here is refused as an image
    unit: int = field(init=False)  # inputs per flush: one shard
    _names: set[str] | None = field(default=None, repr=False)  # planned or skipped so far
    _done: set[str] = field(default_factory=set, repr=False)  # names in the index
    _first_shard: int = field(default=0, repr=False)
    _planned: int = field(default=0, repr=False)  # photos given a shard so far
    _buffer: list[_Buffered] = field(default_factory=list, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        """A worker's copy (a batch engine pickles the sink): without the driver's names."""
        return {**self.__dict__, "_names": None, "_done": set()}

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if self.shard_size < 1:
            raise UsageError(f"A shard holds at least one photo, so not {self.shard_size}.")
        self.unit = self.shard_size

    def plan(
        self, found: list[tuple[Source, PurePath]], root: Path
    ) -> tuple[list[tuple[Source, Any]], list[Source]]:
        """Each photo of this chunk with its ``SampleKey``; those whose names the index
        already lists are skipped. The ``i``-th photo to do (over all calls) goes to
        shard ``first + i // shard_size``, ``first`` following the index's last shard."""
        if self._names is None:
            self._done, self._first_shard = _resume_state(self.path)
            self._names = set()
        todo: list[tuple[Source, Any]] = []
        skipped: list[Source] = []
        names = sample_names([relative for _, relative in found])
        for (source, _), chunk_name in zip(found, names, strict=True):
            name = _unique_name(chunk_name, self._names)
            self._names.add(name)
            if name in self._done:
                skipped.append(source)
                continue
            shard = self._first_shard + self._planned // self.shard_size
            todo.append((source, SampleKey(name, shard)))
            self._planned += 1
        return todo, skipped

    def write(self, source: Source, key: Any, image: Image, result: DepthResult) -> InputResult:
        """Encode one sample's members and hold them for ``flush``."""
        from depthlens.pipeline import InputResult

        try:
            members = sample_members(key.name, str(source), image, result)
        except Exception as exc:  # this photo's failure only
            return InputResult.failed(str(source), exc)
        self._buffer.append(_Buffered(str(source), key.name, key.shard, members))
        return InputResult(str(source))

    def flush(self, results: list[InputResult]) -> list[InputResult]:
        """Write the unit's samples as its tar; the results of those samples, in order,
        name the tar and carry their index line (or fail all, if the tar cannot be
        written). Expects a whole unit: a shard flushed twice keeps the second part only."""
        from depthlens.pipeline import InputResult

        buffered, self._buffer = self._buffer, []
        outcomes = iter(zip(buffered, _write_shards(self.path, buffered), strict=True))
        pending = next(outcomes, None)
        final = []
        for result in results:
            if pending is None or not result.ok or result.input != pending[0].input:
                final.append(result)  # a failure before write, or not this sink's
                continue
            outcome = pending[1]
            if isinstance(outcome, Exception):
                final.append(InputResult.failed(result.input, outcome))
            else:
                final.append(replace(result, written=(outcome[0],), record=outcome[1]))
            pending = next(outcomes, None)
        return final

    def commit(self, results: list[InputResult]) -> None:
        """Append the index lines of a flushed unit (one atomic append)."""
        append_lines(self.path / INDEX, [r.record for r in results if r.record])


def _resume_state(folder: Path) -> tuple[set[str], int]:
    """The names a shard folder's index lists and the number of its next shard; refuses
    a path that is a file or a folder holding an RGB-D manifest."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} is a file; shards need a folder of their own.")
    if (folder / MANIFEST).exists():
        raise UsageError(
            f"{folder} holds an RGB-D folder ({MANIFEST}); write shards to a folder of their own."
        )
    entries = read_index(folder)
    names = {entry["name"] for entry in entries}
    last = max((_shard_number(entry["shard"]) for entry in entries), default=-1)
    return names, last + 1


def _write_shards(folder: Path, buffered: list[_Buffered]) -> list[tuple[Path, str] | Exception]:
    """Write the tar of each shard among ``buffered`` (normally one); returns, per
    sample, its tar and index line, or why its tar could not be written."""
    shards: dict[int, list[int]] = {}
    for position, sample in enumerate(buffered):
        shards.setdefault(sample.shard, []).append(position)
    outcomes: dict[int, tuple[Path, str] | Exception] = {}
    for shard, positions in shards.items():
        path = folder / shard_file_name(shard)
        samples = [(buffered[p].name, buffered[p].members) for p in positions]
        try:
            spans = write_shard(path, samples)
        except Exception as exc:  # the whole shard fails, not the run
            for p in positions:
                outcomes[p] = exc
            continue
        for p, where in zip(positions, spans, strict=True):
            sample = buffered[p]
            line = {"name": sample.name, "shard": path.name, "source": sample.input}
            outcomes[p] = (path, json.dumps({**line, "members": where}))
    return [outcomes[p] for p in range(len(buffered))]


# ------------------------------------------------------------------------------ reading


class ShardSource:
    """A training source reading the samples a shard folder's index lists; ``load``
    draws one uniformly (with replacement).

    Its samples are exactly what ``FolderSource`` gives for the same photos labelled
    into an RGB-D folder: the stored target, valid where it is finite and positive, and
    the photo's camera (else a ``DEFAULT_FOV_DEG`` one). Open shard files are cached
    per process and left out when pickled (DataLoader workers).
    """

    target_kind: TargetKind = "relative_inverse"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not (self.path / INDEX).is_file():
            raise UsageError(
                f"{self.path} has no {INDEX}: shards of pseudo-labels list their samples there."
            )
        self.entries = read_index(self.path)
        if not self.entries:
            raise UsageError(f"The shard folder {self.path} holds no samples.")
        missing = sorted(
            {e["shard"] for e in self.entries if not (self.path / e["shard"]).is_file()}
        )
        if missing:
            raise UsageError(f"{self.path / INDEX} lists {missing[0]}, which is not there.")
        self._files: dict[str, IO[bytes]] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.entries)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_files"] = {}
        return state

    def close(self) -> None:
        """Close the shard files this process opened."""
        for file in self._files.values():
            file.close()
        self._files = {}

    def item(self, index: int) -> RawSample:
        """Sample ``index`` of the index, decoded."""
        from depthlens.train.data import RawSample, camera_intrinsics

        entry = self.entries[index]
        png, npy, meta = (self._member(entry, suffix) for suffix in MEMBER_SUFFIXES)
        where = f"Sample {entry['name']} of {self.path / entry['shard']}"
        rgb = load_image(png, name=f"{where}: {entry['name']}.png").rgb
        raw = _decode_target(npy, where)
        if raw.shape != rgb.shape[:2]:
            raise ImageError(f"{where}: its target is {raw.shape}, its photo {rgb.shape[:2]}.")
        valid = np.isfinite(raw) & (raw > 0)
        target = np.where(valid, raw, 0.0).astype(np.float32)
        try:
            metadata = json.loads(meta)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ImageError(f"{where}: its {entry['name']}.json is not valid JSON.") from None
        camera = None
        if "fx" in metadata:
            height, width = rgb.shape[:2]
            fx, fy, cx, cy = (float(metadata[k]) for k in ("fx", "fy", "cx", "cy"))
            camera = Camera(fx, fy, cx, cy, width, height)
        intrinsics = camera_intrinsics(camera, *target.shape)
        return RawSample(rgb, target, valid, intrinsics, self.target_kind)

    def load(self, rng: np.random.Generator) -> RawSample:
        return self.item(int(rng.integers(0, len(self.entries))))

    def _member(self, entry: dict[str, Any], suffix: str) -> bytes:
        """The bytes of one member of a listed sample."""
        if self._pid != os.getpid():  # a forked worker: its parent's file offsets are shared
            self._files, self._pid = {}, os.getpid()
        shard = entry["shard"]
        offset, size = entry["members"][suffix]
        path = self.path / shard
        try:
            file = self._files.get(shard)
            if file is None:
                file = self._files[shard] = open(path, "rb")  # noqa: SIM115 (a cache, kept open)
            file.seek(offset)
            data = file.read(size)
        except OSError as err:
            raise ImageError(f"{path} cannot be read: {err.strerror or err}.") from err
        if len(data) != size:
            raise ImageError(f"{path} ends before {entry['name']}.{suffix}; it is truncated.")
        return data


def _decode_target(data: bytes, where: str) -> np.ndarray:
    """An (H, W) ``.npy`` member as float64 (no pickles are loaded)."""
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ImageError(f"{where}: its target is not a readable .npy array ({err}).") from err
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
        raise ImageError(f"{where}: its target is {array.dtype} {array.shape}, not (H, W) floats.")
    # As RGBDFolder reads a depth file: float32, then float64 for the arithmetic.
    return array.astype(np.float32, copy=False).astype(np.float64)
