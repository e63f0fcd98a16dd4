"""Depth-aware lens blur ("portrait mode"): a layered, occlusion-aware defocus.

The blur of a thin lens is a disk, the circle of confusion, whose radius is
proportional to the difference between the inverse depth of a point and that of the
focal plane. Nearness (``effects.nearness``) is an inverse depth normalised to [0, 1],
so with ``aperture`` the largest radius, in pixels::

    radius = aperture × |n − n_focus|

Rendering (layered depth of field: Kraus & Strengert, "Depth-of-Field Rendering by
Pyramidal Image Processing", Eurographics 2007; Barron et al., "Fast Bilateral-Space
Stereo for Synthetic Defocus", CVPR 2015):

1. Slice the scene into slabs of nearness ``1 / layers`` thick, centred on the focal
   plane: slab ``k`` holds the pixels with ``round((n − n_focus) · layers) = k`` and
   is blurred with the radius of its centre, ``aperture · |k| / layers``. Slab 0 is the
   focal plane itself, radius 0, so the subject in focus stays exactly sharp; there
   are at most ``layers + 1`` slabs.
2. Work in linear light (gamma 2.2, hence "linear-ish"), where a blur mixes light as a
   lens does: bright highlights spread into discs instead of greying out.
3. From far to near, for each slab with mask ``M`` and disk kernel ``D`` (a real,
   anti-aliased disk; a radius under half a pixel is no blur)::

       P = D ∗ (M · rgb),  a = D ∗ M              premultiplied colour, coverage
       B = (D ∗ C) / (D ∗ A)                       what lies behind, normalised
       C ← P + (1 − a) · (C + g · B)                "over" the filled background
       A ← a + (1 − a) · (A + g)

   where ``C`` and ``A`` are the premultiplied colour and coverage accumulated so far
   and the gap ``g = 1 − A`` is filled only where the slab lands (``a > 0``) and ``B``
   is known (``g = 0`` elsewhere). The image is ``C / A``.

Why the slab's own coverage and the two normalisations:

- A slab holds only its own pixels, so a blurred background never gathers the colour
  of the sharp subject in front of it: focusing near leaves no halo of subject colour
  around the subject. The hole the subject cuts in the background slab leaves
  ``a < 1`` in a ring around it; dividing by ``A`` at the end restores the ring's
  brightness instead of darkening it.
- A blurred foreground is partly transparent on both sides of its edge. Outside its
  silhouette it spreads over the (sharp) background; inside it, the background is
  hidden and unknown, and ``B`` fills it with the background next to it, normalised
  by its own blurred coverage. Without ``B`` the division by ``A`` would paint the
  foreground's colour there and the blurred foreground would look dilated by its blur
  radius.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from depthlens.effects.nearness import NearnessScale, disparity_of
from depthlens.models.spec import DepthKind

__all__ = ["BokehResult", "lens_blur"]

GAMMA = 2.2
# The auto focus reads the median nearness of the box spanning the middle tenth of the
# image in each direction: the subject a photographer centres.
AUTO_FOCUS_BOX = 0.1
# An explicit focus point reads the median of the 5×5 window around it, so one stray
# depth pixel does not set the focus.
FOCUS_WINDOW_RADIUS = 2
# Coverage below this is no coverage: filter2D works through the DFT for large
# kernels and leaves rounding noise of about 1e-7 where the true value is 0.
COVERAGE_EPS = 1e-4

_TO_LINEAR = ((np.arange(256, dtype=np.float64) / 255.0) ** GAMMA).astype(np.float32)


@dataclass(frozen=True)
class BokehResult:
    """A lens-blurred image and the focus it was rendered with.

    image: (H, W, 3) uint8 RGB.
    focus_nearness: the nearness in focus, 0 (far end of the scene) to 1 (near end).
    focus_point: the (x, y) pixel the focus was read from, None when ``focus_depth``
        set it.
    max_radius: the aperture, the blur radius in pixels at nearness distance 1 from
        the focus.
    """

    image: np.ndarray
    focus_nearness: float
    focus_point: tuple[int, int] | None
    max_radius: float


def lens_blur(
    rgb: np.ndarray,
    depth: np.ndarray,
    kind: DepthKind,
    *,
    focus_point: tuple[int, int] | None = None,
    focus_depth: float | None = None,
    aperture: float = 12.0,
    layers: int = 16,
    on_progress: Callable[[int, int], None] | None = None,
) -> BokehResult:
    """Blur ``rgb`` as a lens focused at one depth would (see the module docstring).

    Args:
        rgb: (H, W, 3) uint8 RGB image.
        depth: (H, W) depth map of ``rgb``, meters for ``kind="metric"`` or relative
            inverse depth (larger = nearer) for ``kind="relative_inverse"``.
        kind: what ``depth`` holds.
        focus_point: (x, y) pixel whose depth is put in focus (x the column).
        focus_depth: the depth put in focus, in the map's own units (meters, or the
            model's relative value); wins over ``focus_point``. A depth beyond the
            scene's range focuses its nearest or farthest end. With neither, the
            subject at the image centre is in focus (the median nearness of the box
            spanning the middle tenth of the image each way).
        aperture: the largest blur radius in pixels, reached at the far or near end of
            the scene when the other end is in focus; 0 returns the image unchanged.
        layers: depth slabs per unit of nearness; more is smoother and slower.
        on_progress: called as ``on_progress(done, slabs)`` after each slab of the
            scene's depth range is composited (not at all when nothing is blurred).

    Returns:
        A :class:`BokehResult`.

    Raises:
        ValueError: ``rgb`` that is not (H, W, 3) uint8, a ``depth`` of another
            shape, an unknown ``kind``, a focus point outside the image, a focus
            depth that is not a finite (positive, in meters) number,
            ``aperture < 0`` or ``layers < 1``.
    """
    image = np.asarray(rgb)
    values = np.asarray(depth)
    _check_inputs(image, values, kind, aperture, layers)
    disparity = disparity_of(values, kind)
    scale = NearnessScale.of(disparity)
    near = scale.apply(disparity)
    if focus_depth is not None:
        focus_nearness, point = _nearness_of_depth(scale, kind, focus_depth), None
    else:
        focus_nearness, point = _focus_from_point(near, focus_point)

    slab = np.rint((near - focus_nearness) * layers).astype(np.int32)
    first, last = int(slab.min()), int(slab.max())
    if aperture * max(-first, last) / layers < 0.5:  # nothing is out of focus
        return BokehResult(image.copy(), focus_nearness, point, float(aperture))

    linear = _TO_LINEAR[image]
    height, width = slab.shape
    colour = np.zeros((height, width, 3), np.float32)
    cover = np.zeros((height, width), np.float32)
    for k in range(first, last + 1):  # far (small nearness) to near
        _blur_slab(slab == k, aperture * abs(k) / layers, linear, colour, cover)
        if on_progress is not None:
            on_progress(k - first + 1, last - first + 1)

    shown = colour / np.maximum(cover, COVERAGE_EPS)[..., None]
    out = np.clip(shown, 0.0, 1.0) ** (1.0 / GAMMA)
    return BokehResult(
        np.rint(out * 255.0).astype(np.uint8), focus_nearness, point, float(aperture)
    )


def _blur_slab(
    mask: np.ndarray, radius: float, linear: np.ndarray, colour: np.ndarray, cover: np.ndarray
) -> None:
    """Composite the slab of pixels ``mask``, blurred by ``radius``, over ``colour`` and
    ``cover`` in place (copied as it is when the radius is under half a pixel)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return
    if radius < 0.5:
        colour[mask] = linear[mask]
        cover[mask] = 1.0
        return
    cols = np.flatnonzero(mask.any(axis=0))
    kernel = _disk(radius)
    reach = kernel.shape[0] // 2
    # The slab lands within `reach` of its pixels; B there reads `reach` further.
    out_box = _grow((rows[0], rows[-1] + 1, cols[0], cols[-1] + 1), reach, mask.shape)
    in_box = _grow(out_box, reach, mask.shape)
    _composite_slab(linear, mask, kernel, colour, cover, out_box, in_box)


