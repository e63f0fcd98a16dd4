"""Prompt Depth Anything: Depth Anything V2 with a low-resolution metric depth prompt.

Paper: Lin et al., "Prompting Depth Anything for 4K Resolution Accurate Metric Depth
Estimation", CVPR 2025. An RGB image plus a coarse metric depth map (an iPhone LiDAR
frame, 256 x 192) gives full-resolution depth in meters. One family, one file: the
config, the presets, the network (transformers' ``PromptDepthAnythingForDepthEstimation``
with the official DINOv2 position-embedding interpolation), the official-checkpoint
converter and the estimator hooks.

Upstream sources:
- DepthAnything/PromptDA @ b05523c: promptda/promptda.py (``PromptDA``: ImageNet mean/std
  inside the model, ``normalize``: per-image min/max of the prompt (quantiles 0 and 1),
  ``denormalize``: output x (max - min) + min), promptda/model/config.py
  (``model_configs``: features, out_channels, ``layer_idxs``), promptda/model/dpt.py and
  blocks.py (the DPT head whose four fusion blocks each add a 3-conv embedding of the
  prompt, bilinearly resized, align_corners=False, to the block's resolution; Sigmoid
  output), promptda/utils/io_wrapper.py (``load_image``: /255 in float32; if the longest
  side exceeds ``max_size`` = 1008, scale it to 1008 and floor each side to a multiple
  of 14, cv2 INTER_AREA; ``load_depth``: 16-bit PNG / 1000, or an NPZ's ``depth``).
- transformers: models/prompt_depth_anything/modeling_prompt_depth_anything.py and
  convert_prompt_depth_anything_to_hf.py (key renames: ``resConfUnit_depth.{0,2,4}`` ->
  ``prompt_depth_layer.convolution{1,2,3}``; out_indices = layer_idxs + 1).

Deviations, both where the official code has no answer: an image whose longest side is
at most ``max_size`` is fed unresized upstream, which fails unless both sides are
multiples of 14; here its sides are floored to multiples of 14 (INTER_AREA) as the large
images' are. Upstream returns depth at the network input size; here it is resized back
to the image size bilinearly (align_corners=False), as transformers'
``post_process_depth_estimation`` does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import (
    Dinov2Config,
    PromptDepthAnythingConfig,
    PromptDepthAnythingForDepthEstimation,
)

from depthlens.errors import UsageError
from depthlens.models import depth_anything
from depthlens.models.convert import check_loading_info
from depthlens.models.depth_anything import (
    LAYER_NORM_EPS,
    PATCH_SIZE,
    PRETRAIN_IMAGE_SIZE,
    OfficialDinov2Embeddings,
)
from depthlens.models.hooks import Finished, Prepared, as_float32
from depthlens.models.spec import IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:
    from depthlens.io.images import Image
    from depthlens.models.spec import ModelSpec

# io_wrapper.py::load_image's default longest side (infer_stray_scan.py uses the same).
MAX_SIZE = 1008

# Prefix of the wrapped transformers model inside ``PromptDepthAnythingNetwork.state_dict()``
# (the same as depth_anything.py's, whose converter this family reuses).
_PREFIX = "model."


@dataclass(frozen=True)
class PDAConfig:
    """Architecture of one Prompt Depth Anything network (promptda/model/config.py).

    ``hooked_blocks`` are the official ``layer_idxs`` (0-based encoder blocks feeding the
    DPT head); ``max_size`` the longest side of the network input (``load_image``).
    """

    width: int = 384
    depth: int = 12
    heads: int = 6
    features: int = 64
    out_channels: tuple[int, int, int, int] = (48, 96, 192, 384)
    hooked_blocks: tuple[int, int, int, int] = (2, 5, 8, 11)
    mlp_ratio: int = 4
    head_hidden: int = 32  # DPTHead's head_features_2
    image_size: int = PRETRAIN_IMAGE_SIZE  # the position-embedding grid (37 x 37)
    max_size: int = MAX_SIZE

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"Width {self.width} is not divisible by {self.heads} heads.")
        if not all(0 <= b < self.depth for b in self.hooked_blocks):
            raise ValueError(f"Hooked blocks {self.hooked_blocks} must lie in [0, {self.depth}).")
        if self.max_size < PATCH_SIZE:
            raise ValueError(f"max_size must be at least {PATCH_SIZE}, not {self.max_size}.")


# promptda/model/config.py::model_configs (vits, vitl: the released sizes); ViT widths,
# depths and heads of DINOv2 ViT-S/14 and ViT-L/14.
PRESETS: dict[str, PDAConfig] = {
    "vits": PDAConfig(),
    "vitl": PDAConfig(
        width=1024,
        depth=24,
        heads=16,
        features=256,
        out_channels=(256, 512, 1024, 1024),
        hooked_blocks=(4, 11, 17, 23),
    ),
}


def _hf_config(config: PDAConfig) -> PromptDepthAnythingConfig:
    """transformers' config of ``config`` (convert_prompt_depth_anything_to_hf.py)."""
    backbone_kwargs: dict[str, Any] = dict(
        image_size=config.image_size,
        patch_size=PATCH_SIZE,
        hidden_size=config.width,
        num_hidden_layers=config.depth,
        num_attention_heads=config.heads,
        mlp_ratio=config.mlp_ratio,
        layer_norm_eps=LAYER_NORM_EPS,
        qkv_bias=True,
        layerscale_value=1.0,
        out_indices=[b + 1 for b in config.hooked_blocks],
        apply_layernorm=True,
        reshape_hidden_states=False,
        use_mask_token=False,
    )
    return PromptDepthAnythingConfig(
        backbone_config=Dinov2Config(**backbone_kwargs),
        patch_size=PATCH_SIZE,
        reassemble_hidden_size=config.width,
        reassemble_factors=[4, 2, 1, 0.5],
        neck_hidden_sizes=list(config.out_channels),
        fusion_hidden_size=config.features,
        head_hidden_size=config.head_hidden,
        depth_estimation_type="metric",  # a Sigmoid; the head applies no max_depth
    )


