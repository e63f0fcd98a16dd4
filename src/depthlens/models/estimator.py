"""Estimator: a zoo spec plus its network, with the official pre- and post-processing.

Every caller (CLI, web service, evaluation, pseudo-labelling) goes through
``Estimator.predict``; nothing else resizes, normalises or un-resizes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, overload

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from depthlens.errors import UsageError
from depthlens.geometry.camera import Camera
from depthlens.geometry.canonical import canonical_ratio
from depthlens.io.images import Image, ImageSource, load_image
from depthlens.models.spec import DepthKind, InputPolicy, ModelSpec, OutputPolicy

if TYPE_CHECKING:
    import PIL.Image

_CV2_INTERPOLATION = {"cubic": cv2.INTER_CUBIC, "linear": cv2.INTER_LINEAR}


@dataclass(frozen=True)
class DepthResult:
    """The depth of one image.

    ``depth`` is (H, W) float32 at the input image's size. ``kind`` says what it holds:
    ``"relative_inverse"`` (larger = nearer, known up to scale and shift) or ``"metric"``
    (meters). ``camera`` is the camera the image was taken with, as far as depthlens
    knows: the image's own (given by the user, or from EXIF) or, when it had none,
    ``Camera.default`` (``camera.source`` says which). ``timings`` are seconds spent
    per stage on this image.
    """

    depth: np.ndarray
    kind: DepthKind
    model: str
    source: str
    camera: Camera | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    # Filled by models that predict them (Metric3D v2): (H, W) float32 confidence
    # (unitless, larger = surer) and (H, W, 3) float32 unit normals, camera axes.
    confidence: np.ndarray | None = None
    normals: np.ndarray | None = None

    def colorize(self, colormap: str = "inferno") -> PIL.Image.Image:
        """The depth as a colour heatmap (nearer = brighter for both kinds)."""
        from PIL import Image as PILImage

        from depthlens.viz.colormaps import colorize

        values = self.depth if self.kind == "relative_inverse" else -self.depth
        return PILImage.fromarray(colorize(values, colormap))


def _snap(value: float, multiple: int, min_val: int = 0, max_val: int | None = None) -> int:
    """``constrain_to_multiple_of`` of isl-org/MiDaS: midas/transforms.py::Resize.

    Round to the nearest multiple (numpy's half-to-even), floor if that exceeds
    ``max_val``, ceil if it falls below ``min_val``.
    """
    snapped = int(np.round(value / multiple) * multiple)
    if max_val is not None and snapped > max_val:
        snapped = int(np.floor(value / multiple) * multiple)
    if snapped < min_val:
        snapped = int(np.ceil(value / multiple) * multiple)
    return snapped


# Bounds on each side of the network input, for images far from any the official code
# was written for: a 1×5000 strip rounds to 0 rows under an upper bound (cv2.resize
# asserts) and to 518×2,590,000 under Depth Anything's lower bound (tens of GB). Each
# side is kept between one multiple of at least MIN_NETWORK_SIDE pixels and
# MAX_SIDE_FACTOR times the policy's longest target side, so an image more elongated
# than that is squeezed; photos up to 4:1 (panoramas included) are sized as upstream.
MIN_NETWORK_SIDE = 32
MAX_SIDE_FACTOR = 4


def network_input_size(height: int, width: int, policy: InputPolicy) -> tuple[int, int]:
    """The (h, w) the network sees for an (height, width) image, as the official Resize,
    then each side kept within ``MIN_NETWORK_SIDE`` and ``MAX_SIDE_FACTOR`` × the
    target's longest side (multiples of ``policy.multiple_of``)."""
    net_h, net_w = _official_input_size(height, width, policy)
    m = policy.multiple_of
    low = -(-MIN_NETWORK_SIDE // m) * m
    high = max(low, MAX_SIDE_FACTOR * max(policy.size) // m * m)
    return min(max(net_h, low), high), min(max(net_w, low), high)


def _official_input_size(height: int, width: int, policy: InputPolicy) -> tuple[int, int]:
    """The (h, w) of isl-org/MiDaS's ``Resize`` (midas/transforms.py), unbounded."""
    target_h, target_w = policy.size
    scale_h, scale_w = target_h / height, target_w / width
    if policy.keep_aspect:
        if policy.method == "lower_bound":
            scale_h = scale_w = max(scale_h, scale_w)
        elif policy.method == "upper_bound":
            scale_h = scale_w = min(scale_h, scale_w)
        elif abs(1 - scale_w) < abs(1 - scale_h):  # minimal: the scale closer to 1 wins
            scale_h = scale_w
        else:
            scale_w = scale_h
    m = policy.multiple_of
    if policy.method == "lower_bound":
        return _snap(scale_h * height, m, min_val=target_h), _snap(scale_w * width, m, target_w)
    if policy.method == "upper_bound":
        return (
            _snap(scale_h * height, m, max_val=target_h),
            _snap(scale_w * width, m, max_val=target_w),
        )
    return _snap(scale_h * height, m), _snap(scale_w * width, m)


def preprocess(rgb: np.ndarray, policy: InputPolicy) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, h, w) float32 network input.

    Resizes [0, 1] float64 values with OpenCV (``cv2.resize`` with (w, h) order), as the
    official transforms do after ``/ 255.0``: resizing in float32 instead moves the
    network input by about 1e-5, which shows in the output at 1e-4 of its range.
    """
    height, width = rgb.shape[:2]
    net_h, net_w = network_input_size(height, width, policy)
    image: np.ndarray = rgb / 255.0
    if (net_h, net_w) != (height, width):
        image = cv2.resize(
            image, (net_w, net_h), interpolation=_CV2_INTERPOLATION[policy.interpolation]
        )
    image = (image - np.asarray(policy.mean)) / np.asarray(policy.std)
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)


def resize_output(depth: torch.Tensor, size: tuple[int, int], policy: OutputPolicy) -> torch.Tensor:
    """(B, h, w) network output -> (B, H, W) at the image size, as the official code does."""
    if tuple(depth.shape[-2:]) == size:
        return depth
    resized = F.interpolate(
        depth.unsqueeze(1), size=size, mode=policy.mode, align_corners=policy.align_corners
    )
    return resized.squeeze(1)


def canonical_scale(
    camera: Camera, image_size: tuple[int, int], network_size: tuple[int, int], focal: float
) -> float:
    """The factor from a canonical-camera prediction to meters: ``f / f_c`` with ``f``
    the camera's focal length in network-input pixels (the label variant's inverse,
    ``geometry/canonical.py``). Sizes are (height, width)."""
    sy, sx = (n / i for n, i in zip(network_size, image_size, strict=True))
    scaled = (camera.fx * sx, camera.fy * sy, camera.cx * sx, camera.cy * sy)
    return 1.0 / canonical_ratio(scaled, focal)


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
    """A zoo model ready to predict: ``Estimator.predict(images) -> DepthResult(s)``."""

    def __init__(
        self,
        spec: ModelSpec,
        network: nn.Module,
        device: torch.device | str = "cpu",
        weights: str = "",
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

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> DepthKind:
        return self.spec.kind

    def __repr__(self) -> str:
        return (
            f"Estimator({self.spec.name!r}, device={str(self.device)!r}, weights={self.weights!r})"
        )

    @overload
    def predict(
        self, inputs: list[object] | tuple[object, ...], batch_size: int = ...
    ) -> list[DepthResult]: ...
    @overload
    def predict(
        self,
        inputs: ImageSource | Image,
        batch_size: int = ...,
    ) -> DepthResult: ...

    def predict(self, inputs: object, batch_size: int = 4) -> DepthResult | list[DepthResult]:
        """Depth for one image or a list of images.

        An image is a path, encoded bytes, a PIL image, an (H, W, 3) uint8 array or an
        ``Image``. A list gives a list of results in the same order, run in batches of
        up to ``batch_size`` images that share a network input size.
        """
        if isinstance(inputs, list | tuple):
            images = [item if isinstance(item, Image) else load_image(item) for item in inputs]
            return self.predict_images(images, batch_size)
        image = inputs if isinstance(inputs, Image) else load_image(inputs)  # type: ignore[arg-type]
        return self.predict_images([image], batch_size)[0]

    @torch.inference_mode()
    def predict_images(self, images: Sequence[Image], batch_size: int = 4) -> list[DepthResult]:
        """Depth for already-loaded images, batched by network input size."""
        if self.spec.family == "metric3d":
            return self._predict_metric3d(images, batch_size)
        results: list[DepthResult | None] = [None] * len(images)
        prepared: dict[tuple[int, int], list[tuple[int, np.ndarray, float]]] = {}
        for index, image in enumerate(images):
            start = time.perf_counter()
            tensor = preprocess(image.rgb, self.spec.input)
            elapsed = time.perf_counter() - start
            prepared.setdefault(tuple(tensor.shape[1:]), []).append((index, tensor, elapsed))
        for group in prepared.values():
            for offset in range(0, len(group), max(1, batch_size)):
                chunk = group[offset : offset + max(1, batch_size)]
                batch = torch.from_numpy(np.stack([t for _, t, _ in chunk])).to(self.device)
                start = time.perf_counter()
                output = self.network(batch).float()
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
                forward = (time.perf_counter() - start) / len(chunk)
                for row, (index, _, prep) in enumerate(chunk):
                    image = images[index]
                    start = time.perf_counter()
                    depth = resize_output(
                        output[row : row + 1], image.rgb.shape[:2], self.spec.output
                    )
                    camera = image.camera_or_default
                    if self.spec.canonical_focal is not None:
                        depth = depth * canonical_scale(
                            camera,
                            image.rgb.shape[:2],
                            (batch.shape[-2], batch.shape[-1]),
                            self.spec.canonical_focal,
                        )
                    depth_np = depth[0].cpu().numpy().astype(np.float32, copy=False)
                    post = time.perf_counter() - start
                    results[index] = DepthResult(
                        depth=depth_np,
                        kind=self.spec.kind,
                        model=self.spec.name,
                        source=image.source,
                        camera=camera,
                        timings={"preprocess": prep, "forward": forward, "postprocess": post},
                    )
        return [result for result in results if result is not None]

    def _predict_metric3d(self, images: Sequence[Image], batch_size: int) -> list[DepthResult]:
        """Metric3D's own letterboxing and canonical-camera rescaling (models/metric3d.py).

        The focal length is the image's camera (user flags or EXIF, as loaded), else
        ``Camera.default`` (its documented default field of view).
        """
        from depthlens.models import metric3d

        results: list[DepthResult] = []
        step = max(1, batch_size)
        for offset in range(0, len(images), step):
            chunk = images[offset : offset + step]
            start = time.perf_counter()
            prepared = [metric3d.preprocess(image.rgb) for image in chunk]
            prep = (time.perf_counter() - start) / len(chunk)
            batch = torch.from_numpy(np.stack([t for t, _ in prepared])).to(self.device)
            start = time.perf_counter()
            output = self.network(batch)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            forward = (time.perf_counter() - start) / len(chunk)
            for row, (image, (_, box)) in enumerate(zip(chunk, prepared, strict=True)):
                start = time.perf_counter()
                height, width = image.rgb.shape[:2]
                camera = image.camera_or_default
                maps = torch.cat(
                    [
                        output.depth[row : row + 1],
                        output.confidence[row : row + 1],
                        output.normal[row : row + 1, :3],
                    ],
                    dim=1,
                ).float()
                maps = metric3d.unletterbox(maps, box, (height, width))
                depth = metric3d.canonical_to_metric(maps[0, 0], camera.fx, box.scale)
                normals = F.normalize(maps[0, 2:5], dim=0).permute(1, 2, 0)
                post = time.perf_counter() - start
                results.append(
                    DepthResult(
                        depth=depth.cpu().numpy().astype(np.float32, copy=False),
                        kind=self.spec.kind,
                        model=self.spec.name,
                        source=image.source,
                        camera=camera,
                        timings={"preprocess": prep, "forward": forward, "postprocess": post},
                        confidence=maps[0, 1].cpu().numpy().astype(np.float32, copy=False),
                        normals=normals.cpu().numpy().astype(np.float32, copy=False),
                    )
                )
        return results
