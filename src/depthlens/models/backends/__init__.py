"""How a network runs: the backend (torch, ONNX Runtime, OpenVINO) and its precision.

The estimator prepares and finishes images the one official way (``models/hooks.py``);
only the network call in between goes through a ``Runner``: a callable from a
(B, 3, h, w) float32 batch (and Prompt Depth Anything's (B, 1, hp, wp) prompt depth) to
what the family's network returns (a (B, h, w) tensor, or a family's tuple of tensors
such as Metric3D's), so the hooks cannot tell backends apart. A network that sees time
(Video Depth Anything, ``clip_frames``) is exported whole, clips (B, T, 3, h, w) ->
(B, T, h, w); its runners take clips as well as photos, which go in as one-frame clips.

- ``torch`` (``backends/pytorch.py``: a submodule named ``torch`` would shadow the
  package's own ``torch``): the network itself; ``bf16`` runs it under CPU/CUDA autocast, ``int8``
  quantises its Linear layers dynamically (``torch.ao.quantization.quantize_dynamic``).
- ``onnxruntime``: the network exported to ONNX (``backends.export``) and run by an
  ONNX Runtime session; ``int8`` is ORT's dynamic quantisation of the export's Linear
  layers.
- ``openvino``: the network converted by OpenVINO and compiled for the CPU; ``bf16`` is
  its inference-precision hint, ``int8`` NNCF's int8 weight compression.

``int8`` needs no data: its weights are quantised, its activations stay float or are
quantised per call. ``int8-static`` (ONNX Runtime and OpenVINO) quantises the
activations too, with ranges calibrated on the family's preparation of depthlens'
synthetic scenes (``export.calibration_inputs``). It is the faster of the two on
convolutional networks and moves their depth by several times more; BENCHMARKS.md
("How far each reduced mode is from fp32") has the measurements behind this split.

Exported and converted models are kept under ``$DEPTHLENS_HOME/compiled``
(``backends.cache``), keyed by model, weights sha256, backend and precision (and, for
``int8-static``, the calibration recipe).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

import torch
from torch import nn

from depthlens.errors import UsageError
from depthlens.models.spec import ModelSpec

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "Backend",
    "OutputLayout",
    "Precision",
    "Runner",
    "check_choice",
    "clip_frames",
    "make_runner",
    "refuse_export",
]

Backend = Literal["torch", "onnxruntime", "openvino"]
Precision = Literal["fp32", "bf16", "int8", "int8-static"]
BACKENDS: tuple[Backend, ...] = ("torch", "onnxruntime", "openvino")
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "int8", "int8-static")

# What each backend offers; the rest is refused in one sentence.
SUPPORTED: dict[Backend, tuple[Precision, ...]] = {
    "torch": ("fp32", "bf16", "int8"),
    "onnxruntime": ("fp32", "int8", "int8-static"),
    "openvino": ("fp32", "bf16", "int8", "int8-static"),
}
# The extra that installs each backend's package.
EXTRAS: dict[Backend, tuple[str, str]] = {
    "onnxruntime": ("onnxruntime", "onnx"),
    "openvino": ("openvino", "openvino"),
}


class Runner(Protocol):
    """The network call of an Estimator: a batch in (and ``extra``, the network's further
    inputs: Prompt Depth Anything's prompt depth), the family's outputs out."""

    backend: Backend
    precision: Precision

    def __call__(self, batch: torch.Tensor, *extra: torch.Tensor) -> Any: ...


@dataclass(frozen=True)
class OutputLayout:
    """What a network returns, so that a backend that gives back a flat list of arrays
    can hand the hooks the same thing: ``names`` of the outputs in order (``depth``, or
    a named tuple's fields such as Metric3D's ``depth, confidence, normal``) and how to
    rebuild the structure from float32 tensors."""

    names: tuple[str, ...]
    kind: type[Any] | None  # a named tuple's class; None for a bare tensor

    @classmethod
    def of(cls, output: Any) -> OutputLayout:
        if isinstance(output, torch.Tensor):
            return cls(("depth",), None)
        if isinstance(output, tuple) and hasattr(output, "_fields"):
            return cls(tuple(output._fields), type(output))
        raise TypeError(f"Cannot export a network that returns {type(output).__name__}.")

    def flatten(self, output: Any) -> list[torch.Tensor]:
        return [output] if self.kind is None else list(output)

    def rebuild(self, arrays: Sequence[Any]) -> Any:
        """The network's structure from arrays or tensors (float32 torch tensors)."""
        tensors = [torch.as_tensor(array, dtype=torch.float32) for array in arrays]
        return tensors[0] if self.kind is None else self.kind(*tensors)


def refuse_export(spec: ModelSpec, precision: str = "fp32") -> None:
    """A UsageError when ``spec`` runs in torch only: its family module's ``TORCH_ONLY``
    says why in one sentence (MoGe-2), for the whole family or, as a mapping, for some
    variants (ZoeDepth's NK). Also one for ``int8-static`` on a network that takes clips:
    its calibration scenes are still photos, while its temporal attention's activations
    depend on how the frames of a clip differ."""
    from depthlens.models.weights import family_module

    why = getattr(family_module(spec.family), "TORCH_ONLY", None)
    if isinstance(why, Mapping):
        why = why.get(spec.variant)
    if why:
        raise UsageError(f"{spec.name} runs on the torch backend only: {why}")
    if precision == "int8-static" and clip_frames(spec):
        raise UsageError(
            f"{spec.name} has no int8-static: its calibration would be still photos, not "
            "the clips its temporal attention sees; use int8 (weights only) or fp32."
        )


def clip_frames(spec: ModelSpec) -> int:
    """The frames of one clip (a static export's T) for a network that takes clips
    (B, T, 3, h, w) -> (B, T, h, w), its family module's ``CLIP_FRAMES`` (Video Depth
    Anything's window); 0 for a network of photos."""
    from depthlens.models.weights import family_module

    return int(getattr(family_module(spec.family), "CLIP_FRAMES", 0))


def check_choice(backend: str, precision: str) -> tuple[Backend, Precision]:
    """``backend`` and ``precision`` as known names, or a UsageError saying what exists."""
    name, bits = backend.strip().lower(), precision.strip().lower()
    if name not in BACKENDS:
        raise UsageError(f"Unknown backend '{backend}': use {', '.join(BACKENDS)}.")
    if bits not in PRECISIONS:
        raise UsageError(f"Unknown precision '{precision}': use {', '.join(PRECISIONS)}.")
    chosen = cast(Backend, name)
    if bits not in SUPPORTED[chosen]:
        *some, last = SUPPORTED[chosen]
        offered = f"{', '.join(some)} or {last}"
        others = [b for b in BACKENDS if bits in SUPPORTED[b]]
        raise UsageError(
            f"The {chosen} backend runs {offered}, not {bits}; {bits} runs on "
            f"{' and '.join(others)}."
        )
    return chosen, cast(Precision, bits)


def require(backend: Backend) -> None:
    """A UsageError naming the extra to install when ``backend``'s package is missing."""
    if backend == "torch":
        return
    module, extra = EXTRAS[backend]
    try:
        __import__(module)
    except ImportError:
        raise UsageError(
            f"The {backend} backend needs the {module} package: pip install 'depthlens[{extra}]'."
        ) from None


def make_runner(
    spec: ModelSpec,
    network: nn.Module,
    device: torch.device,
    backend: str = "torch",
    precision: str = "fp32",
    weights: str = "",
) -> Runner:
    """The runner of ``network`` on ``backend`` at ``precision``.

    ``weights`` (the path the network's weights came from) keys the compiled-model cache
    by its sha256 (``backends.cache.weights_key``): other weights are compiled again.
    """
    chosen, bits = check_choice(backend, precision)
    if chosen != "torch":
        refuse_export(spec, bits)
    require(chosen)
    if chosen != "torch" and device.type != "cpu":
        raise UsageError(f"The {chosen} backend runs on the CPU here; use --device cpu.")
    if chosen == "torch":
        from depthlens.models.backends.pytorch import TorchRunner

        return TorchRunner(spec, network, device, bits, weights)
    if chosen == "onnxruntime":
        from depthlens.models.backends.onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(spec, network, device, bits, weights)
    from depthlens.models.backends.openvino import OpenVinoRunner

    return OpenVinoRunner(spec, network, device, bits, weights)
