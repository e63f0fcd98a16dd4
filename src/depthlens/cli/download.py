"""``depthlens download``: official weights onto this machine (``models.download``),
with a progress bar, resumed where an earlier try stopped, their sha256 checked and
recorded. A model that cannot be had is reported and the others still come (exit 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from depthlens.cli.common import err, say, verbosity
from depthlens.errors import DepthlensError
from depthlens.models.download import Downloaded, fetch_weights
from depthlens.models.registry import get_spec

NamesArgument = Annotated[
    list[str],
    typer.Argument(metavar="NAME...", help="Zoo names (depthlens models lists them)."),
]
ToOption = Annotated[
    Path | None,
    typer.Option(
        "--to",
        help="Folder for the files (then load them with --weights) [default: where depthlens "
        "looks: $DEPTHLENS_HOME/checkpoints, or the Hugging Face cache].",
    ),
]


def download(names: NamesArgument, to: ToOption = None) -> None:
    """Download official weights, with progress and resume; check and record their sha256."""
    if _show_bars():
        from huggingface_hub.utils import enable_progress_bars

        enable_progress_bars()  # the Hub's own bars show a snapshot's files
    specs = [get_spec(name) for name in names]  # a misspelt name stops before any download
    failed = 0
    for spec in specs:
        try:
            with _bytes_bar() as progress:
                task = progress.add_task(spec.name, total=None)

                def advance(done: int, total: int | None, task: TaskID = task) -> None:
                    progress.update(task, completed=done, total=total)

                fetched = fetch_weights(spec, to, on_progress=advance)
        except DepthlensError as exc:
            failed += 1
            err.print(f"failed {spec.name}: {exc}", markup=False)
            continue
        say(_line(fetched, to is not None))
    if failed:
        raise typer.Exit(1)


def _bytes_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not _show_bars(),
    )


def _show_bars() -> bool:
    """Progress bars only on a terminal, and not under ``--quiet``."""
    return err.is_terminal and not verbosity.quiet


def _line(done: Downloaded, elsewhere: bool) -> str:
    """``NAME: 99.2 MB -> PATH (sha256 ab12…, as published)``, and how to load it."""
    how = "downloaded" if done.fetched else done.source
    sha = f"sha256 {done.sha256[:16]}…" if done.sha256 else "no sha256"
    check = ", as published" if done.verified else ""
    line = f"{done.model}: {done.size / 1e6:.1f} MB {how} -> {done.path} ({sha}{check})"
    if elsewhere:
        line += f"; load it with --model {done.model} --weights {done.path}"
    return line
