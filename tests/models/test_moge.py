"""MoGe-2: key conversion against the official tables, strict loading from ``model.pt``
(with its ``model_config``) and from a Hub snapshot folder, parameter counts, the
focal/shift recovery, parity with the official ``MoGeModel.infer`` on a tiny random
network (tests/expected/README.md), the estimated camera, and points reaching the PLY.

Checkpoints are random, in the official layout (tests/checkpoints.py), never downloaded.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from depthlens.errors import UsageError, WeightsError
from depthlens.geometry.camera import Camera
from depthlens.io.images import Image, load_image
from depthlens.models import moge
from depthlens.models.backends import make_runner
from depthlens.models.estimator import DepthResult, Estimator
from depthlens.models.registry import MODELS, get_spec
from depthlens.models.weights import build_network, classify_path, find_weights
from tests.checkpoints import random_state_dict, read_key_table

EXPECTED = Path(__file__).parent.parent / "expected"
SPEC = get_spec("moge-2-vitl-normal")
# The tiny official config of the goldens (tests/expected/README.md, MoGe-2 section).
TINY_MODEL_CONFIG = {
    "encoder": {"backbone": "dinov2_tiny", "intermediate_layers": [0, 2, 3, 4], "dim_out": 32},
    "remap_output": "exp",
    "num_tokens_range": [1200, 3600],
}
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def tiny_checkpoint(seed: int = 0) -> dict[str, torch.Tensor]:
    """The goldens' random official-layout state dict (ImageNet mean/std buffers)."""
    state = random_state_dict(read_key_table("moge_2_tiny"), seed)
    state["encoder.image_mean"] = torch.tensor(MEAN).view(1, 3, 1, 1)
    state["encoder.image_std"] = torch.tensor(STD).view(1, 3, 1, 1)
    return state


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hub-snapshot-like folder holding the tiny official ``model.pt``."""
    folder = tmp_path_factory.mktemp("moge-2-tiny")
    torch.save({"model_config": TINY_MODEL_CONFIG, "model": tiny_checkpoint()}, folder / "model.pt")
    return folder


@pytest.fixture(scope="module")
def estimator(snapshot: Path) -> Estimator:
    location = find_weights(SPEC, snapshot)  # the folder, as --weights FOLDER
    return Estimator(SPEC, build_network(SPEC, location), weights=str(snapshot))


# --------------------------------------------------------------------- weights


@pytest.mark.parametrize(
    ("config", "table"),
    [(moge.PRESETS["v2-vitl-normal"], "moge_2_vitl_normal"), (None, "moge_2_tiny")],
)
def test_converted_official_keys_equal_network_keys(
    config: moge.MoGeConfig | None, table: str
) -> None:
    official = read_key_table(table)
    if config is None:
        config = moge.config_for_state_dict(
            {k: torch.empty(s, device="meta") for k, s in official.items()},
            moge.PRESETS["v2-vitl-normal"],
        )
    with torch.device("meta"):
        network = moge.build_network(config)
    ours = {k: tuple(v.shape) for k, v in network.state_dict().items()}
    converted = {}
    for key, shape in official.items():
        name = moge.official_key_to_ours(key)
        if name is None:
            assert key.endswith(("mask_token", "image_mean", "image_std"))
            continue
        assert name not in converted, f"two official keys map to {name}"
        converted[name] = shape
    assert converted == ours


def test_config_follows_the_checkpoint() -> None:
    state = tiny_checkpoint()
    preset = moge.PRESETS["v2-vitl-normal"]
    config = moge.config_for_state_dict(state, preset, TINY_MODEL_CONFIG)
    assert (config.embed_dim, config.depth, config.pos_grid) == (32, 5, 4)
    assert config.intermediate_layers == (0, 2, 3, 4)  # from model_config, not the tensors
    assert config.dims == (32, 16, 16, 8, 8)
    assert config.neck_blocks == (0, 2, 1, 1, 0) and config.head_blocks == (0, 1, 1, 1, 0)
    assert config.scale_dims == (32, 32, 32, 1)
    # without model_config, the last blocks (as many as projections) are assumed
    assert moge.config_for_state_dict(state, preset).intermediate_layers == (1, 2, 3, 4)


def test_model_config_with_another_remap_is_refused(tmp_path: Path) -> None:
    other = {**TINY_MODEL_CONFIG, "remap_output": "sinh"}
    torch.save({"model_config": other, "model": tiny_checkpoint()}, tmp_path / "model.pt")
    with pytest.raises(WeightsError, match="sinh"):
        build_network(SPEC, find_weights(SPEC, tmp_path / "model.pt"))


def test_checkpoint_without_normal_head_fails_strictly(tmp_path: Path) -> None:
    state = {k: v for k, v in tiny_checkpoint().items() if not k.startswith("normal_head.")}
    torch.save({"model_config": TINY_MODEL_CONFIG, "model": state}, tmp_path / "model.pt")
    with pytest.raises(WeightsError, match=r"missing: normal_head\."):
        build_network(SPEC, find_weights(SPEC, tmp_path / "model.pt"))


def test_snapshot_folder_is_its_model_pt(snapshot: Path, tmp_path: Path) -> None:
    assert classify_path(snapshot).path == snapshot / "model.pt"
    with pytest.raises(WeightsError, match=r"model\.pt"):
        classify_path(tmp_path)  # an empty folder: says what it looked for


def test_parameter_counts_match_the_readme() -> None:
    # microsoft/MoGe README.md: 35 M (ViT-S), 104 M (ViT-B), 331 M (ViT-L), -normal
    for name, published in (
        ("moge-2-vits-normal", 35),
        ("moge-2-vitb-normal", 104),
        ("moge-2-vitl-normal", 331),
    ):
        spec = MODELS[name]
        with torch.device("meta"):
            network = moge.build_network(moge.PRESETS[spec.variant])
        count = sum(p.numel() for p in network.parameters()) / 1e6
        # the official counts hold the unused mask_token (embed_dim more)
        count += moge.PRESETS[spec.variant].embed_dim / 1e6
        assert abs(count - published) / published < 0.01, (name, count)
        assert abs(count - spec.params_millions) < 0.05
        assert spec.estimates_camera and spec.licence == "MIT" and spec.kind == "metric"


# ------------------------------------------------------------------- geometry


def test_token_grid_and_input() -> None:
    config = moge.PRESETS["v2-vitl-normal"]
    assert moge.num_tokens_for(config) == 3600
    rows, cols = moge.token_grid(150, 230, 3600)
    assert (rows, cols) == (round(math.sqrt(3600 * 150 / 230)), round(math.sqrt(3600 * 230 / 150)))
    rgb = np.random.default_rng(0).integers(0, 256, (150, 230, 3), dtype=np.uint8)
    tensor = moge.preprocess(rgb, config)
    assert tensor.shape == (4, rows * 14, cols * 14) and tensor.dtype == np.float32
    assert np.allclose(tensor[3], 230 / 150)
    assert moge.token_grid(1, 50_000, 3600)[0] == 1  # a strip keeps one row of tokens


def test_recover_focal_shift_finds_a_known_camera() -> None:
    height, width, focal, shift = 48, 64, 1.3, 0.7
    aspect = torch.tensor([width / height])
    uv = moge.view_plane_uv(width, height, aspect)[0].permute(1, 2, 0)  # (H, W, 2)
    depth = 2.0 + torch.rand(height, width, generator=torch.Generator().manual_seed(0))
    points = torch.cat([uv * depth[..., None] / focal, depth[..., None] - shift], dim=-1)
    mask = torch.ones(height, width, dtype=torch.bool)
    found_focal, found_shift = moge.recover_focal_shift(points, mask)
    assert found_focal == pytest.approx(focal, rel=1e-3)
    assert found_shift == pytest.approx(shift, rel=1e-3)
    # a known focal: only the shift is solved
    assert moge.recover_focal_shift(points, mask, focal)[1] == pytest.approx(shift, rel=1e-3)
    # no valid pixel: focal 1, shift 0, as upstream
    assert moge.recover_focal_shift(points, torch.zeros_like(mask)) == (1.0, 0.0)


# ---------------------------------------------------------------- official parity


def _image(tag: str) -> Image:
    image = load_image(EXPECTED / "inputs" / f"{tag.split('_')[0]}.png")
    if tag.endswith("fov60"):
        image = replace(image, camera=Camera.from_fov(image.width, image.height, 60.0))
    return image


@pytest.mark.parametrize("tag", ["square", "wide", "wide_fov60"])
def test_matches_official_infer(estimator: Estimator, tag: str) -> None:
    image = _image(tag)
    golden = np.load(EXPECTED / f"moge-2_{tag}.npz")
    result = estimator.predict(image)
    assert result.mask is not None and result.points is not None and result.normals is not None
    assert result.depth.shape == image.rgb.shape[:2] and result.points.shape == (
        *image.rgb.shape[:2],
        3,
    )
    assert np.array_equal(result.mask, golden["mask"])
    valid = golden["mask"]
    assert 0 < valid.mean() < 1  # both kinds of pixel are tested
    for ours, key in (
        (result.depth, "depth"),
        (result.points, "points"),
        (result.normals, "normal"),
    ):
        reference = golden[key][valid]
        span = float(np.ptp(reference))
        assert np.abs(ours[valid] - reference).max() <= 1e-4 * span, key
        assert np.isnan(ours[~valid]).all(), key  # upstream: inf (normals 0); here NaN

    fx, fy = golden["intrinsics"][0, 0] * image.width, golden["intrinsics"][1, 1] * image.height
    camera = result.camera
    assert camera is not None
    if image.camera is not None:  # a known camera wins, and its field of view was used
        assert camera == image.camera
        assert fx == pytest.approx(camera.fx, rel=1e-4)
    elif fx > 0:
        assert camera.source == "estimated" and camera.estimated_by == SPEC.name
        assert (camera.fx, camera.fy) == pytest.approx((fx, fy), rel=1e-4)
        assert (camera.cx, camera.cy) == (image.width / 2, image.height / 2)
    else:  # random weights can give a focal no camera has: the default stands in
        assert camera.source == "default"


def test_other_backends_refuse_in_one_sentence(estimator: Estimator) -> None:
    for backend in ("onnxruntime", "openvino"):
        with pytest.raises(UsageError, match="torch backend only"):
            make_runner(SPEC, estimator.network, torch.device("cpu"), backend)


# ------------------------------------------------------------------- outputs


def test_ply_holds_the_models_own_valid_points(tmp_path: Path) -> None:
    from depthlens.io.outputs import write_geometry
    from depthlens.io.pointcloud import read_ply

    height, width = 4, 5
    rgb = np.full((height, width, 3), 200, np.uint8)
    depth = np.full((height, width), 2.0, np.float32)
    points = np.random.default_rng(0).normal(size=(height, width, 3)).astype(np.float32)
    points[..., 2] = 3.0  # not what back-projecting the depth would give
    mask = np.ones((height, width), bool)
    mask[0, :2] = False
    depth[~mask], points[~mask] = np.nan, np.nan
    camera = Camera.from_fov(width, height, 60.0)
    result = DepthResult(depth, "metric", SPEC.name, "x", camera, points=points, mask=mask)
    image = Image(rgb, None, "x")
    written, info = write_geometry(image, result, camera, tmp_path / "x", ["ply"])
    assert info["pointcloud"]["points"] == mask.sum()  # type: ignore[index]
    vertices = read_ply(written[0])
    xyz = np.stack([vertices["x"], vertices["y"], vertices["z"]], axis=-1)
    assert np.array_equal(xyz, points[mask])
