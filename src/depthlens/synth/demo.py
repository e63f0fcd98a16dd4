"""A procedural street scene for ``depthlens demo``: no files needed."""

from __future__ import annotations

import numpy as np

from depthlens.synth.render import render_sample


def demo_scene(height: int = 384, width: int = 512, seed: int = 7) -> np.ndarray:
    """An (H, W, 3) uint8 RGB picture of a street (buildings, parked cars, people, trees)
    rendered by the synthetic data engine, so near and far are obvious to a depth model.
    The same arguments always give the same picture."""
    return render_sample(seed, height, width, kind="street").rgb
