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

Routes check the form and hand a job (``serve.jobs``) to the pool: decoding, inference
and encoding run on its threads, never on the event loop. A job whose client leaves
before it starts is skipped, and a running one stops at its next step. Every request's
cost is bounded by ``ServeSettings``; every error is JSON ``{"error": {"status", "code",
"message"}}`` with one sentence (``serve.errors``); tracebacks go to the server log only.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PureWindowsPath
from typing import Annotated, Any, Literal, get_args

import fastapi_offline
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.routing import APIRouter
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator
from starlette.exceptions import HTTPException as StarletteHTTPException

from depthlens import __version__, load_model
from depthlens.effects.apply import EFFECTS, EffectSettings
from depthlens.effects.parallax import CAMERA_PATHS
from depthlens.effects.stereo import STEREO_LAYOUTS
from depthlens.errors import UnknownModelError, UsageError
from depthlens.geometry.camera import MAX_FOV_DEG, MIN_FOV_DEG
from depthlens.io.video import MAX_FPS, MIN_FPS
from depthlens.models.estimator import Estimator
from depthlens.models.registry import MODELS
from depthlens.models.tiling import DEFAULT_OVERLAP, MAX_TILES, UPSAMPLES, TileOptions
from depthlens.serve.cache import DepthCache
from depthlens.serve.errors import ApiError, install_error_handlers, quoted
from depthlens.serve.jobs import DepthJob, EffectJob, OutputFormat, Upload, depth_job, effect_job
from depthlens.serve.middleware import (
    SECURITY_HEADERS,
    BodyLimit,
    SecurityHeaders,
    docs_csp,
    upload_too_large,
)
from depthlens.serve.pool import InferencePool, PoolFull
from depthlens.serve.schemas import (
    DepthJson,
    EffectJson,
    ErrorBody,
    Health,
    Limits,
    ModelInfo,
    ModelsResponse,
    QueueStats,
)
from depthlens.serve.settings import ServeSettings
from depthlens.viz.colormaps import COLORMAPS

__all__ = ["FORMATS", "ServeSettings", "create_app", "load_models"]

STATIC_DIR = Path(__file__).parent / "static"
# Swagger UI 5 (it reads OpenAPI 3.1, which FastAPI writes), as the fastapi-offline
# package ships it; only its files are used.
SWAGGER_DIR = Path(fastapi_offline.__file__).parent / "static"

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
# Status 499 (nginx's "client closed request"): what a request whose client left ends
# with; nobody reads it, the access log shows it.
CLIENT_GONE = 499

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def load_models(settings: ServeSettings) -> dict[str, Estimator]:
    """The served models by name, loaded once per process (``load_model`` caches them).

    Raises the DepthlensError of the first model that cannot be loaded.
    """
    estimators = {}
    for name in settings.resolved().served:
        if name not in MODELS:
            raise UnknownModelError(
                f"Unknown model '{name}': serve one of {', '.join(sorted(MODELS))}."
            )
        estimators[name] = load_model(
            name,
            settings.weights.get(name),
            settings.device,
            backend=settings.backend,
            precision=settings.precision,
        )
    return estimators


@dataclass(frozen=True)
class _Runtime:
    """What the lifespan sets up: the loaded models and the inference pool."""

    estimators: dict[str, Estimator]
    pool: InferencePool
    cache: DepthCache


def create_app(settings: ServeSettings) -> FastAPI:
    """The web service for ``settings``; models load when the app starts (lifespan).

    A model that cannot be loaded makes start-up fail with its DepthlensError. With no
    models named the default model is served (``ServeSettings.resolved``).
    """
    settings = settings.resolved()

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
    app.add_middleware(BodyLimit, settings=settings)
    app.add_middleware(SecurityHeaders)  # added last: outside BodyLimit, so on its 413s
    install_error_handlers(app, SECURITY_HEADERS)

    docs_page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="depthlens API",
        swagger_js_url="/docs-assets/swagger-ui-bundle.js",
        swagger_css_url="/docs-assets/swagger-ui.css",
        swagger_favicon_url="/static/favicon.svg",
    )
    docs_policy = docs_csp(bytes(docs_page.body).decode())

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(docs_page.body, headers={"Content-Security-Policy": docs_policy})

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount("/docs-assets", StaticFiles(directory=SWAGGER_DIR), name="docs-assets")
    return app


def _runtime(request: Request) -> _Runtime:
    runtime: _Runtime = request.app.state.runtime
    return runtime


def _settings(request: Request) -> ServeSettings:
    settings: ServeSettings = request.app.state.settings
    return settings


