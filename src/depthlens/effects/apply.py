"""Every effect behind one call, so the CLI, the web API and video conversion run the
same code with the same settings.

``render_still`` makes one image (bokeh, stereo, obstacle, or a parallax frame) and a
JSON-ready report; ``parallax_animation`` yields the frames of the 3D-photo clip
(``loop_frames`` says how many, from a duration and frame rate); ``convert_video`` runs
an effect over a video, frame by frame, with stabilised depth.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from depthlens.effects.bokeh import lens_blur
from depthlens.effects.obstacle import annotate_obstacles, find_obstacles
from depthlens.effects.parallax import (
    CAMERA_PATHS,
    MAX_PARALLAX_FRAMES,
    camera_path,
    parallax_frames,
    render_view,
)
from depthlens.effects.stereo import STEREO_LAYOUTS, stereo_image
from depthlens.errors import UsageError
from depthlens.io.video import check_fps
from depthlens.models.spec import DepthKind
from depthlens.video.stabilize import DepthStabilizer
from depthlens.video.stream import (
    CameraSpec,
    DepthPredictor,
    MappedVideo,
    map_video_batches,
    predict_frames,
)

EFFECTS = ("bokeh", "parallax", "stereo", "obstacle")

# Frames in one loop of the 3D-photo clip when neither a count nor a duration is given:
# two seconds at 30 frames per second.
DEFAULT_LOOP_FRAMES = 60


def check_effect(name: str) -> None:
    """UsageError unless ``name`` is one of ``EFFECTS``."""
    if name not in EFFECTS:
        raise UsageError(f"Unknown effect '{name}': choose from {', '.join(EFFECTS)}.")


@dataclass(frozen=True)
class EffectSettings:
    """The knobs of all effects; each effect reads its own.

    bokeh: ``focus_point`` (x, y) in pixels or ``focus_depth`` (the map's units), else
    the subject at the centre; ``aperture`` is the largest blur radius in pixels.
    parallax: camera ``path`` (``CAMERA_PATHS``), ``frames`` per loop (1 to
    ``MAX_PARALLAX_FRAMES``; ``loop_frames`` turns a duration into it), ``amplitude`` of
    the motion and ``strength`` (camera travel as a fraction of the nearest depth).
    stereo: ``layout`` (``STEREO_LAYOUTS``) and ``baseline`` (largest disparity as a
    fraction of the width). obstacle: ``threshold`` in meters for metric depth, in
    nearness (0 far .. 1 near) for relative depth; None takes the default.
    """

    focus_point: tuple[int, int] | None = None
    focus_depth: float | None = None
    aperture: float = 12.0
    path: str = "circle"
    frames: int = DEFAULT_LOOP_FRAMES
    amplitude: float = 1.0
    strength: float = 0.05
    layout: str = "side-by-side"
    baseline: float = 0.03
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.path not in CAMERA_PATHS:
            raise UsageError(
                f"Unknown camera path '{self.path}': choose from {', '.join(CAMERA_PATHS)}."
            )
        if self.layout not in STEREO_LAYOUTS:
            raise UsageError(
                f"Unknown stereo layout '{self.layout}': choose from {', '.join(STEREO_LAYOUTS)}."
            )
        if self.frames < 1:
            raise UsageError(f"A clip needs at least 1 frame, not {self.frames}.")
        if self.frames > MAX_PARALLAX_FRAMES:
            raise UsageError(
                f"A parallax loop has at most {MAX_PARALLAX_FRAMES} frames, not {self.frames}."
            )
        if not self.aperture >= 0 or not self.baseline >= 0 or not self.strength >= 0:
            raise UsageError("The aperture, baseline and strength cannot be negative.")
        if self.threshold is not None and not self.threshold > 0:
            raise UsageError(f"The obstacle threshold must be positive, not {self.threshold}.")


def loop_frames(frames: int | None = None, duration: float | None = None, fps: float = 30.0) -> int:
    """The frames in one loop of the parallax clip: ``frames`` when given, else
    ``duration`` seconds at ``fps`` frames per second (rounded, at least 1), else
    ``DEFAULT_LOOP_FRAMES``.

    ``fps`` is checked even when ``frames`` is given (it is the rate the clip will be
    written at): outside ``MIN_FPS`` to ``MAX_FPS`` it is a ``FrameRateError``. A
    duration that is not a positive number of seconds, or a loop of more than
    ``MAX_PARALLAX_FRAMES`` frames, is a ``UsageError``.
    """
    rate = check_fps(fps)
    if frames is not None:
        count = frames
    elif duration is None:
        count = DEFAULT_LOOP_FRAMES
    else:
        seconds = _seconds(duration)
        if seconds * rate > MAX_PARALLAX_FRAMES + 0.5:  # before rounding: no overflow
            raise UsageError(
                f"A parallax loop has at most {MAX_PARALLAX_FRAMES} frames "
                f"({MAX_PARALLAX_FRAMES / rate:g} s at {rate:g} frames per second), "
                f"not {duration} s."
            )
        count = max(1, round(seconds * rate))
    if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 1:
        raise UsageError(f"A clip needs a whole number of frames, at least 1, not {count}.")
    if count > MAX_PARALLAX_FRAMES:
        raise UsageError(f"A parallax loop has at most {MAX_PARALLAX_FRAMES} frames, not {count}.")
    return int(count)


def _seconds(duration: object) -> float:
    """``duration`` in seconds, or UsageError unless it is a positive finite number."""
    try:
        seconds = float(duration)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise UsageError(f"The duration must be a positive number of seconds, not {duration}.")
    return seconds


@dataclass(frozen=True)
class StillEffect:
    """One rendered image (H', W', 3) uint8 and what the effect reports about it."""

    image: np.ndarray
    report: dict[str, object] = field(default_factory=dict)


def render_still(
    name: str,
    rgb: np.ndarray,
    depth: np.ndarray,
    kind: DepthKind,
    settings: EffectSettings,
    frame: int = 0,
    max_pixels: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> StillEffect:
    """Effect ``name`` on one photo and its depth map. For ``parallax`` this is frame
    ``frame`` of the clip (a video converted frame by frame moves along the path).

    With ``max_pixels``, a larger photo is rendered shrunk to that many pixels (what an
    effect costs grows with them): the settings' pixel numbers (focus point, aperture)
    are scaled to it and the report's mapped back, so both stay in the photo's pixels;
    only the image is smaller.

    ``on_progress(done, total)`` follows the steps of an effect that has them: bokeh's
    depth slabs (``lens_blur``); the others are one step and do not call it.

    Settings an effect cannot use (a focus point outside the photo, say) raise a
    UsageError with the effect's own sentence.
    """
    check_effect(name)
    height, width = rgb.shape[:2]
    scale = 1.0 if max_pixels is None else math.sqrt(max_pixels / (width * height))
    small_rgb, small_depth = shrink(rgb, depth, scale)
    sx, sy = small_rgb.shape[1] / width, small_rgb.shape[0] / height
    try:
        if (sx, sy) == (1.0, 1.0):
            return _render(name, rgb, depth, kind, settings, frame, on_progress)
        scaled = _scaled_settings(settings, sx, sy, width, height, small_rgb.shape[:2])
        still = _render(name, small_rgb, small_depth, kind, scaled, frame, on_progress)
    except ValueError as exc:
        raise UsageError(_sentence(exc)) from None
    report = _report_in_photo_pixels(dict(still.report), settings, sx, sy, width, height)
    return StillEffect(still.image, report)


def shrink(rgb: np.ndarray, depth: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The photo and its depth resized by ``scale`` when it is below 1 (area averaging
    for colours, nearest for depth, which must not mix near and far), else as they are."""
    if scale >= 1.0:
        return rgb, depth
    height, width = rgb.shape[:2]
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    return (
        cv2.resize(rgb, size, interpolation=cv2.INTER_AREA),
        cv2.resize(depth, size, interpolation=cv2.INTER_NEAREST),
    )


def _scaled_settings(
    settings: EffectSettings,
    sx: float,
    sy: float,
    width: int,
    height: int,
    small: tuple[int, int],
) -> EffectSettings:
    """``settings`` for the photo shrunk by (sx, sy) to ``small`` (height, width)."""
    focus = settings.focus_point
    if focus is not None:
        x, y = focus
        if not (0 <= x < width and 0 <= y < height):  # as lens_blur says it, in the photo
            raise ValueError(f"focus_point (x={x}, y={y}) is outside the {width}×{height} image")
        focus = (min(int(x * sx), small[1] - 1), min(int(y * sy), small[0] - 1))
    return replace(settings, focus_point=focus, aperture=settings.aperture * sx)


def _report_in_photo_pixels(
    report: dict[str, object],
    asked: EffectSettings,
    sx: float,
    sy: float,
    width: int,
    height: int,
) -> dict[str, object]:
    """An effect's report of a shrunk photo, with its pixel numbers in the photo's."""
    if "aperture_px" in report:
        report["aperture_px"] = asked.aperture
    point = report.get("focus_point")
    if isinstance(point, list):
        report["focus_point"] = (
            list(asked.focus_point)
            if asked.focus_point is not None
            else [min(int(point[0] / sx), width - 1), min(int(point[1] / sy), height - 1)]
        )
    box = report.get("nearest_box")
    if isinstance(box, dict):
        report["nearest_box"] = {
            key: min(round(value / sx), width) if key[0] == "x" else min(round(value / sy), height)
            for key, value in box.items()
        }
    return report


def _render(
    name: str,
    rgb: np.ndarray,
    depth: np.ndarray,
    kind: DepthKind,
    settings: EffectSettings,
    frame: int,
    on_progress: Callable[[int, int], None] | None = None,
) -> StillEffect:
    if name == "bokeh":
        blurred = lens_blur(
            rgb,
            depth,
            kind,
            focus_point=settings.focus_point,
            focus_depth=settings.focus_depth,
            aperture=settings.aperture,
            on_progress=on_progress,
        )
        report: dict[str, object] = {
            "focus_nearness": blurred.focus_nearness,
            "focus_point": list(blurred.focus_point) if blurred.focus_point else None,
            "aperture_px": blurred.max_radius,
        }
        return StillEffect(blurred.image, report)
    if name == "stereo":
        image = stereo_image(rgb, depth, kind, settings.layout, settings.baseline)
        return StillEffect(image, {"layout": settings.layout, "baseline": settings.baseline})
    if name == "obstacle":
        found, mask = find_obstacles(depth, kind, settings.threshold)
        return StillEffect(annotate_obstacles(rgb, mask, found), found.to_json())
    motions = camera_path(settings.path, settings.frames, settings.amplitude)
    index = frame % len(motions)
    image = render_view(rgb, depth, kind, motions[index], settings.strength)
    return StillEffect(image, {"path": settings.path, "frame": index})


def parallax_animation(
    rgb: np.ndarray,
    depth: np.ndarray,
    kind: DepthKind,
    settings: EffectSettings,
    on_progress: Callable[[int, int], None] | None = None,
) -> Iterator[np.ndarray]:
    """The frames of one loop of the 3D-photo clip along ``settings.path``, rendered as
    they are taken; ``on_progress(done, frames)`` after each."""
    try:
        return parallax_frames(
            rgb,
            depth,
            kind,
            path=settings.path,
            frames=settings.frames,
            amplitude=settings.amplitude,
            strength=settings.strength,
            on_progress=on_progress,
        )
    except ValueError as exc:
        raise UsageError(_sentence(exc)) from None


def _sentence(exc: ValueError) -> str:
    """The effects' ValueError text as a user-facing sentence (capital, full stop)."""
    text = str(exc).strip().rstrip(".")
    if "_" in text.split(" ", 1)[0]:  # starts with a parameter name: keep its spelling
        return f"The {text}."
    return f"{text[:1].upper()}{text[1:]}."


def convert_video(
    estimator: DepthPredictor,
    name: str,
    video: str | Path,
    out_path: str | Path,
    settings: EffectSettings,
    *,
    stabilize: bool = True,
    fps: float | None = None,
    camera: CameraSpec | None = None,
    batch_size: int = 4,
    on_report: Callable[[int, dict[str, object]], None] | None = None,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> MappedVideo:
    """Effect ``name`` on every frame of ``video``, streamed into ``out_path`` (a 2D → 3D
    conversion for ``stereo``; ``parallax`` moves along its path as the video plays).

    Each frame's depth comes from ``estimator``, stabilised over time unless
    ``stabilize`` is False (``video.stabilize.DepthStabilizer``), so the effect does
    not flicker with the model's per-frame scale. ``on_report(index, report)`` gets
    each frame's report (the obstacle warnings). Returns what was written
    (``MappedVideo``: the frames, the rate, and ``truncated`` when the input ended
    before its header said); nothing is left at ``out_path`` if it fails. ``fps`` must
    be ``MIN_FPS`` to ``MAX_FPS``. ``camera`` is the frames' intrinsics
    (as ``predict_video`` takes it), for metric models (default: ``Camera.default``);
    ``batch_size`` frames share a forward pass.
    """
    check_effect(name)
    stabilizer = DepthStabilizer(estimator.kind) if stabilize else None

    def per_batch(frames: list[np.ndarray], first_index: int) -> list[np.ndarray]:
        depths = predict_frames(estimator, frames, first_index, video, stabilizer, camera)
        rendered = []
        for offset, (frame, depth) in enumerate(zip(frames, depths, strict=True)):
            index = first_index + offset
            still = render_still(name, frame, depth, estimator.kind, settings, frame=index)
            if on_report is not None:
                on_report(index, still.report)
            rendered.append(still.image)
        return rendered

    return map_video_batches(
        video, out_path, per_batch, batch_size=batch_size, fps=fps, on_progress=on_progress
    )
