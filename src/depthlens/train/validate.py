"""Affine-invariant validation of relative depth: AbsRel and δ1 after a disparity fit.

Training validation scores with the evaluation harness itself
(``eval.protocol.score_prediction``), so a validation number and a ``depthlens eval``
number on the same images are the same number. The protocol is the MiDaS one (Ranftl
et al., TPAMI 2022, sec. 6) with the RGB-D folder caps (``PROTOCOLS["folder"]``, the
cap overridable): the predicted relative inverse depth is aligned to ``1 / gt`` by
least squares in disparity space on the valid pixels, capped at ``max_depth``, inverted
and compared with the ground truth in depth space::

    AbsRel = mean |d − d*| / d*,     δ1 = mean [max(d / d*, d* / d) < 1.25]

per image, then averaged over the images that have a valid pixel.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np
from torch import nn

from depthlens.eval.metrics import aggregate
from depthlens.eval.protocol import protocol_for, score_prediction
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
    pred_disparity: np.ndarray,
    gt_depth: np.ndarray,
    valid: np.ndarray,
    max_depth: float = 80.0,
) -> dict[str, float] | None:
    """AbsRel and δ1 of one relative inverse depth map against (H, W) metric depth.

    ``valid`` marks the ground-truth pixels to use; of those, pixels outside the RGB-D
    folder protocol's ``(min_depth, max_depth)`` are dropped too. A prediction of
    another size is resized to the ground truth's, as ``depthlens eval`` does. Returns
    ``{"abs_rel": ..., "delta1": ...}``, or None when the image has no valid pixel.
    """
    protocol = protocol_for("folder", max_depth=max_depth)
    metrics = score_prediction(
        np.asarray(pred_disparity, dtype=np.float64),
        np.asarray(gt_depth, dtype=np.float64),
        np.asarray(valid, dtype=bool),
        protocol,
        "depth_from_disparity",
    )
    if metrics is None:
        return None
    return {"abs_rel": metrics["abs_rel"], "delta1": metrics["delta1"]}


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
    return aggregate(per_image)
