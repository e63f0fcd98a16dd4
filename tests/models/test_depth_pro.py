"""Depth Pro: key conversion against the official table, strict loading, the parameter
count, the official pre/post-processing (goldens from apple/ml-depth-pro on a tiny
random checkpoint, tests/expected/README.md), the estimated camera end to end, and the
Hugging Face folder loader.

Checkpoints are random, in the official layout (tests/checkpoints.py), never downloaded.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import depthlens
from depthlens.errors import UsageError, WeightsError
from depthlens.geometry.camera import Camera
from depthlens.io.images import load_image
from depthlens.models import depth_pro as dp
from depthlens.models.estimator import Estimator
from depthlens.models.intrinsics import camera_models
from depthlens.models.registry import get_spec
from depthlens.models.weights import load_strict
from depthlens.pipeline import predict_files
from tests.checkpoints import depth_pro_checkpoint, read_key_table

EXPECTED = Path(__file__).parent.parent / "expected"
INPUTS = EXPECTED / "inputs"

# The tiny config of the goldens: 16-px patches at 384 px as released (the official
# merge needs 24 x 24 tokens per patch, so the 1536 input and output stay), a 32-wide
# 3-block ViT and 8 decoder features.
TINY = dp.DepthProConfig(
    vit_width=32,
    vit_depth=3,
    vit_heads=1,
    hooked_blocks=(0, 1),
    encoder_dims=(8, 16, 24, 32),
    decoder_features=8,
)
# Depth Pro in the official layout: 951,991,330 tensors' values, as the released
# depth_pro.pt counts (huggingface.co/takara-ai/DepthPro-Safetensors, "Total Parameters").
PUBLISHED_PARAMETERS = 951_991_330


def _close(ours: np.ndarray, golden: np.ndarray, fraction: float = 1e-4) -> None:
    assert ours.shape == golden.shape
    span = float(golden.max() - golden.min())
    assert np.abs(ours - golden).max() <= fraction * span


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("depth_pro") / "depth_pro.pt"
    torch.save(depth_pro_checkpoint(TINY, seed=0), path)
    return path


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint: Path) -> Estimator:
    return depthlens.load_model("depth-pro", weights=tiny_checkpoint, device="cpu")


def test_converted_official_keys_equal_network_keys() -> None:
    official = read_key_table("depth_pro")
    with torch.device("meta"):
        network = dp.build_network(dp.PRESETS["default"])
    ours = {k: tuple(v.shape) for k, v in network.state_dict().items()}
    meta = {k: torch.empty(s, device="meta") for k, s in official.items()}
    converted = {k: tuple(v.shape) for k, v in dp.convert_official_state_dict(meta).items()}
    assert converted == ours


def test_parameter_count_matches_the_published_one() -> None:
    assert sum(math.prod(s) for s in read_key_table("depth_pro").values()) == PUBLISHED_PARAMETERS
    with torch.device("meta"):
        network = dp.build_network(dp.PRESETS["default"])
    assert sum(p.numel() for p in network.parameters()) == PUBLISHED_PARAMETERS
    assert round(PUBLISHED_PARAMETERS / 1e6) == get_spec("depth-pro").params_millions


def test_strict_load_names_a_missing_key() -> None:
    state = dp.convert_official_state_dict(depth_pro_checkpoint(TINY))
    state.pop(next(k for k in state if k.endswith("fov_model.conv.weight")))
    with pytest.raises(WeightsError, match=re.escape("missing: model.fov_model.conv.weight")):
        load_strict(dp.build_network(TINY), state, "tiny")


def test_config_is_read_from_a_tiny_checkpoint() -> None:
    assert dp.config_for_state_dict(depth_pro_checkpoint(TINY), dp.PRESETS["default"]) == TINY
    with pytest.raises(WeightsError, match="Not a Depth Pro checkpoint"):
        dp.config_for_state_dict({"head.0.weight": torch.zeros(1)}, dp.PRESETS["default"])


def test_config_rejects_a_patch_grid_the_merge_cannot_tile() -> None:
    with pytest.raises(ValueError, match="24 tokens"):
        dp.DepthProConfig(vit_side=320)
    with pytest.raises(ValueError, match="encoder_dims"):
        dp.DepthProConfig(decoder_features=128)


def test_network_matches_official(tiny: Estimator) -> None:
    x = torch.randn(1, 3, 1536, 1536, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out = tiny.network(x)
    _close(
        out.canonical_inverse_depth[0, ::8, ::8].numpy(), np.load(EXPECTED / "depth-pro_net.npy")
    )
    np.testing.assert_allclose(
        out.fov_degrees.numpy(), np.load(EXPECTED / "depth-pro_net-fov.npy"), rtol=1e-5
    )


def test_preprocess_is_minus_one_to_one_at_the_fixed_size() -> None:
    rgb = np.zeros((30, 50, 3), np.uint8)
    rgb[:, 25:] = 255
    x = dp.preprocess(rgb, 64)
    assert x.shape == (3, 64, 64) and x.dtype == np.float32
    assert x.min() == -1.0 and x.max() == 1.0
    np.testing.assert_array_equal(dp.preprocess(rgb[:, :1].repeat(64, 1)[:1].repeat(64, 0), 64), -1)


@pytest.mark.parametrize("name", ["square", "wide"])
def test_predict_matches_official_and_estimates_the_camera(tiny: Estimator, name: str) -> None:
    result = tiny.predict(INPUTS / f"{name}.png")
    _close(result.depth, np.load(EXPECTED / f"depth-pro_{name}.npy"))
    assert result.kind == "metric"
    focal = float(np.load(EXPECTED / "depth-pro_focal.npy")[["square", "wide"].index(name)])
    camera = result.camera
    assert camera is not None
    assert (camera.source, camera.estimated_by) == ("estimated", "depth-pro")
    assert camera.fx == pytest.approx(focal, rel=1e-5) and camera.fy == camera.fx
    height, width = result.depth.shape
    assert (camera.cx, camera.cy, camera.width, camera.height) == (
        width / 2,
        height / 2,
        width,
        height,
    )


def test_a_given_camera_wins_and_sets_the_scale(tiny: Estimator) -> None:
    image = load_image(INPUTS / "wide.png")
    user = Camera(180.0, 180.0, image.width / 2, image.height / 2, image.width, image.height)
    given = type(image)(rgb=image.rgb, camera=user, source=image.source)
    result = tiny.predict(given)
    assert result.camera is user
    _close(result.depth, np.load(EXPECTED / "depth-pro_wide-f180.npy"))


def test_estimated_camera_reaches_the_sidecar(tiny: Estimator, tmp_path: Path) -> None:
    report = predict_files([INPUTS / "square.png"], tmp_path, model=tiny, formats=["npy", "ply"])
    assert not report.failed
    sidecar = json.loads((tmp_path / "square-depth.json").read_text())
    assert sidecar["camera_source"] == "estimated"
    assert sidecar["camera_estimated_by"] == "depth-pro"
    assert sidecar["fx"] == pytest.approx(float(np.load(EXPECTED / "depth-pro_focal.npy")[0]))


def test_hf_folder_loads_strictly(tiny: Estimator, tmp_path: Path) -> None:
    tiny.network.model.save_pretrained(tmp_path)
    loaded = dp.network_from_hf_folder(tmp_path, dp.PRESETS["default"])
    assert loaded.config == TINY
    ours = tiny.network.state_dict()
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, ours[key].contiguous(), rtol=0, atol=0)
    files = list(tmp_path.glob("*.safetensors"))
    from safetensors.torch import load_file, save_file

    state = load_file(str(files[0]))
    state.pop("fov_model.conv.weight")
    save_file(state, str(files[0]), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=re.escape("missing_keys: fov_model.conv.weight")):
        dp.network_from_hf_folder(tmp_path, dp.PRESETS["default"])


def test_zoo_row() -> None:
    spec = get_spec("depth-pro")
    assert spec.family == "depth_pro" and spec.kind == "metric" and spec.estimates_camera
    assert spec.weights.official_file == "depth_pro.pt"
    assert spec.weights.hub_id == "apple/DepthPro-hf"
    assert spec.input.size == (dp.PRESETS["default"].image_size,) * 2
    assert "depth-pro" in camera_models()


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_other_backends_are_refused_in_one_sentence(backend: str) -> None:
    from depthlens.models.backends import make_runner

    with pytest.raises(UsageError, match="depth-pro runs on the torch backend only") as info:
        make_runner(get_spec("depth-pro"), nn.Identity(), torch.device("cpu"), backend, "fp32", "")
    assert str(info.value).count(". ") == 0 and str(info.value).endswith(".")
