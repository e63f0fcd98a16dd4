"""The compiled-model cache: exported and converted networks under
``$DEPTHLENS_HOME/compiled/<model>-<weights key>-<backend>-<precision>/`` (an
``int8-static`` entry's name ends with its calibration's key), so a second process skips
the export (seconds to minutes for a ViT) and the calibration.

Entries are keyed by the weights' sha256 (a folder's ``model.safetensors``), or for
weights with no file by a sha256 of the network's tensors, so other weights never reuse
an entry. The networks take any input size (dynamic height and width), so one entry
serves every size. The cache is bounded: after an entry is written, the least recently
used entries are removed until the whole is at most ``$DEPTHLENS_CACHE_GB`` (default 8)
gigabytes. ``depthlens cache clear`` empties it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from depthlens.models.spec import ModelSpec
from depthlens.models.weights import depthlens_home, weights_sha256

__all__ = ["CacheEntry", "clear", "entries", "entry_dir", "prune", "weights_key"]

DEFAULT_LIMIT_GB = 8.0


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    size: int  # bytes
    used: float  # last use, seconds since the epoch


def cache_root() -> Path:
    return depthlens_home() / "compiled"


def limit_bytes() -> int:
    raw = os.environ.get("DEPTHLENS_CACHE_GB", "").strip()
    try:
        gigabytes = float(raw) if raw else DEFAULT_LIMIT_GB
    except ValueError:
        gigabytes = DEFAULT_LIMIT_GB
    return int(max(gigabytes, 0.0) * 1e9)


def weights_key(network: nn.Module, weights: str) -> str:
    """16 hex digits naming the weights: of their file's sha256 where there is one,
    else of the network's tensors (a network built in memory)."""
    sha = weights_sha256(weights) if weights else None
    if sha is None:
        digest = hashlib.sha256()
        for name, tensor in sorted(network.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        sha = digest.hexdigest()
    return sha[:16]


def entry_dir(
    spec: ModelSpec, key: str, backend: str, precision: str, calibration: str = ""
) -> Path:
    """The folder of one compiled model (created; marked as just used); ``calibration``
    names the calibration of an int8-static model (``export.calibration_key``)."""
    tail = f"-{calibration}" if calibration else ""
    folder = cache_root() / f"{spec.name}-{key}-{backend}-{precision}{tail}"
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    os.utime(folder, (now, now))
    return folder


def entries() -> list[CacheEntry]:
    """The cache's entries, most recently used first."""
    root = cache_root()
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        if folder.is_dir():
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            found.append(CacheEntry(folder, size, folder.stat().st_mtime))
    return sorted(found, key=lambda entry: entry.used, reverse=True)


def prune(keep: Path | None = None) -> list[Path]:
    """Remove least recently used entries (never ``keep``) until the cache fits its
    limit; returns the removed folders."""
    budget = limit_bytes()
    removed = []
    total = 0
    for entry in entries():
        total += entry.size
        if total > budget and entry.path != keep:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
            total -= entry.size
    return removed


def clear() -> tuple[int, int]:
    """Empty the cache; returns (entries, bytes) removed."""
    found = entries()
    for entry in found:
        shutil.rmtree(entry.path, ignore_errors=True)
    return len(found), sum(entry.size for entry in found)
