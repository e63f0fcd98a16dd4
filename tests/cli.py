"""Running the depthlens command in-process, as the tests drive it."""

from __future__ import annotations

import sys

import pytest

from depthlens.cli import main


def run_cli(args, capsys) -> tuple[int, str, str]:
    """``depthlens ARGS``: its exit code, stdout and stderr."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


# `depthlens ARGS` for each case of the JSON in argv[1], each in a process forked from
# one that imported depthlens once (and, given argv[2], ran those arguments first to
# warm its lazy imports); prints {case: {"code", "stdout", "stderr"}} as JSON.
FORKING_CLI = [
    sys.executable,
    "-c",
    """
import json, os, sys, tempfile
from depthlens.cli import main

if len(sys.argv) > 2:
    with open(os.devnull, "w") as devnull:
        sys.stdout, sys.stderr = devnull, devnull
        try:
            main(json.loads(sys.argv[2]))
        except SystemExit:
            pass
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__

results = {}
for case, args in json.loads(sys.argv[1]).items():
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            code = 0
            try:
                main(args)
            except SystemExit as exit:
                code = exit.code if isinstance(exit.code, int) else 1
            except BaseException:
                sys.excepthook(*sys.exc_info())
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        results[case] = {
            "code": os.waitstatus_to_exitcode(status),
            "stdout": out.read().decode(),
            "stderr": err.read().decode(),
        }
print(json.dumps(results))
""",
]
