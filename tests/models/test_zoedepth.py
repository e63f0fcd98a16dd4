"""ZoeDepth (N, K, NK): key conversion against the official layout, strict loading, the
parameter count, and end-to-end parity with transformers on the same weights.

The official code needs timm 0.6 through torch.hub, which does not run here, so the
reference is transformers: its ``ZoeDepthImageProcessorPil`` (pre-processing), the same
``ZoeDepthForDepthEstimation`` weights, and its ``post_process_depth_estimation``
(whose torchvision resize is stood in for by the identical ``F.interpolate`` call).

Checkpoints are random, in the official layout (``official_keys`` below, written from
isl-org/ZoeDepth d87f17b, MiDaS' DPT_BEiT_L_384 and timm's beit_large_patch16_384), never
downloaded. ``tests/fixtures/keys/keys_zoedepth_{n,k,nk}.txt`` hold the full-size tables.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers.models.zoedepth import image_processing_pil_zoedepth as hf_processing

import depthlens
from depthlens.errors import MissingWeightsError, WeightsError
from depthlens.eval.published import NOT_TRANSCRIBED, PUBLISHED
from depthlens.io.images import load_image
from depthlens.models import zoedepth as zd
from depthlens.models.registry import get_spec
from depthlens.models.weights import load_strict
from tests.checkpoints import read_key_table

# A tiny config: 384-px BEiT windows as released (so the position bias table is the
# real one's length), a 32-wide 4-block ViT, narrow neck and heads.
TINY = zd.ZoeDepthConfig(
    vit_width=32,
    vit_depth=4,
    vit_heads=2,
    vit_mlp=64,
    hooked_blocks=(0, 1, 2, 3),
    neck_sizes=(8, 16, 32, 32),
    features=16,
    relative_features=8,
    bin_embedding=16,
    attractors=(4, 2, 2, 1),
    bins=(zd.BinConfig("nyu", 8, 1e-3, 10.0),),
)
TINY_K = zd.replace(
    TINY, bins=(zd.BinConfig("nyu", 8, 1e-3, 80.0),), bin_centres="normed", input_size=(384, 768)
)
TINY_NK = zd.replace(
    TINY,
    bins=(zd.BinConfig("nyu", 8, 1e-3, 10.0), zd.BinConfig("kitti", 8, 1e-3, 80.0)),
    router_layers_intermediate=32,
)
INPUTS = Path(__file__).parent.parent / "expected" / "inputs"
ZOO = {"nyu": "zoedepth-nyu", "kitti": "zoedepth-kitti", "nyu-kitti": "zoedepth-nyu-kitti"}
FIXTURES = {"nyu": "zoedepth_n", "kitti": "zoedepth_k", "nyu-kitti": "zoedepth_nk"}
# Parameters of the official layout (tensors of floats, without the BEiT index and the
# log-binomial buffers), as the full-size key tables count them.
PARAMETERS = {"nyu": 344_816_746, "kitti": 344_820_487, "nyu-kitti": 346_100_355}


def official_keys(config: zd.ZoeDepthConfig) -> dict[str, tuple[int, ...]]:
    """The official state dict layout of ``config``: name -> shape.

    timm Beit (blocks with gamma_1/2, q_bias/v_bias, a per-block relative position bias
    table and index, mean-pooling fc_norm and a 1000-class head), MiDaS' DPT neck
    (act_postprocess1-4, scratch.layer*_rn, refinenet1-4 with both resConfUnits,
    output_conv), and the ZoeDepth heads (zoedepth_v1.py / zoedepth_nk_v1.py with the
    layers in zoedepth/models/layers/).
    """
    d, p, mlp = config.vit_width, config.vit_patch, config.vit_mlp
    window = config.vit_side // p
    b, f, emb, rel = "core.core.pretrained.model.", config.features, config.bin_embedding, 32
    rel = config.relative_features
    keys: dict[str, tuple[int, ...]] = {
        b + "cls_token": (1, 1, d),
        b + "patch_embed.proj.weight": (d, 3, p, p),
        b + "patch_embed.proj.bias": (d,),
    }
    for i in range(config.vit_depth):
        k = f"{b}blocks.{i}."
        keys |= {k + "gamma_1": (d,), k + "gamma_2": (d,)}
        keys |= {k + "norm1.weight": (d,), k + "norm1.bias": (d,)}
        keys |= {k + "attn.q_bias": (d,), k + "attn.v_bias": (d,)}
        keys[k + "attn.relative_position_bias_table"] = (
            (2 * window - 1) ** 2 + 3,
            config.vit_heads,
        )
        keys[k + "attn.relative_position_index"] = (window**2 + 1, window**2 + 1)
        keys |= {k + "attn.qkv.weight": (3 * d, d)}
        keys |= {k + "attn.proj.weight": (d, d), k + "attn.proj.bias": (d,)}
        keys |= {k + "norm2.weight": (d,), k + "norm2.bias": (d,)}
        keys |= {k + "mlp.fc1.weight": (mlp, d), k + "mlp.fc1.bias": (mlp,)}
        keys |= {k + "mlp.fc2.weight": (d, mlp), k + "mlp.fc2.bias": (d,)}
    keys |= {b + "fc_norm.weight": (d,), b + "fc_norm.bias": (d,)}
    keys |= {b + "head.weight": (1000, d), b + "head.bias": (1000,)}
    neck = config.neck_sizes
    resample = {
        1: (neck[0], neck[0], 4, 4),
        2: (neck[1], neck[1], 2, 2),
        4: (neck[3], neck[3], 3, 3),
    }
    for n in range(1, 5):
        a = f"core.core.pretrained.act_postprocess{n}."
        keys |= {a + "0.project.0.weight": (d, 2 * d), a + "0.project.0.bias": (d,)}
        keys |= {a + "3.weight": (neck[n - 1], d, 1, 1), a + "3.bias": (neck[n - 1],)}
        if n in resample:
            keys |= {a + "4.weight": resample[n], a + "4.bias": (neck[n - 1],)}
    s = "core.core.scratch."
    for n in range(1, 5):
        keys[f"{s}layer{n}_rn.weight"] = (f, neck[n - 1], 3, 3)
    for n in range(1, 5):
        r = f"{s}refinenet{n}."
        keys |= {r + "out_conv.weight": (f, f, 1, 1), r + "out_conv.bias": (f,)}
        for unit in (1, 2):
            for conv in (1, 2):
                c = f"{r}resConfUnit{unit}.conv{conv}."
                keys |= {c + "weight": (f, f, 3, 3), c + "bias": (f,)}
    keys |= {s + "output_conv.0.weight": (f // 2, f, 3, 3), s + "output_conv.0.bias": (f // 2,)}
    keys |= {s + "output_conv.2.weight": (rel, f // 2, 3, 3), s + "output_conv.2.bias": (rel,)}
    keys |= {s + "output_conv.4.weight": (1, rel, 1, 1), s + "output_conv.4.bias": (1,)}

    def net(name: str, inner: int, cin: int, cout: int) -> None:
        keys.update({f"{name}._net.0.weight": (inner, cin, 1, 1), f"{name}._net.0.bias": (inner,)})
        keys.update({f"{name}._net.2.weight": (cout, inner, 1, 1), f"{name}._net.2.bias": (cout,)})

    def binomial(name: str, last_in: int, factor: int, n_bins: int) -> None:
        hidden = (last_in + emb) // factor
        keys.update({f"{name}.mlp.0.weight": (hidden, last_in + emb, 1, 1)})
        keys.update({f"{name}.mlp.0.bias": (hidden,), f"{name}.mlp.2.bias": (4,)})
        keys.update({f"{name}.mlp.2.weight": (4, hidden, 1, 1)})
        t = f"{name}.log_binomial_transform."
        keys.update({t + "k_idx": (1, n_bins, 1, 1), t + "K_minus_1": (1, 1, 1, 1)})

    keys |= {"conv2.weight": (f, f, 1, 1), "conv2.bias": (f,)}
    if not config.routed:
        n_bins = config.bins[0].n_bins
        widen = 2 if config.bin_centres == "normed" else 1  # AttractorLayer predicts A and B
        net("seed_bin_regressor", 256, f, n_bins)  # SeedBinRegressor: mlp_dim 256
        net("seed_projector", 128, f, emb)  # Projector: mlp_dim 128
        for i in range(4):
            net(f"projectors.{i}", 128, f, emb)
        for i, count in enumerate(config.attractors):
            net(f"attractors.{i}", emb, emb, count * widen)
        binomial("conditional_log_binomial", rel + 1, 2, n_bins)  # +1: relative depth
        return keys
    # NK: mlp_dim = bin_embedding_dim // 2 throughout; each Attractor gets n_attractors[i]
    # as its n_bins and keeps the default 16 attractors.
    h, ff = 128, config.router_layers_intermediate
    keys |= {"patch_transformer.embedding_convPxP.weight": (h, f, 1, 1)}
    keys |= {"patch_transformer.embedding_convPxP.bias": (h,)}
    for i in range(4):
        t = f"patch_transformer.transformer_encoder.layers.{i}."
        keys |= {t + "self_attn.in_proj_weight": (3 * h, h), t + "self_attn.in_proj_bias": (3 * h,)}
        keys |= {t + "self_attn.out_proj.weight": (h, h), t + "self_attn.out_proj.bias": (h,)}
        keys |= {t + "linear1.weight": (ff, h), t + "linear1.bias": (ff,)}
        keys |= {t + "linear2.weight": (h, ff), t + "linear2.bias": (h,)}
        keys |= {t + "norm1.weight": (h,), t + "norm1.bias": (h,)}
        keys |= {t + "norm2.weight": (h,), t + "norm2.bias": (h,)}
    keys |= {"mlp_classifier.0.weight": (h, h), "mlp_classifier.0.bias": (h,)}
    keys |= {"mlp_classifier.2.weight": (2, h), "mlp_classifier.2.bias": (2,)}
    for conf in config.bins:
        net(f"seed_bin_regressors.{conf.name}", emb // 2, f, conf.n_bins)
    net("seed_projector", emb // 2, f, emb)
    for i in range(4):
        net(f"projectors.{i}", emb // 2, f, emb)
    for conf in config.bins:
        for i in range(4):
            net(f"attractors.{conf.name}.{i}", emb, emb, 16)
    for conf in config.bins:
        binomial(f"conditional_log_binomial.{conf.name}", rel, 4, conf.n_bins)
    return keys


def official_checkpoint(config: zd.ZoeDepthConfig, seed: int = 0) -> dict[str, Any]:
    """A random checkpoint in the official layout and container (``{"model": ...}``)."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for name, shape in official_keys(config).items():
        if name.endswith("relative_position_index"):
            state[name] = torch.randint(0, shape[0], shape, generator=gen)
        elif name.endswith("k_idx"):
            state[name] = torch.arange(shape[1]).view(shape)
        elif name.endswith("K_minus_1"):
            state[name] = torch.full(shape, float(shape[0]))
        elif re.search(r"norm\d?\.weight$|gamma_\d$", name):
            state[name] = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
            state[name] = torch.randn(shape, generator=gen) / math.sqrt(max(fan_in, 1))
    return {"model": state}


