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

and likewise ``v'`` with ``Ty`` and ``cy``: near pixels (large ``w``) move more.

A moved camera sees past the photo's edges: a sideways move uncovers a band along one
side, as wide as the motion of the nearest surface touching that side (13 % of the
height at the default strength when the ground runs out of the bottom of the frame).
Nothing in the photo shows what is there, and a fill can only invent it (repeating the
edge pixel drew streaks across the band). So each view is framed by a crop, the least
zoom ``s`` (at most ``MAX_CROP_ZOOM``) about a point ``(pu, pv)``, as close to the
centre as the zoom allows, that keeps the whole frame inside the region the photo's
own border lands on::

    u'' = cx + s · (u' − pu),   v'' = cy + s · (v' − pv)

(:func:`covering_crop`). A point off the centre is a small pan: a move that uncovers
one side is met by looking a little that way, which needs about half the extra zoom
of a crop about the centre, and a side whose border is all far background is simply
followed (the background stays put and the nearer scene moves across it). The crop is
chosen for each view alone, so zero motion needs none and a clip's first frame is
still the photo; along a path it grows and shrinks with the motion, smoothly. A pure push-in
magnifies everything and needs no crop. That is why the ``dolly-zoom`` path pulls the
camera back while zooming in: the subject keeps its size and the background looms
larger, so the frame stays covered. Pushing in while zooming out would shrink the
background inside the frame, and the crop that covers it again would make the picture
of the ``zoom`` path, scaled by under 2 % (the background kept still, the subject
growing): the path would lose its look.

The framed view is forward-warped with nearness as the z-buffer priority. Its holes are
disocclusions, background that was behind a nearer surface, and whatever is beyond
``MAX_CROP_ZOOM``; both are filled from the background side with its texture mirrored
into them (``depthlens.effects.warp.fill_holes``), so no pixel is stretched into a
streak.

The effect is that of Niklaus et al., "3D Ken Burns Effect from a Single Image"
(SIGGRAPH Asia 2019), without their learned inpainting of the disocclusions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from depthlens.effects.warp import view_nearness, warp_filled
from depthlens.models.spec import DepthKind

__all__ = [
    "CAMERA_PATHS",
    "MAX_CROP_ZOOM",
    "MAX_PARALLAX_FRAMES",
    "CameraMotion",
    "camera_path",
    "covering_crop",
    "parallax_frames",
    "render_view",
    "view_positions",
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

# The most a view is zoomed to keep its frame covered (module docstring). The default
# strength needs at most 1.10 on a 4:3 photo and 1.16 on a 2:1 one (the ``circle``
# path with the nearest surface along the bottom edge); beyond 1.3 the enlarged pixels
# would show, and what is left uncovered is filled instead.
MAX_CROP_ZOOM = 1.3


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
    - ``dolly-zoom``: ``tz = −a·(1 − cos θ) / 2``, pulling back by up to ``a``, with
      ``zoom = 1 − tz``, so the focus plane (depth 1) keeps its size while the
      background looms larger and settles back ("Vertigo"; pulling back keeps the
      frame covered, see the module docstring).

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
        elif name == "zoom":
            motion = CameraMotion(0.0, 0.0, a * (1.0 - cos) / 2.0)
        else:
            tz = -a * (1.0 - cos) / 2.0
            motion = CameraMotion(0.0, 0.0, tz, 1.0 - tz)
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
    ``strength``, with ``depth`` (H, W) of ``kind``, framed by :func:`covering_crop`;
    returns (H, W, 3) uint8 with no holes. The geometry is in the module docstring;
    zero motion returns ``rgb`` exactly.
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
    *,
    on_progress: Callable[[int, int], None] | None = None,
) -> Iterator[np.ndarray]:
    """The frames of a 3D photo: :func:`render_view` along :func:`camera_path`, each
    (H, W, 3) uint8, lazily. Arguments are checked on the call, before the first frame.
    ``on_progress(done, frames)`` is called as each frame is rendered.
    """
    motions = camera_path(path, frames, amplitude)
    _check_strength(strength)
    for motion in motions:  # fail now, not halfway through the frames
        _scaled(motion, strength)
    near = view_nearness(rgb, depth, kind)

    def rendered() -> Iterator[np.ndarray]:
        for done, motion in enumerate(motions, 1):
            frame = _render(rgb, near, motion, strength)
            if on_progress is not None:
                on_progress(done, len(motions))
            yield frame

    return rendered()


