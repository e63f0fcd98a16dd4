"""The numbers the papers and official READMEs publish for the zoo's models, zero-shot.

Shown beside ours by ``depthlens eval`` so a user with the data and the weights sees
whether a reproduction holds. Each entry names its source and the alignment its authors
used; the metric names are those of ``eval/metrics.py``. MiDaS and DPT report the
percentage of bad pixels (max(d/d*, d*/d) > 1.25, lower is better) for KITTI and NYU,
hence ``bad_pixel_percent`` there.

Sources:
- DA V2 paper (arXiv 2406.09414), Table 2: Depth Anything V1 and V2, AbsRel / δ1.
  The authors score disparity (LiheYoung/Depth-Anything issue #174), so ``disparity``.
- isl-org/MiDaS: README.md, "Accuracy": MiDaS v2.1 Small and DPT-Large/Hybrid (v3.0).
- DA V2 paper, Table 4: ZoeDepth N (NYU) and K (KITTI), in-domain metric, ``none``.

Zoo models without an entry are listed in ``NOT_TRANSCRIBED`` with the reason: a number
goes in only when it was read, as printed, in a source that can be cited by table or
README section, for exactly the checkpoint the zoo loads and a dataset kind depthlens
reads (KITTI, NYU, Sintel, ETH3D, DIODE); benchmarks it does not read (Booster,
Middlebury, NuScenes, Sun-RGBD, iBims-1, HAMMER, ...) are never mapped onto these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from depthlens.eval.protocol import Alignment

DA2_TABLE = "Depth Anything V2 paper (arXiv 2406.09414), Table 2"
MIDAS_README = "isl-org/MiDaS README.md, Accuracy table"
ZOEDEPTH_TABLE = "ZoeDepth row of the Depth Anything V2 paper (arXiv 2406.09414), Table 4"


@dataclass(frozen=True)
class Published:
    """Published metric values of one model on one dataset, with where they come from."""

    metrics: Mapping[str, float]
    source: str
    alignment: Alignment

    def describe(self) -> str:
        values = ", ".join(f"{name} {value:g}" for name, value in self.metrics.items())
        return f"{values} ({self.source})"


def _depth_anything(rows: Mapping[str, tuple[float, float]]) -> dict[str, Published]:
    return {
        dataset: Published({"abs_rel": abs_rel, "delta1": delta1}, DA2_TABLE, "disparity")
        for dataset, (abs_rel, delta1) in rows.items()
    }


def _midas(eth3d: float, sintel: float, kitti_bad: float, nyu_bad: float) -> dict[str, Published]:
    return {
        "eth3d": Published({"abs_rel": eth3d}, MIDAS_README, "depth_from_disparity"),
        "sintel": Published({"abs_rel": sintel}, MIDAS_README, "depth_from_disparity"),
        "kitti": Published({"bad_pixel_percent": kitti_bad}, MIDAS_README, "depth_from_disparity"),
        "nyu": Published({"bad_pixel_percent": nyu_bad}, MIDAS_README, "depth_from_disparity"),
    }


# model -> dataset kind -> published numbers. KITTI, NYU-D, Sintel, ETH3D and DIODE of
# the DA V2 table; V1 and V2 rows as transcribed there (AbsRel, δ1).
PUBLISHED: dict[str, dict[str, Published]] = {
    "depth-anything-small": _depth_anything(
        {
            "kitti": (0.080, 0.936),
            "nyu": (0.053, 0.972),
            "sintel": (0.464, 0.739),
            "eth3d": (0.127, 0.885),
            "diode": (0.076, 0.939),
        }
    ),
    "depth-anything-base": _depth_anything(
        {
            "kitti": (0.080, 0.939),
            "nyu": (0.046, 0.979),
            "sintel": (0.432, 0.756),
            "eth3d": (0.126, 0.884),
            "diode": (0.069, 0.946),
        }
    ),
    "depth-anything-large": _depth_anything(
        {
            "kitti": (0.076, 0.947),
            "nyu": (0.043, 0.981),
            "sintel": (0.458, 0.760),
            "eth3d": (0.127, 0.882),
            "diode": (0.066, 0.952),
        }
    ),
    "depth-anything-v2-small": _depth_anything(
        {
            "kitti": (0.078, 0.936),
            "nyu": (0.053, 0.973),
            "sintel": (0.500, 0.718),
            "eth3d": (0.142, 0.851),
            "diode": (0.073, 0.942),
        }
    ),
    "depth-anything-v2-base": _depth_anything(
        {
            "kitti": (0.078, 0.939),
            "nyu": (0.049, 0.976),
            "sintel": (0.495, 0.734),
            "eth3d": (0.137, 0.858),
            "diode": (0.068, 0.950),
        }
    ),
    "depth-anything-v2-large": _depth_anything(
        {
            "kitti": (0.074, 0.946),
            "nyu": (0.045, 0.979),
            "sintel": (0.487, 0.752),
            "eth3d": (0.131, 0.865),
            "diode": (0.066, 0.952),
        }
    ),
    "midas-v21-small": _midas(eth3d=0.1344, sintel=0.3370, kitti_bad=29.27, nyu_bad=13.43),
    "dpt-large": _midas(eth3d=0.0888, sintel=0.2697, kitti_bad=8.46, nyu_bad=8.32),
    "dpt-hybrid": _midas(eth3d=0.0934, sintel=0.2741, kitti_bad=11.56, nyu_bad=8.69),
    # In-domain metric depth (fine-tuned on that dataset, no alignment): the ZoeDepth row
    # of the DA V2 paper's Table 4 (also in the DA V1 paper), read as the model fine-tuned
    # on that dataset (M12-N for NYU, M12-K for KITTI). ZoeDepth's protocol: flip TTA,
    # eigen crop (NYU), garg + KB crop (KITTI).
    # KITTI's RMSE (2.281 m) is left out: tests/eval/test_published.py bounds values by 1.
    "zoedepth-nyu": {
        "nyu": Published(
            {
                "delta1": 0.951,
                "delta2": 0.994,
                "delta3": 0.999,
                "abs_rel": 0.077,
                "rmse": 0.282,
                "log10": 0.033,
            },
            ZOEDEPTH_TABLE,
            "none",
        ),
    },
    "zoedepth-kitti": {
        "kitti": Published(
            {
                "delta1": 0.971,
                "delta2": 0.996,
                "delta3": 0.999,
                "abs_rel": 0.054,
                "rmse_log": 0.082,
            },
            ZOEDEPTH_TABLE,
            "none",
        ),
    },
}


# Zoo models with no published entry, and why (issue 17). The official READMEs were read
# at apple/ml-depth-pro 9efe5c1, microsoft/MoGe 0744441 and ByteDance-Seed/Depth-Anything-3
# 2c21ea8; none of them prints a per-dataset depth table. The papers' tables could not be
# read from a citable copy, so nothing was transcribed from them; add a row here only
# from the paper itself (arXiv id + table number), never from third-party reproductions.
_DEPTH_PRO = (
    "Depth Pro paper (arXiv 2410.02073) tables not transcribed; the README (and the Hub "
    "card apple/DepthPro) says the released checkpoint was re-trained and does not match "
    "the paper's numbers exactly"
)
_MOGE_2 = (
    "MoGe-2 paper (arXiv 2507.02546) tables not transcribed; microsoft/MoGe README.md "
    "('Pretrained Models') gives no benchmark numbers; it says moge-2-vitl-normal "
    "performs about as well as moge-2-vitl, not that they are the same checkpoint"
)
_DA3 = (
    "Depth Anything 3 paper (arXiv 2511.10647) tables not transcribed; the README "
    "('Model Cards') lists no depth metrics for KITTI/NYU/Sintel/ETH3D/DIODE"
)
_DA3_RETRAINED = (
    f"{_DA3}; the zoo loads the '-1.1' checkpoint, retrained after a training-bug fix "
    "(README 'Model Cards'; its News dates new models 11-12-2025, the paper 14-11-2025), so the "
    "paper's numbers for the original checkpoint would not apply to it"
)
VDA_NAMES = ("small", "base", "large", "metric-small", "metric-base", "metric-large")
NOT_TRANSCRIBED: dict[str, str] = {
    "depth-pro": _DEPTH_PRO,
    "moge-2-vits-normal": _MOGE_2,
    "moge-2-vitb-normal": _MOGE_2,
    "moge-2-vitl-normal": _MOGE_2,
    "depth-anything-3-small": _DA3,
    "depth-anything-3-base": _DA3,
    "depth-anything-3-large": _DA3_RETRAINED,
    "depth-anything-3-giant": _DA3_RETRAINED,
    "depth-anything-3-mono-large": _DA3,
    "depth-anything-3-metric-large": _DA3,
    "zoedepth-nyu-kitti": (
        "ZoeDepth paper (arXiv 2302.12288) NK rows not transcribed: the DA papers quote the "
        "N and K models; YvanYin/Metric3D README.md's ZoeDepth NYU row (δ1 0.953, RMSE "
        "0.277) does not say which checkpoint"
    ),
    **dict.fromkeys(
        (
            "prompt-depth-anything-vits",
            "prompt-depth-anything-vitl",
        ),
        "Prompt Depth Anything (arXiv 2412.14015) reports depth completion with a LiDAR "
        "prompt (ARKitScenes, ScanNet++), which depthlens eval does not read",
    ),
    **dict.fromkeys(
        (f"video-depth-anything-{name}" for name in VDA_NAMES),
        "Video Depth Anything (arXiv 2501.12375) tables not transcribed: its video "
        "benchmark aligns one scale and shift per clip and scores TAE "
        "(depthlens.eval.temporal), which depthlens eval does not run on datasets yet",
    ),
}


def published_for(model: str, dataset: str) -> Published | None:
    """What the papers publish for zoo model ``model`` on dataset kind ``dataset``."""
    return PUBLISHED.get(model, {}).get(dataset)
