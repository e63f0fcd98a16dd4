"""Training under torchrun when machines fail: real launchers and worker processes on
127.0.0.1 (gloo), two processes in each run, checked against an uninterrupted run.

A run killed part way and resumed with ``--resume``, and an elastic run
(``--max-restarts 1 --auto-resume``) that loses one process, must both end with the
uninterrupted run's weights, bit for bit: a resumed run reads the same samples in the
same order and every reduction happens in the same order, so a difference means state
was lost. The uninterrupted run itself is launched as two single-process "nodes" meeting
at a c10d rendezvous, the way several machines are launched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from depthlens.errors import UsageError
from depthlens.train.config import TrainConfig, dump_config
from depthlens.train.loop import iterate_log, train
from tests.train.test_loop import SMALL, losses, one_thread, synth_folder, tiny

__all__ = ["one_thread", "synth_folder"]  # module fixtures shared with test_loop

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc for processes")

STEPS = 6
CHECKPOINT_EVERY = 2
# Processes are killed once step KILL_AFTER is logged, so checkpoint 2 is on disk and
# the run has steps left to lose.
KILL_AFTER = 3
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
TIMEOUT = 120


def run_config(tmp_path: Path, folder: Path) -> TrainConfig:
    """Six steps of the quarter-width network in float32, checkpoints every two."""
    return tiny(
        tmp_path,
        folder,
        "unused",
        steps=STEPS,
        model=SMALL,
        bf16=False,  # bf16 autocast is several times slower on CPU
        channels_last=False,
        checkpoint_every=CHECKPOINT_EVERY,
    )


@pytest.fixture(scope="module")
def config_path(tmp_path_factory, synth_folder) -> Path:
    tmp_path = tmp_path_factory.mktemp("ddp-config")
    path = tmp_path / "ddp.yaml"
    path.write_text(dump_config(run_config(tmp_path, synth_folder)))
    return path


def torchrun(launch: list[str], config_path: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *launch,
        "-m",
        "depthlens.cli",
        "train",
        str(config_path),
        "--out",
        str(out),
        *extra,
    ]


STANDALONE = ["--standalone", "--nnodes", "1", "--nproc-per-node", "2"]


class Launch:
    """A torchrun launcher started in its own session, its output in a file (a pipe
    nobody reads while it runs could fill and block it)."""

    def __init__(self, command: list[str], output: Path, **env: str):
        self.output = output
        with output.open("w") as sink:
            self.process = subprocess.Popen(
                command,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**ENV, **env},
                start_new_session=True,
            )

    def wait(self) -> int:
        try:
            return self.process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the launcher and everything under it, as a machine's power cut does.
        The workers need their own signal: torchrun starts each in a new session."""
        victims = [self.process.pid, *descendants(self.process.pid)]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(TIMEOUT)

    def worker(self, rank: int) -> int:
        """The pid of the worker process with global rank ``rank``."""
        for pid in children(self.process.pid):
            if environment(pid).get("RANK") == str(rank):
                return pid
        raise AssertionError(f"no worker of rank {rank} under {self.process.pid}")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        below = children(todo.pop())
        found.extend(below)
        todo.extend(below)
    return found