def _composite_slab(
    linear: np.ndarray,
    mask: np.ndarray,
    kernel: np.ndarray,
    colour: np.ndarray,
    cover: np.ndarray,
    out_box: tuple[int, int, int, int],
    in_box: tuple[int, int, int, int],
) -> None:
    """Blur one slab and composite it over ``colour``/``cover`` in place, in ``out_box``.

    Everything is computed on ``in_box`` (``out_box`` grown by the kernel's reach, or
    cut by the image border), so the result inside ``out_box`` is that of a whole-image
    filter: reflection at the border happens only where the box meets the border.
    """
    y0, y1, x0, x1 = in_box
    m = mask[y0:y1, x0:x1, None].astype(np.float32)
    stack = np.concatenate(
        [linear[y0:y1, x0:x1] * m, m, colour[y0:y1, x0:x1], cover[y0:y1, x0:x1, None]],
        axis=2,
    )
    blurred = cv2.filter2D(stack, -1, kernel, borderType=cv2.BORDER_REFLECT)
    oy0, oy1, ox0, ox1 = out_box
    inner = blurred[oy0 - y0 : oy1 - y0, ox0 - x0 : ox1 - x0]
    premult = np.maximum(inner[..., 0:3], 0.0)
    alpha = np.clip(inner[..., 3], 0.0, 1.0)
    behind_colour, behind_cover = inner[..., 4:7], inner[..., 7]

    here_colour = colour[oy0:oy1, ox0:ox1]
    here_cover = cover[oy0:oy1, ox0:ox1]
    known = (alpha > COVERAGE_EPS) & (behind_cover > COVERAGE_EPS)
    gap = np.where(known, 1.0 - here_cover, 0.0).astype(np.float32)
    behind = np.clip(behind_colour / np.maximum(behind_cover, COVERAGE_EPS)[..., None], 0, 1)
    filled_colour = here_colour + gap[..., None] * behind
    filled_cover = here_cover + gap
    keep = 1.0 - alpha
    colour[oy0:oy1, ox0:ox1] = premult + keep[..., None] * filled_colour
    cover[oy0:oy1, ox0:ox1] = alpha + keep * filled_cover


