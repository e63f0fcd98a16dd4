"""Shared steps of the families' official-checkpoint converters.

A converter is an explicit rename table per family; what the families share is how the
table is applied (``rename_key``, ``rename_state_dict``) and how a transformers
``from_pretrained(..., output_loading_info=True)`` report becomes one error
(``check_loading_info``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch


def rename_key(
    key: str,
    prefixes: Sequence[str],
    dropped: re.Pattern[str],
    renames: Sequence[tuple[str, str | Callable[[re.Match[str]], str]]],
) -> str | None:
    """``key`` without the leading ``prefixes`` (in order), then None if ``dropped``
    matches it (a tensor we do not run), else renamed by each ``(pattern, replacement)``
    of ``renames`` in turn (a replacement may be a function of the match, as in
    ``re.sub``)."""
    for prefix in prefixes:
        key = key.removeprefix(prefix)
    if dropped.search(key):
        return None
    for pattern, replacement in renames:
        key = re.sub(pattern, replacement, key)
    return key


def rename_state_dict(
    state_dict: Mapping[str, torch.Tensor], rename: Callable[[str], str | None]
) -> dict[str, torch.Tensor]:
    """The tensors of ``state_dict`` under ``rename(key)``; those it maps to None are left
    out."""
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        ours = rename(key)
        if ours is not None:
            renamed[ours] = value
    return renamed


def check_loading_info(
    info: Mapping[str, Any], folder: Path, network: str, ignore: str | None = None
) -> None:
    """ValueError naming (up to 8 of each) the missing, unexpected and misshapen tensors
    that transformers reported loading ``folder``, those whose name holds ``ignore``
    aside; nothing when there are none."""
    problems = {
        name: sorted(str(k) for k in info.get(name, ()) if ignore is None or ignore not in str(k))
        for name in ("missing_keys", "unexpected_keys", "mismatched_keys")
    }
    if any(problems.values()):
        listed = "; ".join(
            f"{name}: {', '.join(keys[:8])}" for name, keys in problems.items() if keys
        )
        raise ValueError(f"{folder} does not fit the {network} network ({listed})")
