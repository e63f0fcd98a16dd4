"""Evaluation protocols: depth caps, crops, resizing and alignment of predictions.

A protocol turns one prediction and one ground-truth map into the two arrays the
metrics compare (``eval/metrics.py``), on the pixels the protocol counts:

1. the prediction is resized to the ground truth's size (bilinear, align_corners
   False, as the MiDaS/DPT evaluation code does);
2. the mask keeps valid ground truth strictly inside ``(min_depth, max_depth)`` (the
   ZoeDepth/BTS rule) and inside the dataset's crop (Eigen for NYU, Garg or Eigen for
   KITTI);
3. the prediction is aligned according to what it is:

   ``depth_from_disparity``  relative inverse depth (MiDaS, DPT, Depth Anything,
                             depthlens-small): least-squares scale and shift against
                             ``1 / gt`` in disparity space, aligned disparity capped at
                             ``1 / max_depth``, inverted; metrics in depth space. The
                             MiDaS/DPT protocol (gists ranftlr/a1c7a24e… and 45f4c7dd…,
                             linked from isl-org/DPT: EVALUATION.md).
   ``disparity``             the same fit, metrics computed on the aligned disparity
                             against ``1 / gt`` (what the Depth Anything authors report,
                             LiheYoung/Depth-Anything issue #174).
   ``median``                scale only: ``pred · median(gt) / median(pred)`` on the mask
                             (self-supervised models, Metric3D's second variant).
   ``none``                  metric depth as predicted, clipped to the caps
                             (isl-org/ZoeDepth: zoedepth/utils/misc.py::compute_metrics).

The caps and crops per dataset come from isl-org/ZoeDepth: zoedepth/utils/config.py,
cleinc/bts: utils/eval_with_pngs.py and prs-eth/Marigold's dataset configs, as cited at
each entry of ``PROTOCOLS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from depthlens.eval.datasets.base import EvalItem
from depthlens.eval.metrics import SilogVariant, depth_metrics
from depthlens.geometry.align import align_disparity_to_depth, fit_scale_shift, median_scale

Alignment = Literal["depth_from_disparity", "disparity", "median", "none"]
Crop = Literal["eigen_nyu", "garg", "eigen_kitti"]
ALIGNMENTS: tuple[Alignment, ...] = ("depth_from_disparity", "disparity", "median", "none")
CROPS: tuple[Crop, ...] = ("eigen_nyu", "garg", "eigen_kitti")

# (height, width) of the KITTI benchmark crop, at the bottom centre of the frame
# (cleinc/bts: bts_dataloader.py and isl-org/ZoeDepth: data/data_mono.py, do_kb_crop).
KB_CROP_SIZE = (352, 1216)

# Aligned disparities are kept at or above this where the protocol has no finite depth
# cap (ETH3D): Marigold's and Video-Depth-Anything's floor for the disparity fit.
MIN_ALIGNED_DISPARITY = 1e-3


@dataclass(frozen=True)
class DatasetProtocol:
    """What counts as valid ground truth for one benchmark, and where."""

    min_depth: float
    max_depth: float
    crop: Crop | None = None
    # The KITTI benchmark crop: image and ground truth cut to KB_CROP_SIZE before the
    # prediction, as BTS and ZoeDepth do for KITTI (``do_kb_crop``); ``crop`` then
    # applies to the cut frame.
    kb_crop: bool = False

    @property
    def disparity_floor(self) -> float:
        """The smallest aligned disparity: ``1 / max_depth``, or a fixed floor without a cap."""
        return 1.0 / self.max_depth if math.isfinite(self.max_depth) else MIN_ALIGNED_DISPARITY


@dataclass(frozen=True)
class ScoringRecipe:
    """How one paper's evaluation code scores a prediction, beyond the dataset's caps:
    the alignment, the SILog variant and the fewest pixels an image must count."""

    alignment: Alignment
    silog: SilogVariant
    min_pixels: int
    source: str


RECIPES: dict[str, ScoringRecipe] = {
    "midas": ScoringRecipe(
        "depth_from_disparity", "zoedepth", 1, "MiDaS/DPT evaluation gists (isl-org/DPT)"
    ),
    "depth_anything": ScoringRecipe(
        "disparity",
        "depth_anything",
        10,  # Depth-Anything-V2 metric_depth/train.py skips images with fewer than 10
        "LiheYoung/Depth-Anything issue #174; Depth-Anything-V2 metric_depth/util/metric.py",
    ),
    "zoedepth": ScoringRecipe("none", "zoedepth", 1, "isl-org/ZoeDepth: utils/misc.py"),
    "metric3d": ScoringRecipe("none", "metric3d", 1, "YvanYin/Metric3D: mono/utils/avg_meter.py"),
}


PROTOCOLS: dict[str, DatasetProtocol] = {
    # NYU: 1e-3..10 m, Eigen crop (ZoeDepth config, BTS --eigen_crop, MiDaS NYU gist cap 10).
    "nyu": DatasetProtocol(1e-3, 10.0, "eigen_nyu"),
    # KITTI Eigen split: 1e-3..80 m, Garg crop (ZoeDepth, BTS; Metric3D and Marigold use Eigen).
    "kitti": DatasetProtocol(1e-3, 80.0, "garg"),
    # DIODE val: Marigold's (0.6, 350) plus the dataset's own mask.
    "diode": DatasetProtocol(0.6, 350.0),
    # ETH3D: Marigold's (1e-5, inf).
    "eth3d": DatasetProtocol(1e-5, math.inf),
    # Sintel: Video-Depth-Anything's 0.1..70 m (the papers' own cap is not published).
    "sintel": DatasetProtocol(0.1, 70.0),
    # depthlens RGB-D folders (synthetic scenes): the training validation's 80 m cap.
    "folder": DatasetProtocol(1e-3, 80.0),
}


def protocol_for(
    dataset: str,
    crop: Crop | Literal["default"] | None = "default",
    max_depth: float | None = None,
    min_depth: float | None = None,
    kb_crop: bool | None = None,
) -> DatasetProtocol:
    """The protocol of a dataset kind, with any of its settings overridden."""
    if dataset not in PROTOCOLS:
        raise ValueError(f"unknown dataset kind {dataset!r}; known: {', '.join(PROTOCOLS)}")
    protocol = PROTOCOLS[dataset]
    if crop != "default":
        if crop is not None and crop not in CROPS:
            raise ValueError(f"unknown crop {crop!r}; known: {', '.join(CROPS)}")
        protocol = replace(protocol, crop=crop)
    if max_depth is not None:
        protocol = replace(protocol, max_depth=max_depth)
    if min_depth is not None:
        protocol = replace(protocol, min_depth=min_depth)
    if kb_crop is not None:
        protocol = replace(protocol, kb_crop=kb_crop)
    if not 0.0 <= protocol.min_depth < protocol.max_depth:
        raise ValueError(
            f"depth range ({protocol.min_depth}, {protocol.max_depth}) must be increasing"
        )
    return protocol


def kb_crop_item(item: EvalItem) -> EvalItem:
    """``item`` cut to the KITTI benchmark crop: KB_CROP_SIZE at the bottom centre (top
    ``H − 352``, left ``(W − 1216) // 2``), its principal point moved with it."""
    height, width = item.depth.shape
    crop_height, crop_width = KB_CROP_SIZE
    if height < crop_height or width < crop_width:
        raise ValueError(
            f"{item.name}: the KITTI benchmark crop needs a frame of at least "
            f"{crop_height}x{crop_width}, got {height}x{width}"
        )
    top, left = height - crop_height, (width - crop_width) // 2
    rows, cols = slice(top, top + crop_height), slice(left, left + crop_width)
    intrinsics = None
    if item.intrinsics is not None:
        fx, fy, cx, cy = item.intrinsics
        intrinsics = (fx, fy, cx - left, cy - top)
    return EvalItem(
        item.name,
        np.ascontiguousarray(item.rgb[rows, cols]),
        np.ascontiguousarray(item.depth[rows, cols]),
        np.ascontiguousarray(item.valid[rows, cols]),
        intrinsics,
    )


def crop_mask(height: int, width: int, crop: Crop | None) -> np.ndarray:
    """(H, W) bool: True inside ``crop``.

    ``eigen_nyu``: rows 45:471, columns 41:601 of the 480 × 640 NYU frame (BTS
    ``eval_with_pngs.py``, ZoeDepth ``misc.py``). ``garg`` and ``eigen_kitti``: the
    fractions of the frame's height and width that give ``153:371, 44:1197`` and
    ``124:342, 44:1197`` on a 375 × 1242 KITTI frame.
    """
    mask = np.zeros((height, width), dtype=bool)
    if crop is None:
        mask[:] = True
    elif crop == "eigen_nyu":
        if (height, width) != (480, 640):
            raise ValueError(
                f"the Eigen NYU crop is defined on 480x640 frames, got {height}x{width}"
            )
        mask[45:471, 41:601] = True
    elif crop == "garg":
        rows = slice(int(0.40810811 * height), int(0.99189189 * height))
        cols = slice(int(0.03594771 * width), int(0.96405229 * width))
        mask[rows, cols] = True
    elif crop == "eigen_kitti":
        rows = slice(int(0.3324324 * height), int(0.91351351 * height))
        cols = slice(int(0.0359477 * width), int(0.96405229 * width))
        mask[rows, cols] = True
    else:
        raise ValueError(f"unknown crop {crop!r}; known: {', '.join(CROPS)}")
    return mask


def evaluation_mask(gt: np.ndarray, valid: np.ndarray, protocol: DatasetProtocol) -> np.ndarray:
    """(H, W) bool: ``valid`` and ``min_depth < gt < max_depth`` (strict) inside the crop."""
    if gt.shape != valid.shape or gt.ndim != 2:
        raise ValueError(f"gt {gt.shape} and valid {valid.shape} must be the same (H, W)")
    with np.errstate(invalid="ignore"):
        in_range = np.isfinite(gt) & (gt > protocol.min_depth) & (gt < protocol.max_depth)
    return valid.astype(bool) & in_range & crop_mask(gt.shape[0], gt.shape[1], protocol.crop)


def resize_prediction(pred: np.ndarray, height: int, width: int) -> np.ndarray:
    """``pred`` (h, w) resized to (height, width): bilinear, align_corners=False."""
    if pred.shape == (height, width):
        return pred.astype(np.float64)
    tensor = torch.from_numpy(np.ascontiguousarray(pred, dtype=np.float64))[None, None]
    resized = F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)
    return resized[0, 0].numpy()