def _disk(radius: float) -> np.ndarray:
    """(2r+1, 2r+1) float32 disk of ``radius`` pixels summing to 1; each weight is the
    pixel's approximate coverage by the disk, so the edge is anti-aliased and the
    kernel grows smoothly with ``radius``."""
    half = math.ceil(radius + 0.5)
    offsets = np.arange(-half, half + 1, dtype=np.float32)
    distance = np.hypot(offsets[:, None], offsets[None, :])
    weights = np.clip(radius + 0.5 - distance, 0.0, 1.0)
    return (weights / weights.sum()).astype(np.float32)


def _grow(
    box: tuple[int, int, int, int], by: int, shape: tuple[int, ...]
) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` grown by ``by`` pixels on every side, within ``shape``."""
    y0, y1, x0, x1 = box
    return max(y0 - by, 0), min(y1 + by, shape[0]), max(x0 - by, 0), min(x1 + by, shape[1])


def _check_inputs(
    image: np.ndarray, depth: np.ndarray, kind: str, aperture: float, layers: int
) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"rgb must be an (H, W, 3) uint8 image, got shape {image.shape} and {image.dtype}"
        )
    if depth.shape != image.shape[:2]:
        raise ValueError(
            f"depth must be (H, W) = {image.shape[:2]} like the image, got shape {depth.shape}"
        )
    if kind not in ("relative_inverse", "metric"):
        raise ValueError(f"kind must be 'relative_inverse' or 'metric', got {kind!r}")
    if not (math.isfinite(aperture) and aperture >= 0):
        raise ValueError(f"aperture must be a blur radius of 0 pixels or more, got {aperture}")
    if isinstance(layers, bool) or not isinstance(layers, int | np.integer) or layers < 1:
        raise ValueError(f"layers must be a whole number of at least 1, got {layers!r}")


def _focus_from_point(
    near: np.ndarray, focus_point: tuple[int, int] | None
) -> tuple[float, tuple[int, int]]:
    """The nearness in focus and the pixel it was read from: the median of a small
    window around ``focus_point``, or of the central box when it is None."""
    height, width = near.shape
    if focus_point is None:
        x, y = width // 2, height // 2
        half_h = max(round(height * AUTO_FOCUS_BOX / 2), 0)
        half_w = max(round(width * AUTO_FOCUS_BOX / 2), 0)
    else:
        x, y = int(focus_point[0]), int(focus_point[1])
        if not (0 <= x < width and 0 <= y < height):
            raise ValueError(f"focus_point (x={x}, y={y}) is outside the {width}×{height} image")
        half_h = half_w = FOCUS_WINDOW_RADIUS
    window = near[max(y - half_h, 0) : y + half_h + 1, max(x - half_w, 0) : x + half_w + 1]
    return float(np.median(window)), (x, y)


def _nearness_of_depth(scale: NearnessScale, kind: DepthKind, focus_depth: float) -> float:
    """``focus_depth`` (meters, or a relative inverse depth) on the depth map's nearness
    ``scale``, clipped to [0, 1]."""
    value = float(focus_depth)
    if kind == "metric" and not (math.isfinite(value) and value > 0):
        raise ValueError(f"focus_depth must be a positive distance in meters, got {focus_depth}")
    if not math.isfinite(value):
        raise ValueError(f"focus_depth must be a finite number, got {focus_depth}")
    return float(scale.apply(np.array(1.0 / value if kind == "metric" else value)))
