"""What a request does on an inference thread: decode, predict, render, encode.

A route (``serve.app``) checks the form and builds a job; the job runs on the pool
(``serve.pool``) and returns the finished response. Each job's cost is bounded by its
``Upload``: ``max_pixels`` refuses a larger photo from its header (413), effects render
at most ``effect_pixels`` (a larger photo and its depth are shrunk first), clips at most
``clip_max_side``. A job checks ``Upload.gone`` between its steps and stops once its
client has left.
"""

from __future__ import annotations

import base64
import io
import math
import struct
import tempfile
import threading
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, BinaryIO, Literal

import numpy as np
from fastapi.responses import Response

from depthlens.effects.apply import EffectSettings, parallax_animation, render_still, shrink
from depthlens.errors import ImageError, ImageTooLargeError, UsageError
from depthlens.geometry.camera import Camera
from depthlens.io.depth_files import encode_npy, encode_png, encode_png16
from depthlens.io.images import Image, load_image
from depthlens.io.prompt_depth import with_prompt
from depthlens.io.video import VideoWriter
from depthlens.models.estimator import DepthResult, Estimator
from depthlens.models.tiling import TileOptions
from depthlens.models.weights import weights_sha256
from depthlens.serve.cache import DepthCache
from depthlens.serve.errors import ApiError, plain_text
from depthlens.serve.schemas import CameraJson, DepthJson, EffectJson, Percentiles, TimingsMs

OutputFormat = Literal["color", "png16", "npy", "json"]
FileFormat = Literal["color", "png16", "npy"]  # the formats answered with a file

_CLIP_MEDIA = {"gif": "image/gif", "mp4": "video/mp4"}
# Output file names end as the CLI's do (depthlens predict).
_SUFFIXES = {"color": "-depth.png", "png16": "-depth16.png", "npy": "-depth.npy"}
_PERCENTILES = (1, 5, 50, 95, 99)


class ClientGone(Exception):
    """The client of a job has left; the job stops without an answer."""


@dataclass(frozen=True)
class Upload:
    """A posted photo as a pool thread needs it: the served model and depth cache to
    take its depth with, the camera asked for, what to call it, the most pixels it may
    have (and why, for the 413), the flag set when its client leaves, and for a
    prompt-depth model the prompt depth file (``prompt``, named ``prompt_label``) with
    the scale asked for (None: the file type's default, ``io.prompt_depth``)."""

    estimator: Estimator
    cache: DepthCache
    file: BinaryIO
    label: str  # names the upload in messages
    stem: str  # output file names start with it
    fov: float | None  # degrees, replacing the photo's own camera
    max_pixels: int
    started: float  # perf_counter when the request's form had been received
    gone: threading.Event
    limit_note: str = ""  # ends the too-many-pixels sentence: what the limit is for
    prompt: BinaryIO | None = None
    prompt_label: str = ""
    prompt_scale: float | None = None
    tiling: TileOptions | None = None  # the form's tiles: the depth merged from tiles

    def check_client(self) -> None:
        """Raise ClientGone once the client has left."""
        if self.gone.is_set():
            raise ClientGone


@dataclass(frozen=True)
class DepthJob:
    """One POST /v1/depth."""

    upload: Upload
    colormap: str
    output_format: OutputFormat
    include_depth: bool
    include_color: bool


def depth_job(job: DepthJob) -> Response:
    """Decode, predict and encode one upload (on a pool thread); the finished response."""
    began = time.perf_counter()
    _, result, decoded, predicted, headers = photo_and_depth(job.upload)
    job.upload.check_client()
    if job.output_format == "json":
        extras = {}
        if job.include_depth:
            extras["depth"] = np.ascontiguousarray(result.depth, dtype="<f4").tobytes()
        if job.include_color:
            extras["color_png"] = _heatmap_png(result, job.colormap)
        timings = _timings_ms(job.upload.started, began, decoded, predicted)
        body = _json_with_base64(_depth_json(result, job.colormap, timings), extras)
        media_type = "application/json"
    else:
        body, media_type, format_headers = _encode_file(result, job)
        headers.update(format_headers)
        timings = _timings_ms(job.upload.started, began, decoded, predicted)
    headers["X-Processing-Ms"] = f"{timings.total:.1f}"
    return Response(body, media_type=media_type, headers=headers)


