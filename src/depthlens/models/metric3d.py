"""Metric3D v2 (ViT-S / ViT-L): DINOv2-with-registers encoder + RAFT-style DPT decoder.

Paper: Hu et al., "Metric3D v2: A Versatile Monocular Geometric Foundation Model",
TPAMI 2024 (arXiv 2404.15506). No library ships the network, so it is written here
from the official code (YvanYin/Metric3D, commit eb5b6fa):

- encoder: ``mono/model/backbones/ViT_DINO_reg.py`` (``DinoVisionTransformer``,
  ``vit_small_reg`` / ``vit_large_reg``);
- decoder: ``mono/model/decode_heads/RAFTDepthNormalDPTDecoder5.py``
  (``RAFTDepthNormalDPT5``);
- configs: ``mono/configs/HourglassDecoder/vit.raft5.{small,large}.py``;
- pre/post-processing: ``hubconf.py`` (``__main__`` demo) and ``mono/utils/do_test.py``,
  run by the estimator through ``HOOKS``.

The network predicts depth for a *canonical* camera of focal length 1000 px at the
resolution it sees; ``canonical_to_metric`` turns that into meters for the real
camera. It also predicts a confidence map and surface normals (unit xyz + kappa).

Official keys (``depth_model.encoder.blocks.0.3.attn.qkv.weight``) differ from ours
(``encoder.blocks.3.attn.qkv.weight``) only by the renames in ``_RENAMES``; see
``convert_official_state_dict``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, NamedTuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from depthlens.errors import WeightsError
from depthlens.models.backends.export import dinov2_resize
from depthlens.models.convert import rename_key, rename_state_dict
from depthlens.models.hooks import Finished, Prepared, as_float32

if TYPE_CHECKING:
    from depthlens.io.images import Image
    from depthlens.models.spec import ModelSpec


@dataclass(frozen=True)
class Metric3DConfig:
    """Shape of a Metric3D v2 network; the presets are the official ViT-S/L configs.

    Constraints of the official decoder: ``decoder_channels[3] == decoder_channels[4]
    == feature_channels[2] == embed_dim`` (the 1/14 readouts keep the ViT width) and
    ``decoder_channels[2] == feature_channels[1]``. ``feature_channels[3]`` and
    ``decoder_channels[0]`` are unused, as upstream.
    """

    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    patch_size: int = 14
    pos_grid: int = 37  # the position embedding covers 37 x 37 patches (518 / 14)
    num_register_tokens: int = 4
    feature_channels: tuple[int, int, int, int] = (96, 192, 384, 768)
    decoder_channels: tuple[int, int, int, int, int] = (48, 96, 192, 384, 384)
    hidden_channels: int = 48
    iters: int = 4
    depth_normalize: tuple[float, float] = (0.1, 200.0)  # meters, canonical camera
    num_bins: int = 256
    canonical_focal: float = 1000.0

    def __post_init__(self) -> None:
        d, f = self.decoder_channels, self.feature_channels
        if not (d[3] == d[4] == f[2] == self.embed_dim and d[2] == f[1]):
            raise ValueError(
                "Metric3D needs decoder_channels[3] == decoder_channels[4] == "
                "feature_channels[2] == embed_dim and decoder_channels[2] == "
                f"feature_channels[1]; got {self}."
            )
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads.")


PRESETS: dict[str, Metric3DConfig] = {
    "v2-small": Metric3DConfig(),
    "v2-large": Metric3DConfig(
        embed_dim=1024,
        depth=24,
        num_heads=16,
        feature_channels=(256, 512, 1024, 1024),
        decoder_channels=(128, 256, 512, 1024, 1024),
        hidden_channels=128,
        iters=8,
    ),
}

# Official inference canvas (hubconf.py ``input_size`` for ViT models); both sides are
# multiples of 28, which the decoder's 3.5x and 2x1.75x upsamplings need to line up.
CANVAS = (616, 1064)
# hubconf.py pads the uint8 image with cv2.copyMakeBorder(value=[123.675, 116.28,
# 103.53]); OpenCV rounds the value to the image's uint8 type, so the pad is this.
PAD_RGB = (124, 116, 104)
MEAN_255 = (123.675, 116.28, 103.53)
STD_255 = (58.395, 57.12, 57.375)
MAX_DEPTH_M = 300.0  # hubconf.py clamps the metric depth to [0, 300]


class Metric3DOutput(NamedTuple):
    """Network outputs at the input resolution (B, ., H, W).

    ``depth``: (B, 1, H, W) canonical-camera depth in meters, in [0.1, 200];
    ``confidence``: (B, 1, H, W) unbounded depth confidence;
    ``normal``: (B, 4, H, W) unit normal xyz and kappa (> 0.01, the concentration of the normal).
    """

    depth: torch.Tensor
    confidence: torch.Tensor
    normal: torch.Tensor


# ---------------------------------------------------------------------------- encoder


def interpolate_pos_embed(
    pos_embed: torch.Tensor, grid_h: int, grid_w: int, offset: float = 0.1
) -> torch.Tensor:
    """(1, 1 + n*n, D) position embedding -> (1, 1 + grid_h*grid_w, D).

    As Metric3D's DINOv2 (``interpolate_pos_encoding``): bicubic with scale factor
    ((grid_h + 0.1) / n, (grid_w + 0.1) / n) and no antialias, left alone for a square
    n x n grid. HF transformers uses an explicit size instead, which differs.
    ``dinov2_resize`` is that resize, also when traced for an ONNX export.
    """
    patches = pos_embed[:, 1:]
    side = math.isqrt(patches.shape[1])
    if not torch.jit.is_tracing() and grid_h == grid_w == side:
        return pos_embed
    dim = pos_embed.shape[-1]
    grid = patches.float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    resized = dinov2_resize(grid, grid_h, grid_w, offset)
    resized = resized.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, dim)
    return torch.cat((pos_embed[:, :1].float(), resized), dim=1).to(pos_embed.dtype)


class Attention(nn.Module):
    """Multi-head self-attention on (B, N, D) tokens, fused qkv projection."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class ViTBlock(nn.Module):
    """Pre-norm transformer block with LayerScale on both residual branches."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.layer_scale1 = nn.Parameter(torch.full((dim,), 1e-5))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)
        self.layer_scale2 = nn.Parameter(torch.full((dim,), 1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.layer_scale1 * self.attn(self.norm1(x))
        return x + self.layer_scale2 * self.mlp(self.norm2(x))


class DinoRegEncoder(nn.Module):
    """DINOv2 ViT with register tokens; (B, 3, H, W) -> normed tokens (B, 1+R+h*w, D)."""

    def __init__(self, config: Metric3DConfig) -> None:
        super().__init__()
        dim, p = config.embed_dim, config.patch_size
        self.patch_size = p
        self.num_register_tokens = config.num_register_tokens
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=p, stride=p)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, config.num_register_tokens, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + config.pos_grid**2, dim))
        self.blocks = nn.ModuleList(ViTBlock(dim, config.num_heads) for _ in range(config.depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """Tokens ordered [cls, registers, patches] and the patch grid (h, w)."""
        height, width = image.shape[-2:]
        p = self.patch_size
        # Not padded: sides that are not multiples of 14 are bilinearly resized up
        # (ViT_DINO_reg.py::forward_features).
        up_h, up_w = -(-height // p) * p, -(-width // p) * p
        if (up_h, up_w) != (height, width):
            image = F.interpolate(image, (up_h, up_w), mode="bilinear")
        grid_h, grid_w = up_h // p, up_w // p
        x = self.patch_embed(image).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + interpolate_pos_embed(self.pos_embed, grid_h, grid_w)
        # registers are inserted after the position embedding is added
        registers = self.register_tokens.expand(x.shape[0], -1, -1)
        x = torch.cat((x[:, :1], registers, x[:, 1:]), dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x), grid_h, grid_w


# ---------------------------------------------------------------------------- decoder


class Readout(nn.Module):
    """Patch tokens + (cls, registers) -> a (B, C, h', w') feature map at one scale.

    out = GELU(project_patch(patch) + project_learn(cls ‖ registers)), then resampled:
    ``scale`` 1 keeps the 1/14 grid, 2 is a stride-2 transposed conv, 3.5 is nearest
    upsampling followed by a 1x1 conv (Token2Feature in the decoder file).
    """

    def __init__(self, dim: int, learn_tokens: int, out_channels: int, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.project_patch = nn.Linear(dim, dim)
        self.project_learn = nn.Linear(learn_tokens * dim, dim, bias=False)
        self.resample: nn.Module
        if scale == 1:
            self.resample = nn.Identity()
        elif scale == 2:
            self.resample = nn.ConvTranspose2d(dim, out_channels, kernel_size=2, stride=2)
        else:
            self.resample = nn.Conv2d(dim, out_channels, kernel_size=1)

    def forward(self, patches: torch.Tensor, learn: torch.Tensor) -> torch.Tensor:
        """(B, h, w, D) patches and (B, 1, 1, T*D) learnable tokens -> (B, C, h', w')."""
        x = F.gelu(self.project_patch(patches) + self.project_learn(learn))
        x = x.permute(0, 3, 1, 2).contiguous()
        if self.scale not in (1, 2):
            x = F.interpolate(x, scale_factor=self.scale, mode="nearest")
        return self.resample(x)


class ResidualConvUnit(nn.Module):
    """x -> relu(x) + conv2(relu(conv1(relu(x)))), with ReLU applied to x IN PLACE.

    Upstream (ConvBlock) uses ``nn.ReLU(inplace=True)`` on its input, so the caller's
    tensor is rectified too; the decoder relies on that (see ``RaftDptDecoder``).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu_(x)
        return x + self.conv2(F.relu(self.conv1(x)))


