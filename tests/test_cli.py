"""The depthlens command, driven the way a user drives it."""

from __future__ import annotations

import io
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

import depthlens
from depthlens.io.depth_files import read_npy, read_pfm, read_png16
from depthlens.pipeline import output_stems
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
        for suffix in (
            "-depth.png",
            "-depth16.png",
            "-depth.npy",
            "-depth.pfm",
            "-side.png",
            "-depth.json",
        )
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


def test_a_failing_batch_is_retried_image_by_image():
    from depthlens.io.images import load_image
    from depthlens.pipeline import predict_each

    class PicksOnTall:
        """Fails on any batch holding an image taller than wide, like an OOM would."""

        def predict_images(self, images, batch_size):
            if any(image.rgb.shape[0] > image.rgb.shape[1] for image in images):
                raise RuntimeError("out of memory")
            return [image.rgb.shape for image in images]

    images = [np.zeros((8, 16, 3), np.uint8), np.zeros((16, 8, 3), np.uint8)] * 2
    outcome = list(predict_each(PicksOnTall(), [load_image(a) for a in images], 4))
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


def _photo(tmp_path: Path, name: str = "img.png", exif: PILImage.Exif | None = None) -> Path:
    rgb = np.asarray(PILImage.open(INPUTS / "wide.png").convert("RGB"))
    path = tmp_path / name
    PILImage.fromarray(rgb).save(path, **({"exif": exif} if exif is not None else {}))
    return path


def test_predict_ply_with_fov_writes_cloud_and_sidecar(tmp_path, capsys):
    from depthlens.io.depth_files import read_sidecar
    from depthlens.io.pointcloud import read_ply

    photo = _photo(tmp_path)
    out = tmp_path / "out"
    code, _, stderr = run_cli(["predict", photo, "-o", out, "--format", "ply", "--fov", 60], capsys)
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["img-depth.json", "img-points.ply"]
    info = read_sidecar(out / "img-depth.json")
    width, height = PILImage.open(photo).size
    focal = (width / 2) / np.tan(np.radians(30.0))
    assert info["model"] == "depthlens-small" and info["kind"] == "relative_inverse"
    assert (info["width"], info["height"]) == (width, height)
    assert info["fx"] == pytest.approx(focal) and info["fy"] == pytest.approx(focal)
    assert (info["cx"], info["cy"], info["camera_source"]) == (width / 2, height / 2, "user")
    assert info["files"] == ["img-points.ply"]
    cloud = info["pointcloud"]
    assert isinstance(cloud, dict) and cloud["units"] == "relative"
    vertices = read_ply(out / "img-points.ply")
    assert len(vertices) == cloud["points"] > 0
    assert np.isfinite(vertices["z"]).all() and (vertices["z"] > 0).all()


def test_predict_camera_from_options_exif_or_default(tmp_path, capsys):
    from depthlens.io.depth_files import read_sidecar

    exif = PILImage.Exif()
    exif.get_ifd(0x8769)[0xA405] = 36  # 35 mm equivalent 36 mm: fx = width
    photo = _photo(tmp_path, "exif.jpg", exif)
    plain = _photo(tmp_path, "plain.png")
    out = tmp_path / "out"
    code, _, stderr = run_cli(["predict", photo, plain, "-o", out, "--format", "npy"], capsys)
    assert code == 0, stderr
    width, _ = PILImage.open(photo).size
    from_exif = read_sidecar(out / "exif-depth.json")
    assert from_exif["camera_source"] == "exif" and from_exif["fx"] == pytest.approx(width)
    assumed = read_sidecar(out / "plain-depth.json")
    assert assumed["camera_source"] == "default"
    assert assumed["fx"] == pytest.approx((width / 2) / np.tan(np.radians(30.0)))
    args = ["predict", photo, "-o", out, "--format", "npy", "--fx", 500, "--cy", 3.5]
    code, _, stderr = run_cli(args, capsys)
    assert code == 0, stderr
    given = read_sidecar(out / "exif-depth.json")  # the options override EXIF
    assert given["camera_source"] == "user"
    assert (given["fx"], given["fy"], given["cx"], given["cy"]) == (500.0, 500.0, width / 2, 3.5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--fov", "60", "--fx", "100"], "--fov or --fx"),
        (["--cx", "10"], "need --fx"),
        (["--fx", "0"], "--fx must be a positive"),
        (["--fx", "100", "--fy", "-3"], "--fy must be a positive"),
        (["--fov", "180"], "between 1 and 179"),
        (["--fov", "1e-306"], "between 1 and 179"),
        (["--max-depth", "0"], "--max-depth"),
        (["--format", "mesh", "--mesh-format", "stl"], "mesh format"),
    ],
)
def test_inconsistent_camera_options_exit_2(tmp_path, capsys, options, message):
    photo = _photo(tmp_path)
    code, _, stderr = run_cli(["predict", photo, "-o", tmp_path / "out", *options], capsys)
    assert code == 2 and message in stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("mesh_format", ["ply", "obj", "glb"])
