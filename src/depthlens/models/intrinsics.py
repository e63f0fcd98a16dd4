"""A photo's camera intrinsics: its own (EXIF), or estimated by a zoo model that predicts
them (``ModelSpec.estimates_camera``: Depth Pro's field-of-view head, MoGe-2).

``estimate_camera`` is the one library path behind ``depthlens camera``; the result is
the camera ``Estimator.predict`` gives the depth map, sidecar and point cloud.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from depthlens.errors import UsageError
from depthlens.geometry.camera import Camera
from depthlens.io.images import Image, ImageSource, load_image
from depthlens.models.registry import DEFAULT_CAMERA_MODEL, MODELS
from depthlens.models.spec import ModelSpec

__all__ = ["camera_models", "camera_summary", "default_camera_model", "estimate_camera"]


def camera_models() -> list[str]:
    """The zoo rows that estimate the camera, in zoo order."""
    return [spec.name for spec in MODELS.values() if spec.estimates_camera]


def default_camera_model() -> str:
    """``registry.DEFAULT_CAMERA_MODEL``, a zoo row that estimates the camera."""
    return DEFAULT_CAMERA_MODEL


def _require_camera_model(spec: ModelSpec) -> None:
    if not spec.estimates_camera:
        raise UsageError(
            f"{spec.name} does not estimate the camera; use a model that does: "
            f"{', '.join(camera_models())}."
        )


def estimate_camera(
    source: ImageSource | Image,
    model: str | Path | None = None,
    weights: str | Path | None = None,
    device: str = "auto",
    use_exif: bool = True,
) -> Camera:
    """The camera of one photo: its EXIF camera (``source="exif"``) unless ``use_exif``
    is False or it has none, else the one ``model`` estimates (``source="estimated"``,
    ``estimated_by`` the model). ``model`` defaults to ``default_camera_model()``; one
    that does not estimate the camera is a UsageError, said before any weights load.
    """
    from depthlens import load_model

    name = model if model is not None else default_camera_model()
    if str(name) in MODELS:
        _require_camera_model(MODELS[str(name)])
    image = source if isinstance(source, Image) else load_image(source)
    if use_exif and image.camera is not None:
        return image.camera
    estimator = load_model(name, weights, device)
    _require_camera_model(estimator.spec)
    camera = estimator.predict(replace(image, camera=None)).camera
    if camera is None:  # every family's finish returns one; never for camera models
        raise UsageError(f"{estimator.name} returned no camera for {image.source}.")
    return camera


def camera_summary(camera: Camera) -> dict[str, float | int | str | None]:
    """``fx, fy, cx, cy`` (pixels), ``width, height``, the horizontal and vertical field
    of view (degrees), ``source`` and ``estimated_by`` (None unless estimated), for JSON."""
    return {
        "fx": camera.fx,
        "fy": camera.fy,
        "cx": camera.cx,
        "cy": camera.cy,
        "width": camera.width,
        "height": camera.height,
        "horizontal_fov_deg": camera.horizontal_fov,
        "vertical_fov_deg": camera.vertical_fov,
        "source": camera.source,
        "estimated_by": camera.estimated_by,
    }
