"""Strips and slivers (1×16, 1×5000, 5000×1) predict on every family instead of crashing
(cv2.resize asserted on a 0-row network input) or asking for gigabytes (Depth
Anything's lower bound turned 1×5000 into 518×2,590,000)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import depthlens
from depthlens.models import depth_anything as da
from depthlens.models import dpt
from depthlens.models.estimator import Estimator
from depthlens.models.registry import MODELS
from tests.checkpoints import metric3d_checkpoint
from tests.models.test_depth_anything import TINY as TINY_DA
from tests.models.test_dpt import TINY_LARGE
from tests.models.test_metric3d import TINY as TINY_M3D

THIN = [(1, 16), (20, 1000), (1, 5000), (5000, 1), (2, 2)]


def _tiny_estimator(name: str, tmp_path: Path, midas_checkpoint: Path) -> Estimator:
    torch.manual_seed(0)
    if name == "depth-anything-v2-small":
        return Estimator(MODELS[name], da.build_network(TINY_DA))
    if name == "dpt-large":
        return Estimator(MODELS[name], dpt.build_network(TINY_LARGE))
    if name == "metric3d-v2-small":
        path = tmp_path / "metric_depth_vit_small_800k.pth"
        torch.save({"model_state_dict": metric3d_checkpoint(TINY_M3D, seed=1)}, path)
        return depthlens.load_model(name, weights=path, device="cpu")
    if name == "midas-v21-small":
        return depthlens.load_model(name, weights=midas_checkpoint, device="cpu")
    return depthlens.load_model(name, device="cpu")  # bundled


@pytest.mark.parametrize(
    "name",
    [
        "depthlens-small",
        "depthlens-small-metric",
        "midas-v21-small",
        "dpt-large",
        "depth-anything-v2-small",
        "metric3d-v2-small",
    ],
)
def test_thin_images_predict_on_every_family(name, tmp_path, midas_checkpoint):
    estimator = _tiny_estimator(name, tmp_path, midas_checkpoint)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in THIN]
    results = estimator.predict(images, batch_size=2)
    for (height, width), result in zip(THIN, results, strict=True):
        assert result.depth.shape == (height, width)
        assert np.isfinite(result.depth).all()
