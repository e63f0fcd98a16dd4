"""The OpenVINO backend: the network traced, converted by OpenVINO's PyTorch frontend
and compiled for the CPU.

- Conversion: ``torch.jit.trace`` on the family's own input for a 640 x 480 photo
  (``example_inputs``), read by OpenVINO's PyTorch frontend; batch, height and width
  stay free (the families keep their size-dependent steps traceable), so one conversion
  serves every input size (a network that takes clips, Video Depth Anything, is
  converted whole: (B, T, 3, h, w) -> (B, T, h, w), T free as well). The inputs are
  named as the ONNX export's (``image``, and Prompt Depth Anything's ``prompt_depth``)
  and the outputs by the network's ``OutputLayout`` (``depth``, or Metric3D's ``depth,
  confidence, normal``), and they are fed and read back by those names.
- The frontend is called directly rather than through ``openvino.convert_model``, which
  sends usage telemetry on every call (and waits ~6 s for it on a machine offline);
  OpenVINO's own ``torch.compile`` backend converts the same way.
- The model is kept as OpenVINO IR (fp32 weights) in its compiled-model cache entry
  (``backends.cache``), with OpenVINO's compiled blobs (``CACHE_DIR``) beside it: a
  second process reads both instead of tracing and compiling again.
- ``fp32`` runs at f32 inference precision; ``bf16`` at bf16, which OpenVINO has only on
  CPUs with AVX512_BF16 or AMX (elsewhere it would silently run f32, so it is refused);
  ``int8`` is NNCF's int8 weight compression (``_compress_weights``): weights a quarter
  of the size, computed in f32, no faster than fp32 on a CPU without VNNI.
  ``int8-static`` is NNCF's post-training quantisation (``_quantize``): activations in
  int8 too, their ranges calibrated on ``export.calibration_inputs``; faster on
  convolutional networks, and further from fp32 (BENCHMARKS.md has both).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from depthlens.errors import UsageError
from depthlens.models.backends import Backend, OutputLayout, Precision, cache, clip_frames
from depthlens.models.backends.export import (
    calibration_inputs,
    calibration_key,
    example_inputs,
    input_names,
    output_layout,
)
from depthlens.models.spec import ModelSpec

if TYPE_CHECKING:
    import openvino as ov

__all__ = ["OpenVinoRunner", "bf16_supported", "convert", "shared_core"]

MODEL_FILE = "model.xml"  # and model.bin beside it
# The photo size whose network input is traced: the family's own preparation of it
# (MiDaS small 192x256, DPT 384x512, Depth Anything 518x686, Metric3D its canvas).
_PRECISION_HINT = {"fp32": "f32", "bf16": "bf16", "int8": "f32", "int8-static": "f32"}

_core: ov.Core | None = None
_core_lock = threading.Lock()


def shared_core() -> ov.Core:
    """The process's one OpenVINO ``Core``, made on first use and never dropped before
    the interpreter exits (OpenVINO's own advice: one Core per application; it is
    thread-safe, and runners pass their settings to ``compile_model``, not to it).

    Dropping Cores is what must not happen. Each Core loads its own CPU plugin, and the
    plugin (``SigAltStackSetup`` in OpenVINO's intel_cpu plugin, for AMX's large signal
    frames) replaces the calling thread's alternate signal stack with an mmap'd one;
    when the plugin is destroyed it puts the previous stack back only if its own is
    still the current one, and unmaps its own either way. Two Cores dropped in the order
    they were made leave the thread's alternate stack on the first one's unmapped
    memory. Python installs every signal handler with ``SA_ONSTACK`` (Ctrl-C's SIGINT,
    the SIGCHLD handler of torch's DataLoader workers, a server's SIGTERM), so the next
    such signal cannot be delivered and the kernel kills the process with SIGSEGV, no
    Python traceback (faulthandler never runs). With one Core kept for the whole
    process, no plugin is ever destroyed while the process runs.
    """
    global _core
    with _core_lock:
        if _core is None:
            import openvino as ov

            _core = ov.Core()
        return _core


class OpenVinoRunner:
    """``network`` converted by OpenVINO (or read back from the cache) and compiled for
    the CPU at ``precision``; called with a (B, 3, h, w) float32 batch (and Prompt Depth
    Anything's (B, 1, hp, wp) prompt depth), it returns what the network returns, as
    float32 tensors. A network that takes clips takes a (B, T, 3, h, w) clip or a
    (B, 3, h, w) batch of photos, each run as a one-frame clip."""

    backend: Backend = "openvino"

    def __init__(
        self,
        spec: ModelSpec,
        network: nn.Module,
        device: torch.device,
        precision: Precision = "fp32",
        weights: str = "",
    ) -> None:
        self.precision = precision
        self.core = shared_core()
        if precision == "bf16" and not bf16_supported(self.core):
            raise UsageError(
                "OpenVINO runs bf16 only on CPUs with AVX512_BF16 or AMX, which this one "
                "lacks; use --precision fp32 (or int8)."
            )
        self.inputs = input_names(spec)
        self.clips = clip_frames(spec) > 0
        self.layout = output_layout(network, example_inputs(spec))
        key = cache.weights_key(network, weights)
        calibration = calibration_key() if precision == "int8-static" else ""
        self.entry = cache.entry_dir(spec, key, self.backend, precision, calibration)
        xml = self.entry / MODEL_FILE
        if not _readable(self.core, xml, self.inputs, self.layout):
            model = convert(spec, network, self.layout)
            if precision == "int8":
                model = _compress_weights(model)
            elif precision == "int8-static":
                model = _quantize(model, calibration_inputs(spec))
            _save(model, xml)
            cache.prune(keep=self.entry)
        self.compiled = self.core.compile_model(
            str(xml),
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": _PRECISION_HINT[precision],
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_NUM_THREADS": torch.get_num_threads(),
                # compiled blobs persist beside the IR: the next process skips compiling
                "CACHE_DIR": str(self.entry),
            },
        )
        # one infer request per calling thread: a request is not safe to share
        self._local = threading.local()

    def __call__(self, batch: torch.Tensor, *extra: torch.Tensor) -> Any:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        photos = self.clips and batch.dim() == 4
        if photos:
            batch = batch[:, None]
        feed = {
            name: np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=np.float32)
            for name, tensor in zip(self.inputs, (batch, *extra), strict=True)
        }
        result = request.infer(feed)
        arrays = [result[name] for name in self.layout.names]
        return self.layout.rebuild([array[:, 0] for array in arrays] if photos else arrays)


def bf16_supported(core: ov.Core | None = None) -> bool:
    """Whether OpenVINO's CPU plugin computes in bf16 here (AVX512_BF16 or AMX)."""
    capabilities = (core or shared_core()).get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "BF16" in capabilities


def convert(spec: ModelSpec, network: nn.Module, layout: OutputLayout) -> ov.Model:
    """``network`` as an OpenVINO model: inputs named by ``input_names`` (``image``
    (?, 3, ?, ?) float32, or (?, ?, 3, ?, ?) for a network that takes clips; Prompt
    Depth Anything's ``prompt_depth`` (?, 1, ?, ?)), outputs named by ``layout``, in its
    order."""
    from openvino.frontend import FrontEndManager
    from openvino.frontend.pytorch.ts_decoder import TorchScriptPythonDecoder

    flat = _Flat(network, layout).eval()
    with warnings.catch_warnings(), torch.no_grad():
        # TracerWarnings are about size checks that are constant by design
        warnings.simplefilter("ignore")
        example = example_inputs(spec)
        traced = torch.jit.trace(flat, example, check_trace=False, strict=False)
        frontend = FrontEndManager().load_by_framework("pytorch")
        decoder = TorchScriptPythonDecoder(traced)
        model = frontend.convert(frontend.load(decoder))
    # every axis free but the channels (the third from the end), as traced
    model.reshape(
        {
            index: [
                size if axis == tensor.dim() - 3 else -1 for axis, size in enumerate(tensor.shape)
            ]
            for index, tensor in enumerate(example)
        }
    )
    for port, name in zip(model.inputs, input_names(spec), strict=True):
        port.get_tensor().set_names({name})
    if len(model.outputs) != len(layout.names):
        raise RuntimeError(f"OpenVINO gave {len(model.outputs)} outputs for {layout.names}.")
    for output, name in zip(model.outputs, layout.names, strict=True):
        output.get_tensor().set_names({name})
    return model


class _Flat(nn.Module):
    """The network with its outputs as a flat tuple in ``layout`` order (what a trace
    can record, and the order the outputs are named in)."""

    def __init__(self, network: nn.Module, layout: OutputLayout) -> None:
        super().__init__()
        self.network = network
        self.layout = layout

    def forward(self, image: torch.Tensor, *extra: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.layout.flatten(self.network(image, *extra)))


def _readable(core: ov.Core, xml: Path, inputs: tuple[str, ...], layout: OutputLayout) -> bool:
    """Whether ``xml`` holds a model of these inputs and outputs (a cache hit)."""
    if not (xml.is_file() and xml.with_suffix(".bin").is_file()):
        return False
    try:
        model = core.read_model(str(xml))
    except RuntimeError:
        return False  # a truncated or foreign file: convert again
    names = tuple(output.get_any_name() for output in model.outputs)
    given = tuple(port.get_any_name() for port in model.inputs)
    return (given, names) == (inputs, layout.names)


def _save(model: ov.Model, xml: Path) -> None:
    """Write ``xml`` and its .bin so that a reader never sees half a model: both under
    temporary names, then the weights and last the .xml renamed into place."""
    import openvino as ov

    tmp = xml.with_name(f".{xml.stem}-{os.getpid()}-{threading.get_ident()}.xml")
    try:
        ov.save_model(model, str(tmp), compress_to_fp16=False)
        os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
        os.replace(tmp, xml)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_suffix(".bin").unlink(missing_ok=True)


def _compress_weights(model: ov.Model) -> ov.Model:
    """``model`` with its MatMul and convolution weights in int8 (NNCF's INT8_ASYM: per
    output channel, asymmetric), decompressed to float as they are used; activations
    stay float, so nothing needs calibrating."""
    with _quiet_nncf() as nncf:
        return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)


