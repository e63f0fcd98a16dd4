"""Model specs: everything depthlens must know about a zoo model, as frozen data.

A spec says how an image becomes the network input (`InputPolicy`), how the network
output is brought back to the image size (`OutputPolicy`), what the output means
(`kind`), and where the weights come from (`WeightSource`). The network itself is
built by the spec's family module (``depthlens.models.<family>``) from ``variant``;
that module's ``HOOKS``, where it has them, replace the generic pre- and
post-processing (``models/hooks.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ResizeMethod = Literal["lower_bound", "upper_bound", "minimal"]
DepthKind = Literal["relative_inverse", "metric"]
Family = Literal[
    "midas_small",
    "dpt",
    "depth_anything",
    "metric3d",
    "depth_anything_3",
    "moge",
    "depth_pro",
    "prompt_depth_anything",
    "zoedepth",
    "video_depth_anything",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputPolicy:
    """How an RGB image (H, W, 3) becomes the network input (1, 3, h, w).

    The rule is the ``Resize`` transform shared by MiDaS, DPT and Depth Anything
    (isl-org/MiDaS: midas/transforms.py): a scale per axis towards ``size``; with
    ``keep_aspect`` one scale for both axes chosen by ``method``; each side snapped to
    ``multiple_of`` (round half to even, floor above an upper bound, ceil below a lower
    bound); resized with OpenCV ``interpolation`` on [0, 1] floats; then
    ``(x - mean) / std`` per RGB channel.
    """

    size: tuple[int, int]  # target (height, width) in pixels
    method: ResizeMethod
    keep_aspect: bool
    multiple_of: int
    interpolation: Literal["cubic", "linear"]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class OutputPolicy:
    """How the (h, w) network output is resized to the input's (H, W)."""

    mode: Literal["bicubic", "bilinear"]
    align_corners: bool


@dataclass(frozen=True)
class WeightSource:
    """Where a model's weights can come from, in the order depthlens tries them.

    ``official_file`` is the upstream checkpoint name (converted on load), ``url``
    where to download it, ``hub_id`` the Hugging Face repo in transformers format,
    ``bundled`` a file inside ``depthlens/weights``.
    """

    official_file: str | None = None
    url: str | None = None
    hub_id: str | None = None
    bundled: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """One row of the model zoo."""

    name: str
    family: Family
    variant: str  # key into the family module's PRESETS
    description: str
    input: InputPolicy
    output: OutputPolicy
    kind: DepthKind
    weights: WeightSource
    licence: str
    params_millions: float
    # Metric models trained at a canonical camera (Metric3D's idea) predict the depth
    # that camera would see; the estimator multiplies it by fx / canonical_focal, with
    # fx the image's focal length in network-input pixels.
    canonical_focal: float | None = None
    # Families that predict the camera from the photo (Depth Pro's field-of-view head,
    # MoGe-2's point map) set it: an image without a user or EXIF camera gets theirs,
    # with Camera.source "estimated".
    estimates_camera: bool = False
    # Families that take a low-resolution metric depth map beside the image (Prompt Depth
    # Anything): every image needs one (Image.prompt_depth; --prompt-depth on the CLI).
    takes_prompt_depth: bool = False
