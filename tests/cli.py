"""Running the depthlens command in-process, as the tests drive it."""

from __future__ import annotations

import pytest

from depthlens.cli import main


def run_cli(args, capsys) -> tuple[int, str, str]:
    """``depthlens ARGS``: its exit code, stdout and stderr."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err
