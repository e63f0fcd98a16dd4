"""Progress and rates (issue 15, item 10): a still photo's effect has a bar, a bar's rate
is its items over its whole time from the first items on, a video's bar opens with its
real frame count, and the summary gives frames per second for videos.

The bars are seen as a shell sees them, in real subprocesses whose stderr passes for a
terminal (rich's TTY_COMPATIBLE); they are started together, at the first test that
needs one, as in ``tests/test_cli_usage.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from threading import RLock

import numpy as np
import pytest
from rich.progress import Task, TaskID

from depthlens.cli.common import _RateColumn, _TimeLeftColumn, task_rate
from depthlens.cli.predict import _Reporter, summary_rates
from depthlens.io.video import write_video
from depthlens.models.tiling import DEFAULT_OVERLAP, plan_tiles
from depthlens.pipeline import InputResult, PredictReport
from tests.hostile import encode, photo

CLI = [sys.executable, "-m", "depthlens"]
MODEL = ["-m", "depthlens-small"]
# What rich writes around and between the bar's frames: colours and cursor moves; and
# the bar itself, drawn with box-drawing characters.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_BAR = re.compile("[\u2500-\u257f]")


def _task(completed: float, total: float | None, now: float, **fields) -> Task:
    """A rich Task added at time 100 and looked at ``now`` (a fake clock)."""
    task = Task(
        TaskID(0), "", total, completed, _get_time=lambda: now, fields=fields, _lock=RLock()
    )
    task.start_time = 100.0
    return task


def test_the_rate_is_the_items_over_the_whole_time():
    # 4 images after 6.5 s: 0.62 img/s, however fast the 4 came in at the end.
    assert _RateColumn("img/s").render(_task(4, 10, now=106.5)).plain == "0.62 img/s"
    assert _RateColumn("frames/s").render(_task(0, 10, now=106.5)).plain == "-- frames/s"
    # The work began before the task was added (a video's first frames): its clock.
    assert task_rate(_task(8, None, now=104.0, started=96.0)) == pytest.approx(1.0)
    # Items an earlier run did (skipped) are not this run's rate.
    assert task_rate(_task(12, 20, now=104.0, done_before=10)) == pytest.approx(0.5)
    # A finished task keeps the rate it finished at while it is still shown.
    finished = _task(10, 10, now=500.0)
    finished.finished_time = 5.0
    assert task_rate(finished) == pytest.approx(2.0)


def test_the_time_left_goes_at_the_same_rate():
    assert _TimeLeftColumn().render(_task(4, 10, now=106.5)).plain == "0:00:09"  # 6 / 0.62
    assert _TimeLeftColumn().render(_task(0, 10, now=106.5)).plain == "-:--:--"
    assert _TimeLeftColumn().render(_task(3, None, now=106.5)).plain == ""


def test_a_batch_that_finishes_at_once_does_not_inflate_the_rate():
    """predict_files reports 0 done before the first batch, then the 4 images of a batch
    within a millisecond: the rate is 4 over the batch's time, where rich's own estimate
    over the updates is thousands of images per second."""
    with _Reporter() as reporter:
        reporter.progress(0, 8)
        time.sleep(0.25)
        for done in range(1, 5):
            reporter.progress(done, 8)
        assert reporter._bar is not None and reporter._task is not None
        task = reporter._bar.tasks[0]
        rate = task_rate(task)
        assert rate is not None and 4 / 10 < rate <= 4 / 0.25
        assert task.speed is None or task.speed > 100  # what the old column showed


def test_a_video_bar_opens_with_its_frame_count_timed_from_its_start():
    with _Reporter() as reporter:
        reporter.video_progress(Path("a.mp4"), 0, None)  # it starts: no bar yet
        assert reporter._bar is None
        time.sleep(0.25)
        reporter.video_progress(Path("a.mp4"), 4, 40)
        assert reporter._bar is not None
        task = reporter._bar.tasks[0]
        assert task.total == 40 and task.completed == 4
        rate = task_rate(task)
        assert rate is not None and rate <= 4 / 0.25


def _report(*results: InputResult, seconds: float) -> PredictReport:
    report = PredictReport("m", "", Path("out"), seconds=seconds)
    for result in results:
        report.add(result)
    return report


def test_the_summary_rates_count_each_kind_of_input():
    image = InputResult("a.png", written=(Path("a-depth.png"),))
    video = InputResult("v.mp4", written=(Path("v-depth.mp4"),), frames=30, seconds=3.0)
    skipped = InputResult("b.png", skipped=True)
    failed = InputResult("c.png", error="broken.")
    assert summary_rates(_report(image, image, skipped, failed, seconds=4.0)) == "0.50 images/s"
    # Videos alone: frames per second, over the videos' own time.
    assert summary_rates(_report(video, seconds=3.5)) == "10.0 frames/s"
    # Both: images over the rest of the run's time.
    mixed = summary_rates(_report(image, image, video, seconds=7.0))
    assert mixed == "0.50 images/s, 10.0 frames/s"
    assert summary_rates(_report(failed, seconds=1.0)) == "0.00 images/s"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The subprocesses of this file, started together: name -> future result."""
    root = tmp_path_factory.mktemp("progress")
    (root / "room.png").write_bytes(encode(photo(48, 64, seed=3)))
    scene = photo(48, 64, seed=4)
    write_video(root / "slide.mp4", (np.roll(scene, 2 * k, axis=1) for k in range(6)), 6.0)
    (root / "large.png").write_bytes(encode(photo(480, 640, seed=5)))
    commands = {
        "parallax": [*CLI, "effect", "parallax", "room.png", "-o", "p.mp4", "--frames", "5"],
        "bokeh": [*CLI, "effect", "bokeh", "room.png", "-o", "b.png", "--aperture", "6"],
        "video": [*CLI, "predict", "slide.mp4", "-o", "depth", "--batch-size", "2"],
        "video effect": [*CLI, "effect", "stereo", "slide.mp4", "-o", "s.mp4"],
        "tiles": [*CLI, "predict", "large.png", "-o", "tiled", "-f", "npy", "--tiles", "3"],
    }
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")}
    # Four at once on a small machine: one thread each, or they mostly wait for cores.
    env.update(TTY_COMPATIBLE="1", TERM="xterm", COLUMNS="120", OMP_NUM_THREADS="1")

    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*args, *MODEL], capture_output=True, text=True, cwd=root, env=env, timeout=300
        )

    with ThreadPoolExecutor(len(commands)) as pool:
        futures: dict[str, Future[subprocess.CompletedProcess[str]]] = {
            name: pool.submit(run, args) for name, args in commands.items()
        }
        yield {name: future.result for name, future in futures.items()}


