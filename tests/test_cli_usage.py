"""The depthlens command as a shell runs it, in real subprocesses (issue 14, part 3):
every usage error is one line on stderr and exit 2, ``--version``, ``python -m
depthlens``, and the global ``--quiet`` and ``--verbose``.

Each subprocess pays for importing torch (seconds), so they are all started at once,
at the first test that needs one, and each test reads the result it asks for; the usage
errors share one import: a driver imports the command once, then forks a process per
case, whose stdout and stderr are files and whose exit code is its own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

import pytest

from depthlens.cli import app
from tests.cli import FORKING_CLI
from tests.hostile import encode, photo

CLI = [sys.executable, "-m", "depthlens"]
BUNDLED = ["-m", "depthlens-small"]
# The real command, but with an image loader that has a bug: on a file named bug.png it
# emits a Python warning and raises an unexpected error, the way a library's bug would.
# Every depthlens module that bound load_image gets the buggy one.
BUGGY_CLI = [
    sys.executable,
    "-c",
    """
import sys, warnings
import depthlens.cli
from depthlens.io import images

real = images.load_image

def load_image(path, *args, **kwargs):
    if "bug" in str(path):
        warnings.warn("a library warning about this file", UserWarning, stacklevel=2)
        raise ZeroDivisionError("a bug deep inside a library")
    return real(path, *args, **kwargs)

for module in list(sys.modules.values()):
    name = getattr(module, "__name__", None) or ""
    if name.startswith("depthlens") and getattr(module, "load_image", None) is real:
        module.load_image = load_image
depthlens.cli.main(sys.argv[1:])
""",
]


USAGE_ERRORS = {
    "bare": [],
    "unknown command": ["frobnicate"],
    "unknown option": ["--frobnicate", "predict"],
    "bare predict": ["predict"],
    "missing output": ["predict", "photo.png"],
    "bad value": ["predict", "photo.png", "-o", "out", "--batch-size", "0"],
    "quiet and verbose": ["-q", "-v", "models"],
    "bare effect": ["effect"],
    "bad tiles": ["predict", "photo.png", "-o", "out", "--tiles", "lots"],
}
# Every verb the command has, as its --help lists them.
VERBS = [command.name for command in app.registered_commands if command.name]
HELPS = {f"{verb} help": [verb, "--help"] for verb in VERBS}
FORKED = {**USAGE_ERRORS, **HELPS, "version": ["--version"]}
BOXES = "╭╮╰╯│─"


def _environment(terminal: bool) -> dict[str, str]:
    """The tests' environment; stderr passes for a terminal (rich's TTY_COMPATIBLE) when
    ``terminal``, so that progress bars draw, and for a pipe otherwise."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env.update(TTY_COMPATIBLE="1" if terminal else "0", TERM="xterm", COLUMNS="100")
    return env


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """good.png and bug.png (a good image too, unless the loader has a bug), and
    broken.png (text)."""
    root = tmp_path_factory.mktemp("usage")
    (root / "photos").mkdir()
    (root / "photos" / "good.png").write_bytes(encode(photo(48, 64, seed=1)))
    (root / "photos" / "bug.png").write_bytes(encode(photo(48, 64, seed=2)))
    (root / "photos" / "broken.png").write_text("this is not an image\n")
    return root


