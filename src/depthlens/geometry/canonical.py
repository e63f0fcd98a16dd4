"""The canonical camera transform of Metric3D: metric depth learnt for one focal length.

A network cannot tell the focal length from the pixels, yet metric depth depends on
it: the same picture taken with twice the focal length shows things twice as far
away. Metric3D removes the ambiguity by moving every training sample to a canonical
camera of focal length ``f_c`` (1000 px, ``canonical_space.focal_length`` in
YvanYin/Metric3D: mono/configs) and undoing the move on the prediction. The focal
length of a camera is the mean ``f = (fx + fy) / 2`` (YvanYin/Metric3D:
mono/utils/do_test.py::transform_test_data_scalecano); the ratio is ``r = f_c / f``.

Two equivalent variants (Yin et al., "Metric3D", ICCV 2023, sec. 3.2):

* **label**: the image stays, the depth label is scaled, ``d_c = d · r``; predictions
  come back as ``d = d_c / r``. The canonical intrinsics are ``(r·fx, r·fy, cx, cy)``.
* **image**: the depth stays, the image is resized by ``r`` about the principal point
  and padded or cropped back to its own size, so the camera becomes
  ``(r·fx, r·fy, cx, cy)`` with the same principal point; the inverse resizes by
  ``1 / r``. Pixels the forward transform crops away are lost, padding is ``fill``.

Intrinsics are ``(fx, fy, cx, cy)`` in pixels. Pixel coordinates are continuous with
the origin at the top-left corner of the top-left pixel, so pixel ``(row, col)`` has
its centre at ``(col + 0.5, row + 0.5)`` and a centred principal point is
``(W / 2, H / 2)``, as in :class:`depthlens.geometry.camera.Camera`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeVar

import cv2
import numpy as np
import torch

__all__ = [
    "CANONICAL_FOCAL",
    "canonical_intrinsics",
    "canonical_ratio",
    "depth_from_canonical",
    "depth_to_canonical",
    "image_from_canonical",
    "image_to_canonical",
    "resize_about_principal_point",
]

CANONICAL_FOCAL = 1000.0

Interpolation = Literal["nearest", "linear", "cubic"]
_CV2 = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}

DepthT = TypeVar("DepthT", np.ndarray, torch.Tensor, float)
# (fx, fy, cx, cy) in pixels, as a tuple, list, (4,) array or (4,) tensor.
IntrinsicsLike = Sequence[float] | np.ndarray | torch.Tensor


def canonical_ratio(intrinsics: IntrinsicsLike, focal: float = CANONICAL_FOCAL) -> float:
    """``r = f_c / f`` with ``f = (fx + fy) / 2`` from ``intrinsics = (fx, fy, cx, cy)``."""
    fx, fy = float(intrinsics[0]), float(intrinsics[1])
    if not (fx > 0 and fy > 0 and focal > 0):
        raise ValueError(f"focal lengths must be positive, got fx={fx}, fy={fy}, f_c={focal}")
    return focal / ((fx + fy) / 2.0)


def canonical_intrinsics(
    intrinsics: IntrinsicsLike, focal: float = CANONICAL_FOCAL
) -> tuple[float, float, float, float]:
    """The canonical camera ``(r·fx, r·fy, cx, cy)`` of both variants."""
    r = canonical_ratio(intrinsics, focal)
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    return fx * r, fy * r, cx, cy


def depth_to_canonical(
    depth: DepthT, intrinsics: IntrinsicsLike, focal: float = CANONICAL_FOCAL
) -> DepthT:
    """Label variant, forward: metric depth (meters) -> canonical depth ``d · f_c / f``.

    Works on arrays, tensors and floats of any shape; zeros (invalid) stay zero.
    """
    return depth * canonical_ratio(intrinsics, focal)


def depth_from_canonical(
    depth: DepthT, intrinsics: IntrinsicsLike, focal: float = CANONICAL_FOCAL
) -> DepthT:
    """Label variant, inverse: canonical depth -> metric depth ``d_c · f / f_c`` (meters).

    ``intrinsics`` are the real camera's, not the canonical one's.
    """
    return depth / canonical_ratio(intrinsics, focal)


def resize_about_principal_point(
    image: np.ndarray,
    ratio: float,
    principal_point: tuple[float, float],
    interpolation: Interpolation = "linear",
    fill: float = 0.0,
) -> np.ndarray:
    """Scale an (H, W) or (H, W, C) array by ``ratio`` about ``(cx, cy)``, same size out.

    A point at ``u`` moves to ``u' = r (u - c) + c`` (both continuous coordinates);
    OpenCV's matrix acts on pixel indices (centre of pixel ``i`` at ``i``), which are
    ``u - 0.5``, so its translation is ``(1 - r)(c - 0.5)``. Pixels mapped from outside
    the input get ``fill``. The input is sampled without anti-aliasing, so strong
    shrinking (``ratio`` well below 1/2) of a textured image aliases.
    """
    if not ratio > 0:
        raise ValueError(f"ratio must be positive, got {ratio}")
    height, width = image.shape[:2]
    cx, cy = principal_point
    matrix = np.array(
        [[ratio, 0.0, (1.0 - ratio) * (cx - 0.5)], [0.0, ratio, (1.0 - ratio) * (cy - 0.5)]]
    )
    dtype = image.dtype
    work = image.astype(np.uint8) if dtype == np.bool_ else image
    channels = work.shape[2] if work.ndim == 3 else 1
    warped = cv2.warpAffine(
        work,
        matrix,
        (width, height),
        flags=_CV2[interpolation],
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(fill,) * min(channels, 4),
    )
    if warped.ndim == 2 and image.ndim == 3:  # OpenCV drops a trailing axis of size 1
        warped = warped[:, :, None]
    return warped.astype(dtype) if dtype == np.bool_ else warped


def image_to_canonical(
    image: np.ndarray,
    intrinsics: IntrinsicsLike,
    focal: float = CANONICAL_FOCAL,
    interpolation: Interpolation = "linear",
    fill: float = 0.0,
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Image variant, forward: resize by ``r = f_c / f`` about the principal point.

    ``image`` is (H, W) or (H, W, C) (an RGB image, or a depth map or mask that must
    follow it: use ``interpolation="nearest"`` for those; depth values are unchanged in
    this variant). Returns the (H, W[, C]) canonical image and camera
    ``(r·fx, r·fy, cx, cy)``.
    """
    r = canonical_ratio(intrinsics, focal)
    principal = (float(intrinsics[2]), float(intrinsics[3]))
    out = resize_about_principal_point(image, r, principal, interpolation, fill)
    return out, canonical_intrinsics(intrinsics, focal)


def image_from_canonical(
    image: np.ndarray,
    intrinsics: IntrinsicsLike,
    focal: float = CANONICAL_FOCAL,
    interpolation: Interpolation = "linear",
    fill: float = 0.0,
) -> np.ndarray:
    """Image variant, inverse: a canonical-camera map back to the real camera's pixels.

    ``intrinsics`` are the real camera's; the map is resized by ``1 / r`` about the same
    principal point. A depth prediction comes back in meters unchanged.
    """
    r = canonical_ratio(intrinsics, focal)
    principal = (float(intrinsics[2]), float(intrinsics[3]))
    return resize_about_principal_point(image, 1.0 / r, principal, interpolation, fill)
