"""A small procedural street-like scene for ``depthlens demo``: no files needed."""

from __future__ import annotations

import numpy as np


def demo_scene(height: int = 384, width: int = 512, seed: int = 7) -> np.ndarray:
    """An (H, W, 3) uint8 RGB picture: sky, a textured ground plane in perspective and
    a few upright boxes standing on it, so near and far are obvious to a depth model."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    horizon = 0.42 * height
    image = np.empty((height, width, 3))
    # Sky: a vertical gradient from deep to pale blue.
    t = np.clip(rows / horizon, 0, 1)[..., None]
    image[:] = (1 - t) * np.array([0.25, 0.45, 0.85]) + t * np.array([0.75, 0.85, 0.95])
    # Ground: a checkerboard on the plane y = camera height, seen through a pinhole.
    below = rows > horizon + 0.5
    distance = 1.6 * height / np.maximum(rows - horizon, 1e-3)  # only used below the horizon
    lateral = (cols - width / 2) * distance / height
    checker = (np.floor(distance) + np.floor(lateral)) % 2
    shade = 0.35 + 0.25 * checker
    fog = np.clip(distance / 60.0, 0, 1)
    ground = (1 - fog)[..., None] * (shade[..., None] * np.array([0.9, 0.8, 0.6])) + fog[
        ..., None
    ] * np.array([0.75, 0.85, 0.95])
    image[below] = ground[below]
    # Boxes: painted far to near so nearer ones cover farther ones.
    distances = np.sort(rng.uniform(3.0, 25.0, 5))[::-1]
    for box_distance in distances:
        base = horizon + 1.6 * height / box_distance
        size = rng.uniform(0.6, 1.5) * height / box_distance
        centre = rng.uniform(0.15, 0.85) * width
        colour = rng.uniform(0.2, 0.9, 3)
        mask = (rows <= base) & (rows > base - 1.4 * size) & (np.abs(cols - centre) < size / 2)
        image[mask] = colour * (0.8 + 0.2 * (cols[mask] - centre + size / 2) / size)[:, None]
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
