"""``depthlens synth``: writes N samples into a readable RGB-D folder."""

from __future__ import annotations

import numpy as np
import pytest

from depthlens.io.rgbd import RGBDFolder
from tests.cli import run_cli


def test_synth_writes_a_readable_folder(tmp_path, capsys):
    out = tmp_path / "data"
    code, stdout, stderr = run_cli(
        [
            "synth",
            "-n",
            3,
            "-o",
            out,
            "--size",
            "40x24",
            "--seed",
            7,
            "--batch-size",
            2,
            "--kinds",
            "indoor,street",
        ],
        capsys,
    )
    assert code == 0, stderr
    assert "Wrote 3 samples" in stdout and str(out) in stdout
    folder = RGBDFolder(out)
    assert len(folder) == 3
    for item, seed in zip(folder, (7, 8, 9), strict=True):
        assert item.rgb.shape == (24, 40, 3)
        assert item.seed == seed and item.kind in ("indoor", "street")
        assert item.camera is not None and item.camera.width == 40
        assert item.normals is not None and item.valid.any()
    # Appending more seeds works; the same seeds again are refused before rendering.
    code, _, _ = run_cli(
        [
            "synth",
            "-n",
            1,
            "-o",
            out,
            "--size",
            "40x24",
            "--seed",
            10,
            "--format",
            "npy",
            "--no-normals",
        ],
        capsys,
    )
    assert code == 0
    assert RGBDFolder(out)[3].normals is None
    code, _, stderr = run_cli(
        ["synth", "-n", 2, "-o", out, "--size", "40x24", "--seed", 8, "--kinds", "indoor,street"],
        capsys,
    )
    assert code == 2 and "seed 8 (2 of these seeds" in stderr
    assert len(RGBDFolder(out)) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "big"], "--size"),
        (["--kinds", "moon"], "Unknown scene kind moon"),
        (["--format", "tiff"], "Unknown depth format"),
    ],
)
def test_synth_bad_arguments(tmp_path, capsys, args, message):
    code, _, stderr = run_cli(["synth", "-n", 1, "-o", tmp_path / "x", *args], capsys)
    assert code == 2 and message in stderr


def test_same_seed_same_files(tmp_path, capsys):
    for name in ("a", "b"):
        code, _, _ = run_cli(
            ["synth", "-n", 1, "-o", tmp_path / name, "--size", 16, "--seed", 3], capsys
        )
        assert code == 0
    a, b = RGBDFolder(tmp_path / "a")[0], RGBDFolder(tmp_path / "b")[0]
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth)
