"""Depth Anything 3 (DA3), single-view: DINOv2 ViT with DA3's changes + DPT/DualDPT head.

Paper: Lin et al., "Depth Anything 3: Recovering the Visual Space from Any Views",
arXiv 2511.10647 (2025). Written here from the official code
(ByteDance-Seed/Depth-Anything-3 @ 2c21ea8), for the path one image takes through
``DepthAnything3.inference`` (``src/depth_anything_3/api.py``):

- encoder: ``model/dinov2/vision_transformer.py`` (``DinoVisionTransformer``). DA3's
  changes to DINOv2 from layer ``alt_start`` on: the class token is replaced by a
  learnt camera token (the reference view's, ``camera_token[:, :1]``); odd layers attend
  "globally" across views (for one view: the same tokens, but RoPE positions all equal,
  ``pos_nodiff``), even layers per view; 2D RoPE (``layers/rope.py``, frequency 100)
  from ``rope_start`` and LayerNorm on q and k from ``qknorm_start``; the features read
  out are ``[last per-view output, normed current output]`` (``cat_token``).
- heads: ``model/dualdpt.py`` (any-view models: depth + confidence; the ray branch is
  not on the single-view path) and ``model/dpt.py`` (mono/metric models: depth + sky).
- camera: ``model/cam_dec.py`` + ``model/utils/transform.py::pose_encoding_to_extri_intri``
  (the field of view of the any-view models, from the camera token).
- configs: ``src/depth_anything_3/configs/da3*.yaml``; pre/post-processing:
  ``utils/io/input_processor.py`` (``upper_bound_resize`` at ``process_res`` 504) and
  ``model/da3.py::_process_mono_sky_estimation``, run by ``HOOKS``.

What the outputs are: every DA3 model predicts *depth* (larger = farther; the README,
"DA3 Monocular Series", contrasts it with Depth Anything 2's disparity). The relative
models' depth is known up to scale, so ``HOOKS`` return its reciprocal, which is
inverse depth up to scale and fits ``relative_inverse`` (larger = nearer). DA3Metric's
output becomes meters as the README's FAQ says, ``focal * output / 300``, with the focal
length ``(fx + fy) / 2`` in pixels *of the network input*: the nested model applies
that formula (``utils/alignment.py::apply_metric_scaling``) to intrinsics predicted at
the network input size (``model/da3.py::_apply_metric_scaling``), and user intrinsics
are rescaled to it (``input_processor.py::_resize_ixt``).

Official keys (``model.backbone.pretrained.blocks.3.attn.qkv.weight``) become ours
(``encoder.blocks.3.attn.qkv.weight``) by ``_RENAMES``; tensors used only by other
paths (pose-conditioned input, ray pose, extrinsics, 3D Gaussians) are dropped by name
(``_DROPPED``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from depthlens.errors import WeightsError
from depthlens.geometry.camera import Camera
from depthlens.models.backends.export import dinov2_resize
from depthlens.models.convert import rename_key, rename_state_dict
from depthlens.models.hooks import Finished, Prepared, as_float32, canonical_scale, resize_output
from depthlens.models.metric3d import Mlp  # the same DINOv2 feed-forward (fc1, GELU, fc2)

if TYPE_CHECKING:
    from depthlens.io.images import Image
    from depthlens.models.spec import ModelSpec


@dataclass(frozen=True)
class DA3Config:
    """Shape of a DA3 network; the presets are the official ``configs/da3*.yaml``.

    ``alt_start``, ``qknorm_start`` and ``rope_start`` are block indices (-1: never).
    ``head`` is ``"dualdpt"`` (any-view models: depth + confidence, and a camera
    decoder when ``camera_decoder``) or ``"dpt"`` (mono/metric: depth + sky).
    """

    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    ffn: Literal["mlp", "swiglu"] = "mlp"
    patch_size: int = 14
    pos_grid: int = 37  # the position embedding covers 37 x 37 patches (518 / 14)
    out_layers: tuple[int, int, int, int] = (5, 7, 9, 11)
    alt_start: int = 4
    qknorm_start: int = 4
    rope_start: int = 4
    rope_frequency: float = 100.0
    cat_token: bool = True
    head: Literal["dualdpt", "dpt"] = "dualdpt"
    features: int = 64
    out_channels: tuple[int, int, int, int] = (48, 96, 192, 384)
    camera_decoder: bool = True

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads or (self.embed_dim // self.num_heads) % 4:
            raise ValueError(
                f"embed_dim {self.embed_dim} / num_heads {self.num_heads} must be a multiple "
                "of 4 (2D RoPE rotates pairs along two axes)."
            )
        if any(c % 4 for c in (*self.out_channels, self.features // 2)):
            raise ValueError("out_channels and features / 2 must be multiples of 4.")
        if self.head == "dpt" and self.camera_decoder:
            raise ValueError("Only the any-view (dualdpt) models have a camera decoder.")

    @property
    def head_dim_in(self) -> int:
        return self.embed_dim * (2 if self.cat_token else 1)


def _any_view(
    embed_dim: int, depth: int, heads: int, out_layers: tuple[int, int, int, int], alt: int, **kw
) -> DA3Config:
    return DA3Config(
        embed_dim=embed_dim,
        depth=depth,
        num_heads=heads,
        out_layers=out_layers,
        alt_start=alt,
        qknorm_start=alt,
        rope_start=alt,
        **kw,
    )


def _mono_large() -> DA3Config:
    return DA3Config(
        embed_dim=1024,
        depth=24,
        num_heads=16,
        out_layers=(4, 11, 17, 23),
        alt_start=-1,
        qknorm_start=-1,
        rope_start=-1,
        cat_token=False,
        head="dpt",
        features=256,
        out_channels=(256, 512, 1024, 1024),
        camera_decoder=False,
    )


PRESETS: dict[str, DA3Config] = {
    "small": _any_view(384, 12, 6, (5, 7, 9, 11), 4),
    "base": _any_view(
        768, 12, 12, (5, 7, 9, 11), 4, features=128, out_channels=(96, 192, 384, 768)
    ),
    "large": _any_view(
        1024, 24, 16, (11, 15, 19, 23), 8, features=256, out_channels=(256, 512, 1024, 1024)
    ),
    "giant": _any_view(
        1536,
        40,
        24,
        (19, 27, 33, 39),
        13,
        ffn="swiglu",
        features=256,
        out_channels=(256, 512, 1024, 1024),
    ),
    "mono-large": _mono_large(),
    "metric-large": _mono_large(),  # the same network; only the output's unit differs
}

# ``process_res`` of DepthAnything3.inference (api.py) and the ViT patch.
PROCESS_RES = 504
PATCH = 14
MEAN = np.asarray((0.485, 0.456, 0.406), np.float32)
STD = np.asarray((0.229, 0.224, 0.225), np.float32)
# The metric model's focal length divisor (README.md, FAQ "Monocular Metric Depth").
METRIC_FOCAL = 300.0
# Sky handling of model/da3.py::_process_mono_sky_estimation (compute_sky_mask's 0.3,
# a 0.99 quantile, at least 11 sky and 11 non-sky pixels) and of the sky mask the
# official Prediction carries (output_processor.py: sky >= 0.5).
NON_SKY_BELOW = 0.3
SKY_QUANTILE = 0.99
SKY_MIN_PIXELS = 10
SKY_MASK_AT = 0.5


class AnyViewOutput(NamedTuple):
    """Outputs of the any-view models (DA3-Small/Base/Large/Giant) for (B, 3, h, w) in.

    ``depth``: (B, h, w) depth up to scale (> 0, larger = farther); ``confidence``:
    (B, h, w) unitless, > 1, larger = surer; ``fov``: (B, 2) vertical and horizontal
    field of view in radians, as the camera decoder predicts them (>= 0).
    """

    depth: torch.Tensor
    confidence: torch.Tensor
    fov: torch.Tensor


class MonoOutput(NamedTuple):
    """Outputs of DA3Mono / DA3Metric for (B, 3, h, w) in, before sky handling.

    ``depth``: (B, h, w) > 0, depth up to scale (Mono) or meters at a 300 px focal
    length (Metric); ``sky``: (B, h, w) >= 0 sky score (0.5 and above is sky).
    """

    depth: torch.Tensor
    sky: torch.Tensor


# ---------------------------------------------------------------------------- encoder


def interpolate_pos_embed(pos_embed: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
    """(1, 1 + n*n, D) -> (1, 1 + grid_h*grid_w, D), as DINOv2 (offset 0.1, bicubic by
    scale factor), left alone for the n x n grid; traceable (``dinov2_resize``)."""
    patches = pos_embed[:, 1:]
    side = math.isqrt(patches.shape[1])
    if not torch.jit.is_tracing() and grid_h == grid_w == side:
        return pos_embed
    dim = pos_embed.shape[-1]
    grid = patches.float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    resized = dinov2_resize(grid, grid_h, grid_w, 0.1)
    resized = resized.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, dim)
    return torch.cat((pos_embed[:, :1].float(), resized), dim=1).to(pos_embed.dtype)


def rope_positions(grid_h: int, grid_w: int, same: bool, device: torch.device) -> torch.Tensor:
    """(1, 1 + h*w, 2) (row, column) positions of [camera token, patches] for 2D RoPE.

    Patches count from 1 and the first token sits at 0 (vision_transformer.py::
    _prepare_rope); with ``same`` every patch is at (1, 1), as the "global" layers see
    them (``pos_nodiff``).
    """
    rows = torch.arange(grid_h, device=device)
    cols = torch.arange(grid_w, device=device)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1).reshape(-1, 2) + 1
    if same:
        grid = torch.ones_like(grid)
    first = torch.zeros(1, 2, dtype=grid.dtype, device=device)
    return torch.cat((first, grid), dim=0).unsqueeze(0)


def rotary_2d(x: torch.Tensor, positions: torch.Tensor, frequency: float) -> torch.Tensor:
    """2D RoPE on (B, heads, N, d): the first half of d rotates with the row, the second
    with the column; within each half, pairs (i, i + d/4) turn by ``pos / f^(2i / (d/2))``
    (layers/rope.py::RotaryPositionEmbedding2D)."""
    half = x.shape[-1] // 2
    return torch.cat(
        (
            _rotary_1d(x[..., :half], positions[..., 0], frequency),
            _rotary_1d(x[..., half:], positions[..., 1], frequency),
        ),
        dim=-1,
    )


def _rotary_1d(x: torch.Tensor, positions: torch.Tensor, frequency: float) -> torch.Tensor:
    dim = x.shape[-1]
    exponents = torch.arange(0, dim, 2, device=x.device).float() / dim
    inv_freq = 1.0 / (frequency**exponents)
    angles = positions.to(inv_freq.dtype).unsqueeze(-1) * inv_freq  # (1, N, dim/2)
    angles = torch.cat((angles, angles), dim=-1).unsqueeze(1).to(x.dtype)  # (1, 1, N, dim)
    first, second = x[..., : dim // 2], x[..., dim // 2 :]
    rotated = torch.cat((-second, first), dim=-1)
    return x * angles.cos() + rotated * angles.sin()


class Attention(nn.Module):
    """Multi-head self-attention on (B, N, D), optional q/k LayerNorm and 2D RoPE."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool, rope: float | None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.rope = rope
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        # nn.LayerNorm's default eps (1e-5), as upstream's norm_layer for q and k
        self.q_norm = nn.LayerNorm(head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rope is not None and positions is not None:
            q = rotary_2d(q, positions, self.rope)
            k = rotary_2d(k, positions, self.rope)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class SwiGLU(nn.Module):
    """silu(a) * b with [a, b] = w12(x), then w3 (ViT-g's feed-forward)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


class Block(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-6) with LayerScale on both branches."""

    def __init__(self, config: DA3Config, index: int) -> None:
        super().__init__()
        dim = config.embed_dim
        qk_norm = 0 <= config.qknorm_start <= index
        rope = config.rope_frequency if 0 <= config.rope_start <= index else None
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, config.num_heads, qk_norm, rope)
        self.layer_scale1 = nn.Parameter(torch.ones(dim))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp: nn.Module
        if config.ffn == "swiglu":
            # SwiGLUFFNFused's width: 2/3 of 4 x dim, rounded up to a multiple of 8
            self.mlp = SwiGLU(dim, (int(4 * dim * 2 / 3) + 7) // 8 * 8)
        else:
            self.mlp = Mlp(dim, 4 * dim)
        self.layer_scale2 = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
        x = x + self.layer_scale1 * self.attn(self.norm1(x), positions)
        return x + self.layer_scale2 * self.mlp(self.norm2(x))


class Encoder(nn.Module):
    """(B, 3, H, W) -> four (B, h*w, C') feature maps and the last read-out camera
    token (B, C'); C' = 2 D with ``cat_token`` ([per-view output, normed output]), else D."""

    def __init__(self, config: DA3Config) -> None:
        super().__init__()
        dim, p = config.embed_dim, config.patch_size
        self.config = config
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=p, stride=p)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        if config.alt_start >= 0:
            # [reference view, other views]; one view only ever takes the first
            self.camera_token = nn.Parameter(torch.zeros(1, 2, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + config.pos_grid**2, dim))
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.depth))
        # plain nn.LayerNorm upstream: eps 1e-5, unlike the blocks' 1e-6
        self.norm = nn.LayerNorm(dim)

    def forward(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        config = self.config
        p = config.patch_size
        grid_h, grid_w = image.shape[-2] // p, image.shape[-1] // p
        x = self.patch_embed(image).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + interpolate_pos_embed(self.pos_embed, grid_h, grid_w)
        local_pos = rope_positions(grid_h, grid_w, same=False, device=x.device)
        global_pos = rope_positions(grid_h, grid_w, same=True, device=x.device)

        alternating = config.alt_start >= 0
        per_view = x
        taken: list[tuple[torch.Tensor, torch.Tensor]] = []
        for index, block in enumerate(self.blocks):
            if alternating and index == config.alt_start:
                token = self.camera_token[:, :1].expand(x.shape[0], -1, -1).to(x.dtype)
                x = torch.cat((token, x[:, 1:]), dim=1)
            across = alternating and index >= config.alt_start and index % 2 == 1
            x = block(x, global_pos if across else local_pos)
            if not across:
                per_view = x
            if index in config.out_layers:
                taken.append((per_view, x))

        features, camera = [], x[:, 0]
        for per_view, out in taken:
            if config.cat_token:
                camera = torch.cat((per_view[:, 0], out[:, 0]), dim=-1)
                feature = torch.cat((per_view, self.norm(out)), dim=-1)
            else:
                camera, feature = out[:, 0], self.norm(out)
            features.append(feature[:, 1:])
        return features, camera


# ---------------------------------------------------------------------------- head


def uv_position_embedding(
    channels: int, height: int, width: int, like: torch.Tensor
) -> torch.Tensor:
    """(channels, height, width) sin-cos embedding of a centred UV grid, times 0.1.

    model/utils/head_utils.py (``create_uv_grid``, ``position_grid_to_embed``, omega_0
    100) as ``DPT._add_pos_embed`` uses it: u spans +-a/sqrt(a^2 + 1) and v +-1/sqrt(a^2
    + 1) (a = width / height), at pixel centres; half the channels embed u, half v. The
    grid is written without ``linspace`` so that an ONNX trace keeps it size-dependent.
    """
    h = torch.as_tensor(height, device=like.device).float()
    w = torch.as_tensor(width, device=like.device).float()
    aspect = w / h
    diagonal = torch.sqrt(aspect * aspect + 1.0)
    cols = torch.arange(width, device=like.device).float()
    rows = torch.arange(height, device=like.device).float()
    u = (aspect / diagonal) * (2.0 * cols - (w - 1.0)) / w
    v = (1.0 / diagonal) * (2.0 * rows - (h - 1.0)) / h
    quarter = channels // 4
    omega = 1.0 / 100.0 ** (torch.arange(quarter, device=like.device).float() / quarter)

    def embed(values: torch.Tensor) -> torch.Tensor:  # (n,) -> (n, channels / 2)
        angles = values.unsqueeze(1) * omega
        return torch.cat((angles.sin(), angles.cos()), dim=1)

    eu = embed(u).unsqueeze(0).expand(rows.shape[0], -1, -1)  # (h, w, c/2)
    ev = embed(v).unsqueeze(1).expand(-1, cols.shape[0], -1)
    return (torch.cat((eu, ev), dim=-1) * 0.1).permute(2, 0, 1).to(like.dtype)


class ResidualUnit(nn.Module):
    """x + conv2(relu(conv1(relu(x))))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    """out_conv(upsample(residual_unit(x + skip_unit(skip)))), bilinear, align_corners."""

    def __init__(self, channels: int, has_skip: bool) -> None:
        super().__init__()
        self.skip_unit = ResidualUnit(channels) if has_skip else None
        self.residual_unit = ResidualUnit(channels)
        self.out_conv = nn.Conv2d(channels, channels, 1)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor | None, size: torch.Size | None
    ) -> torch.Tensor:
        if self.skip_unit is not None and skip is not None:
            x = x + self.skip_unit(skip)
        x = self.residual_unit(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


def _output_convs(channels: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, out, 1))


class DPTHead(nn.Module):
    """Four token maps -> a (B, 2 or 1, H, W) map at the input size, plus sky for DPT.

    ``dual`` is DualDPT's main branch (token LayerNorm, UV position embeddings, depth +
    confidence); otherwise DPT's (no norm, no embeddings, depth, and a sky branch).
    """

    def __init__(self, config: DA3Config) -> None:
        super().__init__()
        dim, chans, feat = config.head_dim_in, config.out_channels, config.features
        self.patch_size = config.patch_size
        self.dual = config.head == "dualdpt"
        self.token_norm = nn.LayerNorm(dim) if self.dual else nn.Identity()
        self.projects = nn.ModuleList(nn.Conv2d(dim, c, 1) for c in chans)
        self.resamples = nn.ModuleList(
            [
                nn.ConvTranspose2d(chans[0], chans[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(chans[1], chans[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(chans[3], chans[3], 3, stride=2, padding=1),
            ]
        )
        self.adapters = nn.ModuleList(nn.Conv2d(c, feat, 3, padding=1, bias=False) for c in chans)
        # fusion_blocks[0] takes the coarsest map (refinenet4 upstream), [3] the finest
        self.fusion_blocks = nn.ModuleList(FusionBlock(feat, has_skip=i > 0) for i in range(4))
        self.neck = nn.Conv2d(feat, feat // 2, 3, padding=1)
        self.depth_head = _output_convs(feat // 2, 2 if self.dual else 1)
        self.sky_head = None if self.dual else _output_convs(feat // 2, 1)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        return x + uv_position_embedding(x.shape[1], x.shape[-2], x.shape[-1], x)

    def forward(
        self, features: list[torch.Tensor], height: int, width: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (B, 2 or 1, H, W) depth logits [+ confidence logits] and (B, 1, H, W) sky
        logits (DualDPT: the depth logits again, unused)."""
        grid_h, grid_w = height // self.patch_size, width // self.patch_size
        maps = []
        for feature, project, resample in zip(features, self.projects, self.resamples, strict=True):
            x = self.token_norm(feature)
            x = x.permute(0, 2, 1).reshape(x.shape[0], x.shape[-1], grid_h, grid_w)
            x = project(x)
            if self.dual:
                x = self._embed(x)
            maps.append(resample(x))
        adapted = [adapter(m) for adapter, m in zip(self.adapters, maps, strict=True)]
        x = self.fusion_blocks[0](adapted[3], None, adapted[2].shape[2:])
        x = self.fusion_blocks[1](x, adapted[2], adapted[1].shape[2:])
        x = self.fusion_blocks[2](x, adapted[1], adapted[0].shape[2:])
        x = self.fusion_blocks[3](x, adapted[0], None)
        x = self.neck(x)
        size = (grid_h * self.patch_size, grid_w * self.patch_size)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        if self.dual:
            x = self._embed(x)
        logits = self.depth_head(x)
        sky = self.sky_head(x) if self.sky_head is not None else logits
        return logits, sky