def _tiny(config: zd.ZoeDepthConfig) -> zd.ZoeDepthNetwork:
    network = zd.build_network(config)
    converted = zd.convert_official_state_dict(official_checkpoint(config)["model"])
    load_strict(network, converted, "tiny")
    return network.eval()


@pytest.mark.parametrize("variant", list(zd.PRESETS))
def test_official_table_converts_to_the_full_network(variant: str) -> None:
    config = zd.PRESETS[variant]
    table = read_key_table(FIXTURES[variant])
    assert table == official_keys(config)  # the fixture is this layout
    with torch.device("meta"):
        network = zd.build_network(config)
    ours = {k: tuple(v.shape) for k, v in network.state_dict().items()}
    meta = {k: torch.empty(s, device="meta") for k, s in table.items()}
    assert {k: tuple(v.shape) for k, v in zd.convert_official_state_dict(meta).items()} == ours


@pytest.mark.parametrize("variant", list(zd.PRESETS))
def test_parameter_count(variant: str) -> None:
    table = read_key_table(FIXTURES[variant])
    dropped = ("relative_position_index", "k_idx", "K_minus_1")
    count = sum(math.prod(s) for k, s in table.items() if not k.endswith(dropped))
    assert count == PARAMETERS[variant]
    with torch.device("meta"):
        network = zd.build_network(zd.PRESETS[variant])
    # transformers keeps all but timm's ImageNet head and pooling norm (1,027,048 values)
    assert sum(p.numel() for p in network.parameters()) == count - 1000 * 1024 - 1000 - 2048
    assert get_spec(ZOO[variant]).params_millions == round(count / 1e6, 1)


