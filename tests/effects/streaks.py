"""Streak energy: how much of a frame's border band is a stretched streak.

A hole along the border filled by repeating the edge pixel is a streak: constant along
the border's normal while it varies along the border (the stripes of a smeared
texture). The measure sums the texture (the squared grey step along the border) on
pixels that start a flat run across it, at most ``TOLERANCE`` grey levels a step for
``RUN`` steps. A photo's own border barely has such runs, nor does a nearest-neighbour
zoom (it repeats a pixel once, at most twice with a crack filled), so the sum, divided
by the texture of the photo's own band, is near 0 for a clean side and, for one whose
band is all streaks, the share of the texture that survives along them.
"""

from __future__ import annotations

import numpy as np

RUN = 4  # steps: five equal pixels in a row across the border
TOLERANCE = 1.5  # grey levels per step


def streak_energy(frame: np.ndarray, reference: np.ndarray, fraction: float = 0.05) -> float:
    """Streak texture in a border band of ``frame`` (H, W, 3) uint8, the outer
    ``fraction`` of the image across, over the texture of the same band of
    ``reference`` (the source photo): the largest of the four sides'."""
    energies = []
    for turns in range(4):  # each side in turn brought to the left
        grey = np.rot90(frame.astype(np.float32).mean(axis=-1), turns)
        ref = np.rot90(reference.astype(np.float32).mean(axis=-1), turns)
        band = max(1, round(fraction * grey.shape[1]))
        flat = np.abs(np.diff(grey, axis=1)) <= TOLERANCE
        runs = np.lib.stride_tricks.sliding_window_view(flat, RUN, axis=1).all(axis=-1)
        along = np.diff(grey, axis=0)[:, :band] ** 2
        texture = float((np.diff(ref, axis=0)[:, :band] ** 2).sum())
        energies.append(float(along[runs[:-1, :band]].sum()) / texture)
    return max(energies)
