"""DPT / MiDaS v3.0: key conversion, parity with the official code, Hugging Face folders.

Goldens in tests/expected/dpt-*.npy come from isl-org/MiDaS's own ``DPTDepthModel`` with
timm 0.6.12 (tests/expected/README.md says how). Full-size DPT-Large is only built on the
meta device here; numbers are checked on the real-size hybrid and on a tiny ViT variant.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import DPTForDepthEstimation

from depthlens.errors import WeightsError
from depthlens.models import dpt
from depthlens.models.weights import load_strict
from tests.checkpoints import official_checkpoint, random_state_dict, read_key_table

EXPECTED = Path(__file__).resolve().parent.parent / "expected"
TABLES = {"large-384": "dpt_large_384", "hybrid-384": "dpt_hybrid_384"}

# Official architecture, fewer and narrower blocks (the goldens' tiny MiDaS model).
TINY_LARGE = dpt.DPTVariantConfig(
    hybrid=False,
    hidden_size=64,
    num_layers=4,
    num_heads=4,
    mlp_size=256,
    hooks=(0, 1, 2, 3),
    neck_sizes=(16, 32, 64, 64),
    features=32,
)
TINY_HYBRID = dpt.DPTVariantConfig(
    hybrid=True,
    hidden_size=64,
    num_layers=3,
    num_heads=4,
    mlp_size=256,
    hooks=(0, 1, 1, 2),
    neck_sizes=(32, 64, 64, 64),
    features=32,
    resnet_depths=(1, 1, 1),
    resnet_widths=(32, 64, 128),
    resnet_stem=16,
    resnet_groups=4,
)


def seeded_input(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """The (1, 3, height, width) network input the goldens were computed on."""
    return torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(seed))


def official_layout(config: dpt.DPTVariantConfig) -> dict[str, tuple[int, ...]]:
    """The official MiDaS key -> shape layout of ``config``, in official order.

    Derived from our converter's table and module shapes; for the presets it must equal
    the independent key tables (tested below), which is what makes it trustworthy for
    the tiny configs.
    """
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in dpt.build_network(config).state_dict().items()}
    layout: dict[str, tuple[int, ...]] = {}
    for official, ours in dpt.official_key_map(config).items():
        if not ours:  # timm's ImageNet classifier, 1000 classes
            layout[official] = (
                (1000, config.hidden_size) if official.endswith("weight") else (1000,)
            )
        else:
            first = shapes[ours[0]]
            layout[official] = (sum(shapes[k][0] for k in ours), *first[1:])
    return layout


def assert_close_to_golden(actual: np.ndarray, golden: np.ndarray) -> None:
    """Max |difference| within 1e-4 of the golden's value range."""
    assert actual.shape == golden.shape
    tolerance = 1e-4 * float(golden.max() - golden.min())
    assert float(np.abs(actual - golden).max()) <= tolerance


def load_official(config: dpt.DPTVariantConfig, state: dict[str, torch.Tensor]) -> dpt.DPTNetwork:
    network = dpt.build_network(config)
    load_strict(network, dpt.convert_official_state_dict(state, config), "official checkpoint")
    return network.eval()


