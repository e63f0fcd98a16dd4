"""Finding, reading and loading weights, safely and strictly.

Weights are looked for in this order (DESIGN.md):
1. an explicit path (``--weights``): an official ``.pt``/``.pth`` checkpoint, a
   ``.safetensors`` file, a folder written by ``depthlens convert``, or a Hugging Face
   transformers folder;
2. the file bundled inside the package (``depthlens/weights``);
3. local caches: the official file in ``$DEPTHLENS_HOME/checkpoints`` (default
   ``~/.cache/depthlens/checkpoints``) or in torch.hub's checkpoint folder, then the
   Hugging Face cache for the model's Hub id;
4. a download (Hub id, else the official URL; ``depthlens.models.download``), unless
   ``HF_HUB_OFFLINE=1`` or ``DEPTHLENS_OFFLINE=1``; the error for weights that are not
   here says why the download failed.

Without a model name, ``find_default_weights`` picks DEFAULT_MODEL when its weights can
be had, else the bundled FALLBACK_MODEL.

Pickled checkpoints are only read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save
from torch import nn

from depthlens.errors import DownloadError, MissingWeightsError, WeightsError
from depthlens.io.depth_files import write_bytes
from depthlens.models.registry import DEFAULT_MODEL, FALLBACK_MODEL, MODELS
from depthlens.models.spec import ModelSpec

log = logging.getLogger("depthlens")

CONVERTED_CONFIG = "depthlens.json"
CONVERTED_WEIGHTS = "model.safetensors"
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "weights"

# Files a Hub snapshot needs to load in transformers format.
HUB_PATTERNS = ["*.json", "*.safetensors"]
# The one file of Hub repos that publish an official checkpoint rather than a
# transformers model (MoGe-2: Ruicheng/moge-2-*/model.pt): such a folder is that file.
SNAPSHOT_CHECKPOINT = "model.pt"

LocationKind = Literal["file", "converted_dir", "hf_dir"]


@dataclass(frozen=True)
class WeightsLocation:
    """Where a model's weights were found and in which layout."""

    kind: LocationKind
    path: Path
    origin: str  # "explicit", "bundled", "cache", "hub cache", "download"


def family_module(family: str) -> ModuleType:
    """The module that builds and converts networks of ``family``."""
    return import_module(f"depthlens.models.{family}")


def depthlens_home() -> Path:
    return Path(os.environ.get("DEPTHLENS_HOME", Path.home() / ".cache" / "depthlens"))


def checkpoint_dirs() -> list[Path]:
    """Folders searched for official checkpoint files, most specific first."""
    return [depthlens_home() / "checkpoints", Path(torch.hub.get_dir()) / "checkpoints"]


def offline() -> bool:
    return bool(offline_reason())


def offline_reason() -> str:
    """Why downloads are off (``downloads are off (DEPTHLENS_OFFLINE=1)``), or ""."""
    on = [
        f"{name}={os.environ[name]}"
        for name in ("DEPTHLENS_OFFLINE", "HF_HUB_OFFLINE")
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
    ]
    return f"downloads are off ({', '.join(on)})" if on else ""


def missing_weights_error(spec: ModelSpec, why: str | None = None) -> MissingWeightsError:
    """The error for weights that are not here: what to download and where to put it,
    the licence, and ``why`` a download did not get them (when one was tried). Said
    once for Python (``weights=PATH``) and once for the command line (``--weights``)."""
    source = spec.weights
    if source.bundled:
        text = (
            f"The bundled weights of {spec.name} ({source.bundled}) are missing from "
            f"{BUNDLED_DIR}; reinstall depthlens or pass {{weights}}."
        )
        return MissingWeightsError(
            text.format(weights="weights=PATH"), text.format(weights="--weights PATH")
        )
    tried = f", and downloading them failed: {why}" if why else ""
    ways = ["{download}" + (f" (the Hugging Face repo {source.hub_id})" if source.hub_id else "")]
    if source.official_file:
        url = f" from {source.url}" if source.url else ""
        ways.append(f"put {source.official_file}{url} into {checkpoint_dirs()[0]}/")
    ways.append("pass {weights}")
    text = (
        f"No weights for {spec.name} on this machine{tried}; to get them, "
        f"{', '.join(ways[:-1])} or {ways[-1]} (licence: {spec.licence})."
    )
    return MissingWeightsError(
        text.format(download=f"run depthlens.download('{spec.name}')", weights="weights=PATH"),
        text.format(download=f"run depthlens download {spec.name}", weights="--weights PATH"),
        why,
    )


def missing_weights_message(spec: ModelSpec) -> str:
    """The command line's sentence for weights that are not here (no download tried)."""
    return missing_weights_error(spec).cli_message


