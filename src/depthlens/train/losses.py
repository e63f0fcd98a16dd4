"""Losses for monocular depth: MiDaS, SILog, Metric3D and Depth Anything objectives.

Conventions shared by every loss here:

* Maps are ``(B, H, W)`` float tensors; ``mask`` is a ``(B, H, W)`` bool tensor,
  True where the ground truth is valid. Values under a False mask are never read
  (they may be NaN or inf) and receive no gradient.
* Each loss is computed per image and then averaged over the images that have at
  least one valid pixel (or, for the sampled losses, one accepted sample).
* An image with nothing valid is left out of the mean; a batch with nothing valid
  gives a loss of 0 that is still part of the graph, so ``backward()`` works and
  every gradient is 0. Training batches do contain such images (an all-sky crop,
  a LiDAR frame with no return in the crop), so this is not an error.
* Wrong shapes, dtypes or arguments raise ``ValueError`` with one sentence.
* Degenerate inputs (constant depth, a single valid pixel) give finite values
  and finite gradients: every division and square root is guarded.

Cameras are ``(B, 4)`` tensors of pinhole intrinsics ``(fx, fy, cx, cy)`` in pixels,
with the convention of ``depthlens.geometry.camera``: origin at the top-left
corner of the image, x right, y down, z forward, so the centre of pixel
``(row v, column u)`` is at ``(u + 0.5, v + 0.5)`` and back-projects to
``z · ((u + 0.5 − cx) / fx, (v + 0.5 − cy) / fy, 1)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from depthlens.geometry.align import (
    check_maps,
    fit_scale_shift,
    median_and_mad,
    normalize_median_mad,
)

__all__ = [
    "depth_to_normals",
    "feature_alignment_loss",
    "gradient_matching_loss",
    "pairwise_normal_loss",
    "rpnl_loss",
    "scale_anchor_loss",
    "silog_loss",
    "ssi_mse_loss",
    "ssi_trimmed_mae_loss",
    "trimmed_mae_loss",
    "virtual_normal_loss",
]


# --- MiDaS: scale- and shift-invariant losses --------------------------------------------


def ssi_mse_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Scale-and-shift-invariant MSE: least-squares alignment, then half the mean squared error.

    For each image, with ``(s, t) = fit_scale_shift(pred, target, mask)`` (eq. 5)::

        L = 1 / (2M) · Σ_i m_i (s·p_i + t − d_i)²                      (eq. 4, ρ = x²)

    over its ``M`` valid pixels; the batch loss is the mean over images. The factor
    1/2 is the paper's. Gradients flow through ``s`` and ``t``, as in MiDaS.
    Both ``pred`` and ``target`` are in the same space (MiDaS: disparity).
    Zero for ``pred = a·target + b`` with any ``a``, ``b``.

    Reference: Ranftl et al., "Towards Robust Monocular Depth Estimation", TPAMI 2022, eq. 4-5.
    """
    check_maps(pred, target, mask)
    pred, target = _masked(pred, mask), _masked(target, mask)
    scale, shift = fit_scale_shift(pred, target, mask)
    residual = _masked(scale[:, None, None] * pred + shift[:, None, None] - target, mask)
    count = _count(mask, pred.dtype)
    per_image = residual.square().sum((1, 2)) / (2.0 * count.clamp(min=1.0))
    return _batch_mean(per_image, count > 0)


def ssi_trimmed_mae_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, trim: float = 0.2
) -> torch.Tensor:
    """Scale-and-shift-invariant trimmed MAE on median/MAD-normalised maps.

    Both maps are normalised per image by ``normalize_median_mad``:
    ``x̂ = (x − median(x)) / (1/M Σ |x − median(x)|)`` (eq. 6). With the absolute
    residuals ``r_j = |p̂_j − d̂_j|`` sorted ascending::

        L = 1 / (2M) · Σ_{j ≤ U} r_j,     U = ⌊(1 − trim) · M⌋             (eq. 7)

    i.e. the largest residuals (the paper's 20 % by default) are dropped, but the
    sum is still divided by ``2M``; ``U`` is rounded down as in the authors'
    reference code. Zero for ``pred = a·target + b`` with ``a > 0``.

    Reference: Ranftl et al., "Towards Robust Monocular Depth Estimation", TPAMI 2022, eq. 6-7.
    """
    check_maps(pred, target, mask)
    return trimmed_mae_loss(
        normalize_median_mad(pred, mask), normalize_median_mad(target, mask), mask, trim
    )


