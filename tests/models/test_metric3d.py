"""Metric3D v2: key conversion against the official tables, strict loading, the network
on a tiny config, the official letterbox pre/post-processing and the zoo entries.

Checkpoints are random, in the official layout (tests/checkpoints.py), never downloaded.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import depthlens
from depthlens.errors import WeightsError
from depthlens.geometry.camera import Camera
from depthlens.io.images import Image
from depthlens.models import metric3d as m3d
from depthlens.models.registry import get_spec
from depthlens.models.weights import find_weights, load_strict
from tests.checkpoints import metric3d_checkpoint, read_key_table

TINY = m3d.Metric3DConfig(
    embed_dim=64,
    depth=2,
    num_heads=1,
    pos_grid=4,
    feature_channels=(16, 32, 64, 64),
    decoder_channels=(8, 8, 32, 64, 64),
    hidden_channels=8,
    iters=2,
    num_bins=16,
)


def _tiny_network(seed: int = 0) -> m3d.Metric3DNetwork:
    network = m3d.build_network(TINY)
    state = m3d.convert_official_state_dict(metric3d_checkpoint(TINY, seed))
    load_strict(network, state, "tiny")
    return network.eval()


@pytest.mark.parametrize(
    ("preset", "table"), [("v2-small", "metric3d_vit_small"), ("v2-large", "metric3d_vit_large")]
)
def test_converted_official_keys_equal_network_keys(preset: str, table: str) -> None:
    official = read_key_table(table)
    with torch.device("meta"):
        network = m3d.build_network(m3d.PRESETS[preset])
    ours = {k: tuple(v.shape) for k, v in network.state_dict().items()}
    converted = {}
    for key, shape in official.items():
        name = m3d.official_key_to_ours(key)
        if name is None:
            assert ".downsample.1." in key or key.endswith("mask_token")
            continue
        assert name not in converted, f"two official keys map to {name}"
        converted[name] = shape
    assert converted == ours


def test_dropped_downsample_duplicates_norm3() -> None:
    official = read_key_table("metric3d_vit_small")
    for key, shape in official.items():
        if ".downsample.1." in key:
            assert official[key.replace(".downsample.1.", ".norm3.")] == shape


def test_preset_parameter_counts() -> None:
    # CHECKPOINTS.md §0.2: 37.49 M (S, no mask_token) and 411.94 M (L, computed there)
    for preset, millions in (("v2-small", 37.49), ("v2-large", 411.94)):
        with torch.device("meta"):
            network = m3d.build_network(m3d.PRESETS[preset])
        count = sum(p.numel() for p in network.parameters())
        large_extra = 1024 if preset == "v2-large" else 0  # table L includes mask_token
        assert abs((count + large_extra) / 1e6 - millions) < 0.01


def test_config_rejects_inconsistent_channels() -> None:
    with pytest.raises(ValueError, match="decoder_channels"):
        m3d.Metric3DConfig(decoder_channels=(48, 96, 100, 384, 384))


def test_pos_embed_interpolation_follows_dinov2_offset() -> None:
    pos = torch.randn(1, 1 + 16, 8)
    assert m3d.interpolate_pos_embed(pos, 4, 4) is pos
    out = m3d.interpolate_pos_embed(pos, 3, 6)
    assert out.shape == (1, 1 + 18, 8)
    grid = pos[:, 1:].reshape(1, 4, 4, 8).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, scale_factor=(3.1 / 4, 6.1 / 4), mode="bicubic", antialias=False)
    torch.testing.assert_close(out[:, 1:], ref.permute(0, 2, 3, 1).reshape(1, 18, 8))
    torch.testing.assert_close(out[:, :1], pos[:, :1])


def test_tiny_network_outputs() -> None:
    network = _tiny_network()
    with torch.inference_mode():
        out = network(torch.randn(2, 3, 56, 84))
    assert out.depth.shape == (2, 1, 56, 84)
    assert out.confidence.shape == (2, 1, 56, 84)
    assert out.normal.shape == (2, 4, 56, 84)
    assert out.depth.min() >= 0.1 - 1e-5 and out.depth.max() <= 200 + 1e-3
    torch.testing.assert_close(out.normal[:, :3].norm(dim=1), torch.ones(2, 56, 84))
    assert (out.normal[:, 3] > 0.01).all()


def test_encoder_resizes_inputs_not_divisible_by_patch() -> None:
    network = _tiny_network()
    with torch.inference_mode():
        tokens, gh, gw = network.encoder(torch.randn(1, 3, 50, 80))
    assert (gh, gw) == (4, 6)
    assert tokens.shape == (1, 1 + 4 + 24, 64)


def test_iterations_refine_the_state() -> None:
    one = _tiny_network()
    one.decoder.iters = 1
    x = torch.randn(1, 3, 56, 56)
    with torch.inference_mode():
        a = one(x).depth
        one.decoder.iters = 2
        b = one(x).depth
    assert not torch.allclose(a, b)


def test_checkpoint_with_mask_token_and_bare_dict_load(tmp_path: Path) -> None:
    state = metric3d_checkpoint(TINY)
    state["depth_model.encoder.mask_token"] = torch.zeros(1, TINY.embed_dim)
    path = tmp_path / "bare.pth"
    torch.save(state, path)
    spec = get_spec("metric3d-v2-small")
    network = depthlens.models.weights.build_network(spec, find_weights(spec, path))
    assert isinstance(network, m3d.Metric3DNetwork)
    assert network.config.embed_dim == TINY.embed_dim


def test_unexpected_key_is_a_weights_error(tmp_path: Path) -> None:
    state = metric3d_checkpoint(TINY)
    state["depth_model.decoder.extra.weight"] = torch.zeros(3)
    path = tmp_path / "bad.pth"
    torch.save({"model_state_dict": state}, path)
    spec = get_spec("metric3d-v2-small")
    with pytest.raises(WeightsError, match=r"unexpected: decoder\.extra\.weight"):
        depthlens.models.weights.build_network(spec, find_weights(spec, path))


def test_missing_weights_name_the_file() -> None:
    spec = get_spec("metric3d-v2-large")
    with pytest.raises(WeightsError, match=r"metric_depth_vit_large_800k\.pth.*BSD-2-Clause"):
        find_weights(spec)


def test_letterbox_preprocess_matches_hubconf() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    tensor, box = m3d.preprocess(rgb)
    scale = min(616 / 300, 1064 / 400)
    assert box.scale == scale
    assert box.resized == (int(300 * scale), int(400 * scale)) == (616, 821)
    assert box.pad == (0, 0, 121, 122)
    assert tensor.shape == (3, 616, 1064) and tensor.dtype == np.float32
    # padding is the uint8-rounded mean colour, normalised on the 0-255 scale
    expected_pad = (np.array(m3d.PAD_RGB) - np.array(m3d.MEAN_255)) / np.array(m3d.STD_255)
    np.testing.assert_allclose(tensor[:, 5, 0], expected_pad, atol=1e-6)
    np.testing.assert_allclose(tensor[:, 5, -1], expected_pad, atol=1e-6)


def test_canonical_to_metric_scales_and_clamps() -> None:
    depth = torch.tensor([1.0, 100.0, 200.0])
    out = m3d.canonical_to_metric(depth, fx=500.0, scale=2.0)
    torch.testing.assert_close(out, torch.tensor([1.0, 100.0, 200.0]))
    out = m3d.canonical_to_metric(depth, fx=2000.0, scale=1.0)
    torch.testing.assert_close(out, torch.tensor([2.0, 200.0, 300.0]))


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("metric3d") / "metric_depth_vit_small_800k.pth"
    torch.save({"model_state_dict": metric3d_checkpoint(TINY, seed=1)}, path)
    return path


def test_load_model_predicts_meters(tiny_checkpoint: Path) -> None:
    estimator = depthlens.load_model("metric3d-v2-small", weights=tiny_checkpoint, device="cpu")
    rgb = np.random.default_rng(1).integers(0, 256, (120, 90, 3), dtype=np.uint8)
    camera = Camera(fx=100.0, fy=100.0, cx=45.0, cy=60.0, width=90, height=120)
    result = estimator.predict(Image(rgb=rgb, camera=camera, source="test"))
    assert result.kind == "metric"
    assert result.depth.shape == (120, 90) and result.depth.dtype == np.float32
    assert (result.depth > 0).all() and (result.depth <= 300).all()
    assert result.confidence is not None and result.confidence.shape == (120, 90)
    assert result.normals is not None and result.normals.shape == (120, 90, 3)
    np.testing.assert_allclose(np.linalg.norm(result.normals, axis=-1), 1.0, rtol=1e-5)
    assert result.camera == camera

    # depth is proportional to the focal length (until the 300 m clamp)
    doubled = Camera(fx=200.0, fy=200.0, cx=45.0, cy=60.0, width=90, height=120)
    twice = estimator.predict(Image(rgb=rgb, camera=doubled, source="test"))
    np.testing.assert_allclose(twice.depth, 2 * result.depth, rtol=1e-5)

    # the canonical range [0.1, 200] m at f = 1000 px maps to fx * scale / 1000 of it
    scale = min(616 / 120, 1064 / 90)
    ratio = 100.0 * scale / 1000.0
    assert result.depth.min() >= 0.1 * ratio * (1 - 1e-4)
    assert result.depth.max() <= 200 * ratio * (1 + 1e-4)


def test_load_model_without_camera_uses_default(tiny_checkpoint: Path) -> None:
    estimator = depthlens.load_model("metric3d-v2-small", weights=tiny_checkpoint, device="cpu")
    rgb = np.full((64, 64, 3), 128, dtype=np.uint8)
    result = estimator.predict(rgb)
    assert result.camera is not None
    assert math.isclose(result.camera.fx, Camera.default(64, 64).fx)
    assert np.isfinite(result.depth).all()


def test_parity_with_official_code_golden(expected_dir: Path) -> None:
    """tests/expected/README.md, "Metric3D v2": official code on TINY, seed 3, 56x84."""
    golden = np.load(expected_dir / "metric3d_tiny_official.npz")
    network = m3d.build_network(TINY)
    state = m3d.convert_official_state_dict(metric3d_checkpoint(TINY, int(golden["seed"])))
    load_strict(network, state, "tiny")
    with torch.inference_mode():
        out = network.eval()(torch.from_numpy(golden["input"]))
    window = (slice(20, 28), slice(40, 48))
    for name, ours in (
        ("depth", out.depth[0, 0][window]),
        ("confidence", out.confidence[0, 0][window]),
        ("normal", out.normal[0][:, window[0], window[1]]),
    ):
        ref = torch.from_numpy(golden[name])
        scale = ref.abs().max()
        torch.testing.assert_close(ours / scale, ref / scale, rtol=0, atol=1e-4)