def align_prediction(
    pred: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray,
    alignment: Alignment,
    protocol: DatasetProtocol,
) -> tuple[np.ndarray, np.ndarray]:
    """The (prediction, reference) pair the metrics compare, both (H, W) and positive on
    ``mask`` (see the module docstring for each alignment).

    ``pred`` must already be at the ground truth's size. The fit uses the pixels under
    ``mask`` and is applied to the whole of ``pred``, so the aligned map covers the frame
    (after a disparity fit, non-finite where ``pred`` is). For ``disparity`` the pair is
    (aligned disparity, ``1 / gt`` on ``mask``, 0 elsewhere); for the others (depth, ``gt``).
    """
    if pred.shape != gt.shape or mask.shape != gt.shape:
        raise ValueError(f"pred {pred.shape}, gt {gt.shape} and mask {mask.shape} must match")
    # The fits read only the pixels under the mask; the fitted map covers every pixel.
    p = torch.from_numpy(pred.astype(np.float64))[None]
    g = torch.from_numpy(np.where(mask, gt, 1.0).astype(np.float64))[None]
    m = torch.from_numpy(mask.astype(bool))[None]
    floor = protocol.disparity_floor
    if alignment == "depth_from_disparity":
        if math.isfinite(protocol.max_depth):
            depth = align_disparity_to_depth(p, g, m, protocol.max_depth)[0]
        else:
            depth = 1.0 / _aligned_disparity(p, g, m, floor)
        return depth.numpy(), gt
    if alignment == "disparity":
        disparity = _aligned_disparity(p, g, m, floor)
        return disparity.numpy(), np.where(mask, 1.0 / np.where(mask, gt, 1.0), 0.0)
    if alignment == "median":
        scaled = (median_scale(p, g, m)[:, None, None] * p)[0].numpy()
        return _clip_depth(scaled, protocol), gt
    if alignment == "none":
        return _clip_depth(pred.astype(np.float64), protocol), gt
    raise ValueError(f"unknown alignment {alignment!r}; known: {', '.join(ALIGNMENTS)}")


