"""The 3D photo ("Ken Burns" effect): a small camera move around a still image.

The depth map turns the image into a pseudo-3D scene. From nearness ``n`` in [0, 1]
each pixel gets the inverse depth::

    w = W_FAR + (1 − W_FAR) · n          (W_FAR = 0.3)

so the nearest surface, the focus plane, is at depth ``Z = 1 / w = 1`` and the far end
of the scene at ``1 / 0.3 ≈ 3.3``. The same shape is used for relative and metric
maps: the true range of a relative map is unknown, and a fixed range makes every
image move alike. The camera is a pinhole with focal length ``f = W`` pixels (a
horizontal field of view of 2·atan(1/2) ≈ 53.1°) and its principal point at the image
centre ``(cx, cy) = ((W − 1) / 2, (H − 1) / 2)``.

A pixel ``(u, v)`` is the point ``X = (u − cx)·Z / f``, ``Y = (v − cy)·Z / f``, ``Z``.
After the camera moves by ``T = (Tx, Ty, Tz)`` and its focal length is multiplied by
``s``, the point is seen at::

    u' = cx + s · f · (X − Tx) / (Z − Tz) = cx + s · ((u − cx) − f·Tx·w) / (1 − Tz·w)

and likewise ``v'`` with ``Ty`` and ``cy``: near pixels (large ``w``) move more. The
frame is forward-warped with nearness as the z-buffer priority and its holes filled
from the background side (``depthlens.effects.warp``).

The effect is that of Niklaus et al., "3D Ken Burns Effect from a Single Image"
(SIGGRAPH Asia 2019), without their learned inpainting of the disocclusions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from depthlens.effects.warp import view_nearness, warp_filled
from depthlens.models.spec import DepthKind

__all__ = [
    "CAMERA_PATHS",
    "MAX_PARALLAX_FRAMES",
    "CameraMotion",
    "camera_path",
    "parallax_frames",
    "render_view",
]

CAMERA_PATHS = ("circle", "swing", "zoom", "dolly-zoom")

# The most frames one loop of the 3D photo may have: two minutes at 30 frames per
# second. A loop lasts seconds; the cap keeps a request (duration × fps) from asking
# for millions of renders, or a GIF, which is kept in memory, from filling it.
MAX_PARALLAX_FRAMES = 3600

# Inverse depth of the far end of the scene, in units of the nearest surface's: the
# scene spans depths 1 to 1 / 0.3 ≈ 3.3. An artistic choice: a smaller value makes the
# background lag further behind the subject.
W_FAR = 0.3

FOCAL = 1.0  # focal length in image widths: a 53.1° horizontal field of view


@dataclass(frozen=True)
class CameraMotion:
    """A camera move of unit strength; :func:`render_view` scales it by ``strength``.

    ``tx``, ``ty``, ``tz``: the camera's translation (right, down, forward) in units of
    the focus-plane distance (the nearest surface) per unit of strength; the camera
    moves by ``strength · (tx, ty, tz)``. ``zoom``: the focal-length multiplier at unit
    strength; the focal length is multiplied by ``1 + strength · (zoom − 1)``. Scaling
    translation and focal change alike keeps a dolly zoom exact at any strength.
    """

    tx: float
    ty: float
    tz: float
    zoom: float = 1.0


def camera_path(name: str, frames: int, amplitude: float = 1.0) -> list[CameraMotion]:
    """``frames`` motions along the path ``name``, one per frame, at phase
    ``θ = 2π·k / frames`` for frame ``k``, with ``a = amplitude``:

    - ``circle``: ``tx = a·sin θ``, ``ty = a·(1 − cos θ)``, a circle of radius ``a``
      through the start;
    - ``swing``: ``tx = a·sin θ``, left and right;
    - ``zoom``: ``tz = a·(1 − cos θ) / 2``, pushing in by up to ``a`` and back;
    - ``dolly-zoom``: the ``zoom`` move with ``zoom = 1 − tz``, so the focus plane
      (depth 1) keeps its size while the background shrinks and grows back ("Vertigo").

    Every path starts at rest (frame 0 is the identity) and loops: the frame after the
    last would be frame 0 again. ``frames`` is at most ``MAX_PARALLAX_FRAMES``.
    """
    if name not in CAMERA_PATHS:
        raise ValueError(f"unknown camera path {name!r}; choose one of {', '.join(CAMERA_PATHS)}")
    if isinstance(frames, bool) or not isinstance(frames, int | np.integer) or frames < 1:
        raise ValueError(f"frames must be a whole number >= 1, got {frames!r}")
    if frames > MAX_PARALLAX_FRAMES:
        raise ValueError(f"a parallax loop has at most {MAX_PARALLAX_FRAMES} frames, not {frames}")
    if not np.isfinite(amplitude):
        raise ValueError(f"amplitude must be finite, got {amplitude}")
    a = float(amplitude)
    motions = []
    for k in range(int(frames)):
        theta = 2.0 * np.pi * k / frames
        sin, cos = float(np.sin(theta)), float(np.cos(theta))
        if k == 0:
            sin, cos = 0.0, 1.0  # exact rest, whatever rounding does
        if name == "circle":
            motion = CameraMotion(a * sin, a * (1.0 - cos), 0.0)
        elif name == "swing":
            motion = CameraMotion(a * sin, 0.0, 0.0)
        else:
            tz = a * (1.0 - cos) / 2.0
            motion = CameraMotion(0.0, 0.0, tz, 1.0 - tz if name == "dolly-zoom" else 1.0)
        motions.append(motion)
    return motions


def render_view(
    rgb: np.ndarray,
    depth: np.ndarray,
    kind: DepthKind,
    motion: CameraMotion,
    strength: float = 0.05,
) -> np.ndarray:
    """``rgb`` (H, W, 3) uint8 seen from the camera moved by ``motion`` scaled by
    ``strength``, with ``depth`` (H, W) of ``kind``; returns (H, W, 3) uint8 with no
    holes. The geometry is in the module docstring; zero motion returns ``rgb`` exactly.
    """
    near = view_nearness(rgb, depth, kind)
    return _render(rgb, near, motion, strength)


def parallax_frames(
    rgb: np.ndarray,
    depth: np.ndarray,
    kind: DepthKind,
    path: str = "circle",
    frames: int = 60,
    amplitude: float = 1.0,
    strength: float = 0.05,
) -> Iterator[np.ndarray]:
    """The frames of a 3D photo: :func:`render_view` along :func:`camera_path`, each
    (H, W, 3) uint8, lazily. Arguments are checked on the call, before the first frame.
    """
    motions = camera_path(path, frames, amplitude)
    _check_strength(strength)
    for motion in motions:  # fail now, not halfway through the frames
        _scaled(motion, strength)
    near = view_nearness(rgb, depth, kind)
    return (_render(rgb, near, motion, strength) for motion in motions)


def _render(rgb: np.ndarray, near: np.ndarray, motion: CameraMotion, strength: float) -> np.ndarray:
    (tx, ty, tz), scale = _scaled(motion, strength)
    h, w = near.shape
    f = FOCAL * w
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    inverse_depth = np.float32(W_FAR) + np.float32(1.0 - W_FAR) * near
    magnification = np.float32(scale) / (np.float32(1.0) - np.float32(tz) * inverse_depth)
    rows, columns = np.indices((h, w), dtype=np.float32)
    x = cx + magnification * ((columns - cx) - np.float32(f * tx) * inverse_depth)
    y = cy + magnification * ((rows - cy) - np.float32(f * ty) * inverse_depth)
    return warp_filled(rgb, x, y, near)


def _scaled(motion: CameraMotion, strength: float) -> tuple[tuple[float, float, float], float]:
    """The camera translation and focal multiplier that ``motion`` at ``strength`` means."""
    _check_strength(strength)
    values = (motion.tx, motion.ty, motion.tz, motion.zoom)
    if not all(np.isfinite(v) for v in values):
        raise ValueError(f"camera motion must be finite, got {motion}")
    translation = (strength * motion.tx, strength * motion.ty, strength * motion.tz)
    scale = 1.0 + strength * (motion.zoom - 1.0)
    if translation[2] >= 1.0:
        raise ValueError(
            f"the camera would reach the nearest surface (forward move {translation[2]:.3g} "
            "focus distances); lower strength or amplitude"
        )
    if scale <= 0.0:
        raise ValueError(f"the focal length multiplier must be positive, got {scale:.3g}")
    return translation, scale


def _check_strength(strength: float) -> None:
    if not (np.isfinite(strength) and strength >= 0):
        raise ValueError(
            f"strength must be a finite fraction of the near distance >= 0, got {strength}"
        )
