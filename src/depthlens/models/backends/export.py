"""A zoo network as an ONNX file: for the ONNX Runtime backend and for users to take
elsewhere (any ONNX runtime, any language).

``export_onnx`` traces the network with torch's TorchScript exporter
(``torch.onnx.export(..., dynamo=False)``: seconds where the dynamo exporter took ten
minutes on the bundled model) on an input the family's own preparation gives for a
640 x 480 photo. The file's input is ``image`` (batch, 3, height, width) float32,
prepared as the metadata says, and for Prompt Depth Anything also ``prompt_depth``
(batch, 1, prompt_height, prompt_width) float32 meters, any size; its outputs are the
network's by name (``depth``, or Metric3D's ``depth, confidence, normal``). With
``dynamic`` (the default) batch, height and width are free: any size the network itself
takes (multiples of 32 for MiDaS and DPT, of 14 for Depth Anything, of 28 for Metric3D,
of 16 for ZoeDepth's BEiT). A network that takes clips (Video Depth Anything) has
``image`` (batch, frames, 3, height, width) and ``depth`` (batch, frames, height,
width), the frames free too (a static export fixes them at one window).
``int8`` is ONNX Runtime's dynamic quantisation of the fp32 export (int8 weights,
activations quantised per batch); ``int8-static`` its static quantisation (QDQ), with
activation ranges calibrated on ``calibration_inputs``: the family's own preparation of
a few synthetic scenes.

Tracing records Python arithmetic on sizes as constants; the families keep their
size-dependent steps traceable (``dinov2_resize`` below for the ViTs' position grids).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, get_type_hints

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from depthlens.errors import UsageError
from depthlens.models.backends import OutputLayout, Precision, clip_frames, refuse_export
from depthlens.models.spec import ModelSpec

if TYPE_CHECKING:
    import onnx

    from depthlens.models.hooks import Prepared

__all__ = [
    "CALIBRATION_IMAGES",
    "CALIBRATION_SCENES",
    "EXAMPLE_IMAGE",
    "INPUT_NAME",
    "OPSET",
    "PROMPT_NAME",
    "calibration_inputs",
    "calibration_key",
    "depthlens_version",
    "dinov2_resize",
    "example_inputs",
    "export_onnx",
    "input_names",
    "onnx_summary",
    "output_layout",
    "require_onnx",
]

INPUT_NAME = "image"
PROMPT_NAME = "prompt_depth"  # the second input of a model that takes a prompt depth
OPSET = 17  # LayerNormalization is an op from 17; ONNX Runtime 1.16+ and OpenVINO read it
OPSETS = (17, 18)
# The example traced, and the fixed size of a static export: the network input the
# family's preparation gives for a 4:3 landscape photo (MiDaS 192x256, DPT 384x512,
# Depth Anything 518x686, Metric3D its 616x1064 canvas).
EXAMPLE_IMAGE = (480, 640)  # (height, width)
# int8 quantises what dominates a ViT: its Linear layers (MatMul/Gemm with a weight).
# Convolutions stay fp32: ONNX Runtime's ConvInteger ran the bundled model 5x slower
# than fp32 on an AVX2 CPU, 1.5 % of the output range off.
INT8_OPS = ("MatMul", "Gemm")
EXPORT_PRECISIONS = ("fp32", "int8", "int8-static")
# int8-static's calibration: the network inputs of CALIBRATION_SCENES synthetic scenes,
# the four kinds in turn, rendered at the CALIBRATION_IMAGES photo sizes in turn
# (landscape, portrait, square: the network sees each shape it will see), from seeds of
# their own: past the validation seeds (1e9..) and before the held-out benchmark scenes
# (3e9..). The ranges are the extremes seen, so a scene nearer or brighter than all of
# them is clipped: on 8 held-out 256 x 256 scenes, 8 calibration scenes of one 4:3 size
# left an indoor one 28 % of the bundled model's range off (0.97 % on average over all
# 8), 16 of three shapes 11 % (0.65 %).
CALIBRATION_SEED = 2_000_000_000
CALIBRATION_SCENES = 16
CALIBRATION_IMAGES = ((480, 640), (640, 480), (480, 480))
# Bumped when the static quantisation itself changes, so cached entries are made again.
STATIC_RECIPE = 1


# ----------------------------------------------------------------- traceable steps


def dinov2_resize(
    grid: torch.Tensor, grid_h: int | torch.Tensor, grid_w: int | torch.Tensor, offset: float
) -> torch.Tensor:
    """(1, D, S, S) position grid -> (1, D, grid_h, grid_w), as DINOv2 resizes it.

    Bicubic (A = -0.75, no antialias) with the *scale factor* ((grid_h + offset) / S,
    (grid_w + offset) / S) (depth_anything_v2/dinov2.py::interpolate_pos_encoding);
    callers leave the S x S grid as it is. Eager calls are ``F.interpolate`` itself.
    Under tracing the sizes are tensors, which ``F.interpolate`` cannot take as scale
    factors and a caller cannot branch on, so the resize is written as two
    interpolation matrices built from them (ATen's upsample_bicubic2d: source =
    (i + 0.5) / scale - 0.5, clamped taps) that keep the S x S grid as it is: it traces
    into a graph that follows the input size and agrees with the eager resize to float
    rounding (~1e-7).
    """
    side = grid.shape[-1]
    if not torch.jit.is_tracing():
        rows, columns = int(grid_h), int(grid_w)
        scale = ((rows + offset) / side, (columns + offset) / side)
        return F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=False)
    rows_h, rows_w = torch.as_tensor(grid_h), torch.as_tensor(grid_w)
    square = ((rows_h == side) & (rows_w == side)).float()
    shift = offset * (1.0 - square)  # the S x S grid: scale 1, every tap weight 0 or 1
    along_h = _bicubic_matrix(rows_h, side, shift)  # (grid_h, S)
    along_w = _bicubic_matrix(rows_w, side, shift)  # (grid_w, S)
    return along_h @ grid.float() @ along_w.transpose(0, 1)


def _bicubic_matrix(rows: torch.Tensor, side: int, shift: torch.Tensor) -> torch.Tensor:
    """(rows, side) weights of ATen's bicubic resize of ``side`` samples to ``rows`` by
    the scale factor (rows + shift) / side."""
    a = -0.75  # ATen's cubic convolution coefficient
    inverse = side / (rows.float() + shift)
    # arange of a traced size stays a graph op (torch's stubs want a number)
    steps = torch.arange(rows, dtype=torch.float32)  # type: ignore[call-overload]
    source = (steps + 0.5) * inverse - 0.5
    start = torch.floor(source)
    t = source - start

    def near(x: torch.Tensor) -> torch.Tensor:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: torch.Tensor) -> torch.Tensor:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    taps = torch.arange(side, dtype=torch.float32)
    weights = torch.zeros((), dtype=torch.float32)
    for k, weight in enumerate((far(t + 1), near(t), near(1 - t), far(2 - t))):
        index = torch.clamp(start + (k - 1), 0, side - 1)
        weights = weights + weight.unsqueeze(1) * (taps == index.unsqueeze(1)).float()
    return weights


# ----------------------------------------------------------------------- export


def input_names(spec: ModelSpec) -> tuple[str, ...]:
    """The network's inputs in its ``forward``'s order: ``image``, and ``prompt_depth``
    for a model that takes one."""
    return (INPUT_NAME, PROMPT_NAME) if spec.takes_prompt_depth else (INPUT_NAME,)


def example_inputs(
    spec: ModelSpec, size: tuple[int, int] | None = None, frames: int = 2
) -> tuple[torch.Tensor, ...]:
    """The network's inputs (``input_names``) for one image, batch 1, float32.

    The image (1, 3, h, w) is the family's preparation of a synthetic ``EXAMPLE_IMAGE``
    photo, or seeded noise at ``size`` (h, w) when given. A prompt depth (1, 1, hp, wp)
    is a ramp from 0.5 to 5 m at a quarter of the photo's size: the network takes a
    prompt of any size, so the trace leaves its size free like the image's. A network
    that takes clips (``clip_frames``) gets a clip (1, ``frames``, 3, h, w) of the image,
    mirrored in every other frame (more than one frame, so that no axis of length 1 is
    traced).
    """
    inputs = _example_photo(spec, size)
    if not clip_frames(spec):
        return inputs
    image = inputs[0]
    clip = torch.stack([image.flip(-1) if i % 2 else image for i in range(frames)], dim=1)
    return (clip, *inputs[1:])


def _example_photo(spec: ModelSpec, size: tuple[int, int] | None) -> tuple[torch.Tensor, ...]:
    """``example_inputs`` for a network of photos."""
    from depthlens.io.images import Image
    from depthlens.io.prompt_depth import with_prompt
    from depthlens.models.hooks import hooks_for

    height, width = size or EXAMPLE_IMAGE
    prompt = None
    if spec.takes_prompt_depth:
        rows, columns = max(height // 4, 2), max(width // 4, 2)
        prompt = np.linspace(0.5, 5.0, rows * columns, dtype=np.float32).reshape(rows, columns)
    if size is not None:
        generator = torch.Generator().manual_seed(0)
        image = torch.randn(1, 3, height, width, generator=generator)
        return (image,) if prompt is None else (image, torch.from_numpy(prompt)[None, None])
    ramp = np.linspace(0, 255, height * width * 3, dtype=np.float64)
    photo = Image(ramp.reshape(height, width, 3).astype(np.uint8), None, "<example>")
    if prompt is not None:
        photo = with_prompt(photo, prompt)
    return _network_inputs(hooks_for(spec).prepare(photo, spec))


def _network_inputs(prepared: Prepared[Any]) -> tuple[torch.Tensor, ...]:
    """A family's ``Prepared`` image as a batch of one: the tensor, then its ``extra``."""
    image = torch.from_numpy(prepared.tensor).unsqueeze(0)
    if prepared.extra is None:
        return (image,)
    return image, torch.from_numpy(prepared.extra).unsqueeze(0)


