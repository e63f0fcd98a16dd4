"""The web service: a FastAPI app over ``Estimator.predict``.

``create_app(settings)`` builds the app; its lifespan loads the served models once
and starts the inference pool (``serve.pool``). Routes:

- ``POST /v1/depth``: a photo in (multipart field ``image``), its depth out as a colour
  heatmap PNG, a 16-bit PNG, a ``.npy`` file or JSON statistics (``format``).
- ``POST /v1/effects/{name}``: an effect of the photo's depth: ``bokeh`` (lens blur),
  ``stereo`` (side-by-side, top-bottom or anaglyph), ``obstacle`` (near-region warning,
  JSON and an annotated image) or ``parallax`` (the 3D-photo clip, GIF or MP4).
- ``GET /v1/models``: the served models, colormaps, formats, effects and limits.
- ``GET /healthz``: liveness, models and queue load.
- ``GET /`` and ``/static/...``: the web page.
- ``/docs`` and ``/openapi.json``: the API description; ``/docs`` is Swagger UI served
  from the files of the ``fastapi-offline`` package, so it works with no internet.

Decoding, inference and encoding run on the pool's threads, never on the event loop.
Every error is JSON ``{"error": {"status", "code", "message"}}`` with one sentence;
tracebacks go to the server log only.
"""

from __future__ import annotations

import base64
import functools
import re
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from pathlib import Path, PureWindowsPath
from typing import Annotated, Any, BinaryIO, Literal, get_args

import cv2
import fastapi_offline
import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRouter
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from depthlens import __version__, load_model
from depthlens.effects.apply import EFFECTS, EffectSettings, parallax_animation, render_still
from depthlens.effects.parallax import CAMERA_PATHS
from depthlens.effects.stereo import STEREO_LAYOUTS
from depthlens.errors import ImageError, ImageTooLargeError, UnknownModelError, UsageError
from depthlens.geometry.camera import Camera
from depthlens.io.depth_files import encode_npy, encode_png, encode_png16
from depthlens.io.images import Image, load_image
from depthlens.io.video import VideoWriter
from depthlens.models.estimator import DepthResult, Estimator
from depthlens.models.registry import MODELS
from depthlens.serve.cache import DepthCache
from depthlens.serve.pool import InferencePool, PoolFull
from depthlens.serve.schemas import (
    CameraJson,
    DepthJson,
    EffectJson,
    ErrorBody,
    ErrorDetail,
    Health,
    Limits,
    ModelInfo,
    ModelsResponse,
    Percentiles,
    QueueStats,
    TimingsMs,
)
from depthlens.viz.colormaps import COLORMAPS

__all__ = ["FORMATS", "ServeSettings", "create_app", "load_models"]

STATIC_DIR = Path(__file__).parent / "static"
# Swagger UI 5 (it reads OpenAPI 3.1, which FastAPI writes), as the fastapi-offline
# package ships it; only its files are used.
SWAGGER_DIR = Path(fastapi_offline.__file__).parent / "static"

OutputFormat = Literal["color", "png16", "npy", "json"]
FORMATS: tuple[str, ...] = get_args(OutputFormat)
EffectName = Literal["bokeh", "parallax", "stereo", "obstacle"]
EffectFormat = Literal["png", "json", "gif", "mp4"]
# What each effect can answer; the first is its default.
_EFFECT_FORMATS: dict[str, tuple[str, ...]] = {
    "bokeh": ("png", "json"),
    "stereo": ("png", "json"),
    "obstacle": ("json", "png"),
    "parallax": ("gif", "mp4"),
}
_CLIP_MEDIA = {"gif": "image/gif", "mp4": "video/mp4"}
# A clip is rendered frame by frame on a worker thread: its photo is shrunk to this
# long side first, so one request costs seconds, not minutes.
CLIP_MAX_SIDE = 640

# Room for the multipart framing and the small form fields around the photo: the
# request body may exceed max_upload_mb by this much before it is cut off.
FORM_ALLOWANCE = 64 * 1024

