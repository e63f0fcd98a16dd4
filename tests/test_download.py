"""The default model, ``depthlens download`` and the messages of weights that are not
here (issue 15, items 1, 2 and 4). Downloads come from a local HTTP server standing in
for the official host (``DEPTHLENS_MIRROR``) and, for the Hub, from a stand-in of
``snapshot_download``; nothing reaches a model hub."""

from __future__ import annotations

import errno
import hashlib
import http.server
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

import depthlens
from depthlens.errors import DownloadError, MissingWeightsError, WeightsError
from depthlens.models import download as downloads
from depthlens.models import weights
from depthlens.models.registry import DEFAULT_MODEL, FALLBACK_MODEL, get_spec
from tests.checkpoints import official_checkpoint

CLI = [sys.executable, "-c", "from depthlens.cli import main; main()"]
SQUARE = Path(__file__).parent / "expected" / "inputs" / "square.png"
MIDAS_FILE = "midas_v21_small_256.pt"


class _Files(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` (name -> bytes) with Range requests and, where ``etags`` has
    the name, that ETag; ``seen`` keeps each request's path and Range header."""

    files: ClassVar[dict[str, bytes]] = {}
    etags: ClassVar[dict[str, str]] = {}
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        name = self.path.lstrip("/")
        self.seen.append((name, self.headers.get("Range")))
        if name not in self.files:
            self.send_error(404, "Not Found")
            return
        data, status = self.files[name], 200
        asked = self.headers.get("Range")
        start = int(asked.removeprefix("bytes=").rstrip("-")) if asked else 0
        if start:
            data, status = data[start:], 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        if name in self.etags:
            self.send_header("ETag", f'"{self.etags[name]}"')
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Mirror:
    url: str
    seen: list[tuple[str, str | None]]  # each request's file and Range header


@contextmanager
def mirror(files: dict[str, bytes], etags: dict[str, str] | None = None) -> Iterator[Mirror]:
    """A local HTTP server for ``files``."""
    seen: list[tuple[str, str | None]] = []
    handler = type("Handler", (_Files,), {"files": files, "etags": etags or {}, "seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Mirror(f"http://127.0.0.1:{server.server_address[1]}", seen)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def notices_reach_caplog(monkeypatch):
    """The CLI, run in-process by other tests, keeps the ``depthlens`` logger to itself."""
    monkeypatch.setattr(logging.getLogger("depthlens"), "propagate", True)


def online(monkeypatch: pytest.MonkeyPatch, home: Path, base: str | None = None) -> None:
    """Downloads on, into a private ``home``; official files from ``base``."""
    monkeypatch.delenv("DEPTHLENS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("DEPTHLENS_HOME", str(home))
    if base is not None:
        monkeypatch.setenv("DEPTHLENS_MIRROR", base)


def online_env(server: Mirror, home: Path) -> dict[str, str]:
    """A subprocess's environment for downloads from ``server`` into ``home``."""
    return {
        "DEPTHLENS_OFFLINE": "",
        "HF_HUB_OFFLINE": "",
        "DEPTHLENS_MIRROR": server.url,
        "DEPTHLENS_HOME": str(home),
    }


@pytest.fixture(scope="module")
def midas_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("midas") / MIDAS_FILE
    torch.save(official_checkpoint("midas_v21_small_256", seed=1), path)
    return path.read_bytes()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run(*args: object, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **env},
        timeout=300,
    )


# The default model ----------------------------------------------------------------------


def test_default_falls_back_to_the_bundled_model_with_one_notice(monkeypatch, caplog):
    monkeypatch.setattr(weights, "_FALLBACK_SAID", set())
    with caplog.at_level(logging.WARNING, logger="depthlens"):
        first = depthlens.load_model()
        second = depthlens.load_model()
    assert first.name == second.name == FALLBACK_MODEL
    notices = [r.getMessage() for r in caplog.records if r.name == "depthlens"]
    assert len(notices) == 1, notices
    assert "downloads are off (DEPTHLENS_OFFLINE=1" in notices[0]
    assert f"depthlens download {DEFAULT_MODEL}" in notices[0]


def test_default_is_depth_anything_v2_small_when_its_weights_are_here(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    torch.save(
        official_checkpoint("depth_anything_vits", seed=0), folder / "depth_anything_v2_vits.pth"
    )
    monkeypatch.setenv("DEPTHLENS_HOME", str(tmp_path))
    spec, location = weights.find_default_weights()
    assert spec.name == DEFAULT_MODEL == "depth-anything-v2-small"
    assert location.path == folder / "depth_anything_v2_vits.pth"
    # and the command line uses it without being told, saying nothing about a fallback
    result = run(
        "predict",
        SQUARE,
        "-o",
        "out",
        "--format",
        "npy",
        env={"DEPTHLENS_HOME": str(tmp_path)},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    sidecar = json.loads((tmp_path / "out" / "square-depth.json").read_text())
    assert sidecar["model"] == DEFAULT_MODEL
    assert "bundled" not in result.stderr


def test_cli_default_fallback_is_one_stderr_line(tmp_path):
    result = run("predict", SQUARE, "-o", "out", "--format", "npy", env={}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Using the bundled {FALLBACK_MODEL}")
    assert f"depthlens download {DEFAULT_MODEL}" in lines[0]
    sidecar = json.loads((tmp_path / "out" / "square-depth.json").read_text())
    assert sidecar["model"] == FALLBACK_MODEL


def test_the_server_serves_the_default_model():
    from depthlens.serve import ServeSettings

    settings = ServeSettings(device="cpu")
    assert settings.models is None
    assert settings.resolved().default_model == FALLBACK_MODEL  # offline, no weights here


# Why weights are missing ---------------------------------------------------------------


def test_missing_weights_speak_python_and_the_command_line_apart():
    with pytest.raises(MissingWeightsError) as info:
        depthlens.load_model("depth-anything-v2-small")
    python, cli = str(info.value), info.value.cli_message
    assert "weights=PATH" in python and "--weights" not in python
    assert "depthlens.download('depth-anything-v2-small')" in python
    assert "--weights PATH" in cli and "depthlens download depth-anything-v2-small" in cli
    assert "downloads are off (DEPTHLENS_OFFLINE=1" in python


def test_cli_missing_weights_says_the_download_failed_and_why(tmp_path):
    with mirror({}) as server:  # answers 404 to everything
        result = run(
            "predict",
            SQUARE,
            "-o",
            "out",
            "-m",
            "midas-v21-small",
            env=online_env(server, tmp_path / "home"),
            cwd=tmp_path,
        )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "downloading them failed: 127.0.0.1 answered 404 Not Found" in lines[0]
    assert "--weights PATH" in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/x/y.part"), "the disk is full"),
        (
            PermissionError(errno.EACCES, "Permission denied", "/ro/f"),
            "no permission to write /ro/f",
        ),
        (TimeoutError("timed out"), "no answer from h.example within 30 s"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "h.example refused the connection"),
    ],
)
def test_download_failure_reasons(exc, expected):
    wrapped = RuntimeError("while downloading")
    wrapped.__cause__ = exc
    assert expected in downloads.download_failure_reason(wrapped, "h.example")


def test_unresolvable_host_is_named(tmp_path, monkeypatch):
    online(monkeypatch, tmp_path, "http://no-such-host.invalid/weights")
    with pytest.raises(DownloadError, match=r"could not resolve host no-such-host\.invalid"):
        depthlens.download("midas-v21-small")


# depthlens download ----------------------------------------------------------------------


def test_download_records_sha256_and_loads_from_the_cache(tmp_path, midas_bytes):
    with mirror({MIDAS_FILE: midas_bytes}) as server:
        result = run(
            "download",
            "midas-v21-small",
            env=online_env(server, tmp_path / "home"),
            cwd=tmp_path,
        )
    assert result.returncode == 0, result.stderr
    target = tmp_path / "home" / "checkpoints" / MIDAS_FILE
    assert target.read_bytes() == midas_bytes
    assert f"sha256 {sha(midas_bytes)[:16]}" in result.stdout
    manifest = json.loads((tmp_path / "home" / "downloads.json").read_text())
    entry = manifest["files"][str(target.resolve())]
    assert entry["sha256"] == sha(midas_bytes) and entry["model"] == "midas-v21-small"
    # later loads find it, offline, and check it against the record
    loaded = run(
        "predict",
        SQUARE,
        "-o",
        "out",
        "-m",
        "midas-v21-small",
        "--format",
        "npy",
        env={"DEPTHLENS_HOME": str(tmp_path / "home")},
        cwd=tmp_path,
    )
    assert loaded.returncode == 0, loaded.stderr
    # a file changed after its download is refused in one sentence
    damaged = bytearray(midas_bytes)
    damaged[-100] ^= 0xFF
    target.write_bytes(bytes(damaged))
    refused = run(
        "predict",
        SQUARE,
        "-o",
        "out2",
        "-m",
        "midas-v21-small",
        env={"DEPTHLENS_HOME": str(tmp_path / "home")},
        cwd=tmp_path,
    )
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1
    assert f"has sha256 {sha(bytes(damaged))[:12]}" in refused.stderr
    assert not (tmp_path / "out2").exists()


def test_download_resumes_a_partial_file(tmp_path, midas_bytes, monkeypatch):
    with mirror({MIDAS_FILE: midas_bytes}, etags={MIDAS_FILE: sha(midas_bytes)}) as server:
        online(monkeypatch, tmp_path, server.url)
        part = tmp_path / "checkpoints" / f"{MIDAS_FILE}.part"
        part.parent.mkdir()
        half = len(midas_bytes) // 2
        part.write_bytes(midas_bytes[:half])
        progress: list[tuple[int, int | None]] = []
        (done,) = depthlens.download("midas-v21-small", on_progress=lambda *p: progress.append(p))
    assert server.seen == [(MIDAS_FILE, f"bytes={half}-")]
    assert done.path.read_bytes() == midas_bytes and not part.exists()
    assert done.verified and done.fetched and done.sha256 == sha(midas_bytes)
    assert progress[0] == (half, len(midas_bytes)) and progress[-1][0] == len(midas_bytes)


def test_download_refuses_what_differs_from_the_published_sha256(
    tmp_path, midas_bytes, monkeypatch
):
    with mirror({MIDAS_FILE: midas_bytes}, etags={MIDAS_FILE: "0" * 64}) as server:
        online(monkeypatch, tmp_path, server.url)
        with pytest.raises(DownloadError, match="not the published 0000"):
            depthlens.download("midas-v21-small")


def test_download_to_a_folder_says_how_to_load_it(tmp_path, midas_bytes):
    with mirror({MIDAS_FILE: midas_bytes}) as server:
        result = run(
            "download",
            "midas-v21-small",
            "--to",
            "mine",
            env=online_env(server, tmp_path / "home"),
            cwd=tmp_path,
        )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "mine" / MIDAS_FILE).read_bytes() == midas_bytes
    assert f"--weights mine/{MIDAS_FILE}" in result.stdout


def test_download_goes_on_past_a_model_that_cannot_be_had(tmp_path, midas_bytes):
    with mirror({MIDAS_FILE: midas_bytes}) as server:
        result = run(
            "download",
            "metric3d-v2-small",
            "midas-v21-small",
            env=online_env(server, tmp_path / "home"),
            cwd=tmp_path,
        )
    assert result.returncode == 1
    assert result.stderr.startswith("failed metric3d-v2-small: Could not download")
    assert "answered 404" in result.stderr
    assert (tmp_path / "home" / "checkpoints" / MIDAS_FILE).is_file()


def test_unknown_name_stops_before_any_download(tmp_path):
    result = run("download", "DA2-smal", env={}, cwd=tmp_path)
    assert result.returncode == 2
    assert "did you mean" in result.stderr.lower()


def test_non_commercial_licence_is_shown_once_before_the_first_download(
    tmp_path, monkeypatch, caplog
):
    online(monkeypatch, tmp_path)
    tried: list[str] = []

    def unreachable(repo_id: str, local_files_only: bool = False, **_: object) -> str:
        if not local_files_only:
            tried.append(repo_id)
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    monkeypatch.setattr("huggingface_hub.snapshot_download", unreachable)
    with caplog.at_level(logging.WARNING, logger="depthlens"):
        for _ in range(2):
            with pytest.raises(DownloadError):
                depthlens.download("depth-anything-v2-base")
    licences = [r.getMessage() for r in caplog.records if "CC-BY-NC-4.0" in r.getMessage()]
    assert len(licences) == 1 and "non-commercial" in licences[0]
    assert tried == ["depth-anything/Depth-Anything-V2-Base-hf"] * 2
    assert depthlens.download("depthlens-small")[0].source == "bundled with depthlens"


def test_hub_snapshot_is_checked_against_the_hubs_sha256(tmp_path, monkeypatch):
    """A Hub cache snapshot links each file to blobs/<sha256>: what loads must match."""
    online(monkeypatch, tmp_path)
    content = b"not really safetensors, but only the hash matters here"
    blobs, snapshot = tmp_path / "hub" / "blobs", tmp_path / "hub" / "snapshots" / "abc"

    def fake_snapshot(repo_id: str, **_: object) -> str:
        blobs.mkdir(parents=True, exist_ok=True)
        snapshot.mkdir(parents=True, exist_ok=True)
        (blobs / sha(content)).write_bytes(content)
        (snapshot / "model.safetensors").symlink_to(blobs / sha(content))
        (snapshot / "config.json").write_text("{}")
        return str(snapshot)

    monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot)
    (done,) = depthlens.download("depth-anything-v2-small")
    assert done.path == snapshot and done.verified and done.sha256 == sha(content)
    downloads.verify_weights(snapshot)  # unchanged: fine
    (blobs / sha(content)).write_bytes(content + b"!")
    weights._SHA256.clear()
    with pytest.raises(WeightsError, match="damaged or was replaced"):
        downloads.verify_weights(snapshot)


def test_a_verified_file_is_not_hashed_again_until_it_changes(monkeypatch, tmp_path):
    """The check's result is kept by size and modification time: a second process
    loading the same checkpoint reads no byte of it; a file that changed is hashed."""
    content = b"weights" * 100
    file = tmp_path / "depth_anything_v2_vits.pth"
    file.write_bytes(content)
    monkeypatch.setattr(downloads, "_hub_sha256", lambda _file: sha(content))
    downloads.verify_weights(file)  # hashed once, recorded
    weights._SHA256.clear()  # a new process: no in-memory hash

    def no_hashing(_path: object) -> str:
        raise AssertionError("hashed a file whose stamp was recorded as verified")

    monkeypatch.setattr(downloads, "weights_sha256", no_hashing)
    downloads.verify_weights(file)
    monkeypatch.undo()
    monkeypatch.setattr(downloads, "_hub_sha256", lambda _file: sha(content))
    file.write_bytes(content + b"!")  # another size: hashed again, and refused
    with pytest.raises(WeightsError, match="damaged or was replaced"):
        downloads.verify_weights(file)


def test_the_bundled_model_is_never_downloaded():
    (done,) = depthlens.download(FALLBACK_MODEL)
    assert not done.fetched and done.path.is_file() and done.size > 0
    assert np.isfinite(depthlens.load_model(FALLBACK_MODEL).predict(SQUARE).depth).all()
    assert get_spec(FALLBACK_MODEL).weights.bundled
