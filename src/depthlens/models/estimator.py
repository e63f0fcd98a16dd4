"""Estimator: a zoo spec plus its network and its family's hooks.

Every caller (CLI, web service, evaluation, pseudo-labelling) goes through
``Estimator.predict``; nothing else resizes, normalises or un-resizes. What happens
before and after the network is the family's (``models/hooks.py``); the estimator
batches, runs the network and times the stages, the same for every family.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import torch
from torch import nn

from depthlens.errors import UsageError
from depthlens.geometry.camera import Camera
from depthlens.io.images import Image, ImageSource, load_image
from depthlens.io.prompt_depth import PromptSource, with_prompt

# The generic resize rules lived here first; importers keep finding them here.
from depthlens.models.backends import Runner, make_runner
from depthlens.models.hooks import (
    MAX_SIDE_FACTOR,
    MIN_NETWORK_SIDE,
    FamilyHooks,
    Prepared,
    canonical_scale,
    hooks_for,
    network_input_size,
    preprocess,
    resize_output,
)
from depthlens.models.spec import DepthKind, ModelSpec
from depthlens.models.tiling import DEFAULT_OVERLAP, TileOptions, predict_tiled

if TYPE_CHECKING:
    import PIL.Image

__all__ = [
    "MAX_SIDE_FACTOR",
    "MIN_NETWORK_SIDE",
    "DepthResult",
    "Estimator",
    "canonical_scale",
    "network_input_size",
    "pick_device",
    "preprocess",
    "resize_output",
]


@dataclass(frozen=True)
class DepthResult:
    """The depth of one image.

    ``depth`` is (H, W) float32 at the input image's size. ``kind`` says what it holds:
    ``"relative_inverse"`` (larger = nearer, known up to scale and shift) or ``"metric"``
    (meters). ``camera`` is the camera the image was taken with, as far as depthlens
    knows: the image's own (given by the user, or from EXIF) or, when it had none,
    ``Camera.default`` (``camera.source`` says which). ``timings`` are seconds spent
    per stage on this image. ``weights`` names the weights that made it (a file or
    folder path, or a Hub id): ``model`` alone cannot tell an export from the release.
    """

    depth: np.ndarray
    kind: DepthKind
    model: str
    source: str
    camera: Camera | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    weights: str = ""
    # Filled by families that predict them: (H, W) float32 confidence (unitless,
    # larger = surer) and (H, W, 3) float32 unit normals, camera axes.
    confidence: np.ndarray | None = None
    normals: np.ndarray | None = None
    # Filled by families that predict a point map: (H, W, 3) float32 points in
    # meters, camera axes (x right, y down, z forward), and the (H, W) bool mask of the
    # valid pixels; depth, normals and points are NaN outside it.
    points: np.ndarray | None = None
    mask: np.ndarray | None = None
    # Filled by families that segment the sky: (H, W) bool, True where the model sees
    # sky (its depth there is set to the far end).
    sky: np.ndarray | None = None

    def colorize(self, colormap: str = "inferno") -> PIL.Image.Image:
        """The depth as a colour heatmap (nearer = brighter for both kinds)."""
        from PIL import Image as PILImage

        from depthlens.viz.colormaps import colorize

        values = self.depth if self.kind == "relative_inverse" else -self.depth
        return PILImage.fromarray(colorize(values, colormap))


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; a named device must exist."""
    choice = device.strip().lower()
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if choice == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    try:
        picked = torch.device(choice)
    except RuntimeError:
        raise UsageError(f"Unknown device '{device}': use auto, cpu, cuda or mps.") from None
    if (picked.type == "cuda" and not cuda) or (picked.type == "mps" and not mps):
        raise UsageError(
            f"Device '{device}' is not available to torch here; use --device cpu or auto."
        )
    if picked.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"Unknown device '{device}': use auto, cpu, cuda or mps.")
    return picked


