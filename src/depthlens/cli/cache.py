"""``depthlens cache``: the compiled-model cache of the ONNX Runtime and OpenVINO
backends (``models.backends.cache``): list it, or empty it with ``clear``."""

from __future__ import annotations

from typing import Annotated

import typer

from depthlens.cli.common import say


def cache(
    action: Annotated[
        str, typer.Argument(metavar="[ACTION]", help="list (the default) or clear.")
    ] = "list",
) -> None:
    """List the compiled models kept for the onnxruntime and openvino backends, or
    clear them."""
    from depthlens.errors import UsageError
    from depthlens.models.backends import cache as compiled

    if action == "clear":
        count, size = compiled.clear()
        say(f"Removed {count} compiled models ({size / 1e6:.1f} MB) from {compiled.cache_root()}.")
        return
    if action != "list":
        raise UsageError(f"Unknown cache action '{action}': use list or clear.")
    found = compiled.entries()
    total = sum(entry.size for entry in found)
    limit = compiled.limit_bytes()
    say(
        f"{len(found)} compiled models, {total / 1e6:.1f} MB of {limit / 1e9:g} GB, in "
        f"{compiled.cache_root()}"
    )
    for entry in found:
        say(f"  {entry.path.name}  {entry.size / 1e6:.1f} MB")
