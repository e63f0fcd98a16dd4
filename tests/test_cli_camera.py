"""``depthlens camera``, run as a user runs it (a real subprocess), on a tiny random
Depth Pro checkpoint in the official layout passed with --weights."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from tests.checkpoints import depth_pro_checkpoint
from tests.models.test_depth_pro import TINY

EXPECTED = Path(__file__).parent / "expected"
INPUTS = EXPECTED / "inputs"


def _depthlens(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "depthlens.cli", *map(str, args)], capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("camera") / "depth_pro.pt"
    torch.save(depth_pro_checkpoint(TINY, seed=0), path)
    return path


@pytest.fixture(scope="module")
def exif_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """square.png as a JPEG whose EXIF says 36 mm (35 mm equivalent): fx = width."""
    path = tmp_path_factory.mktemp("camera") / "exif.jpg"
    image = PILImage.open(INPUTS / "square.png").convert("RGB")
    exif = PILImage.Exif()
    exif.get_ifd(0x8769)[0xA405] = 36
    image.save(path, exif=exif, quality=95)
    return path


def test_camera_is_estimated_by_depth_pro(tiny_weights: Path) -> None:
    done = _depthlens(
        "camera", INPUTS / "wide.png", "-m", "depth-pro", "--weights", tiny_weights,
        "--device", "cpu",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert (found["source"], found["estimated_by"]) == ("estimated", "depth-pro")
    assert (found["width"], found["height"]) == (230, 150)
    assert found["fx"] == pytest.approx(float(np.load(EXPECTED / "depth-pro_focal.npy")[1]))
    assert found["fy"] == found["fx"] and (found["cx"], found["cy"]) == (115, 75)
    fov = math.degrees(2 * math.atan(230 / (2 * found["fx"])))
    assert found["horizontal_fov_deg"] == pytest.approx(fov)
    assert found["vertical_fov_deg"] == pytest.approx(
        math.degrees(2 * math.atan(150 / (2 * found["fy"])))
    )


def test_exif_camera_wins_unless_ignored(exif_photo: Path, tiny_weights: Path) -> None:
    done = _depthlens("camera", exif_photo, "--model", "depth-pro", "--weights", tiny_weights)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["source"] == "exif" and found["estimated_by"] is None
    assert found["fx"] == pytest.approx(160.0) and found["horizontal_fov_deg"] == pytest.approx(
        math.degrees(2 * math.atan(0.5))
    )
    ignored = _depthlens(
        "camera", exif_photo, "--ignore-exif", "-m", "depth-pro", "--weights", tiny_weights,
        "--device", "cpu",
    )  # fmt: skip
    assert ignored.returncode == 0, ignored.stderr
    estimated = json.loads(ignored.stdout)
    assert estimated["source"] == "estimated" and estimated["fx"] != pytest.approx(160.0)


def test_a_model_that_does_not_estimate_the_camera_is_refused() -> None:
    done = _depthlens("camera", INPUTS / "square.png", "--model", "midas-v21-small")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "midas-v21-small does not estimate the camera" in lines[0] and "depth-pro" in lines[0]


def test_predict_writes_the_estimated_camera(tiny_weights: Path, tmp_path: Path) -> None:
    done = _depthlens(
        "predict", INPUTS / "square.png", "-o", tmp_path, "--model", "depth-pro",
        "--weights", tiny_weights, "--format", "npy", "--device", "cpu",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    sidecar = json.loads((tmp_path / "square-depth.json").read_text())
    assert (sidecar["camera_source"], sidecar["camera_estimated_by"]) == ("estimated", "depth-pro")
