"""Video depth: accuracy after whole-video alignment, and temporal consistency.

Three pieces, each a pure function of arrays:

``align_video_disparity``
    The alignment of the Video Depth Anything benchmark (VDA): ONE scale ``s`` and
    shift ``t`` for the whole clip, fitted by least squares in disparity space over the
    valid pixels of every frame together, never per frame. With ``p`` the predicted
    disparity and ``g`` the ground-truth depth (T frames of H × W)::

        valid  = (g > 1e-3) & (g < max_depth)
        p'     = max(p, 1e-3)
        (s, t) = argmin Σ_valid (s·p' + t − 1/(g + 1e-8))²
        d      = clip(1 / max(s·p' + t, 1e-3), 1e-3, max_depth)

    A per-frame scale or shift drift of the prediction therefore stays in ``d`` and
    costs accuracy, which is what a video benchmark wants to see.

``video_depth_metrics``
    AbsRel = mean_valid |d − g| / g and δ1 = mean_valid [max(d/g, g/d) < 1.25], each
    per frame over its valid pixels, then averaged over the frames that have any
    (VDA: ``benchmark/eval/metric.py::abs_relative_difference``, ``::delta1_acc``).

``temporal_alignment_error``
    VDA's TAE (``benchmark/eval/eval_tae.py::eval_TAE``, ``::tae_torch``): for each pair
    of consecutive frames (i, i+1) the aligned depth of frame i is back-projected with
    the intrinsics, moved into frame i+1 by the relative pose
    ``T_{i+1←i} = T_{i+1}⁻¹ · T_i`` (poses camera-to-world), projected, rounded to a
    pixel, and compared with frame i+1's own depth there by AbsRel (the target frame's
    depth in the denominator); then the same from i+1 back to i. With ``e(a→b)`` that
    AbsRel over the pixels hit by a projection with positive depth where frame b's depth
    is positive (and its optional mask is True)::

        TAE = 100 · Σ_{i=0}^{T−2} (e(i→i+1) + e(i+1→i)) / (2·(T − 1))

    in percent, as VDA prints it (its paper's TAE column). The ground truth enters
    only through the alignment; TAE itself compares the prediction with itself.

``static_flicker``
    A simpler measure for a static camera (no poses needed): for each valid pixel the
    temporal coefficient of variation of its aligned depth, then the mean over pixels::

        flicker = mean_px ( std_t d_t(px) / mean_t d_t(px) )        (std with ddof 0)

    0 for a steady video; a video whose frames are ``k_t · d`` of one depth map has
    exactly ``std(k) / mean(k)``. This is not a VDA metric; on a moving camera it
    measures the motion too, so use TAE there. (``depthlens.video.flicker`` is a third,
    different measure: consecutive-frame change of unaligned values over their spread.)

Conventions that differ from VDA's code (facts learned from DepthAnything/
Video-Depth-Anything ``benchmark/eval/``, read in the fork zhizunhu/Video-Depth-Anything
at commit 5501466; nothing copied):

- Pixel centres: depthlens cameras put pixel (u, v)'s centre at (u + 0.5, v + 0.5)
  (``depthlens.geometry.camera.Camera``); VDA's code at (u, v). Rounding VDA's projected
  coordinate to the nearest integer is flooring ours, which is what is done here; a
  dataset ``K`` in VDA's convention becomes a ``Camera`` with ``cx + 0.5``, ``cy + 0.5``.
- Where several points land on one pixel, the nearest one is kept (a z-buffer). VDA
  writes them in an unspecified order and keeps whichever came last.
- Like VDA, a pair direction with no comparable pixel counts an error of 0 (and still
  counts in the ``2·(T − 1)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from depthlens.errors import UsageError
from depthlens.geometry.camera import Camera

__all__ = [
    "DELTA1_THRESHOLD",
    "VideoAlignment",
    "align_video_disparity",
    "relative_pose",
    "static_flicker",
    "temporal_alignment_error",
    "video_depth_metrics",
]

#: VDA's floors: the smallest valid ground truth, prediction and aligned disparity.
_EPS = 1e-3
#: VDA adds this to the ground truth before inverting it for the fit.
_GT_EPS = 1e-8
DELTA1_THRESHOLD = 1.25


@dataclass(frozen=True)
class VideoAlignment:
    """The result of ``align_video_disparity``.

    ``depth`` (T, H, W) float64 aligned depth in the ground truth's units, clipped to
    [1e-3, max_depth]; ``valid`` (T, H, W) bool, the evaluation mask; ``scale`` and
    ``shift`` the one fit for the whole video.
    """

    depth: np.ndarray
    valid: np.ndarray
    scale: float
    shift: float


def _video(array: npt.ArrayLike | Sequence[np.ndarray], name: str) -> np.ndarray:
    video = np.asarray(array, dtype=np.float64)
    if video.ndim != 3 or min(video.shape) < 1:
        raise UsageError(f"{name} must be T frames of H × W, got shape {video.shape}.")
    return video


def align_video_disparity(
    pred_disparity: npt.ArrayLike | Sequence[np.ndarray],
    gt_depth: npt.ArrayLike | Sequence[np.ndarray],
    max_depth: float,
) -> VideoAlignment:
    """Fit one scale and shift of ``pred_disparity`` to 1/``gt_depth`` over the whole video.

    Both are (T, H, W); see the module docstring for the formula (VDA's
    ``eval_depthcrafter``). ``max_depth`` is the benchmark's cap (KITTI 80, Sintel 70,
    NYU/Bonn/ScanNet 10). Ground-truth pixels that are not finite count as invalid.
    A prediction that is not finite at a valid pixel, or that is constant there, is
    a usage error.
    """
    pred = _video(pred_disparity, "The predicted disparity")
    gt = _video(gt_depth, "The ground-truth depth")
    if pred.shape != gt.shape:
        raise UsageError(f"Prediction {pred.shape} and ground truth {gt.shape} differ in shape.")
    if not (math.isfinite(max_depth) and max_depth > _EPS):
        raise UsageError(f"The maximum depth must be above {_EPS}, not {max_depth}.")
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(gt) & (gt > _EPS) & (gt < max_depth)
    if not valid.any():
        raise UsageError("No ground-truth pixel lies inside the evaluated depth range.")
    if not np.isfinite(pred[valid]).all():
        raise UsageError("The prediction is not finite at some valid pixels.")
    p = np.maximum(pred, _EPS)
    x = p[valid]
    y = 1.0 / (gt[valid] + _GT_EPS)
    # Least squares of y on [x, 1] through its normal equations (centred, float64).
    x_mean, y_mean = float(x.mean()), float(y.mean())
    var = float(np.mean((x - x_mean) ** 2))
    if not var > 0:
        raise UsageError(
            "The prediction is constant over the valid pixels, so it cannot be aligned."
        )
    scale = float(np.mean((x - x_mean) * (y - y_mean))) / var
    shift = y_mean - scale * x_mean
    aligned = np.maximum(scale * p + shift, _EPS)
    depth = np.clip(1.0 / aligned, _EPS, max_depth)
    return VideoAlignment(depth=depth, valid=valid, scale=scale, shift=shift)


def video_depth_metrics(
    depth: npt.ArrayLike | Sequence[np.ndarray],
    gt_depth: npt.ArrayLike | Sequence[np.ndarray],
    valid: npt.ArrayLike | Sequence[np.ndarray],
) -> dict[str, float]:
    """``abs_rel`` and ``delta1`` (per frame, then the mean over frames with a valid pixel).

    ``depth`` is the aligned (T, H, W) depth (``VideoAlignment.depth``), ``gt_depth``
    the ground truth and ``valid`` the bool mask; only valid pixels are read, and
    there both depths must be positive. Also returns ``"frames"``, how many frames
    were averaged.
    """
    d = _video(depth, "The depth")
    g = _video(gt_depth, "The ground-truth depth")
    mask = np.asarray(valid)
    if mask.dtype != np.bool_ or d.shape != g.shape or mask.shape != d.shape:
        raise UsageError("Depth, ground truth and a bool mask of the same (T, H, W) are needed.")
    abs_rel, delta1 = [], []
    for frame_d, frame_g, frame_m in zip(d, g, mask, strict=True):
        a, b = frame_d[frame_m], frame_g[frame_m]
        if a.size == 0:
            continue
        if not ((a > 0).all() and (b > 0).all()):
            raise UsageError("Depths must be positive on the valid pixels.")
        abs_rel.append(float(np.mean(np.abs(a - b) / b)))
        delta1.append(float(np.mean(np.maximum(a / b, b / a) < DELTA1_THRESHOLD)))
    if not abs_rel:
        raise UsageError("No frame has a valid pixel to score.")
    return {
        "abs_rel": float(np.mean(abs_rel)),
        "delta1": float(np.mean(delta1)),
        "frames": float(len(abs_rel)),
    }


def relative_pose(pose_from: npt.ArrayLike, pose_to: npt.ArrayLike) -> np.ndarray:
    """The 4 × 4 transform from camera ``pose_from``'s frame to ``pose_to``'s.

    Poses are 4 × 4 camera-to-world matrices; the result is ``pose_to⁻¹ · pose_from``.
    """
    a = np.asarray(pose_from, dtype=np.float64)
    b = np.asarray(pose_to, dtype=np.float64)
    if a.shape != (4, 4) or b.shape != (4, 4):
        raise UsageError(f"Poses must be 4 × 4 matrices, got {a.shape} and {b.shape}.")
    return np.asarray(np.linalg.inv(b) @ a)


def _reprojection_abs_rel(
    source: np.ndarray,
    target: np.ndarray,
    transform: np.ndarray,
    camera: Camera,
    target_mask: np.ndarray | None,
) -> float:
    """AbsRel of ``source`` moved into ``target``'s view against ``target`` (0 if no pixel)."""
    height, width = source.shape
    rows, cols = np.nonzero(source > 0)
    z = source[rows, cols]
    x = (cols + 0.5 - camera.cx) / camera.fx * z
    y = (rows + 0.5 - camera.cy) / camera.fy * z
    points = transform[:3, :3] @ np.stack([x, y, z]) + transform[:3, 3:4]
    zt = points[2]
    ahead = zt > 0
    points, zt = points[:, ahead], zt[ahead]
    u = np.floor(points[0] / zt * camera.fx + camera.cx)
    v = np.floor(points[1] / zt * camera.fy + camera.cy)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    u, v, zt = u[inside].astype(np.int64), v[inside].astype(np.int64), zt[inside]
    projected = np.full(height * width, np.inf)
    np.minimum.at(projected, v * width + u, zt)  # z-buffer: the nearest point wins
    projected = projected.reshape(height, width)
    compare = np.isfinite(projected) & (target > 0)
    if target_mask is not None:
        compare &= target_mask
    if not compare.any():
        return 0.0
    return float(np.mean(np.abs(target[compare] - projected[compare]) / target[compare]))


