"""Temporal stabilisation of per-frame depth, and a flicker measure.

Single-image models predict each frame on its own. A relative model's output is known
only up to scale and shift, and these drift from frame to frame; a metric model's
scale wobbles too. Played back, the depth of a still wall pulses: flicker.
``DepthStabilizer`` removes it by fitting, per frame, the scale (and shift) that maps
the new prediction onto the previous *stabilised* frame, on the pixels whose colour
did not change since the previous frame (the static scene). Moving objects change
colour, so they are left out of the fit and cannot drag the whole frame with them.

Reference for the idea: Ranftl et al., "Towards Robust Monocular Depth Estimation",
TPAMI 2022 (the scale-and-shift alignment of eq. 5, here between consecutive frames).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import cv2
import numpy as np
import torch

from depthlens.errors import UsageError
from depthlens.geometry.align import fit_scale_shift
from depthlens.models.spec import DepthKind

__all__ = ["DEFAULT_MOTION_THRESHOLD", "DepthStabilizer", "flicker", "static_mask"]

# A pixel "moved" when a colour channel changed by more than this (0..255 scale) after
# a 5×5 Gaussian blur of both frames. H.264 at CRF 18 moves a still pixel by 1-3 levels
# and the blur halves that; lighting flicker and real motion move it by tens.
DEFAULT_MOTION_THRESHOLD = 12.0

# Below this share of static pixels (a scene cut, a fast pan) the fit has nothing
# trustworthy to stand on, and the fallback of ``DepthStabilizer`` is used instead.
MIN_STATIC_FRACTION = 0.05

# The fit is a trimmed least-squares: fit, keep the pixels with the smallest 80 % of
# residuals, fit again (twice). Residuals of the static pixels are small; what is left
# after the colour test (shadows, reflections, model disagreement) is trimmed away.
_TRIM_KEEP = 0.8
_TRIM_ROUNDS = 2
# At most this many pixels enter a fit (an even stride over the static pixels): the
# three unknowns need far fewer, and full-HD frames would be 30× slower.
_FIT_PIXELS = 65_536


def static_mask(rgb: np.ndarray, previous_rgb: np.ndarray, threshold: float) -> np.ndarray:
    """(H, W) bool: True where the colour did not change between two (H, W, 3) frames.

    Both frames are blurred (5×5 Gaussian, to ignore codec noise); a pixel changed when
    any channel moved by more than ``threshold`` (0..255). The changed region is then
    grown by ``max(2, min(H, W) // 100)`` pixels, so that depth edges bleeding past a
    moving object's silhouette are counted as moving too.
    """
    changed = _changed(_blur(rgb), _blur(previous_rgb), threshold)
    return ~changed


def _blur(rgb: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(np.ascontiguousarray(rgb), (5, 5), 0).astype(np.int16)


def _changed(blurred: np.ndarray, previous: np.ndarray, threshold: float) -> np.ndarray:
    moved = (np.abs(blurred - previous).max(axis=2) > threshold).astype(np.uint8)
    radius = max(2, min(moved.shape) // 100)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(moved, kernel).astype(bool)


class DepthStabilizer:
    """Remove frame-to-frame scale/shift jitter from a stream of depth maps.

    Call it once per frame, in order: ``stable = stabilizer(depth, rgb)`` with the
    frame's (H, W) depth (as the model gave it) and its (H, W, 3) uint8 RGB frame; it
    returns (H, W) float32 of the same kind and units. The first frame passes
    through unchanged; every later frame ``p`` is mapped onto the previous output
    ``r`` by a fit on the static pixels (``static_mask`` against the previous RGB
    frame, with ``motion_threshold``), finite in both:

    - ``relative_inverse``: ``s·p + t``, the trimmed least-squares scale and shift in
      the disparity space the model predicts in (the space its ambiguity lives in).
    - ``metric``: ``s·p``, scale only, ``s = exp(median(log r − log p))`` over static
      pixels where both are positive. A metric model's jitter is mostly scale (of its
      focal-length guess); a shift would move near and far points by the same
      meters and bend the geometry, so none is fitted and meters stay meters.

    When fewer than 5 % of pixels look static (a scene cut, a fast pan) no pixel
    pairs can be trusted: a relative frame then gets the scale and shift that give it
    the previous output's median and mean absolute deviation (so the value range,
    and the colours of a depth video, stay continuous); a metric frame passes
    through, its own meters being the best guess.

    ``smoothing`` in [0, 1) adds an exponential moving average on static pixels only:
    ``out = smoothing · r + (1 − smoothing) · s·p`` there, ``s·p`` on moving pixels (which
    would otherwise leave ghost trails). 0 (the default) fits without averaging.

    After each call, ``last_scale``, ``last_shift`` and ``last_static_fraction`` say
    what was done (for diagnostics). ``reset()`` forgets the past (a new video).
    """

    def __init__(
        self,
        kind: DepthKind,
        smoothing: float = 0.0,
        motion_threshold: float = DEFAULT_MOTION_THRESHOLD,
    ) -> None:
        if kind not in ("relative_inverse", "metric"):
            raise ValueError(f"kind must be 'relative_inverse' or 'metric', got {kind!r}")
        if not (math.isfinite(smoothing) and 0.0 <= smoothing < 1.0):
            raise UsageError(f"Temporal smoothing must be in [0, 1), not {smoothing}.")
        if not (math.isfinite(motion_threshold) and motion_threshold > 0):
            raise UsageError(f"The motion threshold must be above 0, not {motion_threshold}.")
        self.kind: DepthKind = kind
        self.smoothing = float(smoothing)
        self.motion_threshold = float(motion_threshold)
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame: the next call passes its frame through."""
        self._previous_rgb: np.ndarray | None = None  # blurred, int16
        self._previous: np.ndarray | None = None  # last output
        self.last_scale = 1.0
        self.last_shift = 0.0
        self.last_static_fraction = 1.0

    def __call__(self, depth: np.ndarray, rgb: np.ndarray) -> np.ndarray:
        pred = np.asarray(depth, dtype=np.float32)
        frame = np.asarray(rgb)
        if pred.ndim != 2 or frame.shape != (*pred.shape, 3):
            raise ValueError(
                f"DepthStabilizer takes an (H, W) depth and its (H, W, 3) frame, "
                f"got {pred.shape} and {frame.shape}"
            )
        blurred = _blur(frame)
        previous, previous_rgb = self._previous, self._previous_rgb
        self._previous_rgb = blurred
        if previous is None or previous_rgb is None or previous.shape != pred.shape:
            self._previous = pred.copy()
            self.last_scale, self.last_shift, self.last_static_fraction = 1.0, 0.0, 1.0
            return self._previous.copy()

        static = ~_changed(blurred, previous_rgb, self.motion_threshold)
        usable = static & np.isfinite(pred) & np.isfinite(previous)
        if self.kind == "metric":
            usable &= (pred > 0) & (previous > 0)
        self.last_static_fraction = float(usable.mean())
        if self.last_static_fraction >= MIN_STATIC_FRACTION:
            fit = self._fit(pred[usable], previous[usable])
        else:
            fit = None
        scale, shift = fit if fit is not None else self._fallback(pred, previous)
        self.last_scale, self.last_shift = scale, shift
        out = (pred.astype(np.float64) * scale + shift).astype(np.float32)
        if self.smoothing > 0.0:
            blend = static & np.isfinite(previous) & np.isfinite(out)
            out[blend] = self.smoothing * previous[blend] + (1.0 - self.smoothing) * out[blend]
        self._previous = out
        return out.copy()

    def _fit(self, pred: np.ndarray, reference: np.ndarray) -> tuple[float, float] | None:
        """``(scale, shift)`` mapping ``pred`` onto ``reference`` (1-D, static pixels);
        None when the fit is degenerate (constant or reversed prediction)."""
        stride = max(1, pred.size // _FIT_PIXELS)
        p, r = pred[::stride].astype(np.float64), reference[::stride].astype(np.float64)
        if self.kind == "metric":
            return math.exp(float(np.median(np.log(r) - np.log(p)))), 0.0
        p_t, r_t = torch.from_numpy(p)[None, None], torch.from_numpy(r)[None, None]
        keep = torch.ones_like(p_t, dtype=torch.bool)
        scale, shift = fit_scale_shift(p_t, r_t, keep)
        for _ in range(_TRIM_ROUNDS):
            residual = (scale * p_t + shift - r_t).abs()
            keep = residual <= torch.quantile(residual, _TRIM_KEEP)
            scale, shift = fit_scale_shift(p_t, r_t, keep)
        s, t = float(scale), float(shift)
        if not (math.isfinite(s) and math.isfinite(t) and s > 0):
            return None
        return s, t

    def _fallback(self, pred: np.ndarray, previous: np.ndarray) -> tuple[float, float]:
        """Without static pixels: match median and mean absolute deviation (relative),
        or nothing (metric)."""
        if self.kind == "metric":
            return 1.0, 0.0
        p, r = pred[np.isfinite(pred)], previous[np.isfinite(previous)]
        if p.size == 0 or r.size == 0:
            return 1.0, 0.0
        p_med, r_med = float(np.median(p)), float(np.median(r))
        p_dev, r_dev = float(np.abs(p - p_med).mean()), float(np.abs(r - r_med).mean())
        if not p_dev > 0:
            return 1.0, r_med - p_med
        scale = r_dev / p_dev
        return scale, r_med - scale * p_med


def flicker(depths: Iterable[np.ndarray], kind: DepthKind) -> float:
    """How much a depth video's values jump between consecutive frames (0 = not at all).

    For consecutive (H, W) maps ``a_{t−1}``, ``a_t`` and the pixels ``P`` finite in both::

        f_t = mean_P |a_t − a_{t−1}| / D(a_{t−1}),     flicker = mean_t f_t

    with ``D`` the spread of the earlier frame: for ``relative_inverse``, the mean
    absolute deviation from its median, ``mean_P |a − median_P(a)|`` (relative values
    have an arbitrary offset, so a mean of ``|a|`` would mean nothing); for
    ``metric``, ``mean_P |a|`` (zero meters is meaningful: the relative change).

    Frames are compared as they are, never renormalised one by one: a sequence whose
    every frame is a different ``s_t·d + t_t`` of the same ``d`` has flicker about
    ``mean |Δs·d + Δt| / spread`` (what a viewer sees with a fixed colour scale), and a
    still scene predicted identically has exactly 0. Scaling the whole sequence by
    one constant (or, relative, shifting it) leaves it unchanged. On a static scene
    every change is flicker; with moving objects the motion counts too, so compare
    sequences of the same video. Fewer than two frames give 0.0; a pair whose
    earlier frame has zero spread counts 0 if the frames are equal, else infinity.
    """
    if kind not in ("relative_inverse", "metric"):
        raise ValueError(f"kind must be 'relative_inverse' or 'metric', got {kind!r}")
    total, pairs = 0.0, 0
    previous: np.ndarray | None = None
    for depth in depths:
        current = np.asarray(depth, dtype=np.float64)
        if previous is not None:
            if current.shape != previous.shape:
                raise ValueError(
                    f"flicker takes maps of one size, got {previous.shape} then {current.shape}"
                )
            both = np.isfinite(current) & np.isfinite(previous)
            a, b = previous[both], current[both]
            change = float(np.abs(b - a).mean()) if a.size else 0.0
            if kind == "metric":
                spread = float(np.abs(a).mean()) if a.size else 0.0
            else:
                spread = float(np.abs(a - np.median(a)).mean()) if a.size else 0.0
            if spread > 0:
                total += change / spread
            elif change > 0:
                total += math.inf
            pairs += 1
        previous = current
    return total / pairs if pairs else 0.0