@dataclass(frozen=True)
class EffectJob:
    """One POST /v1/effects/{name}: the effect's settings in the photo's pixels, and
    the largest size it is rendered at."""

    upload: Upload
    name: str
    output_format: str
    settings: EffectSettings
    fps: float
    effect_pixels: int
    clip_max_side: int
    clip_pixels: int  # of all frames together


def effect_job(job: EffectJob) -> Response:
    """Decode, predict, render and encode one effect request (on a pool thread)."""
    began = time.perf_counter()
    image, result, decoded, predicted, headers = photo_and_depth(job.upload)
    job.upload.check_client()
    suffix = "gif" if job.output_format == "gif" else "mp4" if job.output_format == "mp4" else "png"
    filename = f"{job.upload.stem}-{job.name}.{suffix}"
    try:
        if job.name == "parallax":
            body = _parallax_clip(image.rgb, result, job)
            media_type = _CLIP_MEDIA[job.output_format]
        else:
            image_png, report = _still(image.rgb, result, job)
            if job.output_format == "json":
                timings = _timings_ms(job.upload.started, began, decoded, predicted)
                effect = EffectJson(
                    effect=job.name,
                    model=result.model,
                    kind=result.kind,
                    report=report,
                    image_png="",  # spliced in below
                    camera=_camera_json(result),
                    timings_ms=timings,
                )
                body = _json_with_base64(
                    effect.model_dump_json(exclude={"image_png"}), {"image_png": image_png}
                )
                media_type = "application/json"
            else:
                body, media_type = image_png, "image/png"
                if job.name == "obstacle":
                    headers["X-Obstacle-Warning"] = str(bool(report["warning"])).lower()
    except UsageError as err:
        raise ApiError(422, "invalid_parameter", str(err)) from err
    if media_type != "application/json":
        headers["Content-Disposition"] = f'inline; filename="{filename}"'
    timings = _timings_ms(job.upload.started, began, decoded, predicted)
    headers["X-Processing-Ms"] = f"{timings.total:.1f}"
    return Response(body, media_type=media_type, headers=headers)


def _still(rgb: np.ndarray, result: DepthResult, job: EffectJob) -> tuple[bytes, dict[str, object]]:
    """A still effect as PNG bytes and its report, rendered at most ``effect_pixels``.

    The request's pixel numbers (focus point, aperture) are in the photo's pixels and
    so is the report: only the image is smaller than a photo that was shrunk.
    """
    height, width = rgb.shape[:2]
    settings = job.settings
    if settings.focus_point is not None:
        x, y = settings.focus_point
        if not (0 <= x < width and 0 <= y < height):
            raise ApiError(
                422,
                "invalid_parameter",
                f"The focus point ({x}, {y}) is outside the {width}×{height} photo.",
            )
    still = render_still(
        job.name, rgb, result.depth, result.kind, settings, max_pixels=job.effect_pixels
    )
    job.upload.check_client()
    return encode_png(still.image), still.report


def _parallax_clip(rgb: np.ndarray, result: DepthResult, job: EffectJob) -> bytes:
    """The 3D-photo clip as GIF or MP4 bytes, rendered at most ``clip_max_side`` pixels
    wide or tall and ``clip_pixels`` over all frames: rendering and encoding cost about
    the same per pixel of every frame (the encoder needs a file, so it goes through a
    temporary folder)."""
    height, width = rgb.shape[:2]
    scale = min(
        job.clip_max_side / max(height, width),
        math.sqrt(job.clip_pixels / (job.settings.frames * height * width)),
    )
    rgb, depth = shrink(rgb, result.depth, scale)
    with tempfile.TemporaryDirectory(prefix="depthlens-clip-") as folder:
        clip = Path(folder) / f"clip.{job.output_format}"
        with VideoWriter(clip, job.fps) as writer:
            for frame in parallax_animation(rgb, depth, result.kind, job.settings):
                job.upload.check_client()
                writer.write(frame)
        return clip.read_bytes()