def calibration_inputs(
    spec: ModelSpec,
    count: int | None = None,
    sizes: Sequence[tuple[int, int]] | None = None,
) -> list[tuple[torch.Tensor, ...]]:
    """The network inputs int8-static calibrates on: ``count`` (default
    ``CALIBRATION_SCENES``) batches of one (``input_names``: a (1, 3, h, w) float32 image,
    and a prompt depth for a model that takes one), the family's own preparation
    (``hooks.prepare``, with each scene's camera) of synthetic scenes, the scene kinds in
    turn and the photo sizes ``sizes`` (h, w; default ``CALIBRATION_IMAGES``) in turn. A
    prompt depth is the scene's own depth (0 where it has none) at a quarter of its size.
    The same arguments always give the same tensors."""
    from depthlens.io.images import Image
    from depthlens.io.prompt_depth import with_prompt
    from depthlens.models.hooks import hooks_for
    from depthlens.synth.render import SCENE_KINDS, render_sample

    shapes = sizes or CALIBRATION_IMAGES
    hooks = hooks_for(spec)
    inputs = []
    for index in range(CALIBRATION_SCENES if count is None else count):
        seed = CALIBRATION_SEED + index
        height, width = shapes[index % len(shapes)]
        sample = render_sample(seed, height, width, kind=SCENE_KINDS[index % len(SCENE_KINDS)])
        image = Image(sample.rgb, sample.camera, f"<calibration scene {seed}>")
        if spec.takes_prompt_depth:
            image = with_prompt(image, sample.depth[::4, ::4])
        inputs.append(_network_inputs(hooks.prepare(image, spec)))
    return inputs


