"""Aligning a relative depth map to a reference: scale and shift fits, median scaling.

Every function works on a batch: maps are ``(B, H, W)`` float tensors and masks
``(B, H, W)`` bool tensors that mark the valid pixels; one fit is made per image.
Values under a False mask are never read, so they may be NaN or inf, and no
gradient flows to them. Degenerate images (no valid pixel, or a prediction that is
constant over its valid pixels) give finite results and finite gradients; what
each function returns for them is written in its docstring.

Medians are the lower median of the valid values (``torch.median``'s convention:
for an even count ``n``, the ``n/2``-th smallest), as in the MiDaS reference code.
"""

from __future__ import annotations

import torch

__all__ = [
    "align_disparity_to_depth",
    "fit_scale",
    "fit_scale_shift",
    "masked_median",
    "median_and_mad",
    "median_scale",
    "normalize_median_mad",
]


def fit_scale_shift(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image least-squares ``(scale, shift)`` mapping ``pred`` onto ``target``.

    Minimises ``Σ_i m_i (s·p_i + t − d_i)²`` over ``s`` and ``t``. The 2×2 normal
    equations ``[[Σp², Σp], [Σp, M]] · [s, t] = [Σp·d, Σd]`` are solved in closed
    form, written with centred sums (the same solution, better conditioned in
    float32)::

        s = Σ m (p − p̄)(d − d̄) / Σ m (p − p̄)²,    t = d̄ − s·p̄

    where ``p̄``, ``d̄`` are the means over the ``M`` valid pixels.

    Degenerate images: where ``pred`` is constant over the valid pixels the system
    is singular; the solution with ``s = 0`` is returned (``t = d̄``, the best
    constant). With no valid pixel both are 0, as in the MiDaS reference code.

    Args:
        pred: ``(B, H, W)`` prediction (MiDaS: disparity).
        target: ``(B, H, W)`` reference, in the same space as ``pred``.
        mask: ``(B, H, W)`` bool, True where ``target`` is valid.

    Returns:
        ``scale`` and ``shift``, each ``(B,)``, differentiable in ``pred`` and ``target``.

    Reference: Ranftl et al., "Towards Robust Monocular Depth Estimation", TPAMI 2022, eq. 5.
    """
    check_maps(pred, target, mask)
    p, d, m = _masked(pred, mask), _masked(target, mask), mask.to(pred.dtype)
    count = m.sum((1, 2))
    safe_count = count.clamp(min=1.0)
    p_mean = p.sum((1, 2)) / safe_count
    d_mean = d.sum((1, 2)) / safe_count
    pc = (p - p_mean[:, None, None]) * m
    dc = (d - d_mean[:, None, None]) * m
    var = (pc * pc).sum((1, 2))
    cov = (pc * dc).sum((1, 2))
    solvable = ~_is_constant(pred, mask)
    scale = torch.where(solvable, cov / torch.where(solvable, var, torch.ones_like(var)), 0.0)
    shift = d_mean - scale * p_mean
    return scale, shift


def fit_scale(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image least-squares scale ``s = Σ m·p·d / Σ m·p²`` minimising ``Σ m (s·p − d)²``.

    Returns ``(B,)``; 0 for an image whose valid ``pred`` values are all zero or
    that has no valid pixel.
    """
    check_maps(pred, target, mask)
    p, d = _masked(pred, mask), _masked(target, mask)
    num = (p * d).sum((1, 2))
    den = (p * p).sum((1, 2))
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), 0.0)