def test_predict_mesh_opens_in_trimesh(tmp_path, capsys, mesh_format):
    import trimesh

    photo = _photo(tmp_path)
    out = tmp_path / "out"
    args = ["predict", photo, "-o", out, "-f", "mesh", "--mesh-format", mesh_format, "--normals"]
    code, _, stderr = run_cli(args, capsys)
    assert code == 0, stderr
    loaded = trimesh.load(out / f"img-mesh.{mesh_format}", force="mesh")
    assert len(loaded.faces) > 0


def test_predict_align_to_metric_points(tmp_path, capsys):
    """Points on a known affine map of the model's disparity: the output is that depth."""
    code, _, stderr = run_cli(
        ["predict", INPUTS / "square.png", "-o", tmp_path / "raw", "-f", "npy"], capsys
    )
    assert code == 0, stderr
    disparity = read_npy(tmp_path / "raw" / "square-depth.npy").astype(np.float64)
    height, width = disparity.shape
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, height, 40), rng.integers(0, width, 40)
    truth = 1.0 / (0.8 * (disparity - disparity.min()) + 0.05)  # meters, all positive
    points = np.stack([cols + 0.5, rows + 0.5, truth[rows, cols]], axis=1)
    np.save(tmp_path / "points.npy", points)
    out = tmp_path / "aligned"
    args = ["predict", INPUTS / "square.png", "-o", out, "-f", "npy", "--align-to"]
    code, _, stderr = run_cli([*args, tmp_path / "points.npy"], capsys)
    assert code == 0, stderr
    assert "aligned to 40 points (40 inliers)" in stderr
    np.testing.assert_allclose(read_npy(out / "square-depth.npy"), truth, rtol=1e-3)
    sidecar = json.loads((out / "square-depth.json").read_text())
    assert sidecar["kind"] == "metric" and sidecar["alignment"]["space"] == "disparity"
    assert sidecar["alignment"]["scale"] == pytest.approx(0.8, rel=1e-4)
    # Two inputs, one points file: refused before anything is written.
    code, _, stderr = run_cli([*args, tmp_path / "points.npy", INPUTS / "wide.png"], capsys)
    assert code == 2 and "one input image" in stderr
    code, _, stderr = run_cli(
        ["predict", INPUTS / "square.png", "-o", tmp_path / "x", "--align-to", tmp_path / "no.csv"],
        capsys,
    )
    assert code == 2 and not (tmp_path / "x" / "square-depth.png").exists()


def test_models_never_cuts_a_name_on_an_80_column_terminal():
    import os
    import re

    from depthlens.models.registry import MODELS

    env = {**os.environ, "FORCE_COLOR": "1", "COLUMNS": "80"}  # rich: a terminal, 80 wide
    command = [sys.executable, "-m", "depthlens", "models"]
    narrow = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    lines = re.sub(r"\x1b\[[0-9;]*m", "", narrow.stdout).splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = {line.split()[0] for line in lines if "│" in line}
    assert rows == set(MODELS)  # every name whole, none ellipsised
    piped = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert "relative_inverse" in piped and all(name in piped for name in MODELS)


@pytest.mark.parametrize("command", ["effect", "predict", "demo"])
def test_help_paragraphs_are_reflowed_not_cut_mid_sentence(command):
    import os
    import re

    env = {**os.environ, "COLUMNS": "80"}
    result = subprocess.run(
        [sys.executable, "-m", "depthlens", command, "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    description = result.stdout.split("╭")[0].splitlines()[3:]  # after the usage line
    # a source line break cut a sentence: one word alone on a line, mid-paragraph
    orphans = [
        line
        for line, after in itertools.pairwise(description)
        if re.fullmatch(r"\s*\S+\s*", line) and after.strip()
    ]
    assert not orphans, result.stdout
    if command == "predict":
        assert "mesh." in result.stdout  # the whole --format list, wrapped, not cut
