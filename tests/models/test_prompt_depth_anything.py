"""Prompt Depth Anything: converter, parameter counts, parity with the official PromptDA
code (goldens, tests/expected/README.md) and with transformers, and the prompt input."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from transformers import PromptDepthAnythingForDepthEstimation

from depthlens.errors import ImageError, UsageError
from depthlens.io.images import Image, load_image
from depthlens.io.prompt_depth import read_prompt_depth, with_prompt
from depthlens.models import prompt_depth_anything as pda
from depthlens.models.estimator import Estimator
from depthlens.models.registry import get_spec
from depthlens.models.weights import load_strict
from tests.checkpoints import official_checkpoint, read_key_table

EXPECTED = Path(__file__).parents[1] / "expected"
INPUTS = EXPECTED / "inputs"
# the goldens ran load_image(..., max_size=168) to keep the test small
TEST_CONFIG = replace(pda.PRESETS["vits"], max_size=168)


@pytest.fixture(scope="module")
def network() -> pda.PromptDepthAnythingNetwork:
    state = official_checkpoint("promptda_vits", seed=0)
    net = pda.build_network(pda.PRESETS["vits"])
    load_strict(net, pda.convert_official_state_dict(state, pda.PRESETS["vits"]), "test")
    return net.eval()


@pytest.fixture()
def estimator(
    network: pda.PromptDepthAnythingNetwork, monkeypatch: pytest.MonkeyPatch
) -> Estimator:
    monkeypatch.setitem(pda.PRESETS, "test", TEST_CONFIG)
    spec = replace(get_spec("prompt-depth-anything-vits"), variant="test")
    return Estimator(spec, network, "cpu")


@pytest.mark.parametrize(
    ("variant", "ours", "official"),
    [("vits", 25_082_689, 25_083_073), ("vitl", 340_045_505, 340_046_529)],
)
def test_parameter_counts(variant: str, ours: int, official: int) -> None:
    assert pda.parameter_count(pda.PRESETS[variant]) == ours
    table = read_key_table(f"promptda_{variant}")
    counted = sum(int(np.prod(shape)) for key, shape in table.items() if "._" not in key)
    assert counted == official  # ours + the unused DINOv2 mask_token
    width = pda.PRESETS[variant].width
    assert official - ours == width
    assert get_spec(f"prompt-depth-anything-{variant}").params_millions == round(ours / 1e6, 1)


@pytest.mark.parametrize("variant", ["vits", "vitl"])
def test_converter_covers_the_official_layout(variant: str) -> None:
    config = pda.PRESETS[variant]
    layout = read_key_table(f"promptda_{variant}")
    fake = {key: torch.empty(shape, device="meta") for key, shape in layout.items()}
    converted = pda.convert_official_state_dict(fake, config)
    with torch.device("meta"):
        ours = pda.build_network(config).state_dict()
    assert set(converted) == set(ours)
    assert all(tuple(converted[k].shape) == tuple(ours[k].shape) for k in ours)
    # the bare layout (no Lightning prefix) converts the same
    bare = {key.split(".", 1)[1]: value for key, value in fake.items()}
    assert set(pda.convert_official_state_dict(bare, config)) == set(ours)


@pytest.mark.parametrize("name", ["square", "wide"])
def test_matches_official_promptda(estimator: Estimator, name: str) -> None:
    golden = np.load(EXPECTED / f"prompt-depth-anything-vits_{name}.npz")
    image = load_image(INPUTS / f"promptda_{name}.png")
    result = estimator.predict(image, prompt_depth=INPUTS / f"promptda_{name}_prompt.png")
    assert result.kind == "metric"
    expected = golden["depth"]
    assert result.depth.shape == expected.shape == (image.height, image.width)
    span = float(expected.max() - expected.min())
    assert np.abs(result.depth - expected).max() <= 1e-4 * span


def test_network_size_output_matches_official(network: pda.PromptDepthAnythingNetwork) -> None:
    golden = np.load(EXPECTED / "prompt-depth-anything-vits_wide.npz")["net"]
    rgb = load_image(INPUTS / "promptda_wide.png").rgb
    x = torch.from_numpy(pda.preprocess(rgb, 168))[None]
    assert tuple(x.shape[-2:]) == golden.shape == (112, 168)  # the official floor rule
    prompt = read_prompt_depth(INPUTS / "promptda_wide_prompt.png")
    with torch.no_grad():
        out = network(x, torch.from_numpy(prompt)[None, None])[0].numpy()
    assert np.abs(out - golden).max() <= 1e-4 * float(golden.max() - golden.min())


def test_matches_transformers(network: pda.PromptDepthAnythingNetwork) -> None:
    # transformers' own model on the same converted weights; its DINOv2 resizes the
    # position embedding to the grid size where the official code (and ours) resize by a
    # scale factor (depth_anything.interpolate_pos_embed), so it gets ours for the check.
    with torch.device("meta"):
        hf = PromptDepthAnythingForDepthEstimation(network.model.config)
    hf.backbone.embeddings = network.model.backbone.embeddings
    state = {k.removeprefix("model."): v for k, v in network.state_dict().items()}
    hf.load_state_dict(state, assign=True)
    hf.eval()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 3, 126, 168, generator=gen)
    prompt = torch.rand(1, 1, 48, 48, generator=gen) * 3 + 0.5
    with torch.no_grad():
        ours = network(x, prompt)
        theirs = hf(pixel_values=x, prompt_depth=prompt).predicted_depth
    span = float(theirs.max() - theirs.min())
    assert torch.abs(ours - theirs).max().item() <= 1e-5 * span


def test_network_input_size_rule() -> None:
    assert pda.network_input_size(1440, 1920) == (756, 1008)  # iPhone photo
    assert pda.network_input_size(180, 240, 168) == (112, 168)  # float floor, as upstream
    assert pda.network_input_size(112, 140, 168) == (112, 140)  # small: left as is
    assert pda.network_input_size(100, 150, 168) == (98, 140)  # floored to multiples of 14
    assert pda.network_input_size(5, 5) == (14, 14)


def test_needs_a_prompt(estimator: Estimator) -> None:
    with pytest.raises(UsageError, match="--prompt-depth"):
        estimator.predict(load_image(INPUTS / "promptda_wide.png"))


def test_other_models_refuse_a_prompt() -> None:
    from depthlens.models.depth_anything import DAConfig, build_network

    tiny = DAConfig(width=32, depth=4, heads=2, features=8, out_channels=(8, 8, 8, 8),
                    hooked_blocks=(0, 1, 2, 3), head_hidden=8)  # fmt: skip
    spec = get_spec("depth-anything-v2-small")
    model = Estimator(spec, build_network(tiny), "cpu")
    with pytest.raises(UsageError, match="takes no prompt depth"):
        model.predict(np.zeros((28, 28, 3), np.uint8), prompt_depth=np.ones((4, 4)) * 2 + np.eye(4))


def _image(h: int = 30, w: int = 40) -> Image:
    return load_image(np.zeros((h, w, 3), np.uint8))


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        (np.ones((3, 4, 2)), "2-D"),
        (np.ones((40, 30)), "rotated"),
        (np.ones((30, 80)), "aspect ratio"),
        (np.full((3, 4), -1.0), "negative"),
        (np.zeros((3, 4)), "no valid pixel"),
        (np.full((3, 4), np.nan), "no valid pixel"),
        (np.full((3, 4), 2000.0), "1000 m"),
        (np.full((3, 4), 2.0), "one value"),
        (np.ones((1, 1)), "at least 2"),
    ],
)
def test_prompt_validation(prompt: np.ndarray, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        with_prompt(_image(), prompt)


def test_prompt_files(tmp_path: Path) -> None:
    mm = np.array([[0, 1000, 2000], [3000, 4000, 500]], np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), mm)
    meters = read_prompt_depth(tmp_path / "d.png")
    np.testing.assert_allclose(meters, mm / 1000.0, rtol=1e-6)
    np.testing.assert_allclose(read_prompt_depth(tmp_path / "d.png", scale=0.01), mm / 100.0)
    np.save(tmp_path / "d.npy", mm / 1000.0)
    np.testing.assert_allclose(read_prompt_depth(tmp_path / "d.npy"), mm / 1000.0, rtol=1e-6)
    np.savez(tmp_path / "d.npz", depth=mm / 1000.0)
    np.testing.assert_allclose(read_prompt_depth(tmp_path / "d.npz"), mm / 1000.0, rtol=1e-6)
    data = (tmp_path / "d.png").read_bytes()
    np.testing.assert_allclose(read_prompt_depth(data), mm / 1000.0, rtol=1e-6)
    cv2.imwrite(str(tmp_path / "8bit.png"), mm.astype(np.uint8))
    with pytest.raises(ImageError, match="16-bit"):
        read_prompt_depth(tmp_path / "8bit.png")
    with pytest.raises(ImageError, match="does not exist"):
        read_prompt_depth(tmp_path / "missing.npy")
    with pytest.raises(ImageError, match="16-bit PNG"):
        read_prompt_depth(tmp_path / "d.txt")
    nan = np.array([[np.nan, 1.0], [np.inf, 2.0]])
    assert read_prompt_depth(nan).tolist() == [[0.0, 1.0], [0.0, 2.0]]