def calibration_key() -> str:
    """8 hex digits naming int8-static's calibration (its scenes, their sizes and the
    quantisation recipe), for the compiled-model cache key: another calibration is
    compiled again."""
    recipe = f"{CALIBRATION_SEED}:{CALIBRATION_SCENES}:{CALIBRATION_IMAGES}:{STATIC_RECIPE}"
    return hashlib.sha256(recipe.encode()).hexdigest()[:8]


def output_layout(
    network: nn.Module, example: Sequence[torch.Tensor] | None = None
) -> OutputLayout:
    """What ``network`` returns, from its ``forward``'s return annotation (a tensor or a
    named tuple), else by running it on the inputs ``example``."""
    try:
        returned = get_type_hints(type(network).forward).get("return")
    except (NameError, TypeError):
        returned = None
    if returned is torch.Tensor:
        return OutputLayout(("depth",), None)
    if isinstance(returned, type) and issubclass(returned, tuple) and hasattr(returned, "_fields"):
        return OutputLayout(tuple(returned._fields), returned)
    if example is None:
        raise TypeError(f"{type(network).__name__}.forward says nothing of what it returns.")
    with torch.no_grad():
        return OutputLayout.of(network(*example))


def export_onnx(
    spec: ModelSpec,
    network: nn.Module,
    path: str | Path,
    *,
    dynamic: bool = True,
    opset: int = OPSET,
    precision: Precision | str = "fp32",
    weights: str = "",
    size: tuple[int, int] | None = None,
    calibration: Sequence[Sequence[torch.Tensor]] | None = None,
) -> Path:
    """Write ``network`` (the zoo row ``spec``'s) to ``path`` as ONNX; returns the path.

    The inputs ``input_names(spec)`` (``image`` (batch, 3, height, width), or (batch,
    frames, 3, height, width) for a network that takes clips, then a prompt depth
    (batch, 1, prompt_height, prompt_width) where the model takes one), the outputs by
    name, batch, frames, heights and widths free unless ``dynamic`` is False (then fixed
    at the example's size: ``size`` (h, w), else the family's input for a 640 x 480
    photo, and a clip of ``clip_frames(spec)`` frames). ``precision`` is ``fp32``,
    ``int8`` (dynamic quantisation of MatMul/Gemm weights) or ``int8-static`` (weights
    and activations, calibrated on ``calibration``: batches of the network's inputs, by
    default ``calibration_inputs(spec)``). ``weights`` (the file the network's weights
    came from) gives the ``weights_sha256`` metadata; without it, the sha256 of the
    network's tensors. The file is written whole or not at all.
    """
    refuse_export(spec, precision)
    if precision not in EXPORT_PRECISIONS:
        raise UsageError(
            f"ONNX exports are {', '.join(EXPORT_PRECISIONS[:-1])} or "
            f"{EXPORT_PRECISIONS[-1]}, not {precision}."
        )
    if opset not in OPSETS:
        raise UsageError(f"Export with opset {' or '.join(map(str, OPSETS))}, not {opset}.")
    require_onnx(precision)
    import onnx

    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{target} is a folder; name the .onnx file to write.")
    clips = clip_frames(spec)
    example = example_inputs(spec, size, frames=2 if dynamic else clips)
    layout = output_layout(network, example)
    names = input_names(spec)
    model = onnx.load_from_string(
        _trace(network, example, names, layout, dynamic, opset, clips > 0)
    )
    if dynamic:
        _name_output_axes(model)
    else:  # the exporter leaves some output axes symbolic; the example fixes them all
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    if precision == "int8":
        model = _quantize(model)
    elif precision == "int8-static":
        # a fixed-size file takes the example's size only: a 4:3 photo's input
        shapes = None if dynamic else (EXAMPLE_IMAGE,)
        batches = calibration or calibration_inputs(spec, sizes=shapes)
        model = _quantize_static(model, names, batches)
    _describe(model, spec, network, layout, precision, weights)
    from depthlens.io.depth_files import atomic_write

    serialized = model.SerializeToString()

    def write(file: BinaryIO) -> None:
        file.write(serialized)

    return atomic_write(target, write)