def environment(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


def wait_for_logged_step(launch: Launch, log: Path, step: int) -> None:
    """Poll the run's log until it holds ``step`` (lines may be half written)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        assert launch.process.poll() is None, f"the run ended early:\n{launch.text()[-3000:]}"
        if log.exists():
            for line in log.read_text().splitlines():
                try:
                    if json.loads(line)["step"] >= step:
                        return
                except (ValueError, KeyError):
                    pass
        time.sleep(0.02)
    launch.kill()
    raise AssertionError(f"step {step} was never logged:\n{launch.text()[-3000:]}")


def checkpoint_step(out: Path) -> int:
    return int(torch.load(out / "checkpoint.pt", weights_only=True)["step"])


def assert_same_run(reference: Path, out: Path) -> None:
    """The same final weights, EMA, optimiser moments and logged losses, bit for bit,
    each step logged once and one checkpoint file in the folder."""
    first = torch.load(reference / "checkpoint.pt", weights_only=True)
    second = torch.load(out / "checkpoint.pt", weights_only=True)
    assert first["step"] == second["step"] == STEPS
    for part in ("model", "ema"):
        for key, value in first[part].items():
            assert torch.equal(value, second[part][key]), f"{part}.{key}"
    for index, moments in first["optimizer"]["state"].items():
        for key, value in moments.items():
            assert torch.equal(value, second["optimizer"]["state"][index][key]), (index, key)
    assert sorted(losses(out)) == list(range(1, STEPS + 1))  # each step once
    assert losses(out) == losses(reference)
    assert [p.name for p in out.iterdir() if "checkpoint" in p.name] == ["checkpoint.pt"]
    assert (out / "export" / "model.safetensors").is_file()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, config_path) -> Path:
    """The uninterrupted run, launched as two machines would be: two launchers with one
    process each, meeting at a c10d rendezvous on 127.0.0.1 (rank 0's launcher hosts
    the store, as the first machine named in --rdzv-endpoint does)."""
    tmp_path = tmp_path_factory.mktemp("ddp-reference")
    out = tmp_path / "run"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launches = [
        Launch(
            torchrun(
                [
                    "--nnodes",
                    "2",
                    "--nproc-per-node",
                    "1",
                    "--rdzv-backend",
                    "c10d",
                    "--rdzv-endpoint",
                    f"127.0.0.1:{port}",
                    "--rdzv-id",
                    "depthlens-test",
                    # Both launchers are on this machine, so say which hosts the store.
                    "--rdzv-conf",
                    f"is_host={int(node == 0)}",
                ],
                config_path,
                out,
            ),
            tmp_path / f"node{node}.txt",
        )
        for node in (0, 1)
    ]
    codes = [launch.wait() for launch in launches]
    outputs = "\n".join(launch.text() for launch in launches)
    assert codes == [0, 0], outputs[-4000:]
    assert outputs.count("Training output") == 1  # rank 0 alone reports
    return out


@pytest.mark.slow
def test_two_nodes_rank_zero_alone_writes(reference):
    assert sorted(losses(reference)) == list(range(1, STEPS + 1))  # one writer
    assert [p.name for p in reference.iterdir() if "checkpoint" in p.name] == ["checkpoint.pt"]
    assert checkpoint_step(reference) == STEPS
    assert (reference / "export" / "model.safetensors").is_file()


@pytest.mark.slow
def test_resume_after_every_process_is_killed(tmp_path, config_path, reference):
    out = tmp_path / "run"
    launch = Launch(torchrun(STANDALONE, config_path, out), tmp_path / "first.txt")
    wait_for_logged_step(launch, out / "log.jsonl", KILL_AFTER)
    launch.kill()
    killed_at = checkpoint_step(out)
    assert CHECKPOINT_EVERY <= killed_at < STEPS, "the kill came after the run ended"

    resumed = Launch(torchrun(STANDALONE, config_path, out, "--resume"), tmp_path / "second.txt")
    assert resumed.wait() == 0, resumed.text()[-3000:]
    assert f"Resuming from step {killed_at} of {STEPS}" in resumed.text()
    assert_same_run(reference, out)


@pytest.mark.slow
def test_elastic_restart_after_one_process_dies(tmp_path, config_path, reference):
    """torchrun restarts both processes with the same arguments; --auto-resume makes
    that restart continue from the checkpoint instead of refusing the folder. Rank 0
    dies, the one that writes, so a write it had begun is abandoned half way.

    TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1: without it torch 2.13 hands the restarted
    group its rendezvous store with the dead group's keys in it, and the new processes
    try to connect to the dead ones' ports (gloo: "connectFullMesh failed")."""
    out = tmp_path / "run"
    launch = Launch(
        torchrun([*STANDALONE, "--max-restarts", "1"], config_path, out, "--auto-resume"),
        tmp_path / "elastic.txt",
        TORCH_DISABLE_SHARE_RDZV_TCP_STORE="1",
    )
    wait_for_logged_step(launch, out / "log.jsonl", KILL_AFTER)
    os.kill(launch.worker(0), signal.SIGKILL)
    assert launch.wait() == 0, launch.text()[-3000:]
    text = launch.text()
    assert "Resuming from step" in text, text[-3000:]
    assert "Note: torchrun restarts" not in text  # said only when the store is shared
    resumed_at = int(text.split("Resuming from step ")[1].split()[0])
    assert CHECKPOINT_EVERY <= resumed_at < STEPS
    assert_same_run(reference, out)


def test_auto_resume_starts_then_continues(tmp_path, synth_folder):
    """In one process: --auto-resume starts a run where there is none and continues
    one where there is, as --resume would, clearing what a killed writer left behind:
    a half-written log line and the temporary file of an unfinished checkpoint."""
    config = dataclasses.replace(run_config(tmp_path, synth_folder), steps=2, ema_decay=None)
    config = dataclasses.replace(config, output_dir=str(tmp_path / "auto"))
    run = train(config, resume="auto", stop_at=1).parent
    assert checkpoint_step(run) == 1
    with (run / "log.jsonl").open("a") as log:
        log.write('{"step": 2, "gradient_matching": 0.3')
    (run / ".checkpoint.pt.0badf00d.tmp").write_bytes(b"PK\x03\x04")
    train(config, resume="auto")
    assert checkpoint_step(run) == 2
    assert [r["step"] for r in iterate_log(run / "log.jsonl")] == [1, 2]
    assert not list(run.glob(".*.tmp"))


def test_a_batch_that_does_not_divide_by_the_processes_is_a_usage_error(
    tmp_path, synth_folder, monkeypatch
):
    """As after a restart on fewer machines: refused before any rendezvous is tried."""
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(UsageError, match=r"batch_size 4 .* does not divide by the 3 processes"):
        train(run_config(tmp_path, synth_folder), resume=True)


def test_cli_refuses_resume_and_auto_resume_together(tmp_path, config_path, capsys):
    from depthlens.cli import main

    with pytest.raises(SystemExit) as info:
        main(["train", str(config_path), "--resume", "--auto-resume"])
    assert info.value.code == 2
    assert "not both" in capsys.readouterr().err
