"""The ONNX Runtime backend: the network exported to ONNX (``backends.export``) and run
by an ONNX Runtime CPU session, in fp32, int8 (dynamic quantisation of the Linear
layers) or int8-static (weights and activations, calibrated on synthetic scenes).

A compiled-model cache entry (``backends.cache``) holds the export, ``model.onnx``, and
ONNX Runtime's graph-optimised copy of it, ``model.ort-<version>.onnx``: a later start
loads the copy, which roughly halves the session's start (0.85 s to 0.4 s for Depth
Anything V2 Small on two cores). The copy is optimised at ONNX Runtime's "extended"
level, which fuses operators but leaves out the CPU-specific layouts, so an entry on a
shared home folder still runs on another CPU; those layouts are applied at each start.
An export made by another depthlens version, or a file that no longer loads, is made
again.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from depthlens.models.backends import Backend, OutputLayout, Precision, cache, clip_frames
from depthlens.models.backends.export import (
    calibration_key,
    depthlens_version,
    export_onnx,
    input_names,
    output_layout,
)
from depthlens.models.spec import ModelSpec

if TYPE_CHECKING:
    import onnxruntime

MODEL_FILE = "model.onnx"


class OnnxRuntimeRunner:
    """``network(batch, *extra)`` through ONNX Runtime (``extra``: Prompt Depth
    Anything's prompt depth); outputs are float32 torch tensors in the network's own
    structure (a (B, h, w) tensor or the family's named tuple). A network that takes
    clips takes a (B, T, 3, h, w) clip or a (B, 3, h, w) batch of photos, each run as a
    one-frame clip."""

    backend: Backend = "onnxruntime"

    def __init__(
        self,
        spec: ModelSpec,
        network: nn.Module,
        device: torch.device,
        precision: Precision = "fp32",
        weights: str = "",
    ) -> None:
        import onnxruntime

        self.precision = precision
        self.layout: OutputLayout = output_layout(network)
        self.inputs = input_names(spec)
        self.clips = clip_frames(spec) > 0
        calibration = calibration_key() if precision == "int8-static" else ""
        key = cache.weights_key(network, weights)
        folder = cache.entry_dir(spec, key, self.backend, precision, calibration)
        self.path = folder / MODEL_FILE
        tuned = folder / f"model.ort-{onnxruntime.__version__}.onnx"
        session = _open(tuned)
        if session is None or not self._current(session):
            session = _tune(self.path, tuned)  # an export is here, its copy is not
        if session is None or not self._current(session):
            export_onnx(spec, network, self.path, precision=precision, weights=weights)
            cache.prune(keep=folder)
            session = _tune(self.path, tuned) or _load(self.path, "all")
        self.session: onnxruntime.InferenceSession = session

    def __call__(self, batch: torch.Tensor, *extra: torch.Tensor) -> Any:
        photos = self.clips and batch.dim() == 4
        if photos:
            batch = batch[:, None]
        feed = {
            name: np.ascontiguousarray(tensor.detach().to("cpu", torch.float32).numpy())
            for name, tensor in zip(self.inputs, (batch, *extra), strict=True)
        }
        arrays = self.session.run(list(self.layout.names), feed)
        return self.layout.rebuild([array[:, 0] for array in arrays] if photos else arrays)

    def _current(self, session: onnxruntime.InferenceSession) -> bool:
        """Whether a cached file is this depthlens version's export at this precision,
        with the network's inputs and outputs."""
        meta = session.get_modelmeta().custom_metadata_map
        inputs = tuple(value.name for value in session.get_inputs())
        outputs = tuple(value.name for value in session.get_outputs())
        return (
            meta.get("depthlens_version") == depthlens_version()
            and meta.get("precision") == self.precision
            and (inputs, outputs) == (self.inputs, self.layout.names)
        )


def _options(level: str) -> onnxruntime.SessionOptions:
    import onnxruntime

    levels = onnxruntime.GraphOptimizationLevel
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.graph_optimization_level = {
        "basic": levels.ORT_ENABLE_BASIC,
        "extended": levels.ORT_ENABLE_EXTENDED,
        "all": levels.ORT_ENABLE_ALL,
    }[level]
    options.log_severity_level = 3  # errors only: no shape-merge notes on stderr
    return options


def _session_errors() -> tuple[type[Exception], ...]:
    """What ONNX Runtime raises for a file it cannot load (its own exception types)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile")
    return (OSError, *(getattr(state, name) for name in names if hasattr(state, name)))


def _load(path: Path, level: str) -> onnxruntime.InferenceSession:
    """A CPU session of the model at ``path`` on torch's thread count."""
    import onnxruntime

    return onnxruntime.InferenceSession(
        str(path), _options(level), providers=["CPUExecutionProvider"]
    )


def _open(path: Path, level: str = "all") -> onnxruntime.InferenceSession | None:
    """``_load``, or None for a file that is missing or does not load."""
    if not path.is_file():
        return None
    try:
        return _load(path, level)
    except _session_errors():
        return None


def _tune(model: Path, tuned: Path) -> onnxruntime.InferenceSession | None:
    """A session of ``tuned``: ONNX Runtime's "extended" optimisation of ``model``, saved
    (atomically) for later starts in place of copies made by other ONNX Runtime
    versions. None if ``model`` is missing or does not load, or the copy cannot be
    saved (a model too large to save whole)."""
    import onnxruntime

    if not model.is_file():
        return None
    for stale in model.parent.glob("model.ort-*.onnx"):
        stale.unlink(missing_ok=True)
    temp = tuned.with_name(f".{tuned.name}.{secrets.token_hex(4)}.tmp")
    options = _options("extended")
    options.optimized_model_filepath = str(temp)
    try:
        onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        os.replace(temp, tuned)
    except _session_errors():
        return None
    finally:
        temp.unlink(missing_ok=True)
    return _open(tuned)