def _quantize(model: ov.Model, calibration: list[tuple[torch.Tensor, ...]]) -> ov.Model:
    """``model`` quantised by NNCF (weights int8 per output channel, activations int8
    per tensor), the activation ranges set on ``calibration``: batches of the network's
    inputs, in its order.

    Two settings differ from NNCF's defaults, both measured on the bundled model:
    - ``OverflowFix.ENABLE``: weights in 7 bits in every layer, not only the first. The
      u8 x s8 instruction of a CPU without VNNI adds pairs of products in 16 bits and
      saturates (OpenVINO's "saturation issue" page); 8-bit weights moved the depth by
      37 % of its range there, 7-bit ones by 13 %. CPUs with VNNI lose a bit of weight
      precision, and one cached model serves both.
    - Activation ranges the extremes over all the scenes (``MINMAX``), not the mean of
      each scene's extremes, which clips every scene that reaches past the mean: 13 %
      became 6 %.
    A network with attention (a Softmax) is quantised as a transformer (NNCF's
    ``ModelType.TRANSFORMER``: elementwise ops and normalisations kept float,
    asymmetric activations, SmoothQuant before the MatMuls).
    """
    with _quiet_nncf() as nncf:
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet

        advanced = nncf.AdvancedQuantizationParameters(
            overflow_fix=nncf.OverflowFix.ENABLE,
            activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX,
        )
        attention = any(op.get_type_name() == "Softmax" for op in model.get_ops())
        return nncf.quantize(
            model,
            nncf.Dataset([tuple(t.numpy() for t in batch) for batch in calibration]),
            subset_size=len(calibration),
            model_type=nncf.ModelType.TRANSFORMER if attention else None,
            advanced_parameters=advanced,
        )


@contextlib.contextmanager
def _quiet_nncf() -> Iterator[Any]:
    """The nncf module, its log at errors only and its progress bars (drawn on stdout,
    where a command may be writing JSON) dropped; a UsageError if it is missing."""
    import sys

    if "nncf" not in sys.modules:
        # NNCF sends usage telemetry unless told it runs in CI; depthlens' users never
        # agreed to that. (Set before NNCF's first import, which reads it.)
        os.environ.setdefault("NNCF_CI", "1")
    try:
        import nncf
    except ImportError:
        raise UsageError(
            "OpenVINO int8 needs the nncf package: pip install 'depthlens[openvino]'."
        ) from None
    logger = logging.getLogger("nncf")
    level = logger.level
    nncf.set_log_level(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield nncf
    finally:
        nncf.set_log_level(level)