def trimmed_mae_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, trim: float = 0.2
) -> torch.Tensor:
    """Eq. 7 of :func:`ssi_trimmed_mae_loss` on maps that are already normalised, for a
    caller that also feeds the normalised maps to ``gradient_matching_loss``."""
    check_maps(pred, target, mask)
    if not 0.0 <= trim < 1.0:
        raise ValueError(f"trim must be in [0, 1), got {trim}")
    residual = (pred - target).abs()
    flat_mask = mask.flatten(1)
    residual = torch.where(flat_mask, residual.flatten(1), torch.inf)
    ordered = residual.sort(dim=1).values
    count = flat_mask.sum(1)
    # float64 and a tiny slack so that e.g. (1 − 0.7) · 10 keeps 3, not 2
    kept = torch.floor(count.double() * (1.0 - trim) + 1e-9).long()
    rank = torch.arange(ordered.shape[1], device=ordered.device)
    keep = rank[None, :] < kept[:, None]
    kept_sum = torch.where(keep, ordered, 0.0).sum(1)
    per_image = kept_sum / (2.0 * count.clamp(min=1).to(kept_sum.dtype))
    return _batch_mean(per_image, count > 0)


def gradient_matching_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    scales: int = 4,
    align: bool = True,
) -> torch.Tensor:
    """Multi-scale gradient matching on the residual ``R = p − d`` (MiDaS's regulariser).

    With ``align=True``, ``p`` is first replaced by ``s·p + t`` from
    ``fit_scale_shift`` (as MiDaS does alongside ``ssi_mse_loss``); pass
    ``align=False`` for maps that are already aligned or normalised (e.g. by
    ``normalize_median_mad`` alongside ``ssi_trimmed_mae_loss``). At scale
    ``k = 0 … scales−1`` the residual and mask are subsampled by ``2^k``
    (every ``2^k``-th row and column) and::

        L = Σ_k 1/M_k Σ_i (|∇x R_i^k| + |∇y R_i^k|)                     (eq. 11)

    where a forward difference counts only if both of its pixels are valid and
    ``M_k`` is the number of valid pixels at scale ``k``; taking ``M`` per scale
    follows the authors' reference code (Ranftl, gist 1d6194db2e1dffa0a50c9b0a9549cbd2).
    Zero for ``pred = a·target + b`` when ``align=True``.

    Reference: Ranftl et al., "Towards Robust Monocular Depth Estimation", TPAMI 2022, eq. 11.
    """
    check_maps(pred, target, mask)
    if scales < 1:
        raise ValueError(f"scales must be at least 1, got {scales}")
    pred, target = _masked(pred, mask), _masked(target, mask)
    if align:
        scale, shift = fit_scale_shift(pred, target, mask)
        pred = scale[:, None, None] * pred + shift[:, None, None]
    valid = mask.to(pred.dtype)
    residual = (pred - target) * valid
    per_image = torch.zeros(pred.shape[0], dtype=pred.dtype, device=pred.device)
    for k in range(scales):
        step = 2**k
        r, m = residual[:, ::step, ::step], valid[:, ::step, ::step]
        grad_x = (r[:, :, 1:] - r[:, :, :-1]).abs() * m[:, :, 1:] * m[:, :, :-1]
        grad_y = (r[:, 1:, :] - r[:, :-1, :]).abs() * m[:, 1:, :] * m[:, :-1, :]
        total = grad_x.sum((1, 2)) + grad_y.sum((1, 2))
        per_image = per_image + total / m.sum((1, 2)).clamp(min=1.0)
    return _batch_mean(per_image, mask.flatten(1).any(1))