def require_onnx(precision: str = "fp32") -> None:
    """A UsageError naming the extra to install when the onnx package (and for int8,
    onnxruntime, which quantises) is missing."""
    for module in ("onnx", "onnxruntime") if precision.startswith("int8") else ("onnx",):
        try:
            __import__(module)
        except ImportError:
            raise UsageError(
                f"Exporting to ONNX needs the {module} package: pip install 'depthlens[onnx]'."
            ) from None


def _trace(
    network: nn.Module,
    example: tuple[torch.Tensor, ...],
    names: tuple[str, ...],
    layout: OutputLayout,
    dynamic: bool,
    opset: int,
    clips: bool = False,
) -> bytes:
    axes: dict[str, dict[int, str]] = {}
    if dynamic:
        axes = {name: {0: "batch"} for name in layout.names}
        axes[INPUT_NAME] = {0: "batch", 2: "height", 3: "width"}
        if clips:  # (batch, frames, 3, height, width) -> (batch, frames, height, width)
            axes = {name: {0: "batch", 1: "frames"} for name in layout.names}
            axes[INPUT_NAME] = {0: "batch", 1: "frames", 3: "height", 4: "width"}
        if PROMPT_NAME in names:  # a size of its own
            axes[PROMPT_NAME] = {0: "batch", 2: "prompt_height", 3: "prompt_width"}
    folder = tempfile.TemporaryDirectory(prefix="depthlens-onnx-")
    path = Path(folder.name) / "model.onnx"
    with folder, warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated in favour of dynamo, which takes minutes;
        # its TracerWarnings are about size checks that are constant by design.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            network,
            example,
            path,
            dynamo=False,
            input_names=list(names),
            output_names=list(layout.names),
            dynamic_axes=axes or None,
            opset_version=opset,
            do_constant_folding=True,
        )
        return path.read_bytes()


