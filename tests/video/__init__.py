"""Helpers shared by the video tests: small synthetic clips and a fake depth model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from depthlens.io.video import write_video


def moving_square(count: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """``count`` (H, W, 3) uint8 frames: a grey gradient with an orange square moving right."""
    ramp = np.linspace(30, 200, width, dtype=np.float32)[None, :, None]
    background = np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8)
    frames = []
    for k in range(count):
        frame = background.copy()
        x = 2 + 2 * k
        frame[height // 4 : height // 4 + 14, x : x + 14] = (230, 120, 20)
        frames.append(frame)
    return frames


def noise_frames(count: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """``count`` frames of seeded noise: every frame takes about as many bytes to
    encode as the next, so cutting a file at a fraction of its size cuts the same
    fraction of its frames (a still scene puts most of its bytes in the first)."""
    rng = np.random.default_rng(13)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def cut_video(path: Path, count: int, fraction: float, fps: float = 30) -> Path:
    """Write ``count`` noise frames to ``path`` at ``fps`` and keep the first
    ``fraction`` of its bytes, as a download cut short would."""
    write_video(path, noise_frames(count), fps=fps)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


class FakeEstimator:
    """A stand-in for ``Estimator``: depth from the frame's brightness, jittered per call.

    Relative: ``(0.2 + grey) · s_k + t_k``; metric: ``(1 + 4 · grey) · s_k`` meters, with
    ``grey`` in [0, 1] and ``s_k``, ``t_k`` varying with the frame number ``k``. Every
    image and depth it sees and returns is kept (``seen``, ``predicted``) for the checks;
    ``fail_at`` raises on that frame number.
    """

    name = "fake-model"

    def __init__(self, kind: str = "relative_inverse", fail_at: int | None = None) -> None:
        self.kind = kind
        self.fail_at = fail_at
        self.seen: list[np.ndarray] = []
        self.predicted: list[np.ndarray] = []
        self.batches: list[int] = []

    def predict_images(self, images: Sequence, batch_size: int = 4) -> list[SimpleNamespace]:
        self.batches.append(len(images))
        results = []
        for image in images:
            k = len(self.seen)
            if k == self.fail_at:
                raise RuntimeError(f"model failed on frame {k}")
            grey = image.rgb.astype(np.float32).mean(axis=2) / 255.0
            scale = 1.0 + 0.2 * np.sin(1.3 * k)
            if self.kind == "metric":
                depth = (1.0 + 4.0 * grey) * scale
            else:
                depth = (0.2 + grey) * scale + 0.1 * np.cos(0.7 * k)
            self.seen.append(image.rgb.copy())
            self.predicted.append(depth.astype(np.float32))
            results.append(SimpleNamespace(depth=depth.astype(np.float32), kind=self.kind))
        return results