# Output file names end as the CLI's do (depthlens predict).
_SUFFIXES = {"color": "-depth.png", "png16": "-depth16.png", "npy": "-depth.npy"}
_PERCENTILES = (1, 5, 50, 95, 99)
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ServeSettings:
    """How the web service runs.

    ``models`` are zoo names; the first is the default. ``weights`` maps some of them
    to a checkpoint path (otherwise the weights are looked up as ``load_model`` does).
    ``max_upload_mb`` caps an upload (1 MB = 10⁶ bytes) and ``max_megapixels`` the
    decoded image. ``workers`` inference threads run at once and ``queue_size`` more
    requests may wait for one (default 4 × workers); beyond that requests get 503.
    ``cache_megapixels`` bounds the photos whose depth is kept for repeated requests
    (``serve.cache``; 0: none).
    """

    models: tuple[str, ...] = ("depthlens-small",)
    weights: Mapping[str, str | Path] = field(default_factory=dict)
    device: str = "auto"
    max_upload_mb: float = 20.0
    max_megapixels: float = 40.0
    workers: int = 1
    queue_size: int | None = None
    cache_megapixels: float = 24.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(dict.fromkeys(self.models)))
        if not self.models:
            raise UsageError("Serve at least one model.")
        unserved = sorted(set(self.weights) - set(self.models))
        if unserved:
            raise UsageError(
                f"Weights were given for {', '.join(unserved)}, which is not among the served "
                "models; serve it too (--model)."
            )
        if self.workers < 1:
            raise UsageError(f"Use at least 1 worker, not {self.workers}.")
        if self.queue_size is not None and self.queue_size < 0:
            raise UsageError(f"The queue size cannot be negative ({self.queue_size}).")
        if not self.cache_megapixels >= 0:
            raise UsageError(f"The cache size cannot be negative ({self.cache_megapixels}).")
        if not (self.max_upload_mb > 0 and self.max_megapixels > 0):
            raise UsageError("The upload and megapixel limits must be positive.")

    @property
    def default_model(self) -> str:
        return self.models[0]

    @property
    def waiting_limit(self) -> int:
        """Requests that may wait for a worker: ``queue_size``, or 4 × workers."""
        return 4 * self.workers if self.queue_size is None else self.queue_size

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1e6)

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1e6)


def load_models(settings: ServeSettings) -> dict[str, Estimator]:
    """The served models by name, loaded once per process (``load_model`` caches them).

    Raises the DepthlensError of the first model that cannot be loaded.
    """
    estimators = {}
    for name in settings.models:
        if name not in MODELS:
            raise UnknownModelError(
                f"Unknown model '{name}': serve one of {', '.join(sorted(MODELS))}."
            )
        estimators[name] = load_model(name, settings.weights.get(name), settings.device)
    return estimators


@dataclass(frozen=True)
class _Runtime:
    """What the lifespan sets up: the loaded models and the inference pool."""

    estimators: dict[str, Estimator]
    pool: InferencePool
    cache: DepthCache