def view_positions(
    near: np.ndarray, motion: CameraMotion, strength: float
) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel of an image with nearness ``near`` (H, W) lands in the view of
    the camera moved by ``motion`` at ``strength``, before any crop: ``(x, y)``, each
    (H, W) float32 in pixels (``u'``, ``v'`` of the module docstring)."""
    near = np.asarray(near, dtype=np.float32)
    if near.ndim != 2:
        raise ValueError(f"near must be an (H, W) map, got shape {near.shape}")
    (tx, ty, tz), scale = _scaled(motion, strength)
    h, w = near.shape
    f = FOCAL * w
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    inverse_depth = np.float32(W_FAR) + np.float32(1.0 - W_FAR) * near
    magnification = np.float32(scale) / (np.float32(1.0) - np.float32(tz) * inverse_depth)
    rows, columns = np.indices((h, w), dtype=np.float32)
    x = cx + magnification * ((columns - cx) - np.float32(f * tx) * inverse_depth)
    y = cy + magnification * ((rows - cy) - np.float32(f * ty) * inverse_depth)
    return x, y


def covering_crop(
    x: np.ndarray, y: np.ndarray, max_zoom: float = MAX_CROP_ZOOM
) -> tuple[float, float, float]:
    """The crop ``(s, pu, pv)`` that keeps a view covered: zoom by ``s`` about the view
    point ``(pu, pv)``, which goes to the frame's centre (module docstring).

    ``x``, ``y`` (H, W) are where the image's pixels land (:func:`view_positions`). The
    region inside the image's border there contains the rectangle right of every
    left-column pixel, left of every right-column one, below the top row and above the
    bottom row; ``s`` is the least zoom ≥ 1 whose (H, W) frame fits in it, at most
    ``max_zoom``, and ``(pu, pv)`` the point nearest the centre ``(cx, cy)`` that keeps
    the frame inside (the rectangle's middle on an axis where even ``max_zoom`` does
    not fit). No motion gives ``(1, cx, cy)``, the identity.
    """
    if not max_zoom >= 1.0:
        raise ValueError(f"max_zoom must be at least 1, got {max_zoom}")
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"x and y must be (H, W) maps of one shape, got {x.shape} and {y.shape}")
    sides = (
        (float(x[:, 0].max()), float(x[:, -1].min()), x.shape[1] - 1),
        (float(y[0].max()), float(y[-1].min()), x.shape[0] - 1),
    )
    zoom = 1.0
    for low, high, extent in sides:
        if extent > 0:
            zoom = max(zoom, extent / (high - low) if high > low else np.inf)
    zoom = min(zoom, float(max_zoom))
    centre = []
    for low, high, extent in sides:
        half = extent / (2.0 * zoom)
        first, last = low + half, high - half
        centre.append(min(max(extent / 2.0, first), last) if first <= last else (low + high) / 2)
    return zoom, centre[0], centre[1]


def _render(rgb: np.ndarray, near: np.ndarray, motion: CameraMotion, strength: float) -> np.ndarray:
    x, y = view_positions(near, motion, strength)
    h, w = near.shape
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    zoom, pu, pv = covering_crop(x, y)
    if (zoom, pu, pv) != (1.0, cx, cy):
        x = np.float32(cx) + np.float32(zoom) * (x - np.float32(pu))
        y = np.float32(cy) + np.float32(zoom) * (y - np.float32(pv))
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