def _aligned_disparity(
    p: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, floor: float
) -> torch.Tensor:
    scale, shift = fit_scale_shift(p, 1.0 / gt, mask)
    return (scale[:, None, None] * p + shift[:, None, None]).clamp(min=floor)[0]


def _clip_depth(depth: np.ndarray, protocol: DatasetProtocol) -> np.ndarray:
    """ZoeDepth's clipping of a metric prediction: into [min, max], +inf to max and NaN to
    min; a zero lower cap is lifted to 1e-6 so every compared value is positive."""
    low = max(protocol.min_depth, 1e-6)
    high = protocol.max_depth if math.isfinite(protocol.max_depth) else np.finfo(np.float64).max
    out = np.nan_to_num(depth, nan=low, posinf=high, neginf=low)
    return np.clip(out, low, high)


@dataclass(frozen=True, eq=False)
class AlignedPair:
    """What the metrics compare for one image, at the ground truth's size (H, W).

    ``compared``: the aligned prediction over the whole frame, float64; ``reference``:
    the ground truth in the same space, meaningful on ``mask`` only; ``mask``: bool, the
    pixels the protocol counts; ``space``: ``"disparity"`` (1/m) for the ``disparity``
    alignment, else ``"depth"`` (m).
    """

    compared: np.ndarray
    reference: np.ndarray
    mask: np.ndarray
    space: Literal["depth", "disparity"]

    def metrics(
        self, silog: SilogVariant = "zoedepth", min_pixels: int = 1
    ) -> dict[str, float] | None:
        """``metrics.depth_metrics`` of this pair on its mask."""
        return depth_metrics(
            self.compared, self.reference, self.mask, silog=silog, min_pixels=min_pixels
        )