class ApiError(HTTPException):
    """An error response with a stable ``code`` and a one-sentence message.

    Being an HTTPException, it may be raised anywhere in a request, even while FastAPI
    reads the body (which turns other exceptions there into a generic 400), and still
    reach the app's error handler.
    """

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status, message, headers)
        self.code = code


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The JSON error body every failure answers with."""
    body = ErrorBody(error=ErrorDetail(status=status, code=code, message=message))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _upload_too_large(settings: ServeSettings) -> ApiError:
    return ApiError(
        413,
        "upload_too_large",
        f"The upload is larger than this server's limit of {settings.max_upload_mb:g} MB.",
    )


class UploadLimit:
    """ASGI middleware that refuses request bodies over ``limit`` bytes with a 413.

    A Content-Length above the limit is refused before any byte is read; a body
    streamed without one is cut off as soon as it passes the limit, so no more than
    ``limit`` bytes and one chunk are ever read (FastAPI spools file parts to disk
    beyond 1 MB, so memory holds far less).
    """

    def __init__(self, app: ASGIApp, settings: ServeSettings) -> None:
        self.app = app
        self.settings = settings
        self.limit = settings.max_upload_bytes + FORM_ALLOWANCE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            error = _upload_too_large(self.settings)
            await error_response(error.status_code, error.code, error.detail)(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _upload_too_large(self.settings)
            return message

        await self.app(scope, receive_within_limit, send)


def create_app(settings: ServeSettings) -> FastAPI:
    """The web service for ``settings``; models load when the app starts (lifespan).

    A model that cannot be loaded makes start-up fail with its DepthlensError.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Blocking here is fine: nothing is served until start-up completes.
        runtime = _Runtime(
            load_models(settings),
            InferencePool(settings.workers, settings.waiting_limit),
            DepthCache(int(settings.cache_megapixels * 1e6)),
        )
        app.state.runtime = runtime
        try:
            yield
        finally:
            runtime.pool.shutdown()

    app = FastAPI(
        title="depthlens",
        version=__version__,
        summary="Monocular depth estimation: one photo in, a per-pixel depth map out.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's page loads Swagger UI from a CDN; ours serves it (below)
        redoc_url=None,
    )
    app.state.settings = settings
    app.add_middleware(UploadLimit, settings=settings)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, ApiError):
            return error_response(exc.status_code, exc.code, exc.detail, exc.headers)
        code, message = _http_error_text(request, exc.status_code)
        return error_response(exc.status_code, code, message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(*_validation_error_text(exc.errors()))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises the exception after this response, so the server logs it.
        return error_response(
            500, "internal_error", "The server failed on this request; the details are in its log."
        )

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="depthlens API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount("/docs-assets", StaticFiles(directory=SWAGGER_DIR), name="docs-assets")
    return app


def _http_error_text(request: Request, status: int) -> tuple[str, str]:
    """The code and sentence for an HTTP error raised by routing or parsing."""
    where = f"{request.method} {request.url.path}"
    if status == 404:
        return "not_found", f"There is nothing at {where}; the API is described at /docs."
    if status == 405:
        return "method_not_allowed", f"{where} is not allowed; the API is described at /docs."
    if status == 400:
        return "bad_request", "The request body is not a well-formed multipart form."
    return "http_error", f"{HTTPStatus(status).phrase}."


def _validation_error_text(errors: Sequence[Any]) -> tuple[int, str, str]:
    """Status, code and sentence for FastAPI's request validation errors (first one)."""
    fields = [".".join(str(part) for part in error["loc"][1:]) for error in errors]
    if "image" in fields:
        return 400, "missing_image", "Send the photo as a file in the multipart form field 'image'."
    problem = str(errors[0]["msg"]).removeprefix("Value error, ").rstrip(".")
    problem = problem[:1].lower() + problem[1:]
    where = f"form field '{fields[0]}'" if fields[0] else "request body"
    if errors[0]["loc"][0] == "path":
        where = f"path parameter '{fields[0]}'"
    return 422, "invalid_parameter", f"Invalid {where}: {problem}."


def _runtime(request: Request) -> _Runtime:
    runtime: _Runtime = request.app.state.runtime
    return runtime


def _settings(request: Request) -> ServeSettings:
    settings: ServeSettings = request.app.state.settings
    return settings


def _known_colormap(name: str) -> str:
    if name not in COLORMAPS:
        raise ValueError(f"unknown colormap '{name}'; choose one of {', '.join(COLORMAPS)}")
    return name


router = APIRouter()

# Form fields both photo endpoints take.
PhotoField = Annotated[
    UploadFile, File(description="The photo: JPEG, PNG, WebP, TIFF, BMP or GIF.")
]
ModelField = Annotated[
    str | None, Form(description="A served model (GET /v1/models); default: the first.")
]
FovField = Annotated[
    float | None,
    Form(
        gt=0,
        lt=180,
        description="The camera's horizontal field of view in degrees (metric models "
        "scale by it); default: the photo's EXIF, else 60.",
    ),
]


def _error_doc(description: str, **extra: Any) -> dict[str, Any]:
    """The OpenAPI entry of an error status: the ErrorBody schema and what it means."""
    return {"model": ErrorBody, "description": description, **extra}


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error_doc("No file in the form field 'image' (missing_image), or a malformed form."),
    404: _error_doc("The model is not served here (unknown_model)."),
    413: _error_doc("The upload or the image is too large (upload_too_large, too_many_pixels)."),
    415: _error_doc("The file is not an image depthlens can decode (not_an_image)."),
    422: _error_doc("A form field has an invalid value (invalid_parameter)."),
    503: _error_doc(
        "All workers and queue slots are busy (busy).",
        headers={"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
    ),
    500: _error_doc("An unexpected failure (internal_error); details in the server log."),
}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_DEPTH_HEADERS = {
    name: {"description": description, "schema": {"type": kind}}
    for name, kind, description in [
        ("X-Depthlens-Model", "string", "The model that made the depth map."),
        ("X-Depth-Kind", "string", "relative_inverse (larger = nearer) or metric (meters)."),
        ("X-Processing-Ms", "number", "Server time from the received upload to the answer."),
        ("X-Depth-Cache", "string", "hit: the depth of these bytes was kept from before."),
        ("X-Depth-Min", "number", "png16 only: the depth that level 0 stands for."),
        ("X-Depth-Max", "number", "png16 only: the depth that level 65535 stands for."),
    ]
}


@router.post(
    "/v1/depth",
    summary="Depth of one photo",
    response_model=DepthJson,
    responses={
        200: {
            "description": "color and png16: image/png; npy: application/octet-stream; "
            "json: the statistics below.",
            "content": {"image/png": _BINARY, "application/octet-stream": _BINARY},
            "headers": _DEPTH_HEADERS,
        },
        **_ERROR_RESPONSES,
    },
)
async def predict_depth(
    request: Request,
    image: PhotoField,
    model: ModelField = None,
    colormap: Annotated[
        str,
        AfterValidator(_known_colormap),
        Form(description="Heatmap colours.", json_schema_extra={"enum": list(COLORMAPS)}),
    ] = "inferno",
    output_format: Annotated[
        OutputFormat,
        Form(
            alias="format",
            description="color: heatmap PNG; png16: 16-bit PNG of min..max (see the "
            "X-Depth-Min/Max headers); npy: float32 array; json: statistics.",
        ),
    ] = "color",
    include_depth: Annotated[
        bool, Form(description="json only: add the depth map as base64 float32.")
    ] = False,
    include_color: Annotated[
        bool, Form(description="json only: add the heatmap as a base64 PNG.")
    ] = False,
    fov: FovField = None,
) -> Response:
    """Estimate the depth of the uploaded photo, at its own size."""
    upload = _posted_photo(request, image, model, fov, time.perf_counter())
    job = _DepthJob(upload, colormap, output_format, include_depth, include_color)
    return await _run_on_pool(request, functools.partial(_depth_job, job))


def _posted_photo(
    request: Request, image: UploadFile, model: str | None, fov: float | None, started: float
) -> _Upload:
    """The photo of a request with the served model it asks for (default: the first),
    after checking the upload's declared size; 404 or 413 ApiError otherwise."""
    settings, runtime = _settings(request), _runtime(request)
    name = model or settings.default_model
    estimator = runtime.estimators.get(name)
    if estimator is None:
        raise ApiError(
            404,
            "unknown_model",
            f"Model '{name}' is not served here; use one of {', '.join(settings.models)}.",
        )
    if image.size is not None and image.size > settings.max_upload_bytes:
        raise _upload_too_large(settings)
    filename = _safe_name(image.filename)
    return _Upload(
        estimator=estimator,
        cache=runtime.cache,
        file=image.file,
        label=filename or "The uploaded file",
        stem=Path(filename).stem or "image",
        fov=fov,
        max_pixels=settings.max_pixels,
        started=started,
    )


async def _run_on_pool(request: Request, job: functools.partial[Response]) -> Response:
    """``job`` on an inference thread, or 503 when every worker and queue slot is taken."""
    try:
        return await _runtime(request).pool.run(job)
    except PoolFull as err:
        raise ApiError(
            503,
            "busy",
            "The server is busy with other photos; retry in a second.",
            {"Retry-After": "1"},
        ) from err


def _choice(choices: tuple[str, ...], what: str) -> Any:
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"unknown {what} '{value}'; choose one of {', '.join(choices)}")
        return value

    return check