class CameraDecoder(nn.Module):
    """Read-out camera token (B, C') -> (B, 2) field of view (vertical, horizontal), rad."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU())
        self.fov = nn.Linear(dim, 2)

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fov(self.mlp(token)))


class AnyViewNetwork(nn.Module):
    """DA3-Small/Base/Large/Giant on one view: (B, 3, H, W), H and W multiples of 14,
    ImageNet-normalised -> ``AnyViewOutput``."""

    def __init__(self, config: DA3Config) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.head = DPTHead(config)
        self.camera_decoder = CameraDecoder(config.head_dim_in)

    def forward(self, image: torch.Tensor) -> AnyViewOutput:
        features, camera = self.encoder(image)
        logits, _ = self.head(features, image.shape[-2], image.shape[-1])
        return AnyViewOutput(
            depth=torch.exp(logits[:, 0]),
            confidence=torch.exp(logits[:, 1]) + 1.0,
            fov=self.camera_decoder(camera),
        )


class MonoNetwork(nn.Module):
    """DA3Mono-Large / DA3Metric-Large: (B, 3, H, W), H and W multiples of 14,
    ImageNet-normalised -> ``MonoOutput`` (sky handling is ``fill_sky``)."""

    def __init__(self, config: DA3Config) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.head = DPTHead(config)

    def forward(self, image: torch.Tensor) -> MonoOutput:
        features, _ = self.encoder(image)
        logits, sky = self.head(features, image.shape[-2], image.shape[-1])
        return MonoOutput(depth=torch.exp(logits[:, 0]), sky=F.relu(sky[:, 0]))


def build_network(config: DA3Config) -> AnyViewNetwork | MonoNetwork:
    return AnyViewNetwork(config) if config.head == "dualdpt" else MonoNetwork(config)


# ------------------------------------------------------------------------- converter

# Official key -> our key, applied in order after an optional ``model.`` prefix (the
# ``DepthAnything3`` wrapper's) is stripped; official names only live here.
_RENAMES: list[tuple[str, str | Callable[[re.Match[str]], str]]] = [
    (r"^backbone\.pretrained\.patch_embed\.proj\.", "encoder.patch_embed."),
    (r"^backbone\.pretrained\.", "encoder."),
    (r"\.ls([12])\.gamma$", r".layer_scale\1"),
    (r"^head\.norm\.", "head.token_norm."),
    (r"^head\.resize_layers\.", "head.resamples."),
    (r"^head\.scratch\.layer([1-4])_rn\.", lambda m: f"head.adapters.{int(m[1]) - 1}."),
    (r"^head\.scratch\.refinenet([1-4])\.", lambda m: f"head.fusion_blocks.{4 - int(m[1])}."),
    (r"\.resConfUnit1\.", ".skip_unit."),
    (r"\.resConfUnit2\.", ".residual_unit."),
    (r"^head\.scratch\.output_conv1\.", "head.neck."),
    (r"^head\.scratch\.output_conv2\.", "head.depth_head."),
    (r"^head\.scratch\.sky_output_conv2\.", "head.sky_head."),
    (r"^cam_dec\.backbone\.", "camera_decoder.mlp."),
    (r"^cam_dec\.fc_fov\.0\.", "camera_decoder.fov."),
]
# Not on the single-view path: the pose-conditioning encoder (cam_enc: input poses),
# the DualDPT ray branch (*_aux: use_ray_pose), the decoder's translation and rotation
# (one view is its own reference frame) and the 3D Gaussian head (infer_gs).
_DROPPED = re.compile(
    r"^(cam_enc\.|gs_head\.|gs_adapter\.|head\.scratch\.\w+_aux\b|cam_dec\.fc_(t|qvec)\.)"
)


def official_key_to_ours(key: str) -> str | None:
    """Our name of an official DA3 key, or None for keys of paths we do not run."""
    return rename_key(key, ("model.",), _DROPPED, _RENAMES)


def convert_official_state_dict(
    state_dict: Mapping[str, torch.Tensor], config: DA3Config | None = None
) -> dict[str, torch.Tensor]:
    """Official DA3 weights (``model.safetensors``, ``model.*`` keys) -> our keys."""
    return rename_state_dict(state_dict, official_key_to_ours)


def network_from_hf_folder(folder: Path, config: DA3Config) -> AnyViewNetwork | MonoNetwork:
    """A Hub snapshot (``config.json`` + ``model.safetensors`` in the official layout,
    as ``DepthAnything3.from_pretrained`` reads it) -> our network, loaded strictly."""
    from depthlens.models.weights import load_strict, read_state_dict

    path = Path(folder) / "model.safetensors"
    if not path.is_file():
        raise WeightsError(f"{folder} has no model.safetensors (a DA3 Hub snapshot has one).")
    network = build_network(config)
    load_strict(network, convert_official_state_dict(read_state_dict(path), config), str(path))
    return network


# ------------------------------------------------------------------ pre/post-process


def _nearest_multiple(x: int, p: int) -> int:
    """input_processor.py::_make_divisible_by_resize: ties go up."""
    down = (x // p) * p
    up = down + p
    return up if abs(up - x) <= abs(x - down) else down


def network_size(height: int, width: int, process_res: int = PROCESS_RES) -> tuple[int, int]:
    """(h, w) the network sees: longest side to ``process_res``, each side to the
    nearest multiple of 14, at least 14 (upstream gives 1 row to a 1 x 5000 strip,
    which its patch embedding cannot take)."""
    h, w = _bound_size(height, width, process_res)
    return max(PATCH, _nearest_multiple(h, PATCH)), max(PATCH, _nearest_multiple(w, PATCH))


def _bound_size(height: int, width: int, process_res: int) -> tuple[int, int]:
    longest = max(height, width)
    if longest == process_res:
        return height, width
    scale = process_res / float(longest)
    # round() of a float: half to even, as upstream's int(round(...))
    return max(1, round(height * scale)), max(1, round(width * scale))


def preprocess(rgb: np.ndarray, process_res: int = PROCESS_RES) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, h, w) float32, as input_processor.py's
    ``upper_bound_resize``: cv2 on uint8 to the longest side ``process_res`` (INTER_AREA
    down, INTER_CUBIC up), again to multiples of 14 (cubic if a side grows), /255, then
    ImageNet (x - mean) / std in float32."""
    height, width = rgb.shape[:2]
    h1, w1 = _bound_size(height, width, process_res)
    image = rgb
    if (h1, w1) != (height, width):
        grow = process_res > max(height, width)
        interpolation = cv2.INTER_CUBIC if grow else cv2.INTER_AREA
        image = cv2.resize(rgb, (w1, h1), interpolation=interpolation)
    h2, w2 = network_size(height, width, process_res)
    if (h2, w2) != (h1, w1):
        interpolation = cv2.INTER_CUBIC if (w2 > w1 or h2 > h1) else cv2.INTER_AREA
        image = cv2.resize(image, (w2, h2), interpolation=interpolation)
    values = image.astype(np.float32) / np.float32(255.0)
    normalised = (values - MEAN) / STD
    return np.ascontiguousarray(normalised.transpose(2, 0, 1), dtype=np.float32)