def prepare_prediction(
    pred: np.ndarray,
    gt: np.ndarray,
    valid: np.ndarray,
    protocol: DatasetProtocol,
    alignment: Alignment,
    min_pixels: int = 1,
) -> AlignedPair | None:
    """Resize ``pred`` (h, w) to ``gt`` (H, W), mask by ``protocol`` and align: the pair
    ``score_prediction`` scores. None when fewer than ``min_pixels`` pixels count."""
    height, width = gt.shape
    resized = resize_prediction(pred, height, width)
    mask = evaluation_mask(gt, valid, protocol)
    if int(mask.sum()) < min_pixels:
        return None
    compared, reference = align_prediction(resized, gt, mask, alignment, protocol)
    space: Literal["depth", "disparity"] = "disparity" if alignment == "disparity" else "depth"
    return AlignedPair(compared, reference, mask, space)


def score_prediction(
    pred: np.ndarray,
    gt: np.ndarray,
    valid: np.ndarray,
    protocol: DatasetProtocol,
    alignment: Alignment,
    silog: SilogVariant = "zoedepth",
    min_pixels: int = 1,
) -> dict[str, float] | None:
    """The metrics of one prediction under ``protocol``: ``prepare_prediction`` (resize to
    the ground truth, mask, align), then ``metrics.depth_metrics``. None when fewer than
    ``min_pixels`` pixels count (Depth Anything skips images with fewer than 10)."""
    pair = prepare_prediction(pred, gt, valid, protocol, alignment, min_pixels)
    return None if pair is None else pair.metrics(silog, min_pixels)