@router.post(
    "/v1/effects/{name}",
    summary="An effect of one photo's depth",
    response_model=EffectJson,
    responses={
        200: {
            "description": "bokeh, stereo: image/png (json: the report and the image); "
            "obstacle: json (png: the annotated image); parallax: image/gif or video/mp4.",
            "content": {
                "image/png": _BINARY,
                "image/gif": _BINARY,
                "video/mp4": _BINARY,
            },
            "headers": {k: v for k, v in _DEPTH_HEADERS.items() if "png16" not in v["description"]},
        },
        **_ERROR_RESPONSES,
    },
)
async def apply_effect(
    request: Request,
    name: Annotated[EffectName, PathParam(description="bokeh, parallax, stereo or obstacle.")],
    image: PhotoField,
    model: ModelField = None,
    output_format: Annotated[
        EffectFormat | None,
        Form(
            alias="format",
            description="bokeh, stereo: png (default) or json; obstacle: json (default) or "
            "png; parallax: gif (default) or mp4.",
        ),
    ] = None,
    focus_x: Annotated[
        int | None, Form(ge=0, description="bokeh: pixel column to focus on (with focus_y).")
    ] = None,
    focus_y: Annotated[
        int | None, Form(ge=0, description="bokeh: pixel row to focus on (with focus_x).")
    ] = None,
    aperture: Annotated[
        float, Form(ge=0, le=100, description="bokeh: the largest blur radius, in pixels.")
    ] = 12.0,
    path: Annotated[
        str,
        AfterValidator(_choice(CAMERA_PATHS, "camera path")),
        Form(description="parallax: camera path.", json_schema_extra={"enum": list(CAMERA_PATHS)}),
    ] = "circle",
    frames: Annotated[int, Form(ge=1, le=120, description="parallax: frames per loop.")] = 30,
    fps: Annotated[float, Form(gt=0, le=60, description="parallax: frames per second.")] = 15.0,
    amplitude: Annotated[
        float, Form(ge=0, le=4, description="parallax: size of the motion.")
    ] = 1.0,
    layout: Annotated[
        str,
        AfterValidator(_choice(STEREO_LAYOUTS, "stereo layout")),
        Form(
            description="stereo: how the two views are combined.",
            json_schema_extra={"enum": list(STEREO_LAYOUTS)},
        ),
    ] = "side-by-side",
    baseline: Annotated[
        float,
        Form(ge=0, le=0.2, description="stereo: the largest disparity, a fraction of the width."),
    ] = 0.03,
    threshold: Annotated[
        float | None,
        Form(
            gt=0,
            description="obstacle: meters for metric models (default 1), nearness 0-1 for "
            "relative ones (default 0.8).",
        ),
    ] = None,
    fov: FovField = None,
) -> Response:
    """Run the effect on the uploaded photo and its depth (the served model's)."""
    upload = _posted_photo(request, image, model, fov, time.perf_counter())
    chosen = output_format or _EFFECT_FORMATS[name][0]
    if chosen not in _EFFECT_FORMATS[name]:
        raise ApiError(
            422,
            "invalid_parameter",
            f"The {name} effect answers in {' or '.join(_EFFECT_FORMATS[name])}, not {chosen}.",
        )
    if (focus_x is None) != (focus_y is None):
        raise ApiError(422, "invalid_parameter", "Give both focus_x and focus_y, or neither.")
    try:
        effect_settings = EffectSettings(
            focus_point=(focus_x, focus_y) if focus_x is not None and focus_y is not None else None,
            aperture=aperture,
            path=path,
            frames=frames,
            amplitude=amplitude,
            layout=layout,
            baseline=baseline,
            threshold=threshold,
        )
    except UsageError as err:
        raise ApiError(422, "invalid_parameter", str(err)) from err
    job = _EffectJob(upload, name, chosen, effect_settings, fps)
    return await _run_on_pool(request, functools.partial(_effect_job, job))