def classify_path(path: Path) -> WeightsLocation:
    """Tell what kind of weights ``path`` holds, or raise WeightsError."""
    if not path.exists():
        raise WeightsError(f"Weights path {path} does not exist.")
    if path.is_dir():
        if (path / CONVERTED_CONFIG).is_file():
            return WeightsLocation("converted_dir", path, "explicit")
        if (path / "config.json").is_file():
            return WeightsLocation("hf_dir", path, "explicit")
        if (path / SNAPSHOT_CHECKPOINT).is_file():  # a Hub snapshot of one checkpoint
            return WeightsLocation("file", path / SNAPSHOT_CHECKPOINT, "explicit")
        raise WeightsError(
            f"Folder {path} holds neither {CONVERTED_CONFIG} (from depthlens convert), "
            f"config.json (a Hugging Face model folder) nor {SNAPSHOT_CHECKPOINT} (a "
            "checkpoint's Hub snapshot)."
        )
    return WeightsLocation("file", path, "explicit")


def find_weights(
    spec: ModelSpec, explicit: Path | None = None, download: bool = True
) -> WeightsLocation:
    """Locate the weights of ``spec`` in the documented order; WeightsError if none.

    With ``download=False`` only what is already on this machine counts; else a
    download is tried (``models.download``) and its failure is part of the error.
    """
    if explicit is not None:
        return classify_path(Path(explicit))
    source = spec.weights
    if source.bundled:
        bundled = BUNDLED_DIR / source.bundled
        if bundled.exists():
            found = classify_path(bundled)
            return WeightsLocation(found.kind, found.path, "bundled")
        raise missing_weights_error(spec)
    if source.official_file:
        for folder in checkpoint_dirs():
            candidate = folder / source.official_file
            if candidate.is_file():
                return WeightsLocation("file", candidate, "cache")
    if source.hub_id:
        cached = _hub_cache_snapshot(source.hub_id)
        if cached is not None:
            return WeightsLocation("hf_dir", cached, "hub cache")
    if not download:
        raise missing_weights_error(spec)
    from depthlens.models.download import fetch_weights

    try:
        fetched = fetch_weights(spec)
    except DownloadError as exc:
        raise missing_weights_error(spec, exc.reason) from None
    kind: LocationKind = "hf_dir" if fetched.path.is_dir() else "file"
    return WeightsLocation(kind, fetched.path, "download")


def find_default_weights(*, download: bool = True) -> tuple[ModelSpec, WeightsLocation]:
    """The default model and its weights: DEFAULT_MODEL's when they are on this machine
    or can be downloaded, else the bundled FALLBACK_MODEL's, said once per process on
    the ``depthlens`` logger (one stderr line unless logging is set up otherwise)."""
    spec = MODELS[DEFAULT_MODEL]
    try:
        return spec, find_weights(spec, download=download)
    except MissingWeightsError as exc:
        if not _FALLBACK_SAID:
            _FALLBACK_SAID.add(FALLBACK_MODEL)
            if not exc.why:
                why = "is not on this machine"
            elif exc.why.startswith("downloads are off"):
                why = f"is not on this machine and {exc.why}"
            else:
                why = f"is not on this machine and could not be downloaded: {exc.why}"
            log.warning(
                "Using the bundled %s, a layout prior rather than real depth on photos: the "
                "default %s %s; for real depth run: depthlens download %s",
                FALLBACK_MODEL,
                DEFAULT_MODEL,
                why,
                DEFAULT_MODEL,
            )
    fallback = MODELS[FALLBACK_MODEL]
    return fallback, find_weights(fallback, download=False)


_FALLBACK_SAID: set[str] = set()


def _hub_cache_snapshot(repo_id: str) -> Path | None:
    """The repo's snapshot in the Hugging Face cache, if it has one with a config."""
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(repo_id, allow_patterns=HUB_PATTERNS, local_files_only=True)
    except Exception:  # not cached (or a broken cache): not here
        return None
    path = Path(folder)
    return path if (path / "config.json").is_file() else None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, safely; training containers are unwrapped.

    Accepts ``.safetensors`` and pickled ``.pt``/``.pth``/``.bin`` files, the latter only
    through ``torch.load(weights_only=True)``. Containers: ``{"model_state_dict": ...}``
    (Metric3D), ``{"model": ..., "optimizer": ...}`` (MiDaS training), ``{"model": ...,
    "model_config": ...}`` (MoGe), ``{"state_dict": ...}``.
    """
    return read_checkpoint(path)[0]


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """``read_state_dict``, and the network config a checkpoint carries beside its
    tensors (MoGe's ``model_config``: plain dicts, lists, strings and numbers), or None."""
    try:
        if path.suffix == ".safetensors":
            return dict(load_file(str(path))), None
        with warnings.catch_warnings():  # torch warns about pickle protocols; we refuse
            warnings.simplefilter("ignore")
            obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's own text is four sentences ending in advice to pass weights_only=False,
        # the one thing never to do with an untrusted file: say what was found instead.
        found = re.search(r"GLOBAL (\S+)", str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise WeightsError(
            f"{path} was refused: it holds pickled Python objects{what} besides tensors, "
            "and depthlens never runs code from a weights file."
        ) from None
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"Could not read weights from {path}: {reason}.") from None
    carried = obj.get("model_config") if isinstance(obj, Mapping) else None
    obj = unwrap_checkpoint(obj)
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} is not a checkpoint of tensors (a state dict).")
    return dict(obj), dict(carried) if isinstance(carried, Mapping) else None


