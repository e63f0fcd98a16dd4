"""``depthlens export``: a zoo model as an ONNX file to run elsewhere
(``models.backends.export``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from depthlens.cli.common import say
from depthlens.errors import UsageError

__all__ = ["export"]


def export(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="Zoo name (depthlens models) or weights path.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="The .onnx file to write.")],
    weights: Annotated[
        Path | None, typer.Option(help="Checkpoint file or folder for the model.")
    ] = None,
    precision: Annotated[
        str,
        typer.Option(
            help="fp32; int8 (the Linear layers' weights; faster on ViTs); int8-static "
            "(weights and activations, calibrated on synthetic scenes; off by up to ~10 % "
            "of the range: see BENCHMARKS.md)."
        ),
    ] = "fp32",
    static: Annotated[
        bool,
        typer.Option(
            "--static",
            help="Fix batch 1 and the input size of a 640x480 photo (and one 32-frame "
            "window for video-depth-anything-*), for runtimes that need fixed shapes "
            "[default: batch, height and width free].",
        ),
    ] = False,
) -> None:
    """Export a model to ONNX: the input `image` (batch, 3, height, width; for Video
    Depth Anything whole clips, batch, frames, 3, height, width), prepared as the file's
    metadata says (and `prompt_depth` in meters for Prompt Depth Anything), and the
    model's outputs by name."""
    import depthlens
    from depthlens.models.backends.export import (
        EXPORT_PRECISIONS,
        export_onnx,
        onnx_summary,
        require_onnx,
    )

    bits = precision.strip().lower()
    if bits not in EXPORT_PRECISIONS:
        raise UsageError(
            f"Unknown precision '{precision}' for an export: use {', '.join(EXPORT_PRECISIONS)}."
        )
    if output.is_dir():
        raise UsageError(f"{output} is a folder; name the .onnx file to write, e.g. -o model.onnx.")
    require_onnx(bits)  # before the model loads
    estimator = depthlens.load_model(name, weights, "cpu")
    path = export_onnx(
        estimator.spec,
        estimator.network,
        output,
        dynamic=not static,
        precision=bits,
        weights=estimator.weights,
    )
    summary = onnx_summary(path)
    inputs, outputs = (
        ", ".join(f"{key} ({', '.join(map(str, shape))})" for key, shape in summary[side].items())
        for side in ("inputs", "outputs")
    )
    megabytes = path.stat().st_size / 1e6
    say(
        f"Wrote {path} ({megabytes:.1f} MB, {bits}, opset {summary['opset']}): "
        f"{inputs} -> {outputs}."
    )
