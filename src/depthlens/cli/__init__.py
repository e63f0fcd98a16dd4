"""The ``depthlens`` command: one thin function per verb over the library, one module
per group of verbs (``predict``, ``effect``, ``eval``, ``train``, ``serve``, ``models``).

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
from typer.core import TyperCommand

from depthlens.cli import effect, eval, models, predict, serve, train
from depthlens.cli.common import (
    _quiet_library_warnings,
    _usage_message,
    err,
    out,
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
        out.print(f"depthlens {_version()}", highlight=False)
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


class _Verb(TyperCommand):
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
    ("convert", models.convert),
    ("demo", models.demo),
    ("effect", effect.effect),
    ("train", train.train),
    ("eval", eval.evaluate),
    ("pseudo-label", train.pseudo_label),
    ("synth", train.synth),
    ("serve", serve.serve),
):
    app.command(_name, cls=_Verb)(_function)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and an exit code."""
    set_verbosity()  # the callback sets it again for this run's options
    _quiet_library_warnings()
    try:
        code = app(args=argv, prog_name="depthlens", standalone_mode=False)
    except DepthlensError as exc:
        err.print(f"error: {exc}", markup=False)
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
