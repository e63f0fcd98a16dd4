"""Depth Pro: multi-scale DINOv2 ViT-L/16 encoders + DPT-style decoder + field-of-view head.

Paper: Bochkovskii et al., "Depth Pro: Sharp Monocular Metric Depth in Less Than a
Second", 2024 (arXiv 2410.02073). The network is transformers'
``DepthProForDepthEstimation`` (src/transformers/models/depth_pro/modeling_depth_pro.py)
with its field-of-view model on; the pre- and post-processing are written here from the
official code (apple/ml-depth-pro, commit 9efe5c1), because transformers' image
processor needs torchvision:

- network: src/depth_pro/depth_pro.py (``DepthPro``, ``create_model_and_transforms``),
  network/encoder.py (``DepthProEncoder``: a 3-level pyramid of 384-px patches),
  network/decoder.py (``MultiresConvDecoder``), network/fov.py (``FOVNetwork``),
  network/vit_factory.py (``dinov2l16_384``: timm ``vit_large_patch14_dinov2`` with a
  16-px patch at 384 px);
- transforms: depth_pro.py::create_model_and_transforms (``ToTensor`` then
  ``Normalize(0.5, 0.5)``: [-1, 1]) and ``DepthPro.infer`` (bilinear resize to the
  fixed square input, inverse depth = canonical inverse depth x width / focal, bilinear
  back to the image size, depth = 1 / clamp(inverse depth, 1e-4, 1e4)).

The network predicts a *canonical* inverse depth and the horizontal field of view (in
degrees); with the focal length f (pixels of the original image, from the photo's camera
or else from that field of view) the depth in meters follows.

Official keys (``encoder.patch_encoder.blocks.3.attn.qkv.weight``) become transformers'
keys by the explicit table in ``convert_official_state_dict``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import DepthProConfig as HFDepthProConfig
from transformers import DepthProForDepthEstimation, Dinov2Config

from depthlens.errors import WeightsError
from depthlens.geometry.camera import MAX_FOV_DEG, MIN_FOV_DEG, Camera
from depthlens.models.convert import check_loading_info
from depthlens.models.hooks import Finished, Prepared, as_float32

if TYPE_CHECKING:
    from depthlens.io.images import Image
    from depthlens.models.spec import ModelSpec

# DepthPro.infer: inverse depth is clamped to [1e-4, 1e4] before 1 / x (meters).
MIN_INVERSE_DEPTH = 1e-4
MAX_INVERSE_DEPTH = 1e4
# The official merge (network/encoder.py::DepthProEncoder.merge) crops 3 tokens of each
# 25 %-overlapping patch at the finest level and 6 of each 50 %-overlapping one at the
# middle level; those crops tile the image exactly only for a 24 x 24 token grid per patch.
TOKENS_PER_PATCH_SIDE = 24
PYRAMID_LEVELS = 4  # the input is 4 x the ViT's side (1536 = 4 x 384)

# ONNX: the trace of transformers' patch encoder freezes the batch size in its
# ``torch.split_with_sizes`` of the patch batch (35 patches per image), so an export
# fails on any other batch (ONNX Runtime: "Cannot split using values in 'split'").
TORCH_ONLY = (
    "transformers' Depth Pro splits its batch of image patches by sizes that an ONNX "
    "trace freezes at the example's batch of one."
)

# Prefix of the wrapped transformers model inside ``DepthProNetwork.state_dict()``.
_PREFIX = "model."


@dataclass(frozen=True)
class DepthProConfig:
    """Shape of a Depth Pro network; ``PRESETS["default"]`` is the released one.

    The same ViT shape serves the patch, image and field-of-view encoders
    (depth_pro.py: ``DEFAULT_MONODEPTH_CONFIG_DICT`` uses ``dinov2l16_384`` for all
    three). ``vit_side`` is the ViT's input side in pixels (a pyramid patch); the network
    input is ``4 * vit_side`` square. ``hooked_blocks`` are the official
    ``encoder_feature_layer_ids[:2]``: the patch-encoder blocks whose outputs feed the
    two finest decoder levels. ``encoder_dims`` are the official
    ``encoder_feature_dims``; the transformers layout needs ``encoder_dims[0] ==
    decoder_features`` (true of the release: 256).
    """

    vit_width: int = 1024
    vit_depth: int = 24
    vit_heads: int = 16
    vit_patch: int = 16
    vit_side: int = 384
    hooked_blocks: tuple[int, int] = (5, 11)
    encoder_dims: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    decoder_features: int = 256

    def __post_init__(self) -> None:
        if self.vit_width % self.vit_heads:
            raise ValueError(f"ViT width {self.vit_width} is not divisible by {self.vit_heads}.")
        if self.vit_side != TOKENS_PER_PATCH_SIDE * self.vit_patch:
            raise ValueError(
                f"Depth Pro's patch merge needs {TOKENS_PER_PATCH_SIDE} tokens per patch side: "
                f"vit_side must be {TOKENS_PER_PATCH_SIDE} x vit_patch, not {self.vit_side}."
            )
        if not all(0 <= b < self.vit_depth for b in self.hooked_blocks):
            raise ValueError(
                f"Hooked blocks {self.hooked_blocks} must lie in [0, {self.vit_depth})."
            )
        if self.encoder_dims[0] != self.decoder_features:
            raise ValueError("Depth Pro needs encoder_dims[0] == decoder_features.")
        if self.decoder_features < 8:
            raise ValueError("The field-of-view head needs decoder_features >= 8.")

    @property
    def image_size(self) -> int:
        """The side of the square network input, in pixels (1536 for the release)."""
        return PYRAMID_LEVELS * self.vit_side


PRESETS: dict[str, DepthProConfig] = {"default": DepthProConfig()}


class DepthProOutput(NamedTuple):
    """What the network returns for a (B, 3, S, S) input.

    ``canonical_inverse_depth``: (B, h, w), the inverse depth for a camera whose focal
    length equals the image width (1 / meters), h = w = 16 x the merged token grid (S for
    the release); ``fov_degrees``: (B,) the predicted horizontal field of view in degrees.
    """

    canonical_inverse_depth: Tensor
    fov_degrees: Tensor


def _vit_config(config: DepthProConfig) -> Dinov2Config:
    # timm's vit_large_patch14_dinov2 (LayerScale, qkv bias, MLP x 4, LayerNorm eps 1e-6);
    # the official checkpoints carry no mask_token.
    return Dinov2Config(
        hidden_size=config.vit_width,
        num_hidden_layers=config.vit_depth,
        num_attention_heads=config.vit_heads,
        patch_size=config.vit_patch,
        image_size=config.vit_side,
        mlp_ratio=4,
        layer_norm_eps=1e-6,
        qkv_bias=True,
        layerscale_value=1.0,
        use_mask_token=False,
    )


def _hf_config(config: DepthProConfig) -> HFDepthProConfig:
    """The transformers config of ``config``.

    transformers lists the pyramid coarse to fine (``scaled_images_feature_dims`` =
    official ``encoder_dims[3], [2], [1]``) and the hooked blocks deepest first.
    """
    d = config.encoder_dims
    vit = _vit_config(config)
    return HFDepthProConfig(
        patch_size=config.vit_side,
        fusion_hidden_size=config.decoder_features,
        intermediate_hook_ids=[config.hooked_blocks[1], config.hooked_blocks[0]],
        intermediate_feature_dims=[d[0], config.decoder_features],
        scaled_images_ratios=[0.25, 0.5, 1],
        scaled_images_overlap_ratios=[0.0, 0.5, 0.25],
        scaled_images_feature_dims=[d[3], d[2], d[1]],
        merge_padding_value=3,
        use_fov_model=True,
        image_model_config=vit,
        patch_model_config=_vit_config(config),
        fov_model_config=_vit_config(config),
    )


def _config_of_hf(hf: HFDepthProConfig) -> DepthProConfig:
    """Our config of a transformers Depth Pro config (a Hub folder's)."""
    vit: Any = hf.patch_model_config
    hooks = list(hf.intermediate_hook_ids)
    dims = list(hf.scaled_images_feature_dims)
    if len(hooks) != 2 or len(dims) != 3 or list(hf.scaled_images_ratios) != [0.25, 0.5, 1]:
        raise ValueError("it is not laid out as the released Depth Pro (3 levels, 2 hooks)")
    return DepthProConfig(
        vit_width=vit.hidden_size,
        vit_depth=vit.num_hidden_layers,
        vit_heads=vit.num_attention_heads,
        vit_patch=vit.patch_size,
        vit_side=vit.image_size,
        hooked_blocks=(hooks[1], hooks[0]),
        encoder_dims=(hf.intermediate_feature_dims[0], dims[2], dims[1], dims[0]),
        decoder_features=hf.fusion_hidden_size,
    )


class DepthProNetwork(nn.Module):
    """Depth Pro: (B, 3, S, S) image in [-1, 1], S = ``config.image_size`` ->
    ``DepthProOutput`` (canonical inverse depth, field of view in degrees)."""

    def __init__(
        self, config: DepthProConfig, model: DepthProForDepthEstimation | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.model = model or DepthProForDepthEstimation(_hf_config(config), use_fov_model=True)

    def forward(self, image: Tensor) -> DepthProOutput:
        size = self.config.image_size
        if not torch.jit.is_tracing() and tuple(image.shape[-2:]) != (size, size):
            raise ValueError(
                f"Depth Pro takes {size}x{size} inputs, not {tuple(image.shape[-2:])}."
            )
        out = self.model(pixel_values=image, return_dict=True)
        return DepthProOutput(out.predicted_depth, out.field_of_view)


def build_network(config: DepthProConfig) -> DepthProNetwork:
    """A randomly initialised network of ``config`` (nothing is downloaded)."""
    return DepthProNetwork(config)


# --------------------------------------------------------------------------------------
# Official checkpoints -> our keys
# --------------------------------------------------------------------------------------

_DP = _PREFIX + "depth_pro."
_UP = _DP + "neck.feature_upsample."
_FUSION = _PREFIX + "fusion_stage."
_FOV = _PREFIX + "fov_model."

# The three ViTs: official prefix -> ours.
_VITS = {
    "encoder.patch_encoder.": _DP + "encoder.patch_encoder.model.",
    "encoder.image_encoder.": _DP + "encoder.image_encoder.model.",
    "fov.encoder.0.": _FOV + "fov_encoder.model.",
}
# Inside a ViT (timm VisionTransformer -> transformers Dinov2Model).
_VIT_RENAMES: list[tuple[str, str]] = [
    (r"cls_token", "embeddings.cls_token"),
    (r"pos_embed", "embeddings.position_embeddings"),
    (r"patch_embed\.proj\.(weight|bias)", r"embeddings.patch_embeddings.projection.\1"),
    (r"blocks\.(\d+)\.norm([12])\.(weight|bias)", r"encoder.layer.\1.norm\2.\3"),
    (r"blocks\.(\d+)\.attn\.proj\.(weight|bias)", r"encoder.layer.\1.attention.o_proj.\2"),
    (r"blocks\.(\d+)\.ls([12])\.gamma", r"encoder.layer.\1.layer_scale\2.lambda1"),
    (r"blocks\.(\d+)\.mlp\.fc([12])\.(weight|bias)", r"encoder.layer.\1.mlp.fc\2.\3"),
    (r"norm\.(weight|bias)", r"layernorm.\1"),
]
_QKV = re.compile(r"blocks\.(\d+)\.attn\.qkv\.(weight|bias)")

# Everything else (full match). The official encoder's upsample blocks per pyramid level
# (upsample2/1/0: 1/4, 1/2, full resolution) are transformers' scaled_images 0/1/2; its
# latent blocks (latent1: the deeper hook, latent0: the shallower) intermediate 0/1.
# Decoder level i (0 finest) is transformers' projection 4 - i and fusion layer 4 - i
# (``final`` for level 0): transformers fuses from the coarsest map.
_RENAMES: list[tuple[str, str]] = [
    (r"encoder\.upsample_lowres\.(weight|bias)", _UP + r"image_block.layers.0.\1"),
    (r"encoder\.upsample2\.(\d)\.weight", _UP + r"scaled_images.0.layers.\1.weight"),
    (r"encoder\.upsample1\.(\d)\.weight", _UP + r"scaled_images.1.layers.\1.weight"),
    (r"encoder\.upsample0\.(\d)\.weight", _UP + r"scaled_images.2.layers.\1.weight"),
    (r"encoder\.upsample_latent1\.(\d)\.weight", _UP + r"intermediate.0.layers.\1.weight"),
    (r"encoder\.upsample_latent0\.(\d)\.weight", _UP + r"intermediate.1.layers.\1.weight"),
    (r"encoder\.fuse_lowres\.(weight|bias)", _DP + r"neck.fuse_image_with_low_res.\1"),
    (r"head\.([0-4])\.(weight|bias)", _PREFIX + r"head.layers.\1.\2"),
    (r"fov\.encoder\.1\.(weight|bias)", _FOV + r"fov_encoder.neck.\1"),
    (r"fov\.downsample\.0\.(weight|bias)", _FOV + r"conv.\1"),
    (r"fov\.head\.([0-4])\.(weight|bias)", _FOV + r"head.layers.\1.\2"),
]
_DECODER_CONV = re.compile(r"decoder\.convs\.([1-4])\.weight")
_FUSION_KEY = re.compile(
    r"decoder\.fusions\.([0-4])\.(out_conv|deconv|resnet([12])\.residual\.([13]))\.(weight|bias)"
)


def convert_official_state_dict(
    state_dict: Mapping[str, Tensor], config: DepthProConfig | None = None
) -> dict[str, Tensor]:
    """Official ``depth_pro.pt`` keys -> keys of ``build_network(config).state_dict()``.

    ``attn.qkv`` [3D, D] is split into query, key and value rows, in that order (timm's
    ``Attention`` reshapes it to (3, heads, D / heads)). Keys that match no rule keep
    their name, so that a strict load reports them. The layout does not depend on
    ``config``.
    """
    del config
    converted: dict[str, Tensor] = {}
    for key, tensor in state_dict.items():
        vit = next((prefix for prefix in _VITS if key.startswith(prefix)), None)
        if vit is None:
            converted[_rename(key)] = tensor
            continue
        inner, target = key[len(vit) :], _VITS[vit]
        if match := _QKV.fullmatch(inner):
            block, leaf = match.groups()
            for name, part in zip(("q", "k", "v"), tensor.chunk(3, dim=0), strict=True):
                converted[f"{target}encoder.layer.{block}.attention.{name}_proj.{leaf}"] = part
            continue
        for pattern, repl in _VIT_RENAMES:
            if re.fullmatch(pattern, inner):
                converted[target + re.sub(pattern, repl, inner)] = tensor
                break
        else:
            converted[key] = tensor
    return converted


def _rename(key: str) -> str:
    """Our name of one official non-ViT key, or ``key`` itself if no rule matches."""
    if match := _DECODER_CONV.fullmatch(key):
        return f"{_DP}neck.feature_projection.projections.{4 - int(match.group(1))}.weight"
    if match := _FUSION_KEY.fullmatch(key):
        level, part, unit, conv, leaf = match.groups()
        layer = f"{_FUSION}final" if level == "0" else f"{_FUSION}intermediate.{4 - int(level)}"
        if part == "out_conv":
            return f"{layer}.projection.{leaf}"
        if part == "deconv":
            return f"{layer}.deconv.{leaf}"
        return f"{layer}.residual_layer{unit}.convolution{1 if conv == '1' else 2}.{leaf}"
    for pattern, target in _RENAMES:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, target, key)
    return key


def config_for_state_dict(
    state_dict: Mapping[str, Tensor], config: DepthProConfig
) -> DepthProConfig:
    """``config`` with the shapes read from a (official or converted) state dict.

    Lets a checkpoint of another size load under the zoo name (tests use tiny ones). The
    head count is not stored: 64-wide heads are assumed, as in ViT-L. Nor are the hooked
    blocks: a shallower ViT hooks the blocks at the preset's relative depth (rounded down).
    """
    sd = dict(state_dict)
    if not any(k.startswith(_PREFIX) for k in sd):
        sd = convert_official_state_dict(sd)
    vit = _DP + "encoder.patch_encoder.model."
    try:
        width = sd[vit + "embeddings.cls_token"].shape[-1]
        patch = sd[vit + "embeddings.patch_embeddings.projection.weight"].shape[-1]
        tokens = sd[vit + "embeddings.position_embeddings"].shape[1] - 1
        up = _UP + "scaled_images.{}.layers.0.weight"
        dims = (
            sd[_UP + "intermediate.0.layers.0.weight"].shape[0],
            sd[up.format(2)].shape[0],
            sd[up.format(1)].shape[0],
            sd[up.format(0)].shape[0],
        )
        features = sd[_FUSION + "final.projection.weight"].shape[0]
    except KeyError as exc:
        raise WeightsError(f"Not a Depth Pro checkpoint: it has no {exc} tensor.") from None
    layer = vit + "encoder.layer."
    depth = len({k[len(layer) :].split(".")[0] for k in sd if k.startswith(layer)})
    same = (
        width == config.vit_width
        and depth == config.vit_depth
        and patch == config.vit_patch
        and dims == config.encoder_dims
        and features == config.decoder_features
    )
    if same:
        return config
    first, second = config.hooked_blocks
    try:
        return replace(
            config,
            vit_width=width,
            vit_depth=depth,
            vit_heads=max(1, width // 64),
            vit_patch=patch,
            vit_side=math.isqrt(tokens) * patch,
            hooked_blocks=(first * depth // config.vit_depth, second * depth // config.vit_depth),
            encoder_dims=dims,
            decoder_features=features,
        )
    except ValueError as exc:
        raise WeightsError(f"Not a Depth Pro checkpoint this network can take: {exc}") from None


# --------------------------------------------------------------------------------------
# Hugging Face transformers folders
# --------------------------------------------------------------------------------------


def network_from_hf_folder(folder: Path, config: DepthProConfig) -> DepthProNetwork:
    """Load a transformers-format folder (config.json + model.safetensors, as the Hub's
    ``apple/DepthPro-hf``) into our network, strictly.

    transformers reads the folder (renaming older key names on load); its config.json
    gives the shape, as ``config_for_state_dict`` reads an official checkpoint's, so
    ``config`` only names the zoo row. The field-of-view model must be in the weights.
    Missing, unexpected or misshapen tensors raise ValueError.
    """
    del config
    loaded: Any = DepthProForDepthEstimation.from_pretrained(
        str(folder), output_loading_info=True, local_files_only=True, use_fov_model=True
    )
    hf_model, info = loaded
    check_loading_info(info, folder, "Depth Pro")
    return DepthProNetwork(_config_of_hf(hf_model.config), model=hf_model.float().eval())


# --------------------------------------------------------------------------------------
# Pre- and post-processing (DepthPro.infer)
# --------------------------------------------------------------------------------------


def preprocess(rgb: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, size, size) float32 in [-1, 1].

    As the official transform and ``infer``: ``/ 255`` in float32, ``(x - 0.5) / 0.5``,
    then a bilinear resize (align_corners=False, no antialias) of the normalised image to
    the fixed square input, whatever the aspect ratio.
    """
    image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div(255)
    image = image.sub(0.5).div(0.5)
    if tuple(image.shape[-2:]) != (size, size):
        image = F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False)[
            0
        ]
    return image.numpy()


def focal_from_fov(fov_degrees: Tensor, width: int) -> Tensor:
    """Focal length in pixels of an image ``width`` px wide seeing ``fov_degrees`` across:
    ``0.5 * width / tan(fov / 2)`` (DepthPro.infer)."""
    return 0.5 * width / torch.tan(0.5 * torch.deg2rad(fov_degrees.float()))


def canonical_to_depth(
    canonical_inverse_depth: Tensor, focal_px: float | Tensor, size: tuple[int, int]
) -> Tensor:
    """(B, h, w) canonical inverse depth -> (B, H, W) depth in meters.

    inverse depth = canonical x W / f (W the image width, f its focal length in pixels),
    resized bilinearly (align_corners=False) to ``size`` = (H, W), then
    depth = 1 / clamp(inverse depth, 1e-4, 1e4): DepthPro.infer.
    """
    inverse = canonical_inverse_depth * (size[1] / focal_px)
    if tuple(inverse.shape[-2:]) != size:
        inverse = F.interpolate(inverse[:, None], size=size, mode="bilinear", align_corners=False)[
            :, 0
        ]
    return 1.0 / torch.clamp(inverse, min=MIN_INVERSE_DEPTH, max=MAX_INVERSE_DEPTH)


class DepthProHooks:
    """The estimator's pre/post-processing for Depth Pro (``depthlens.models.hooks``).

    ``prepare`` normalises to [-1, 1] and resizes to the square input of the spec's
    ``InputPolicy`` (``preprocess``);
    ``finish`` turns the canonical inverse depth into meters (``canonical_to_depth``) with
    the image's camera (user or EXIF, its ``fx``), as ``infer(x, f_px=fx)``; without one,
    with the focal length of the predicted field of view, and the result's camera is
    ``Camera(..., source="estimated", estimated_by=<model name>)``.
    """

    def prepare(self, image: Image, spec: ModelSpec) -> Prepared[None]:
        return Prepared(preprocess(image.rgb, spec.input.size[0]), None)

    def finish(
        self,
        output: DepthProOutput,
        row: int,
        prepared: Prepared[None],
        image: Image,
        spec: ModelSpec,
    ) -> Finished:
        size = (image.height, image.width)
        canonical = output.canonical_inverse_depth[row : row + 1].float()
        camera = image.camera
        if camera is not None:
            focal: float | Tensor = camera.fx
        else:
            # The official code takes the head's raw value; only broken (or random)
            # weights leave a camera's range, and the camera must stay a real one.
            fov = output.fov_degrees[row].float().clamp(MIN_FOV_DEG, MAX_FOV_DEG)
            focal = focal_from_fov(fov, image.width)
            fx = float(focal)
            camera = Camera(
                fx, fx, image.width / 2.0, image.height / 2.0, image.width, image.height,
                source="estimated", estimated_by=spec.name,
            )  # fmt: skip
        depth = canonical_to_depth(canonical, focal, size)
        return Finished(depth=as_float32(depth[0]), camera=camera)


HOOKS = DepthProHooks()