def median_scale(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image median scaling ``s = median(d) / median(p)`` over the valid pixels.

    The usual alignment for self-supervised depth evaluation (scale ambiguity
    only). Returns ``(B,)``; 0 for an image with no valid pixel or a zero median.

    Reference: Zhou et al., "Unsupervised Learning of Depth and Ego-Motion from Video", CVPR 2017.
    """
    check_maps(pred, target, mask)
    p_med = masked_median(pred, mask)
    d_med = masked_median(target, mask)
    ok = p_med != 0
    return torch.where(ok, d_med / torch.where(ok, p_med, torch.ones_like(p_med)), 0.0)


def align_disparity_to_depth(
    pred_disparity: torch.Tensor, gt_depth: torch.Tensor, mask: torch.Tensor, max_depth: float
) -> torch.Tensor:
    """Depth from a relative disparity map by the MiDaS evaluation protocol.

    1. ``(s, t) = fit_scale_shift(pred_disparity, 1 / gt_depth, mask)``: least squares
       in disparity space on the valid pixels;
    2. ``a = max(s·pred_disparity + t, 1 / max_depth)``: caps depth at ``max_depth``
       (and keeps zero or negative aligned disparities out of the inversion);
    3. ``depth = 1 / a`` at every pixel, valid or not.

    Args:
        pred_disparity: ``(B, H, W)`` relative inverse depth (larger = nearer).
        gt_depth: ``(B, H, W)`` metric depth, positive on the valid pixels.
        mask: ``(B, H, W)`` bool, True where ``gt_depth`` is valid.
        max_depth: the depth cap in the units of ``gt_depth`` (e.g. 10 m for NYU,
            80 m for KITTI).

    Returns:
        ``(B, H, W)`` depth in the units of ``gt_depth``, in ``(0, max_depth]``.

    Reference: Ranftl et al., "Towards Robust Monocular Depth Estimation", TPAMI 2022.
    """
    check_maps(pred_disparity, gt_depth, mask)
    if not max_depth > 0:
        raise ValueError(f"max_depth must be positive, got {max_depth}")
    if bool((gt_depth[mask] <= 0).any()):
        raise ValueError("gt_depth must be positive wherever mask is True")
    gt_disparity = 1.0 / torch.where(mask, gt_depth, torch.ones_like(gt_depth))
    scale, shift = fit_scale_shift(pred_disparity, gt_disparity, mask)
    aligned = scale[:, None, None] * pred_disparity + shift[:, None, None]
    return 1.0 / aligned.clamp(min=1.0 / max_depth)


def normalize_median_mad(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Shift- and scale-normalised ``x``: ``(x − t(x)) / s(x)`` on the valid pixels.

    ``t(x) = median(x)`` and ``s(x) = 1/M Σ m |x − t(x)|`` (mean absolute deviation
    from the median) over the ``M`` valid pixels of each image. Invariant to
    ``x → a·x + b`` for ``a > 0``. Masked-out pixels are 0 in the output. Where
    ``s(x) = 0`` (constant image, or no valid pixel) the output is ``x − t(x)``,
    which is 0 on the valid pixels.

    Args:
        x: ``(B, H, W)`` map.
        mask: ``(B, H, W)`` bool, True where ``x`` is valid.

    Reference: Ranftl et al., "Towards Robust Monocular Depth Estimation", TPAMI 2022, eq. 6.
    """
    t, s = median_and_mad(x, mask)
    centred = (_masked(x, mask) - t[:, None, None]) * mask.to(x.dtype)
    return centred / torch.where(s > 0, s, torch.ones_like(s))[:, None, None]


def median_and_mad(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image ``t(x)`` and ``s(x)`` of :func:`normalize_median_mad`, each ``(B,)``: the
    lower median of the valid values and their mean absolute deviation from it (0 for
    an image with no valid pixel)."""
    check_maps(x, x, mask)
    t = masked_median(x, mask)
    m = mask.to(x.dtype)
    centred = (_masked(x, mask) - t[:, None, None]) * m
    return t, centred.abs().sum((1, 2)) / m.sum((1, 2)).clamp(min=1.0)


def masked_median(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image lower median of ``x`` over the valid pixels: ``(B, H, W) -> (B,)``.

    0 for an image with no valid pixel. The gradient goes to the selected pixel.
    """
    check_maps(x, x, mask)
    flat = torch.where(mask, x, torch.full_like(x, float("nan"))).flatten(1)
    median = flat.nanmedian(dim=1).values
    return torch.where(mask.flatten(1).any(1), median, torch.zeros_like(median))


def _masked(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` with masked-out pixels set to 0, so NaN or inf there cannot leak into sums."""
    return torch.where(mask, x, torch.zeros_like(x))


def _is_constant(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: True where the valid values of ``x`` are all equal (or there are none).

    Compared exactly (max == min), so the test does not depend on rounding in a mean.
    """
    hi = torch.where(mask, x, torch.full_like(x, -torch.inf)).flatten(1).amax(1)
    lo = torch.where(mask, x, torch.full_like(x, torch.inf)).flatten(1).amin(1)
    return ~(hi > lo)


def check_maps(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> None:
    """Raise ValueError unless ``pred``, ``target`` are (B, H, W) floats and ``mask`` is bool."""
    if pred.ndim != 3:
        raise ValueError(f"maps must be (B, H, W), got shape {tuple(pred.shape)}")
    if target.shape != pred.shape or mask.shape != pred.shape:
        raise ValueError(
            f"shapes differ: {tuple(pred.shape)}, {tuple(target.shape)} and mask "
            f"{tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor, got {mask.dtype}")
    if not (pred.is_floating_point() and target.is_floating_point()):
        raise ValueError(f"maps must be floating point, got {pred.dtype} and {target.dtype}")