@pytest.fixture(scope="module")
def runs(folder):
    """Every subprocess of this file, started together: name -> future result."""
    commands: dict[str, tuple[list[str], bool]] = {
        "forked": ([*FORKING_CLI, json.dumps(FORKED)], False),
        # -X importtime lists every module imported, on stderr
        "help": ([sys.executable, "-X", "importtime", "-m", "depthlens", "--help"], False),
        # the bundled model: the default's fallback notice prints even under --quiet
        "quiet": ([*CLI, "-q", "predict", "photos", "-o", "quiet", "-f", "npy", *BUNDLED], True),
        "default": ([*BUGGY_CLI, "predict", "photos", "-o", "plain", "-f", "npy"], True),
        "verbose": ([*BUGGY_CLI, "-v", "predict", "photos", "-o", "loud", "-f", "npy"], True),
    }

    def run(command: list[str], terminal: bool) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=folder,
            env=_environment(terminal),
            timeout=300,
        )

    workers = min(len(commands), max(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        futures: dict[str, Future[subprocess.CompletedProcess[str]]] = {
            name: pool.submit(run, *spec) for name, spec in commands.items()
        }
        yield {name: future.result for name, future in futures.items()}


def _forked(runs, case: str) -> subprocess.CompletedProcess[str]:
    """The forked run of one case of FORKED."""
    driver = runs["forked"]()
    assert driver.returncode == 0, driver.stderr
    result = json.loads(driver.stdout)[case]
    return subprocess.CompletedProcess(
        FORKED[case], result["code"], result["stdout"], result["stderr"]
    )


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _summary(result: subprocess.CompletedProcess[str]) -> str:
    """stdout on one line (rich wraps it at the console's width)."""
    return " ".join(result.stdout.split())


@pytest.mark.parametrize("case", USAGE_ERRORS)
def test_a_usage_error_is_one_line_and_exit_2(runs, case):
    result = _forked(runs, case)
    lines = _lines(result.stderr)
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert not any(box in result.stderr + result.stdout for box in BOXES)
    assert result.stdout == ""
    if case not in ("quiet and verbose", "bad tiles"):  # the parser's errors point at the help
        assert re.search(r"\(see depthlens( predict| effect)? --help\)\.$", lines[0]), lines[0]


def test_what_each_usage_error_says(runs):
    said = {case: _forked(runs, case).stderr.strip() for case in USAGE_ERRORS}
    assert said["bare"] == "error: Missing command (see depthlens --help)."
    assert "No such command 'frobnicate'" in said["unknown command"]
    assert "No such option: --frobnicate" in said["unknown option"]
    # INPUTS may be empty (--input-list), so -o is what a bare predict misses first.
    assert "Missing option '-o' / '--output'" in said["bare predict"]
    assert said["bare effect"] == ("error: Missing argument 'NAME' (see depthlens effect --help).")
    assert "Missing option '-o' / '--output'" in said["missing output"]
    assert "'--batch-size'" in said["bad value"]
    assert said["bad tiles"] == "error: Tiles must be auto or a whole number from 1 to 16."
    assert said["quiet and verbose"] == "error: Give --quiet or --verbose, not both."


def test_version(runs):
    result = _forked(runs, "version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"depthlens {version('depthlens')}"
    assert re.fullmatch(r"depthlens \d+\.\d+\.\d+\S*\n", result.stdout)


def test_python_m_depthlens_prints_help_without_importing_transformers(runs):
    result = runs["help"]()
    assert result.returncode == 0
    assert "Usage: depthlens [OPTIONS] COMMAND" in result.stdout
    for word in ("predict", "serve", "--quiet", "--verbose", "--version"):
        assert word in result.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "depthlens.cli" in imported  # -X importtime did list the imports
    assert not any(name.split(".")[0] == "transformers" for name in imported)

    result = _forked(runs, "predict help")
    assert result.returncode == 0 and result.stderr == ""
    assert "Usage: depthlens predict" in result.stdout and "--output" in result.stdout


def test_quiet_prints_only_the_failure(runs, folder):
    result = runs["quiet"]()
    assert result.returncode == 1
    # stderr passes for a terminal, and still holds no progress bar: only the failure
    lines = _lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("failed photos/broken.png: "), result.stderr
    assert "2 of 3 inputs" in _summary(result) and "1 failed" in _summary(result)
    assert (folder / "quiet" / "good-depth.npy").is_file()


def test_without_verbose_a_bug_is_one_line_and_warnings_stay_hidden(runs):
    result = runs["default"]()
    assert result.returncode == 1
    assert "depth" in result.stderr and "/3" in result.stderr  # the progress bar drew
    assert "failed photos/broken.png: " in result.stderr
    assert (
        "failed photos/bug.png: unexpected ZeroDivisionError: a bug deep inside a library."
        in result.stderr
    )
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr
    assert "1 of 3 inputs" in _summary(result) and "2 failed" in _summary(result)


def test_verbose_shows_warnings_and_the_traceback_of_a_bug(runs):
    result = runs["verbose"]()
    assert result.returncode == 1
    assert "UserWarning: a library warning about this file" in result.stderr
    assert result.stderr.count("Traceback (most recent call last):") == 1  # once, not twice
    assert "ZeroDivisionError: a bug deep inside a library" in result.stderr
    traceback_at = result.stderr.index("Traceback")
    failure_at = result.stderr.index("failed photos/bug.png: unexpected ZeroDivisionError")
    assert traceback_at < failure_at  # the traceback, then the input's one line
    assert "failed photos/broken.png: " in result.stderr  # an expected failure: no traceback
    assert "1 of 3 inputs" in _summary(result) and "2 failed" in _summary(result)


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_a_plain_usage_line(runs, verb):
    """``Usage: depthlens effect [OPTIONS] NAME INPUT`` as a shell's usage reads, never
    typer 0.29's ``{name} {INPUT}``; and a repeatable value's type is its own, never
    ``<list[str]>``."""
    result = _forked(runs, f"{verb} help")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    (usage,) = [line.strip() for line in result.stdout.splitlines() if "Usage:" in line]
    assert usage.startswith(f"Usage: depthlens {verb} [OPTIONS]"), usage
    assert not re.search(r"[{}<>]", usage), usage
    assert "<list[" not in result.stdout


def test_the_usage_lines_name_the_arguments(runs):
    usage = {
        verb: next(
            line.strip()
            for line in _forked(runs, f"{verb} help").stdout.splitlines()
            if "Usage:" in line
        )
        for verb in ("predict", "effect", "convert", "train", "pseudo-label")
    }
    assert usage == {
        "predict": "Usage: depthlens predict [OPTIONS] [INPUTS]...",  # or --input-list
        "effect": "Usage: depthlens effect [OPTIONS] NAME INPUT",
        "convert": "Usage: depthlens convert [OPTIONS] CHECKPOINT",
        "train": "Usage: depthlens train [OPTIONS] CONFIG",
        "pseudo-label": "Usage: depthlens pseudo-label [OPTIONS] [INPUTS]...",
    }
