"""MoGe-2 (ViT-S / ViT-B / ViT-L, with normals): metric point map, depth, normals,
valid mask and camera from one photo.

Paper: Wang et al., "MoGe-2: Accurate Monocular Geometry with Metric Scale and Sharp
Details", arXiv 2507.02546. Written here from the official code (microsoft/MoGe,
commit 0744441):

- network: ``moge/model/v2.py`` (``MoGeModel.forward``) and ``moge/model/modules.py``
  (``DINOv2Encoder``, ``ConvStack``, ``ResidualConvBlock``, ``Resampler``, ``MLP``);
  the encoder is a DINOv2 ViT/14 without registers (``moge/model/dinov2``);
- configs: ``configs/train/v2.json`` (ViT-L); every released ``model.pt`` carries its
  own ``model_config`` beside the ``model`` state dict, read by
  ``config_for_state_dict``;
- inference: ``MoGeModel.infer`` with its default arguments (resolution level 9,
  ``force_projection``, ``apply_mask``; fp32 here), and ``fov_x`` from the image's own
  camera when it has one; the focal/shift recovery is
  ``moge/utils/geometry_torch.py::recover_focal_shift`` with
  ``moge/utils/geometry_numpy.py::solve_optimal_focal_shift``/``solve_optimal_shift``.

How an image goes through (``MoGeHooks``):

1. ``prepare``: the number of ViT tokens ``num_tokens_range[0] + 9/9 * (max - min)``
   (3600 for the releases) gives a token grid of ``round(sqrt(n / r))`` rows by
   ``round(sqrt(n * r))`` columns for the aspect ratio ``r = W / H``; the [0, 1] image
   is resized to 14 x that grid (bilinear, antialiased) and ImageNet-normalised. A
   fourth input plane holds ``r``: the network's UV maps use the image's own aspect
   ratio, which the rounded grid does not give back.
2. the network: encoder features and UV maps -> shared neck -> point, normal and mask
   heads at 16 x the token grid, and the metric scale from the class token.
3. ``finish``: the heads are resized to the image (bilinear), the points remapped
   (``exp``: ``(x e^z, y e^z, e^z)``), the mask thresholded at 0.5; the focal length
   (unless the image's camera gives it) and the z shift are solved from the point map;
   the points are re-projected from the shifted depth through that camera and scaled
   to meters. Pixels outside the mask are NaN in depth, points and normals.

Official keys differ from ours only by the renames in ``_RENAMES``; see
``convert_official_state_dict``.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import least_squares
from torch import nn

from depthlens.errors import WeightsError
from depthlens.geometry.camera import Camera
from depthlens.models.convert import rename_key, rename_state_dict
from depthlens.models.hooks import Finished, Prepared, as_float32
from depthlens.models.metric3d import ViTBlock, interpolate_pos_embed
from depthlens.models.spec import IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:
    from depthlens.io.images import Image
    from depthlens.models.spec import ModelSpec


@dataclass(frozen=True)
class MoGeConfig:
    """Shape of a MoGe-2 network; the presets are the released ViT-S/B/L ``-normal``.

    The neck and the three heads share ``dims``, one width per level (level 0 is the
    token grid, each next level twice its size); ``resamplers`` are the upsamplings
    between levels (``conv_transpose`` or ``bilinear``). ``intermediate_layers`` are the
    ViT blocks whose normed tokens are projected to ``dims[0]`` and summed.
    """

    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    patch_size: int = 14
    pos_grid: int = 37  # the position embedding covers 37 x 37 patches (518 / 14)
    intermediate_layers: tuple[int, ...] = (5, 11, 17, 23)
    dims: tuple[int, ...] = (1024, 256, 128, 64, 32)
    neck_blocks: tuple[int, ...] = (0, 2, 2, 2, 0)
    head_blocks: tuple[int, ...] = (0, 1, 1, 1, 0)
    resamplers: tuple[str, ...] = ("conv_transpose", "conv_transpose", "conv_transpose", "bilinear")
    scale_dims: tuple[int, ...] = (1024, 1024, 1024, 1)
    normal_head: bool = True
    remap_output: str = "exp"
    num_tokens_range: tuple[int, int] = (1200, 3600)

    def __post_init__(self) -> None:
        levels = len(self.dims)
        if not (
            len(self.neck_blocks) == len(self.head_blocks) == levels == len(self.resamplers) + 1
        ):
            raise ValueError(f"MoGe levels disagree: {self}.")
        if any(r not in ("conv_transpose", "bilinear") for r in self.resamplers):
            raise ValueError(f"Unsupported MoGe resamplers {self.resamplers}.")
        if self.remap_output not in ("linear", "sinh", "exp", "sinh_exp"):
            raise ValueError(f"Unsupported MoGe remap_output {self.remap_output!r}.")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads.")
        if self.scale_dims[0] != self.embed_dim or self.scale_dims[-1] != 1:
            raise ValueError(f"scale_dims must run from embed_dim to 1, got {self.scale_dims}.")


PRESETS: dict[str, MoGeConfig] = {
    # configs/train/v2.json: 330.90 M parameters (README: 331 M)
    "v2-vitl-normal": MoGeConfig(),
    # The ViT-S/B configs are not in the repository (each model.pt carries its own,
    # read on load: config_for_state_dict takes every shape from the tensors). These
    # presets only size the meta builds: widths follow the encoder (dims[0] = embed_dim),
    # and one residual block per neck level and a one-layer scale head bring the counts
    # to the README's 35 M / 104 M (35.10 M / 104.74 M, which the size of the published
    # model.pt files, 140,550,416 and 419,110,160 bytes, also implies).
    "v2-vits-normal": MoGeConfig(
        embed_dim=384,
        depth=12,
        num_heads=6,
        intermediate_layers=(2, 5, 8, 11),
        dims=(384, 256, 128, 64, 32),
        neck_blocks=(0, 1, 1, 1, 0),
        scale_dims=(384, 1),
    ),
    "v2-vitb-normal": MoGeConfig(
        embed_dim=768,
        depth=12,
        num_heads=12,
        intermediate_layers=(2, 5, 8, 11),
        dims=(768, 256, 128, 64, 32),
        neck_blocks=(0, 1, 1, 1, 0),
        scale_dims=(768, 1),
    ),
}

# Why there is no ONNX/OpenVINO export (models/backends: refuse_export). The network
# takes a fourth input plane (the aspect ratio) that exports' one (batch, 3, h, w) input
# does not have, and its UV maps are built from the traced token grid, which tracing
# would freeze at the example's size.
TORCH_ONLY = (
    "its network takes the image's aspect ratio as a fourth input plane and builds "
    "size-dependent maps that an ONNX trace would freeze."
)

RESOLUTION_LEVEL = 9  # MoGeModel.infer's default: the most tokens of num_tokens_range
MASK_THRESHOLD = 0.5  # MoGeModel.infer: mask > 0.5
FOCAL_GRID = (64, 64)  # recover_focal_shift's default downsample_size (height, width)
SOLVER_FTOL = 1e-3  # solve_optimal_focal_shift: least_squares(ftol=1e-3, method="lm")


class MoGeOutput(NamedTuple):
    """Network outputs at 16 x the token grid (B, ., h, w), before ``finish_maps``.

    ``points``: (B, 3, h, w) affine point map before the remap; ``normal``: (B, 3, h, w)
    unnormalised normals (zeros without a normal head); ``mask``: (B, 1, h, w) logits
    of the valid mask; ``scale``: (B, 1, 1, 1) log of the metric scale.
    """

    points: torch.Tensor
    normal: torch.Tensor
    mask: torch.Tensor
    scale: torch.Tensor


# ---------------------------------------------------------------------------- network


class Encoder(nn.Module):
    """DINOv2 ViT/14 (no registers) -> (B, dims[0], rows, cols) features and the class
    token (B, D): the normed tokens of ``intermediate_layers``, each projected by a 1x1
    conv, summed (``DINOv2Encoder``)."""

    def __init__(self, config: MoGeConfig) -> None:
        super().__init__()
        dim, p = config.embed_dim, config.patch_size
        self.patch_size = p
        # upstream takes the blocks in network order, whatever order the config lists
        self.layers = sorted(config.intermediate_layers)
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=p, stride=p)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + config.pos_grid**2, dim))
        self.blocks = nn.ModuleList(ViTBlock(dim, config.num_heads) for _ in range(config.depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.projections = nn.ModuleList(
            nn.Conv2d(dim, config.dims[0], kernel_size=1) for _ in config.intermediate_layers
        )

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, 14 rows, 14 cols) normalised image -> features and class token."""
        rows, cols = image.shape[-2] // self.patch_size, image.shape[-1] // self.patch_size
        x = self.patch_embed(image).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + interpolate_pos_embed(self.pos_embed, rows, cols)
        features = None
        cls = x[:, 0]
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.layers:
                normed = self.norm(x)
                cls = normed[:, 0]
                grid = normed[:, 1:].transpose(1, 2).unflatten(2, (rows, cols))
                projected = self.projections[self.layers.index(index)](grid.contiguous())
                features = projected if features is None else features + projected
        if features is None:
            raise ValueError("MoGe intermediate_layers name no block of the encoder.")
        return features, cls