def _name_output_axes(model: onnx.ModelProto) -> None:
    """Call the outputs' last two axes (the image's, (B, h, w) or (B, C, h, w)) height
    and width, as the input's: the exporter names them after the ops that made them."""
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        if len(dims) < 3:  # not a map: (batch, n) values such as Depth Anything 3's fov
            continue
        for dim, name in zip(dims[-2:], ("height", "width"), strict=True):
            dim.dim_param = name


def _quantize(model: onnx.ModelProto) -> onnx.ModelProto:
    """ONNX Runtime's dynamic int8 quantisation of ``model``'s MatMul/Gemm weights.

    Only products with a 2-D weight (the Linear layers) are quantised: attention's
    products of two activations gain nothing, and the position-grid resize
    (``dinov2_resize``) would move every token.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    linear = _linear_products(model)
    if not linear:  # a convolutional network: nothing to quantise
        return model
    with _quiet_root_logger(), tempfile.TemporaryDirectory(prefix="depthlens-int8-") as folder:
        fp32, int8 = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        onnx.save(model, fp32)
        quantize_dynamic(
            fp32,
            int8,
            op_types_to_quantize=list(INT8_OPS),
            nodes_to_quantize=linear,
            weight_type=QuantType.QInt8,
        )
        return onnx.load(int8)


# What int8-static quantises: the products with weights (the MatMuls of Linear layers
# only) and the ops that pass 8-bit values between them without arithmetic of their own.
# Not ONNX Runtime's default of every op it can: that includes the Unsqueeze, Reshape
# and Gather ops of shape arithmetic, and 8-bit values in the position-grid resize
# (``dinov2_resize``) moved a random DA-V2-S's depth by its whole range.
STATIC_OPS = (
    "Conv",
    "ConvTranspose",
    "MatMul",
    "Gemm",
    "Relu",
    "Clip",
    "Resize",
    "Pad",
    "MaxPool",
    "AveragePool",
)


def _quantize_static(
    model: onnx.ModelProto,
    names: tuple[str, ...],
    calibration: Sequence[Sequence[torch.Tensor]],
) -> onnx.ModelProto:
    """ONNX Runtime's static int8 quantisation of ``model`` in QDQ form, the activation
    ranges the extremes each tensor reached on ``calibration``: batches of the network
    inputs ``names``.

    The settings are ONNX Runtime's advice for x86 CPUs (``quantize_static``'s
    docstring): activations uint8 per tensor, weights int8 per output channel, and
    weights in 7 bits (``reduce_range``), its advice for CPUs without VNNI: their AVX2
    u8 x s8 instruction adds pairs of products in 16 bits, which 8-bit weights saturate.
    On such a CPU 8 bits moved the bundled model's depth by 20 % of its range, 7 bits by
    5.5 %; 7 bits always, so that one cached model serves every CPU. uint8 weights (no
    saturation either) moved it as much (6 %) and ran no faster than fp32. Only
    ``STATIC_OPS`` are quantised, and of the MatMuls only the Linear layers
    (``_linear_products``).
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    linear = set(_linear_products(model))
    excluded = [
        node.name
        for node in model.graph.node
        if node.op_type in INT8_OPS and node.name not in linear
    ]

    class Scenes(CalibrationDataReader):
        """The calibration inputs, one batch at a time, as ONNX Runtime reads them."""

        def __init__(self) -> None:
            self.batches = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            if batch is None:
                return None
            return {name: t.numpy() for name, t in zip(names, batch, strict=True)}

    with _quiet_root_logger(), tempfile.TemporaryDirectory(prefix="depthlens-int8-") as folder:
        fp32, int8 = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        onnx.save(model, fp32)
        quantize_static(
            fp32,
            int8,
            Scenes(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(STATIC_OPS),
            nodes_to_exclude=excluded,
            calibrate_method=CalibrationMethod.MinMax,
        )
        return onnx.load(int8)


def _linear_products(model: onnx.ModelProto) -> list[str]:
    """The names of ``model``'s MatMul/Gemm nodes with a 2-D weight: its Linear layers."""
    ranks = {tensor.name: len(tensor.dims) for tensor in model.graph.initializer}
    return [
        node.name
        for node in model.graph.node
        if node.op_type in INT8_OPS and len(node.input) > 1 and ranks.get(node.input[1]) == 2
    ]


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """Errors only while ONNX Runtime quantises: its quantisers give "consider
    pre-processing" advice on the root logger, and the sessions that calibrate log a
    warning on stderr for every unused constant (ONNX Runtime's own log, back at its
    default level, warnings, afterwards)."""
    import onnxruntime

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    onnxruntime.set_default_logger_severity(3)
    try:
        yield
    finally:
        root.setLevel(level)
        onnxruntime.set_default_logger_severity(2)


def _describe(
    model: onnx.ModelProto,
    spec: ModelSpec,
    network: nn.Module,
    layout: OutputLayout,
    precision: str,
    weights: str,
) -> None:
    """Name the producer and record what a user needs to run the file elsewhere."""
    from depthlens.models.hooks import GENERIC_HOOKS, hooks_for

    version = depthlens_version()
    policy, out = spec.input, spec.output
    generic = hooks_for(spec) is GENERIC_HOOKS
    props = {
        "model": spec.name,
        "family": spec.family,
        "variant": spec.variant,
        "description": spec.description,
        "kind": spec.kind,  # relative_inverse (larger = nearer) or metric (meters)
        "inputs": ",".join(input_names(spec)),
        "outputs": ",".join(layout.names),
        "licence": spec.licence,
        # a family's own hooks may say what they do (Depth Anything 3's resize)
        "preprocessing": getattr(
            hooks_for(spec), "preprocessing", "resize" if generic else "letterbox"
        ),
        "input_size": f"{policy.size[0]}x{policy.size[1]}",
        "resize_method": policy.method,
        "keep_aspect": str(policy.keep_aspect).lower(),
        "multiple_of": str(policy.multiple_of),
        "interpolation": policy.interpolation,
        "mean": ",".join(map(str, policy.mean)),
        "std": ",".join(map(str, policy.std)),
        "output_resize": f"{out.mode}, align_corners={str(out.align_corners).lower()}",
        "precision": precision,
        "depthlens_version": version,
        "weights_sha256": _weights_sha256(network, weights),
    }
    if spec.canonical_focal is not None:
        props["canonical_focal"] = str(spec.canonical_focal)
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name, model.producer_version = "depthlens", version
    model.doc_string = f"{spec.name}: {spec.description} ({spec.licence})"


def _weights_sha256(network: nn.Module, weights: str) -> str:
    """The weights file's sha256, else that of the network's tensors (as the cache keys
    a network with no file)."""
    from depthlens.models.weights import weights_sha256

    found = weights_sha256(weights) if weights else None
    if found is not None:
        return found
    digest = hashlib.sha256()
    for name, tensor in sorted(network.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def depthlens_version() -> str:
    """The installed distribution's version, else the package's own."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("depthlens")
    except PackageNotFoundError:
        import depthlens

        return depthlens.__version__


def onnx_summary(path: str | Path) -> dict[str, Any]:
    """An ONNX file's ``inputs`` and ``outputs`` (name -> shape, a free axis by its
    name), ``opset`` and ``metadata``."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def shape(value: Any) -> tuple[str | int, ...]:
        return tuple(d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim)

    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return {
        "inputs": {v.name: shape(v) for v in model.graph.input},
        "outputs": {v.name: shape(v) for v in model.graph.output},
        "opset": opset,
        "metadata": {p.key: p.value for p in model.metadata_props},
    }
