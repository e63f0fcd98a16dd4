"""The ``depthlens`` command: one thin function per verb over the library, one module
per group of verbs (``predict``, ``effect``, ``camera``, ``eval``, ``train``, ``serve``, ``models``,
``download``, ``export``, ``cache``).

Errors the user can act on are printed as one sentence on stderr with a non-zero exit
code (1: some inputs failed; 2: bad model, weights or arguments, including every error
of the command line itself).
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import click
import typer

from depthlens.cli import (
    cache,
    camera,
    download,
    effect,
    eval,
    export,
    models,
    predict,
    serve,
    train,
)
from depthlens.cli.common import (
    PlainUsageCommand,
    _quiet_library_warnings,
    _usage_message,
    err,
    say,
    set_verbosity,
    verbosity,
)
from depthlens.cli.predict import output_stems
from depthlens.errors import DepthlensError, UsageError

__all__ = ["app", "main", "output_stems"]

app = typer.Typer(
    add_completion=False,
    help="Monocular depth estimation: one photo in, a per-pixel depth map out.",
    # A bug's traceback is Python's own, never a panel of boxes and locals.
    pretty_exceptions_enable=False,
    # Help paragraphs are reflowed to the terminal (markdown), so a docstring's source
    # line breaks never cut a sentence in the middle.
    rich_markup_mode="markdown",
)


def _version() -> str:
    """The installed distribution's version, else the package's own."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("depthlens")
    except PackageNotFoundError:
        import depthlens

        return depthlens.__version__


def _print_version(value: bool) -> None:
    if value:
        say(f"depthlens {_version()}")
        raise typer.Exit()


@app.callback()
def _global_options(
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="No progress bars or informational lines; failures and errors still print.",
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Show library warnings, and the traceback of an input's unexpected failure.",
        ),
    ] = False,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    # Runs before any verb (never for --help, --version or a bare `depthlens`).
    if quiet and verbose:
        raise UsageError("Give --quiet or --verbose, not both.")
    set_verbosity(quiet, verbose)
    if verbose:
        logging.captureWarnings(False)  # main() captured them; let them print


class _Verb(PlainUsageCommand):
    """A verb that quiets the libraries' own output just before it runs: after its
    arguments are parsed, so ``--help`` and usage errors never import transformers."""

    def invoke(self, ctx: Any) -> Any:  # a typer._click.Context: typer keeps it private
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # our own bar reports progress
        if verbosity.verbose:
            transformers_logging.set_verbosity_warning()
        else:
            transformers_logging.set_verbosity_error()
        return super().invoke(ctx)


# The verbs, in the order --help lists them.
for _name, _function in (
    ("predict", predict.predict),
    ("models", models.list_models),
    ("download", download.download),
    ("convert", models.convert),
    ("export", export.export),
    ("demo", models.demo),
    ("effect", effect.effect),
    ("camera", camera.camera),
    ("train", train.train),
    ("eval", eval.evaluate),
    ("pseudo-label", train.pseudo_label),
    ("synth", train.synth),
    ("serve", serve.serve),
    ("cache", cache.cache),
):
    app.command(_name, cls=_Verb)(_function)


class _Notices(logging.Handler):
    """The library's notices on the ``depthlens`` logger (the default model's fallback, a
    non-commercial licence) as plain stderr lines, even under ``--quiet``."""

    def emit(self, record: logging.LogRecord) -> None:
        err.print(record.getMessage(), markup=False)


def _show_notices() -> None:
    notices = logging.getLogger("depthlens")
    if not any(isinstance(handler, _Notices) for handler in notices.handlers):
        notices.addHandler(_Notices(logging.WARNING))
    notices.propagate = False


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and an exit code."""
    set_verbosity()  # the callback sets it again for this run's options
    _quiet_library_warnings()
    _show_notices()
    try:
        code = app(args=argv, prog_name="depthlens", standalone_mode=False)
    except DepthlensError as exc:
        # some errors say it twice: for Python (weights=) and for this command (--weights)
        err.print(f"error: {getattr(exc, 'cli_message', None) or exc}", markup=False)
        sys.exit(exc.exit_code)
    except (typer.Exit, click.exceptions.Exit) as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, click.exceptions.Abort, KeyboardInterrupt):
        err.print("interrupted")
        sys.exit(130)
    # typer 0.29 parses with a click of its own (typer._click), whose errors are not
    # click's: both kinds are caught, by their public base classes. A bare `depthlens`
    # is one of them: "Missing command".
    except (typer.TyperException, click.ClickException) as exc:
        err.print(f"error: {_usage_message(exc)}", markup=False)
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)
