"""Depth Anything 3: key conversion against the official tables, parameter counts, the
official preprocessing, and parity with the official inference API end to end through
``Estimator.predict`` (goldens: tests/expected/README.md, "Depth Anything 3").

Checkpoints are random, in the official layout (tests/checkpoints.py), never downloaded.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from depthlens.errors import WeightsError
from depthlens.geometry.camera import Camera
from depthlens.io.images import Image, load_image
from depthlens.models import depth_anything_3 as da3
from depthlens.models import weights
from depthlens.models.estimator import Estimator
from depthlens.models.registry import get_spec
from depthlens.models.weights import find_weights, load_strict
from tests.checkpoints import official_checkpoint, read_key_table

# The tiny configs of the goldens (tests/expected/README.md): width 32, 6 blocks.
TINY = da3.DA3Config(
    embed_dim=32,
    depth=6,
    num_heads=2,
    out_layers=(1, 3, 4, 5),
    alt_start=2,
    qknorm_start=2,
    rope_start=2,
    features=16,
    out_channels=(8, 16, 32, 32),
)
TINY_G = replace(TINY, ffn="swiglu")
TINY_MONO = replace(
    TINY,
    alt_start=-1,
    qknorm_start=-1,
    rope_start=-1,
    cat_token=False,
    head="dpt",
    camera_decoder=False,
)
SKY_BIAS = "model.head.scratch.sky_output_conv2.2.bias"

TABLES = {
    "small": "da3_small",
    "base": "da3_base",
    "large": "da3_large",
    "giant": "da3_giant",
    "mono-large": "da3mono_large",
    "metric-large": "da3metric_large",
}
DROPPED_PREFIXES = (
    "model.cam_enc.",
    "model.gs_head.",
    "model.cam_dec.fc_t.",
    "model.cam_dec.fc_qvec.",
)


def _tiny(config: da3.DA3Config, table: str, seed: int = 0) -> da3.AnyViewNetwork | da3.MonoNetwork:
    state = official_checkpoint(table, seed)
    if config.head == "dpt":
        state[SKY_BIAS] = torch.tensor([0.8])
    network = da3.build_network(config)
    load_strict(network, da3.convert_official_state_dict(state), table)
    return network.eval()


def _is_dropped(key: str) -> bool:
    return key.startswith(DROPPED_PREFIXES) or (
        key.startswith("model.head.scratch.") and "_aux" in key
    )


@pytest.mark.parametrize("variant", sorted(TABLES))
def test_converted_official_keys_equal_network_keys(variant: str) -> None:
    official = read_key_table(TABLES[variant])
    with torch.device("meta"):
        network = da3.build_network(da3.PRESETS[variant])
    ours = {k: tuple(v.shape) for k, v in network.state_dict().items()}
    converted = {}
    for key, shape in official.items():
        name = da3.official_key_to_ours(key)
        if name is None:
            assert _is_dropped(key), key
            continue
        assert name not in converted, f"two official keys map to {name}"
        converted[name] = shape
    assert converted == ours


# Published sizes: the Hub's count of DA3-SMALL's model.safetensors (34.3 M, the
# depth-anything "Depth Anything 3" collection) and the README's "Model Cards" table
# (0.12 B, 0.35 B, 1.15 B, 0.35 B). The README's 0.08 B for Small, 0.12 B for Base,
# 0.35 B for Large and 1.15 B for Giant fit no subset of the checkpoints' heads; the
# Hub's rounded counts (0.1 B, 0.4 B, 1 B) fit the whole files, as asserted here.
PUBLISHED_M = {
    "small": (34.3, 0.05),
    "base": (100.0, 50.0),  # Hub: "0.1B"
    "large": (400.0, 50.0),  # Hub: "0.4B"
    "giant": (1000.0, 500.0),  # Hub: "1B"
    "mono-large": (350.0, 20.0),  # README: 0.35 B
    "metric-large": (350.0, 20.0),  # README: 0.35 B
}


@pytest.mark.parametrize("variant", sorted(TABLES))
def test_parameter_counts(variant: str) -> None:
    official = read_key_table(TABLES[variant])
    total = sum(math.prod(shape) for shape in official.values())
    published, tolerance = PUBLISHED_M[variant]
    assert abs(total / 1e6 - published) <= tolerance
    assert round(total / 1e6, 1) == get_spec(f"depth-anything-3-{variant}").params_millions
    kept = sum(math.prod(s) for k, s in official.items() if not _is_dropped(k))
    with torch.device("meta"):
        network = da3.build_network(da3.PRESETS[variant])
    assert sum(p.numel() for p in network.parameters()) == kept


def test_config_rejects_odd_head_width() -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        da3.DA3Config(embed_dim=36, num_heads=6)


@pytest.mark.parametrize(
    ("size", "res", "expected"),
    [
        ((150, 230), 140, (98, 140)),  # 91.3 rows: 91 is 7 from 84 and 98, ties go up
        ((150, 230), 504, (336, 504)),
        ((160, 160), 504, (504, 504)),
        ((1, 5000), 504, (14, 504)),  # upstream: 1 row, which the ViT cannot take
        ((700, 400), 504, (504, 294)),
    ],
)
def test_network_size_follows_the_input_processor(
    size: tuple[int, int], res: int, expected: tuple[int, int]
) -> None:
    assert da3.network_size(*size, res) == expected
    rgb = np.zeros((*size, 3), np.uint8)
    assert da3.preprocess(rgb, res).shape == (3, *expected)


def test_rope_positions_and_rotation() -> None:
    local = da3.rope_positions(2, 3, same=False, device=torch.device("cpu"))
    assert local[0, 0].tolist() == [0, 0] and local[0, 1].tolist() == [1, 1]
    assert local[0, -1].tolist() == [2, 3]
    same = da3.rope_positions(2, 3, same=True, device=torch.device("cpu"))
    assert (same[0, 1:] == 1).all() and (same[0, 0] == 0).all()
    # a rotation: norms kept, position 0 leaves the vector as it is
    x = torch.randn(1, 2, 7, 16)
    rotated = da3.rotary_2d(x, local, 100.0)
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(rotated[:, :, 0], x[:, :, 0])


def test_fill_sky_sets_sky_to_the_far_quantile() -> None:
    depth = torch.arange(100, dtype=torch.float32).reshape(10, 10) + 1
    sky = torch.zeros(10, 10)
    sky[:3] = 0.9  # 30 sky pixels
    filled = da3.fill_sky(depth, sky)
    assert (filled[3:] == depth[3:]).all()
    assert torch.allclose(filled[:3], torch.quantile(depth[3:].flatten(), 0.99))
    few = torch.zeros(10, 10)
    few[0, :5] = 0.9  # 5 sky pixels: left alone, as upstream
    assert torch.equal(da3.fill_sky(depth, few), depth)


def _spec(name: str, res: int):  # the goldens were made at process_res 140
    spec = get_spec(name)
    return replace(spec, input=replace(spec.input, size=(res, res)))


def _resized(golden: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    values = torch.from_numpy(golden)[None, None]
    return F.interpolate(values, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def _close(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape
    span = float(ref.max() - ref.min())
    assert float(np.abs(ours - ref).max()) <= 1e-4 * span


@pytest.mark.parametrize(
    ("config", "table", "golden", "images"),
    [
        (TINY, "da3_tiny", "depth-anything-3-tiny_official.npz", ("square", "wide")),
        (TINY_G, "da3_tinyg", "depth-anything-3-tinyg_official.npz", ("wide",)),
    ],
)
def test_any_view_parity_with_the_official_api(
    expected_dir: Path, config: da3.DA3Config, table: str, golden: str, images: tuple[str, ...]
) -> None:
    data = np.load(expected_dir / golden)
    network = _tiny(config, table, int(data["seed"]))
    spec = _spec("depth-anything-3-small", int(data["process_res"]))
    estimator = Estimator(spec, network)
    for name in images:
        image = load_image(expected_dir / "inputs" / f"{name}.png")
        result = estimator.predict(image)
        size = (image.height, image.width)
        assert result.kind == "relative_inverse"
        _close(result.depth, 1.0 / _resized(data[f"{name}_depth"], size))
        if f"{name}_confidence" in data:
            assert result.confidence is not None
            _close(result.confidence, _resized(data[f"{name}_confidence"], size))
        if f"{name}_intrinsics" in data:
            k = data[f"{name}_intrinsics"]  # at the network input size
            net_h, net_w = data[f"{name}_depth"].shape
            camera = result.camera
            assert camera is not None and camera.source == "estimated"
            assert camera.estimated_by == spec.name
            assert math.isclose(camera.fx, k[0, 0] * image.width / net_w, rel_tol=1e-4)
            assert math.isclose(camera.fy, k[1, 1] * image.height / net_h, rel_tol=1e-4)


def test_user_camera_wins_over_the_estimated_one(expected_dir: Path) -> None:
    estimator = Estimator(_spec("depth-anything-3-small", 140), _tiny(TINY, "da3_tiny"))
    rgb = load_image(expected_dir / "inputs" / "wide.png").rgb
    camera = Camera(fx=150.0, fy=150.0, cx=115.0, cy=75.0, width=230, height=150)
    result = estimator.predict(Image(rgb=rgb, camera=camera, source="test"))
    assert result.camera == camera


@pytest.fixture(scope="module")
def mono_golden(expected_dir: Path) -> np.lib.npyio.NpzFile:
    return np.load(expected_dir / "depth-anything-3-mono-tiny_official.npz")


def test_mono_parity_with_the_official_api(expected_dir: Path, mono_golden) -> None:
    network = _tiny(TINY_MONO, "da3mono_tiny", int(mono_golden["seed"]))
    estimator = Estimator(_spec("depth-anything-3-mono-large", 140), network)
    for name in ("square", "wide"):
        image = load_image(expected_dir / "inputs" / f"{name}.png")
        result = estimator.predict(image)
        _close(result.depth, 1.0 / _resized(mono_golden[f"{name}_depth"], result.depth.shape))
        assert result.confidence is None and result.sky is not None
        assert result.sky.dtype == np.bool_ and result.sky.shape == result.depth.shape
        official = mono_golden[f"{name}_sky"]
        assert official.mean() > 0.05 and abs(result.sky.mean() - official.mean()) < 0.03


def test_metric_is_focal_times_output_over_300(expected_dir: Path, mono_golden) -> None:
    network = _tiny(TINY_MONO, "da3mono_tiny", int(mono_golden["seed"]))
    estimator = Estimator(_spec("depth-anything-3-metric-large", 140), network)
    image = load_image(expected_dir / "inputs" / "wide.png")
    camera = Camera(fx=200.0, fy=180.0, cx=115.0, cy=75.0, width=230, height=150)
    result = estimator.predict(Image(rgb=image.rgb, camera=camera, source="test"))
    assert result.kind == "metric" and result.camera == camera
    ref = mono_golden["wide_depth"]
    net_h, net_w = ref.shape
    focal = (200.0 * net_w / 230 + 180.0 * net_h / 150) / 2  # network-input pixels
    _close(result.depth, _resized(ref, (150, 230)) * focal / 300.0)
    # without a camera: the default one, 60 degrees across
    default = estimator.predict(image)
    assert default.camera is not None and default.camera.source == "default"


def test_full_size_input_runs_at_504(expected_dir: Path) -> None:
    estimator = Estimator(get_spec("depth-anything-3-small"), _tiny(TINY, "da3_tiny"))
    image = load_image(expected_dir / "inputs" / "wide.png")
    result = estimator.predict([image, image], batch_size=2)[0]
    assert result.depth.shape == (150, 230) and np.isfinite(result.depth).all()
    assert (result.depth > 0).all()


def test_thin_images_predict() -> None:
    estimator = Estimator(get_spec("depth-anything-3-mono-large"), _tiny(TINY_MONO, "da3mono_tiny"))
    rng = np.random.default_rng(0)
    for height, width in ((1, 16), (1, 5000), (5000, 1), (2, 2)):
        rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        result = estimator.predict(rgb)
        assert result.depth.shape == (height, width) and np.isfinite(result.depth).all()


# ------------------------------------------------------------------ weights on disk


@pytest.fixture
def tiny_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(da3.PRESETS, "small", TINY)


def test_official_safetensors_file_loads_strictly(tmp_path: Path, tiny_preset: None) -> None:
    path = tmp_path / "model.safetensors"
    save_file(official_checkpoint("da3_tiny", seed=2), str(path))
    spec = get_spec("depth-anything-3-small")
    network = weights.build_network(spec, find_weights(spec, path))
    assert isinstance(network, da3.AnyViewNetwork)
    reference = _tiny(TINY, "da3_tiny", seed=2)
    x = torch.randn(1, 3, 42, 56)
    with torch.inference_mode():
        torch.testing.assert_close(network(x).depth, reference(x).depth)


def test_hub_snapshot_folder_loads(tmp_path: Path, tiny_preset: None) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_name": "da3-small"}))
    save_file(official_checkpoint("da3_tiny", seed=2), str(tmp_path / "model.safetensors"))
    spec = get_spec("depth-anything-3-small")
    location = find_weights(spec, tmp_path)
    assert location.kind == "hf_dir"
    assert isinstance(weights.build_network(spec, location), da3.AnyViewNetwork)


def test_unexpected_key_is_a_weights_error(tmp_path: Path, tiny_preset: None) -> None:
    state = official_checkpoint("da3_tiny")
    state["model.head.extra.weight"] = torch.zeros(3)
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    spec = get_spec("depth-anything-3-small")
    with pytest.raises(WeightsError, match=r"unexpected: head\.extra\.weight"):
        weights.build_network(spec, find_weights(spec, path))


def test_missing_weights_name_the_hub_repo_and_licence() -> None:
    with pytest.raises(WeightsError, match=r"depth-anything/DA3-GIANT-1\.1.*CC-BY-NC-4\.0"):
        find_weights(get_spec("depth-anything-3-giant"))
