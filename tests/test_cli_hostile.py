"""The hostile-input batch through the real command, in a subprocess: a batch never
aborts on one input, and each failure is exactly one line (issue 13, items 13-16)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.cli import run_cli
from tests.hostile import hostile_folder, photo

CLI = [sys.executable, "-c", "from depthlens.cli import main; main()"]
# The model is named: without one, the default's fallback notice would be a stderr line.
BUNDLED = ("-m", "depthlens-small")


def run(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    good, bad = hostile_folder(root / "in")
    result = run("predict", *BUNDLED, "in", "-o", "out", "--format", "color,npy", cwd=root)
    return root, good, bad, result


def test_batch_goes_on_past_every_bad_input(hostile_run):
    root, good, bad, result = hostile_run
    assert result.returncode == 1
    for name in good:
        # good.jpg and good.png share a stem, so both keep their suffix in the name
        stem = Path(name).stem if name.count("good") == 0 else name.replace(".", "_")
        npy = root / "out" / f"{stem}-depth.npy"
        assert npy.is_file(), (name, result.stderr)
        info = json.loads(npy.with_suffix(".json").read_text())
        assert info["camera_source"] in ("default", "exif")
    assert f"{len(good)} of {len(good) + len(bad)} inputs" in result.stdout
    assert f"{len(bad)} failed" in " ".join(result.stdout.split())


def test_each_failure_is_one_line_and_nothing_else_is_printed(hostile_run):
    _root, _good, bad, result = hostile_run
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    # no Pillow UserWarning, libpng/libjpeg/libtiff chatter, OpenCV log or traceback
    assert len(lines) == len(bad), result.stderr
    for name in bad:
        assert sum(line.startswith(f"failed in/{name}: ") for line in lines) == 1, name
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr


def test_no_output_is_half_written(hostile_run):
    root, _good, bad, _result = hostile_run
    names = {path.name for path in (root / "out").iterdir()}
    assert not any(name.startswith(".") or ".tmp" in name for name in names)
    for name in bad:
        assert not any(n.startswith(Path(name).stem + "-") for n in names), name


def test_special_inputs_named_on_the_command_line_say_what_they_are(hostile_run):
    root, _good, bad, _result = hostile_run
    expected = {
        "fifo.jpg": "named pipe",
        "loop.jpg": "symbolic link loop",
        "zeros.png": "character device",
        "broken-link.png": "broken symbolic link",
    }
    named = [name for name in expected if name in bad]
    result = run("predict", *BUNDLED, *(f"in/{name}" for name in named), "-o", "single", cwd=root)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(named) and "does not exist" not in result.stderr
    for name, line in zip(named, lines, strict=True):
        assert line.startswith(f"failed in/{name}: ") and expected[name] in line


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--fov", "1e-306"], "--fov must be between 1 and 179 degrees"),
        (["--fov", "5e-324"], "--fov must be between 1 and 179 degrees"),
        (["--fov", "179.5"], "--fov must be between 1 and 179 degrees"),
        (["--fov", "nan"], "--fov must be between 1 and 179 degrees"),
        (["--fx", "0"], "--fx must be a positive focal length"),
        (["--fx", "inf"], "--fx must be a positive focal length"),
    ],
)
def test_impossible_cameras_are_refused_before_any_work(tmp_path, capsys, flags, words):
    from PIL import Image as PILImage

    PILImage.fromarray(photo(48, 64)).save(tmp_path / "a.png")
    code, _out, err = run_cli(
        ["predict", *BUNDLED, tmp_path / "a.png", "-o", tmp_path / "out", *flags], capsys
    )
    assert code == 2, err
    assert err.strip().count("\n") == 0 and words in err
    assert not (tmp_path / "out").exists()


def test_a_focal_length_that_does_not_fit_one_image_fails_that_image(tmp_path, capsys):
    from PIL import Image as PILImage

    PILImage.fromarray(photo(48, 64)).save(tmp_path / "small.png")
    PILImage.fromarray(photo(48, 4000)).save(tmp_path / "wide.png")
    # 5 px is a 162-degree lens on 64 px and a 179.9-degree one on 4000 px
    inputs = [tmp_path / "small.png", tmp_path / "wide.png"]
    code, _out, err = run_cli(
        ["predict", *BUNDLED, *inputs, "-o", tmp_path / "out", "--fx", "5"], capsys
    )
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"failed {inputs[1]}: The camera options")
    assert (tmp_path / "out" / "small-depth.png").exists()


@pytest.fixture(scope="module")
def cut_clip(tmp_path_factory):
    """A 30-frame MP4 (index first) cut at 60 % of its bytes, as a broken download."""
    from tests.video import cut_video

    return cut_video(tmp_path_factory.mktemp("cut") / "cut.mp4", 30, 0.6)


def test_a_truncated_video_is_reported_and_fails_unless_allowed(cut_clip, tmp_path):
    result = run("predict", *BUNDLED, cut_clip, "-o", "out", "--lossless", "none", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "is truncated" in warning[0] and "of 30 frames" in warning[0]
    assert "1 truncated" in result.stdout
    sidecar = json.loads((tmp_path / "out" / "cut-depth.json").read_text())
    assert sidecar["truncated"] is True and sidecar["expected_frames"] == 30
    assert 0 < sidecar["decoded_frames"] < 30

    allowed = run(
        "predict",
        *BUNDLED,
        cut_clip,
        "-o",
        "out2",
        "--lossless",
        "none",
        "--allow-truncated",
        cwd=tmp_path,
    )
    assert allowed.returncode == 0 and "is truncated" in allowed.stderr


def test_a_truncated_video_effect_is_reported_too(cut_clip, tmp_path, capsys):
    out = tmp_path / "stereo.mp4"
    code, _out, err = run_cli(["effect", "stereo", cut_clip, "-o", out], capsys)
    assert code == 1 and "is truncated" in err and out.exists()
    code, _out, err = run_cli(
        ["effect", "stereo", cut_clip, "-o", tmp_path / "ok.mp4", "--allow-truncated"], capsys
    )
    assert code == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--fps", "1e-4"], "--fps"),
        (["--fps", "1e-300"], "--fps"),
        (["--fps", "1e6"], "--fps"),
        (["--duration", "1e308"], "at most 3600 frames"),
        (["--frames", "100000"], "at most 3600 frames"),
    ],
)
def test_parallax_frame_rates_and_lengths_are_bounded(tmp_path, capsys, args, words):
    from PIL import Image as PILImage

    PILImage.fromarray(photo(48, 64)).save(tmp_path / "a.png")
    out = tmp_path / "clip.gif"
    code, _out, err = run_cli(["effect", "parallax", tmp_path / "a.png", "-o", out, *args], capsys)
    assert code == 2 and words in err and err.strip().count("\n") == 0, err
    assert not out.exists()


def test_an_output_that_is_a_file_is_refused_before_any_work(tmp_path, capsys):
    from PIL import Image as PILImage

    PILImage.fromarray(photo(48, 64)).save(tmp_path / "a.png")
    (tmp_path / "out").write_text("not a folder")
    code, _out, err = run_cli(
        ["predict", *BUNDLED, tmp_path / "a.png", "-o", tmp_path / "out"], capsys
    )
    assert code == 1 and err.strip().count("\n") == 0
    assert "is a file; the outputs need a folder" in err and "Errno" not in err


def test_ctrl_c_says_how_far_it_got_and_leaves_only_whole_files(tmp_path):
    import signal
    import time

    from PIL import Image as PILImage

    folder = tmp_path / "many"
    folder.mkdir()
    for index in range(150):
        PILImage.fromarray(photo(192, 256, seed=index)).save(folder / f"{index:03d}.png")
    process = subprocess.Popen(
        [*CLI, "predict", *BUNDLED, "many", "-o", "out", "-f", "color,npy", "--batch-size", "1"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A suite started in the background (`make test &`) inherits SIGINT ignored, and
        # Python then never turns Ctrl-C into KeyboardInterrupt: give the child the default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not list((tmp_path / "out").glob("*-depth.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted: ")
    written = int(lines[0].split()[1])
    sidecars = sorted((tmp_path / "out").glob("*-depth.json"))
    # (a Ctrl-C between an image's last file and its report counts it one short)
    assert len(sidecars) - 1 <= written <= len(sidecars) < 150
    assert "of 150 inputs written" in lines[0]
    names = [path.name for path in (tmp_path / "out").iterdir()]
    assert not [name for name in names if name.startswith(".") or ".tmp" in name]
    for sidecar in sidecars:  # every file there is whole
        stem = sidecar.name.removesuffix("-depth.json")
        assert np.load(tmp_path / "out" / f"{stem}-depth.npy").shape == (192, 256)