def photo_and_depth(
    upload: Upload,
) -> tuple[Image, DepthResult, float, float, dict[str, str]]:
    """The uploaded photo and its depth (from the cache when this model has seen these
    bytes with this camera and prompt depth), when decoding and prediction ended, and
    the response headers they give."""
    upload.check_client()
    data, fov, cache = upload.file.read(), upload.fov, upload.cache
    prompt = upload.prompt.read() if upload.prompt is not None else None
    asked = [f"fov={fov}" if fov is not None else "", f"{upload.tiling}" if upload.tiling else ""]
    key = DepthCache.key(
        upload.estimator.name,
        data,
        ";".join(part for part in asked if part),
        prompt,
        repr(upload.prompt_scale),
    )
    cached = cache.get(key)
    if cached is not None:
        image, result = cached
        if image.width * image.height > upload.max_pixels:
            raise _too_many_pixels(upload, image.width * image.height)
        decoded = predicted = time.perf_counter()
    else:
        image = _decode_upload(data, upload)
        if fov is not None:
            image = replace(image, camera=_camera_of_fov(image, fov))
        if prompt is not None:
            image = _with_prompt(image, prompt, upload)
        decoded = time.perf_counter()
        upload.check_client()
        tiling = upload.tiling
        if tiling is None:
            result = upload.estimator.predict(image)
        else:
            result = upload.estimator.predict(
                image, tiles=tiling.tiles, tile_overlap=tiling.overlap, upsample=tiling.upsample
            )
        predicted = time.perf_counter()
        cache.put(key, image, result)
    headers = {
        "X-Depthlens-Model": result.model,
        "X-Depth-Kind": result.kind,
        "X-Depth-Cache": "hit" if cached is not None else "miss",
    }
    return image, result, decoded, predicted, headers


def _camera_of_fov(image: Image, fov: float) -> Camera:
    """The camera of ``fov`` degrees across ``image``, or 422 when its other axis would
    see an impossible angle (179° across a portrait photo)."""
    try:
        return Camera.from_fov(image.width, image.height, fov, source="user")
    except ValueError as err:
        raise ApiError(
            422,
            "invalid_parameter",
            f"Invalid form field 'fov': {fov:g} degrees across this {image.width}×"
            f"{image.height} photo is no camera ({plain_text(str(err))}).",
        ) from err


def _with_prompt(image: Image, prompt: bytes, upload: Upload) -> Image:
    """``image`` with the uploaded prompt depth attached, or the 413 (more pixels than
    a photo may have, read from its header) or 422 ApiError that says why not."""
    pixels = prompt_pixels(prompt)
    if pixels is not None and pixels > upload.max_pixels:
        raise ApiError(
            413,
            "too_many_pixels",
            f"Prompt depth {upload.prompt_label} has {pixels:,} pixels, more than the "
            f"{upload.max_pixels:,} this server accepts.",
        )
    try:
        return with_prompt(image, prompt, upload.prompt_scale, upload.prompt_label)
    except ImageError as err:
        raise ApiError(422, "invalid_parameter", plain_text(str(err))) from err


