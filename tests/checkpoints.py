"""Random-weight checkpoints in the official key layouts, rebuilt bit-for-bit by tests.

The key tables in ``tests/fixtures/keys`` are the official ``name -> shape`` layouts
(one ``key<TAB>[shape]`` line per tensor). Values follow a recipe that makes numeric
subtleties visible: weights ~ N(0, 1/fan_in), norm weights 1 +- 0.05, biases +- 0.02,
BatchNorm running statistics away from the identity, LayerScale around 0.1. Each
tensor comes from its own generator seeded by (seed, key index), so a checkpoint is
deterministic and never needs to be stored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch

KEYS_DIR = Path(__file__).parent / "fixtures" / "keys"


def read_key_table(model: str) -> dict[str, tuple[int, ...]]:
    """The official layout of ``model`` (e.g. ``"depth_anything_vits"``) as name -> shape."""
    table: dict[str, tuple[int, ...]] = {}
    for line in (KEYS_DIR / f"keys_{model}.txt").read_text().splitlines():
        if not line.strip():
            continue
        name, shape = line.split("\t")
        dims = shape.strip("[]").replace(" ", "")
        table[name] = tuple(int(d) for d in dims.split(",")) if dims else ()
    return table


def _random_tensor(name: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return torch.zeros((), dtype=torch.int64)
    if leaf == "running_var":
        return torch.rand(shape, generator=gen) + 0.5
    if leaf == "running_mean":
        return (torch.rand(shape, generator=gen) - 0.5) * 0.2
    if leaf in ("gamma", "lambda1") or ".ls1." in name or ".ls2." in name:
        return 0.1 + (torch.rand(shape, generator=gen) - 0.5) * 0.04
    is_norm = any(part in name for part in ("norm", "bn", "ln")) or leaf.startswith("layernorm")
    if leaf == "bias" or len(shape) == 0:
        return (torch.rand(shape, generator=gen) - 0.5) * 0.04
    if leaf == "weight" and len(shape) == 1 and is_norm:
        return 1.0 + (torch.rand(shape, generator=gen) - 0.5) * 0.1
    if len(shape) == 1:
        return (torch.rand(shape, generator=gen) - 0.5) * 0.04
    if leaf in ("cls_token", "mask_token", "register_tokens", "pos_embed"):
        return torch.randn(shape, generator=gen) * 0.02
    fan_in = math.prod(shape[1:])
    return torch.randn(shape, generator=gen) / math.sqrt(fan_in)


def random_state_dict(
    layout: Mapping[str, tuple[int, ...]], seed: int = 0
) -> dict[str, torch.Tensor]:
    """Fill ``layout`` with deterministic random values (float32, int64 for counters)."""
    state: dict[str, torch.Tensor] = {}
    for index, (name, shape) in enumerate(layout.items()):
        gen = torch.Generator().manual_seed(seed * 100_003 + index)
        state[name] = _random_tensor(name, tuple(shape), gen)
    return state


def official_checkpoint(model: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random checkpoint in the full official layout of ``model``."""
    return random_state_dict(read_key_table(model), seed)


def metric3d_official_layout(config: object) -> dict[str, tuple[int, ...]]:
    """The official Metric3D v2 key layout (``depth_model.*``) of any ``Metric3DConfig``.

    Key names come from the official ViT-S table; shapes from our network of ``config``
    through the converter, so tiny configs get an official-looking layout. The
    duplicated ``downsample.1`` LayerNorm takes its ``norm3`` shape; ``mask_token`` is
    left out (absent from released checkpoints, see CHECKPOINTS.md §1.5).
    """
    from depthlens.models import metric3d

    assert isinstance(config, metric3d.Metric3DConfig)
    with torch.device("meta"):
        ours = metric3d.build_network(config).state_dict()
    layout: dict[str, tuple[int, ...]] = {}
    for key in read_key_table("metric3d_vit_small"):
        lookup = key.replace(".downsample.1.", ".norm3.")
        name = metric3d.official_key_to_ours(lookup)
        if name is not None and name in ours:
            layout[key] = tuple(ours[name].shape)
    # blocks beyond the ViT-S table's 12 (ViT-L layouts)
    for name, tensor in ours.items():
        if name.startswith("encoder.blocks.") and int(name.split(".")[2]) >= 12:
            rest = name.split(".", 3)[3].replace("layer_scale", "ls")
            rest = rest + ".gamma" if rest in ("ls1", "ls2") else rest
            layout[f"depth_model.encoder.blocks.0.{name.split('.')[2]}.{rest}"] = tuple(
                tensor.shape
            )
    return layout


def metric3d_checkpoint(config: object, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random official-layout Metric3D v2 state dict; ``downsample.1`` aliases ``norm3``."""
    state = random_state_dict(metric3d_official_layout(config), seed)
    for key in state:
        if ".downsample.1." in key:
            state[key] = state[key.replace(".downsample.1.", ".norm3.")]
    return state


def depth_pro_official_layout(config: object) -> dict[str, tuple[int, ...]]:
    """The official Depth Pro key layout (``depth_pro.pt``) of any ``DepthProConfig``.

    Key names come from the released table (keys_depth_pro.txt, written from
    apple/ml-depth-pro's own ``create_model_and_transforms``); shapes from our network
    of ``config`` through the converter (a ``qkv`` tensor stacks query, key and value).
    ViT blocks beyond ``config.vit_depth`` are left out.
    """
    from depthlens.models import depth_pro

    assert isinstance(config, depth_pro.DepthProConfig)
    with torch.device("meta"):
        ours = depth_pro.build_network(config).state_dict()
    layout: dict[str, tuple[int, ...]] = {}
    for key, shape in read_key_table("depth_pro").items():
        if ".blocks." in key and int(key.split(".blocks.")[1].split(".")[0]) >= config.vit_depth:
            continue
        ((name, *_),) = [
            depth_pro.convert_official_state_dict({key: torch.empty(shape, device="meta")})
        ]
        found = ours[name].shape
        layout[key] = (3 * found[0], *found[1:]) if ".attn.qkv." in key else tuple(found)
    return layout


def depth_pro_checkpoint(config: object, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random official-layout Depth Pro state dict whose outputs look like a real one's:
    the field-of-view head's last bias is 50 (degrees) and the depth head's last bias
    0.5, so the field of view is a camera's and the inverse depth is mostly positive."""
    state = random_state_dict(depth_pro_official_layout(config), seed)
    state["fov.head.4.bias"] = torch.full_like(state["fov.head.4.bias"], 50.0)
    state["head.4.bias"] = torch.full_like(state["head.4.bias"], 0.5)
    return state