class Estimator:
    """A zoo model ready to predict: ``Estimator.predict(images) -> DepthResult(s)``.

    ``backend`` and ``precision`` choose how the network runs (``models/backends``);
    preparing and finishing the images is the same on all of them.
    """

    def __init__(
        self,
        spec: ModelSpec,
        network: nn.Module,
        device: torch.device | str = "cpu",
        weights: str = "",
        backend: str = "torch",
        precision: str = "fp32",
    ) -> None:
        self.spec = spec
        self.device = torch.device(device)
        network = network.to(self.device).eval()
        if self.device.type in ("cpu", "cuda"):
            # oneDNN/cuDNN convolutions run 10-17 % faster on NHWC weights for every zoo
            # family (benchmarks/bench_predict.py); outputs move by ~1e-6 of their range.
            # Module.to accepts memory_format at run time; torch's stubs omit it.
            network = network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.network = network
        self.weights = weights
        # the network call: torch, ONNX Runtime or OpenVINO, at a precision (backends/)
        self.runner: Runner = make_runner(spec, network, self.device, backend, precision, weights)
        # the family's prepare/finish (models/hooks.py), found by spec.family
        self.hooks: FamilyHooks[Any] = hooks_for(spec)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> DepthKind:
        return self.spec.kind

    @property
    def backend(self) -> str:
        return self.runner.backend

    @property
    def precision(self) -> str:
        return self.runner.precision

    def __repr__(self) -> str:
        return (
            f"Estimator({self.spec.name!r}, device={str(self.device)!r}, weights={self.weights!r}"
            f", backend={self.backend!r}, precision={self.precision!r})"
        )

    @overload
    def predict(
        self,
        inputs: list[object] | tuple[object, ...],
        batch_size: int = ...,
        *,
        tiles: int | str | None = ...,
        tile_overlap: float = ...,
        upsample: str = ...,
    ) -> list[DepthResult]: ...
    @overload
    def predict(
        self,
        inputs: ImageSource | Image,
        batch_size: int = ...,
        *,
        prompt_depth: PromptSource | None = ...,
        prompt_scale: float | None = ...,
        tiles: int | str | None = ...,
        tile_overlap: float = ...,
        upsample: str = ...,
    ) -> DepthResult: ...

    def predict(
        self,
        inputs: object,
        batch_size: int = 4,
        *,
        prompt_depth: PromptSource | None = None,
        prompt_scale: float | None = None,
        tiles: int | str | None = None,
        tile_overlap: float = DEFAULT_OVERLAP,
        upsample: str = "auto",
    ) -> DepthResult | list[DepthResult]:
        """Depth for one image or a list of images.

        An image is a path, encoded bytes, a PIL image, an (H, W, 3) uint8 array or an
        ``Image``. A list gives a list of results in the same order, run in batches of
        up to ``batch_size`` images that share a network input size.

        ``prompt_depth`` (one image only) is the metric depth map a prompt-depth model
        takes beside the photo: an array in meters, or a 16-bit PNG (millimetres) or
        NPY/NPZ (meters) file; ``prompt_scale`` turns its numbers into meters instead
        (``depthlens.io.prompt_depth``). For lists, attach one to each ``Image`` with
        ``depthlens.io.prompt_depth.with_prompt``.

        ``tiles`` (``"auto"`` or a count along the long side) adds detail to large
        photos: a global pass merged with overlapping tiles at the model's input side,
        ``tile_overlap`` of a tile shared between neighbours, the merged map brought to
        the photo's size by ``upsample`` (``guided`` by the photo's edges, which
        ``auto`` means with tiles, or ``bilinear``; ``guided`` without ``tiles`` is one
        pass upsampled so); ``depthlens.models.tiling`` says how.
        """
        tiling = TileOptions.parse(tiles, tile_overlap, upsample)
        if isinstance(inputs, list | tuple):
            if prompt_depth is not None:
                raise UsageError(
                    "prompt_depth= goes with one image; attach one to each Image of a list "
                    "with depthlens.io.prompt_depth.with_prompt."
                )
            images = [item if isinstance(item, Image) else load_image(item) for item in inputs]
            return self.predict_images(images, batch_size, tiling)
        image = inputs if isinstance(inputs, Image) else load_image(inputs)  # type: ignore[arg-type]
        if prompt_depth is not None:
            image = with_prompt(image, prompt_depth, prompt_scale)
        return self.predict_images([image], batch_size, tiling)[0]

    @torch.inference_mode()
    def predict_images(
        self,
        images: Sequence[Image],
        batch_size: int = 4,
        tiling: TileOptions | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[DepthResult]:
        """Depth for already-loaded images, batched by network input size.

        Each image is prepared by the family's hooks; prepared inputs of one shape go
        through the network up to ``batch_size`` at a time, in order; each image's rows
        of the output are finished by the hooks. Timings are per image (the forward
        pass split evenly over its batch).

        With ``tiling``, each image is merged from a global pass and tiles
        (``tiling.predict_tiled``), the tiles batched; ``progress(done, total)`` follows
        each image's passes.
        """
        if tiling is not None:
            return [predict_tiled(self, image, tiling, batch_size, progress) for image in images]
        step = max(1, batch_size)
        if not self.spec.takes_prompt_depth:
            for image in images:
                if image.prompt_depth is not None:
                    raise UsageError(
                        f"{self.spec.name} takes no prompt depth (for {image.source}); "
                        "--prompt-depth is for the prompt-depth-anything-* models."
                    )
        groups: dict[tuple[Any, ...], list[tuple[int, Prepared[Any], float]]] = {}
        for index, image in enumerate(images):
            start = time.perf_counter()
            prepared = self.hooks.prepare(image, self.spec)
            elapsed = time.perf_counter() - start
            extra_shape = None if prepared.extra is None else prepared.extra.shape
            key = (prepared.tensor.shape, extra_shape)
            groups.setdefault(key, []).append((index, prepared, elapsed))
        results: list[DepthResult | None] = [None] * len(images)
        for group in groups.values():
            for offset in range(0, len(group), step):
                chunk = group[offset : offset + step]
                batch = torch.from_numpy(np.stack([p.tensor for _, p, _ in chunk]))
                batch = batch.to(self.device)
                # a second input (a prompt depth: Prepared.extra), on every backend
                extras = [p.extra for _, p, _ in chunk if p.extra is not None]
                extra = [torch.from_numpy(np.stack(extras)).to(self.device)] if extras else []
                start = time.perf_counter()
                output = self.runner(batch, *extra)
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
                forward = (time.perf_counter() - start) / len(chunk)
                for row, (index, prepared, prep) in enumerate(chunk):
                    image = images[index]
                    start = time.perf_counter()
                    done = self.hooks.finish(output, row, prepared, image, self.spec)
                    post = time.perf_counter() - start
                    results[index] = DepthResult(
                        depth=done.depth,
                        kind=self.spec.kind,
                        model=self.spec.name,
                        source=image.source,
                        camera=done.camera,
                        timings={"preprocess": prep, "forward": forward, "postprocess": post},
                        confidence=done.confidence,
                        normals=done.normals,
                        points=done.points,
                        mask=done.mask,
                        sky=done.sky,
                        weights=self.weights,
                    )
        return [result for result in results if result is not None]