@pytest.mark.parametrize(
    ("config", "variant"), [(TINY, "nyu"), (TINY_K, "kitti"), (TINY_NK, "nyu-kitti")]
)
def test_config_is_read_from_a_tiny_checkpoint(config: zd.ZoeDepthConfig, variant: str) -> None:
    preset = zd.PRESETS[variant]
    read = zd.config_for_state_dict(official_checkpoint(config)["model"], preset)
    # the bins' ranges and the NK attractor counts are not stored: the preset's stay
    expected = zd.replace(config, bins=tuple(zd.replace(b, n_bins=8) for b in preset.bins))
    if config.routed:
        expected = zd.replace(expected, attractors=preset.attractors)
    assert read == expected
    with pytest.raises(WeightsError, match="Not a ZoeDepth checkpoint"):
        zd.config_for_state_dict({"conv2.weight": torch.zeros(1)}, preset)


def test_strict_load_names_a_missing_key() -> None:
    state = zd.convert_official_state_dict(official_checkpoint(TINY)["model"])
    del state["model.metric_head.conv2.weight"]
    with pytest.raises(WeightsError, match=re.escape("missing: model.metric_head.conv2.weight")):
        load_strict(zd.build_network(TINY), state, "tiny")


def _tv_shim() -> SimpleNamespace:
    """torchvision's tensor ``resize`` as transformers calls it: F.interpolate with
    align_corners=False and no antialias (torchvision/transforms/v2/functional)."""

    def resize(x: torch.Tensor, size: list[int], interpolation: str, antialias: bool) -> Any:
        assert not antialias
        return F.interpolate(x[None], size=size, mode=interpolation, align_corners=False)[0]

    return SimpleNamespace(resize=resize, InterpolationMode=SimpleNamespace(BICUBIC="bicubic"))


