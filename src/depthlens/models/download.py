"""Getting official weights onto this machine: ``depthlens download`` and
``depthlens.download``, and the check that what was downloaded is what loads.

Where from: a model's Hugging Face repo in transformers format (its ``hub_id``:
safetensors, through huggingface_hub, which caches and resumes), else its official
checkpoint file (its ``url``), written to ``$DEPTHLENS_HOME/checkpoints`` (or ``to``)
through a ``.part`` file that a later call resumes with an HTTP Range request.
``DEPTHLENS_MIRROR`` (a base URL) replaces the folder of every official file's URL,
for networks that reach model files only through a mirror.

What was fetched is recorded in ``$DEPTHLENS_HOME/downloads.json``: the file, its
source, its size and sha256, and whether that sha256 matched the one its host published.
The Hugging Face Hub publishes one for every large file: the ``X-Linked-Etag`` header of
a ``resolve`` URL, and the blob name of its cache. Every later load checks a recorded or
Hub-named file against that sha256 (``verify_weights``), so a file that changed after its
download (a partial copy, a bad disk, a swap) is refused in one sentence.

A model under a non-commercial licence (``CC-BY-NC-*``) has its licence shown once,
before its first download, on the ``depthlens`` logger (stderr by default).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from email.message import Message
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from depthlens.errors import DownloadError, WeightsError
from depthlens.io.depth_files import write_bytes
from depthlens.io.remote import http_opener, network_failure
from depthlens.models.registry import get_spec
from depthlens.models.spec import ModelSpec
from depthlens.models.weights import (
    CONVERTED_WEIGHTS,
    HUB_PATTERNS,
    WeightsLocation,
    checkpoint_dirs,
    depthlens_home,
    find_weights,
    offline_reason,
    weights_sha256,
)

__all__ = [
    "Downloaded",
    "download",
    "download_failure_reason",
    "fetch_weights",
    "verify_weights",
]

log = logging.getLogger("depthlens")

MANIFEST = "downloads.json"
# Seconds to wait for a connection or for the next piece of a file.
TIMEOUT_S = 30.0
CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")

# (bytes done, bytes in all or None): how a download reports progress.
ProgressCallback = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Downloaded:
    """Weights on this machine after ``fetch_weights``.

    ``path``: the checkpoint file, or the Hub snapshot folder. ``sha256``: of the file
    (of the folder's ``model.safetensors``). ``verified``: that sha256 equals the one
    the host published. ``fetched``: False when they were here already.
    """

    model: str
    path: Path
    source: str
    sha256: str | None
    size: int
    verified: bool
    fetched: bool


def download(
    models: str | Sequence[str],
    to: str | os.PathLike[str] | None = None,
    *,
    on_progress: ProgressCallback | None = None,
) -> list[Downloaded]:
    """Download the official weights of zoo ``models`` (a name or several).

    Weights already on this machine are checked, not fetched again. With ``to`` the
    files go into that folder (load them with ``weights=``); otherwise into
    ``$DEPTHLENS_HOME/checkpoints`` or the Hugging Face cache, where ``load_model``
    looks. Raises the DownloadError of the first model that cannot be had.
    """
    names = [models] if isinstance(models, str) else list(models)
    specs = [get_spec(name) for name in names]  # a misspelt name fails before any download
    return [fetch_weights(spec, to, on_progress=on_progress) for spec in specs]


def fetch_weights(
    spec: ModelSpec,
    to: str | os.PathLike[str] | None = None,
    *,
    on_progress: ProgressCallback | None = None,
) -> Downloaded:
    """The weights of ``spec`` on this machine: found, else downloaded and recorded."""
    folder = Path(to) if to is not None else None
    if spec.weights.bundled:
        location = find_weights(spec, download=False)
        return _here(spec, location.path, "bundled with depthlens")
    if folder is None:
        try:
            location = find_weights(spec, download=False)
        except WeightsError:
            pass
        else:
            verify_weights(location.path)
            return _here(spec, location.path, _source_of(location))
    source = spec.weights.hub_id or _file_url(spec)
    if source is None:
        raise DownloadError(spec.name, "-", "it has no official download")
    why_not = offline_reason()
    if why_not:
        raise DownloadError(spec.name, source, why_not)
    _show_licence(spec)
    try:
        if spec.weights.hub_id:
            path, official = _fetch_snapshot(spec.weights.hub_id, folder)
        else:
            target = (folder or checkpoint_dirs()[0]) / str(spec.weights.official_file)
            official = _fetch_file(source, target, on_progress)
            path = target
    except WeightsError:
        raise
    except Exception as exc:  # the network's and the disk's failures, said in one sentence
        host = _host(source if "://" in source else _hub_endpoint())
        raise DownloadError(spec.name, source, download_failure_reason(exc, host)) from None
    sha256 = weights_sha256(path)
    if official is not None and sha256 != official:
        raise DownloadError(
            spec.name, source, f"what arrived has sha256 {sha256}, not the published {official}"
        )
    done = Downloaded(
        spec.name, path, source, sha256, _size(path), official is not None, fetched=True
    )
    _record(done)
    return done


def verify_weights(path: Path) -> None:
    """Refuse weights that differ from what was downloaded or what the Hub published.

    ``path`` is a checkpoint file or a model folder (its ``model.safetensors`` is
    checked). Files with neither a record nor a Hub name are not checked. A file that
    passed once is not hashed again while its size and modification time stay those it
    passed with (a 2 GB checkpoint takes seconds to hash, at every start of a process).
    """
    file = path / CONVERTED_WEIGHTS if path.is_dir() else path
    expected, since = _expected_sha256(file)
    if expected is None:
        return
    stamp = _stamp(file)
    manifest = _read_manifest()
    key = str(file.resolve())
    if stamp is not None and manifest["verified"].get(key) == stamp | {"sha256": expected}:
        return
    actual = weights_sha256(file)
    if actual is not None and actual != expected:
        raise WeightsError(
            f"{file} has sha256 {actual[:12]}…, not the {expected[:12]}… {since}: it is "
            "damaged or was replaced; delete it and download it again (depthlens download)."
        )
    if actual is not None and stamp is not None:
        manifest["verified"][key] = stamp | {"sha256": expected}
        _write_manifest(manifest)


def _stamp(file: Path) -> dict[str, int] | None:
    """What tells one version of ``file`` from another without reading it."""
    try:
        info = file.stat()
    except OSError:
        return None
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns}


def download_failure_reason(exc: BaseException, host: str = "the server") -> str:
    """Why a download failed, in a few words: the first cause in ``exc``'s chain that
    says something a user can act on (a full disk, a folder without permission, a
    download cut short, an HTTP status, then the network's failures as
    ``io.remote.network_failure`` says them)."""
    causes = list(_chain(exc))
    for cause in causes:
        if isinstance(cause, _CutShort):
            return str(cause)
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            return f"the disk is full ({cause.filename or 'while writing'})"
        if isinstance(cause, PermissionError) or (
            isinstance(cause, OSError) and cause.errno in (errno.EACCES, errno.EROFS)
        ):
            return f"no permission to write {cause.filename or 'the download folder'}"
        status = getattr(getattr(cause, "response", None), "status_code", None)
        if isinstance(status, int) and status >= 400:  # the Hub client's HTTP errors
            return f"{host} answered {status}"
    for cause in causes:
        if isinstance(cause, urllib.error.URLError | socket.gaierror | OSError):
            return network_failure(cause, host, host, TIMEOUT_S)
    first = (str(exc).strip().splitlines() or [""])[0][:160]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)  # urllib.error.URLError wraps its cause
        if isinstance(reason, BaseException) and id(reason) not in seen:
            yield reason
            seen.add(id(reason))
        current = current.__cause__ or current.__context__


def _hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def _host(url: str | None) -> str:
    return urlsplit(url or "").hostname or "the server"


def _file_url(spec: ModelSpec) -> str | None:
    """The official file's URL, or its place on ``DEPTHLENS_MIRROR``."""
    mirror = os.environ.get("DEPTHLENS_MIRROR", "").strip()
    if mirror and spec.weights.official_file:
        return f"{mirror.rstrip('/')}/{spec.weights.official_file}"
    return spec.weights.url


def _here(spec: ModelSpec, path: Path, source: str) -> Downloaded:
    official, _ = _expected_sha256(path / CONVERTED_WEIGHTS if path.is_dir() else path)
    sha256 = weights_sha256(path)
    verified = official is not None and official == sha256
    return Downloaded(spec.name, path, source, sha256, _size(path), verified, fetched=False)


def _source_of(location: WeightsLocation) -> str:
    return f"found in the {location.origin}" if location.origin != "explicit" else "given"


def _size(path: Path) -> int:
    file = path / CONVERTED_WEIGHTS if path.is_dir() else path
    try:
        return file.stat().st_size
    except OSError:
        return 0


# The Hugging Face Hub ------------------------------------------------------------------


def _fetch_snapshot(repo_id: str, folder: Path | None) -> tuple[Path, str | None]:
    """The repo's transformers files, in the Hub cache or ``folder / <repo name>``;
    with the sha256 the Hub published for its ``model.safetensors``."""
    from huggingface_hub import snapshot_download

    local_dir = folder / repo_id.split("/")[-1] if folder is not None else None
    path = Path(
        snapshot_download(
            repo_id, allow_patterns=HUB_PATTERNS, local_dir=local_dir, etag_timeout=TIMEOUT_S
        )
    )
    return path, _hub_sha256(path / CONVERTED_WEIGHTS)


def _hub_sha256(file: Path) -> str | None:
    """The sha256 the Hub published for ``file``: in the Hub cache a snapshot file links
    to ``blobs/<sha256>``; in a ``local_dir`` download the etag is kept in
    ``.cache/huggingface/download/<name>.metadata`` (second line)."""
    if file.is_symlink():
        name = Path(os.readlink(file)).name
        return name if _SHA256.fullmatch(name) else None
    metadata = file.parent / ".cache" / "huggingface" / "download" / f"{file.name}.metadata"
    try:
        lines = metadata.read_text().splitlines()
    except OSError:
        return None
    etag = lines[1].strip().strip('"') if len(lines) > 1 else ""
    return etag if _SHA256.fullmatch(etag) else None


# Official files over HTTP ------------------------------------------------------------


class _CutShort(Exception):
    """A download that ended before its Content-Length; its ``.part`` file is kept."""


def _fetch_file(url: str, target: Path, on_progress: ProgressCallback | None) -> str | None:
    """Download ``url`` to ``target`` through ``target.part``, resuming a ``.part`` left
    by an earlier call; returns the sha256 its host published, if any."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    start = part.stat().st_size if part.is_file() else 0
    opener, hops = http_opener()
    request = urllib.request.Request(url, headers={"User-Agent": "depthlens"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        response = opener.open(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not start:  # 416: the .part is already whole, or stale
            raise
        part.unlink()
        return _fetch_file(url, target, on_progress)
    with response:
        if start and response.status != 206:  # the server ignored the Range: start over
            start = 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        official = _published_sha256([*hops, response.headers])
        with part.open("ab" if start else "wb") as file:
            file.truncate(start)
            _copy(response, file, start, total, on_progress)
    size = part.stat().st_size
    if total is not None and size != total:
        raise _CutShort(f"the connection closed after {size} of {total} bytes; run it again")
    os.replace(part, target)
    return official


def _copy(
    response: IO[bytes],
    file: IO[bytes],
    done: int,
    total: int | None,
    on_progress: ProgressCallback | None,
) -> None:
    if on_progress is not None:
        on_progress(done, total)
    while chunk := response.read(CHUNK):
        file.write(chunk)
        done += len(chunk)
        if on_progress is not None:
            on_progress(done, total)


def _published_sha256(headers: Sequence[Message]) -> str | None:
    for header in headers:
        for name in ("X-Linked-Etag", "ETag"):
            value = (header.get(name) or "").strip().removeprefix("W/").strip('"')
            if _SHA256.fullmatch(value):
                return value
    return None


# The record of downloads ---------------------------------------------------------------


def _manifest_path() -> Path:
    return depthlens_home() / MANIFEST


def _read_manifest() -> dict[str, Any]:
    try:
        manifest = json.loads(_manifest_path().read_text())
    except (OSError, ValueError):
        manifest = {}
    if not isinstance(manifest, dict):
        manifest = {}
    # files: what was downloaded; verified: files whose sha256 was checked, by stamp
    for section in ("files", "verified"):
        if not isinstance(manifest.get(section), dict):
            manifest[section] = {}
    manifest.setdefault("licences_shown", [])
    return manifest


def _write_manifest(manifest: dict[str, Any]) -> None:
    try:
        write_bytes(_manifest_path(), (json.dumps(manifest, indent=2) + "\n").encode())
    except OSError as exc:
        log.warning("depthlens: could not record the download in %s: %s", _manifest_path(), exc)


def _record(done: Downloaded) -> None:
    file = done.path / CONVERTED_WEIGHTS if done.path.is_dir() else done.path
    entry = asdict(done) | {
        "path": str(file),
        "fetched": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    manifest = _read_manifest()
    manifest["files"][str(file.resolve())] = entry
    _write_manifest(manifest)


def _expected_sha256(file: Path) -> tuple[str | None, str]:
    """The sha256 ``file`` should have and where that comes from, or (None, "")."""
    try:
        key = str(file.resolve())
    except OSError:
        return None, ""
    entry = _read_manifest()["files"].get(key)
    if isinstance(entry, dict) and isinstance(entry.get("sha256"), str):
        return entry["sha256"], f"recorded when it was downloaded ({entry.get('fetched', '')})"
    published = _hub_sha256(file)
    if published is not None:
        return published, "the Hugging Face Hub published for it"
    return None, ""


def _show_licence(spec: ModelSpec) -> None:
    """Say a non-commercial licence once, before the first download under it."""
    if not spec.licence.upper().startswith("CC-BY-NC"):
        return
    manifest = _read_manifest()
    if spec.name in manifest["licences_shown"]:
        return
    log.warning(
        "%s is licensed %s: its weights may be used for non-commercial purposes only "
        "(https://creativecommons.org/licenses/by-nc/4.0/).",
        spec.name,
        spec.licence,
    )
    manifest["licences_shown"].append(spec.name)
    _write_manifest(manifest)
