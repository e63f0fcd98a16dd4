"""``depthlens predict`` and ``depthlens pseudo-label`` at scale, as a shell runs them
(real subprocesses): ``--input-list``, ``--report``, ``--resume``, ``--shards``, the
engine options and their usage errors.

Each subprocess pays for importing torch, so the runs of this file start together at
the first test that needs one (runs that depend on each other one after the other), and
the usage errors share one import: a driver imports the command once, then forks a
process per case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image as PILImage

from tests.cli import FORKING_CLI
from tests.hostile import photo

CLI = [sys.executable, "-m", "depthlens"]
BUNDLED = ["-m", "depthlens-small"]

PREDICT = ["predict", "photos/a.png", "-o", "refused"]
LABEL = ["pseudo-label", "photos/a.png", "-o", "refused", *BUNDLED]
USAGE_ERRORS = {
    "predict without inputs": ["predict", "-o", "refused"],
    "predict actors without ray": [*PREDICT, "--actors", "2"],
    "predict address without ray": [*PREDICT, "--ray-address", "auto"],
    "predict cpus without ray": [*PREDICT, "--cpus-per-actor", "2"],
    "predict unknown engine": [*PREDICT, "--engine", "spark"],
    "predict missing list": ["predict", "-o", "refused", "--input-list", "nowhere.txt"],
    "label without inputs": ["pseudo-label", "-o", "refused", *BUNDLED],
    "label actors without ray": [*LABEL, "--actors", "2"],
    "label unknown engine": [*LABEL, "--engine", "spark"],
    "label no shards": [*LABEL, "--shards", "0"],
    "label missing list": ["pseudo-label", "-o", "refused", *BUNDLED, "--input-list", "no.txt"],
}
LISTED = ["a.png", "sub/b.png", "photos/a.png"]  # the list's lines, from the work folder


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env.update(TTY_COMPATIBLE="0", TERM="xterm", COLUMNS="200", OMP_NUM_THREADS="1")
    return env


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """photos/a.png, photos/b.png, photos/sub/c.png; a.png and sub/b.png beside them; and
    the lists naming some of them."""
    root = tmp_path_factory.mktemp("scale")
    for seed, name in enumerate(
        ["photos/a.png", "photos/b.png", "photos/sub/c.png", "a.png", "sub/b.png"]
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        PILImage.fromarray(photo(48, 64, seed=seed)).save(root / name)
    (root / "list.txt").write_text("# to predict\n" + "\n".join(LISTED) + "\n\n")
    (root / "labels.txt").write_text("photos/a.png\nphotos/b.png\nphotos/sub/c.png\n")
    return root


@pytest.fixture(scope="module")
def runs(work):
    """Every subprocess of this file, started together: name -> its finished process.
    Each chain runs in order (a resumed run after the run it resumes)."""

    def run(args: list[str], command: list[str] = CLI) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args],
            capture_output=True,
            text=True,
            cwd=work,
            env=_environment(),
            timeout=300,
        )

    def snapshot(folder: Path) -> dict[str, int]:
        return {
            p.relative_to(folder).as_posix(): p.stat().st_mtime_ns
            for p in folder.rglob("*")
            if p.is_file()
        }

    def predict_chain() -> dict[str, object]:
        common = ["predict", "--input-list", "list.txt", "-o", "out", *BUNDLED, "-f", "npy"]
        first = run([*common, "--report", "first.jsonl"])
        files = snapshot(work / "out") if (work / "out").is_dir() else {}
        second = run([*common, "--report", "second.jsonl", "--resume"])
        return {"first": first, "files": files, "second": second}

    def label_chain() -> dict[str, object]:
        common = [
            "pseudo-label",
            "--input-list",
            "labels.txt",
            "-o",
            "shards",
            *BUNDLED,
            "--shards",
            "2",
        ]
        first = run([*common, "--report", "label1.jsonl"])
        files = snapshot(work / "shards") if (work / "shards").is_dir() else {}
        index = (work / "shards" / "shards.jsonl").read_bytes() if first.returncode == 0 else b""
        second = run([*common, "--report", "label2.jsonl"])
        return {"first": first, "files": files, "index": index, "second": second}

    with ThreadPoolExecutor(3) as pool:
        warm_up = json.dumps(["predict", "-o", "warm-up"])
        usage = pool.submit(run, [json.dumps(USAGE_ERRORS), warm_up], FORKING_CLI)
        predicted = pool.submit(predict_chain)
        labelled = pool.submit(label_chain)
        yield {"usage": usage.result, "predict": predicted.result, "label": labelled.result}


def _report(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _summary(process: subprocess.CompletedProcess[str]) -> str:
    return " ".join(process.stdout.split())


@pytest.mark.parametrize("case", USAGE_ERRORS)
def test_usage_errors_are_one_line_and_exit_2(runs, work, case):
    driver = runs["usage"]()
    assert driver.returncode == 0, driver.stderr
    result = json.loads(driver.stdout)[case]
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    assert result["code"] == 2, result
    assert len(lines) == 1 and lines[0].startswith("error: "), result["stderr"]
    assert "Traceback" not in result["stderr"]
    assert result["stdout"] == ""
    assert not (work / "refused").exists()


def test_what_the_engine_errors_say(runs):
    said = {case: r["stderr"].strip() for case, r in json.loads(runs["usage"]().stdout).items()}
    assert "--engine ray" in said["predict actors without ray"]
    assert "--engine ray" in said["predict address without ray"]
    assert "spark" in said["predict unknown engine"]
    assert "local" in said["predict unknown engine"] and "ray" in said["predict unknown engine"]
    assert "--input-list" in said["predict without inputs"]
    assert "nowhere.txt" in said["predict missing list"]
    assert "no.txt" in said["label missing list"]


def test_predict_from_a_list_with_a_report(runs, work):
    first = runs["predict"]()["first"]
    assert first.returncode == 0, first.stderr
    out = work / "out"
    npys = sorted(p.relative_to(out).as_posix() for p in out.rglob("*-depth.npy"))
    assert npys == ["a-depth.npy", "photos/a-depth.npy", "sub/b-depth.npy"]
    lines = _report(work / "first.jsonl")
    assert sorted(line["input"] for line in lines) == sorted(LISTED)
    assert {line["status"] for line in lines} == {"done"}
    for line in lines:
        assert all(Path(p).is_file() for p in line["outputs"])
    assert "3 of 3 inputs" in _summary(first)


def test_a_resumed_run_skips_what_is_done(runs, work):
    chain = runs["predict"]()
    second = chain["second"]
    assert second.returncode == 0, second.stderr
    summary = _summary(second)
    assert "3 of 3 inputs" in summary and "3 done before (--resume)" in summary
    assert "Traceback" not in second.stderr and "failed" not in second.stderr
    lines = _report(work / "second.jsonl")
    assert sorted(line["input"] for line in lines) == sorted(LISTED)
    assert {line["status"] for line in lines} == {"skipped"}
    now = {
        p.relative_to(work / "out").as_posix(): p.stat().st_mtime_ns
        for p in (work / "out").rglob("*")
        if p.is_file()
    }
    assert now == chain["files"]  # not one file rewritten


def test_pseudo_label_writes_shards_that_the_index_describes(runs, work):
    first = runs["label"]()["first"]
    assert first.returncode == 0, first.stderr
    folder = work / "shards"
    index = [json.loads(line) for line in (folder / "shards.jsonl").read_text().splitlines()]
    assert len(index) == 3
    assert sorted(entry["source"] for entry in index) == sorted(
        (work / "labels.txt").read_text().split()
    )
    tars = sorted(p.name for p in folder.glob("*.tar"))
    assert tars == ["shard-000000.tar", "shard-000001.tar"]
    assert [entry["shard"] for entry in index] == [tars[0], tars[0], tars[1]]
    for tar_name in tars:
        entries = [entry for entry in index if entry["shard"] == tar_name]
        data = (folder / tar_name).read_bytes()
        with tarfile.open(folder / tar_name) as tar:
            members = tar.getmembers()
            expected = [f"{e['name']}.{s}" for e in entries for s in ("png", "depth.npy", "json")]
            assert [m.name for m in members] == expected
            for entry in entries:
                for suffix, (offset, size) in entry["members"].items():
                    member = tar.extractfile(f"{entry['name']}.{suffix}")
                    assert member is not None
                    assert data[offset : offset + size] == member.read()
        metadata = json.loads(tar_data(folder / tar_name, f"{entries[0]['name']}.json"))
        assert metadata["name"] == entries[0]["name"]
    lines = _report(work / "label1.jsonl")
    assert {line["status"] for line in lines} == {"done"} and len(lines) == 3
    assert "3 of 3 images labelled" in _summary(first)


def test_pseudo_label_rerun_labels_nothing_new(runs, work):
    chain = runs["label"]()
    second = chain["second"]
    assert second.returncode == 0, second.stderr
    summary = _summary(second)
    assert "0 of 3 images labelled" in summary and "3 already there" in summary
    folder = work / "shards"
    assert (folder / "shards.jsonl").read_bytes() == chain["index"]
    now = {
        p.relative_to(folder).as_posix(): p.stat().st_mtime_ns
        for p in folder.rglob("*")
        if p.is_file()
    }
    assert now == chain["files"]
    lines = _report(work / "label2.jsonl")
    assert {line["status"] for line in lines} == {"skipped"} and len(lines) == 3


def tar_data(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read()