def prompt_pixels(data: bytes) -> int | None:
    """The pixels of a prompt depth file as its header states them (PNG, NPY, or the
    ``depth`` array of an NPZ), before anything is decoded or decompressed: a small
    upload may unpack into gigabytes. None when no header can be read (the decoder then
    refuses the file)."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return int(width) * int(height)
        if data.startswith(b"\x93NUMPY"):
            return _npy_pixels(io.BytesIO(data))
        if data.startswith(b"PK\x03\x04"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive, archive.open("depth.npy") as f:
                return _npy_pixels(f)
    except (KeyError, ValueError, struct.error, zipfile.BadZipFile, EOFError):
        return None
    return None


def _npy_pixels(file: IO[bytes]) -> int:
    fmt = np.lib.format
    version = fmt.read_magic(file)
    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, _, _ = read(file)
    return math.prod(int(n) for n in shape)


def _decode_upload(data: bytes, upload: Upload) -> Image:
    """The uploaded photo, or the 413 / 415 ApiError that says why not."""
    try:
        return load_image(data, upload.max_pixels, name=upload.label)
    except ImageTooLargeError as err:
        # Pillow's own bomb check may come first, with its own (higher) limit: the
        # sentence names this server's.
        raise _too_many_pixels(upload, err.pixels) from err
    except ImageError as err:
        raise ApiError(415, "not_an_image", plain_text(str(err))) from err


def _too_many_pixels(upload: Upload, pixels: int | None) -> ApiError:
    size = f"{pixels:,} pixels" if pixels is not None else "too many pixels"
    return ApiError(
        413,
        "too_many_pixels",
        f"{upload.label} has {size}, more than the {upload.max_pixels:,} this server "
        f"accepts{upload.limit_note}.",
    )


def _heatmap_png(result: DepthResult, colormap: str) -> bytes:
    return encode_png(np.asarray(result.colorize(colormap)))


def _json_with_base64(model_json: str, extras: Mapping[str, bytes]) -> bytes:
    """``model_json`` (an object) with ``extras`` added as base64 strings, spliced in as
    bytes: a map of millions of pixels is not copied through Python strings."""
    head = model_json.encode()
    closing = head.rindex(b"}")
    parts = [head[:closing]]
    for name, data in extras.items():
        parts += [f',"{name}":"'.encode(), base64.b64encode(data), b'"']
    return b"".join([*parts, head[closing:]])


def encode_depth(
    result: DepthResult, output_format: FileFormat, colormap: str = "inferno"
) -> tuple[bytes, dict[str, str]]:
    """The file ``POST /v1/depth`` answers with for ``output_format`` (color: the
    ``colormap`` heatmap PNG; png16: the 16-bit PNG; npy: the float32 array), and the
    headers it needs (png16: X-Depth-Min/Max, the depths of levels 0 and 65535).

    ``benchmarks/bench_serve.py`` encodes its direct peer's answers with it too.
    """
    if output_format == "npy":
        return encode_npy(result.depth), {}
    if output_format == "png16":
        data, low, high = encode_png16(result.depth)
        return data, {"X-Depth-Min": repr(low), "X-Depth-Max": repr(high)}
    return _heatmap_png(result, colormap), {}


def _encode_file(result: DepthResult, job: DepthJob) -> tuple[bytes, str, dict[str, str]]:
    """The body, media type and headers of the color, png16 and npy formats."""
    output_format = job.output_format
    if output_format == "json":
        raise ValueError("format=json is answered by depth_job, not with a file")
    body, headers = encode_depth(result, output_format, job.colormap)
    filename = f"{job.upload.stem}{_SUFFIXES[output_format]}"
    if output_format == "npy":
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
        return body, "application/octet-stream", headers
    headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return body, "image/png", headers


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


def _camera_json(result: DepthResult) -> CameraJson:
    """The camera a result was computed for (every estimator records one)."""
    camera = result.camera
    if camera is None:
        height, width = result.depth.shape
        camera = Camera.default(width, height)
    return CameraJson.model_validate(camera.as_dict())


def _depth_json(result: DepthResult, colormap: str, timings: TimingsMs) -> str:
    """The ``format=json`` statistics of the finite depth values."""
    finite = result.depth[np.isfinite(result.depth)].astype(np.float64)
    if finite.size:
        stats: list[float | None] = [float(v) for v in np.percentile(finite, _PERCENTILES)]
        low, high = float(finite.min()), float(finite.max())
    else:
        stats, low, high = [None] * len(_PERCENTILES), None, None
    height, width = result.depth.shape
    body = DepthJson(
        model=result.model,
        weights=result.weights,
        weights_sha256=weights_sha256(result.weights) if result.weights else None,
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
    )
    return body.model_dump_json(exclude_unset=True)
