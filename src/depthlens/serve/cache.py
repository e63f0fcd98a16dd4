"""The depth of the last few uploads, so asking again about the same photo is cheap.

The page sends the same photo again for every effect tab, refocus click and slider
move; the network's answer for it does not change. ``DepthCache`` keeps the decoded
image and its DepthResult per (model and camera, SHA-256 of the uploaded bytes), least recently
used first out, within a budget of pixels (an entry costs 7 bytes a pixel: RGB and
float32 depth). It is shared by the pool's threads, so every access holds a lock.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from depthlens.io.images import Image
from depthlens.models.estimator import DepthResult

CacheKey = tuple[str, bytes]


class DepthCache:
    """Decoded photos and their depth, by model and upload bytes, up to ``max_pixels``
    pixels in all (0 turns the cache off; a larger photo is never kept)."""

    def __init__(self, max_pixels: int) -> None:
        self.max_pixels = max_pixels
        self._entries: OrderedDict[CacheKey, tuple[Image, DepthResult]] = OrderedDict()
        self._pixels = 0
        self._lock = threading.Lock()

    @staticmethod
    def key(model: str, data: bytes, camera: str = "") -> CacheKey:
        """The entry of ``data`` predicted by ``model`` for the camera the request asks
        for (``camera``: how it was given; a metric model's meters depend on it)."""
        return f"{model}|{camera}", hashlib.sha256(data).digest()

    def get(self, key: CacheKey) -> tuple[Image, DepthResult] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: CacheKey, image: Image, result: DepthResult) -> None:
        size = image.width * image.height
        if size > self.max_pixels:
            return
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