class FusionStage(nn.Module):
    """out_conv(upsample(trunk(x + branch(skip)))); DPT-style fusion (FuseBlock)."""

    def __init__(self, in_ch: int, out_ch: int, fuse: bool, scale: float | None) -> None:
        super().__init__()
        self.scale = scale
        self.trunk = ResidualConvUnit(in_ch)
        self.branch = ResidualConvUnit(in_ch) if fuse else None
        self.out_conv = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if self.branch is not None and skip is not None:
            x = x + self.branch(skip)
        x = self.trunk(x)
        if self.scale is not None:
            x = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ResidualBlock(nn.Module):
    """RAFT's residual block with layer norm: relu(shortcut(x) + relu(n2(c2(relu(n1(c1 x))))))."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.norm1 = LayerNorm2d(out_ch)
        self.norm2 = LayerNorm2d(out_ch)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None
        self.norm3 = LayerNorm2d(out_ch) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = F.relu(self.norm2(self.conv2(y)))
        if self.shortcut is not None and self.norm3 is not None:
            x = self.norm3(self.shortcut(x))
        return F.relu(x + y)


class ContextBranch(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.residual = ResidualBlock(in_ch, out_ch)
        self.conv = nn.Conv2d(out_ch, out_ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.residual(x))


class ConvGRU(nn.Module):
    """Convolutional GRU; the context terms (cz, cr, cq) are precomputed once."""

    def __init__(self, hidden: int, inputs: int) -> None:
        super().__init__()
        self.convz = nn.Conv2d(hidden + inputs, hidden, 3, padding=1)
        self.convr = nn.Conv2d(hidden + inputs, hidden, 3, padding=1)
        self.convq = nn.Conv2d(hidden + inputs, hidden, 3, padding=1)

    def forward(
        self, h: torch.Tensor, context: list[torch.Tensor], *inputs: torch.Tensor
    ) -> torch.Tensor:
        cz, cr, cq = context
        x = torch.cat(inputs, dim=1)
        hx = torch.cat([h, x], dim=1)
        z = torch.sigmoid(self.convz(hx) + cz)
        r = torch.sigmoid(self.convr(hx) + cr)
        q = torch.tanh(self.convq(torch.cat([r * h, x], dim=1)) + cq)
        return (1 - z) * h + z * q


class DeltaHead(nn.Module):
    """Hidden state -> update of (depth, confidence) and (normal xyz, kappa)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.conv1d = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.conv2d = nn.Conv2d(hidden, 2, 3, padding=1)
        self.conv1n = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.conv2n = nn.Conv2d(hidden, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        depth = self.conv2d(F.relu(self.conv1d(x)))
        normal = self.conv2n(F.relu(self.conv1n(x)))
        return torch.cat((depth, normal), dim=1)


def _pool2x(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, stride=2, padding=1)


def _resize_like(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, like.shape[2:], mode="bilinear", align_corners=True)


class UpdateBlock(nn.Module):
    """Three-level GRU (1/4, 1/7, 1/14 of the canvas) as RAFT-Stereo's multi-level update."""

    STATE_CHANNELS = 6  # depth, confidence, normal xyz, kappa

    def __init__(self, hidden: int, upsample: int = 4) -> None:
        super().__init__()
        self.gru08 = ConvGRU(hidden, self.STATE_CHANNELS + hidden)
        self.gru16 = ConvGRU(hidden, 2 * hidden)
        self.gru32 = ConvGRU(hidden, hidden)
        self.flow_head = DeltaHead(hidden)
        self.mask = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, upsample * upsample * 9, 1),
        )

    def refresh(
        self, net: list[torch.Tensor], ctx: list[list[torch.Tensor]], with_mid: bool
    ) -> None:
        """Update the coarse (and, with ``with_mid``, the middle) hidden states in place."""
        net[2] = self.gru32(net[2], ctx[2], _pool2x(net[1]))
        if with_mid:
            net[1] = self.gru16(
                net[1], ctx[1], _resize_like(_pool2x(net[0]), net[1]), _resize_like(net[2], net[1])
            )

    def forward(
        self, net: list[torch.Tensor], ctx: list[list[torch.Tensor]], state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One full update of all levels; returns (state delta, convex upsampling mask)."""
        self.refresh(net, ctx, with_mid=True)
        net[0] = self.gru08(net[0], ctx[0], state, _resize_like(net[1], net[0]))
        # the mask is scaled by 0.25 upstream "to balance gradients"
        return self.flow_head(net[0]), 0.25 * self.mask(net[0])


def normalize_normals(raw: torch.Tensor) -> torch.Tensor:
    """(B, 4, H, W) raw (x, y, z, k) -> unit (x, y, z) and kappa = elu(k) + 1.01."""
    xyz, kappa = raw[:, :3], raw[:, 3:]
    norm = torch.sqrt((xyz**2).sum(dim=1, keepdim=True)) + 1e-10
    return torch.cat([xyz / norm, F.elu(kappa) + 1.0 + 0.01], dim=1)


def convex_upsample(x: torch.Tensor, mask: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, f*h, f*w): softmax-weighted 3x3 neighbourhoods (RAFT)."""
    b, c, h, w = x.shape
    weights = mask.view(b, 1, 9, factor, factor, h, w).softmax(dim=2)
    patches = F.unfold(x, (3, 3), padding=1).view(b, c, 9, 1, 1, h, w)
    up = (weights * patches).sum(dim=2).permute(0, 1, 4, 2, 5, 3)
    return up.reshape(b, c, factor * h, factor * w)


class RaftDptDecoder(nn.Module):
    """Tokens -> canonical depth, confidence and normals at 4x the 1/4-canvas grid."""

    def __init__(self, config: Metric3DConfig) -> None:
        super().__init__()
        dim, feat, dec = config.embed_dim, config.feature_channels, config.decoder_channels
        hidden = config.hidden_channels
        learn = 1 + config.num_register_tokens
        self.num_register_tokens = config.num_register_tokens
        self.iters = config.iters
        self.min_depth, self.max_depth = config.depth_normalize
        self.num_bins = config.num_bins
        # readouts 0..3 give the 1/4 (x3.5), 1/7 (x2), 1/14 and 1/14 feature maps
        self.readouts = nn.ModuleList(
            [
                Readout(dim, learn, feat[0], 3.5),
                Readout(dim, learn, feat[1], 2),
                Readout(dim, learn, feat[2], 1),
                Readout(dim, learn, feat[3], 1),
            ]
        )
        self.fusion = nn.ModuleDict(
            {
                "stage_3": FusionStage(dec[4], dec[3], fuse=False, scale=None),
                "stage_2": FusionStage(dec[3], dec[2], fuse=True, scale=2),
                # +2 channels: depth confidence and normal confidence
                "stage_1": FusionStage(dec[2], dec[1] + 2, fuse=True, scale=7 / 4),
            }
        )
        self.depth_regressor = nn.Sequential(
            nn.Conv2d(dec[1], config.num_bins, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(config.num_bins, config.num_bins, 1),
        )
        self.normal_predictor = nn.Sequential(
            nn.Conv2d(dec[1], 128, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(128, 128, 1),
            nn.ReLU(),
            nn.Conv2d(128, 128, 1),
            nn.ReLU(),
            nn.Conv2d(128, 3, 1),
        )
        # index 0: initial hidden state, index 1: context, at 1/4, 1/7 and 1/14
        self.context_encoder = nn.ModuleDict(
            {
                name: nn.ModuleList([ContextBranch(ch, hidden), ContextBranch(ch, hidden)])
                for name, ch in (
                    ("outputs04", feat[0]),
                    ("outputs08", feat[1]),
                    ("outputs16", feat[2]),
                )
            }
        )
        self.context_zqr_convs = nn.ModuleList(
            nn.Conv2d(hidden, 3 * hidden, 3, padding=1) for _ in range(3)
        )
        self.update_block = UpdateBlock(hidden)

    def _clamp(self, x: torch.Tensor) -> torch.Tensor:
        # written with ReLUs as upstream, so rounding matches bit for bit
        y = F.relu(x - self.min_depth) + self.min_depth
        return self.max_depth - F.relu(self.max_depth - y)

    def _bins(self, device: torch.device) -> torch.Tensor:
        """Log-spaced depth bins over ``depth_normalize`` (float32, as upstream)."""
        logs = torch.linspace(
            math.log(self.min_depth), math.log(self.max_depth), self.num_bins, device=device
        )
        return torch.exp(logs)

    def _to_state(self, x: torch.Tensor) -> torch.Tensor:
        """Depth in meters from the state's normalised channel: clamp(100 x + 200)."""
        return self._clamp(x * 100.0 + self.max_depth)

    def forward(self, tokens: torch.Tensor, grid_h: int, grid_w: int) -> Metric3DOutput:
        b, _, dim = tokens.shape
        learn_n = 1 + self.num_register_tokens
        patches = tokens[:, learn_n:].reshape(b, grid_h, grid_w, dim)
        learn = tokens[:, :learn_n].reshape(b, 1, 1, learn_n * dim)
        # Only the last normed layer feeds all four readouts for ViT-S/L.
        x0, x1, x2, x3 = (readout(patches, learn) for readout in self.readouts)

        # NB: the fusion's in-place ReLU rectifies x3, x2 and x1 themselves; x1 and x2
        # then feed the context encoder rectified, as upstream (CHECKPOINTS.md item 8).
        fused = self.fusion["stage_3"](x3)
        fused = self.fusion["stage_2"](fused, x2)
        fused = self.fusion["stage_1"](fused, x1)
        features = fused[:, :-2]
        depth_conf = fused[:, -2:-1]
        normal_conf = fused[:, -1:]

        probs = self.depth_regressor(features).softmax(dim=1)
        bins = self._bins(probs.device).view(1, -1, 1, 1)
        depth = (probs * bins).sum(dim=1, keepdim=True)
        depth_init = (self._clamp(depth) - self.max_depth) / 100.0
        normal_init = normalize_normals(
            torch.cat([self.normal_predictor(features), normal_conf], 1)
        )
        state = torch.cat((depth_init, depth_conf, normal_init), dim=1)

        net: list[torch.Tensor] = []
        ctx: list[list[torch.Tensor]] = []
        for source, name, zqr in zip(
            (x0, x1, x2),
            ("outputs04", "outputs08", "outputs16"),
            self.context_zqr_convs,
            strict=True,
        ):
            branches = self.context_encoder[name]
            assert isinstance(branches, nn.ModuleList)
            net.append(torch.tanh(branches[0](source)))
            context = zqr(torch.relu(branches[1](source)))
            ctx.append(list(context.chunk(3, dim=1)))

        upsampled = state
        for _ in range(self.iters):
            # slow-fast schedule: coarse level alone, then coarse + middle, then all
            self.update_block.refresh(net, ctx, with_mid=False)
            self.update_block.refresh(net, ctx, with_mid=True)
            delta, mask = self.update_block(net, ctx, state)
            state = state + delta
            upsampled = convex_upsample(state, mask)
        return Metric3DOutput(
            depth=self._to_state(upsampled[:, :1]),
            confidence=upsampled[:, 1:2],
            normal=normalize_normals(upsampled[:, 2:]),
        )


class Metric3DNetwork(nn.Module):
    """(B, 3, H, W) normalised image (H, W multiples of 28) -> ``Metric3DOutput``.

    Outputs are at (H, W) for canvases whose sides are multiples of 28 (the official
    616 x 1064 canvas); the depth is for a canonical camera of 1000 px focal length.
    """

    def __init__(self, config: Metric3DConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = DinoRegEncoder(config)
        self.decoder = RaftDptDecoder(config)

    def forward(self, image: torch.Tensor) -> Metric3DOutput:
        tokens, grid_h, grid_w = self.encoder(image)
        return self.decoder(tokens, grid_h, grid_w)


def build_network(config: Metric3DConfig) -> Metric3DNetwork:
    return Metric3DNetwork(config)


# ------------------------------------------------------------------------- converter

# Official key -> our key, applied in order after the ``depth_model.`` prefix is
# stripped (official names only live here).
_RENAMES: list[tuple[str, str]] = [
    (r"^encoder\.blocks\.0\.(\d+)\.", r"encoder.blocks.\1."),  # one BlockChunk upstream
    (r"\.ls([12])\.gamma$", r".layer_scale\1"),
    (r"^encoder\.patch_embed\.proj\.", "encoder.patch_embed."),
    (r"^decoder\.token2feature\.read_(\d)\.readoper\.", r"decoder.readouts.\1."),
    (r"^decoder\.token2feature\.read_(\d)\.sample(\.0)?\.", r"decoder.readouts.\1.resample."),
    (r"^decoder\.decoder_mono\.upconv_(\d)\.", r"decoder.fusion.stage_\1."),
    (r"\.way_trunk\.", ".trunk."),
    (r"\.way_branch\.", ".branch."),
    (r"^decoder\.context_feature_encoder\.", "decoder.context_encoder."),
    (r"(outputs\d\d\.\d)\.0\.downsample\.0\.", r"\1.residual.shortcut."),
    (r"(outputs\d\d\.\d)\.0\.", r"\1.residual."),
    (r"(outputs\d\d\.\d)\.1\.", r"\1.conv."),
]
# ``mask_token`` is unused at inference (and absent from most checkpoints);
# ``downsample.1`` is the same LayerNorm as ``norm3`` stored a second time.
_DROPPED = re.compile(r"(^encoder\.mask_token$)|(\.downsample\.1\.)")


def official_key_to_ours(key: str) -> str | None:
    """Our name of an official Metric3D v2 key, or None for keys we drop."""
    return rename_key(key, ("module.", "depth_model."), _DROPPED, _RENAMES)


def convert_official_state_dict(
    state_dict: Mapping[str, torch.Tensor], config: Metric3DConfig | None = None
) -> dict[str, torch.Tensor]:
    """Official Metric3D v2 weights (``depth_model.*``) -> our ``Metric3DNetwork`` keys."""
    return rename_state_dict(state_dict, official_key_to_ours)


def config_for_state_dict(
    state_dict: Mapping[str, torch.Tensor], config: Metric3DConfig
) -> Metric3DConfig:
    """``config`` with the shapes read from a (official or converted) state dict.

    Lets a checkpoint of any width/depth load under a zoo name (tests use tiny ones).
    The head count is not stored: 64-wide heads are assumed, as in ViT-S/L; ``iters``
    stays the preset's.
    """
    sd = {k.removeprefix("depth_model."): v for k, v in state_dict.items()}
    sd = {(official_key_to_ours(k) or k): v for k, v in sd.items()}
    try:
        dim = sd["encoder.cls_token"].shape[-1]
        blocks = {int(k.split(".")[2]) for k in sd if k.startswith("encoder.blocks.")}
        read0 = sd["decoder.readouts.0.resample.weight"].shape[0]
        read1 = sd["decoder.readouts.1.resample.weight"].shape[1]
        dec1 = sd["decoder.fusion.stage_1.out_conv.weight"].shape[0] - 2
        hidden = sd["decoder.context_zqr_convs.0.weight"].shape[1]
        pos = sd["encoder.pos_embed"].shape[1] - 1
        regs = sd["encoder.register_tokens"].shape[1]
        bins = sd["decoder.depth_regressor.2.weight"].shape[0]
    except KeyError as exc:
        raise WeightsError(f"Not a Metric3D v2 checkpoint: it has no {exc} tensor.") from None
    same = (
        dim == config.embed_dim
        and len(blocks) == config.depth
        and hidden == config.hidden_channels
        and read0 == config.feature_channels[0]
    )
    if same:
        return config
    return replace(
        config,
        embed_dim=dim,
        depth=len(blocks),
        num_heads=max(1, dim // 64),
        pos_grid=math.isqrt(pos),
        num_register_tokens=regs,
        feature_channels=(read0, read1, dim, dim),
        decoder_channels=(dec1, dec1, read1, dim, dim),
        hidden_channels=hidden,
        num_bins=bins,
    )


# ------------------------------------------------------------------ pre/post-process


@dataclass(frozen=True)
class Letterbox:
    """How an image was placed on the canvas: scale, then padding (top, bottom, left, right)."""

    scale: float
    pad: tuple[int, int, int, int]
    resized: tuple[int, int]  # (h, w) of the image on the canvas


def preprocess(rgb: np.ndarray, canvas: tuple[int, int] = CANVAS) -> tuple[np.ndarray, Letterbox]:
    """(H, W, 3) uint8 RGB -> (3, ch, cw) float32 network input and its letterbox.

    As hubconf.py: one scale fitting the image inside ``canvas``, ``cv2.resize``
    (INTER_LINEAR, on uint8, sizes truncated with int()), centred padding with the mean
    colour (``PAD_RGB``), then (x - mean) / std on the 0-255 scale.
    """
    height, width = rgb.shape[:2]
    scale = min(canvas[0] / height, canvas[1] / width)
    # At least one pixel: hubconf's int() truncates a 1×5000 strip to 0 rows.
    new_h, new_w = max(1, int(height * scale)), max(1, int(width * scale))
    image = rgb
    if (new_h, new_w) != (height, width):
        image = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    pad_h, pad_w = canvas[0] - new_h, canvas[1] - new_w
    top, left = pad_h // 2, pad_w // 2
    padded = np.empty((canvas[0], canvas[1], 3), dtype=np.float32)
    padded[:] = np.asarray(PAD_RGB, dtype=np.float32)
    padded[top : top + new_h, left : left + new_w] = image
    normalised = (padded - np.asarray(MEAN_255, np.float32)) / np.asarray(STD_255, np.float32)
    box = Letterbox(scale, (top, pad_h - top, left, pad_w - left), (new_h, new_w))
    return np.ascontiguousarray(normalised.transpose(2, 0, 1)), box


def unletterbox(x: torch.Tensor, box: Letterbox, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, ch, cw) canvas map -> (B, C, H, W): drop the padding, bilinear resize back."""
    top, _, left, _ = box.pad
    h, w = box.resized
    x = x[:, :, top : top + h, left : left + w]
    if (h, w) != size:
        x = F.interpolate(x, size=size, mode="bilinear")  # hubconf: align_corners=False
    return x


def canonical_to_metric(depth: torch.Tensor, fx: float, scale: float) -> torch.Tensor:
    """Canonical-camera depth -> meters: d · (fx · scale) / 1000, clamped to [0, 300].

    ``fx`` is the real focal length in pixels of the original image and ``scale`` the
    resize factor onto the canvas: the network saw a camera of focal fx · scale.
    """
    metric = depth * (fx * scale / PRESETS["v2-small"].canonical_focal)
    return torch.clamp(metric, 0.0, MAX_DEPTH_M)


class Metric3DHooks:
    """The estimator's pre/post-processing for Metric3D (``depthlens.models.hooks``).

    ``prepare`` letterboxes onto ``CANVAS`` (``preprocess``); ``finish`` drops the
    padding and resizes back (``unletterbox``), turns the canonical-camera depth into
    meters (``canonical_to_metric``) and returns the confidence and unit normals too.
    The focal length is the image's camera (user flags or EXIF, as loaded), else
    ``Camera.default`` (its documented default field of view).
    """

    def prepare(self, image: Image, spec: ModelSpec) -> Prepared[Letterbox]:
        tensor, box = preprocess(image.rgb)
        return Prepared(tensor, box)

    def finish(
        self,
        output: Metric3DOutput,
        row: int,
        prepared: Prepared[Letterbox],
        image: Image,
        spec: ModelSpec,
    ) -> Finished:
        box = prepared.state
        camera = image.camera_or_default
        rows = slice(row, row + 1)
        maps = torch.cat(
            [output.depth[rows], output.confidence[rows], output.normal[rows, :3]], dim=1
        ).float()
        maps = unletterbox(maps, box, (image.height, image.width))
        depth = canonical_to_metric(maps[0, 0], camera.fx, box.scale)
        normals = F.normalize(maps[0, 2:5], dim=0).permute(1, 2, 0)
        return Finished(
            depth=as_float32(depth),
            camera=camera,
            confidence=as_float32(maps[0, 1]),
            normals=as_float32(normals),
        )


HOOKS = Metric3DHooks()
