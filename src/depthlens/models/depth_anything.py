"""Depth Anything V1 and V2 (relative and metric): DINOv2 ViT/14 + DPT head, on transformers.

One family, one file: the frozen config, the presets, the network (a thin wrapper around
transformers' ``DepthAnythingForDepthEstimation`` with the official position-embedding
interpolation installed), the official-checkpoint converter and the Hugging Face folder
loader.

Upstream sources (versions in /work/shared/reference/CHECKPOINTS.md §0.1):
- V2: DepthAnything/Depth-Anything-V2: depth_anything_v2/dpt.py (``DepthAnythingV2``,
  ``DPTHead``), depth_anything_v2/dinov2.py (the vendored DINOv2), and
  metric_depth/depth_anything_v2/dpt.py (the metric head: Sigmoid times ``max_depth``).
- V1: LiheYoung/Depth-Anything: depth_anything/dpt.py (``DPT_DINOv2``) with DINOv2 from
  torchhub/facebookresearch_dinov2_main.
- transformers: src/transformers/models/depth_anything/modeling_depth_anything.py,
  src/transformers/models/dinov2/modeling_dinov2.py,
  src/transformers/models/depth_anything/convert_depth_anything_to_hf.py.

V1 and V2 checkpoints have identical keys and shapes; only the encoder blocks whose
outputs feed the head differ (V1: the last four, V2: spread out), so the version is a
config value and never guessed from the weights.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import DepthAnythingConfig as HFDepthAnythingConfig
from transformers import DepthAnythingForDepthEstimation, Dinov2Config
from transformers.models.dinov2.modeling_dinov2 import Dinov2Embeddings

from depthlens.models.backends.export import dinov2_resize
from depthlens.models.convert import check_loading_info

# Official DINOv2 settings shared by V1 and V2 (depth_anything_v2/dinov2.py::DINOv2 and
# torchhub/facebookresearch_dinov2_main/hubconf.py::_make_dinov2_model).
PATCH_SIZE = 14
PRETRAIN_IMAGE_SIZE = 518  # a 37 x 37 position-embedding grid (pos_embed [1, 1370, D])
INTERPOLATE_OFFSET = 0.1
LAYER_NORM_EPS = 1e-6

# Prefix of the wrapped transformers model inside ``DepthAnythingNetwork.state_dict()``.
_PREFIX = "model."


@dataclass(frozen=True)
class DAConfig:
    """Architecture of one Depth Anything network.

    ``hooked_blocks`` are the official 0-based indices of the encoder blocks whose
    (final-LayerNorm'ed) outputs feed the DPT head, as in ``intermediate_layer_idx`` of
    depth_anything_v2/dpt.py. ``metric`` swaps the final ReLU for a Sigmoid and scales
    by ``max_depth`` (meters); relative models keep ``max_depth = 1``.
    """

    version: Literal[1, 2] = 2
    width: int = 384  # transformer width D
    depth: int = 12  # number of transformer blocks
    heads: int = 6
    features: int = 64  # DPT fusion width
    out_channels: tuple[int, int, int, int] = (48, 96, 192, 384)  # reassemble widths
    hooked_blocks: tuple[int, int, int, int] = (2, 5, 8, 11)
    metric: bool = False
    max_depth: float = 1.0
    mlp_ratio: int = 4
    head_hidden: int = 32  # ``head_features_2`` of DPTHead
    image_size: int = PRETRAIN_IMAGE_SIZE  # sets the position-embedding grid

    def __post_init__(self) -> None:
        if self.version not in (1, 2):
            raise ValueError(f"Depth Anything version must be 1 or 2, not {self.version}.")
        if self.width % self.heads:
            raise ValueError(f"Width {self.width} is not divisible by {self.heads} heads.")
        if len(self.hooked_blocks) != 4 or len(self.out_channels) != 4:
            raise ValueError("The DPT head takes exactly four hooked blocks and four widths.")
        if not all(0 <= b < self.depth for b in self.hooked_blocks):
            raise ValueError(f"Hooked blocks {self.hooked_blocks} must lie in [0, {self.depth}).")
        if self.max_depth <= 0:
            raise ValueError(f"max_depth must be positive, not {self.max_depth}.")


# The name the brief and the estimator use; ``DAConfig`` avoids clashing with transformers'.
DepthAnythingConfig = DAConfig


@dataclass(frozen=True)
class _Encoder:
    width: int
    depth: int
    heads: int
    features: int
    out_channels: tuple[int, int, int, int]
    v2_blocks: tuple[int, int, int, int]


# DepthAnything/Depth-Anything-V2: run.py ``model_configs`` and dpt.py ``intermediate_layer_idx``;
# widths/depths/heads from depth_anything_v2/dinov2.py::vit_{small,base,large}.
_ENCODERS: dict[str, _Encoder] = {
    "small": _Encoder(384, 12, 6, 64, (48, 96, 192, 384), (2, 5, 8, 11)),
    "base": _Encoder(768, 12, 12, 128, (96, 192, 384, 768), (2, 5, 8, 11)),
    "large": _Encoder(1024, 24, 16, 256, (256, 512, 1024, 1024), (4, 11, 17, 23)),
}


def make_config(
    version: Literal[1, 2], size: str, metric: bool = False, max_depth: float = 1.0
) -> DAConfig:
    """The official config of ``size`` ("small", "base", "large").

    V1 hooks the last four blocks (LiheYoung/Depth-Anything: depth_anything/dpt.py passes
    ``4`` to ``get_intermediate_layers``); V2 the spread-out blocks of ``_ENCODERS``.
    """
    enc = _ENCODERS[size]
    blocks = enc.v2_blocks if version == 2 else tuple(range(enc.depth - 4, enc.depth))
    return DAConfig(
        version=version,
        width=enc.width,
        depth=enc.depth,
        heads=enc.heads,
        features=enc.features,
        out_channels=enc.out_channels,
        hooked_blocks=(blocks[0], blocks[1], blocks[2], blocks[3]),
        metric=metric,
        max_depth=max_depth,
    )


# Metric max depths: DepthAnything/Depth-Anything-V2: metric_depth/README.md (Hypersim 20 m,
# Virtual KITTI 2 80 m).
PRESETS: dict[str, DAConfig] = {
    **{f"v1-{size}": make_config(1, size) for size in _ENCODERS},
    **{f"v2-{size}": make_config(2, size) for size in _ENCODERS},
    **{f"v2-metric-indoor-{size}": make_config(2, size, True, 20.0) for size in _ENCODERS},
    **{f"v2-metric-outdoor-{size}": make_config(2, size, True, 80.0) for size in _ENCODERS},
}


# --------------------------------------------------------------------------------------
# Position-embedding interpolation, as the official DINOv2
# --------------------------------------------------------------------------------------


def interpolate_pos_embed(
    pos_embed: Tensor,
    height: int,
    width: int,
    patch_size: int = PATCH_SIZE,
    offset: float = INTERPOLATE_OFFSET,
) -> Tensor:
    """Resize a ViT position embedding to an image of ``height`` x ``width`` pixels.

    ``pos_embed`` is (1, 1 + N, D) with N = S * S patch positions (cls first); the result
    is (1, 1 + h * w, D) with h = height // patch_size, w = width // patch_size.

    This is the official DINOv2 rule (DepthAnything/Depth-Anything-V2:
    depth_anything_v2/dinov2.py::DinoVisionTransformer.interpolate_pos_encoding, and the
    same in LiheYoung/Depth-Anything: torchhub/facebookresearch_dinov2_main/dinov2/models/
    vision_transformer.py): bicubic with the *scale factor* ((h + 0.1) / S, (w + 0.1) / S),
    no antialias, skipped only when the token count matches and the image is square.
    transformers' Dinov2 resizes to the explicit size (h, w) instead; PyTorch maps
    coordinates with the given scale factor, so the two differ: by 3.3e-3 of the output
    range for DA V2-S (random weights, 518 x 686 input) against 1.3e-6 with this rule.
    Upstream names the height "w": its input shape is unpacked as ``B, nc, w, h``.
    """
    num_positions = pos_embed.shape[1] - 1
    grid_h, grid_w = height // patch_size, width // patch_size
    # traced for an ONNX export, the sizes are tensors: dinov2_resize decides in the graph
    if not torch.jit.is_tracing() and grid_h * grid_w == num_positions and height == width:
        return pos_embed
    side = math.isqrt(num_positions)
    dim = pos_embed.shape[-1]
    patch_pos = pos_embed[:, 1:].float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    patch_pos = dinov2_resize(patch_pos, grid_h, grid_w, offset)
    if not torch.jit.is_tracing() and tuple(patch_pos.shape[-2:]) != (grid_h, grid_w):
        # upstream asserts the same
        raise ValueError(f"Position grid {tuple(patch_pos.shape[-2:])} != {(grid_h, grid_w)}.")
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, dim)
    class_pos = pos_embed[:, :1].float()
    return torch.cat((class_pos, patch_pos), dim=1).to(pos_embed.dtype)


class OfficialDinov2Embeddings(Dinov2Embeddings):
    """transformers' DINOv2 embeddings with the official position-embedding resize.

    Same parameters and keys as ``Dinov2Embeddings``; only ``interpolate_pos_encoding``
    changes, to :func:`interpolate_pos_embed`.
    """

    def interpolate_pos_encoding(self, embeddings: Tensor, height: int, width: int) -> Tensor:
        pos = interpolate_pos_embed(self.position_embeddings, height, width, PATCH_SIZE)
        return pos.to(embeddings.dtype)


# --------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------


def _hf_config(config: DAConfig) -> HFDepthAnythingConfig:
    """The transformers config of ``config``.

    transformers' backbone ``out_indices`` count the embedding output as 0, so official
    block b is HF index b + 1 (convert_depth_anything_to_hf.py: V1-S [9, 10, 11, 12]).
    """
    backbone_kwargs: dict[str, Any] = {
        "image_size": config.image_size,
        "patch_size": PATCH_SIZE,
        "hidden_size": config.width,
        "num_hidden_layers": config.depth,
        "num_attention_heads": config.heads,
        "mlp_ratio": config.mlp_ratio,
        "layer_norm_eps": LAYER_NORM_EPS,
        "qkv_bias": True,
        "layerscale_value": 1.0,
        "out_indices": [b + 1 for b in config.hooked_blocks],
        "apply_layernorm": True,  # get_intermediate_layers(..., norm=True)
        "reshape_hidden_states": False,
        "use_mask_token": False,  # the official mask_token is unused at inference
    }
    backbone = Dinov2Config(**backbone_kwargs)
    return HFDepthAnythingConfig(
        backbone_config=backbone,
        patch_size=PATCH_SIZE,
        reassemble_hidden_size=config.width,
        reassemble_factors=[4, 2, 1, 0.5],
        neck_hidden_sizes=list(config.out_channels),
        fusion_hidden_size=config.features,
        head_hidden_size=config.head_hidden,
        depth_estimation_type="metric" if config.metric else "relative",
        # transformers types max_depth as int; the exact value is set on the head below.
        max_depth=round(config.max_depth),
    )


class DepthAnythingNetwork(nn.Module):
    """Depth Anything: (B, 3, h, w) ImageNet-normalised -> (B, h, w) depth.

    h and w must be multiples of 14. The output is at the network input resolution:
    relative inverse depth (>= 0, larger = nearer) or, for metric configs, meters in
    (0, max_depth).

    The V1 forward ends with a bilinear (align_corners=True) resize of the head output
    to (h, w) (LiheYoung/Depth-Anything: depth_anything/dpt.py::DPT_DINOv2.forward); for
    multiples of 14 that resize maps every pixel to itself, so it is omitted. The head's
    own resize to (h/14 * 14, w/14 * 14), bilinear with align_corners=True, is
    transformers' ``DepthAnythingDepthEstimationHead`` and matches ``DPTHead`` exactly;
    ``forward`` runs the head's layers itself with the input's own (h, w), where the
    head would turn the traced size of an ONNX export into constants (``int()``).
    """

    def __init__(self, config: DAConfig) -> None:
        super().__init__()
        self.config = config
        self.model = DepthAnythingForDepthEstimation(_hf_config(config))
        backbone = self.model.backbone
        backbone.embeddings = OfficialDinov2Embeddings(backbone.config)
        self.model.head.max_depth = config.max_depth

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, h, w) normalised image -> (B, h, w) depth (see the class docstring)."""
        height, width = x.shape[-2:]
        if height % PATCH_SIZE or width % PATCH_SIZE:
            raise ValueError(f"Input size {height}x{width} is not a multiple of {PATCH_SIZE}.")
        model = self.model
        features = model.backbone(x).feature_maps
        hidden = model.neck(features, height // PATCH_SIZE, width // PATCH_SIZE)
        # DepthAnythingDepthEstimationHead.forward, at (h, w) = the patch grid x 14
        head = model.head
        depth = head.conv1(hidden[head.head_in_index])
        depth = F.interpolate(depth, (height, width), mode="bilinear", align_corners=True)
        depth = head.conv3(head.activation1(head.conv2(depth)))
        depth = head.activation2(depth) * head.max_depth
        return depth.squeeze(dim=1)


def build_network(config: DAConfig) -> DepthAnythingNetwork:
    """A randomly initialised network of ``config`` (nothing is downloaded)."""
    return DepthAnythingNetwork(config)


# --------------------------------------------------------------------------------------
# Official checkpoints -> our keys
# --------------------------------------------------------------------------------------

_BACKBONE = _PREFIX + "backbone."
_LAYER = _BACKBONE + r"encoder.layer.\1."
_NECK = _PREFIX + "neck."

# Official key (full match) -> our key. ``refinenet{k}`` is fusion layer 4 - k: transformers
# runs the fusion stage from the coarsest map (refinenet4) to the finest (refinenet1).
# Sources: depth_anything_v2/dpt.py::DPTHead, depth_anything_v2/dinov2_layers/block.py,
# transformers convert_depth_anything_to_hf.py::create_rename_keys.
_RENAMES: list[tuple[str, str]] = [
    (r"pretrained\.cls_token", _BACKBONE + "embeddings.cls_token"),
    (r"pretrained\.pos_embed", _BACKBONE + "embeddings.position_embeddings"),
    (
        r"pretrained\.patch_embed\.proj\.(weight|bias)",
        _BACKBONE + r"embeddings.patch_embeddings.projection.\1",
    ),
    (r"pretrained\.blocks\.(\d+)\.norm([12])\.(weight|bias)", _LAYER + r"norm\2.\3"),
    (r"pretrained\.blocks\.(\d+)\.attn\.proj\.(weight|bias)", _LAYER + r"attention.o_proj.\2"),
    (r"pretrained\.blocks\.(\d+)\.ls([12])\.gamma", _LAYER + r"layer_scale\2.lambda1"),
    (r"pretrained\.blocks\.(\d+)\.mlp\.fc([12])\.(weight|bias)", _LAYER + r"mlp.fc\2.\3"),
    (r"pretrained\.norm\.(weight|bias)", _BACKBONE + r"layernorm.\1"),
    (
        r"depth_head\.projects\.([0-3])\.(weight|bias)",
        _NECK + r"reassemble_stage.layers.\1.projection.\2",
    ),
    (
        r"depth_head\.resize_layers\.([013])\.(weight|bias)",
        _NECK + r"reassemble_stage.layers.\1.resize.\2",
    ),
    (r"depth_head\.scratch\.output_conv1\.(weight|bias)", _PREFIX + r"head.conv1.\1"),
    (r"depth_head\.scratch\.output_conv2\.0\.(weight|bias)", _PREFIX + r"head.conv2.\1"),
    (r"depth_head\.scratch\.output_conv2\.2\.(weight|bias)", _PREFIX + r"head.conv3.\1"),
]
_QKV = re.compile(r"pretrained\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)")
_LAYER_RN = re.compile(r"depth_head\.scratch\.layer([1-4])_rn\.weight")
_REFINENET = re.compile(
    r"depth_head\.scratch\.refinenet([1-4])\.(out_conv|resConfUnit([12])\.conv([12]))\.(weight|bias)"
)
# Present in official checkpoints, unused at inference (DINOv2 masked-token pretraining).
OPTIONAL_OFFICIAL_KEYS = frozenset({"pretrained.mask_token"})


def convert_official_state_dict(
    state_dict: Mapping[str, Tensor], config: DAConfig
) -> dict[str, Tensor]:
    """Official ``depth_anything*.pth`` keys -> keys of ``build_network(config).state_dict()``.

    Covers ``depth_anything_{vits,vitb,vitl}14.pth`` (V1), ``depth_anything_v2_vit{s,b,l}
    .pth`` and ``depth_anything_v2_metric_{hypersim,vkitti}_vit{s,b,l}.pth``: one layout.
    ``attn.qkv`` [3D, D] is split into query, key, value rows (in that order, as
    ``Attention.forward`` reshapes it to (3, heads, D / heads)). ``pretrained.mask_token``
    is dropped if present; keys that match no rule are kept under their own name so that a
    strict load reports them. ``config`` is accepted for symmetry with the other families:
    the layout does not depend on it.
    """
    del config  # one layout for every version and size
    converted: dict[str, Tensor] = {}
    for key, tensor in state_dict.items():
        if key in OPTIONAL_OFFICIAL_KEYS:
            continue
        if match := _QKV.fullmatch(key):
            block, leaf = match.groups()
            for name, part in zip(
                ("q_proj", "k_proj", "v_proj"), tensor.chunk(3, dim=0), strict=True
            ):
                converted[f"{_BACKBONE}encoder.layer.{block}.attention.{name}.{leaf}"] = part
            continue
        converted[_rename(key)] = tensor
    return converted


def _rename(key: str) -> str:
    """Our name of one official key (not qkv), or ``key`` itself if no rule matches."""
    if match := _LAYER_RN.fullmatch(key):
        return f"{_NECK}convs.{int(match.group(1)) - 1}.weight"
    if match := _REFINENET.fullmatch(key):
        k, part, unit, conv, leaf = match.groups()
        layer = f"{_NECK}fusion_stage.layers.{4 - int(k)}"
        if part == "out_conv":
            return f"{layer}.projection.{leaf}"
        return f"{layer}.residual_layer{unit}.convolution{conv}.{leaf}"
    for pattern, target in _RENAMES:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, target, key)
    return key


# --------------------------------------------------------------------------------------
# Hugging Face transformers folders
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Architecture:
    """The fields of a config that fix the weights' meaning, for comparing two configs."""

    width: int
    depth: int
    heads: int
    features: int
    out_channels: tuple[int, ...]
    hooked_blocks: tuple[int, ...]
    metric: bool
    max_depth: float


def _architecture(config: DAConfig) -> _Architecture:
    return _Architecture(
        config.width,
        config.depth,
        config.heads,
        config.features,
        tuple(config.out_channels),
        tuple(config.hooked_blocks),
        config.metric,
        float(config.max_depth) if config.metric else 1.0,
    )


def _architecture_of_hf(hf: HFDepthAnythingConfig) -> _Architecture:
    backbone: Any = hf.backbone_config
    metric = hf.depth_estimation_type == "metric"
    return _Architecture(
        backbone.hidden_size,
        backbone.num_hidden_layers,
        backbone.num_attention_heads,
        hf.fusion_hidden_size,
        tuple(hf.neck_hidden_sizes),
        tuple(i - 1 for i in backbone.out_indices),
        metric,
        float(hf.max_depth or 1) if metric else 1.0,
    )


def network_from_hf_folder(folder: Path, config: DAConfig) -> DepthAnythingNetwork:
    """Load a transformers-format folder (config.json + model.safetensors) into our network.

    Works for the Hub repos ``LiheYoung/depth-anything-{small,base,large}-hf`` and
    ``depth-anything/Depth-Anything-V2-*-hf`` (transformers renames their older key
    names on load). The folder's architecture must be ``config``'s (same sizes, hooked
    blocks and head), else ValueError; missing or unexpected tensors raise ValueError too.
    The result carries the official position-embedding interpolation, unlike the plain
    transformers model.
    """
    loaded: Any = DepthAnythingForDepthEstimation.from_pretrained(
        str(folder), output_loading_info=True, local_files_only=True
    )
    hf_model, info = loaded
    found, wanted = _architecture_of_hf(hf_model.config), _architecture(config)
    if found != wanted:
        raise ValueError(f"{folder} holds a model with {found}, but this model needs {wanted}")
    check_loading_info(info, folder, "Depth Anything", ignore="mask_token")
    network = build_network(config)
    state = {
        _PREFIX + key: tensor
        for key, tensor in hf_model.state_dict().items()
        if key != "backbone.embeddings.mask_token"
    }
    network.load_state_dict(state, strict=True)
    return network
