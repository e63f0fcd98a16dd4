"""Backends and precisions (issue 16): the choice and its errors, the torch backend's
bf16 and int8 against fp32, and the options through the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import depthlens
from depthlens.errors import UsageError
from depthlens.models import backends
from depthlens.models import depth_anything as da
from depthlens.models import prompt_depth_anything as pda
from depthlens.models.backends import OutputLayout, check_choice, pytorch
from depthlens.models.backends import cache as compiled
from depthlens.models.backends.pytorch import cpu_has_bf16
from depthlens.models.metric3d import Metric3DOutput
from tests.checkpoints import random_state_dict

SQUARE = Path(__file__).resolve().parent.parent / "expected" / "inputs" / "square.png"
CLI = [sys.executable, "-c", "from depthlens.cli import main; main()"]


# Depth Anything V2 with a 4 x 4 position grid: a 56 x 56 input is the grid's own size
# (no resize upstream). Also the image part of the tiny Video Depth Anything.
TINY_DA = da.DAConfig(
    width=32,
    depth=5,
    heads=2,
    features=16,
    out_channels=(8, 16, 32, 32),
    hooked_blocks=(0, 2, 3, 4),
    image_size=56,
)
# Prompt Depth Anything with a 4 x 4 position grid, for the ONNX Runtime and OpenVINO
# tests of a network with two inputs (the image and the prompt depth).
TINY_PDA = pda.PDAConfig(
    width=32,
    depth=5,
    heads=2,
    features=16,
    out_channels=(8, 16, 32, 32),
    hooked_blocks=(0, 2, 3, 4),
    head_hidden=8,
    image_size=56,
)


def random_weights(network: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """``network`` with deterministic random weights of visible size (tests/checkpoints;
    transformers' own initialisation left a tiny ZoeDepth's depth constant to 1e-7)."""
    layout = {key: tuple(value.shape) for key, value in network.state_dict().items()}
    network.load_state_dict(random_state_dict(layout, seed), strict=True)
    return network.eval()


def tiny_prompt_depth_anything(seed: int = 0) -> torch.nn.Module:
    """``TINY_PDA`` with deterministic random weights."""
    return random_weights(pda.build_network(TINY_PDA), seed)


def prompt_batch(
    size: tuple[int, int], prompt: tuple[int, int], seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of 2 network inputs of Prompt Depth Anything: images of ``size`` and
    prompt depths of ``prompt`` (h, w), 0.2 to 6 m."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn(2, 3, *size, generator=generator)
    depth = 0.2 + 5.8 * torch.rand(2, 1, *prompt, generator=generator)
    return image, depth


def share_of_range(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(ours - reference).max() / (reference.max() - reference.min()))


@pytest.mark.parametrize(
    ("backend", "precision", "says"),
    [
        ("tensorrt", "fp32", "Unknown backend 'tensorrt': use torch, onnxruntime, openvino."),
        ("torch", "fp8", "Unknown precision 'fp8': use fp32, bf16, int8, int8-static."),
        (
            "onnxruntime",
            "bf16",
            "runs fp32, int8 or int8-static, not bf16; bf16 runs on torch and openvino",
        ),
        (
            "torch",
            "int8-static",
            "The torch backend runs fp32, bf16 or int8, not int8-static; int8-static runs on "
            "onnxruntime and openvino.",
        ),
    ],
)
def test_choices_that_cannot_work_are_one_sentence(backend, precision, says):
    with pytest.raises(UsageError) as info:
        check_choice(backend, precision)
    assert says in str(info.value)


def test_zoedepth_nk_alone_is_refused_outside_torch():
    backends.refuse_export(depthlens.MODELS["zoedepth-nyu"])
    backends.refuse_export(depthlens.MODELS["prompt-depth-anything-vits"])
    with pytest.raises(UsageError) as info:
        backends.refuse_export(depthlens.MODELS["zoedepth-nyu-kitti"])
    assert str(info.value) == (
        "zoedepth-nyu-kitti runs on the torch backend only: its classifier picks the NYU "
        "or KITTI bins head per image with a Python value, which a trace would freeze "
        "into one head."
    )


def test_a_missing_backend_package_names_the_extra(monkeypatch):
    real_import = __import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino":
            raise ImportError("No module named 'openvino'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr("builtins.__import__", no_openvino)
    with pytest.raises(UsageError, match=r"pip install 'depthlens\[openvino\]'"):
        backends.require("openvino")


BF16 = [("bf16", 0.02)] if cpu_has_bf16() else []


def test_torch_bf16_is_refused_where_the_cpu_would_emulate_it(monkeypatch):
    monkeypatch.setattr(pytorch, "cpu_has_bf16", lambda: False)
    with pytest.raises(UsageError, match="no bf16 arithmetic"):
        depthlens.load_model("depthlens-small", precision="bf16", device="cpu")


def test_torch_reduced_precisions_stay_close_to_fp32():
    fp32 = depthlens.load_model("depthlens-small").predict(SQUARE)
    for precision, bound in (*BF16, ("int8", 1e-3)):
        reduced = depthlens.load_model("depthlens-small", precision=precision)
        assert reduced.precision == precision and reduced.backend == "torch"
        result = reduced.predict(SQUARE)
        assert result.depth.dtype == np.float32
        assert share_of_range(result.depth, fp32.depth) < bound, precision


def test_estimators_are_cached_per_backend_and_precision():
    first = depthlens.load_model("depthlens-small", precision="int8")
    assert depthlens.load_model("depthlens-small", precision="int8") is first
    assert depthlens.load_model("depthlens-small") is not first


def test_output_layout_rebuilds_what_the_network_returned():
    tensor = torch.rand(2, 5, 7)
    layout = OutputLayout.of(tensor)
    assert layout.names == ("depth",)
    assert torch.equal(layout.rebuild([tensor.numpy()]), tensor)
    named = Metric3DOutput(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4), torch.rand(1, 4, 4, 4))
    layout = OutputLayout.of(named)
    assert layout.names == ("depth", "confidence", "normal")
    rebuilt = layout.rebuild([t.numpy() for t in layout.flatten(named)])
    assert isinstance(rebuilt, Metric3DOutput)
    assert all(torch.equal(a, b) for a, b in zip(rebuilt, named, strict=True))


def test_cache_is_bounded_and_cleared(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPTHLENS_HOME", str(tmp_path))
    spec = depthlens.MODELS["depthlens-small"]
    old = compiled.entry_dir(spec, "a" * 16, "onnxruntime", "fp32")
    (old / "model.onnx").write_bytes(b"x" * 600)
    new = compiled.entry_dir(spec, "b" * 16, "onnxruntime", "fp32")
    (new / "model.onnx").write_bytes(b"x" * 600)
    import os

    os.utime(old, (1, 1))  # used long ago
    monkeypatch.setenv("DEPTHLENS_CACHE_GB", str(1000 / 1e9))  # room for one of them
    assert compiled.prune(keep=new) == [old]
    assert [entry.path for entry in compiled.entries()] == [new]
    assert compiled.clear() == (1, 600)
    assert compiled.entries() == []


def test_cli_refuses_a_precision_before_loading_anything(tmp_path):
    result = subprocess.run(
        [*CLI, "predict", SQUARE, "-o", "out", "-m", "depthlens-small", "--backend",
         "onnxruntime", "--precision", "bf16"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: The onnxruntime backend runs fp32, int8 or int8-static, not bf16; bf16 runs on "
        "torch and openvino."
    ]
    assert not (tmp_path / "out").exists()


def test_cli_predicts_in_int8_and_lists_the_cache(tmp_path):
    env_home = {"DEPTHLENS_HOME": str(tmp_path / "home")}
    import os

    result = subprocess.run(
        [*CLI, "predict", SQUARE, "-o", "out", "-m", "depthlens-small", "--precision", "int8",
         "--format", "npy"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300, env={**os.environ, **env_home},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    depth = np.load(tmp_path / "out" / "square-depth.npy")
    reference = depthlens.load_model("depthlens-small").predict(SQUARE).depth
    assert share_of_range(depth, reference) < 0.02
    listed = subprocess.run(
        [*CLI, "cache"], capture_output=True, text=True, timeout=300,
        env={**os.environ, **env_home},
    )  # fmt: skip
    assert listed.returncode == 0
    assert listed.stdout.startswith("0 compiled models, 0.0 MB of 8 GB")
