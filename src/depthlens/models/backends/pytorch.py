"""The torch backend: the network itself, in fp32, under bf16 autocast, or with its
Linear layers quantised to int8 (dynamic quantisation: int8 weights, activations
quantised per batch; the convolutions stay fp32)."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import torch
from torch import nn

from depthlens.errors import UsageError
from depthlens.models.backends import Backend, Precision
from depthlens.models.spec import ModelSpec


class TorchRunner:
    """``network(batch)`` at ``precision``; outputs are float32 whatever it ran in."""

    backend: Backend = "torch"

    def __init__(
        self,
        spec: ModelSpec,
        network: nn.Module,
        device: torch.device,
        precision: Precision = "fp32",
        weights: str = "",
    ) -> None:
        self.precision = precision
        self.device = device
        if precision == "bf16" and device.type == "cpu" and not cpu_has_bf16():
            raise UsageError(
                "This CPU has no bf16 arithmetic (AVX512_BF16 or AMX), so torch would "
                "emulate it far slower than fp32; use --precision fp32 or int8."
            )
        if precision == "int8":
            # quantize_dynamic works on a contiguous-format fp32 CPU module; torch 2.13
            # still ships it, with a DeprecationWarning pointing at torchao
            network = network.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                network = torch.ao.quantization.quantize_dynamic(
                    network.cpu(), {nn.Linear}, dtype=torch.qint8
                )
        self.network = network

    def __call__(self, batch: torch.Tensor, *extra: torch.Tensor) -> Any:
        # ``extra``: a family's second input (Prompt Depth Anything's prompt depth)
        with self._autocast():
            output = self.network(batch, *extra)
        return _to_float(output) if self.precision == "bf16" else output

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (on an AVX2-only CPU a bf16 matmul
    ran ~300x slower than fp32: 0.27 vs 93 GFLOP/s on 2 cores)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _to_float(output: Any) -> Any:
    """bf16 outputs back to float32, through tuples and named tuples."""
    if isinstance(output, torch.Tensor):
        return output.float()
    if isinstance(output, tuple):
        values = [_to_float(item) for item in output]
        return type(output)(*values) if hasattr(output, "_fields") else tuple(values)
    return output
