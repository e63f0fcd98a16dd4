"""MiDaS v2.1 small: an EfficientNet-Lite3 encoder, the MiDaS fusion decoder, and the
converter for the official ``midas_v21_small_256.pt`` checkpoint.

The network is ``MidasNet_small`` of isl-org/MiDaS: midas/midas_net_custom.py, built as
midas/model_loader.py builds ``midas_v21_small_256`` (features=64,
backbone="efficientnet_lite3", exportable=True, non_negative=True, blocks={"expand": True})::

    image (B, 3, h, w), ImageNet-normalised, h and w multiples of 32
      encoder   EfficientNet-Lite3 without its classifier (rwightman/gen-efficientnet-pytorch:
                geffnet/gen_efficientnet.py::tf_efficientnet_lite3)
                -> four maps (B, 32 | 48 | 136 | 384, h/s, w/s) at s = 4, 8, 16, 32
      decoder   3x3 projections to 64 | 128 | 256 | 512 channels, fused coarse to fine
                (isl-org/MiDaS: midas/blocks.py::FeatureFusionBlock_custom)
                -> (B, 64, h/2, w/2)
      head      3x3 conv, x2 bilinear, 3x3 conv, ReLU, 1x1 conv, ReLU
                -> (B, h, w) relative inverse depth (larger = nearer)

Module names are ours (``encoder.stages``, ``decoder.fusion_blocks``, ``residual_unit``);
the official names (``pretrained.layer1.3.0``, ``scratch.refinenet1.resConfUnit1``) appear
only in the converter's rename table, :func:`official_module_names`.

Two deliberate differences from the official modules, neither of which changes an output:

* The coarsest fusion block (official ``scratch.refinenet4``) receives no skip input, so
  its ``resConfUnit1`` is never called. We do not build it (4.7 M parameters, 22 % of the
  official 21.3 M); the converter drops its keys explicitly (:data:`UNUSED_OFFICIAL_PREFIXES`).
* geffnet's ``Conv2dSameExport`` (used because exportable=True) computes its "SAME" pad on
  the first call and reuses it for every later input size. :class:`Conv2dSame` computes
  it for each input. The pad depends only on the parity of the size, and every stride-2
  conv sees an even size when the input is a multiple of 32 (which the decoder needs), so
  the two agree on every input the network accepts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from depthlens.errors import WeightsError

BlockType = Literal["ds", "ir"]


# --------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class StageDef:
    """One stage of an EfficientNet-Lite architecture definition, before scaling.

    The fields of a geffnet block string: ``ir_r2_k3_s2_e6_c24`` is
    ``StageDef("ir", repeats=2, kernel=3, stride=2, expansion=6, out_channels=24)``
    (rwightman/gen-efficientnet-pytorch: geffnet/efficientnet_builder.py::_decode_block_str).
    ``ds`` is a depthwise-separable block, ``ir`` an inverted residual; only the first
    block of a stage uses ``stride``.
    """

    block: BlockType
    repeats: int
    kernel: int
    stride: int
    expansion: int
    out_channels: int


@dataclass(frozen=True)
class BlockDef:
    """One decoded encoder block: its type, channels and kernel after scaling.

    ``mid_channels`` is the width of the depthwise conv: ``in_channels`` for ``ds``
    blocks, the expanded width for ``ir`` blocks.
    """

    block: BlockType
    in_channels: int
    mid_channels: int
    out_channels: int
    kernel: int
    stride: int

    @property
    def has_residual(self) -> bool:
        """geffnet adds the input back when the block keeps the shape (no ``noskip`` here)."""
        return self.stride == 1 and self.in_channels == self.out_channels


# rwightman/gen-efficientnet-pytorch: geffnet/gen_efficientnet.py::_gen_efficientnet_lite
# (arch_def; the "lite" variants have no squeeze-excitation and use ReLU6).
EFFICIENTNET_LITE_STAGES: tuple[StageDef, ...] = (
    StageDef("ds", 1, 3, 1, 1, 16),
    StageDef("ir", 2, 3, 2, 6, 24),
    StageDef("ir", 2, 5, 2, 6, 40),
    StageDef("ir", 3, 3, 2, 6, 80),
    StageDef("ir", 3, 5, 1, 6, 112),
    StageDef("ir", 4, 5, 2, 6, 192),
    StageDef("ir", 1, 3, 1, 6, 320),
)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``divisor``), then
    add ``divisor`` if that lost more than 10 %
    (rwightman/gen-efficientnet-pytorch: geffnet/efficientnet_builder.py::make_divisible)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


@dataclass(frozen=True)
class MidasSmallConfig:
    """Everything that shapes a MiDaS-small network; the defaults are the official values
    except the two EfficientNet multipliers (1.0 is Lite0; the preset sets Lite3's).

    Encoder (rwightman/gen-efficientnet-pytorch: geffnet/gen_efficientnet.py):
    ``stages`` is the unscaled architecture definition. Stage ``s`` has
    ``ceil(repeats * depth_multiplier)`` blocks (the first and last stage keep their
    repeats: ``decode_arch_def(..., fix_first_last=True)``) of
    ``make_divisible(out_channels * channel_multiplier)`` channels; an ``ir`` block expands
    to ``make_divisible(in_channels * expansion)``. The stem is a 3x3 stride-2 conv to
    ``stem_channels`` (not scaled: ``fix_stem=True``). ``level_ends`` groups the stages into
    the four feature levels the decoder reads (isl-org/MiDaS: midas/blocks.py::
    _make_efficientnet_backbone: stem + stages 0-1, stage 2, stages 3-4, stages 5-6).

    Decoder (isl-org/MiDaS: midas/midas_net_custom.py): level ``i`` is projected to
    ``features * 2**i`` channels when ``expand`` (else ``features``); ``head_channels`` is
    the width before the final 1x1 conv; ``non_negative`` adds the final ReLU;
    ``log_output`` reads the final conv as log depth and returns its exponential, a
    positive depth whose logarithm (the quantity SILog compares) is the conv itself.
    """

    stages: tuple[StageDef, ...] = EFFICIENTNET_LITE_STAGES
    channel_multiplier: float = 1.0
    depth_multiplier: float = 1.0
    stem_channels: int = 32
    channel_divisor: int = 8
    level_ends: tuple[int, int, int, int] = (2, 3, 5, 7)
    # rwightman/gen-efficientnet-pytorch: geffnet/efficientnet_builder.py::BN_EPS_TF_DEFAULT
    bn_eps: float = 1e-3
    features: int = 64
    expand: bool = True
    head_channels: int = 32
    non_negative: bool = True
    log_output: bool = False

    def __post_init__(self) -> None:
        if self.non_negative and self.log_output:
            raise ValueError("non_negative and log_output exclude each other (exp is positive).")
        ends = self.level_ends
        if not 0 < ends[0] < ends[1] < ends[2] < ends[3] == len(self.stages):
            raise ValueError(
                f"level_ends {ends} must be increasing, start above 0 and end at the number "
                f"of stages ({len(self.stages)})."
            )
        if any(stage.stride not in (1, 2) for stage in self.stages):
            raise ValueError("Every stage stride must be 1 or 2, as in geffnet.")

    @property
    def blocks(self) -> tuple[tuple[BlockDef, ...], ...]:
        """The decoded block table, one tuple per stage (geffnet ``decode_arch_def`` +
        ``EfficientNetBuilder``)."""
        last = len(self.stages) - 1
        in_channels = self.stem_channels
        decoded = []
        for index, stage in enumerate(self.stages):
            multiplier = 1.0 if index in (0, last) else self.depth_multiplier
            repeats = math.ceil(stage.repeats * multiplier)
            out_channels = make_divisible(
                stage.out_channels * self.channel_multiplier, self.channel_divisor
            )
            stage_blocks = []
            for position in range(repeats):
                mid_channels = (
                    in_channels
                    if stage.block == "ds"
                    else make_divisible(in_channels * stage.expansion, self.channel_divisor)
                )
                stride = stage.stride if position == 0 else 1
                stage_blocks.append(
                    BlockDef(
                        stage.block, in_channels, mid_channels, out_channels, stage.kernel, stride
                    )
                )
                in_channels = out_channels
            decoded.append(tuple(stage_blocks))
        return tuple(decoded)

    @property
    def encoder_channels(self) -> tuple[int, int, int, int]:
        """Channels of the four encoder levels (lite3: 32, 48, 136, 384)."""
        c = [self.blocks[end - 1][-1].out_channels for end in self.level_ends]
        return c[0], c[1], c[2], c[3]

    @property
    def decoder_widths(self) -> tuple[int, int, int, int]:
        """Channels of the decoder at each level, finest first (expand: 64, 128, 256, 512)."""
        f = self.features
        return (f, 2 * f, 4 * f, 8 * f) if self.expand else (f, f, f, f)

    @property
    def input_multiple(self) -> int:
        """The input height and width must be multiples of this (the total stride, 32)."""
        return 2 ** (1 + sum(stage.stride == 2 for stage in self.stages))


PRESETS: dict[str, MidasSmallConfig] = {
    # isl-org/MiDaS: midas/model_loader.py ("midas_v21_small_256") and
    # rwightman/gen-efficientnet-pytorch: geffnet/gen_efficientnet.py::tf_efficientnet_lite3
    # (channel_multiplier=1.2, depth_multiplier=1.4).
    "v21-small-256": MidasSmallConfig(channel_multiplier=1.2, depth_multiplier=1.4),
    # depthlens' own bundled model: an EfficientNet-Lite0 encoder (multipliers 1.0) and a
    # half-width decoder, 5.9 M parameters, trained on the synthetic engine. No final ReLU:
    # it learns affine-invariant inverse depth, where a clamp would only kill gradients.
    "depthlens-small": MidasSmallConfig(features=32, non_negative=False),
    # The same network trained for metric depth at a canonical camera: the head predicts
    # log depth (configs/metric-canonical.yaml).
    "depthlens-small-metric": MidasSmallConfig(features=32, non_negative=False, log_output=True),
}


# --------------------------------------------------------------------------------------
# Encoder: EfficientNet-Lite


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow "SAME" zero padding ``(before, after)`` of one spatial dimension.

    The output has ``ceil(size / stride)`` samples; the total pad is
    ``p = max((ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)``,
    of which ``p // 2`` goes before and the rest after
    (rwightman/gen-efficientnet-pytorch: geffnet/conv2d_layers.py::_calc_same_pad). At
    stride 2 on an even size that is (0, 1) for k3 and (1, 2) for k5.
    """
    out = -(size // -stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """A Conv2d with TensorFlow "SAME" padding computed from each input's (h, w).

    (B, C_in, h, w) -> (B, C_out, ceil(h / stride), ceil(w / stride)).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int, groups: int = 1
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel, stride=stride, padding=0, groups=groups, bias=False
        )

    def forward(self, x: Tensor) -> Tensor:
        kh, kw = self.kernel_size
        sh, sw = self.stride
        top, bottom = same_padding(x.shape[-2], kh, sh, self.dilation[0])
        left, right = same_padding(x.shape[-1], kw, sw, self.dilation[1])
        return self._conv_forward(F.pad(x, (left, right, top, bottom)), self.weight, self.bias)


def same_conv(
    in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1
) -> nn.Conv2d:
    """A bias-free conv with "SAME" padding: static and symmetric where that is exact
    (stride 1, odd kernel), per-input otherwise
    (rwightman/gen-efficientnet-pytorch: geffnet/conv2d_layers.py::create_conv2d_pad)."""
    if stride == 1 and kernel % 2 == 1:
        return nn.Conv2d(
            in_channels, out_channels, kernel, padding=kernel // 2, groups=groups, bias=False
        )
    return Conv2dSame(in_channels, out_channels, kernel, stride, groups)


class ConvBnAct(nn.Module):
    """Conv ("SAME", no bias) -> BatchNorm -> ReLU6 or nothing. (B, C_in, h, w) -> (B, C_out,
    h', w')."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        bn_eps: float,
        stride: int = 1,
        depthwise: bool = False,
        activation: bool = True,
    ) -> None:
        super().__init__()
        groups = in_channels if depthwise else 1
        self.conv = same_conv(in_channels, out_channels, kernel, stride, groups)
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps)
        self.act: nn.Module = nn.ReLU6() if activation else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class DepthwiseSeparable(nn.Module):
    """Depthwise kxk conv + BN + ReLU6, pointwise 1x1 conv + BN (no activation), plus the
    input when the shape is kept
    (rwightman/gen-efficientnet-pytorch: geffnet/efficientnet_builder.py::DepthwiseSeparableConv).

    (B, C_in, h, w) -> (B, C_out, h / stride, w / stride).
    """

    def __init__(self, spec: BlockDef, bn_eps: float) -> None:
        super().__init__()
        self.has_residual = spec.has_residual
        self.depthwise = ConvBnAct(
            spec.in_channels, spec.in_channels, spec.kernel, bn_eps, spec.stride, depthwise=True
        )
        self.project = ConvBnAct(spec.in_channels, spec.out_channels, 1, bn_eps, activation=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.project(self.depthwise(x))
        return out + x if self.has_residual else out


class InvertedResidual(nn.Module):
    """Pointwise expansion + BN + ReLU6, depthwise kxk + BN + ReLU6, linear pointwise
    projection + BN, plus the input when the shape is kept; no squeeze-excitation
    (rwightman/gen-efficientnet-pytorch: geffnet/efficientnet_builder.py::InvertedResidual).

    (B, C_in, h, w) -> (B, C_out, h / stride, w / stride).
    """

    def __init__(self, spec: BlockDef, bn_eps: float) -> None:
        super().__init__()
        self.has_residual = spec.has_residual
        mid = spec.mid_channels
        self.expand = ConvBnAct(spec.in_channels, mid, 1, bn_eps)
        self.depthwise = ConvBnAct(mid, mid, spec.kernel, bn_eps, spec.stride, depthwise=True)
        self.project = ConvBnAct(mid, spec.out_channels, 1, bn_eps, activation=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return out + x if self.has_residual else out


class EfficientNetLiteEncoder(nn.Module):
    """EfficientNet-Lite without its head: a stride-2 stem and ``config.stages``.

    (B, 3, h, w) -> four maps (B, C_i, h / s_i, w / s_i) with C_i =
    ``config.encoder_channels`` and s_i = 4, 8, 16, 32 for Lite3.
    """

    def __init__(self, config: MidasSmallConfig) -> None:
        super().__init__()
        self.level_ends = config.level_ends
        self.stem = ConvBnAct(3, config.stem_channels, 3, config.bn_eps, stride=2)
        self.stages = nn.ModuleList(
            nn.Sequential(
                *(
                    DepthwiseSeparable(block, config.bn_eps)
                    if block.block == "ds"
                    else InvertedResidual(block, config.bn_eps)
                    for block in stage
                )
            )
            for stage in config.blocks
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        levels = []
        x = self.stem(x)
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index + 1 in self.level_ends:
                levels.append(x)
        return levels


# --------------------------------------------------------------------------------------
# Decoder and head (isl-org/MiDaS: midas/blocks.py, midas/midas_net_custom.py)


class ResidualUnit(nn.Module):
    """``x + conv2(relu(conv1(relu(x))))`` with 3x3 convs that keep the width
    (isl-org/MiDaS: midas/blocks.py::ResidualConvUnit_custom, bn=False). (B, C, h, w) ->
    (B, C, h, w)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    """Adds the refined skip to the coarser path, refines, upsamples x2, mixes channels
    (isl-org/MiDaS: midas/blocks.py::FeatureFusionBlock_custom, bn=False, align_corners=True).

    ``forward(x, skip)``: x and skip (B, C, h, w) -> (B, C_out, 2h, 2w). The coarsest
    block has no skip and so no ``skip_unit``.
    """

    def __init__(self, channels: int, out_channels: int, has_skip: bool) -> None:
        super().__init__()
        self.skip_unit = ResidualUnit(channels) if has_skip else None
        self.residual_unit = ResidualUnit(channels)
        self.out_conv = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        if self.skip_unit is not None:
            if skip is None:
                raise ValueError("This fusion block needs the skip features of its level.")
            x = x + self.skip_unit(skip)
        x = self.residual_unit(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class MidasDecoder(nn.Module):
    """Projects the four encoder levels and fuses them from coarse to fine.

    Level i (finest first) is projected by a bias-free 3x3 conv to ``decoder_widths[i]``
    channels; fusion block i halves the width of levels 1-3 when ``expand`` (official
    ``refinenet1`` is built without expand and keeps ``features``).
    Four maps (B, C_i, h / s_i, w / s_i) -> (B, features, h / 2, w / 2).
    """

    def __init__(self, config: MidasSmallConfig) -> None:
        super().__init__()
        widths = config.decoder_widths
        self.projections = nn.ModuleList(
            nn.Conv2d(c_in, width, 3, padding=1, bias=False)
            for c_in, width in zip(config.encoder_channels, widths, strict=True)
        )
        last = len(widths) - 1
        self.fusion_blocks = nn.ModuleList(
            FusionBlock(width, widths[max(i - 1, 0)], has_skip=i < last)
            for i, width in enumerate(widths)
        )

    def forward(self, levels: list[Tensor]) -> Tensor:
        projected = [
            projection(level) for projection, level in zip(self.projections, levels, strict=True)
        ]
        path = self.fusion_blocks[-1](projected[-1])
        for i in range(len(projected) - 2, -1, -1):
            path = self.fusion_blocks[i](path, projected[i])
        return path


class DepthHead(nn.Module):
    """3x3 conv to features/2, x2 bilinear (align_corners=False), 3x3 conv + ReLU, 1x1 conv
    to one channel, ReLU if ``non_negative`` (isl-org/MiDaS: midas/midas_net_custom.py,
    ``scratch.output_conv``), exp if ``log_output``. (B, features, h / 2, w / 2) -> (B, h, w)."""

    def __init__(self, config: MidasSmallConfig) -> None:
        super().__init__()
        half = config.features // 2
        self.non_negative = config.non_negative
        self.log_output = config.log_output
        self.reduce = nn.Conv2d(config.features, half, 3, padding=1)
        self.refine = nn.Conv2d(half, config.head_channels, 3, padding=1)
        self.predict = nn.Conv2d(config.head_channels, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.reduce(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.predict(F.relu(self.refine(x)))
        if self.non_negative:
            x = F.relu(x)
        elif self.log_output:
            x = torch.exp(x)
        return x.squeeze(1)


class MidasSmallNet(nn.Module):
    """MiDaS v2.1 small. (B, 3, h, w) ImageNet-normalised, h and w multiples of
    ``config.input_multiple`` (32) -> (B, h, w) relative inverse depth."""

    def __init__(self, config: MidasSmallConfig) -> None:
        super().__init__()
        self.input_multiple = config.input_multiple
        self.encoder = EfficientNetLiteEncoder(config)
        self.decoder = MidasDecoder(config)
        self.head = DepthHead(config)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"Expected an image batch of shape (B, 3, h, w), got {tuple(x.shape)}."
            )
        h, w = x.shape[-2:]
        m = self.input_multiple
        if h % m or w % m:
            raise ValueError(f"MiDaS small needs a height and width divisible by {m}, got {h}x{w}.")
        return self.head(self.decoder(self.encoder(x)))


def build_network(config: MidasSmallConfig) -> MidasSmallNet:
    """A randomly initialised MiDaS-small network for ``config``, in eval mode."""
    return MidasSmallNet(config).eval()


# --------------------------------------------------------------------------------------
# Official checkpoint -> our keys

# Modules of the official checkpoint that our network does not build: the skip unit of
# the coarsest fusion block, which MidasNet_small.forward never calls.
UNUSED_OFFICIAL_PREFIXES: tuple[str, ...] = ("scratch.refinenet4.resConfUnit1.",)

# geffnet block submodule -> ours (conv/bn pairs).
_DS_PARTS = {
    "conv_dw": "depthwise.conv",
    "bn1": "depthwise.bn",
    "conv_pw": "project.conv",
    "bn2": "project.bn",
}
_IR_PARTS = {
    "conv_pw": "expand.conv",
    "bn1": "expand.bn",
    "conv_dw": "depthwise.conv",
    "bn2": "depthwise.bn",
    "conv_pwl": "project.conv",
    "bn3": "project.bn",
}
_FUSION_PARTS = {
    "resConfUnit1.conv1": "skip_unit.conv1",
    "resConfUnit1.conv2": "skip_unit.conv2",
    "resConfUnit2.conv1": "residual_unit.conv1",
    "resConfUnit2.conv2": "residual_unit.conv2",
    "out_conv": "out_conv",
}
# isl-org/MiDaS: midas/midas_net_custom.py: output_conv = Sequential(conv, Interpolate, conv,
# ReLU, conv, ReLU, Identity); only indices 0, 2 and 4 hold parameters.
_HEAD_PARTS = {"0": "reduce", "2": "refine", "4": "predict"}


def official_module_names(config: MidasSmallConfig) -> dict[str, str]:
    """The rename table: official module name -> our module name, for every module that
    holds tensors (a key is ``<module>.<weight|bias|running_mean|...>`` on both sides).

    Official encoder names follow isl-org/MiDaS: midas/blocks.py::_make_efficientnet_backbone:
    ``pretrained.layer1`` = Sequential(conv_stem, bn1, act1, blocks[0], blocks[1]), so stage
    s < level_ends[0] is ``pretrained.layer1.{3 + s}``; level k > 1 is
    Sequential(blocks[start:end]), so its stage s is ``pretrained.layer{k}.{s - start}``.
    """
    names = {"pretrained.layer1.0": "encoder.stem.conv", "pretrained.layer1.1": "encoder.stem.bn"}
    start = 0
    for level, end in enumerate(config.level_ends, start=1):
        offset = 3 if level == 1 else 0
        for stage in range(start, end):
            for index, block in enumerate(config.blocks[stage]):
                official = f"pretrained.layer{level}.{offset + stage - start}.{index}"
                ours = f"encoder.stages.{stage}.{index}"
                parts = _DS_PARTS if block.block == "ds" else _IR_PARTS
                names.update({f"{official}.{a}": f"{ours}.{b}" for a, b in parts.items()})
        start = end
    last = len(config.level_ends) - 1
    for i in range(last + 1):
        names[f"scratch.layer{i + 1}_rn"] = f"decoder.projections.{i}"
        for a, b in _FUSION_PARTS.items():
            if i == last and b.startswith("skip_unit."):
                continue  # never called, not built: UNUSED_OFFICIAL_PREFIXES
            names[f"scratch.refinenet{i + 1}.{a}"] = f"decoder.fusion_blocks.{i}.{b}"
    names.update({f"scratch.output_conv.{a}": f"head.{b}" for a, b in _HEAD_PARTS.items()})
    return names


def unwrap_official_checkpoint(obj: object) -> Mapping[str, Tensor]:
    """The state dict inside an object read from an official MiDaS checkpoint file.

    Plain state dicts are returned as they are; a training container (a dict with an
    ``optimizer`` entry) gives its ``model`` entry, as isl-org/MiDaS:
    midas/base_model.py::BaseModel.load does.
    """
    if not isinstance(obj, Mapping):
        raise WeightsError(
            f"A MiDaS checkpoint must hold a dict of tensors, not {type(obj).__name__}."
        )
    if "optimizer" in obj:
        if not isinstance(obj.get("model"), Mapping):
            raise WeightsError(
                "This MiDaS training checkpoint has an 'optimizer' entry but no 'model' dict."
            )
        return obj["model"]
    return obj


def convert_official_state_dict(
    state_dict: Mapping[str, Tensor], config: MidasSmallConfig
) -> dict[str, Tensor]:
    """Official ``midas_v21_small_256.pt`` keys -> keys of ``build_network(config)``.

    Keys under :data:`UNUSED_OFFICIAL_PREFIXES` are dropped; keys of modules not in
    :func:`official_module_names` are kept unchanged so that a strict load reports them;
    a missing ``num_batches_tracked`` (older checkpoints) is filled with 0. Tensors are
    not copied.
    """
    names = official_module_names(config)
    converted: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith(UNUSED_OFFICIAL_PREFIXES):
            continue
        module, _, leaf = key.rpartition(".")
        ours = names.get(module)
        converted[f"{ours}.{leaf}" if ours is not None else key] = value
    for ours in names.values():
        if ours.endswith(".bn"):
            converted.setdefault(f"{ours}.num_batches_tracked", torch.zeros((), dtype=torch.long))
    return converted