def _known_colormap(name: str) -> str:
    if name not in COLORMAPS:
        raise ValueError(f"unknown colormap '{quoted(name)}'; choose one of {', '.join(COLORMAPS)}")
    return name


def _choice(choices: tuple[str, ...], what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(
                f"unknown {what} '{quoted(value)}'; choose one of {', '.join(choices)}"
            )
        return value

    return check


router = APIRouter()

# Form fields both photo endpoints take.
PhotoField = Annotated[
    UploadFile, File(description="The photo: JPEG, PNG, WebP, TIFF, BMP, GIF or HEIC/HEIF.")
]
ModelField = Annotated[
    str | None, Form(description="A served model (GET /v1/models); default: the first.")
]
FovField = Annotated[
    float | None,
    Form(
        ge=MIN_FOV_DEG,
        le=MAX_FOV_DEG,
        description=f"The camera's horizontal field of view in degrees, {MIN_FOV_DEG:g} to "
        f"{MAX_FOV_DEG:g} (metric models scale by it); default: the photo's EXIF, else 60.",
    ),
]
PromptField = Annotated[
    UploadFile | None,
    File(
        description="Prompt-depth models (prompt-depth-anything-*) only, and required by "
        "them: a low-resolution metric depth map of the photo, e.g. an iPhone LiDAR frame, "
        "with the photo's aspect ratio: a 16-bit single-channel PNG in millimetres, or an "
        "NPY (or NPZ with a 'depth' array) in meters."
    ),
]
PromptScaleField = Annotated[
    float | None,
    Form(
        gt=0,
        allow_inf_nan=False,
        description="With prompt_depth: multiplies its values into meters; default 0.001 "
        "for a PNG (millimetres), 1 for NPY/NPZ.",
    ),
]


TilesField = Annotated[
    str | None,
    Form(
        description="Detail for large photos: merge a global pass with overlapping tiles "
        f"at the model's input size; auto, or 1 to {MAX_TILES} tiles along the long side. "
        "Not for prompt-depth models.",
    ),
]
TileOverlapField = Annotated[
    float,
    Form(ge=0.05, le=0.5, description="With tiles: the fraction of a tile its neighbour shares."),
]
UpsampleField = Annotated[
    str,
    Form(
        description="How the depth reaches the photo's size: bilinear, or guided (edges "
        "snapped to the photo's; without tiles, of the one pass); auto: guided with tiles.",
        json_schema_extra={"enum": list(UPSAMPLES)},
    ),
]


def _error_doc(description: str, **extra: Any) -> dict[str, Any]:
    """The OpenAPI entry of an error status: the ErrorBody schema and what it means."""
    return {"model": ErrorBody, "description": description, **extra}


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error_doc("No file in the form field 'image' (missing_image), or a malformed form."),
    404: _error_doc("The model is not served here (unknown_model)."),
    408: _error_doc("The request body stalled or took too long to arrive (body_timeout)."),
    413: _error_doc(
        "The upload or the image is too large (upload_too_large, too_many_pixels); the "
        "limits are in GET /v1/models."
    ),
    415: _error_doc("The file is not an image depthlens can decode (not_an_image)."),
    422: _error_doc(
        "A form field has an invalid value, or the prompt depth is missing, not wanted by "
        "the model or unusable (invalid_parameter)."
    ),
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
    prompt_depth: PromptField = None,
    prompt_scale: PromptScaleField = None,
    tiles: TilesField = None,
    tile_overlap: TileOverlapField = DEFAULT_OVERLAP,
    upsample: UpsampleField = "auto",
) -> Response:
    """Estimate the depth of the uploaded photo, at its own size.

    Photos up to the server's `max_megapixels` (40 MP by default; GET /v1/models) are
    answered at their own size. `format=json` with `include_depth` or `include_color`
    carries the whole map in base64 (about 5.4 bytes a pixel): photos above
    `json_megapixels` (16 MP by default) get 413 there; ask for `format=npy` or `png16`.
    A prompt-depth model (prompt-depth-anything-*) needs `prompt_depth` beside the photo.
    `tiles` adds detail to large photos (a global pass merged with tiles; slower by
    about the number of tiles).
    """
    settings = _settings(request)
    upload = _posted_photo(
        request, image, model, fov, time.perf_counter(), prompt_depth, prompt_scale
    )
    upload = replace(upload, tiling=_tiling(upload, tiles, tile_overlap, upsample))
    if output_format == "json" and (include_depth or include_color):
        upload = _with_limit(
            upload,
            settings.json_pixels,
            " in JSON with include_depth or include_color; ask for format=npy or png16",
        )
    job = DepthJob(upload, colormap, output_format, include_depth, include_color)
    return await _run_on_pool(request, functools.partial(depth_job, job), upload.gone)


