"""What the verbs of the ``depthlens`` command share: the stdout and stderr consoles,
the options several verbs take, the global ``--quiet`` / ``--verbose`` state, the
progress bar, the camera options, and the one-line forms of failures and usage errors.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text
from typer.core import TyperArgument, TyperCommand, TyperOption

from depthlens.errors import UsageError
from depthlens.geometry.camera import MAX_FOV_DEG, MIN_FOV_DEG, Camera

out = Console()
err = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class Verbosity:
    """The global ``--quiet`` / ``--verbose`` choice, set by the app's callback before a
    verb runs and consulted by the verbs: quiet hides progress bars and informational
    stderr lines (failures and errors still print); verbose lets Python warnings through
    and prints the traceback of an unexpected per-file failure."""

    quiet: bool = False
    verbose: bool = False
    # The last exception whose traceback was shown, so that it is shown once even when
    # its reason is asked for twice.
    traced: object = None


verbosity = Verbosity()


def set_verbosity(quiet: bool = False, verbose: bool = False) -> None:
    """Set the global state (``main`` resets it at every call, the callback sets it)."""
    verbosity.quiet, verbosity.verbose, verbosity.traced = quiet, verbose, None


def say(line: str) -> None:
    """A result line on stdout (``wrote …``, a summary), never wrapped or read as markup."""
    out.print(line, highlight=False, markup=False, soft_wrap=True)


def info(message: str) -> None:
    """An informational stderr line (``wrote PATH``), hidden by ``--quiet``."""
    if not verbosity.quiet:
        err.print(message, markup=False)


# Options that predict, eval and pseudo-label share.
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Zoo name or weights path [default: depth-anything-v2-small where its weights are "
        "here or can be downloaded, else the bundled depthlens-small].",
    ),
]
WeightsOption = Annotated[
    Path | None, typer.Option(help="Checkpoint file or folder for the model.")
]
RecursiveOption = Annotated[bool, typer.Option("--recursive", "-r", help="Descend folders.")]
BatchSizeOption = Annotated[int, typer.Option(min=1, help="Images per forward pass.")]
DeviceOption = Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")]
BackendOption = Annotated[
    str,
    typer.Option(help="How the network runs: torch, onnxruntime or openvino (CPU)."),
]
PrecisionOption = Annotated[
    str,
    typer.Option(
        help="fp32, bf16 (torch, openvino), int8 (faster, slightly less exact) or "
        "int8-static (onnxruntime, openvino: activations too, calibrated)."
    ),
]
MaxMegapixelsOption = Annotated[
    float, typer.Option(min=0.01, help="Refuse larger images (decompression bombs).")
]
FxOption = Annotated[
    float | None, typer.Option("--fx", help="Focal length in pixels (overrides EXIF).")
]
FyOption = Annotated[float | None, typer.Option("--fy", help="Vertical focal; default --fx.")]
CxOption = Annotated[
    float | None, typer.Option("--cx", help="Principal point x; default the centre.")
]
CyOption = Annotated[
    float | None, typer.Option("--cy", help="Principal point y; default the centre.")
]
AllowTruncatedOption = Annotated[
    bool,
    typer.Option(
        "--allow-truncated",
        help="Video: a file that ends before its header says is not a failure (exit 0).",
    ),
]
FovOption = Annotated[
    float | None,
    typer.Option("--fov", help="Horizontal field of view in degrees (instead of --fx)."),
]

InputListOption = Annotated[
    Path | None,
    typer.Option(
        "--input-list",
        help="Text file of image paths, one per line, read as a stream (millions are fine).",
    ),
]
ResumeOption = Annotated[
    bool, typer.Option("--resume", help="Skip inputs whose outputs an earlier run completed.")
]
ReportOption = Annotated[
    Path | None,
    typer.Option("--report", help="Write the run's report: one JSON line per input."),
]
EngineOption = Annotated[
    str, typer.Option(help="local (this process) or ray (a Ray Data job: depthlens[ray]).")
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address", help="Ray cluster: auto or HOST:PORT; default a local one on 127.0.0.1."
    ),
]
ActorsOption = Annotated[
    int | None, typer.Option(min=1, help="Ray: model copies (default: CPUs / --cpus-per-actor).")
]
CpusPerActorOption = Annotated[
    float | None,
    typer.Option(min=0.01, help="Ray: CPUs (torch threads) of each model copy [default: 1]."),
]


def engine_from_options(
    engine: str, address: str | None, actors: int | None, cpus_per_actor: float | None
) -> Any:
    """The ``pipeline.Engine`` that ``--engine`` names (None: the local one); Ray's options
    without ``--engine ray`` are refused."""
    choice = engine.strip().lower()
    if choice == "local":
        if address is not None or actors is not None or cpus_per_actor is not None:
            raise UsageError("--ray-address, --actors and --cpus-per-actor need --engine ray.")
        return None
    if choice != "ray":
        raise UsageError(f"Unknown engine '{engine}': choose local or ray.")
    from depthlens.engines.ray import RayEngine

    return RayEngine(address, actors, cpus_per_actor or 1.0)


def _user_camera(
    fx: float | None,
    fy: float | None,
    cx: float | None,
    cy: float | None,
    fov: float | None,
) -> Callable[[int, int], Camera] | None:
    """The camera the options give, for an image of a given size; None if none given.

    The numbers are checked as they come in (a field of view of 1 to 179 degrees,
    finite positive focal lengths) and, for each image, against its size
    (``Camera.check_physical``): ``--fx 5`` is a 179.9-degree lens on a 4000 px photo.
    """
    if fov is not None:
        if any(v is not None for v in (fx, fy, cx, cy)):
            raise UsageError("Give either --fov or --fx (with --fy, --cx, --cy), not both.")
        if not (math.isfinite(fov) and MIN_FOV_DEG <= fov <= MAX_FOV_DEG):
            raise UsageError(
                f"--fov must be between {MIN_FOV_DEG:g} and {MAX_FOV_DEG:g} degrees, not {fov:g}."
            )
        return lambda width, height: Camera.from_fov(width, height, fov)
    if fx is None:
        if any(v is not None for v in (fy, cx, cy)):
            raise UsageError("--fy, --cx and --cy need --fx (the focal length in pixels).")
        return None
    for name, value in (("--fx", fx), ("--fy", fy)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UsageError(f"{name} must be a positive focal length in pixels, not {value}.")
    for name, value in (("--cx", cx), ("--cy", cy)):
        if value is not None and not math.isfinite(value):
            raise UsageError(f"{name} must be a finite pixel coordinate, not {value}.")
    focal_y = fy if fy is not None else fx

    def camera(width: int, height: int) -> Camera:
        try:
            return Camera(
                fx,
                focal_y,
                cx if cx is not None else width / 2.0,
                cy if cy is not None else height / 2.0,
                width,
                height,
            ).check_physical()
        except ValueError as exc:
            raise UsageError(
                f"The camera options do not fit a {width}×{height} image: {exc}."
            ) from None

    return camera


def _progress_bar(
    label: str,
    with_rate: bool = True,
    unit: str = "img/s",
    with_eta: bool = False,
    with_elapsed: bool = False,
) -> Progress:
    """The stderr progress bar of the batch commands (hidden when stderr is no terminal,
    and by ``--quiet``).

    The rate and the time left are those of the whole task so far: items done over the
    time since the task began (``add_task(..., started=time.monotonic())`` when the work
    began before the task was added), never rich's estimate over its latest updates,
    which a batch of items finishing at once makes hundreds of times too high.
    """
    columns: list[ProgressColumn | str] = [
        TextColumn(f"[bold]{label}[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
    ]
    if with_rate:
        columns.append(_RateColumn(unit))
    if with_eta:
        columns.append(_TimeLeftColumn())
    if with_elapsed:
        columns.append(TimeElapsedColumn())
    hidden = verbosity.quiet or not err.is_terminal
    return Progress(*columns, console=err, transient=True, disable=hidden)


def _task_seconds(task: Task) -> float | None:
    """Seconds the task has run: from its ``started`` field (a ``time.monotonic()``, the
    Progress's clock) or else from when it was added, to its finish or now."""
    if task.start_time is None:
        return None
    started = float(task.fields.get("started", task.start_time))
    if task.finished_time is not None:  # the task's own seconds when it reached its total
        return task.finished_time + (task.start_time - started)
    end = task.stop_time if task.stop_time is not None else task.get_time()
    return end - started


def task_rate(task: Task) -> float | None:
    """Items per second over the whole task: the items done in it (``completed`` less its
    ``done_before`` field, items an earlier run did) over its seconds; None before the
    first item."""
    seconds = _task_seconds(task)
    done = task.completed - float(task.fields.get("done_before", 0))
    if done <= 0 or not seconds or seconds <= 0:
        return None
    return done / seconds


class _RateColumn(ProgressColumn):
    """``0.60 img/s``: the task's items over its seconds (``task_rate``)."""

    def __init__(self, unit: str = "img/s") -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        rate = task_rate(task)
        return Text(f"{rate:.2f} {self.unit}" if rate else f"-- {self.unit}")


class _TimeLeftColumn(ProgressColumn):
    """``0:01:05`` left: the items to go at the task's rate so far (``task_rate``)."""

    def render(self, task: Task) -> Text:
        rate = task_rate(task)
        if task.total is None:
            return Text("")
        if not rate:
            return Text("-:--:--", style="progress.remaining")
        minutes, seconds = divmod(int(max(task.total - task.completed, 0) / rate), 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"{hours:d}:{minutes:02d}:{seconds:02d}", style="progress.remaining")


class PlainUsageCommand(TyperCommand):
    """A verb whose usage line and help read as a shell's and as the verb's docstring:
    ``depthlens effect [OPTIONS] NAME INPUT``, ``INPUTS...``, a type of ``<str>`` for a
    repeatable value, where typer 0.29 writes ``{NAME} {INPUT}``, ``{INPUTS}...`` and
    ``<list[str]>``.

    typer builds its parameters itself and offers no hook for their display, so each
    is given the class below, which only changes how it is shown (same state, same
    parsing); ``tests/test_cli_usage.py`` checks every verb's help, so a typer release
    that renames these methods fails there.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is TyperArgument:
                param.__class__ = _PlainArgument
            elif type(param) is TyperOption:
                param.__class__ = _PlainOption


def _plain_type(shown: str) -> str:
    """``<list[str]>`` -> ``<str>``: a repeatable value's own type (the help says it
    repeats; an argument's name ends in ``...``)."""
    return re.sub(r"^<list\[(.*)\]>$", r"<\1>", shown)


class _PlainArgument(TyperArgument):
    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name if self.nargs == 1 or name.endswith("...") else f"{name}..."

    def display_type(self, ctx: Any) -> str:
        return _plain_type(super().display_type(ctx))


class _PlainOption(TyperOption):
    def display_type(self, ctx: Any) -> str:
        return _plain_type(super().display_type(ctx))


def failure_reason(exc: BaseException) -> str:
    """``pipeline.failure_reason``; with ``--verbose``, the traceback of an unforeseen
    failure (a bug) is printed first, once."""
    from depthlens.pipeline import InputResult

    result = InputResult.failed("", exc)
    show_trace(result.trace, exc)
    return result.error or ""


def show_trace(trace: str | None, key: object = None) -> None:
    """Print an unforeseen failure's traceback under ``--verbose`` (once per ``key``)."""
    if trace is None or not verbosity.verbose or (key is not None and key is verbosity.traced):
        return
    verbosity.traced = key
    err.print(trace, markup=False)


def _quiet_library_warnings() -> None:
    """Send Python warnings (Pillow's, torch's) to logging, where nothing prints them:
    a file's problem is reported as its one line, never as a library's warning text."""
    logging.captureWarnings(True)
    captured = logging.getLogger("py.warnings")
    captured.addHandler(logging.NullHandler())
    captured.propagate = False


def _usage_message(exc: Exception) -> str:
    """A parser error as one sentence, pointing at the command's --help."""
    format_message = getattr(exc, "format_message", None)
    text = format_message() if callable(format_message) else str(exc)
    text = " ".join(str(text).split()).rstrip(".")
    context = getattr(exc, "ctx", None)
    where = getattr(context, "command_path", None) or "depthlens"
    return f"{text} (see {where} --help)."