def _reference(network: zd.ZoeDepthNetwork, rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    processor = hf_processing.ZoeDepthImageProcessorPil(
        size={"height": size[0], "width": size[1]},
        ensure_multiple_of=32,
        keep_aspect_ratio=True,
        do_pad=True,
        image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
    )
    pixels = processor(rgb, return_tensors="pt").pixel_values
    with torch.inference_mode():
        out = network.model(pixel_values=pixels)
    result = processor.post_process_depth_estimation(out, source_sizes=[rgb.shape[:2]])
    return result[0]["predicted_depth"].numpy()


@pytest.mark.parametrize(
    ("config", "shape"),
    [(TINY, (96, 96)), (TINY, (90, 160)), (TINY_K, (70, 230)), (TINY_NK, (120, 100))],
    ids=["n-square", "n-wide", "k-wide", "nk-tall"],
)
def test_end_to_end_matches_transformers(
    config: zd.ZoeDepthConfig, shape: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hf_processing, "tvF", _tv_shim(), raising=False)
    network = _tiny(config)
    rgb = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    spec = get_spec("zoedepth-kitti" if config.input_size[1] == 768 else "zoedepth-nyu")
    x = torch.from_numpy(zd.preprocess(rgb, spec))[None]
    with torch.inference_mode():
        ours = zd.postprocess(network(x), shape)[0].numpy()
    golden = _reference(network, rgb, config.input_size)
    assert ours.shape == golden.shape == shape
    span = float(golden.max() - golden.min())
    error = float(np.abs(ours - golden).max()) / span
    print(f"parity {config.input_size} {shape}: max |ours - transformers| = {error:.2e} x range")
    assert span > 0 and error <= 1e-4


def test_nk_routes_each_image_of_a_batch_by_its_own_vote() -> None:
    network = _tiny(TINY_NK)
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        batch = network(x)
        ones = torch.cat([network(x[:1]), network(x[1:])])
    torch.testing.assert_close(batch, ones)


def test_load_model_on_an_official_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "ZoeD_M12_N.pt"
    torch.save(official_checkpoint(TINY), path)
    estimator = depthlens.load_model("zoedepth-nyu", weights=path, device="cpu")
    result = estimator.predict(INPUTS / "wide.png")
    assert (
        result.kind == "metric"
        and result.depth.shape == load_image(INPUTS / "wide.png").rgb.shape[:2]
    )
    assert np.isfinite(result.depth).all() and (result.depth > 0).all()


def test_missing_weights_say_what_to_download(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DEPTHLENS_HOME", str(tmp_path))
    monkeypatch.setenv("DEPTHLENS_OFFLINE", "1")
    with pytest.raises(MissingWeightsError) as info:
        depthlens.load_model("zoedepth-nyu-kitti", device="cpu")
    text = str(info.value)
    assert "ZoeD_M12_NK.pt" in text and "releases/download/v1.0/ZoeD_M12_NK.pt" in text
    assert "Intel/zoedepth-nyu-kitti" in text and "MIT" in text


def test_zoo_rows() -> None:
    for variant, name in ZOO.items():
        spec = get_spec(name)
        assert (spec.family, spec.variant, spec.kind, spec.licence) == (
            "zoedepth", variant, "metric", "MIT",
        )  # fmt: skip
        assert spec.input.size == zd.PRESETS[variant].input_size
        assert (spec.input.mean, spec.input.std) == ((0.5,) * 3, (0.5,) * 3)


def test_published_rows() -> None:
    nyu = PUBLISHED["zoedepth-nyu"]["nyu"]
    assert (nyu.metrics["delta1"], nyu.metrics["abs_rel"], nyu.alignment) == (0.951, 0.077, "none")
    kitti = PUBLISHED["zoedepth-kitti"]["kitti"]
    assert (kitti.metrics["delta1"], kitti.metrics["rmse_log"]) == (0.971, 0.082)
    assert "zoedepth-nyu-kitti" in NOT_TRANSCRIBED
