"""MiDaS v2.1 small: block table, SAME padding, converter, and parity with the official code.

The goldens in tests/expected/midas-v21-small_*.npy come from isl-org/MiDaS run on the
random official-layout checkpoint ``official_checkpoint("midas_v21_small_256", seed=0)``;
tests/expected/README.md says how they were made.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from depthlens.errors import WeightsError
from depthlens.models.midas_small import (
    PRESETS,
    UNUSED_OFFICIAL_PREFIXES,
    Conv2dSame,
    MidasSmallConfig,
    StageDef,
    build_network,
    convert_official_state_dict,
    official_module_names,
    same_conv,
    same_padding,
    unwrap_official_checkpoint,
)
from tests.checkpoints import official_checkpoint, read_key_table

EXPECTED = Path(__file__).resolve().parents[1] / "expected"
OFFICIAL = "midas_v21_small_256"
CONFIG = PRESETS["v21-small-256"]

# Every feature of the real network at toy widths: a residual depthwise-separable stage
# (8 -> 8, stride 1), k3 and k5 stride-2 stages, a repeated stage, four levels.
TINY = MidasSmallConfig(
    stages=(
        StageDef("ds", 1, 3, 1, 1, 8),
        StageDef("ir", 1, 3, 2, 2, 8),
        StageDef("ir", 1, 5, 2, 2, 16),
        StageDef("ir", 2, 3, 2, 2, 16),
        StageDef("ir", 1, 5, 1, 2, 16),
        StageDef("ir", 1, 5, 2, 2, 24),
        StageDef("ir", 1, 3, 1, 2, 24),
    ),
    stem_channels=8,
    features=4,
    head_channels=4,
)


@pytest.fixture(scope="module")
def official_state() -> dict[str, torch.Tensor]:
    return official_checkpoint(OFFICIAL, seed=0)


@pytest.fixture(scope="module")
def official_file(
    tmp_path_factory: pytest.TempPathFactory, official_state: dict[str, torch.Tensor]
) -> Path:
    path = tmp_path_factory.mktemp("midas_small") / f"{OFFICIAL}.pt"
    torch.save(official_state, path)
    return path


@pytest.fixture(scope="module")
def official_net(official_state: dict[str, torch.Tensor]) -> torch.nn.Module:
    net = build_network(CONFIG)
    net.load_state_dict(convert_official_state_dict(official_state, CONFIG), strict=True)
    return net


def _net_input() -> torch.Tensor:
    return torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(123))


def _assert_close_to_golden(actual: np.ndarray, golden: np.ndarray) -> None:
    assert actual.shape == golden.shape
    scale = float(golden.max() - golden.min())
    error = float(np.abs(actual - golden).max())
    assert error <= 1e-4 * scale, f"max |diff| {error:.3g} > 1e-4 x range {scale:.3g}"


# --- configuration -------------------------------------------------------------------


def test_lite3_block_table_matches_the_reference() -> None:
    # /work/shared/reference/CHECKPOINTS.md §1.1, lite3 stage table
    blocks = CONFIG.blocks
    assert [len(stage) for stage in blocks] == [1, 3, 3, 5, 5, 6, 1]
    assert [stage[0].out_channels for stage in blocks] == [24, 32, 48, 96, 136, 232, 384]
    assert [stage[0].mid_channels for stage in blocks[1:]] == [144, 192, 288, 576, 816, 1392]
    assert [stage[-1].mid_channels for stage in blocks[1:]] == [192, 288, 576, 816, 1392, 1392]
    assert [stage[0].stride for stage in blocks] == [1, 2, 2, 2, 1, 2, 1]
    assert all(block.stride == 1 for stage in blocks for block in stage[1:])
    assert CONFIG.encoder_channels == (32, 48, 136, 384)
    assert CONFIG.decoder_widths == (64, 128, 256, 512)
    assert CONFIG.input_multiple == 32


def test_bad_level_grouping_is_rejected() -> None:
    with pytest.raises(ValueError, match="level_ends"):
        replace(CONFIG, level_ends=(2, 3, 5, 6))


# --- TF "SAME" padding -----------------------------------------------------------------


@pytest.mark.parametrize("size", [2, 96, 128, 256])
def test_same_padding_stride2_even_sizes(size: int) -> None:
    assert same_padding(size, kernel=3, stride=2) == (0, 1)
    assert same_padding(size, kernel=5, stride=2) == (1, 2)


@pytest.mark.parametrize("size", [1, 5, 95, 127])
def test_same_padding_stride2_odd_sizes(size: int) -> None:
    assert same_padding(size, kernel=3, stride=2) == (1, 1)
    assert same_padding(size, kernel=5, stride=2) == (2, 2)


def test_same_padding_stride1_is_symmetric() -> None:
    assert same_padding(10, kernel=3, stride=1) == (1, 1)
    assert same_padding(11, kernel=5, stride=1) == (2, 2)
    assert isinstance(same_conv(4, 4, 3, stride=1), torch.nn.Conv2d)
    assert not isinstance(same_conv(4, 4, 3, stride=1), Conv2dSame)
    assert same_conv(4, 4, 5, stride=1).padding == (2, 2)


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize(("height", "width"), [(8, 12), (7, 9), (8, 9)])
def test_conv2d_same_pads_per_input(kernel: int, height: int, width: int) -> None:
    torch.manual_seed(0)
    conv = Conv2dSame(2, 3, kernel, stride=2)
    x = torch.randn(1, 2, height, width)
    top, bottom = same_padding(height, kernel, 2)
    left, right = same_padding(width, kernel, 2)
    expected = F.conv2d(F.pad(x, (left, right, top, bottom)), conv.weight, stride=2)
    out = conv(x)
    assert out.shape[-2:] == (-(height // -2), -(width // -2))  # ceil(n / 2), as TF
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    # the same module on a size of the other parity recomputes its pad
    odd = conv(torch.randn(1, 2, height + 1, width + 1))
    assert odd.shape[-2:] == (-((height + 1) // -2), -((width + 1) // -2))


def test_stride2_convs_use_same_padding() -> None:
    net = build_network(CONFIG)
    strided = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    # the stem and the first depthwise conv of stages 1, 2, 3 and 5
    assert len(strided) == 5
    assert all(isinstance(m, Conv2dSame) for m in strided)
    assert [m.kernel_size[0] for m in strided] == [3, 3, 5, 3, 5]


# --- converter -------------------------------------------------------------------------


def test_converter_maps_every_official_key(official_state: dict[str, torch.Tensor]) -> None:
    table = read_key_table(OFFICIAL)
    assert len(table) == 482
    converted = convert_official_state_dict(official_state, CONFIG)
    ours = build_network(CONFIG).state_dict()
    names = official_module_names(CONFIG)
    dropped = [k for k in table if k.startswith(UNUSED_OFFICIAL_PREFIXES)]
    assert len(dropped) == 4  # refinenet4.resConfUnit1.conv{1,2}.{weight,bias}
    for key, shape in table.items():
        if key in dropped:
            continue
        module, _, leaf = key.rpartition(".")
        assert module in names, f"{key} has no entry in the rename table"
        target = f"{names[module]}.{leaf}"
        assert target in ours, f"{key} -> {target}, which the network does not have"
        assert tuple(ours[target].shape) == shape, key
    assert set(converted) == set(ours)
    assert len(converted) == len(table) - len(dropped)
    build_network(CONFIG).load_state_dict(converted, strict=True)


def test_strict_load_lists_a_removed_key(official_state: dict[str, torch.Tensor]) -> None:
    partial = dict(official_state)
    del partial["pretrained.layer2.0.1.conv_dw.weight"]
    converted = convert_official_state_dict(partial, CONFIG)
    with pytest.raises(RuntimeError, match=r"encoder\.stages\.2\.1\.depthwise\.conv\.weight"):
        build_network(CONFIG).load_state_dict(converted, strict=True)


def test_unknown_keys_are_kept_for_the_strict_load(
    official_state: dict[str, torch.Tensor],
) -> None:
    extra = {**official_state, "pretrained.model.classifier.weight": torch.zeros(2, 2)}
    converted = convert_official_state_dict(extra, CONFIG)
    assert "pretrained.model.classifier.weight" in converted
    with pytest.raises(RuntimeError, match=r"pretrained\.model\.classifier\.weight"):
        build_network(CONFIG).load_state_dict(converted, strict=True)


def test_missing_num_batches_tracked_is_filled(
    official_state: dict[str, torch.Tensor],
) -> None:
    old = {k: v for k, v in official_state.items() if not k.endswith("num_batches_tracked")}
    assert len(old) < len(official_state)
    converted = convert_official_state_dict(old, CONFIG)
    build_network(CONFIG).load_state_dict(converted, strict=True)
    assert int(converted["encoder.stem.bn.num_batches_tracked"]) == 0


def test_unwrap_official_checkpoint(official_state: dict[str, torch.Tensor]) -> None:
    assert unwrap_official_checkpoint(official_state) is official_state
    container = {"model": official_state, "optimizer": {"state": {}}, "epoch": 3}
    assert unwrap_official_checkpoint(container) is official_state
    with pytest.raises(WeightsError):
        unwrap_official_checkpoint([1, 2, 3])
    with pytest.raises(WeightsError):
        unwrap_official_checkpoint({"optimizer": {}})


# --- parity with the official code -----------------------------------------------------


def test_network_matches_official_forward(official_net: torch.nn.Module) -> None:
    with torch.no_grad():
        out = official_net(_net_input())
    _assert_close_to_golden(out.numpy(), np.load(EXPECTED / "midas-v21-small_net.npy"))


def test_network_matches_official_logits(official_state: dict[str, torch.Tensor]) -> None:
    # Random weights leave ~97 % of the final ReLU's outputs at 0; the pre-ReLU output
    # checks every pixel. Same weights, the final ReLU switched off by config.
    config = replace(CONFIG, non_negative=False)
    net = build_network(config)
    net.load_state_dict(convert_official_state_dict(official_state, config), strict=True)
    with torch.no_grad():
        out = net(_net_input())
    _assert_close_to_golden(out.numpy(), np.load(EXPECTED / "midas-v21-small_net-logits.npy"))


@pytest.mark.parametrize("name", ["square", "wide"])
def test_end_to_end_matches_official_run(official_file: Path, name: str) -> None:
    import depthlens

    model = depthlens.load_model("midas-v21-small", weights=official_file)
    rgb = np.asarray(Image.open(EXPECTED / "inputs" / f"{name}.png").convert("RGB"))
    depth = model.predict(rgb).depth
    assert depth.dtype == np.float32
    _assert_close_to_golden(depth, np.load(EXPECTED / f"midas-v21-small_{name}.npy"))


# --- tiny config -------------------------------------------------------------------------


def test_tiny_config_builds_and_runs() -> None:
    torch.manual_seed(0)
    net = build_network(TINY)
    assert not net.training
    assert sum(p.numel() for p in net.parameters()) < 100_000
    assert TINY.blocks[0][0].has_residual  # the ds block keeps 8 channels
    with torch.no_grad():
        out = net(torch.randn(2, 3, 64, 96))
    assert out.shape == (2, 64, 96)
    assert torch.isfinite(out).all()
    assert (out >= 0).all()


def test_tiny_config_round_trips_through_the_rename_table() -> None:
    net = build_network(TINY)
    ours_to_official = {ours: official for official, ours in official_module_names(TINY).items()}
    official_layout = {}
    for key, value in net.state_dict().items():
        module, _, leaf = key.rpartition(".")
        official_layout[f"{ours_to_official[module]}.{leaf}"] = value
    official_layout["scratch.refinenet4.resConfUnit1.conv1.weight"] = torch.zeros(64, 64, 3, 3)
    converted = convert_official_state_dict(official_layout, TINY)
    assert set(converted) == set(net.state_dict())


def test_input_size_must_be_a_multiple_of_32() -> None:
    net = build_network(TINY)
    with pytest.raises(ValueError, match="divisible by 32"):
        net(torch.zeros(1, 3, 48, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, h, w\)"):
        net(torch.zeros(1, 1, 64, 64))


def test_log_output_head_returns_the_exponential_of_the_plain_head() -> None:
    torch.manual_seed(0)
    plain = build_network(replace(TINY, non_negative=False)).eval()
    logged = build_network(replace(TINY, non_negative=False, log_output=True)).eval()
    logged.load_state_dict(plain.state_dict())  # same parameters: only the activation differs
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(logged(x), torch.exp(plain(x)))
    with pytest.raises(ValueError, match="exclude each other"):
        replace(TINY, non_negative=True, log_output=True)
    assert PRESETS["depthlens-small-metric"] == replace(PRESETS["depthlens-small"], log_output=True)
