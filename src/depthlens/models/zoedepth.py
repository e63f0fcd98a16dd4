"""ZoeDepth: BEiT-L/16 + DPT decoder (MiDaS v3.1) + metric-bins heads, metric depth in meters.

Paper: Bhat et al., "ZoeDepth: Zero-shot Transfer by Combining Relative and Metric
Depth", 2023 (arXiv 2302.12288); code isl-org/ZoeDepth (MIT, commit d87f17b). The
network is transformers' ``ZoeDepthForDepthEstimation``
(src/transformers/models/zoedepth/modeling_zoedepth.py); the pre- and post-processing
are written here from the official code, because transformers' image processor needs
torchvision for its post-processing:

- network: zoedepth/models/zoedepth/zoedepth_v1.py (``ZoeDepth``: one bins head, N and
  K) and zoedepth/models/zoedepth_nk/zoedepth_nk_v1.py (``ZoeDepthNK``: a patch
  transformer + MLP classifier routes between the NYU and KITTI bins heads); the core is
  MiDaS' ``DPT_BEiT_L_384`` (timm ``beit_large_patch16_384``, hooks after blocks
  6/12/18/24);
- transforms: zoedepth/models/base_models/midas.py (``PrepForMidas``: a "minimal"
  resize keeping the aspect ratio to multiples of 32 around the config's ``img_size``,
  bilinear with align_corners=True, then ``Normalize(0.5, 0.5)``: [-1, 1], not
  ImageNet statistics) and zoedepth/models/depth_model.py
  (``DepthModel._infer_with_pad_aug``: reflect-pad the [0, 1] image by
  int(sqrt(H / 2) * 3) rows and int(sqrt(W / 2) * 3) columns on each side, run, resize
  the output bicubically (align_corners=False) to the padded size, crop the padding).
  Flip TTA (``infer_with_flip_aug``) is for evaluation only, not plain prediction.
- img_size: [384, 512] (zoedepth/models/zoedepth/config_zoedepth.json and
  zoedepth_nk/config_zoedepth_nk.json), [384, 768] for K
  (config_zoedepth_kitti.json); transformers' processor uses 384 x 512 for all three.

Official keys (``core.core.pretrained.model.blocks.3.attn.qkv.weight``) become
transformers' keys by the explicit table in ``convert_official_state_dict`` (the
mapping learnt from transformers' convert_zoedepth_to_hf.py, renamed to transformers
5's module names).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import BeitConfig, ZoeDepthForDepthEstimation
from transformers import ZoeDepthConfig as HFZoeDepthConfig
from transformers.models.zoedepth.modeling_zoedepth import ZoeDepthReassembleStage

from depthlens.errors import WeightsError
from depthlens.models.convert import check_loading_info
from depthlens.models.hooks import Finished, Prepared, as_float32, network_input_size

if TYPE_CHECKING:
    from depthlens.io.images import Image
    from depthlens.models.spec import ModelSpec

# depth_model.py::_infer_with_pad_aug: padding = int(sqrt(side / 2) * 3), reflect.
PAD_FACTOR = 3.0
# midas.py::PrepForMidas: Normalize(mean=0.5, std=0.5).
MEAN = STD = 0.5

# ONNX and OpenVINO trace the network: N and K trace whole (their BEiT position bias
# follows the traced input size; the neck's batch split is ``ReassembleStage``'s), but
# NK's classifier picks a bins head with a Python ``.item()`` of its vote
# (transformers' ZoeDepthMultipleMetricDepthEstimationHeads.forward), which a trace
# freezes into the head the example took.
TORCH_ONLY = {
    "nyu-kitti": "its classifier picks the NYU or KITTI bins head per image with a Python "
    "value, which a trace would freeze into one head."
}

# Prefix of the wrapped transformers model inside ``ZoeDepthNetwork.state_dict()``.
_PREFIX = "model."

BinCentres = Literal["softplus", "normed"]


@dataclass(frozen=True)
class BinConfig:
    """One metric bins head: its name, bin count and depth range in meters."""

    name: str
    n_bins: int
    min_depth: float
    max_depth: float


@dataclass(frozen=True)
class ZoeDepthConfig:
    """Shape of a ZoeDepth network; ``PRESETS`` holds the released N, K and NK.

    The BEiT is timm's ``beit_large_patch16_384`` (LayerNorm eps 1e-6, layer scale,
    relative position bias per block); ``hooked_blocks`` (0-based) feed the DPT neck.
    ``bins`` has one head (N, K) or two routed by the classifier (NK). ``bin_centres``
    is "softplus" (unnormed attractors: N and NK) or "normed" (K), as transformers'
    conversion sets ``bin_centers_type``. ``input_size`` is the official ``img_size``
    (height, width) the resize aims at.
    """

    vit_width: int = 1024
    vit_depth: int = 24
    vit_heads: int = 16
    vit_mlp: int = 4096
    vit_patch: int = 16
    vit_side: int = 384
    hooked_blocks: tuple[int, int, int, int] = (5, 11, 17, 23)
    neck_sizes: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    features: int = 256
    relative_features: int = 32
    bin_embedding: int = 128
    attractors: tuple[int, int, int, int] = (16, 8, 4, 1)
    bins: tuple[BinConfig, ...] = (BinConfig("nyu", 64, 1e-3, 10.0),)
    bin_centres: BinCentres = "softplus"
    router_layers_intermediate: int = 1024
    layer_norm_eps: float = 1e-6
    input_size: tuple[int, int] = (384, 512)

    def __post_init__(self) -> None:
        if self.vit_width % self.vit_heads:
            raise ValueError(f"ViT width {self.vit_width} is not divisible by {self.vit_heads}.")
        if not all(0 <= b < self.vit_depth for b in self.hooked_blocks):
            raise ValueError(
                f"Hooked blocks {self.hooked_blocks} must lie in [0, {self.vit_depth})."
            )
        if len(self.bins) not in (1, 2):
            raise ValueError("ZoeDepth has one bins head or two (NK).")

    @property
    def routed(self) -> bool:
        """True for NK: a classifier picks one of two bins heads per image."""
        return len(self.bins) > 1


_NYU = BinConfig("nyu", 64, 1e-3, 10.0)
_KITTI = BinConfig("kitti", 64, 1e-3, 80.0)
PRESETS: dict[str, ZoeDepthConfig] = {
    "nyu": ZoeDepthConfig(),
    # KITTI's single head is called "nyu" in transformers' conversion (it only names it)
    "kitti": ZoeDepthConfig(
        bins=(replace(_KITTI, name="nyu"),), bin_centres="normed", input_size=(384, 768)
    ),
    "nyu-kitti": ZoeDepthConfig(bins=(_NYU, _KITTI)),
}


def _hf_config(config: ZoeDepthConfig) -> HFZoeDepthConfig:
    """The transformers config of ``config`` (as convert_zoedepth_to_hf.py::get_zoedepth_config,
    with timm's LayerNorm eps)."""
    backbone = BeitConfig(  # type: ignore[call-arg]
        image_size=config.vit_side,
        patch_size=config.vit_patch,
        num_hidden_layers=config.vit_depth,
        hidden_size=config.vit_width,
        intermediate_size=config.vit_mlp,
        num_attention_heads=config.vit_heads,
        use_relative_position_bias=True,
        reshape_hidden_states=False,
        layer_norm_eps=config.layer_norm_eps,
        out_features=[f"stage{b + 1}" for b in config.hooked_blocks],
    )
    routed = config.routed
    return HFZoeDepthConfig(
        backbone_config=backbone,
        neck_hidden_sizes=list(config.neck_sizes),
        fusion_hidden_size=config.features,
        bottleneck_features=config.features,
        num_relative_features=config.relative_features,
        bin_embedding_dim=config.bin_embedding,
        num_attractors=list(config.attractors),
        bin_centers_type=config.bin_centres,
        bin_configurations=[
            {"name": b.name, "n_bins": b.n_bins, "min_depth": b.min_depth, "max_depth": b.max_depth}
            for b in config.bins
        ],
        # zoedepth_nk_v1.py: PatchTransformerEncoder(btlnck, 1, 128, use_class_token=True),
        # 4 layers, 4 heads, feed-forward 1024 (transformers hard-codes 4 layers and 128)
        num_patch_transformer_layers=4 if routed else None,
        patch_transformer_hidden_size=128 if routed else None,
        patch_transformer_intermediate_size=config.router_layers_intermediate if routed else None,
        patch_transformer_num_attention_heads=4 if routed else None,
    )


def _config_of_hf(hf: Any) -> ZoeDepthConfig:
    """Our config of a transformers ZoeDepth config (a Hub folder's)."""
    beit = hf.backbone_config
    hooks = [int(name.removeprefix("stage")) - 1 for name in beit.out_features]
    bins = tuple(
        BinConfig(str(b["name"]), int(b["n_bins"]), float(b["min_depth"]), float(b["max_depth"]))
        for b in hf.bin_configurations
    )
    return ZoeDepthConfig(
        vit_width=beit.hidden_size,
        vit_depth=beit.num_hidden_layers,
        vit_heads=beit.num_attention_heads,
        vit_mlp=beit.intermediate_size,
        vit_patch=beit.patch_size,
        vit_side=beit.image_size,
        hooked_blocks=(hooks[0], hooks[1], hooks[2], hooks[3]),
        neck_sizes=tuple(hf.neck_hidden_sizes),
        features=hf.fusion_hidden_size,
        relative_features=hf.num_relative_features,
        bin_embedding=hf.bin_embedding_dim,
        attractors=tuple(hf.num_attractors),
        bins=bins,
        bin_centres=hf.bin_centers_type,
        router_layers_intermediate=hf.patch_transformer_intermediate_size or 1024,
        layer_norm_eps=beit.layer_norm_eps,
    )


class ZoeDepthNetwork(nn.Module):
    """ZoeDepth: (B, 3, h, w) image in [-1, 1], h and w multiples of the patch ->
    (B, h, w) metric depth in meters.

    NK routes each image by its own classifier vote: transformers (and the official
    ``ZoeDepthNK``) sum the votes over the batch and send the whole batch down one
    head, so a batch of NK inputs is run one image at a time.
    """

    def __init__(
        self, config: ZoeDepthConfig, model: ZoeDepthForDepthEstimation | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.model = model or ZoeDepthForDepthEstimation(_hf_config(config))
        # the same module and weights, with a forward that traces for any batch size
        neck: Any = self.model.neck
        neck.reassemble_stage.__class__ = ReassembleStage

    def forward(self, image: Tensor) -> Tensor:
        if self.config.routed and image.shape[0] > 1:
            return torch.cat([self._run(one[None]) for one in image])
        return self._run(image)

    def _run(self, image: Tensor) -> Tensor:
        out = self.model(pixel_values=image, return_dict=True)
        depth: Tensor = out.predicted_depth
        return depth


class ReassembleStage(ZoeDepthReassembleStage):
    """transformers' reassemble stage (same modules and weights), each hooked block's
    tokens taken on their own: transformers stacks the four along the batch and splits
    them by the batch size, which a trace freezes (a batch of 2 then failed in ONNX
    Runtime). Readout "project" (ZoeDepth's only): each token concatenated with the CLS
    token, Linear + GELU, then the reassemble layer of its block."""

    def forward(
        self, hidden_states: list[Tensor], patch_height: int, patch_width: int
    ) -> list[Tensor]:
        out = []
        for tokens, project, layer in zip(
            hidden_states, self.readout_projects, self.layers, strict=True
        ):
            grid = tokens[:, 1:]  # (B, h * w, C), row-major
            merged = project(torch.cat((grid, tokens[:, :1].expand_as(grid)), -1))
            maps = merged.permute(0, 2, 1).reshape(tokens.shape[0], -1, patch_height, patch_width)
            out.append(layer(maps))
        return out


def build_network(config: ZoeDepthConfig) -> ZoeDepthNetwork:
    """A randomly initialised network of ``config`` (nothing is downloaded)."""
    return ZoeDepthNetwork(config)


# --------------------------------------------------------------------------------------
# Official checkpoints -> our keys
# --------------------------------------------------------------------------------------

_BEIT_IN = "core.core.pretrained.model."
_BEIT = _PREFIX + "backbone.beit."
_NECK = _PREFIX + "neck."
_HEAD = _PREFIX + "metric_head."

# Official tensors transformers has no place for: timm's ImageNet classifier and mean
# pooling norm, BEiT's relative position index (recomputed) and the log-binomial
# constants k_idx / K_minus_1 (buffers, rebuilt from n_bins): convert_zoedepth_to_hf.py
# ::remove_ignore_keys drops the same.
_DROPPED = re.compile(
    r"core\.core\.pretrained\.model\.(head|fc_norm)\.(weight|bias)"
    r"|core\.core\.pretrained\.model\.blocks\.\d+\.attn\.relative_position_index"
    r"|conditional_log_binomial\.(\w+\.)?log_binomial_transform\.(k_idx|K_minus_1)"
)
# Inside a BEiT block (timm ``beit`` -> transformers ``BeitLayer``).
_BLOCK_RENAMES: list[tuple[str, str]] = [
    (r"norm1\.(weight|bias)", r"layernorm_before.\1"),
    (r"norm2\.(weight|bias)", r"layernorm_after.\1"),
    (r"gamma_([12])", r"lambda_\1"),
    (r"attn\.q_bias", "attention.q_proj.bias"),
    (r"attn\.v_bias", "attention.v_proj.bias"),
    (r"attn\.proj\.(weight|bias)", r"attention.o_proj.\1"),
    (r"attn\.relative_position_bias_table", "relative_position_bias.relative_position_bias_table"),
    (r"mlp\.fc([12])\.(weight|bias)", r"mlp.fc\1.\2"),
]
_BLOCK = re.compile(re.escape(_BEIT_IN) + r"blocks\.(\d+)\.(.+)")
# ``_net.0`` / ``_net.2`` are the two 1x1 convs (a ReLU between) of the seed regressors,
# projectors and attractors (zoedepth/models/layers/localbins_layers.py, attractor.py).
_NET = r"\._net\.([02])\.(weight|bias)"
_HEAD_MODULES = (
    r"seed_bin_regressor",
    r"seed_bin_regressors\.\w+",
    r"seed_projector",
    r"projectors\.\d",
    r"attractors\.\d",
    r"attractors\.\w+\.\d",
)
# Everything else (full match): DPT neck (MiDaS dpt_depth.py / blocks.py), relative head,
# metric heads.
_RENAMES: list[tuple[str, str]] = [
    (re.escape(_BEIT_IN) + r"cls_token", _BEIT + "embeddings.cls_token"),
    (
        re.escape(_BEIT_IN) + r"patch_embed\.proj\.(weight|bias)",
        _BEIT + r"embeddings.patch_embeddings.projection.\1",
    ),
    # readout projections: act_postprocess<n>.0 is ProjectReadout(Linear(2D, D), GELU)
    (
        r"core\.core\.pretrained\.act_postprocess([1-4])\.0\.project\.0\.(weight|bias)",
        r"<readout \1>\2",
    ),
    # act_postprocess<n>.3: the 1x1 conv to the neck width; .4 the resampling (de)conv
    (r"core\.core\.pretrained\.act_postprocess([1-4])\.3\.(weight|bias)", r"<reassemble \1>3.\2"),
    (r"core\.core\.pretrained\.act_postprocess([124])\.4\.(weight|bias)", r"<reassemble \1>4.\2"),
    (r"core\.core\.scratch\.layer([1-4])_rn\.weight", r"<conv \1>"),
    (r"core\.core\.scratch\.output_conv\.([024])\.(weight|bias)", r"<relative \1>\2"),
    (r"conv2\.(weight|bias)", _HEAD + r"conv2.\1"),
    (
        r"conditional_log_binomial\.((?:\w+\.)?)mlp\.([02])\.(weight|bias)",
        _HEAD + r"conditional_log_binomial.\1mlp.\2.\3",
    ),
    (
        r"patch_transformer\.embedding_convPxP\.(weight|bias)",
        _HEAD + r"patch_transformer.embedding_convPxP.\1",
    ),
    (
        r"patch_transformer\.transformer_encoder\.layers\.(\d)\."
        r"(self_attn\.out_proj|linear[12]|norm[12])\.(weight|bias)",
        _HEAD + r"patch_transformer.transformer_encoder.\1.\2.\3",
    ),
    (r"mlp_classifier\.([02])\.(weight|bias)", r"<classifier \1>\2"),
]
_QKV = re.compile(re.escape(_BEIT_IN) + r"blocks\.(\d+)\.attn\.qkv\.weight")
_IN_PROJ = re.compile(
    r"patch_transformer\.transformer_encoder\.layers\.(\d)\.self_attn\.in_proj_(weight|bias)"
)
_FUSION = re.compile(
    r"core\.core\.scratch\.refinenet([1-4])\."
    r"(out_conv|resConfUnit([12])\.conv([12]))\.(weight|bias)"
)
_PLACEHOLDER = re.compile(r"<(\w+) (\d)>(.*)")


def convert_official_state_dict(
    state_dict: Mapping[str, Tensor], config: ZoeDepthConfig | None = None
) -> dict[str, Tensor]:
    """Official ``ZoeD_M12_*.pt`` keys (the ``model`` entry) -> keys of
    ``build_network(config).state_dict()``.

    A ``module.`` prefix (a DataParallel save; the official ``load_state_dict`` strips it)
    is removed. BEiT's ``attn.qkv.weight`` [3D, D] is split into query, key and value rows
    in that order, with ``q_bias`` and ``v_bias`` as their biases (BEiT has no key bias);
    the NK patch transformer's ``in_proj_weight`` / ``in_proj_bias`` likewise. Tensors
    transformers does not keep are dropped (``_DROPPED``); keys that match no rule keep
    their name, so that a strict load reports them. The layout does not depend on
    ``config``.
    """
    del config
    converted: dict[str, Tensor] = {}
    for raw, tensor in state_dict.items():
        key = raw.removeprefix("module.")
        if _DROPPED.fullmatch(key):
            continue
        if match := _QKV.fullmatch(key):
            block = match.group(1)
            for name, part in zip("qkv", tensor.chunk(3, dim=0), strict=True):
                converted[f"{_BEIT}layers.{block}.attention.{name}_proj.weight"] = part
            continue
        if match := _IN_PROJ.fullmatch(key):
            layer, leaf = match.groups()
            target = f"{_HEAD}patch_transformer.transformer_encoder.{layer}.self_attn."
            for name, part in zip(("query", "key", "value"), tensor.chunk(3, dim=0), strict=True):
                converted[f"{target}{name}.{leaf}"] = part
            continue
        converted[_rename(key)] = tensor
    return converted


def _rename(key: str) -> str:
    """Our name of one official key (not qkv / in_proj), or ``key`` itself."""
    if match := _BLOCK.fullmatch(key):
        block, inner = match.groups()
        for pattern, target in _BLOCK_RENAMES:
            if re.fullmatch(pattern, inner):
                return f"{_BEIT}layers.{block}.{re.sub(pattern, target, inner)}"
        return key
    if match := _FUSION.fullmatch(key):
        # MiDaS refinenet4 fuses the coarsest level first: transformers' fusion layer 0
        level, part, unit, conv, leaf = match.groups()
        layer = f"{_NECK}fusion_stage.layers.{4 - int(level)}"
        if part == "out_conv":
            return f"{layer}.projection.{leaf}"
        return f"{layer}.residual_layer{unit}.convolution{conv}.{leaf}"
    for module in _HEAD_MODULES:
        if match := re.fullmatch(f"({module}){_NET}", key):
            name, conv, leaf = match.groups()
            return f"{_HEAD}{name}.conv{1 if conv == '0' else 2}.{leaf}"
    for pattern, target in _RENAMES:
        if re.fullmatch(pattern, key):
            return _expand(re.sub(pattern, target, key))
    return key


def _expand(name: str) -> str:
    """Resolve the ``<kind n>`` placeholders of ``_RENAMES`` (index arithmetic)."""
    match = _PLACEHOLDER.fullmatch(name)
    if match is None:
        return name
    kind, number, rest = match.groups()
    n = int(number)
    if kind == "readout":
        return f"{_NECK}reassemble_stage.readout_projects.{n - 1}.0.{rest}"
    if kind == "reassemble":
        part, leaf = rest.split(".")
        role = "projection" if part == "3" else "resize"
        return f"{_NECK}reassemble_stage.layers.{n - 1}.{role}.{leaf}"
    if kind == "conv":
        return f"{_NECK}convs.{n - 1}.weight"
    if kind == "relative":  # output_conv.0 / .2 / .4 -> conv1 / conv2 / conv3
        return f"{_PREFIX}relative_head.conv{n // 2 + 1}.{rest}"
    return f"{_HEAD}mlp_classifier.linear{n // 2 + 1}.{rest}"  # classifier .0 / .2


def config_for_state_dict(
    state_dict: Mapping[str, Tensor], config: ZoeDepthConfig
) -> ZoeDepthConfig:
    """``config`` with the shapes read from a (official or converted) state dict.

    Lets a checkpoint of another size load under the zoo name (tests use tiny ones). The
    head count comes from the relative position bias tables, the ViT side from their
    length ((2 * side / patch - 1)^2 + 3 rows). Not stored: the hooked blocks (a
    shallower ViT hooks the preset's relative depths, rounded down), the bins' depth
    ranges and names, and the NK router's head count (4).
    """
    sd = dict(state_dict)
    if not any(k.startswith(_PREFIX) for k in sd):
        sd = convert_official_state_dict(sd)
    layer = _BEIT + "layers."
    try:
        width = sd[_BEIT + "embeddings.cls_token"].shape[-1]
        patch = sd[_BEIT + "embeddings.patch_embeddings.projection.weight"].shape[-1]
        table = sd[layer + "0.relative_position_bias.relative_position_bias_table"].shape
        mlp = sd[layer + "0.mlp.fc1.weight"].shape[0]
        neck = tuple(
            sd[f"{_NECK}reassemble_stage.layers.{i}.projection.weight"].shape[0] for i in range(4)
        )
        features = sd[_NECK + "fusion_stage.layers.0.projection.weight"].shape[0]
        relative = sd[_PREFIX + "relative_head.conv2.weight"].shape[0]
        embedding = sd[_HEAD + "seed_projector.conv2.weight"].shape[0]
    except KeyError as exc:
        raise WeightsError(f"Not a ZoeDepth checkpoint: it has no {exc} tensor.") from None
    depth = len({k[len(layer) :].split(".")[0] for k in sd if k.startswith(layer)})
    routed = _HEAD + "seed_bin_regressors.nyu.conv2.weight" in sd
    regressor = "seed_bin_regressors.nyu" if routed else "seed_bin_regressor"
    n_bins = sd[f"{_HEAD}{regressor}.conv2.weight"].shape[0]
    attractor = _HEAD + (
        "attractors.nyu.{}.conv2.weight" if routed else "attractors.{}.conv2.weight"
    )
    outs = [sd[attractor.format(i)].shape[0] for i in range(4)]
    normed = config.bin_centres == "normed"
    attractors = tuple(o // 2 for o in outs) if normed else tuple(outs)
    if routed:  # zoedepth_nk_v1.py passes n_attractors[i] as n_bins: 16 attractors each
        attractors = config.attractors
    linear1 = _HEAD + "patch_transformer.transformer_encoder.0.linear1.weight"
    window = math.isqrt(max(0, table[0] - 3))
    side = (window + 1) // 2 * patch
    try:
        return replace(
            config,
            vit_width=width,
            vit_depth=depth,
            vit_heads=table[1],
            vit_mlp=mlp,
            vit_patch=patch,
            vit_side=side,
            hooked_blocks=tuple(b * depth // config.vit_depth for b in config.hooked_blocks),  # type: ignore[arg-type]
            neck_sizes=neck,  # type: ignore[arg-type]
            features=features,
            relative_features=relative,
            bin_embedding=embedding,
            attractors=attractors,  # type: ignore[arg-type]
            bins=tuple(replace(b, n_bins=n_bins) for b in config.bins),
            router_layers_intermediate=sd[linear1].shape[0]
            if routed
            else config.router_layers_intermediate,
        )
    except (ValueError, KeyError) as exc:
        raise WeightsError(f"Not a ZoeDepth checkpoint this network can take: {exc}") from None


# --------------------------------------------------------------------------------------
# Hugging Face transformers folders
# --------------------------------------------------------------------------------------


def network_from_hf_folder(folder: Path, config: ZoeDepthConfig) -> ZoeDepthNetwork:
    """Load a transformers-format folder (config.json + model.safetensors, as the Hub's
    ``Intel/zoedepth-nyu``) into our network, strictly.

    transformers reads the folder (renaming the older key names the Hub files use); its
    config.json gives the shape (and its BEiT LayerNorm eps, 1e-12 there), so ``config``
    only supplies the input size of the zoo row. Missing, unexpected or misshapen tensors
    raise ValueError.
    """
    loaded: Any = ZoeDepthForDepthEstimation.from_pretrained(
        str(folder), output_loading_info=True, local_files_only=True
    )
    hf_model, info = loaded
    check_loading_info(info, folder, "ZoeDepth")
    ours = replace(_config_of_hf(hf_model.config), input_size=config.input_size)
    return ZoeDepthNetwork(ours, model=hf_model.float().eval())


# --------------------------------------------------------------------------------------
# Pre- and post-processing (PrepForMidas, DepthModel._infer_with_pad_aug)
# --------------------------------------------------------------------------------------


def padding(height: int, width: int) -> tuple[int, int]:
    """Rows and columns of reflect padding on each side: int(sqrt(side / 2) * 3)
    (depth_model.py::_infer_with_pad_aug), kept below the side as a reflection needs
    (only images under 19 px are affected)."""
    pad_h = int(np.sqrt(height / 2) * PAD_FACTOR)
    pad_w = int(np.sqrt(width / 2) * PAD_FACTOR)
    return min(pad_h, height - 1), min(pad_w, width - 1)


def preprocess(rgb: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, h, w) float32 in [-1, 1].

    ``/ 255`` in float32, reflect padding (``padding``), the "minimal" resize of the
    padded image to multiples of 32 around the spec's size (``network_input_size``;
    bilinear, align_corners=True), then ``(x - 0.5) / 0.5``.
    """
    height, width = rgb.shape[:2]
    image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div(255)[None]
    pad_h, pad_w = padding(height, width)
    if pad_h or pad_w:
        image = F.pad(image, (pad_w, pad_w, pad_h, pad_h), mode="reflect")
    size = network_input_size(image.shape[-2], image.shape[-1], spec.input)
    if tuple(image.shape[-2:]) != size:
        image = F.interpolate(image, size=size, mode="bilinear", align_corners=True)
    return image[0].sub(MEAN).div(STD).numpy()


def postprocess(depth: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, h, w) network depth -> (B, H, W) for an (H, W) image: bicubic
    (align_corners=False) to the padded size, then the padding cropped off."""
    pad_h, pad_w = padding(*size)
    padded = (size[0] + 2 * pad_h, size[1] + 2 * pad_w)
    if tuple(depth.shape[-2:]) != padded:
        depth = F.interpolate(depth[:, None], size=padded, mode="bicubic", align_corners=False)[
            :, 0
        ]
    return depth[:, pad_h : pad_h + size[0], pad_w : pad_w + size[1]]


class ZoeDepthHooks:
    """The estimator's pre/post-processing for ZoeDepth (``depthlens.models.hooks``):
    ``preprocess`` before the network, ``postprocess`` after it; the depth is in meters
    as the network gives it, and the camera is the image's (or the default)."""

    preprocessing = "reflect-pad, resize"  # recorded in ONNX exports (backends/export.py)

    def prepare(self, image: Image, spec: ModelSpec) -> Prepared[None]:
        return Prepared(preprocess(image.rgb, spec), None)

    def finish(
        self, output: Tensor, row: int, prepared: Prepared[None], image: Image, spec: ModelSpec
    ) -> Finished:
        depth = postprocess(output[row : row + 1].float(), (image.height, image.width))
        return Finished(depth=as_float32(depth[0]), camera=image.camera_or_default)


HOOKS = ZoeDepthHooks()
