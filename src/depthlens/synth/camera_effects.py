"""What a real camera does to a clean rendering: defocus, vignetting, noise, JPEG.

These run on the CPU in numpy/OpenCV after the render leaves the device: they are
cheap at training sizes, and JPEG needs a codec anyway. Each effect is drawn from the
sample's own random generator, so a sample looks the same whatever batch it is in.
Depth is never touched: the labels stay exact while the pixels look photographed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["EffectParams", "apply_effects", "draw_effects"]


@dataclass(frozen=True)
class EffectParams:
    """One sample's camera effects (all zero/None = a clean image).

    ``focus_depth`` metres (None: no defocus) with ``blur_strength`` the circle of
    confusion in pixels per unit of |1/z - 1/focus| (dioptres); ``vignette`` the corner
    darkening fraction; ``read_noise`` and ``shot_noise`` standard deviations in [0, 1]
    units (shot noise scales with sqrt(intensity)); ``jpeg_quality`` 1..100 or None;
    ``soften`` a Gaussian sigma in pixels for lens/demosaic softness.
    """

    focus_depth: float | None = None
    blur_strength: float = 0.0
    vignette: float = 0.0
    read_noise: float = 0.0
    shot_noise: float = 0.0
    jpeg_quality: int | None = None
    soften: float = 0.0


def draw_effects(rng: np.random.Generator, depth: np.ndarray, valid: np.ndarray) -> EffectParams:
    """Random effects for one sample; ``depth`` (H, W) metres picks a focus distance."""
    focus = None
    strength = 0.0
    if rng.random() < 0.3 and valid.any():
        focus = float(np.quantile(depth[valid], rng.uniform(0.05, 0.6)))
        # Circle of confusion ~ aperture * |1/z - 1/f| (thin lens); scaled so that the
        # background blurs by at most a few pixels at training sizes.
        strength = float(rng.uniform(0.5, 3.0) * focus)
    return EffectParams(
        focus_depth=focus,
        blur_strength=strength,
        vignette=float(rng.uniform(0.05, 0.35)) if rng.random() < 0.6 else 0.0,
        read_noise=float(rng.uniform(0.002, 0.012)) if rng.random() < 0.8 else 0.0,
        shot_noise=float(rng.uniform(0.0, 0.025)) if rng.random() < 0.8 else 0.0,
        jpeg_quality=int(rng.integers(55, 96)) if rng.random() < 0.6 else None,
        soften=float(rng.uniform(0.3, 0.7)) if rng.random() < 0.4 else 0.0,
    )


def apply_effects(
    image: np.ndarray,
    depth: np.ndarray,
    valid: np.ndarray,
    params: EffectParams,
    rng: np.random.Generator,
) -> np.ndarray:
    """Apply ``params`` to ``image`` (H, W, 3) float32 sRGB in [0, 1]; returns uint8.

    ``depth`` (H, W) metres with ``valid`` (H, W) bool (invalid pixels count as
    infinitely far for defocus). ``rng`` draws the sensor noise.
    """
    out: np.ndarray = np.ascontiguousarray(image, dtype=np.float32)
    if params.focus_depth is not None and params.blur_strength > 0:
        out = _defocus(out, depth, valid, params.focus_depth, params.blur_strength)
    if params.soften > 0:
        out = cv2.GaussianBlur(out, (0, 0), params.soften)
    if params.vignette > 0:
        out = out * _vignette(out.shape[0], out.shape[1], params.vignette)[:, :, None]
    if params.read_noise > 0 or params.shot_noise > 0:
        sigma = params.read_noise + params.shot_noise * np.sqrt(np.clip(out, 0.0, 1.0))
        # Unit-variance uniform noise: after demosaicing and JPEG it looks like Gaussian
        # noise and costs a fifth as much to draw. Part of it is shared by the colour
        # channels (luma noise): 0.8² + 0.6² = 1 keeps the variance.
        unit = np.float32(2.0 * np.sqrt(3.0))
        noise = (rng.random(out.shape, dtype=np.float32) - 0.5) * unit
        shared = (rng.random((*out.shape[:2], 1), dtype=np.float32) - 0.5) * unit
        out = out + sigma * (0.8 * noise + 0.6 * shared)
    rgb = np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if params.jpeg_quality is not None:
        ok, encoded = cv2.imencode(
            ".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, params.jpeg_quality]
        )
        decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            rgb = np.ascontiguousarray(decoded[:, :, ::-1])
    return rgb


def _vignette(height: int, width: int, amount: float) -> np.ndarray:
    """(H, W) gain: 1 at the centre, 1 - amount in the corners (cos⁴-like falloff)."""
    y = (np.arange(height, dtype=np.float32) + 0.5) / height * 2.0 - 1.0
    x = (np.arange(width, dtype=np.float32) + 0.5) / width * 2.0 - 1.0
    r2 = (x[None, :] ** 2 + y[:, None] ** 2) / 2.0
    return 1.0 - amount * r2 * r2 * (2.0 - r2)


def _defocus(
    image: np.ndarray, depth: np.ndarray, valid: np.ndarray, focus: float, strength: float
) -> np.ndarray:
    """Depth-dependent blur from a small stack of Gaussian blurs (a thin-lens CoC)."""
    inverse = np.where(valid, 1.0 / np.maximum(depth, 1e-3), 0.0)
    coc = np.abs(inverse - 1.0 / focus) * strength  # blur sigma in pixels
    coc = np.clip(coc, 0.0, 4.0).astype(np.float32)
    levels = [0.0, 1.0, 2.0, 4.0]
    out = np.zeros_like(image)
    for k, sigma in enumerate(levels):
        # Linear interpolation between blur levels: level k's weight is a tent.
        weight = np.interp(coc, levels, np.eye(len(levels))[k]).astype(np.float32)
        if not weight.any():
            continue
        blurred = image if sigma == 0.0 else cv2.GaussianBlur(image, (0, 0), sigma)
        out += blurred * weight[:, :, None]
    return out