# --- (1) key tables ------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(TABLES))
def test_official_table_converts_onto_module_keys(variant: str) -> None:
    config = dpt.PRESETS[variant]
    table = read_key_table(TABLES[variant])
    assert official_layout(config) == table  # names, shapes (order aside)
    with torch.device("meta"):
        network = dpt.build_network(config)
        official = {k: torch.empty(shape) for k, shape in table.items()}
    converted = dpt.convert_official_state_dict(official, config)
    expected = {k: tuple(v.shape) for k, v in network.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected
    network.load_state_dict(converted, strict=True, assign=True)


@pytest.mark.parametrize("variant", sorted(TABLES))
def test_parameter_count_matches_official(variant: str) -> None:
    """The official totals (344.06 M / 123.15 M) minus timm's classifier."""
    table = read_key_table(TABLES[variant])
    official_total = sum(int(np.prod(shape)) for shape in table.values())
    head = sum(int(np.prod(table[k])) for k in dpt.TIMM_HEAD_KEYS)
    with torch.device("meta"):
        network = dpt.build_network(dpt.PRESETS[variant])
    assert sum(p.numel() for p in network.parameters()) == official_total - head


def test_timm_head_is_dropped_and_qkv_split() -> None:
    state = random_state_dict(official_layout(TINY_LARGE), seed=1)
    converted = dpt.convert_official_state_dict(state, TINY_LARGE)
    assert not any(k.startswith("pretrained.") for k in converted)
    qkv = state["pretrained.model.blocks.2.attn.qkv.weight"]
    prefix = "dpt.encoder.layer.2.attention.attention"
    for index, part in enumerate(("query", "key", "value")):
        expected = qkv[index * 64 : (index + 1) * 64]
        assert torch.equal(converted[f"{prefix}.{part}.weight"], expected)


def test_training_container_is_unwrapped() -> None:
    state = random_state_dict(official_layout(TINY_LARGE), seed=2)
    container = {"model": state, "optimizer": {"state": {}}, "epoch": 3}
    plain = dpt.convert_official_state_dict(state, TINY_LARGE)
    wrapped = dpt.convert_official_state_dict(container, TINY_LARGE)
    assert plain.keys() == wrapped.keys()
    assert all(torch.equal(plain[k], wrapped[k]) for k in plain)


def test_missing_and_unknown_keys_are_reported() -> None:
    state = random_state_dict(official_layout(TINY_LARGE), seed=3)
    del state["scratch.refinenet2.out_conv.bias"]
    state["pretrained.model.fc_norm.weight"] = torch.ones(64)
    converted = dpt.convert_official_state_dict(state, TINY_LARGE)
    with pytest.raises(WeightsError) as error:
        load_strict(dpt.build_network(TINY_LARGE), converted, "dpt_tiny.pt")
    message = str(error.value)
    assert "neck.fusion_stage.layers.2.projection.bias" in message  # missing, our name
    assert "pretrained.model.fc_norm.weight" in message  # unknown, passed through


# --- (2) numerics against the official MiDaS code ---------------------------------------


@pytest.mark.parametrize(("height", "width"), [(64, 96), (80, 112)])
def test_tiny_large_matches_official(height: int, width: int) -> None:
    """80x112 is a multiple of 16 but not 32: MiDaS's size-matched fusion (patch 4)."""
    network = load_official(TINY_LARGE, random_state_dict(official_layout(TINY_LARGE), seed=0))
    with torch.no_grad():
        depth = network(seeded_input(height, width))
    golden = np.load(EXPECTED / f"dpt-large_tiny_{height}x{width}.npy")
    assert_close_to_golden(depth.numpy(), golden)


@pytest.fixture(scope="module")
def hybrid_checkpoint() -> dict[str, torch.Tensor]:
    return official_checkpoint("dpt_hybrid_384", seed=0)


def test_hybrid_matches_official(hybrid_checkpoint: dict[str, torch.Tensor]) -> None:
    """Real-size DPT-Hybrid, random official-layout weights, non-square 128x192 input."""
    network = load_official(dpt.PRESETS["hybrid-384"], hybrid_checkpoint)
    with torch.no_grad():
        depth = network(seeded_input(128, 192))
    assert depth.shape == (1, 128, 192)
    assert_close_to_golden(depth.numpy(), np.load(EXPECTED / "dpt-hybrid_net.npy"))


@pytest.mark.parametrize("name", ["square", "wide"])
def test_end_to_end_hybrid_matches_official_run(
    name: str, hybrid_checkpoint: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """isl-org/MiDaS run.py on the same image and weights gives the golden."""
    import depthlens

    path = tmp_path_factory.getbasetemp() / "dpt_hybrid_384.pt"
    if not path.exists():
        torch.save(hybrid_checkpoint, path)
    rgb = np.asarray(Image.open(EXPECTED / "inputs" / f"{name}.png").convert("RGB"))
    depth = depthlens.load_model("dpt-hybrid", weights=path).predict(rgb).depth
    assert depth.dtype == np.float32
    assert_close_to_golden(depth, np.load(EXPECTED / f"dpt-hybrid_{name}.npy"))


# --- (3) transformers: same numbers where it works, and its folders load ---------------


@pytest.mark.parametrize("config", [TINY_LARGE, TINY_HYBRID], ids=["large", "hybrid"])
def test_matches_transformers_on_square_input(config: dpt.DPTVariantConfig) -> None:
    """At the training size transformers' own forward needs none of our patches."""
    torch.manual_seed(0)
    reference = DPTForDepthEstimation(dpt.to_hf_config(config)).eval()
    network = dpt.build_network(config).eval()
    network.load_state_dict(reference.state_dict(), strict=True)
    x = seeded_input(384, 384)
    with torch.no_grad():
        expected = reference(pixel_values=x).predicted_depth
        actual = network(x)
    assert torch.allclose(actual, expected, rtol=0, atol=1e-5 * float(expected.abs().max()))


@pytest.mark.parametrize("config", [TINY_LARGE, TINY_HYBRID], ids=["large", "hybrid"])
def test_hf_folder_loads_into_the_same_network(
    config: dpt.DPTVariantConfig, tmp_path: Path
) -> None:
    torch.manual_seed(1)
    saved = DPTForDepthEstimation(dpt.to_hf_config(config)).eval()
    saved.save_pretrained(tmp_path)
    network = dpt.network_from_hf_folder(tmp_path, config).eval()
    assert isinstance(network, dpt.DPTNetwork)
    direct = dpt.build_network(config).eval()
    direct.load_state_dict(saved.state_dict(), strict=True)
    x = seeded_input(64, 96)  # non-square: only our forward handles it
    with torch.no_grad():
        assert torch.equal(network(x), direct(x))


@pytest.mark.parametrize(
    "change",
    [
        {"num_attention_heads": 8},
        {"backbone_out_indices": [0, 1, 3, 3]},
        {"fusion_hidden_size": 16},
    ],
    ids=lambda change: next(iter(change)),
)
def test_hf_folder_of_another_architecture_is_rejected(
    change: dict[str, object], tmp_path: Path
) -> None:
    """Head count and hooks change no tensor shape, so the folder's config is checked."""
    DPTForDepthEstimation(dpt.to_hf_config(TINY_LARGE)).save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), **change}))
    with pytest.raises(WeightsError, match="different DPT"):
        dpt.network_from_hf_folder(tmp_path, TINY_LARGE)