class ResidualConvBlock(nn.Module):
    """x + conv2(relu(conv1(relu(x)))): 3x3 convs with replicate padding, no norms (the
    released configs set both norms of ``ResidualConvBlock`` to ``none``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="replicate")
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, padding_mode="replicate")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class Upsample(nn.Module):
    """Twice the size: a 2x2 stride-2 transposed conv (``conv_transpose``) or bilinear
    upsampling (``bilinear``), then a 3x3 conv with replicate padding."""

    def __init__(self, in_ch: int, out_ch: int, kind: str) -> None:
        super().__init__()
        self.transpose = (
            nn.ConvTranspose2d(in_ch, out_ch, kernel_size=2, stride=2)
            if kind == "conv_transpose"
            else None
        )
        mid = out_ch if self.transpose is not None else in_ch
        self.conv = nn.Conv2d(mid, out_ch, 3, padding=1, padding_mode="replicate")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transpose is not None:
            x = self.transpose(x)
        else:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.conv(x)


class Pyramid(nn.Module):
    """A coarse-to-fine stack over the levels (``ConvStack``): at each level the
    level's input (1x1 conv) is added to the running map, residual blocks refine it,
    it is output and upsampled to the next level."""

    def __init__(
        self, in_dims: Sequence[int], dims: Sequence[int], blocks: Sequence[int], ups: Sequence[str]
    ) -> None:
        super().__init__()
        self.inputs = nn.ModuleList(nn.Conv2d(i, d, 1) for i, d in zip(in_dims, dims, strict=True))
        self.blocks = nn.ModuleList(
            nn.Sequential(*(ResidualConvBlock(d) for _ in range(n)))
            for d, n in zip(dims, blocks, strict=True)
        )
        self.upsamples = nn.ModuleList(
            Upsample(a, b, kind) for a, b, kind in zip(dims[:-1], dims[1:], ups, strict=True)
        )

    def forward(self, levels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        outputs: list[torch.Tensor] = []
        x = self.inputs[0](levels[0])
        for index, block in enumerate(self.blocks):
            if index > 0:
                x = self.upsamples[index - 1](x) + self.inputs[index](levels[index])
            x = block(x)
            outputs.append(x)
        return outputs


class Head(nn.Module):
    """A ``Pyramid`` over the neck's levels whose finest level a 1x1 conv reads out."""

    def __init__(self, config: MoGeConfig, out_channels: int) -> None:
        super().__init__()
        dims = config.dims
        self.pyramid = Pyramid(dims, dims, config.head_blocks, config.resamplers)
        self.readout = nn.Conv2d(dims[-1], out_channels, 1)

    def forward(self, levels: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.readout(self.pyramid(levels)[-1])


def view_plane_uv(
    width: int, height: int, aspect: torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """(B, 2, height, width) view-plane coordinates of pixel centres for aspect ratios
    ``aspect`` (B,): u spans ±r/√(1+r²)·(w−1)/w and v ±1/√(1+r²)·(h−1)/h, so the
    corners lie on the unit half-diagonal (``normalized_view_plane_uv``)."""
    span = torch.rsqrt(1 + aspect.float() ** 2)  # (B,)
    u = torch.linspace(-(width - 1) / width, (width - 1) / width, width, device=aspect.device)
    v = torch.linspace(-(height - 1) / height, (height - 1) / height, height, device=aspect.device)
    u_map = (aspect.float() * span)[:, None, None] * u[None, None, :].expand(1, height, width)
    v_map = span[:, None, None] * v[None, :, None].expand(1, height, width)
    return torch.stack([u_map, v_map], dim=1).to(dtype or aspect.dtype)


class MoGeNetwork(nn.Module):
    """MoGe-2: (B, 4, 14 rows, 14 cols) input -> ``MoGeOutput`` at 16 rows x 16 cols.

    Input planes 0-2 are the ImageNet-normalised image resized to 14 x the token grid;
    plane 3 holds the image's width / height everywhere (``prepare``).
    """

    def __init__(self, config: MoGeConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        dims = config.dims
        self.neck = Pyramid(
            (dims[0] + 2,) + (2,) * (len(dims) - 1), dims, config.neck_blocks, config.resamplers
        )
        self.points_head = Head(config, 3)
        self.normal_head = Head(config, 3) if config.normal_head else None
        self.mask_head = Head(config, 1)
        sizes = config.scale_dims
        layers: list[nn.Module] = []
        for index, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(a, b))
            if index < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.scale_head = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> MoGeOutput:
        aspect = image[:, 3, 0, 0]
        features, cls = self.encoder(image[:, :3])
        rows, cols = features.shape[-2:]
        levels = []
        for level in range(len(self.config.dims)):
            uv = view_plane_uv(cols * 2**level, rows * 2**level, aspect, features.dtype)
            levels.append(torch.cat([features, uv], dim=1) if level == 0 else uv)
        neck = self.neck(levels)
        points = self.points_head(neck)
        normal = (
            self.normal_head(neck) if self.normal_head is not None else torch.zeros_like(points)
        )
        scale = self.scale_head(cls)[:, :, None, None]
        return MoGeOutput(points, normal, self.mask_head(neck), scale)


def build_network(config: MoGeConfig) -> MoGeNetwork:
    return MoGeNetwork(config)


# ------------------------------------------------------------------------- converter

# Official key -> our key, applied in order (official names only live here).
_RENAMES: list[tuple[str, str]] = [
    (r"^encoder\.backbone\.patch_embed\.proj\.", "encoder.patch_embed."),
    (r"^encoder\.backbone\.", "encoder."),
    (r"\.ls([12])\.gamma$", r".layer_scale\1"),
    (r"^encoder\.output_projections\.", "encoder.projections."),
    # ConvStack: input_blocks / res_blocks / resamplers / output_blocks
    (r"\.input_blocks\.", ".pyramid.inputs."),
    (r"\.res_blocks\.(\d+)\.(\d+)\.layers\.2\.", r".pyramid.blocks.\1.\2.conv1."),
    (r"\.res_blocks\.(\d+)\.(\d+)\.layers\.5\.", r".pyramid.blocks.\1.\2.conv2."),
    (r"\.resamplers\.(\d+)\.0\.", r".pyramid.upsamples.\1.transpose."),
    (r"\.resamplers\.(\d+)\.1\.", r".pyramid.upsamples.\1.conv."),
    (r"_head\.output_blocks\.\d+\.", "_head.readout."),
    (r"^neck\.pyramid\.", "neck."),
]
# Unused at inference (mask_token), or constants applied in ``prepare`` (image mean/std).
_DROPPED = re.compile(r"(^encoder\.backbone\.mask_token$)|(^encoder\.image_(mean|std)$)")


def official_key_to_ours(key: str) -> str | None:
    """Our name of an official MoGe-2 key, or None for keys we drop."""
    return rename_key(key, ("module.",), _DROPPED, _RENAMES)


def convert_official_state_dict(
    state_dict: Mapping[str, torch.Tensor], config: MoGeConfig | None = None
) -> dict[str, torch.Tensor]:
    """Official MoGe-2 weights (``MoGeModel.state_dict()``) -> our ``MoGeNetwork`` keys.

    A resampler's 3x3 conv is ``resamplers.i.1`` upstream both after a transposed conv
    (``.0``) and after a parameter-free bilinear upsampling: our ``upsamples.i.conv``.
    """
    return rename_state_dict(state_dict, official_key_to_ours)


def _ints(value: Any, what: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(v, int) for v in value):
        return tuple(value)
    raise WeightsError(f"The checkpoint's MoGe model_config has an unreadable {what}.")


def _count(sd: Mapping[str, torch.Tensor], prefix: str) -> int:
    """How many numbered children ``prefix.<n>.`` the state dict has."""
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    return len({m.group(1) for k in sd if (m := pattern.match(k))})


def config_for_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    config: MoGeConfig,
    model_config: Mapping[str, Any] | None = None,
) -> MoGeConfig:
    """``config`` with the shapes of an official or converted state dict, and the
    intermediate layers of an official ``model.pt``'s ``model_config`` (when given),
    which the tensors do not hold.

    Lets a checkpoint of any width or depth load under a zoo name (tests use tiny ones).
    The head count is not stored: 64-wide heads are assumed when the width is not the
    preset's. The hooks run the preset's token range and output remap, so a
    ``model_config`` with others is refused rather than run wrongly.
    """
    sd = {(official_key_to_ours(k) or k): v for k, v in state_dict.items()}
    try:
        dim = sd["encoder.cls_token"].shape[-1]
        pos = sd["encoder.pos_embed"].shape[1] - 1
        depth = _count(sd, "encoder.blocks")
        levels = _count(sd, "neck.inputs")
        dims = tuple(sd[f"neck.inputs.{i}.weight"].shape[0] for i in range(levels))
        linears = sorted(
            int(k.split(".")[1]) for k in sd if re.fullmatch(r"scale_head\.\d+\.weight", k)
        )
        widths = [sd[f"scale_head.{i}.weight"].shape[0] for i in linears]
        scale_dims = (sd[f"scale_head.{linears[0]}.weight"].shape[1], *widths)
    except (KeyError, IndexError) as exc:
        raise WeightsError(f"Not a MoGe-2 checkpoint: it has no {exc} tensor.") from None
    projections = _count(sd, "encoder.projections")
    layers = config.intermediate_layers
    if (depth, projections) != (config.depth, len(layers)):
        layers = tuple(range(depth - projections, depth))
    if model_config is not None:
        try:
            chosen = _ints(model_config["encoder"]["intermediate_layers"], "intermediate_layers")
            tokens = _ints(model_config.get("num_tokens_range", [1200, 3600]), "token range")
            remap = model_config.get("remap_output", "linear")
        except (KeyError, TypeError):
            raise WeightsError("The checkpoint's model_config is not a MoGe-2 one.") from None
        layers = tuple(range(depth - chosen[0], depth)) if len(chosen) == 1 else chosen
        if (remap, tokens) != (config.remap_output, config.num_tokens_range):
            raise WeightsError(
                f"This MoGe checkpoint remaps its output by {remap!r} over {tokens} tokens; "
                f"depthlens runs MoGe-2 as released ({config.remap_output!r}, "
                f"{config.num_tokens_range})."
            )
    try:
        return replace(
            config,
            embed_dim=dim,
            depth=depth,
            num_heads=config.num_heads if dim == config.embed_dim else max(1, dim // 64),
            pos_grid=math.isqrt(pos),
            intermediate_layers=layers,
            dims=dims,
            neck_blocks=tuple(_count(sd, f"neck.blocks.{i}") for i in range(levels)),
            head_blocks=tuple(_count(sd, f"points_head.pyramid.blocks.{i}") for i in range(levels)),
            resamplers=tuple(
                "conv_transpose" if f"neck.upsamples.{i}.transpose.weight" in sd else "bilinear"
                for i in range(levels - 1)
            ),
            scale_dims=scale_dims,
        )
    except ValueError as exc:
        raise WeightsError(f"Not a MoGe-2 checkpoint depthlens can run: {exc}") from None


# ------------------------------------------------------------------ pre/post-process


def token_grid(height: int, width: int, num_tokens: int) -> tuple[int, int]:
    """(rows, cols) of ViT tokens for an image: ``round(sqrt(n / r))`` by
    ``round(sqrt(n r))`` with ``r = width / height`` (``MoGeModel.forward``), at least
    one each (a strip more elongated than n : 1 would round to none)."""
    aspect = width / height
    return max(1, round((num_tokens / aspect) ** 0.5)), max(1, round((num_tokens * aspect) ** 0.5))


def num_tokens_for(config: MoGeConfig, level: int = RESOLUTION_LEVEL) -> int:
    """``MoGeModel.infer``'s token count for a resolution level 0-9."""
    low, high = config.num_tokens_range
    return int(low + (level / 9) * (high - low))


def preprocess(rgb: np.ndarray, config: MoGeConfig) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (4, 14 rows, 14 cols) float32 network input.

    As the official demo and ``DINOv2Encoder.forward``: ``rgb / 255`` as float32,
    resized to 14 x ``token_grid`` (bilinear, antialiased), then ImageNet-normalised;
    the fourth plane is ``W / H``.
    """
    height, width = rgb.shape[:2]
    rows, cols = token_grid(height, width, num_tokens_for(config))
    p = config.patch_size
    image = torch.tensor(rgb / 255, dtype=torch.float32).permute(2, 0, 1)[None]
    image = F.interpolate(
        image, (rows * p, cols * p), mode="bilinear", align_corners=False, antialias=True
    )
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    image = (image - mean) / std
    aspect = torch.full((1, 1, rows * p, cols * p), width / height)
    return np.ascontiguousarray(torch.cat([image, aspect], dim=1)[0].numpy())


def remap_points(points: torch.Tensor, remap: str) -> torch.Tensor:
    """(..., 3) raw head output -> affine point map (``MoGeModel._remap_points``)."""
    if remap == "linear":
        return points
    if remap == "sinh":
        return torch.sinh(points)
    xy, z = points.split([2, 1], dim=-1)
    if remap == "exp":
        z = torch.exp(z)
        return torch.cat([xy * z, z], dim=-1)
    return torch.cat([torch.sinh(xy), torch.exp(z)], dim=-1)  # sinh_exp


def _solve_shift(
    uv: np.ndarray, xyz: np.ndarray, focal: float | None
) -> tuple[float, float | None]:
    """The z shift (and, unless given, the focal) minimising
    ``|f · xy / (z + s) − uv|²`` over the valid points, by Levenberg-Marquardt from
    s = 0 with ``ftol`` 1e-3; for a free focal, ``f`` is the least-squares one for each
    s: ``Σ p·uv / Σ p²`` with ``p = xy / (z + s)`` (``solve_optimal_focal_shift``)."""
    xy, z = xyz[:, :2], xyz[:, 2]

    def residual(shift: np.ndarray) -> np.ndarray:
        projected = xy / (z + shift)[:, None]
        f = (projected * uv).sum() / np.square(projected).sum() if focal is None else focal
        return np.asarray((f * projected - uv).ravel())

    solution = least_squares(residual, x0=0, ftol=SOLVER_FTOL, method="lm")
    shift = np.float32(np.asarray(solution["x"]).squeeze())
    if focal is not None:
        return float(shift), None
    projected = xy / (z + shift)[:, None]
    return float(shift), float((projected * uv).sum() / np.square(projected).sum())


def recover_focal_shift(
    points: torch.Tensor, mask: torch.Tensor, focal: float | None = None
) -> tuple[float, float]:
    """Focal (relative to the half diagonal) and z shift of an (H, W, 3) affine point map
    whose valid pixels are ``mask`` (H, W), for a centred, undistorted camera with square
    pixels. Solved on a 64 x 64 nearest-neighbour sample of the map; fewer than two
    valid samples give focal 1 (or the given one) and shift 0
    (``recover_focal_shift`` upstream)."""
    height, width = points.shape[:2]
    aspect = torch.tensor([width / height], dtype=points.dtype)
    uv = view_plane_uv(width, height, aspect)[0]  # (2, H, W)
    small_points = F.interpolate(points.permute(2, 0, 1)[None], FOCAL_GRID, mode="nearest")[0]
    small_uv = F.interpolate(uv[None], FOCAL_GRID, mode="nearest")[0]
    small_mask = F.interpolate(mask[None, None].float(), FOCAL_GRID, mode="nearest")[0, 0] > 0
    keep = small_mask.cpu().numpy()
    xyz = small_points.permute(1, 2, 0).cpu().numpy()[keep]
    uv_np = small_uv.permute(1, 2, 0).cpu().numpy()[keep]
    if uv_np.shape[0] < 2:
        return (1.0 if focal is None else focal), 0.0
    shift, solved = _solve_shift(uv_np, xyz, focal)
    return (solved if solved is not None else float(focal or 1.0)), shift


@dataclass(frozen=True)
class Geometry:
    """One image's MoGe-2 prediction at its size, in meters, camera axes (x right,
    y down, z forward). ``points`` (H, W, 3), ``depth`` (H, W), ``normal`` (H, W, 3)
    (None without a normal head): NaN where ``mask`` (H, W) bool is False. ``fx``,
    ``fy`` in pixels of the camera the points were projected through (principal point
    at the image centre)."""

    points: torch.Tensor
    depth: torch.Tensor
    normal: torch.Tensor | None
    mask: torch.Tensor
    fx: float
    fy: float


def finish_maps(
    output: MoGeOutput,
    row: int,
    size: tuple[int, int],
    config: MoGeConfig,
    fov_x_deg: float | None = None,
) -> Geometry:
    """Row ``row`` of the network output -> the image's ``Geometry`` (``MoGeModel.infer``
    with ``force_projection`` and ``apply_mask``; masked values NaN instead of inf/0).

    ``size`` is the image's (H, W); ``fov_x_deg`` its known horizontal field of view.
    """
    height, width = size
    rows = slice(row, row + 1)
    maps = torch.cat([output.points[rows], output.normal[rows], output.mask[rows]], dim=1)
    maps = F.interpolate(maps.float(), size, mode="bilinear", align_corners=False)[0]
    points = remap_points(maps[:3].permute(1, 2, 0), config.remap_output)
    normal = F.normalize(maps[3:6].permute(1, 2, 0), dim=-1) if config.normal_head else None
    mask = maps[6].sigmoid() > MASK_THRESHOLD
    metric_scale = float(output.scale[row].float().exp().reshape(()))

    aspect = width / height
    diagonal = (1 + aspect**2) ** 0.5
    if fov_x_deg is None:
        focal, shift = recover_focal_shift(points, mask)
    else:
        known = aspect / diagonal / math.tan(math.radians(fov_x_deg) / 2)
        focal, shift = recover_focal_shift(points, mask, float(np.float32(known)))
    # normalised intrinsics: fx per image width, fy per image height, centre (0.5, 0.5)
    fx, fy = focal / 2 * diagonal / aspect, focal / 2 * diagonal
    depth = points[..., 2] + shift  # float32 arithmetic, as upstream's tensors
    mask = mask & (depth > 0)
    u = torch.linspace(0.5 / width, 1 - 0.5 / width, width)
    v = torch.linspace(0.5 / height, 1 - 0.5 / height, height)
    points = torch.stack(
        [
            (u[None, :] - 0.5) / fx * depth,
            (v[:, None] - 0.5) / fy * depth,
            depth,
        ],
        dim=-1,
    )
    points = points * metric_scale
    depth = depth * metric_scale
    nan = torch.tensor(float("nan"))
    return Geometry(
        points=torch.where(mask[..., None], points, nan),
        depth=torch.where(mask, depth, nan),
        normal=torch.where(mask[..., None], normal, nan) if normal is not None else None,
        mask=mask,
        fx=fx * width,
        fy=fy * height,
    )


class MoGeHooks:
    """The estimator's pre/post-processing for MoGe-2 (``depthlens.models.hooks``).

    ``prepare``: ``preprocess``; ``finish``: ``finish_maps``, with the image's field of
    view when it has a camera (user flags or EXIF), and the camera: the image's own,
    else the one MoGe-2 recovered (``source="estimated"``). The token range, the
    remap and the patch size are the preset's (``config_for_state_dict`` refuses
    checkpoints that differ in them).
    """

    def prepare(self, image: Image, spec: ModelSpec) -> Prepared[None]:
        return Prepared(preprocess(image.rgb, PRESETS[spec.variant]), None)

    def finish(
        self, output: MoGeOutput, row: int, prepared: Prepared[None], image: Image, spec: ModelSpec
    ) -> Finished:
        size = (image.height, image.width)
        known = image.camera
        fov = None if known is None else math.degrees(2 * math.atan(image.width / (2 * known.fx)))
        geometry = finish_maps(output, row, size, PRESETS[spec.variant], fov)
        camera = known
        if camera is None:
            try:
                camera = Camera(
                    geometry.fx,
                    geometry.fy,
                    image.width / 2,
                    image.height / 2,
                    image.width,
                    image.height,
                    source="estimated",
                    estimated_by=spec.name,
                )
            except ValueError:  # no usable focal (a point map with no valid pixel)
                camera = image.camera_or_default
        return Finished(
            depth=as_float32(geometry.depth),
            camera=camera,
            normals=None if geometry.normal is None else as_float32(geometry.normal),
            points=as_float32(geometry.points),
            mask=geometry.mask.cpu().numpy(),
        )


HOOKS = MoGeHooks()
