"""How the web service runs, and what one request may cost.

``ServeSettings`` holds the served models and every limit: upload size, decoded pixels,
the size effects are rendered at, the largest clip and JSON answer, how long a request
body may take. Each limit bounds one route's time and memory; BENCHMARKS.md ("Hostile
requests") measures the worst request each one allows. ``uvicorn_options`` gives the
server's own connection timeouts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from depthlens.errors import UsageError

__all__ = ["ServeSettings", "uvicorn_options"]


@dataclass(frozen=True)
class ServeSettings:
    """How the web service runs.

    ``models`` are zoo names; the first is the default. None (the default) serves the
    default model of ``depthlens.load_model``, settled when the app loads its models
    (``resolved``). ``weights`` maps some of them
    to a checkpoint path (otherwise the weights are looked up as ``load_model`` does);
    ``backend`` and ``precision`` say how their networks run (``load_model``'s).
    ``workers`` inference threads run at once and ``queue_size`` more requests may wait
    for one (default 4 × workers); beyond that requests get 503. ``cache_megapixels``
    bounds the photos whose depth is kept for repeated requests (``serve.cache``; 0: none).

    Limits (1 MB = 10⁶ bytes, 1 MP = 10⁶ pixels):

    - ``max_upload_mb``: the uploaded file (413 above).
    - ``max_megapixels``: the decoded photo (413 above, read from the file's header
      before decoding). ``POST /v1/depth`` answers at this size.
    - ``effect_megapixels``: bokeh, stereo and obstacle render a larger photo shrunk to
      this many pixels (the blur radius shrinks with it); their answer is that size.
    - ``clip_max_side``, ``clip_max_frames``: parallax clips are rendered at most this
      many pixels wide or tall, with at most this many frames (422 above);
      ``clip_megapixels`` bounds the pixels of all frames together: a clip of many
      frames is rendered smaller (the default fits 30 frames of 640×480).
    - ``json_megapixels``: ``format=json`` with ``include_depth`` or ``include_color``
      carries the whole map in base64, about 5.4 bytes a pixel; above this the answer is
      413, suggesting ``format=npy`` or ``png16``.
    - ``body_timeout_s``: the whole request body must arrive within this many seconds,
      and ``body_idle_timeout_s`` may pass between two of its pieces; else 408.
    - ``keep_alive_s``: an idle keep-alive connection is closed after this long.
    """

    models: tuple[str, ...] | None = None
    weights: Mapping[str, str | Path] = field(default_factory=dict)
    device: str = "auto"
    backend: str = "torch"
    precision: str = "fp32"
    max_upload_mb: float = 20.0
    max_megapixels: float = 40.0
    workers: int = 1
    queue_size: int | None = None
    cache_megapixels: float = 24.0
    effect_megapixels: float = 2.0
    clip_max_side: int = 640
    clip_max_frames: int = 120
    clip_megapixels: float = 10.0
    json_megapixels: float = 16.0
    body_timeout_s: float = 120.0
    body_idle_timeout_s: float = 15.0
    keep_alive_s: float = 5.0

    def __post_init__(self) -> None:
        if self.models is not None:
            object.__setattr__(self, "models", tuple(dict.fromkeys(self.models)))
            if not self.models:
                raise UsageError("Serve at least one model.")
        unserved = sorted(set(self.weights) - set(self.models or ()))
        if unserved:
            raise UsageError(
                f"Weights were given for {', '.join(unserved)}, which is not among the served "
                "models; serve it too (--model)."
            )
        if self.workers < 1:
            raise UsageError(f"Use at least 1 worker, not {self.workers}.")
        if self.queue_size is not None and self.queue_size < 0:
            raise UsageError(f"The queue size cannot be negative ({self.queue_size}).")
        if not (math.isfinite(self.cache_megapixels) and self.cache_megapixels >= 0):
            raise UsageError(f"The cache size cannot be negative ({self.cache_megapixels}).")
        positive = {
            "max_upload_mb": self.max_upload_mb,
            "max_megapixels": self.max_megapixels,
            "effect_megapixels": self.effect_megapixels,
            "clip_max_side": self.clip_max_side,
            "clip_max_frames": self.clip_max_frames,
            "clip_megapixels": self.clip_megapixels,
            "json_megapixels": self.json_megapixels,
            "body_timeout_s": self.body_timeout_s,
            "body_idle_timeout_s": self.body_idle_timeout_s,
            "keep_alive_s": self.keep_alive_s,
        }
        wrong = [name for name, value in positive.items() if not (0 < value < math.inf)]
        if wrong:
            raise UsageError(f"These limits must be positive numbers: {', '.join(wrong)}.")

    def resolved(self) -> ServeSettings:
        """These settings with ``models`` named: the default model where it was None
        (Depth Anything V2 small where its weights can be had, else the bundled model)."""
        if self.models is not None:
            return self
        from depthlens.models.weights import find_default_weights

        spec, _ = find_default_weights()
        return replace(self, models=(spec.name,))

    @property
    def served(self) -> tuple[str, ...]:
        """The served models' names (once ``resolved``)."""
        if self.models is None:
            raise RuntimeError("ServeSettings.resolved() names the default model first")
        return self.models

    @property
    def default_model(self) -> str:
        return self.served[0]

    @property
    def waiting_limit(self) -> int:
        """Requests that may wait for a worker: ``queue_size``, or 4 × workers."""
        return 4 * self.workers if self.queue_size is None else self.queue_size

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1e6)

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1e6)

    @property
    def effect_pixels(self) -> int:
        return max(1, int(self.effect_megapixels * 1e6))

    @property
    def clip_pixels(self) -> int:
        return max(1, int(self.clip_megapixels * 1e6))

    @property
    def json_pixels(self) -> int:
        return int(self.json_megapixels * 1e6)


def uvicorn_options(settings: ServeSettings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` that bound what an idle connection holds.

    uvicorn closes a keep-alive connection idle for ``timeout_keep_alive`` seconds and
    gives running requests ``timeout_graceful_shutdown`` seconds when stopped. A request
    body that stalls is cut off by the app itself (``serve.middleware``): uvicorn has no
    body timeout, nor one for request headers (h11 caps them at 16 KiB), so a client
    that never finishes its headers is only stopped by a proxy in front.
    """
    return {"timeout_keep_alive": settings.keep_alive_s, "timeout_graceful_shutdown": 30}