def fill_sky(depth: torch.Tensor, sky: torch.Tensor) -> torch.Tensor:
    """(h, w) depth with sky pixels (score >= 0.3) set to the 0.99 quantile of the rest,
    as model/da3.py::_process_mono_sky_estimation; unchanged when either part has 10
    pixels or fewer. Upstream takes the quantile of a random 100,000-pixel sample above
    that count; here it is taken over all of them (deterministic)."""
    non_sky = sky < NON_SKY_BELOW
    if int(non_sky.sum()) <= SKY_MIN_PIXELS or int((~non_sky).sum()) <= SKY_MIN_PIXELS:
        return depth
    top = torch.quantile(depth[non_sky].float(), SKY_QUANTILE)
    return torch.where(non_sky, depth, top.to(depth.dtype))


def estimated_camera(fov: torch.Tensor, height: int, width: int, model: str) -> Camera:
    """The camera of an (height, width) image from the decoder's (2,) field of view:
    ``f = (side / 2) / max(tan(fov / 2), 1e-6)``, centred (transform.py::
    pose_encoding_to_extri_intri; the field of view does not depend on resolution)."""
    tangents = torch.clamp(torch.tan(fov.double() / 2.0), min=1e-6)
    fy = (height / 2.0) / float(tangents[0])
    fx = (width / 2.0) / float(tangents[1])
    return Camera(fx, fy, width / 2.0, height / 2.0, width, height, "estimated", model)


