"""The Ray engine on a real local Ray cluster (127.0.0.1, 2 CPUs): the same outputs,
byte for byte, as the local engine; bad inputs reported, never fatal; an actor killed
mid-unit has its unit run again; a rerun resumes; shards and labels come out the same."""

from __future__ import annotations

import filecmp
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from depthlens.io.outputs import write_outputs
from depthlens.pipeline import DepthFiles, predict_files
from depthlens.train.pseudo_label import pseudo_label

# Ray's single-machine mode: every address is 127.0.0.1 (read when ray is imported).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray", reason="the Ray engine's tests need depthlens[ray]")
cloudpickle = pytest.importorskip("ray.cloudpickle")

from depthlens.engines.ray import RayEngine  # noqa: E402 (after the skip)

MODEL = "depthlens-small"
FORMATS = ("color", "png16", "npy")
SIZES = [(48, 64), (64, 48), (40, 40)]  # three network input sizes: batches never mix them

# The test's sink is shipped to the actors by value (they cannot import tests/).
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def cluster():
    """A Ray cluster on this machine for the module; the engine joins it."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
    )
    address = ray.get_runtime_context().gcs_address
    assert address.startswith("127.0.0.1:")  # the test's traffic stays on this machine
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    yield address
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Ten photos of three sizes, a corrupt one and a text file named .jpg."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(7)
    for index in range(10):
        height, width = SIZES[index % 3]
        ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
        noise = rng.normal(0, 20, (height, width, 3))
        rgb = np.clip(ramp + noise, 0, 255).astype(np.uint8)
        PILImage.fromarray(rgb).save(folder / f"p{index:02d}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (folder / "notes.jpg").write_text("not an image")
    return folder


def local_run(inputs, out: Path, **options):
    """The local engine with one torch thread: the arithmetic of a 1-CPU actor."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return predict_files(inputs, out, model=MODEL, formats=FORMATS, **options)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference(photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local")
    report = local_run([photos], out, batch_size=2)
    assert (report.done, report.failed) == (10, 2)
    return out


def same_tree(left: Path, right: Path) -> list[str]:
    """The relative paths whose bytes differ, or that one side lacks."""
    names = {p.relative_to(left) for p in left.rglob("*") if p.is_file()}
    others = {p.relative_to(right) for p in right.rglob("*") if p.is_file()}
    differ = [str(n) for n in names & others if not filecmp.cmp(left / n, right / n, False)]
    return sorted(differ + [str(n) for n in names ^ others])


def test_outputs_are_byte_identical_to_the_local_engine(cluster, photos, reference, tmp_path):
    out, log = tmp_path / "ray", tmp_path / "report.jsonl"
    engine = RayEngine(actors=2, cpus_per_actor=1, batches_per_unit=1)  # 6 units, 2 actors
    report = predict_files(
        [photos], out, model=MODEL, formats=FORMATS, batch_size=2, engine=engine, report_file=log
    )
    assert engine.actors_used == 2
    assert (report.done, report.failed, report.model) == (10, 2, MODEL)
    assert same_tree(reference, out) == []
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["input"] for line in lines] == [r.input for r in report.results]
    failed = {
        Path(line["input"]).name: line["reason"] for line in lines if line["status"] == "failed"
    }
    assert sorted(failed) == ["broken.png", "notes.jpg"]
    assert all(reason.endswith(".") and "\n" not in reason for reason in failed.values())
    done = [line for line in lines if line["status"] == "done"]
    assert all(len(line["outputs"]) == 4 and Path(line["outputs"][-1]).is_file() for line in done)


@dataclass(frozen=True)
class DiesOnce(DepthFiles):
    """DepthFiles whose process is killed (SIGKILL) halfway through writing ``victim``'s
    outputs, the first time only (``marker`` records that it happened)."""

    victim: str = ""
    marker: str = ""

    def write(self, path, key, image, result):
        if Path(path).name == self.victim and not Path(self.marker).exists():
            stem, first = Path(key), self.formats[:1]
            write_outputs(image, result.depth, result.kind, stem, first, self.colormap, False)
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().write(path, key, image, result)


def test_a_killed_actor_has_its_unit_run_again_and_a_rerun_resumes(
    cluster, photos, reference, tmp_path
):
    out, marker = tmp_path / "ray", tmp_path / "killed"
    sink = DiesOnce(list(FORMATS), victim="p04.png", marker=str(marker))
    engine = RayEngine(actors=2, cpus_per_actor=1, batches_per_unit=1)
    report = predict_files([photos], out, model=MODEL, batch_size=2, engine=engine, sink=sink)
    assert marker.is_file()  # an actor did die, after writing half of p04's files
    assert (report.done, report.failed) == (10, 2)
    assert same_tree(reference, out) == []  # nothing half-written, nothing missing
    assert not list(out.rglob("*.tmp"))

    (out / "p07-depth.npy").unlink()  # a torn output: only p07 is predicted again
    again = predict_files(
        [photos], out, model=MODEL, formats=FORMATS, batch_size=2, engine=engine, resume=True
    )
    assert (again.skipped, again.images, again.failed) == (9, 1, 2)
    assert same_tree(reference, out) == []


def test_pseudo_labels_and_shards_match_the_local_engine(cluster, photos, tmp_path):
    for shards in (None, 3):
        local, remote = tmp_path / f"local-{shards}", tmp_path / f"ray-{shards}"
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            first = pseudo_label([str(photos)], local, MODEL, batch_size=2, shard_size=shards)
        finally:
            torch.set_num_threads(threads)
        engine = RayEngine(actors=2, cpus_per_actor=1)  # units of 8 batches (or a shard)
        second = pseudo_label(
            [str(photos)], remote, MODEL, batch_size=2, shard_size=shards, engine=engine
        )
        assert (first.written, len(first.failures)) == (second.written, len(second.failures))
        assert second.written == 10
        assert same_tree(local, remote) == []  # manifests and shard index in input order
    assert len(list((tmp_path / "ray-3").glob("shard-*.tar"))) == 4  # 12 inputs, 10 labelled


def test_the_cli_joins_a_cluster_by_address(cluster, photos, reference, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{p}\n" for p in sorted(photos.iterdir())))
    out, log = tmp_path / "cli", tmp_path / "report.jsonl"
    command = [sys.executable, "-m", "depthlens", "predict", "-o", str(out), "-m", MODEL]
    command += ["-f", ",".join(FORMATS), "--batch-size", "2", "--input-list", str(listing)]
    command += ["--engine", "ray", "--ray-address", cluster, "--report", str(log)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 1, done.stderr  # two inputs failed
    assert "Traceback" not in done.stderr
    assert "10 of 12 inputs" in done.stdout and "2 failed" in done.stdout
    # Absolute lines keep their path below the root: the same files, one folder deeper.
    moved = out / photos.relative_to(photos.anchor)
    assert same_tree(reference, moved) == []
    assert sum(json.loads(line)["status"] == "done" for line in log.open()) == 10


def test_without_ray_one_sentence_says_how_to_install_it(photos, tmp_path):
    script = (
        "import sys; sys.modules['ray'] = None\n"
        "from depthlens.cli import main\n"
        f"main(['predict', {str(photos)!r}, '-o', {str(tmp_path / 'o')!r}, '-m', {MODEL!r},"
        " '--engine', 'ray'])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 2
    assert "pip install 'depthlens[ray]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists()