def temporal_alignment_error(
    depth: npt.ArrayLike | Sequence[np.ndarray],
    poses: npt.ArrayLike | Sequence[np.ndarray],
    camera: Camera,
    mask: npt.ArrayLike | Sequence[np.ndarray] | None = None,
) -> float:
    """VDA's TAE, in percent, of a (T, H, W) aligned depth video (formula: module docstring).

    ``poses`` are T camera-to-world 4 × 4 matrices in the depth's units; ``camera`` the
    intrinsics at the depth's size (depthlens pixel-centre convention); ``mask``
    optional (T, H, W) bool of the pixels a projection may be compared at (VDA's
    ``--mask``). Pixels of depth ≤ 0 are neither projected nor compared.
    """
    d = _video(depth, "The depth")
    frames, height, width = d.shape
    pose_array = np.asarray(poses, dtype=np.float64)
    if pose_array.shape != (frames, 4, 4):
        raise UsageError(f"Need one 4 × 4 pose per frame ({frames}), got {pose_array.shape}.")
    if (camera.width, camera.height) != (width, height):
        raise UsageError(
            f"The camera is {camera.width}×{camera.height} but the depth is {width}×{height}."
        )
    if not np.isfinite(d).all():
        raise UsageError("The depth video has values that are not finite.")
    masks = None
    if mask is not None:
        masks = np.asarray(mask)
        if masks.dtype != np.bool_ or masks.shape != d.shape:
            raise UsageError("The mask must be bool with the depth's (T, H, W) shape.")
    if frames < 2:
        raise UsageError("The temporal alignment error needs at least two frames.")
    total = 0.0
    for i in range(frames - 1):
        forward = relative_pose(pose_array[i], pose_array[i + 1])
        backward = np.linalg.inv(forward)
        m_next = None if masks is None else masks[i + 1]
        m_this = None if masks is None else masks[i]
        total += _reprojection_abs_rel(d[i], d[i + 1], forward, camera, m_next)
        total += _reprojection_abs_rel(d[i + 1], d[i], backward, camera, m_this)
    return 100.0 * total / (2 * (frames - 1))


def static_flicker(
    depth: npt.ArrayLike | Sequence[np.ndarray],
    valid: npt.ArrayLike | Sequence[np.ndarray] | None = None,
) -> float:
    """Mean over pixels of the temporal std / temporal mean of a static camera's depth.

    ``depth`` (T, H, W), positive on the pixels used; ``valid`` optional (T, H, W) or
    (H, W) bool: a pixel is used when it is valid in every frame (default: where the
    depth is finite and positive in every frame). Formula in the module docstring.
    """
    d = _video(depth, "The depth")
    if d.shape[0] < 2:
        raise UsageError("Flicker needs at least two frames.")
    with np.errstate(invalid="ignore"):
        use = (np.isfinite(d) & (d > 0)).all(axis=0)
    if valid is not None:
        m = np.asarray(valid)
        if m.dtype != np.bool_ or m.shape not in (d.shape, d.shape[1:]):
            raise UsageError("The mask must be bool of the depth's (T, H, W) or (H, W) shape.")
        use &= m.all(axis=0) if m.ndim == 3 else m
    if not use.any():
        raise UsageError("No pixel is valid in every frame.")
    series = d[:, use]
    return float(np.mean(series.std(axis=0) / series.mean(axis=0)))
