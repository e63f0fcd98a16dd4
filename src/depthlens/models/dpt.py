"""DPT / MiDaS v3.0 (DPT-Large, DPT-Hybrid) on transformers' DPT modules.

The network is transformers' ``DPTForDepthEstimation`` (huggingface/transformers:
src/transformers/models/dpt/modeling_dpt.py) with its parts (``dpt``, ``neck``, ``head``)
held under the same names, so a transformers folder loads without renaming. Our
``forward`` composes those parts the way the official MiDaS code does
(isl-org/MiDaS: midas/dpt_depth.py::DPT.forward, midas/backbones/vit.py::forward_flex,
midas/backbones/utils.py::forward_adapted_unflatten). Where transformers differs from the
official numerics, the step is patched here, each with its citation:

1. ViT LayerNorm eps: timm's ViT uses 1e-6 (huggingface/pytorch-image-models v0.6.12:
   timm/models/vision_transformer.py, ``partial(nn.LayerNorm, eps=1e-6)``); the DPT
   configs on the Hub (``Intel/dpt-large``, ``Intel/dpt-hybrid-midas``) say 1e-12. We
   always build with ``DPTVariantConfig.layer_norm_eps`` (1e-6), also for Hub folders.
2. Token grid: ``DPTReassembleStage`` reshapes the tokens to a square grid unless given
   the patch grid, and ``DPTForDepthEstimation.forward`` passes it only for non-ViT
   backbones; MiDaS unflattens to (h/16, w/16). We pass the grid, so non-square inputs
   work (``minimal`` resizing gives e.g. 256x384).
3. Hybrid input size: ``DPTViTHybridEmbeddings`` rejects inputs other than 384x384 unless
   ``interpolate_pos_encoding=True``; MiDaS resizes the position embedding for every input
   (bilinear, align_corners=False, as transformers does once allowed). We always allow it.
4. Fusion upsampling: transformers upsamples every fusion block x2 and, on a size
   mismatch, resizes the *skip* (bilinear, align_corners=False); MiDaS 3.1 resizes each
   block's output to the next finer map's size (bilinear, align_corners=True;
   isl-org/MiDaS: midas/blocks.py::FeatureFusionBlock_custom). Identical for multiples of
   32; we follow MiDaS, so multiples of 16 give the official numbers too.
5. Hybrid "same" padding, traced: BiT's ``DynamicPad2d`` computes its pad with
   ``math.ceil(size / stride)``, which an ONNX trace records as a constant, so an
   export would pad every input to the traced size. ``_same_pad`` is the same integer
   formula in operators a trace follows (identical numbers in eager mode).

Steps that already agree and are left alone: readout "project" (token ++ cls, Linear,
exact GELU; midas/backbones/utils.py::ProjectReadout), the head (conv, x2 bilinear
align_corners=True, conv, ReLU, conv, ReLU; midas/dpt_depth.py::DPTDepthModel), and the
hybrid ResNetV2 stem: TF-SAME dynamic padding for the strided 7x7 conv and the 3x3 max
pool (zero padding after a ReLU equals timm's -inf padding), GroupNorm(32, eps 1e-5), and
weight standardisation through ``batch_norm`` with eps 1e-8, i.e. (w - mean) /
sqrt(var + 1e-8) per filter, as timm 0.6.12 (MiDaS 3.1's pin, isl-org/MiDaS:
environment.yaml) computes it (timm/models/layers/std_conv.py::StdConv2dSame,
timm/models/vision_transformer_hybrid.py::_resnetv2). timm 0.4.5, which the DPT repo
pinned, used (w - mean) / (std + 1e-5) instead; we match the MiDaS repository.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import BitConfig, DPTConfig, DPTForDepthEstimation
from transformers.models.bit.modeling_bit import DynamicPad2d

from depthlens.errors import WeightsError

Readout = Literal["ignore", "add", "project"]


@dataclass(frozen=True)
class DPTVariantConfig:
    """Architecture of one DPT variant; tiny test models change values, not code.

    ``hooks`` are the encoder blocks whose tokens feed the decoder (the official
    ``hooks`` / transformers' ``backbone_out_indices``). For the hybrid, the first two
    entries stand for the ResNet stages 1 and 2, which are always used (isl-org/MiDaS:
    midas/backbones/vit.py::_make_vit_b_rn50_backbone), and only the last two index
    ViT blocks.
    """

    hybrid: bool
    hidden_size: int  # ViT width D
    num_layers: int  # ViT blocks
    num_heads: int
    mlp_size: int  # ViT MLP width, 4 D in the presets
    hooks: tuple[int, int, int, int]
    neck_sizes: tuple[int, int, int, int]  # reassembled channels per level
    features: int = 256  # decoder (fusion) width
    readout: Readout = "project"
    image_size: int = 384  # training size; sets the stored position-embedding grid
    patch_size: int = 16
    layer_norm_eps: float = 1e-6  # timm ViT
    # ResNetV2 stem of the hybrid (timm vit_base_resnet50_384); unused otherwise.
    resnet_depths: tuple[int, int, int] = (3, 4, 9)
    resnet_widths: tuple[int, int, int] = (256, 512, 1024)
    resnet_stem: int = 64
    resnet_groups: int = 32

    def __post_init__(self) -> None:
        vit_hooks = self.vit_hooks
        if list(vit_hooks) != sorted(set(vit_hooks)) or not all(
            0 <= h < self.num_layers for h in vit_hooks
        ):
            raise ValueError(
                f"hooks {self.hooks} must name increasing ViT blocks below {self.num_layers}."
            )
        if self.hybrid and self.readout != "project":
            raise ValueError("The hybrid DPT is defined with readout 'project' only.")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size {self.image_size} is not a multiple of {self.patch_size}."
            )

    @property
    def vit_hooks(self) -> tuple[int, ...]:
        """The hooked ViT blocks: all four hooks, or the last two for the hybrid."""
        return self.hooks[2:] if self.hybrid else self.hooks


# MiDaS v3.0 models as built by isl-org/MiDaS: midas/model_loader.py (``dpt_large_384``:
# backbone vitl16_384; ``dpt_hybrid_384``: vitb_rn50_384; features 256, readout project)
# with hooks and reassemble widths from midas/dpt_depth.py and midas/backbones/vit.py.
PRESETS: dict[str, DPTVariantConfig] = {
    "large-384": DPTVariantConfig(
        hybrid=False,
        hidden_size=1024,
        num_layers=24,
        num_heads=16,
        mlp_size=4096,
        hooks=(5, 11, 17, 23),
        neck_sizes=(256, 512, 1024, 1024),
    ),
    "hybrid-384": DPTVariantConfig(
        hybrid=True,
        hidden_size=768,
        num_layers=12,
        num_heads=12,
        mlp_size=3072,
        hooks=(0, 1, 8, 11),
        neck_sizes=(256, 512, 768, 768),
    ),
}


def to_hf_config(config: DPTVariantConfig) -> DPTConfig:
    """The transformers ``DPTConfig`` of ``config`` (values as in transformers'
    convert_dpt_to_pytorch.py / convert_dpt_hybrid_to_pytorch.py, LayerNorm eps from timm).
    """
    common: dict[str, Any] = {
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "intermediate_size": config.mlp_size,
        "hidden_act": "gelu",
        "layer_norm_eps": config.layer_norm_eps,
        "image_size": config.image_size,
        "patch_size": config.patch_size,
        "qkv_bias": True,
        "backbone_out_indices": list(config.hooks),
        "readout_type": config.readout,
        "neck_hidden_sizes": list(config.neck_sizes),
        "fusion_hidden_size": config.features,
        "use_batch_norm_in_fusion_residual": False,
        "add_projection": False,
        "use_auxiliary_head": False,
    }
    if not config.hybrid:
        return DPTConfig(**common, reassemble_factors=[4, 2, 1, 0.5])
    grid = config.image_size // config.patch_size
    backbone_args: dict[str, Any] = {
        "num_channels": 3,
        "embedding_size": config.resnet_stem,
        "hidden_sizes": list(config.resnet_widths),
        "depths": list(config.resnet_depths),
        "layer_type": "bottleneck",
        "global_padding": "same",
        "num_groups": config.resnet_groups,
        "embedding_dynamic_padding": True,
        "out_features": ["stage1", "stage2", "stage3"],
    }
    backbone = BitConfig(**backbone_args)
    return DPTConfig(
        **common,
        is_hybrid=True,
        backbone_config=backbone,
        backbone_featmap_shape=[1, config.resnet_widths[-1], grid, grid],
        neck_ignore_stages=[0, 1],
        reassemble_factors=[1, 1, 1, 0.5],
    )


class DPTNetwork(nn.Module):
    """MiDaS v3.0 DPT: image (B, 3, h, w) -> relative inverse depth (B, h, w).

    Input: RGB normalised with mean = std = 0.5, h and w multiples of 16 (the MiDaS
    pipeline gives multiples of 32). Output: what isl-org/MiDaS: midas/dpt_depth.py::
    DPTDepthModel.forward returns, non-negative, at the network input resolution.
    Submodules and parameter names are transformers' (``dpt``, ``neck``, ``head``).
    """

    def __init__(self, config: DPTVariantConfig, model: DPTForDepthEstimation | None = None):
        super().__init__()
        self.config = config
        if model is None:
            model = DPTForDepthEstimation(to_hf_config(config))
        # Patch 5: the hybrid stem's "same" padding, traceable.
        for module in model.modules():
            if isinstance(module, DynamicPad2d):
                module.compute_padding = _same_pad
        # Typed Any: transformers' own annotations do not cover the calls made below.
        self.dpt: Any = model.dpt
        self.neck: Any = model.neck
        self.head: Any = model.head

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, h, w) normalised RGB -> (B, h, w) relative inverse depth, >= 0."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"DPT expects images (B, 3, h, w), got {tuple(x.shape)}.")
        height, width = x.shape[-2:]
        patch = self.config.patch_size
        if height % patch or width % patch:
            raise ValueError(f"DPT input sides must be multiples of {patch}, got {height}x{width}.")
        features = self._encode(x, height // patch, width // patch)
        features = [conv(f) for conv, f in zip(self.neck.convs, features, strict=True)]
        fused = self._fuse(features)
        return self.head.head(fused).squeeze(1)

    def _encode(self, x: Tensor, grid_h: int, grid_w: int) -> list[Tensor]:
        """Four reassembled maps at 1/4, 1/8, 1/16, 1/32 (MiDaS ``forward_vit``)."""
        cfg = self.config
        if cfg.hybrid:
            # Patch 3: MiDaS resizes the position embedding for any input size.
            embedded = self.dpt.embeddings(x, interpolate_pos_encoding=True)
        else:
            embedded = self.dpt.embeddings(x)
        tokens = embedded.last_hidden_states  # (B, 1 + grid_h * grid_w, D)
        hooked: list[Tensor] = []
        last = cfg.vit_hooks[-1]
        for index, block in enumerate(self.dpt.encoder.layer[: last + 1]):
            tokens = block(tokens)
            if index in cfg.vit_hooks:
                hooked.append(tokens)
        # The hybrid's first two levels are ResNet stage outputs (B, C, h/4 | h/8, ...).
        stages = list(embedded.intermediate_activations) if cfg.hybrid else []
        # Patch 2: reassemble on the real (grid_h, grid_w) grid, not a square one.
        return self.neck.reassemble_stage(stages + hooked, grid_h, grid_w)

    def _fuse(self, features: list[Tensor]) -> Tensor:
        """Fusion from coarse to fine; the finest output is at 1/2 resolution.

        Patch 4: each block's output is resized to the next finer map's size, as in
        isl-org/MiDaS: midas/dpt_depth.py::DPT.forward (``size=layer_{k}_rn.shape[2:]``);
        the last block upsamples x2. ``fusion_stage.layers[0]`` is MiDaS's refinenet4.
        """
        coarse_to_fine = features[::-1]
        path = coarse_to_fine[0]
        for level, layer in enumerate(self.neck.fusion_stage.layers):
            if level > 0:
                path = path + layer.residual_layer1(coarse_to_fine[level])
            path = layer.residual_layer2(path)
            if level + 1 < len(coarse_to_fine):
                size = coarse_to_fine[level + 1].shape[-2:]
                path = F.interpolate(path, size=size, mode="bilinear", align_corners=True)
            else:
                path = F.interpolate(path, scale_factor=2, mode="bilinear", align_corners=True)
            path = layer.projection(path)
        return path


def _same_pad(size: int, kernel: int, stride: int, dilation: int) -> int:
    """TF-SAME total padding of one side, as BiT's ``DynamicPad2d.compute_padding``,
    with ``-(-size // stride)`` for its ``math.ceil(size / stride)`` so that a traced
    ``size`` stays a tensor."""
    return max((-(-size // stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)


def build_network(config: DPTVariantConfig) -> DPTNetwork:
    """A randomly initialised DPT network of ``config``; nothing is downloaded."""
    return DPTNetwork(config)


# timm's ImageNet classifier, present in the official checkpoints, unused by DPT.
TIMM_HEAD_KEYS = ("pretrained.model.head.weight", "pretrained.model.head.bias")


def official_key_map(config: DPTVariantConfig) -> dict[str, tuple[str, ...]]:
    """Official MiDaS key -> our key(s), in the official state-dict order.

    One target is a rename; three targets split a fused timm ``attn.qkv`` into
    query, key and value (equal row blocks, in that order); no target drops the key
    (the timm classifier ``pretrained.model.head.*``). Renames follow transformers'
    convert_dpt_to_pytorch.py::rename_key and convert_dpt_hybrid_to_pytorch.py.
    """
    table: dict[str, tuple[str, ...]] = {}

    def add(official: str, ours: str, params: tuple[str, ...] = ("weight", "bias")) -> None:
        for param in params:
            table[f"{official}.{param}"] = (f"{ours}.{param}",)

    vit = "pretrained.model"
    table[f"{vit}.cls_token"] = ("dpt.embeddings.cls_token",)
    table[f"{vit}.pos_embed"] = ("dpt.embeddings.position_embeddings",)
    if config.hybrid:
        resnet, bit = f"{vit}.patch_embed.backbone", "dpt.embeddings.backbone.bit"
        add(f"{resnet}.stem.conv", f"{bit}.embedder.convolution", ("weight",))
        add(f"{resnet}.stem.norm", f"{bit}.embedder.norm")
        for stage, depth in enumerate(config.resnet_depths):
            for block in range(depth):
                src = f"{resnet}.stages.{stage}.blocks.{block}"
                dst = f"{bit}.encoder.stages.{stage}.layers.{block}"
                parts = ["downsample.conv", "downsample.norm"] if block == 0 else []
                for part in [*parts, "conv1", "norm1", "conv2", "norm2", "conv3", "norm3"]:
                    params = ("weight",) if part.rsplit(".", 1)[-1].startswith("conv") else None
                    add(f"{src}.{part}", f"{dst}.{part}", params or ("weight", "bias"))
        add(f"{vit}.patch_embed.proj", "dpt.embeddings.projection")
    else:
        add(f"{vit}.patch_embed.proj", "dpt.embeddings.patch_embeddings.projection")
    for i in range(config.num_layers):
        src, dst = f"{vit}.blocks.{i}", f"dpt.encoder.layer.{i}"
        add(f"{src}.norm1", f"{dst}.layernorm_before")
        for param in ("weight", "bias"):
            table[f"{src}.attn.qkv.{param}"] = tuple(
                f"{dst}.attention.attention.{part}.{param}" for part in ("query", "key", "value")
            )
        add(f"{src}.attn.proj", f"{dst}.attention.output.dense")
        add(f"{src}.norm2", f"{dst}.layernorm_after")
        add(f"{src}.mlp.fc1", f"{dst}.intermediate.dense")
        add(f"{src}.mlp.fc2", f"{dst}.output.dense")
    add(f"{vit}.norm", "dpt.layernorm")
    for key in TIMM_HEAD_KEYS:
        table[key] = ()
    # Reassemble: act_postprocess{k} = [readout, Transpose, Unflatten, 1x1 conv, resample]
    # (midas/backbones/utils.py::make_backbone_default); the hybrid's levels 1-2 have no
    # keys and level 3 no resample (midas/backbones/vit.py::_make_vit_b_rn50_backbone).
    reassemble = "neck.reassemble_stage"
    for k in range(3 if config.hybrid else 1, 5):
        src = f"pretrained.act_postprocess{k}"
        if config.readout == "project":
            add(f"{src}.0.project.0", f"{reassemble}.readout_projects.{k - 1}.0")
        add(f"{src}.3", f"{reassemble}.layers.{k - 1}.projection")
        if k != 3:
            add(f"{src}.4", f"{reassemble}.layers.{k - 1}.resize")
    for k in range(1, 5):
        add(f"scratch.layer{k}_rn", f"neck.convs.{k - 1}", ("weight",))
    for k in range(1, 5):
        src, dst = f"scratch.refinenet{k}", f"neck.fusion_stage.layers.{4 - k}"
        add(f"{src}.out_conv", f"{dst}.projection")
        for unit in (1, 2):
            for conv in (1, 2):
                add(
                    f"{src}.resConfUnit{unit}.conv{conv}",
                    f"{dst}.residual_layer{unit}.convolution{conv}",
                )
    for index in (0, 2, 4):
        add(f"scratch.output_conv.{index}", f"head.head.{index}")
    return table


def convert_official_state_dict(
    state_dict: Mapping[str, Any], config: DPTVariantConfig
) -> dict[str, Tensor]:
    """Official ``dpt_large_384.pt`` / ``dpt_hybrid_384.pt`` keys -> ``DPTNetwork`` keys.

    Accepts the plain state dict or the training container ``{"model": ...,
    "optimizer": ...}`` (isl-org/MiDaS: midas/base_model.py::BaseModel.load). The timm
    classifier is dropped; keys the table does not know are passed through unchanged, so
    the strict loader names them.
    """
    if "optimizer" in state_dict and "model" in state_dict:
        state_dict = state_dict["model"]
    key_map = official_key_map(config)
    converted: dict[str, Tensor] = {}
    for name, tensor in state_dict.items():
        targets = key_map.get(name, (name,))
        if len(targets) == 1:
            converted[targets[0]] = tensor
        elif targets:  # fused qkv: rows [q; k; v]; cloned so no two keys share storage
            for target, part in zip(targets, tensor.chunk(len(targets), dim=0), strict=True):
                converted[target] = part.clone()
    return converted


def network_from_hf_folder(folder: Path, config: DPTVariantConfig) -> DPTNetwork:
    """Load a transformers DPT folder (``Intel/dpt-large``, ``Intel/dpt-hybrid-midas``).

    The folder's ``config.json`` must describe ``config``'s architecture (sizes, heads,
    hooked blocks, readout), else WeightsError; the network itself is built from
    ``config``, so the official LayerNorm eps (1e-6) is used (patch 1 in the module
    docstring). Any missing, unexpected or mis-shaped tensor raises WeightsError.
    """
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise WeightsError(f"{folder} is not a Hugging Face model folder (no config.json).")
    found = _architecture(DPTConfig.from_pretrained(str(folder), local_files_only=True))
    wanted = _architecture(to_hf_config(config))
    if found != wanted:
        differing = ", ".join(
            f"{key} {found[key]} != {wanted[key]}" for key in wanted if found[key] != wanted[key]
        )
        raise WeightsError(
            f"{folder} holds a different DPT than {_config_name(config)} ({differing})."
        )
    loaded: Any = DPTForDepthEstimation.from_pretrained(
        str(folder),
        config=to_hf_config(config),
        output_loading_info=True,
        local_files_only=True,
        ignore_mismatched_sizes=True,  # reported below instead of raised half-way
        dtype=torch.float32,
    )
    model, info = loaded
    problems = []
    for field, label in (
        ("missing_keys", "missing"),
        ("unexpected_keys", "unexpected"),
        ("mismatched_keys", "wrong shape"),
    ):
        keys = sorted(str(key) for key in info.get(field) or ())
        if keys:
            shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise WeightsError(
            f"Weights in {folder} do not fit the {_config_name(config)} network "
            f"({'; '.join(problems)})."
        )
    return DPTNetwork(config, model)


def _architecture(hf_config: DPTConfig) -> dict[str, Any]:
    """The fields of a transformers DPT config that decide the network's numbers.

    The hybrid's first two ``backbone_out_indices`` are unused by transformers and by
    MiDaS (the ResNet stages are fixed), and the Hub config leaves them at 2, 5.
    """
    hybrid = bool(hf_config.is_hybrid)
    hooks = list(hf_config.backbone_out_indices or [])
    fields = {
        "hybrid": hybrid,
        "hooks": hooks[2:] if hybrid else hooks,
        "neck_sizes": list(hf_config.neck_hidden_sizes),
    }
    for name in (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "fusion_hidden_size",
        "readout_type",
        "patch_size",
    ):
        fields[name] = getattr(hf_config, name)
    return fields


def _config_name(config: DPTVariantConfig) -> str:
    """The preset name of ``config``, or ``"custom"``."""
    return next((name for name, preset in PRESETS.items() if preset == config), "custom")
