"""``depthlens predict --prompt-depth`` in real subprocesses, with a random Prompt Depth
Anything checkpoint in the official layout: the outputs are the library's prediction
with that prompt; a missing prompt, a prompt for a model that takes none and a prompt
with two inputs are usage errors (exit 2) before the model loads; a prompt that does not
fit the photo is the input's one-line failure (exit 1).

One driver process imports depthlens and runs a usage error first (to import what the
command imports, but no forward pass: torch's thread pool does not survive a fork),
then forks a process per case (``tests.cli.FORKING_CLI``): the cases share its imports.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

import depthlens
from depthlens.io.images import load_image
from tests.checkpoints import official_checkpoint
from tests.cli import FORKING_CLI
from tests.hostile import encode, photo

MODEL = "prompt-depth-anything-vits"


def _prompt(rows: int, cols: int) -> np.ndarray:
    return np.linspace(600, 3500, rows * cols).reshape(rows, cols).astype(np.uint16)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("prompt-cli")
    torch.save(official_checkpoint("promptda_vits", seed=0), root / "promptda_vits.ckpt")
    (root / "photo.png").write_bytes(encode(photo(84, 112, seed=1)))
    (root / "other.png").write_bytes(encode(photo(84, 112, seed=2)))
    cv2.imwrite(str(root / "p.png"), _prompt(24, 32))
    cv2.imwrite(str(root / "rotated.png"), _prompt(32, 24))
    return root


def _predict(*args: str) -> list[str]:
    return ["predict", *args, "-m", MODEL, "--weights", "promptda_vits.ckpt", "-f", "npy"]


CASES = {
    "good": _predict("photo.png", "-o", "out", "--prompt-depth", "p.png"),
    "missing": _predict("photo.png", "-o", "missing"),
    "rotated": _predict("photo.png", "-o", "rotated", "--prompt-depth", "rotated.png"),
    "two inputs": _predict("photo.png", "other.png", "-o", "two", "--prompt-depth", "p.png"),
    "other model": [
        *("predict", "photo.png", "-o", "other", "-m", "depthlens-small"),
        *("--prompt-depth", "p.png"),
    ],
}
WARM_UP = CASES["missing"]


@pytest.fixture(scope="module")
def runs(folder) -> dict[str, Any]:
    """Every case's exit code, stdout and stderr, and under "expected" the library's
    depth of the good case (predicted here while the subprocesses run)."""
    driver = subprocess.Popen(
        [*FORKING_CLI, json.dumps(CASES), json.dumps(WARM_UP)],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        model = depthlens.load_model(MODEL, folder / "promptda_vits.ckpt", device="cpu")
        expected = model.predict(load_image(folder / "photo.png"), prompt_depth=folder / "p.png")
        out, err = driver.communicate(timeout=240)
    finally:
        driver.kill()
    assert driver.returncode == 0, err
    results: dict[str, Any] = {
        case: subprocess.CompletedProcess(CASES[case], r["code"], r["stdout"], r["stderr"])
        for case, r in json.loads(out).items()
    }
    return {**results, "expected": expected.depth}


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_outputs_are_the_library_prediction_with_the_prompt(folder, runs):
    result = runs["good"]
    assert result.returncode == 0, result.stderr
    depth = np.load(folder / "out" / "photo-depth.npy")
    sidecar = json.loads((folder / "out" / "photo-depth.json").read_text())
    assert sidecar["model"] == MODEL and sidecar["kind"] == "metric"
    expected = runs["expected"]
    assert depth.shape == expected.shape == (84, 112)
    np.testing.assert_allclose(depth, expected, rtol=0, atol=1e-6)


def test_a_prompt_model_without_a_prompt_is_a_usage_error(folder, runs):
    result = runs["missing"]
    assert result.returncode == 2, result.stderr
    line = _one_line(result)
    assert MODEL in line and "--prompt-depth" in line
    assert not (folder / "missing").exists()


def test_a_prompt_that_does_not_fit_the_photo_is_one_line(folder, runs):
    result = runs["rotated"]
    assert result.returncode == 1, result.stderr
    failures = [line for line in result.stderr.splitlines() if line.startswith("failed")]
    assert len(failures) == 1 and "Traceback" not in result.stderr
    assert "aspect ratio" in failures[0] and "rotated?" in failures[0]
    assert not (folder / "rotated" / "photo-depth.npy").exists()


@pytest.mark.parametrize(
    ("case", "words"), [("two inputs", "one input"), ("other model", "takes no prompt")]
)
def test_usage_errors_before_any_output(folder, runs, case, words):
    result = runs[case]
    assert result.returncode == 2, result.stderr
    assert words in _one_line(result)
    assert not (folder / case.split()[0]).exists()