def unwrap_checkpoint(obj: Any) -> Any:
    """The state dict inside the known checkpoint containers, else ``obj`` itself."""
    if isinstance(obj, Mapping):
        if "model_state_dict" in obj:
            return obj["model_state_dict"]
        if "model" in obj and ("optimizer" in obj or "model_config" in obj):
            return obj["model"]
        if set(obj) == {"model"} and isinstance(obj["model"], Mapping):  # ZoeDepth's .pt
            return obj["model"]
        if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
            return obj["state_dict"]
    return obj


def load_strict(network: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with an error that lists the mismatched keys."""
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong_shape = sorted(
        f"{k} {tuple(state_dict[k].shape)} != {tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict)
        if tuple(state_dict[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or wrong_shape:
        parts = []
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong_shape),
        ):
            if keys:
                shown = ", ".join(keys[:8]) + (
                    f" and {len(keys) - 8} more" if len(keys) > 8 else ""
                )
                parts.append(f"{label}: {shown}")
        raise WeightsError(f"Weights in {source} do not fit the network ({'; '.join(parts)}).")
    network.load_state_dict(state_dict, strict=True)


def build_network(spec: ModelSpec, location: WeightsLocation) -> nn.Module:
    """The network of ``spec`` with the weights at ``location`` loaded strictly, once
    the file is checked against its download record or the Hub's sha256."""
    from depthlens.models.download import verify_weights

    family = family_module(spec.family)
    config = family.PRESETS[spec.variant]
    if location.kind == "hf_dir":
        verify_weights(location.path)
        try:
            network: nn.Module = family.network_from_hf_folder(location.path, config)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise WeightsError(
                f"Could not load the Hugging Face model folder {location.path}: {exc}."
            ) from None
        return network.eval()
    path = location.path / CONVERTED_WEIGHTS if location.kind == "converted_dir" else location.path
    verify_weights(path)
    state_dict, carried = read_checkpoint(path)
    # families whose checkpoints say their own shape (Metric3D, MoGe) adapt the preset,
    # with the config the checkpoint carries when it has one (MoGe's model_config)
    adapt = getattr(family, "config_for_state_dict", None)
    if adapt is not None:
        config = adapt(state_dict, config, carried) if carried else adapt(state_dict, config)
    network = family.build_network(config)
    native_keys = set(network.state_dict())
    # an official checkpoint (some key is not ours; MoGe's share a few names with ours):
    # rename its keys first
    if not set(state_dict) <= native_keys:
        state_dict = family.convert_official_state_dict(state_dict, config)
    load_strict(network, state_dict, str(path))
    return network.eval()


def read_converted_config(folder: Path) -> dict[str, Any]:
    """The ``depthlens.json`` of a converted folder."""
    try:
        config = json.loads((folder / CONVERTED_CONFIG).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"Could not read {folder / CONVERTED_CONFIG}: {exc}.") from None
    if not isinstance(config, dict) or "model" not in config:
        raise WeightsError(f"{folder / CONVERTED_CONFIG} does not name its model.")
    return config


def save_converted(spec: ModelSpec, network: nn.Module, folder: Path) -> Path:
    """Write ``network``'s weights as safetensors plus ``depthlens.json`` into ``folder``.

    Both files are written to temporary names and renamed, so an interrupted convert
    leaves no half-written model behind.
    """
    tensors = {k: v.detach().contiguous().cpu() for k, v in network.state_dict().items()}
    config = {"format": "depthlens", "version": 1, "model": spec.name, "variant": spec.variant}
    write_bytes(folder / CONVERTED_WEIGHTS, save(tensors))
    write_bytes(folder / CONVERTED_CONFIG, (json.dumps(config, indent=2) + "\n").encode())
    return folder


_SHA256: dict[tuple[str, int, int], str] = {}


def weights_sha256(weights: str | os.PathLike[str]) -> str | None:
    """The sha256 of a weights file (of a folder's ``model.safetensors``: a converted
    export or a Hugging Face folder), hex; None for anything else (a Hub id, no file).
    Computed once per file version (path, size, mtime) and process."""
    path = Path(weights)
    if path.is_dir():
        path = path / CONVERTED_WEIGHTS
    try:
        info = path.stat()
    except OSError:
        return None
    if not path.is_file():
        return None
    key = (str(path.resolve()), info.st_size, info.st_mtime_ns)
    if key not in _SHA256:
        digest = hashlib.sha256()
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
        _SHA256[key] = digest.hexdigest()
    return _SHA256[key]


def describe_weights(weights: str) -> str:
    """Weights as a summary line names them: ``bundled`` for the shipped files, else
    the path or id as given."""
    try:
        bundled = Path(weights).resolve().is_relative_to(BUNDLED_DIR)
    except (OSError, ValueError):
        bundled = False
    return "bundled" if bundled else weights