def scale_anchor_loss(pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(log s(p))²`` per image, with ``s`` the mean absolute deviation of the prediction
    from its median over the valid pixels (``normalize_median_mad``'s scale).

    The scale-and-shift-invariant terms above leave the magnitude of the network's
    output free, and with an unnormalised decoder (MiDaS's fusion blocks have no
    normalisation) it drifts: seen here, from 1 to ~10⁵ in 150 steps and ~10¹¹ after
    2000, with the coarse levels swamping the skip connections and learning stalling.
    This term holds the output's spread near 1 without moving the minimum of the
    invariant terms, since every affine family ``a·p + b`` has a member with ``s = 1``.
    Zero when ``s = 1``; images with fewer than two valid pixels are left out.
    """
    _, spread = median_and_mad(pred, mask)
    per_image = torch.log(spread.clamp(min=1e-12)) ** 2
    return _batch_mean(per_image, _count(mask, pred.dtype) > 1)


# --- Metric depth ---------------------------------------------------------------------------


def silog_loss(
    pred_depth: torch.Tensor,
    target_depth: torch.Tensor,
    mask: torch.Tensor,
    lam: float = 0.85,
    scale: float = 1.0,
) -> torch.Tensor:
    """Scale-invariant log loss ``scale · sqrt(mean(g²) − λ·mean(g)²)``, ``g = log p − log d``.

    Means are over each image's valid pixels. It is computed as
    ``sqrt(Var(g) + (1 − λ)·mean(g)²)`` (the same value, never negative for
    ``λ ≤ 1``); the square root's gradient at 0 is taken as 0. ``λ`` sets how
    much a global scale error costs: ``pred = c·target`` gives
    ``scale · sqrt(1 − λ) · |log c|``, so ``λ = 1`` is fully scale-invariant (the
    standard deviation of ``g``) and ``λ = 0`` is the RMSE of log depth.

    Variants: Eigen et al. train with ``λ = 0.5`` and no square root; BTS uses
    ``λ = 0.85`` (``variance_focus``) and ``scale = 10``; ZoeDepth writes
    ``10·sqrt(Var(g) + 0.15·mean(g)²)``, which is ``λ = 0.85``, ``scale = 10`` up to
    the unbiased variance; Depth Anything V2 (metric) uses ``λ = 0.5``, ``scale = 1``.
    Those implementations pool all valid pixels of the batch; here each image
    has its own mean, so a scale error in one image is not offset by another.

    Both depths must be positive on the valid pixels.

    Reference: Eigen et al., "Depth Map Prediction from a Single Image using a
    Multi-Scale Deep Network", NeurIPS 2014, eq. 4.
    """
    check_maps(pred_depth, target_depth, mask)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    valid = mask.to(pred_depth.dtype)
    one = torch.ones_like(pred_depth)
    g = torch.where(mask, pred_depth, one).log() - torch.where(mask, target_depth, one).log()
    g = g * valid
    count = valid.sum((1, 2)).clamp(min=1.0)
    g_mean = g.sum((1, 2)) / count
    variance = ((g - g_mean[:, None, None]) * valid).square().sum((1, 2)) / count
    per_image = scale * _safe_sqrt(variance + (1.0 - lam) * g_mean.square())
    return _batch_mean(per_image, mask.flatten(1).any(1))


def rpnl_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    num_crops: int = 32,
    min_frac: float = 0.125,
    max_frac: float = 0.5,
    generator: torch.Generator | None = None,
    whole_image: bool = False,
) -> torch.Tensor:
    """Random proposal normalisation loss (RPNL) of Metric3D v2.

    ``num_crops`` boxes are drawn at random, the same for every image of the batch:
    height ``h`` uniform in ``[⌊min_frac·H⌋, ⌊max_frac·H⌋]`` (at least 1), width
    likewise from ``W``, top-left corner uniform so the box lies inside the image.
    In each box ``c`` both maps are normalised on the valid pixels by
    ``normalize_median_mad`` (median, then mean absolute deviation from it), and::

        L = Σ_c Σ_{i ∈ c} |p̂_i^c − d̂_i^c| / Σ_c M_c

    per image, ``M_c`` being the valid pixels of box ``c``. Local normalisation
    stresses local depth contrast, which a global alignment washes out. Invariant
    to ``pred → a·pred + b`` (``a > 0``). ``whole_image=True`` adds the whole image
    as one more box, as the authors' code does. Boxes are drawn with ``generator``
    (a CPU ``torch.Generator``; None uses torch's global one).

    Reference: Hu et al., "Metric3D v2: A Versatile Monocular Geometric Foundation Model
    for Zero-shot Metric Depth and Surface Normal Estimation", TPAMI 2024.
    """
    check_maps(pred, target, mask)
    if num_crops < 1:
        raise ValueError(f"num_crops must be at least 1, got {num_crops}")
    if not 0.0 < min_frac <= max_frac <= 1.0:
        raise ValueError(
            f"crop fractions must satisfy 0 < min_frac <= max_frac <= 1, got {min_frac}, {max_frac}"
        )
    height, width = pred.shape[1:]
    tops, heights = _random_spans(height, num_crops, min_frac, max_frac, generator)
    lefts, widths = _random_spans(width, num_crops, min_frac, max_frac, generator)
    if whole_image:
        tops, heights, lefts, widths = [*tops, 0], [*heights, height], [*lefts, 0], [*widths, width]
    total = pred.new_zeros(pred.shape[0])
    count = pred.new_zeros(pred.shape[0])
    for y, h, x, w in zip(tops, heights, lefts, widths, strict=True):
        box = (slice(None), slice(y, y + h), slice(x, x + w))
        box_mask = mask[box]
        diff = normalize_median_mad(pred[box], box_mask) - normalize_median_mad(
            target[box], box_mask
        )
        total = total + _masked(diff.abs(), box_mask).sum((1, 2))
        count = count + _count(box_mask, pred.dtype)
    return _batch_mean(total / count.clamp(min=1.0), count > 0)


def virtual_normal_loss(
    pred_depth: torch.Tensor,
    target_depth: torch.Tensor,
    mask: torch.Tensor,
    camera: torch.Tensor,
    num_triplets: int = 10_000,
    min_distance: float = 0.005,
    max_cos: float = 0.867,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Virtual normal loss: normals of random 3-D triangles, predicted against ground truth.

    Both depth maps are back-projected with ``camera`` (``(B, 4)``: fx, fy, cx, cy).
    ``num_triplets`` triplets of valid pixels are drawn per image (uniformly, with
    replacement). A triplet is used only if, in the ground truth, every edge is at
    least ``min_distance`` long (units of ``target_depth``) and every pair of
    edges has ``|cos| ≤ max_cos`` (0.867 ≈ cos 30°, the authors' value: no angle of
    the triangle under 30°), so that the plane through it is well defined. For
    each accepted triangle ``(P1, P2, P3)``::

        n = (P2 − P1) × (P3 − P1) / ‖(P2 − P1) × (P3 − P1)‖
        L = 1/N Σ_triangles ‖n_pred − n_gt‖₁

    Normals are invariant to a global scale of depth, so ``pred = s·target`` gives
    0. The authors' code also drops the 25 % easiest triangles; this does not.

    Reference: Yin et al., "Enforcing geometric constraints of virtual normal for
    depth prediction", ICCV 2019.
    """
    check_maps(pred_depth, target_depth, mask)
    _check_camera(camera, pred_depth)
    if num_triplets < 1:
        raise ValueError(f"num_triplets must be at least 1, got {num_triplets}")
    batch = pred_depth.shape[0]
    pred_points = _backproject(_masked(pred_depth, mask), camera).flatten(1, 2)  # (B, HW, 3)
    target_points = _backproject(_masked(target_depth, mask), camera).flatten(1, 2)
    index, has_pixels = _sample_pixels(mask, 3 * num_triplets, generator)
    index = index[:, :, None].expand(-1, -1, 3)

    def triangles(points: torch.Tensor) -> torch.Tensor:  # (B, N, 3 vertices, 3 coords)
        return points.gather(1, index).reshape(batch, num_triplets, 3, 3)

    gt = triangles(target_points)
    with torch.no_grad():
        edges = torch.stack(
            [gt[:, :, 1] - gt[:, :, 0], gt[:, :, 2] - gt[:, :, 0], gt[:, :, 2] - gt[:, :, 1]], 2
        )
        lengths = edges.norm(dim=-1)  # (B, N, 3)
        unit = edges / lengths.clamp(min=torch.finfo(edges.dtype).tiny)[..., None]
        cosines = torch.stack(
            [
                (unit[:, :, 0] * unit[:, :, 1]).sum(-1),
                (unit[:, :, 0] * unit[:, :, 2]).sum(-1),
                (unit[:, :, 1] * unit[:, :, 2]).sum(-1),
            ],
            -1,
        )
        accept = (lengths >= min_distance).all(-1) & (cosines.abs() <= max_cos).all(-1)
        accept &= has_pixels[:, None]
    pr = triangles(pred_points)
    n_gt = _unit(torch.linalg.cross(gt[:, :, 1] - gt[:, :, 0], gt[:, :, 2] - gt[:, :, 0]))
    n_pred = _unit(torch.linalg.cross(pr[:, :, 1] - pr[:, :, 0], pr[:, :, 2] - pr[:, :, 0]))
    error = (n_pred - n_gt).abs().sum(-1)  # (B, N)
    accepted = accept.sum(1)
    per_image = torch.where(accept, error, 0.0).sum(1) / accepted.clamp(min=1)
    return _batch_mean(per_image, accepted > 0)


def depth_to_normals(
    depth: torch.Tensor, camera: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit surface normals of a depth map by central differences of back-projected points.

    With ``P`` the back-projected points (see the module docstring)::

        n(v, u) = ∂P/∂v × ∂P/∂u,   ∂P/∂u ≈ P(v, u+1) − P(v, u−1),  ∂P/∂v ≈ P(v+1, u) − P(v−1, u)

    normalised to unit length. The order of the cross product makes normals of
    visible surfaces face the camera (``n · P < 0``; a wall ahead has
    ``n = (0, 0, −1)``), as in Metric3D. Exact for planes.

    Args:
        depth: ``(B, H, W)`` depth, ``H, W ≥ 3``.
        camera: ``(B, 4)`` intrinsics ``(fx, fy, cx, cy)`` in pixels.
        mask: ``(B, H, W)`` bool, True where ``depth`` is valid.

    Returns:
        ``normals`` ``(B, 3, H, W)`` (0 where invalid) and ``valid`` ``(B, H, W)`` bool:
        True where the pixel and its four neighbours are valid (so never on the border).
    """
    check_maps(depth, depth, mask)
    _check_camera(camera, depth)
    if depth.shape[1] < 3 or depth.shape[2] < 3:
        raise ValueError(f"normals need maps of at least 3×3 pixels, got {tuple(depth.shape)}")
    points = _backproject(_masked(depth, mask), camera)  # (B, H, W, 3)
    d_u = points[:, 1:-1, 2:] - points[:, 1:-1, :-2]
    d_v = points[:, 2:, 1:-1] - points[:, :-2, 1:-1]
    normals = torch.linalg.cross(d_v, d_u)
    valid = (
        mask[:, 1:-1, 1:-1]
        & mask[:, 1:-1, 2:]
        & mask[:, 1:-1, :-2]
        & mask[:, 2:, 1:-1]
        & mask[:, :-2, 1:-1]
        & (normals.square().sum(-1) > 0)
    )
    normals = torch.where(valid[..., None], _unit(normals), 0.0)
    normals = F.pad(normals.permute(0, 3, 1, 2), (1, 1, 1, 1))
    return normals, F.pad(valid, (1, 1, 1, 1))


def pairwise_normal_loss(
    pred_depth: torch.Tensor,
    target_normals: torch.Tensor,
    mask: torch.Tensor,
    camera: torch.Tensor,
    num_pairs: int = 10_000,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pairwise normal regression: relative angles of normals at random pixel pairs.

    Normals ``n̂`` come from ``pred_depth`` by ``depth_to_normals``; ``n*`` are the
    ground-truth unit normals ``target_normals`` ``(B, 3, H, W)`` in the camera
    frame. ``num_pairs`` pairs ``(a, b)`` are drawn per image, uniformly with
    replacement among the pixels where both normals are valid, and::

        L = 1/N Σ_pairs |n̂_a · n̂_b − n*_a · n*_b|

    The loss compares the angle between two surfaces rather than each normal's
    direction, so it does not depend on the sign convention of ``target_normals``
    (towards or away from the camera) and it is 0 for a plane whatever its
    orientation; pair it with a per-pixel term such as ``1 − n̂ · n*`` when
    absolute orientation matters. Metric3D v2 samples the pairs along image
    edges (and compares ``n̂_a · n̂_b`` with 1 in its code); uniform sampling and
    the ground-truth dot product follow the loss's definition in LeReS (Yin et
    al., CVPR 2021).

    Reference: Hu et al., "Metric3D v2: A Versatile Monocular Geometric Foundation Model
    for Zero-shot Metric Depth and Surface Normal Estimation", TPAMI 2024.
    """
    check_maps(pred_depth, pred_depth, mask)
    batch, height, width = pred_depth.shape
    if target_normals.shape != (batch, 3, height, width):
        raise ValueError(
            f"target_normals must be (B, 3, H, W) = {(batch, 3, height, width)}, "
            f"got {tuple(target_normals.shape)}"
        )
    if num_pairs < 1:
        raise ValueError(f"num_pairs must be at least 1, got {num_pairs}")
    pred_normals, valid = depth_to_normals(pred_depth, camera, mask)
    target_normals = torch.where(valid[:, None], target_normals, 0.0)
    index, has_pixels = _sample_pixels(valid, 2 * num_pairs, generator)
    index = index[:, None, :].expand(-1, 3, -1)
    pred_samples = pred_normals.flatten(2).gather(2, index)  # (B, 3, 2N)
    target_samples = target_normals.flatten(2).gather(2, index)
    pred_cos = (pred_samples[:, :, :num_pairs] * pred_samples[:, :, num_pairs:]).sum(1)
    target_cos = (target_samples[:, :, :num_pairs] * target_samples[:, :, num_pairs:]).sum(1)
    per_image = (pred_cos - target_cos).abs().mean(1)
    return _batch_mean(per_image, has_pixels)


# --- Depth Anything -------------------------------------------------------------------------


def feature_alignment_loss(
    student: torch.Tensor, teacher: torch.Tensor, alpha: float = 0.85
) -> torch.Tensor:
    """Depth Anything's feature alignment to a frozen encoder, with a tolerance margin.

    With ``c_i = cos(f_i, f'_i)`` the cosine similarity of the student's and the
    frozen teacher's (DINOv2's) feature vectors at pixel ``i`` of an image::

        L = 1/|S| Σ_{i ∈ S} (1 − c_i),     S = {i : c_i ≤ α}

    i.e. ``1 − mean(cos)`` over the pixels whose similarity has not yet passed the
    margin ``α`` (0.85 in the paper); pixels above it are left out, so the
    student is free to keep depth-specific features there. The paper states that
    those pixels are "not considered"; this averages over the remaining ones
    rather than over all ``h·w``. ``teacher`` is detached (it is frozen).

    Args:
        student: ``(B, C, h, w)`` features of the depth model's encoder.
        teacher: ``(B, C, h, w)`` features of the frozen encoder.
        alpha: the tolerance margin on the cosine similarity, in ``(−1, 1]``.

    Reference: Yang et al., "Depth Anything: Unleashing the Power of Large-Scale
    Unlabeled Data", CVPR 2024, sec. 3.3.
    """
    if student.ndim != 4 or student.shape != teacher.shape:
        raise ValueError(
            f"features must be two (B, C, h, w) tensors of one shape, got "
            f"{tuple(student.shape)} and {tuple(teacher.shape)}"
        )
    if not -1.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (-1, 1], got {alpha}")
    cos = F.cosine_similarity(student, teacher.detach(), dim=1)  # (B, h, w)
    keep = cos <= alpha
    kept = keep.sum((1, 2))
    per_image = torch.where(keep, 1.0 - cos, 0.0).sum((1, 2)) / kept.clamp(min=1)
    return _batch_mean(per_image, kept > 0)


# --- helpers -------------------------------------------------------------------------------


def _batch_mean(per_image: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_image`` over the images where ``counts`` is True; 0 (in the graph) if none."""
    total = torch.where(counts, per_image, 0.0).sum()
    return total / counts.sum().clamp(min=1)


def _count(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Valid pixels per image as ``dtype`` floats, ``(B, H, W) -> (B,)``."""
    return mask.flatten(1).sum(1).to(dtype)


def _masked(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` with masked-out pixels set to 0, so NaN or inf there reaches no sum or gradient."""
    return torch.where(mask, x, torch.zeros_like(x))


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(max(x, 0))`` whose gradient at 0 is 0 instead of inf."""
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, 1.0).sqrt(), 0.0)


def _unit(v: torch.Tensor) -> torch.Tensor:
    """``v / ‖v‖`` along the last axis; zero vectors stay zero, with zero gradient."""
    squared = v.square().sum(-1, keepdim=True)
    nonzero = squared > 0
    return torch.where(nonzero, v / torch.where(nonzero, squared, 1.0).sqrt(), 0.0)


def _backproject(depth: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
    """Camera-frame points ``(B, H, W, 3)`` of a ``(B, H, W)`` depth map (pixel centres at +0.5)."""
    _, height, width = depth.shape
    fx, fy, cx, cy = (c[:, None, None] for c in camera.to(depth.dtype).unbind(-1))
    u = torch.arange(width, dtype=depth.dtype, device=depth.device)[None, None, :] + 0.5
    v = torch.arange(height, dtype=depth.dtype, device=depth.device)[None, :, None] + 0.5
    return torch.stack([(u - cx) / fx * depth, (v - cy) / fy * depth, depth], dim=-1)


def _sample_pixels(
    mask: torch.Tensor, num: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``num`` flat indices per image drawn uniformly, with replacement, from the valid pixels.

    Returns the indices ``(B, num)`` and ``(B,)`` bool telling which images had a
    valid pixel (the others get arbitrary indices, to be ignored).
    """
    weights = mask.flatten(1).to(torch.float32).cpu()
    has_pixels = weights.sum(1) > 0
    weights[~has_pixels] = 1.0
    index = torch.multinomial(weights, num, replacement=True, generator=generator)
    return index.to(mask.device), has_pixels.to(mask.device)


def _random_spans(
    size: int, num: int, min_frac: float, max_frac: float, generator: torch.Generator | None
) -> tuple[list[int], list[int]]:
    """``num`` random ``(start, length)`` spans inside ``[0, size)``, lengths in the fractions."""
    low = max(1, math.floor(min_frac * size))
    high = max(low, math.floor(max_frac * size))
    lengths = torch.randint(low, high + 1, (num,), generator=generator)
    starts = torch.rand(num, generator=generator, dtype=torch.float64) * (size - lengths + 1)
    return starts.floor().long().tolist(), lengths.tolist()


def _check_camera(camera: torch.Tensor, depth: torch.Tensor) -> None:
    """Raise ValueError unless ``camera`` is ``(B, 4)`` floats with positive focal lengths."""
    if camera.shape != (depth.shape[0], 4) or not camera.is_floating_point():
        raise ValueError(
            f"camera must be a (B, 4) float tensor of (fx, fy, cx, cy) with B = "
            f"{depth.shape[0]}, got {tuple(camera.shape)} {camera.dtype}"
        )
    if not bool((camera[:, :2] > 0).all()):
        raise ValueError("camera focal lengths fx and fy must be positive")
