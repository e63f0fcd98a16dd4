"""The JSON bodies of the web service, as pydantic models (they also make /openapi.json)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Units = Literal["meters", "relative"]


class ErrorDetail(BaseModel):
    """What went wrong: the HTTP status, a stable machine-readable code, one sentence."""

    status: int = Field(examples=[415])
    code: str = Field(
        description="missing_image, not_an_image, upload_too_large, too_many_pixels, "
        "body_timeout, unknown_model, invalid_parameter, busy, not_found, "
        "method_not_allowed, bad_request or internal_error.",
        examples=["not_an_image"],
    )
    message: str = Field(examples=["photo.png is not an image in a format depthlens can read."])


class ErrorBody(BaseModel):
    """Every error response has this body."""

    error: ErrorDetail


class Percentiles(BaseModel):
    """Percentiles of the finite depth values (null when no value is finite)."""

    p1: float | None
    p5: float | None
    p50: float | None
    p95: float | None
    p99: float | None


class TimingsMs(BaseModel):
    """Milliseconds per stage: waiting for a worker, decoding the upload, the model,
    encoding the answer, and all of it (from the received upload to the answer)."""

    queue: float
    decode: float
    inference: float
    encode: float
    total: float


class CameraJson(BaseModel):
    """The camera the depth was computed for (pixels): from the ``fov`` field (user),
    the photo's EXIF, estimated from the photo by the model, or an assumed 60°
    horizontal field of view (default). Metric models scale their output by its focal
    length."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    source: Literal["user", "exif", "estimated", "default"]
    estimated_by: str | None = Field(
        default=None, description="The model that estimated the camera (source 'estimated')."
    )


class DepthJson(BaseModel):
    """``format=json``: the depth map's statistics and, on request, the map itself."""

    model: str
    weights: str = Field(
        default="", description="The weights that made it: a file or folder path, or a Hub id."
    )
    weights_sha256: str | None = Field(
        default=None, description="sha256 of the weights file, where there is one."
    )
    kind: Literal["relative_inverse", "metric"]
    units: Units = Field(
        description="meters for metric models; relative for relative inverse depth "
        "(larger = nearer, unknown scale and shift)."
    )
    width: int
    height: int
    min: float | None
    max: float | None
    percentiles: Percentiles
    timings_ms: TimingsMs
    colormap: str
    camera: CameraJson
    depth: str | None = Field(
        default=None,
        description="With include_depth: base64 of the height × width depth values as "
        "little-endian float32, row by row.",
    )
    color_png: str | None = Field(
        default=None, description="With include_color: base64 of the colour heatmap PNG."
    )


class EffectJson(BaseModel):
    """``POST /v1/effects/{name}`` with ``format=json``: what the effect reports (for
    obstacle: the warning, the near fraction and the nearest region's box) and the
    rendered image."""

    effect: str
    model: str
    kind: Literal["relative_inverse", "metric"]
    report: dict[str, object] = Field(
        description="obstacle: warning, near_fraction, threshold, unit, nearest_box, "
        "nearest_value, regions; bokeh: focus_nearness, focus_point, aperture_px; stereo: "
        "layout, baseline; parallax: path, frame."
    )
    image_png: str = Field(description="base64 of the rendered image as PNG.")
    camera: CameraJson
    timings_ms: TimingsMs


class ModelInfo(BaseModel):
    """One served model."""

    name: str
    kind: Literal["relative_inverse", "metric"]
    description: str
    loaded: bool
    needs_prompt_depth: bool = Field(
        default=False,
        description="Whether requests must send prompt_depth: a low-res metric depth map.",
    )


class Limits(BaseModel):
    """What the server accepts and the most it renders: MB are 10⁶ bytes, MP 10⁶ pixels."""

    max_upload_mb: float = Field(description="The largest upload (413 above).")
    max_megapixels: float = Field(description="The largest photo (413 above).")
    effect_megapixels: float = Field(
        description="bokeh, stereo and obstacle render larger photos shrunk to this size."
    )
    json_megapixels: float = Field(
        description="The largest photo for format=json with include_depth or include_color."
    )
    clip_max_side: int = Field(description="parallax clips are at most this wide or tall.")
    clip_max_frames: int = Field(description="The most frames a parallax clip may have.")
    clip_megapixels: float = Field(
        description="parallax clips render at most this many pixels in all their frames."
    )


class ModelsResponse(BaseModel):
    """``GET /v1/models``: the served models (the default first) and the choices."""

    default: str
    models: list[ModelInfo]
    colormaps: list[str]
    formats: list[str]
    effects: list[str]
    limits: Limits


class QueueStats(BaseModel):
    """Jobs running on a worker, admitted and waiting for one, and the most pending."""

    running: int
    waiting: int
    capacity: int


class Health(BaseModel):
    """``GET /healthz``: the server is up, with its models and its load."""

    status: Literal["ok"]
    models: list[str]
    queue: QueueStats
