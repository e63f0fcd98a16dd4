"""``depthlens predict`` with URLs, standard input and a folder of subfolders, through the
real command in a subprocess (issue 15, item 13): each failure one sentence on one line,
the batch going on past it."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from depthlens.io.remote import TIMEOUT_ENV
from tests.remote_server import serving

CLI = [sys.executable, "-c", "from depthlens.cli import main; main()"]
PHOTO = (np.arange(24 * 32 * 3).reshape(24, 32, 3) % 251).astype(np.uint8)


def jpeg() -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(PHOTO).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def run(*args: object, cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """``depthlens predict ARGS`` with the bundled model, 0.5 s URL timeout, no proxy."""
    env = {key: value for key, value in os.environ.items() if not key.lower().endswith("_proxy")}
    env.update({TIMEOUT_ENV: "0.5", "no_proxy": "127.0.0.1,localhost"})
    command = [*CLI, "predict", *map(str, args), "--model", "depthlens-small", "-f", "npy"]
    result = subprocess.run(
        command,
        input=stdin if stdin is not None else b"",
        capture_output=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


@pytest.fixture(scope="module")
def server():
    with serving({"img/photo.jpg": jpeg()}) as running:
        yield running


def test_urls_good_and_bad_in_one_batch(server, tmp_path):
    good = server.url("img/photo.jpg")
    bad = {
        server.url("missing.jpg"): f"{server.host} answered 404 Not Found.",
        server.url("slow.jpg"): f"no answer from {server.host} within 0.5 s.",
        "http://nowhere.invalid/x.jpg": "could not resolve host nowhere.invalid.",
    }
    huge = server.url("huge.jpg")
    result = run(*bad, good, huge, "-o", "out", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert np.load(tmp_path / "out" / "photo-depth.npy").shape == (24, 32)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    expected = [f"failed {url}: {url} cannot be fetched: {reason}" for url, reason in bad.items()]
    expected.append(f"failed {huge}: {huge} is 60 MB, more than the download limit of 50 MB.")
    assert lines == expected, result.stderr
    assert "1 of 5 inputs" in result.stdout and "4 failed" in result.stdout


def test_an_image_piped_into_standard_input(tmp_path):
    result = run("-", "-o", "out", cwd=tmp_path, stdin=jpeg())
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "out" / "stdin-depth.npy").shape == (24, 32)
    assert result.stderr.strip() == ""


def test_empty_standard_input_is_one_sentence(tmp_path):
    result = run("-", "-o", "out", cwd=tmp_path, stdin=b"")
    assert result.returncode == 1
    assert result.stderr.strip() == "failed -: Standard input is empty (0 bytes), not an image."


def test_a_folder_of_subfolders_suggests_recursive(tmp_path):
    (tmp_path / "in" / "day1").mkdir(parents=True)
    (tmp_path / "in" / "day1" / "a.jpg").write_bytes(jpeg())
    result = run("in", "-o", "out", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "failed in: No images directly in in; 1 found in its subfolders: pass --recursive."
    )