class DA3Hooks:
    """The estimator's pre/post-processing for DA3 (``depthlens.models.hooks``).

    ``prepare``: ``preprocess``. ``finish``: any-view models return their depth's
    reciprocal, the confidence and (for an image without a user or EXIF camera) the
    camera they estimate; Mono/Metric fill the sky (``fill_sky``) and return the sky
    mask. Maps are resized back bilinearly (``spec.output``; upstream returns them at
    the network size). Metric depth is ``f * output / 300`` with ``f`` the image's
    camera (else ``Camera.default``) in network-input pixels; relative depth becomes
    its reciprocal (``relative_inverse``).
    """

    preprocessing = "resize"  # recorded in ONNX exports (backends/export.py)

    def prepare(self, image: Image, spec: ModelSpec) -> Prepared[None]:
        return Prepared(preprocess(image.rgb, spec.input.size[0]), None)

    def finish(
        self,
        output: AnyViewOutput | MonoOutput,
        row: int,
        prepared: Prepared[None],
        image: Image,
        spec: ModelSpec,
    ) -> Finished:
        size = (image.height, image.width)
        net = (prepared.tensor.shape[-2], prepared.tensor.shape[-1])
        confidence = sky = None
        camera = image.camera_or_default
        if isinstance(output, AnyViewOutput):
            depth = output.depth[row].float()
            maps = torch.stack((depth, output.confidence[row].float()))
            if image.camera is None and spec.estimates_camera:
                camera = estimated_camera(output.fov[row], image.height, image.width, spec.name)
        else:
            depth = fill_sky(output.depth[row].float(), output.sky[row].float())
            maps = torch.stack((depth, output.sky[row].float()))
        maps = resize_output(maps, size, spec.output)
        depth = maps[0]
        if isinstance(output, AnyViewOutput):
            confidence = as_float32(maps[1])
        else:
            sky = (maps[1] >= SKY_MASK_AT).cpu().numpy()
        if spec.kind == "metric":
            focal = spec.canonical_focal or METRIC_FOCAL
            depth = depth * canonical_scale(image.camera_or_default, size, net, focal)
        else:
            depth = 1.0 / depth
        return Finished(depth=as_float32(depth), camera=camera, confidence=confidence, sky=sky)


HOOKS = DA3Hooks()
