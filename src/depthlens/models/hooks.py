"""Family hooks: what happens to an image before and after the network.

The estimator runs every family the same way: ``hooks.prepare`` turns each image into
a network input, inputs of one size go through the network in batches, and
``hooks.finish`` turns each image's rows of the output into its depth (and whatever
else the family predicts) at the image size.

Most families need nothing beyond their spec's ``InputPolicy`` and ``OutputPolicy``:
``GENERIC_HOOKS`` resizes and normalises by the one, resizes back by the other and,
for a canonical-camera model, rescales to meters. A family that needs more (its own
letterbox, extra outputs, a camera of its own) exports ``HOOKS`` from its module
(``depthlens.models.<family>``); ``hooks_for`` finds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from depthlens.geometry.camera import Camera
from depthlens.geometry.canonical import canonical_ratio
from depthlens.models.spec import InputPolicy, ModelSpec, OutputPolicy
from depthlens.models.weights import family_module

if TYPE_CHECKING:
    from depthlens.io.images import Image

State = TypeVar("State")


@dataclass(frozen=True)
class Prepared(Generic[State]):
    """One image made ready for the network.

    ``tensor`` is the (3, h, w) float32 network input; images whose tensors share a
    shape are batched together. ``state`` is whatever ``finish`` needs to undo the
    preparation (a letterbox, say); ``None`` for the generic hooks. ``extra`` is a second
    network input for families that take one (Prompt Depth Anything's (1, hp, wp) prompt
    depth in meters): images are batched only with those whose ``extra`` has the same
    shape, and the network is called as ``network(batch, extra_batch)``.
    """

    tensor: np.ndarray
    state: State
    extra: np.ndarray | None = None


@dataclass(frozen=True)
class Finished:
    """One image's prediction at its own size.

    ``depth`` is (H, W) float32 in the spec's ``kind`` (meters or relative inverse
    depth); ``camera`` the image's camera as far as known (its own, one the model
    estimated, or ``Camera.default``); ``confidence`` (H, W) float32 (unitless, larger
    = surer) and ``normals`` (H, W, 3) float32 unit vectors in camera axes, for families
    that predict them. ``points`` (H, W, 3) float32 is the model's own 3D point of each
    pixel in meters, camera axes (x right, y down, z forward), and ``mask`` (H, W) bool
    its valid pixels, for families that predict them (MoGe-2); depth, normals and
    points are NaN where ``mask`` is False. ``sky`` (H, W) bool marks the pixels a
    model that segments the sky sees as sky (Depth Anything 3 Mono/Metric).
    """

    depth: np.ndarray
    camera: Camera
    confidence: np.ndarray | None = None
    normals: np.ndarray | None = None
    points: np.ndarray | None = None
    mask: np.ndarray | None = None
    sky: np.ndarray | None = None


class FamilyHooks(Protocol[State]):
    """A family's pre- and post-processing around its network."""

    def prepare(self, image: Image, spec: ModelSpec) -> Prepared[State]:
        """``image`` -> the network input for it, and what ``finish`` will need."""
        ...

    def finish(
        self, output: Any, row: int, prepared: Prepared[State], image: Image, spec: ModelSpec
    ) -> Finished:
        """Row ``row`` of the batch's network ``output`` -> ``image``'s prediction.

        ``output`` is what the network returned for the whole batch: a (B, h, w) tensor
        for most families, the family's structured output for others.
        """
        ...


def hooks_for(spec: ModelSpec) -> FamilyHooks[Any]:
    """The ``HOOKS`` of ``spec``'s family module, else ``GENERIC_HOOKS``."""
    hooks: FamilyHooks[Any] = getattr(family_module(spec.family), "HOOKS", GENERIC_HOOKS)
    return hooks


def as_float32(values: torch.Tensor) -> np.ndarray:
    """A tensor on any device -> a float32 numpy array (no copy when it already is one)."""
    return values.cpu().numpy().astype(np.float32, copy=False)


# ------------------------------------------------------------------ the generic path

_CV2_INTERPOLATION = {"cubic": cv2.INTER_CUBIC, "linear": cv2.INTER_LINEAR}


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


class GenericHooks:
    """Resize and normalise by ``spec.input``; the (B, h, w) output back by
    ``spec.output``; times ``f / spec.canonical_focal`` for a canonical-camera model.

    The focal length is the image's camera (user flags or EXIF, as loaded), else
    ``Camera.default``.
    """

    def prepare(self, image: Image, spec: ModelSpec) -> Prepared[None]:
        return Prepared(preprocess(image.rgb, spec.input), None)

    def finish(
        self,
        output: torch.Tensor,
        row: int,
        prepared: Prepared[None],
        image: Image,
        spec: ModelSpec,
    ) -> Finished:
        size = (image.height, image.width)
        depth = resize_output(output[row : row + 1].float(), size, spec.output)
        camera = image.camera_or_default
        if spec.canonical_focal is not None:
            network_size = (prepared.tensor.shape[-2], prepared.tensor.shape[-1])
            depth = depth * canonical_scale(camera, size, network_size, spec.canonical_focal)
        return Finished(depth=as_float32(depth[0]), camera=camera)


GENERIC_HOOKS = GenericHooks()
