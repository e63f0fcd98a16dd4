"""``depthlens camera``: a photo's camera intrinsics and field of view, as JSON
(``models.intrinsics.estimate_camera``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from depthlens.cli.common import DeviceOption, WeightsOption, say

__all__ = ["camera"]


def camera(
    photo: Annotated[Path, typer.Argument(metavar="PHOTO", help="The photo (HEIC too).")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="A zoo model that estimates the camera: depth-pro, moge-2-*, the "
            "any-view depth-anything-3-* [default: moge-2-vits-normal].",
        ),
    ] = None,
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    ignore_exif: Annotated[
        bool,
        typer.Option(
            "--ignore-exif", help="Estimate the camera even when the photo's EXIF gives it."
        ),
    ] = False,
) -> None:
    """Print a photo's camera as JSON: fx, fy, cx, cy (pixels), width, height, the
    horizontal and vertical field of view (degrees), source (exif or estimated) and
    estimated_by. A photo whose EXIF gives its focal length prints that camera, unless
    --ignore-exif."""
    from depthlens.models.intrinsics import camera_summary, estimate_camera

    found = estimate_camera(photo, model, weights, device, use_exif=not ignore_exif)
    say(json.dumps(camera_summary(found), indent=2))
