"""The depthlens command, driven the way a user drives it."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

import depthlens
from depthlens.cli import output_stems
from depthlens.io.depth_files import read_npy, read_pfm, read_png16
from tests.cli import run_cli

INPUTS = Path(__file__).parent / "expected" / "inputs"


@pytest.fixture()
def mixed_folder(tmp_path):
    """Good images beside a truncated JPEG, text named .png, an empty file, a 16-bit PNG."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(INPUTS / "square.png", folder / "square.png")
    rgb = np.asarray(PILImage.open(INPUTS / "wide.png").convert("RGB"))
    PILImage.fromarray(rgb).save(folder / "sub" / "wide.jpg", quality=92)
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format="JPEG")
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (folder / "notes.png").write_text("this is not an image\n")
    (folder / "empty.png").write_bytes(b"")
    gray16 = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    PILImage.fromarray(gray16).save(folder / "deep16.png")
    return folder


def test_predict_folder_with_bad_files(mixed_folder, midas_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        [
            "predict",
            mixed_folder,
            "--recursive",
            "-o",
            out,
            "--model",
            "midas-v21-small",
            "--weights",
            midas_checkpoint,
            "--format",
            "color,png16,npy,pfm",
            "--side-by-side",
        ],
        capsys,
    )
    assert code == 1
    failed_lines = [line for line in stderr.splitlines() if line.startswith("failed ")]
    assert sorted(Path(line.split()[1].rstrip(":")).name for line in failed_lines) == [
        "empty.png",
        "notes.png",
        "truncated.jpg",
    ]
    assert "3 of 6 inputs" in stdout and "3 failed" in stdout
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    expected = sorted(
        f"{stem}{suffix}"
        for stem in ("square", "sub/wide", "deep16")
        for suffix in ("-depth.png", "-depth16.png", "-depth.npy", "-depth.pfm", "-side.png")
    )
    assert written == expected  # nothing for the bad files, no temp files left behind
    # The files hold the same depth the Python API gives.
    model = depthlens.load_model("midas-v21-small", weights=midas_checkpoint)
    depth = model.predict(mixed_folder / "square.png").depth
    np.testing.assert_array_equal(read_npy(out / "square-depth.npy"), depth)
    np.testing.assert_array_equal(read_pfm(out / "square-depth.pfm"), depth)
    png16 = read_png16(out / "square-depth16.png").astype(np.float64)
    scaled = (depth - depth.min()) / (depth.max() - depth.min()) * 65535
    assert np.abs(png16 - scaled).max() <= 1.0
    heat = np.asarray(PILImage.open(out / "square-depth.png"))
    assert heat.shape == (160, 160, 3) and heat.std() > 10
    side = PILImage.open(out / "square-side.png")
    assert side.height == 160 and side.width > 320


def test_wrong_path_is_one_line_and_nonzero(midas_checkpoint, tmp_path, capsys):
    code, _stdout, stderr = run_cli(
        [
            "predict",
            tmp_path / "nope.jpg",
            "-o",
            tmp_path / "o",
            "--weights",
            midas_checkpoint,
            "-m",
            "midas-v21-small",
        ],
        capsys,
    )
    assert code == 1
    assert len(stderr.strip().splitlines()) == 1 and "nope.jpg" in stderr
    assert not (tmp_path / "o").exists()


def test_missing_weights_exit_2(tmp_path, capsys):
    code, _, stderr = run_cli(
        ["predict", INPUTS / "square.png", "-o", tmp_path / "o", "-m", "depth-anything-v2-small"],
        capsys,
    )
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1
    assert "depth_anything_v2_vits.pth" in stderr


def test_bad_format_and_colormap_exit_2(tmp_path, capsys):
    for extra in (["--format", "jpeg"], ["--colormap", "rainbow"]):
        code, _, stderr = run_cli(
            ["predict", INPUTS / "square.png", "-o", tmp_path / "o", *extra], capsys
        )
        assert code == 2 and len(stderr.strip().splitlines()) == 1


def test_colliding_stems_keep_their_extension():
    from pathlib import PurePath

    stems = output_stems(
        [PurePath("a/photo.jpg"), PurePath("a/photo.png"), PurePath("b.png"), PurePath("b.png")]
    )
    assert [s.as_posix() for s in stems] == ["a/photo_jpg", "a/photo_png", "b", "b-2"]


def test_convert_then_predict_from_the_folder(midas_checkpoint, tmp_path, capsys):
    folder = tmp_path / "converted"
    code, _stdout, _ = run_cli(["convert", midas_checkpoint, "-o", folder], capsys)
    assert code == 0 and (folder / "model.safetensors").is_file()
    code, _, _ = run_cli(
        ["predict", INPUTS / "wide.png", "-o", tmp_path / "o", "-m", folder, "-f", "npy"], capsys
    )
    assert code == 0
    reference = depthlens.load_model("midas-v21-small", weights=midas_checkpoint)
    np.testing.assert_array_equal(
        read_npy(tmp_path / "o" / "wide-depth.npy"), reference.predict(INPUTS / "wide.png").depth
    )


def test_models_lists_the_zoo(capsys):
    code, stdout, _ = run_cli(["models"], capsys)
    assert code == 0
    for name in ("midas-v21-small", "dpt-large", "depth-anything-v2-metric-outdoor-large"):
        assert name in stdout


def test_console_script_runs():
    result = subprocess.run(
        [sys.executable, "-m", "depthlens.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "predict" in result.stdout


def test_a_failing_batch_is_retried_image_by_image(tmp_path):
    from depthlens.cli import _Item, _predict_batch
    from depthlens.io.images import load_image

    class PicksOnTall:
        """Fails on any batch holding an image taller than wide, like an OOM would."""

        def predict_images(self, images, batch_size):
            if any(image.rgb.shape[0] > image.rgb.shape[1] for image in images):
                raise RuntimeError("out of memory")
            return [image.rgb.shape for image in images]

    images = [np.zeros((8, 16, 3), np.uint8), np.zeros((16, 8, 3), np.uint8)] * 2
    loaded = [
        (_Item(tmp_path / f"{i}.png", tmp_path / str(i)), load_image(a))
        for i, a in enumerate(images)
    ]
    outcome = [result for _, _, result in _predict_batch(PicksOnTall(), loaded, 4)]
    assert outcome[0] == (8, 16, 3) and outcome[2] == (8, 16, 3)
    assert all("out of memory" in outcome[i] for i in (1, 3))


def test_unavailable_device_is_a_usage_error(midas_checkpoint, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the error path needs a machine without it")
    code, _, stderr = run_cli(
        [
            "predict",
            INPUTS / "square.png",
            "-o",
            tmp_path / "o",
            "-m",
            "midas-v21-small",
            "--weights",
            midas_checkpoint,
            "--device",
            "cuda",
        ],
        capsys,
    )
    assert code == 2 and "cuda" in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