def _frames(stderr: str) -> list[str]:
    """Each frame rich drew of the bar, as plain text (the bar's own glyphs dropped)."""
    plain = _BAR.sub(" ", _CONTROL.sub("", stderr)).replace("\r", "\n")
    return [" ".join(line.split()) for line in plain.split("\n") if line.strip()]


def test_parallax_of_a_photo_counts_its_frames(runs):
    result = runs["parallax"]()
    assert result.returncode == 0, result.stderr
    frames = _frames(result.stderr)
    assert any(re.fullmatch(r"parallax 5/5 [0-9.]+ frames/s \d:\d\d:\d\d", f) for f in frames)
    assert "parallax: 5 frames -> p.mp4" in result.stdout


def test_bokeh_of_a_photo_counts_its_depth_layers(runs):
    result = runs["bokeh"]()
    assert result.returncode == 0, result.stderr
    counts = [
        tuple(map(int, m.groups()))
        for f in _frames(result.stderr)
        if (m := re.fullmatch(r"bokeh (\d+)/(\d+) \d:\d\d:\d\d", f))
    ]
    assert counts and counts[-1][0] == counts[-1][1] > 1  # every layer, with the time
    assert "bokeh: b.png" in result.stdout


@pytest.mark.parametrize(("run", "label"), [("video", "slide.mp4"), ("video effect", "stereo")])
def test_a_video_bar_starts_with_the_real_frame_count(runs, run, label):
    result = runs[run]()
    assert result.returncode == 0, result.stderr
    bars = [f for f in _frames(result.stderr) if f.startswith(f"{label} ")]
    assert bars and all(re.match(rf"{re.escape(label)} \d+/6 ", bar) for bar in bars), bars
    assert any(bar.startswith(f"{label} 6/6 ") and "frames/s" in bar for bar in bars)


def test_a_run_of_videos_alone_reports_frames_per_second(runs):
    summary = " ".join(runs["video"]().stdout.split())
    assert re.search(r"1 of 1 inputs -> \S+ in [0-9.]+ s \([0-9.]+ frames/s\)", summary), summary
    assert "images/s" not in summary


def test_a_tiled_photo_has_a_bar_of_its_passes(runs):
    result = runs["tiles"]()
    assert result.returncode == 0, result.stderr
    passes = 1 + len(plan_tiles(480, 640, 3, DEFAULT_OVERLAP, 256))  # the global pass too
    bars = [f for f in _frames(result.stderr) if f.startswith("large.png tiles ")]
    assert bars and all(re.match(rf"large.png tiles \d+/{passes} ", bar) for bar in bars), bars
    assert any(bar.startswith(f"large.png tiles {passes}/{passes} ") for bar in bars)
    folder = re.search(r"-> (\S+) in", " ".join(result.stdout.split()))
    assert folder is not None, result.stdout
    assert np.load(Path(folder.group(1)) / "large-depth.npy").shape == (480, 640)
