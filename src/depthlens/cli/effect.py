"""``depthlens effect``: bokeh, parallax, stereo and obstacle on a photo or a video."""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.progress import Progress, TaskID

from depthlens.cli.common import (
    AllowTruncatedOption,
    BackendOption,
    CxOption,
    CyOption,
    DeviceOption,
    FovOption,
    FxOption,
    FyOption,
    MaxMegapixelsOption,
    ModelOption,
    PrecisionOption,
    WeightsOption,
    _progress_bar,
    _user_camera,
    info,
    say,
)
from depthlens.cli.predict import truncated_warning
from depthlens.errors import ImageError, UsageError
from depthlens.io.depth_files import write_bytes, write_png
from depthlens.io.images import DEFAULT_MAX_PIXELS, load_image
from depthlens.io.video import MAX_FPS, MIN_FPS
from depthlens.pipeline import is_video_input

STILL_SUFFIXES = (".png", ".jpg", ".jpeg")  # what depthlens effect writes a photo's result as


def effect(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="bokeh, parallax, stereo or obstacle.")
    ],
    source: Annotated[Path, typer.Argument(metavar="INPUT", help="A photo or a video.")],
    output: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            help="Output file: .png or .jpg for a photo's bokeh, stereo and obstacle; "
            ".mp4 or .gif for parallax and for any effect of a video.",
        ),
    ],
    model: ModelOption = None,
    weights: WeightsOption = None,
    device: DeviceOption = "auto",
    backend: BackendOption = "torch",
    precision: PrecisionOption = "fp32",
    max_megapixels: MaxMegapixelsOption = DEFAULT_MAX_PIXELS / 1e6,
    focus: Annotated[
        str | None,
        typer.Option(help="bokeh: X,Y pixel to focus on (default: the subject at the centre)."),
    ] = None,
    focus_depth: Annotated[
        float | None,
        typer.Option(help="bokeh: focus at this depth, in the model's units (meters if metric)."),
    ] = None,
    aperture: Annotated[
        float, typer.Option(min=0, help="bokeh: the largest blur radius, in pixels.")
    ] = 12.0,
    path: Annotated[
        str, typer.Option(help="parallax: circle, swing, zoom or dolly-zoom.")
    ] = "circle",
    frames: Annotated[
        int | None,
        typer.Option(min=1, help="parallax: frames per loop (default: --duration × fps, or 60)."),
    ] = None,
    duration: Annotated[
        float | None, typer.Option(min=0.1, help="parallax: seconds per loop.")
    ] = None,
    fps: Annotated[
        float | None,
        typer.Option(
            min=MIN_FPS,
            max=MAX_FPS,
            help="Frame rate of the output (default: 30, or the video's own).",
        ),
    ] = None,
    amplitude: Annotated[
        float, typer.Option(min=0, help="parallax: size of the camera motion.")
    ] = 1.0,
    strength: Annotated[
        float, typer.Option(min=0, help="parallax: camera travel, a fraction of the nearest depth.")
    ] = 0.05,
    layout: Annotated[
        str, typer.Option(help="stereo: side-by-side, top-bottom or anaglyph.")
    ] = "side-by-side",
    baseline: Annotated[
        float, typer.Option(min=0, help="stereo: the largest disparity, a fraction of the width.")
    ] = 0.03,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="obstacle: meters for metric models (default 1), nearness 0-1 otherwise (0.8)."
        ),
    ] = None,
    stabilize: Annotated[
        bool, typer.Option(help="Video: remove the model's frame-to-frame depth jitter.")
    ] = True,
    fx: FxOption = None,
    fy: FyOption = None,
    cx: CxOption = None,
    cy: CyOption = None,
    fov: FovOption = None,
    allow_truncated: AllowTruncatedOption = False,
) -> None:
    """Apply a depth effect to a photo or a video and write it to OUTPUT.

    bokeh blurs by depth around a focus; parallax makes the 3D-photo clip; stereo makes
    a stereo pair or anaglyph; obstacle marks what is near and writes its report as JSON
    beside the output (OUTPUT.json, or OUTPUT.jsonl with one line per video frame).
    """
    import depthlens
    from depthlens.effects.apply import (
        EffectSettings,
        check_effect,
        convert_video,
        loop_frames,
        parallax_animation,
        render_still,
    )
    from depthlens.io.video import VIDEO_SUFFIXES, write_video

    check_effect(name)
    if not source.is_file():
        raise ImageError(f"{source} does not exist or is not a file.")
    video_in = is_video_input(source)
    clip_out = video_in or name == "parallax"
    suffix = output.suffix.lower()
    if clip_out and suffix not in VIDEO_SUFFIXES:
        raise UsageError(
            f"{'A video' if video_in else 'The parallax effect'} gives a clip: name the output "
            f"{output.with_suffix('.mp4').name} or {output.with_suffix('.gif').name}."
        )
    if not clip_out and suffix not in STILL_SUFFIXES:
        raise UsageError(f"Name the output .png or .jpg, not {output.name}.")
    loop = loop_frames(frames, duration, fps or 30.0)
    settings = EffectSettings(
        focus_point=_parse_point(focus) if focus else None,
        focus_depth=focus_depth,
        aperture=aperture,
        path=path,
        frames=loop,
        amplitude=amplitude,
        strength=strength,
        layout=layout,
        baseline=baseline,
        threshold=threshold,
    )
    user_camera = _user_camera(fx, fy, cx, cy, fov)
    estimator = depthlens.load_model(model, weights, device, backend=backend, precision=precision)
    start = time.perf_counter()
    if video_in:
        reports: list[dict[str, object]] = []
        progress = _progress_bar(name, unit="frames/s", with_eta=True)
        with progress:
            written = convert_video(
                estimator,
                name,
                source,
                output,
                settings,
                stabilize=stabilize,
                fps=fps,
                camera=user_camera,
                on_report=(lambda i, r: reports.append({"frame": i, **r}))
                if name == "obstacle"
                else None,
                on_progress=_frames_task(progress, name, time.monotonic()),
            )
        if reports:
            lines = "".join(json.dumps(report) + "\n" for report in reports)
            write_bytes(output.with_suffix(".jsonl"), lines.encode())
        elapsed = time.perf_counter() - start
        say(
            f"{name}: {written.frames} frames -> {output} in {elapsed:.1f} s "
            f"({written.frames / max(elapsed, 1e-9):.2f} frames/s) with {estimator.name}"
        )
        if written.truncated:
            truncated_warning(source, written.frames, written.expected_frames)
            if not allow_truncated:
                raise typer.Exit(1)
        return
    image = load_image(source, int(max_megapixels * 1e6))
    if user_camera is not None:
        image = replace(image, camera=user_camera(image.width, image.height))
    result = estimator.predict(image)
    # The effect's own steps: parallax's frames, bokeh's depth slabs; the others only
    # show the time going by.
    clip = name == "parallax"
    progress = _progress_bar(
        name, with_rate=clip, unit="frames/s", with_eta=clip, with_elapsed=not clip
    )
    with progress:
        task = progress.add_task(name, total=loop if clip else None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        if clip:
            frames_out = parallax_animation(image.rgb, result.depth, result.kind, settings, advance)
            count = write_video(output, frames_out, fps or 30.0)
        else:
            still = render_still(
                name, image.rgb, result.depth, result.kind, settings, on_progress=advance
            )
    if clip:
        say(f"parallax: {count} frames -> {output}")
        return
    _write_still(output, still.image)
    if name == "obstacle":
        report = {"model": result.model, "kind": result.kind, **still.report}
        write_bytes(output.with_suffix(".json"), (json.dumps(report, indent=2) + "\n").encode())
        sys.stdout.write(json.dumps(report) + "\n")  # one line, for pipes (no wrapping)
        info(f"wrote {output} and {output.with_suffix('.json')}")
        return
    say(f"{name}: {output}")


def _frames_task(
    progress: Progress, label: str, started: float
) -> Callable[[int, int | None], None]:
    """``on_progress(done, total)`` of a video: the first call that knows the frame count
    (or has frames done) adds the task, timed from ``started`` (``time.monotonic()``
    before the video was opened), so the bar opens with its real total and its rate
    counts the first frames' time."""
    tasks: list[TaskID] = []

    def update(done: int, total: int | None) -> None:
        if not tasks:
            if total is None and done == 0:
                return
            tasks.append(progress.add_task(label, total=total, started=started))
        progress.update(tasks[0], completed=done, total=total)

    return update


def _parse_point(text: str) -> tuple[int, int]:
    """``"X,Y"`` pixel coordinates."""
    parts = text.replace(" ", "").split(",")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise UsageError(f"--focus takes a pixel as X,Y (e.g. 320,240), not '{text}'.")
    return int(parts[0]), int(parts[1])


def _write_still(path: Path, rgb: np.ndarray) -> None:
    """An effect image as PNG or JPEG (by the suffix), written atomically."""
    if path.suffix.lower() == ".png":
        write_png(path, rgb)
        return
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format="JPEG", quality=95)
    write_bytes(path, buffer.getvalue())