def _tiling(upload: Upload, tiles: str | None, overlap: float, upsample: str) -> TileOptions | None:
    """The tiling the form asks for (None: one pass); 422 ApiError for values out of
    range or a prompt-depth model."""
    try:
        tiling = TileOptions.parse(tiles, overlap, upsample)
    except UsageError as exc:
        raise ApiError(422, "invalid_parameter", str(exc)) from None
    if tiling is not None and upload.estimator.spec.takes_prompt_depth:
        raise ApiError(
            422, "invalid_parameter", "Prompt-depth models run untiled; leave out 'tiles'."
        )
    return tiling


def _with_limit(upload: Upload, max_pixels: int, note: str) -> Upload:
    """``upload`` held to ``max_pixels`` when that is lower than the server's limit."""
    if max_pixels >= upload.max_pixels:
        return upload
    return replace(upload, max_pixels=max_pixels, limit_note=note)


def _posted_photo(
    request: Request,
    image: UploadFile,
    model: str | None,
    fov: float | None,
    started: float,
    prompt: UploadFile | None = None,
    prompt_scale: float | None = None,
) -> Upload:
    """The photo of a request with the served model it asks for (default: the first)
    and its prompt depth, after checking the uploads' declared sizes and that the model
    takes a prompt depth exactly when one is given; 404, 413 or 422 ApiError otherwise."""
    settings, runtime = _settings(request), _runtime(request)
    name = model or settings.default_model
    estimator = runtime.estimators.get(name)
    if estimator is None:
        raise ApiError(
            404,
            "unknown_model",
            f"Model '{quoted(name)}' is not served here; use one of {', '.join(settings.served)}.",
        )
    if image.size is not None and image.size > settings.max_upload_bytes:
        raise upload_too_large(settings)
    _check_prompt(estimator, prompt, prompt_scale)
    if prompt is not None and prompt.size is not None and prompt.size > settings.max_upload_bytes:
        raise upload_too_large(settings)
    filename = _safe_name(image.filename)
    return Upload(
        estimator=estimator,
        cache=runtime.cache,
        file=image.file,
        label=filename or "The uploaded file",
        stem=Path(filename).stem or "image",
        fov=fov,
        max_pixels=settings.max_pixels,
        started=started,
        gone=threading.Event(),
        prompt=prompt.file if prompt is not None else None,
        prompt_label=(_safe_name(prompt.filename) or "upload") if prompt is not None else "",
        prompt_scale=prompt_scale,
    )


def _check_prompt(
    estimator: Estimator, prompt: UploadFile | None, prompt_scale: float | None
) -> None:
    """422 ApiError unless a prompt depth comes exactly with a prompt-depth model (and
    prompt_scale only with a prompt depth)."""
    name = estimator.name
    if prompt is None and prompt_scale is not None:
        raise ApiError(
            422,
            "invalid_parameter",
            "The form field 'prompt_scale' goes with a prompt depth file in 'prompt_depth'.",
        )
    if prompt is not None and not estimator.spec.takes_prompt_depth:
        raise ApiError(
            422,
            "invalid_parameter",
            f"Model '{quoted(name)}' takes no prompt depth; the form field 'prompt_depth' is "
            "for the prompt-depth-anything-* models.",
        )
    if prompt is None and estimator.spec.takes_prompt_depth:
        raise ApiError(
            422,
            "invalid_parameter",
            f"Model '{quoted(name)}' needs a prompt depth: send a 16-bit PNG (millimetres) or "
            "an NPY/NPZ (meters) of the photo's depth in the form field 'prompt_depth'.",
        )


async def _run_on_pool(
    request: Request, job: functools.partial[Response], gone: threading.Event
) -> Response:
    """``job`` on an inference thread, or 503 when every worker and queue slot is taken.

    While it waits or runs, the client is watched: once it leaves, ``gone`` is set (a
    running job stops at its next step) and the wait is cancelled, which takes a job
    that has not started out of the queue and frees its slot at once.
    """
    if await request.is_disconnected():
        return Response(status_code=CLIENT_GONE)
    work = asyncio.ensure_future(_runtime(request).pool.run(job))
    watch = asyncio.ensure_future(_client_left(request))
    try:
        await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
    if not work.done():
        gone.set()
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        return Response(status_code=CLIENT_GONE)
    try:
        return work.result()
    except PoolFull as err:
        raise ApiError(
            503,
            "busy",
            "The server is busy with other photos; retry in a second.",
            {"Retry-After": "1"},
        ) from err