@router.get("/v1/models", summary="Served models, colormaps, formats and limits")
async def list_models(request: Request) -> ModelsResponse:
    """What this server offers; the default model comes first."""
    settings, runtime = _settings(request), _runtime(request)
    return ModelsResponse(
        default=settings.default_model,
        models=[
            ModelInfo(
                name=name, kind=estimator.kind, description=estimator.spec.description, loaded=True
            )
            for name, estimator in runtime.estimators.items()
        ],
        colormaps=list(COLORMAPS),
        formats=list(FORMATS),
        effects=list(EFFECTS),
        limits=Limits(max_upload_mb=settings.max_upload_mb, max_megapixels=settings.max_megapixels),
    )


@router.get("/healthz", summary="Liveness and load")
async def health(request: Request) -> Health:
    """The server is up; its models and how busy its inference pool is."""
    runtime = _runtime(request)
    stats = runtime.pool.stats()
    return Health(
        status="ok",
        models=list(runtime.estimators),
        queue=QueueStats(running=stats.running, waiting=stats.waiting, capacity=stats.capacity),
    )


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The web page."""
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        raise StarletteHTTPException(404)
    return FileResponse(page)


def _safe_name(filename: str | None) -> str:
    """An upload's file name without folders, kept to letters, digits and ``._-`` (other
    runs become ``_``), not starting with a dot; "" when nothing is left."""
    name = PureWindowsPath(filename or "").name  # splits on both / and \
    return _UNSAFE_NAME_CHARS.sub("_", name).strip("._")[:100]


@dataclass(frozen=True)
class _Upload:
    """A posted photo as a pool thread needs it: the served model and depth cache to
    take its depth with, the camera asked for, and what to call it."""

    estimator: Estimator
    cache: DepthCache
    file: BinaryIO
    label: str  # names the upload in messages
    stem: str  # output file names start with it
    fov: float | None  # degrees, replacing the photo's own camera
    max_pixels: int
    started: float  # perf_counter when the request's form had been received


@dataclass(frozen=True)
class _DepthJob:
    """One POST /v1/depth, as the worker thread needs it."""

    upload: _Upload
    colormap: str
    output_format: OutputFormat
    include_depth: bool
    include_color: bool


def _depth_job(job: _DepthJob) -> Response:
    """Decode, predict and encode one upload (on a pool thread); the finished response."""
    began = time.perf_counter()
    _, result, decoded, predicted, headers = _photo_and_depth(job.upload)
    if job.output_format == "json":
        extras = {}
        if job.include_depth:
            extras["depth"] = _base64(np.ascontiguousarray(result.depth, dtype="<f4").tobytes())
        if job.include_color:
            extras["color_png"] = _base64(_heatmap_png(result, job.colormap))
        timings = _timings_ms(job.upload.started, began, decoded, predicted)
        body = _depth_json(result, job.colormap, timings, extras).encode()
        media_type = "application/json"
    else:
        body, media_type, format_headers = _encode_file(result, job)
        headers.update(format_headers)
        timings = _timings_ms(job.upload.started, began, decoded, predicted)
    headers["X-Processing-Ms"] = f"{timings.total:.1f}"
    return Response(body, media_type=media_type, headers=headers)


@dataclass(frozen=True)
class _EffectJob:
    """One POST /v1/effects/{name}, as the worker thread needs it."""

    upload: _Upload
    name: str
    output_format: str
    settings: EffectSettings
    fps: float


def _effect_job(job: _EffectJob) -> Response:
    """Decode, predict, render and encode one effect request (on a pool thread)."""
    began = time.perf_counter()
    image, result, decoded, predicted, headers = _photo_and_depth(job.upload)
    suffix = "gif" if job.output_format == "gif" else "mp4" if job.output_format == "mp4" else "png"
    filename = f"{job.upload.stem}-{job.name}.{suffix}"
    try:
        if job.name == "parallax":
            body = _parallax_clip(image.rgb, result, job)
            media_type = _CLIP_MEDIA[job.output_format]
        else:
            still = render_still(job.name, image.rgb, result.depth, result.kind, job.settings)
            png = encode_png(still.image)
            if job.output_format == "json":
                timings = _timings_ms(job.upload.started, began, decoded, predicted)
                body = (
                    EffectJson(
                        effect=job.name,
                        model=result.model,
                        kind=result.kind,
                        report=still.report,
                        image_png=_base64(png),
                        camera=_camera_json(result),
                        timings_ms=timings,
                    )
                    .model_dump_json()
                    .encode()
                )
                media_type = "application/json"
            else:
                body, media_type = png, "image/png"
                if job.name == "obstacle":
                    headers["X-Obstacle-Warning"] = str(bool(still.report["warning"])).lower()
    except UsageError as err:
        raise ApiError(422, "invalid_parameter", str(err)) from err
    if media_type != "application/json":
        headers["Content-Disposition"] = f'inline; filename="{filename}"'
    timings = _timings_ms(job.upload.started, began, decoded, predicted)
    headers["X-Processing-Ms"] = f"{timings.total:.1f}"
    return Response(body, media_type=media_type, headers=headers)


def _parallax_clip(rgb: np.ndarray, result: DepthResult, job: _EffectJob) -> bytes:
    """The 3D-photo clip as GIF or MP4 bytes, rendered at most CLIP_MAX_SIDE pixels wide
    or tall (the encoder needs a file, so it goes through a temporary folder)."""
    depth = result.depth
    scale = CLIP_MAX_SIDE / max(rgb.shape[:2])
    if scale < 1.0:
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        depth = cv2.resize(depth, size, interpolation=cv2.INTER_NEAREST)
    with tempfile.TemporaryDirectory(prefix="depthlens-clip-") as folder:
        clip = Path(folder) / f"clip.{job.output_format}"
        with VideoWriter(clip, job.fps) as writer:
            for frame in parallax_animation(rgb, depth, result.kind, job.settings):
                writer.write(frame)
        return clip.read_bytes()


def _photo_and_depth(
    upload: _Upload,
) -> tuple[Image, DepthResult, float, float, dict[str, str]]:
    """The uploaded photo and its depth (from the cache when this model has seen these
    bytes with this camera), when decoding and prediction ended, and the response
    headers they give."""
    data, fov, cache = upload.file.read(), upload.fov, upload.cache
    key = DepthCache.key(upload.estimator.name, data, f"fov={fov}" if fov is not None else "")
    cached = cache.get(key)
    if cached is not None:
        image, result = cached
        decoded = predicted = time.perf_counter()
    else:
        image = _decode_upload(data, upload.label, upload.max_pixels)
        if fov is not None:
            image = replace(image, camera=Camera.from_fov(image.width, image.height, fov))
        decoded = time.perf_counter()
        result = upload.estimator.predict(image)
        predicted = time.perf_counter()
        cache.put(key, image, result)
    headers = {
        "X-Depthlens-Model": result.model,
        "X-Depth-Kind": result.kind,
        "X-Depth-Cache": "hit" if cached is not None else "miss",
    }
    return image, result, decoded, predicted, headers


def _camera_json(result: DepthResult) -> CameraJson:
    """The camera a result was computed for (every estimator records one)."""
    camera = result.camera
    if camera is None:
        height, width = result.depth.shape
        camera = Camera.default(width, height)
    return CameraJson.model_validate(camera.as_dict())


def _decode_upload(data: bytes, label: str, max_pixels: int) -> Image:
    """The uploaded photo, or the 413 / 415 ApiError that says why not."""
    try:
        return load_image(data, max_pixels, name=label)
    except ImageTooLargeError as err:
        size = f"{err.pixels:,} pixels" if err.pixels is not None else "too many pixels"
        raise ApiError(
            413,
            "too_many_pixels",
            f"{label} has {size}, more than the {err.limit:,} this server accepts.",
        ) from err
    except ImageError as err:
        raise ApiError(415, "not_an_image", str(err)) from err


def _heatmap_png(result: DepthResult, colormap: str) -> bytes:
    return encode_png(np.asarray(result.colorize(colormap)))


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _encode_file(result: DepthResult, job: _DepthJob) -> tuple[bytes, str, dict[str, str]]:
    """The body, media type and headers of the color, png16 and npy formats."""
    filename = f"{job.upload.stem}{_SUFFIXES[job.output_format]}"
    if job.output_format == "npy":
        disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
        return encode_npy(result.depth), "application/octet-stream", disposition
    disposition = {"Content-Disposition": f'inline; filename="{filename}"'}
    if job.output_format == "png16":
        data, low, high = encode_png16(result.depth)
        return (
            data,
            "image/png",
            {**disposition, "X-Depth-Min": repr(low), "X-Depth-Max": repr(high)},
        )
    return _heatmap_png(result, job.colormap), "image/png", disposition


def _timings_ms(started: float, began: float, decoded: float, predicted: float) -> TimingsMs:
    """Stage times in ms; encoding and the total end now."""
    now = time.perf_counter()
    return TimingsMs(
        queue=round((began - started) * 1e3, 3),
        decode=round((decoded - began) * 1e3, 3),
        inference=round((predicted - decoded) * 1e3, 3),
        encode=round((now - predicted) * 1e3, 3),
        total=round((now - started) * 1e3, 3),
    )


def _depth_json(
    result: DepthResult, colormap: str, timings: TimingsMs, extras: Mapping[str, str]
) -> str:
    """The ``format=json`` body: statistics of the finite depth values, and ``extras``."""
    finite = result.depth[np.isfinite(result.depth)].astype(np.float64)
    if finite.size:
        stats: list[float | None] = [float(v) for v in np.percentile(finite, _PERCENTILES)]
        low, high = float(finite.min()), float(finite.max())
    else:
        stats, low, high = [None] * len(_PERCENTILES), None, None
    height, width = result.depth.shape
    body = DepthJson(
        model=result.model,
        kind=result.kind,
        units="meters" if result.kind == "metric" else "relative",
        width=width,
        height=height,
        min=low,
        max=high,
        percentiles=Percentiles(**{f"p{p}": v for p, v in zip(_PERCENTILES, stats, strict=True)}),
        timings_ms=timings,
        colormap=colormap,
        camera=_camera_json(result),
        **extras,
    )
    return body.model_dump_json(exclude_unset=True)
