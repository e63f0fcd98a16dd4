"""The depth of the last few uploads, so asking again about the same photo is cheap.

The page sends the same photo again for every effect tab, refocus click and slider
move; the network's answer for it does not change. ``DepthCache`` keeps the decoded
image and its DepthResult per (model, camera and prompt depth, SHA-256 of the uploaded
bytes), least recently used first out, within a budget of pixels (an entry costs 7
bytes a pixel: RGB and float32 depth). It is shared by the pool's threads, so every
access holds a lock.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections import OrderedDict
from typing import Any, TypeVar

import numpy as np

from depthlens.io.images import Image
from depthlens.models.estimator import DepthResult

CacheKey = tuple[str, bytes]
_Entry = TypeVar("_Entry", Image, DepthResult)


class DepthCache:
    """Decoded photos and their depth, by model and upload bytes, up to ``max_pixels``
    pixels in all (0 turns the cache off; a larger photo is never kept)."""

    def __init__(self, max_pixels: int) -> None:
        self.max_pixels = max_pixels
        self._entries: OrderedDict[CacheKey, tuple[Image, DepthResult]] = OrderedDict()
        self._pixels = 0
        self._lock = threading.Lock()

    @staticmethod
    def key(
        model: str, data: bytes, camera: str = "", prompt: bytes | None = None, scale: str = ""
    ) -> CacheKey:
        """The entry of ``data`` predicted by ``model`` for the camera the request asks
        for (``camera``: how it was given; a metric model's meters depend on it) and the
        prompt depth it came with (``prompt``: its bytes, ``scale``: its --prompt-scale as
        given; a prompt-depth model's answer depends on both)."""
        prompted = "" if prompt is None else f"|prompt={hashlib.sha256(prompt).hexdigest()}*{scale}"
        return f"{model}|{camera}{prompted}", hashlib.sha256(data).digest()

    def get(self, key: CacheKey) -> tuple[Image, DepthResult] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: CacheKey, image: Image, result: DepthResult) -> None:
        """Keep copies of ``image`` and ``result``'s arrays under ``key``.

        Copies, because the arrays a prediction hands over were allocated among the
        forward pass's temporaries: keeping those pinned the freed memory around them
        in the C heap, and the server grew by about 6 MB per 256×192 photo kept instead
        of the 0.34 MB its arrays hold (BENCHMARKS.md, the web service).
        """
        size = image.width * image.height
        if size > self.max_pixels:
            return
        image, result = _own_copy(image), _own_copy(result)
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (image, result)
            self._pixels += size
            while self._pixels > self.max_pixels:
                _, (old, _) = self._entries.popitem(last=False)
                self._pixels -= old.width * old.height

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def _own_copy(item: _Entry) -> _Entry:
    """``item`` with each of its arrays copied (everything else shared)."""
    arrays: dict[str, Any] = {
        field.name: value.copy()
        for field in dataclasses.fields(item)
        if isinstance(value := getattr(item, field.name), np.ndarray)
    }
    return dataclasses.replace(item, **arrays)