async def _client_left(request: Request) -> None:
    """Return once the client of ``request`` has disconnected (its body is read: all
    the server can receive now is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


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
        int | None,
        Form(ge=0, description="bokeh: pixel column of the photo to focus on (with focus_y)."),
    ] = None,
    focus_y: Annotated[
        int | None,
        Form(ge=0, description="bokeh: pixel row of the photo to focus on (with focus_x)."),
    ] = None,
    aperture: Annotated[
        float,
        Form(ge=0, le=100, description="bokeh: the largest blur radius, in the photo's pixels."),
    ] = 12.0,
    path: Annotated[
        str,
        AfterValidator(_choice(CAMERA_PATHS, "camera path")),
        Form(description="parallax: camera path.", json_schema_extra={"enum": list(CAMERA_PATHS)}),
    ] = "circle",
    frames: Annotated[
        int,
        Form(
            ge=1,
            description="parallax: frames per loop, at most clip_max_frames (120); more "
            "frames make a smaller clip (clip_megapixels).",
        ),
    ] = 30,
    fps: Annotated[
        float,
        Form(ge=MIN_FPS, le=MAX_FPS, description="parallax: frames per second."),
    ] = 15.0,
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
            allow_inf_nan=False,
            description="obstacle: meters for metric models (default 1), nearness 0-1 for "
            "relative ones (default 0.8).",
        ),
    ] = None,
    fov: FovField = None,
    prompt_depth: PromptField = None,
    prompt_scale: PromptScaleField = None,
) -> Response:
    """Run the effect on the uploaded photo and its depth (the served model's).

    The depth is taken at the photo's own size (up to `max_megapixels`). bokeh, stereo
    and obstacle render a photo above `effect_megapixels` (2 MP by default; GET
    /v1/models) shrunk to that size, so their image is smaller than the photo; pixel
    numbers, asked (focus_x, focus_y, aperture) or reported, stay in the photo's pixels.
    parallax renders at most `clip_max_side` (640) pixels wide or tall, at most
    `clip_max_frames` (120) frames, and at most `clip_megapixels` (10 MP) in all its
    frames together: a clip of more than 30 frames is rendered smaller. A prompt-depth
    model (prompt-depth-anything-*) needs `prompt_depth` beside the photo.
    """
    settings = _settings(request)
    upload = _posted_photo(
        request, image, model, fov, time.perf_counter(), prompt_depth, prompt_scale
    )
    chosen = output_format or _EFFECT_FORMATS[name][0]
    if chosen not in _EFFECT_FORMATS[name]:
        raise ApiError(
            422,
            "invalid_parameter",
            f"The {name} effect answers in {' or '.join(_EFFECT_FORMATS[name])}, not {chosen}.",
        )
    if (focus_x is None) != (focus_y is None):
        raise ApiError(422, "invalid_parameter", "Give both focus_x and focus_y, or neither.")
    if name == "parallax" and frames > settings.clip_max_frames:
        raise ApiError(
            422,
            "invalid_parameter",
            f"Invalid form field 'frames': a clip has at most {settings.clip_max_frames} frames "
            f"here, not {frames}.",
        )
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
    job = EffectJob(
        upload,
        name,
        chosen,
        effect_settings,
        fps,
        settings.effect_pixels,
        settings.clip_max_side,
        settings.clip_pixels,
    )
    return await _run_on_pool(request, functools.partial(effect_job, job), upload.gone)


@router.get("/v1/models", summary="Served models, colormaps, formats and limits")
async def list_models(request: Request) -> ModelsResponse:
    """What this server offers; the default model comes first."""
    settings, runtime = _settings(request), _runtime(request)
    return ModelsResponse(
        default=settings.default_model,
        models=[
            ModelInfo(
                name=name,
                kind=estimator.kind,
                description=estimator.spec.description,
                loaded=True,
                needs_prompt_depth=estimator.spec.takes_prompt_depth,
            )
            for name, estimator in runtime.estimators.items()
        ],
        colormaps=list(COLORMAPS),
        formats=list(FORMATS),
        effects=list(EFFECTS),
        limits=Limits(
            max_upload_mb=settings.max_upload_mb,
            max_megapixels=settings.max_megapixels,
            effect_megapixels=settings.effect_megapixels,
            json_megapixels=settings.json_megapixels,
            clip_max_side=settings.clip_max_side,
            clip_max_frames=settings.clip_max_frames,
            clip_megapixels=settings.clip_megapixels,
        ),
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