def test_hf_folder_with_missing_tensor_is_rejected(tmp_path: Path) -> None:
    DPTForDepthEstimation(dpt.to_hf_config(TINY_LARGE)).save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    del tensors["neck.convs.1.weight"]
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(WeightsError, match=r"missing: neck\.convs\.1\.weight"):
        dpt.network_from_hf_folder(tmp_path, TINY_LARGE)


def test_folder_without_config_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"no config\.json"):
        dpt.network_from_hf_folder(tmp_path, TINY_LARGE)


# --- shapes and bad input -----------------------------------------------------------------


def test_output_shape_and_non_negative() -> None:
    network = dpt.build_network(TINY_HYBRID).eval()
    with torch.no_grad():
        depth = network(seeded_input(96, 160).repeat(2, 1, 1, 1))
    assert depth.shape == (2, 96, 160)
    assert bool((depth >= 0).all())


@pytest.mark.parametrize("shape", [(1, 3, 100, 96), (1, 1, 64, 64), (3, 64, 64)])
def test_bad_input_raises(shape: tuple[int, ...]) -> None:
    network = dpt.build_network(TINY_LARGE)
    with pytest.raises(ValueError):
        network(torch.zeros(shape))


def test_config_rejects_bad_hooks() -> None:
    with pytest.raises(ValueError):
        dpt.DPTVariantConfig(**{**TINY_LARGE.__dict__, "hooks": (0, 1, 2, 4)})
    with pytest.raises(ValueError):
        dpt.DPTVariantConfig(**{**TINY_LARGE.__dict__, "hooks": (0, 2, 1, 3)})
