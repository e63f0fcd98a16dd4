"""Affine-invariant validation of relative depth: AbsRel and δ1 after a disparity fit.

The MiDaS protocol (Ranftl et al., TPAMI 2022, sec. 6): the predicted relative inverse
depth is aligned to ``1 / gt`` by least squares in disparity space on the valid
pixels (``geometry.align.align_disparity_to_depth``), capped at ``max_depth``, and
compared with the ground truth in depth space::

    AbsRel = mean |d − d*| / d*,     δ1 = mean [max(d / d*, d* / d) < 1.25]

per image, then averaged over the images that have a valid pixel.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np
import torch
from torch import nn

from depthlens.geometry.align import align_disparity_to_depth
from depthlens.io.images import Image
from depthlens.models.estimator import Estimator
from depthlens.models.registry import MODELS

__all__ = ["affine_invariant_metrics", "evaluate_relative", "training_spec_estimator"]


class DepthItem(Protocol):
    """What validation needs of an item: a synthetic sample or an RGB-D folder item."""

    @property
    def rgb(self) -> np.ndarray: ...  # (H, W, 3) uint8
    @property
    def depth(self) -> np.ndarray: ...  # (H, W) float32 meters, 0 = invalid
    @property
    def valid(self) -> np.ndarray: ...  # (H, W) bool


def affine_invariant_metrics(
    pred_disparity: np.ndarray | torch.Tensor,
    gt_depth: np.ndarray | torch.Tensor,
    valid: np.ndarray | torch.Tensor,
    max_depth: float = 80.0,
) -> dict[str, float] | None:
    """AbsRel and δ1 of one (H, W) relative inverse depth map against (H, W) metric depth.

    ``valid`` marks the ground-truth pixels to use; pixels whose depth is not in
    ``(0, max_depth]`` are dropped too, as the evaluation protocols of MiDaS and
    Depth Anything do. Returns ``{"abs_rel": ..., "delta1": ...}``, or None when the image
    has no valid pixel.
    """
    pred = torch.as_tensor(pred_disparity, dtype=torch.float64)
    gt = torch.as_tensor(gt_depth, dtype=torch.float64)
    mask = torch.as_tensor(valid, dtype=torch.bool) & torch.isfinite(gt) & (gt > 0)
    mask &= (gt <= max_depth) & torch.isfinite(pred)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(
            f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} "
            "must be the same (H, W)"
        )
    if not bool(mask.any()):
        return None
    safe_pred = torch.where(mask, pred, torch.zeros_like(pred))
    aligned = align_disparity_to_depth(safe_pred[None], gt[None], mask[None], max_depth)[0]
    d, d_star = aligned[mask], gt[mask]
    abs_rel = ((d - d_star).abs() / d_star).mean()
    delta1 = (torch.maximum(d / d_star, d_star / d) < 1.25).double().mean()
    return {"abs_rel": float(abs_rel), "delta1": float(delta1)}


def training_spec_estimator(network: nn.Module, input_size: int = 256) -> Estimator:
    """An Estimator for a network being trained: a copy of it in eval mode on the CPU,
    with the ``depthlens-small`` zoo row's pre- and post-processing at ``input_size``.

    The copy leaves the training network's mode, memory format and device untouched.
    """
    spec = MODELS["depthlens-small"]
    policy = dataclasses.replace(spec.input, size=(input_size, input_size))
    spec = dataclasses.replace(spec, input=policy)
    network = copy.deepcopy(network).float().cpu()
    return Estimator(spec, network, "cpu", weights="<training>")


def evaluate_relative(
    model: Estimator | nn.Module,
    items: Sequence[DepthItem],
    max_depth: float = 80.0,
    input_size: int = 256,
    batch_size: int = 4,
    output: Literal["disparity", "depth"] = "disparity",
) -> dict[str, float]:
    """Mean affine-invariant AbsRel and δ1 of ``model`` over ``items``.

    ``model`` is an :class:`Estimator` (any zoo model of kind ``relative_inverse``) or a
    MiDaS-small network (wrapped by :func:`training_spec_estimator`). Predictions go
    through ``Estimator.predict_images``, the one inference path. Returns
    ``{"abs_rel", "delta1", "n"}`` with ``n`` the number of images with a valid pixel
    (NaN metrics when ``n == 0``). ``output="depth"`` is for networks trained for metric
    depth: their output is inverted before the fit, so the metrics judge its shape.
    """
    estimator = (
        model if isinstance(model, Estimator) else training_spec_estimator(model, input_size)
    )
    if estimator.kind != "relative_inverse":
        raise ValueError(f"{estimator.name} predicts {estimator.kind} depth, not relative")
    images = [Image(rgb=item.rgb, camera=None, source=f"item {i}") for i, item in enumerate(items)]
    results = estimator.predict_images(images, batch_size)
    per_image = []
    for item, result in zip(items, results, strict=True):
        prediction = result.depth
        if output == "depth":
            prediction = 1.0 / np.maximum(prediction, 1e-6)
        metrics = affine_invariant_metrics(prediction, item.depth, item.valid, max_depth)
        if metrics is not None:
            per_image.append(metrics)
    if not per_image:
        return {"abs_rel": float("nan"), "delta1": float("nan"), "n": 0}
    return {
        "abs_rel": float(np.mean([m["abs_rel"] for m in per_image])),
        "delta1": float(np.mean([m["delta1"] for m in per_image])),
        "n": len(per_image),
    }