class PromptDepthAnythingNetwork(nn.Module):
    """(B, 3, h, w) ImageNet-normalised image, (B, 1, hp, wp) prompt depth in meters ->
    (B, h, w) depth in meters.

    h and w must be multiples of 14; the prompt may have any size (each fusion block
    resizes it). As ``PromptDA.forward``: the prompt is scaled to [0, 1] by its own
    minimum and maximum (every pixel counts, zeros included), and the Sigmoid output is
    scaled back to [min, max].
    """

    def __init__(self, config: PDAConfig) -> None:
        super().__init__()
        self.config = config
        self.model = PromptDepthAnythingForDepthEstimation(_hf_config(config))
        backbone: Any = self.model.backbone
        backbone.embeddings = OfficialDinov2Embeddings(backbone.config)

    def forward(self, x: Tensor, prompt_depth: Tensor) -> Tensor:
        """See the class docstring."""
        height, width = x.shape[-2:]
        if height % PATCH_SIZE or width % PATCH_SIZE:
            raise ValueError(f"Input size {height}x{width} is not a multiple of {PATCH_SIZE}.")
        flat = prompt_depth.flatten(1)
        low = flat.amin(dim=1).view(-1, 1, 1, 1)
        high = flat.amax(dim=1).view(-1, 1, 1, 1)
        prompt = (prompt_depth - low) / (high - low)
        model: Any = self.model
        features = model.backbone(x).feature_maps
        hidden = model.neck(
            features, height // PATCH_SIZE, width // PATCH_SIZE, prompt_depth=prompt
        )
        depth = model.head(hidden, height // PATCH_SIZE, width // PATCH_SIZE)
        return depth * (high - low)[:, 0] + low[:, 0]


def build_network(config: PDAConfig) -> PromptDepthAnythingNetwork:
    """A randomly initialised network of ``config`` (nothing is downloaded)."""
    return PromptDepthAnythingNetwork(config)


# --------------------------------------------------------------------------------------
# Official checkpoints -> our keys
# --------------------------------------------------------------------------------------

# The official ``model.ckpt`` is a Lightning checkpoint whose ``state_dict`` keys carry a
# 9-character prefix in front of the module names (PromptDA.load_checkpoint and the
# transformers converter both drop ``k[:9]``); the prefix is found here by where the
# module names start, so the bare ``pretrained.*`` / ``depth_head.*`` layout loads too.
_MODULE_START = re.compile(r"(?:^|\.)(pretrained|depth_head)\.")
# The prompt-embedding convs of each fusion block (blocks.py: ``resConfUnit_depth`` =
# Conv, ReLU, Conv, ReLU, Conv) -> transformers' ``prompt_depth_layer``; refinenet k is
# fusion layer 4 - k, as for Depth Anything.
_PROMPT_CONV = re.compile(
    r"depth_head\.scratch\.refinenet([1-4])\.resConfUnit_depth\.([024])\.(weight|bias)"
)
_PROMPT_CONV_INDEX = {"0": 1, "2": 2, "4": 3}
# PromptDA registers the ImageNet mean and std as (persistent) buffers, so they are in
# its state dict; here they are the constants of ``preprocess``.
_NORMALISATION_BUFFERS = re.compile(r"(?:^|.*\.)_(mean|std)")


def strip_checkpoint_prefix(key: str) -> str:
    """``key`` from ``pretrained.`` or ``depth_head.`` on; unchanged if neither occurs."""
    match = _MODULE_START.search(key)
    if match is None:
        return key
    return key[match.start(1) :]


def convert_official_state_dict(
    state_dict: Mapping[str, Tensor], config: PDAConfig
) -> dict[str, Tensor]:
    """Official ``model.ckpt`` tensors -> keys of ``build_network(config).state_dict()``.

    The Lightning prefix and the ``_mean``/``_std`` buffers are dropped
    (``strip_checkpoint_prefix``, ``_NORMALISATION_BUFFERS``); the prompt convs are
    renamed by ``_PROMPT_CONV``; everything else is the Depth Anything V2 layout and goes
    through ``depth_anything.convert_official_state_dict`` (qkv split, refinenet order,
    ``pretrained.mask_token`` dropped). Unknown keys keep their names so that a strict
    load reports them.
    """
    del config  # one layout for every size
    rest: dict[str, Tensor] = {}
    converted: dict[str, Tensor] = {}
    for key, tensor in state_dict.items():
        if _NORMALISATION_BUFFERS.fullmatch(key):
            continue
        name = strip_checkpoint_prefix(key)
        if match := _PROMPT_CONV.fullmatch(name):
            k, index, leaf = match.groups()
            layer = f"{_PREFIX}neck.fusion_stage.layers.{4 - int(k)}"
            converted[
                f"{layer}.prompt_depth_layer.convolution{_PROMPT_CONV_INDEX[index]}.{leaf}"
            ] = tensor
        else:
            rest[name] = tensor
    converted.update(depth_anything.convert_official_state_dict(rest, depth_anything.DAConfig()))
    return converted


# --------------------------------------------------------------------------------------
# Hugging Face transformers folders
# --------------------------------------------------------------------------------------


def network_from_hf_folder(folder: Path, config: PDAConfig) -> PromptDepthAnythingNetwork:
    """A transformers-format folder (``depth-anything/prompt-depth-anything-vit{s,l}-hf``)
    loaded into our network; its architecture must be ``config``'s, else ValueError."""
    loaded: Any = PromptDepthAnythingForDepthEstimation.from_pretrained(
        str(folder), output_loading_info=True, local_files_only=True
    )
    hf_model, info = loaded
    backbone: Any = hf_model.config.backbone_config
    found = (
        backbone.hidden_size,
        backbone.num_hidden_layers,
        tuple(i - 1 for i in backbone.out_indices),
        hf_model.config.fusion_hidden_size,
    )
    wanted = (config.width, config.depth, config.hooked_blocks, config.features)
    if found != wanted:
        raise ValueError(f"{folder} holds a model of (width, depth, blocks, features) {found}")
    check_loading_info(info, folder, "Prompt Depth Anything", ignore="mask_token")
    network = build_network(config)
    state = {
        _PREFIX + key: tensor
        for key, tensor in hf_model.state_dict().items()
        if key != "backbone.embeddings.mask_token"
    }
    network.load_state_dict(state, strict=True)
    return network


# --------------------------------------------------------------------------------------
# Pre- and post-processing
# --------------------------------------------------------------------------------------


def network_input_size(height: int, width: int, max_size: int = MAX_SIZE) -> tuple[int, int]:
    """(h, w) of the network input for an (height, width) image (``load_image``).

    Longer side above ``max_size`` (floored to a multiple of 14): both sides scaled by
    ``max_size / longest`` and floored to multiples of 14. Otherwise the sides are only
    floored to multiples of 14 (upstream leaves them, and fails unless they are
    multiples already); never below 14.
    """
    limit = max_size // PATCH_SIZE * PATCH_SIZE
    scale = limit / max(height, width) if max(height, width) > limit else 1.0
    net_h = int(height * scale // PATCH_SIZE * PATCH_SIZE)
    net_w = int(width * scale // PATCH_SIZE * PATCH_SIZE)
    return max(net_h, PATCH_SIZE), max(net_w, PATCH_SIZE)


def preprocess(rgb: np.ndarray, max_size: int = MAX_SIZE) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, h, w) float32 ImageNet-normalised network input.

    ``/ 255`` in float32, cv2 INTER_AREA to ``network_input_size`` (``load_image``), then
    ``(x - mean) / std`` in float32 (``PromptDA.forward``).
    """
    height, width = rgb.shape[:2]
    net_h, net_w = network_input_size(height, width, max_size)
    image: np.ndarray = rgb.astype(np.float32) / np.float32(255.0)
    if (net_h, net_w) != (height, width):
        image = cv2.resize(image, (net_w, net_h), interpolation=cv2.INTER_AREA)
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
    std = np.asarray(IMAGENET_STD, dtype=np.float32)
    image = (image - mean) / std
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)


class PromptDepthAnythingHooks:
    """``prepare``: the image as ``load_image`` + the model's normalisation, and the
    image's prompt depth (meters, checked when it was attached) as the second input;
    ``finish``: the network's meters resized bilinearly to the image size."""

    preprocessing = "resize"  # recorded in ONNX exports (backends/export.py)

    def prepare(self, image: Image, spec: ModelSpec) -> Prepared[None]:
        prompt = image.prompt_depth
        if prompt is None:
            raise UsageError(
                f"{spec.name} needs a prompt depth for {image.source}: pass --prompt-depth "
                "(a 16-bit PNG in millimetres or an NPY in meters), or prompt_depth= in Python."
            )
        config = PRESETS[spec.variant]
        tensor = preprocess(image.rgb, config.max_size)
        extra = np.ascontiguousarray(prompt[None], dtype=np.float32)  # (1, hp, wp)
        return Prepared(tensor, None, extra=extra)

    def finish(
        self,
        output: Tensor,
        row: int,
        prepared: Prepared[None],
        image: Image,
        spec: ModelSpec,
    ) -> Finished:
        size = (image.height, image.width)
        depth = output[row : row + 1].float()
        if tuple(depth.shape[-2:]) != size:
            depth = F.interpolate(depth[:, None], size=size, mode="bilinear", align_corners=False)[
                :, 0
            ]
        return Finished(depth=as_float32(depth[0]), camera=image.camera_or_default)


HOOKS = PromptDepthAnythingHooks()


def parameter_count(config: PDAConfig) -> int:
    """Parameters of ``config``'s network, counted on the meta device (nothing allocated)."""
    with torch.device("meta"):
        network = build_network(config)
    return sum(math.prod(p.shape) for p in network.parameters())
