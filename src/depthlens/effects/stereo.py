"""Stereo pairs from one image and its depth: side-by-side, top-bottom or anaglyph.

The input is the view of a camera halfway between the two eyes. Each eye sees the
scene shifted sideways by half the disparity, which is proportional to nearness: the
nearest pixel moves by ``baseline × W / 2`` in each view and the far end of the scene
not at all, so the far end sits at screen depth and everything else comes out of it.
Views are forward-warped with a z-buffer and disocclusions are filled from the
background side (``depthlens.effects.warp``).
"""

from __future__ import annotations

import numpy as np

from depthlens.effects.warp import view_nearness, warp_filled
from depthlens.models.spec import DepthKind

__all__ = ["STEREO_LAYOUTS", "compose_stereo", "stereo_image", "stereo_views"]

STEREO_LAYOUTS = ("side-by-side", "top-bottom", "anaglyph")


def stereo_views(
    rgb: np.ndarray, depth: np.ndarray, kind: DepthKind, baseline: float = 0.03
) -> tuple[np.ndarray, np.ndarray]:
    """The ``(left, right)`` eye views, (H, W, 3) uint8 each, of ``rgb`` (H, W, 3) uint8
    seen as the centre view of a stereo camera, with ``depth`` (H, W) of ``kind``.

    ``baseline`` is the largest disparity between the eyes as a fraction of the image
    width, reached at the nearest pixel: with nearness ``n`` in [0, 1] the disparity is
    ``d = baseline · W · n`` pixels, and a pixel at column ``x`` goes to ``x + d / 2`` in
    the left view (that camera is to the left, so content moves right) and to
    ``x − d / 2`` in the right view. ``baseline = 0`` gives two copies of ``rgb``.
    """
    _check_baseline(baseline)
    near = view_nearness(rgb, depth, kind)
    h, w = near.shape
    rows, columns = np.indices((h, w), dtype=np.float32)
    half_shift = np.float32(0.5 * baseline * w) * near
    left = warp_filled(rgb, columns + half_shift, rows, near)
    right = warp_filled(rgb, columns - half_shift, rows, near)
    return left, right


def compose_stereo(left: np.ndarray, right: np.ndarray, layout: str) -> np.ndarray:
    """Join two (H, W, 3) uint8 eye views into one image.

    ``side-by-side``: ``[left | right]``, (H, 2W, 3); ``top-bottom``: left above right,
    (2H, W, 3); ``anaglyph``: red–cyan glasses, (H, W, 3) with the red channel of
    ``left`` and the green and blue channels of ``right``.
    """
    _check_layout(layout)
    if left.shape != right.shape or left.ndim != 3 or left.shape[2] != 3:
        raise ValueError(
            f"left and right must be (H, W, 3) images of one shape, got {left.shape} "
            f"and {right.shape}"
        )
    if layout == "side-by-side":
        return np.concatenate([left, right], axis=1)
    if layout == "top-bottom":
        return np.concatenate([left, right], axis=0)
    return np.dstack([left[..., 0], right[..., 1], right[..., 2]])


def stereo_image(
    rgb: np.ndarray,
    depth: np.ndarray,
    kind: DepthKind,
    layout: str = "side-by-side",
    baseline: float = 0.03,
) -> np.ndarray:
    """:func:`stereo_views` joined by :func:`compose_stereo`: uint8, shaped by ``layout``."""
    _check_layout(layout)
    left, right = stereo_views(rgb, depth, kind, baseline)
    return compose_stereo(left, right, layout)


def _check_layout(layout: str) -> None:
    if layout not in STEREO_LAYOUTS:
        raise ValueError(
            f"unknown stereo layout {layout!r}; choose one of {', '.join(STEREO_LAYOUTS)}"
        )


def _check_baseline(baseline: float) -> None:
    if not (np.isfinite(baseline) and baseline >= 0):
        raise ValueError(f"baseline must be a finite fraction of the width >= 0, got {baseline}")
