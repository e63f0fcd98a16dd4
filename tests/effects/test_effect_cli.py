"""``depthlens effect`` and ``depthlens predict VIDEO`` through the command line."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image as PILImage

import depthlens
from depthlens.effects.apply import EffectSettings, render_still
from depthlens.io.video import write_video
from depthlens.synth.render import render_batch
from tests.cli import run_cli

MODEL = "depthlens-small"


@pytest.fixture(scope="module")
def scene():
    return render_batch([11], 48, 64)[0]


@pytest.fixture(scope="module")
def photo(tmp_path_factory, scene):
    path = tmp_path_factory.mktemp("photo") / "room.png"
    PILImage.fromarray(scene.rgb).save(path)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory, scene):
    """Six frames of the scene sliding sideways, as an MP4."""
    path = tmp_path_factory.mktemp("clip") / "slide.mp4"
    write_video(path, (np.roll(scene.rgb, 2 * k, axis=1) for k in range(6)), 6.0)
    return path


@pytest.fixture(scope="module")
def depth(scene):
    return depthlens.load_model(MODEL, device="cpu").predict(scene.rgb)


def test_bokeh_and_stereo_write_what_the_library_renders(photo, depth, tmp_path, capsys):
    for name, extra, settings in [
        (
            "bokeh",
            ["--focus", "10,40", "--aperture", "5"],
            {"focus_point": (10, 40), "aperture": 5},
        ),
        ("stereo", ["--layout", "top-bottom"], {"layout": "top-bottom"}),
    ]:
        out = tmp_path / f"{name}.png"
        code, _, err = run_cli(["effect", name, photo, "-o", out, *extra], capsys)
        assert code == 0, err
        expected = render_still(
            name,
            np.asarray(PILImage.open(photo)),
            depth.depth,
            depth.kind,
            EffectSettings(**settings),
        )
        np.testing.assert_array_equal(np.asarray(PILImage.open(out)), expected.image)


def test_obstacle_prints_and_writes_its_report(photo, tmp_path, capsys):
    out = tmp_path / "near.jpg"
    code, stdout, err = run_cli(
        ["effect", "obstacle", photo, "-o", out, "--threshold", "0.6"], capsys
    )
    assert code == 0, err
    report = json.loads(stdout)
    assert report == json.loads(out.with_suffix(".json").read_text())
    assert report["threshold"] == 0.6 and report["unit"] == "nearness"
    assert PILImage.open(out).format == "JPEG"


def test_parallax_writes_a_clip_of_the_asked_length(photo, tmp_path, capsys):
    out = tmp_path / "photo3d.mp4"
    args = ["effect", "parallax", photo, "-o", out, "--duration", "0.5", "--fps", "10"]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    frames = iio.imread(out, index=None)
    assert frames.shape[:3] == (5, 48, 64)


def test_video_effects_stream_frame_by_frame(clip, tmp_path, capsys):
    out = tmp_path / "sbs.mp4"
    code, _, err = run_cli(["effect", "stereo", clip, "-o", out], capsys)
    assert code == 0, err
    assert iio.imread(out, index=None).shape[:3] == (6, 48, 128)
    warned = tmp_path / "warned.mp4"
    code, _, err = run_cli(["effect", "obstacle", clip, "-o", warned, "--no-stabilize"], capsys)
    assert code == 0, err
    lines = warned.with_suffix(".jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == list(range(6))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["effect", "sepia", "{photo}", "-o", "{out}/x.png"], "Unknown effect 'sepia'"),
        (["effect", "parallax", "{photo}", "-o", "{out}/x.png"], "name the output x.mp4 or x.gif"),
        (["effect", "bokeh", "{photo}", "-o", "{out}/x.mp4"], "Name the output .png or .jpg"),
        (["effect", "bokeh", "{clip}", "-o", "{out}/x.png"], "A video gives a clip"),
        (["effect", "bokeh", "{out}/none.png", "-o", "{out}/x.png"], "does not exist"),
        (["effect", "bokeh", "{photo}", "-o", "{out}/x.png", "--focus", "a,b"], "X,Y"),
        (["effect", "bokeh", "{photo}", "-o", "{out}/x.png", "--focus", "999,1"], "outside"),
        (["effect", "stereo", "{photo}", "-o", "{out}/x.png", "--layout", "3d"], "stereo layout"),
    ],
)
def test_bad_requests_write_nothing(photo, clip, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    out.mkdir()
    filled = [a.format(photo=photo, clip=clip, out=out) for a in args]
    code, _, err = run_cli(filled, capsys)
    assert code != 0 and message in err
    assert list(out.iterdir()) == []


def test_predict_streams_videos_beside_photos_and_survives_a_bad_one(photo, clip, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    out = tmp_path / "depth"
    code, stdout, err = run_cli(
        ["predict", photo, clip, broken, "-o", out, "--lossless", "npz"], capsys
    )
    assert code == 1  # one input failed; the others were written
    assert f"failed {broken}" in err and "2 of 3 inputs" in stdout
    assert (out / "room-depth.png").is_file()
    sidecar = json.loads((out / "slide-depth.json").read_text())
    assert sidecar["frame_count"] == 6 and sidecar["lossless"]["format"] == "npz"
    assert iio.imread(out / "slide-depth.mp4", index=None).shape[0] == 6
    chunk = np.load(out / "slide-depth-chunk0000.npz")
    assert chunk["depth"].shape == (6, 48, 64)
    assert not (out / "broken-depth.mp4").exists()


def test_demo_writes_the_depth_and_two_effects(tmp_path, capsys):
    from depthlens.synth.demo import demo_scene

    code, stdout, err = run_cli(["demo", "-o", tmp_path], capsys)
    assert code == 0, err
    names = ["input.png", "input-depth.png", "input-side.png", "input-bokeh.png"]
    assert all(str(tmp_path / name) in stdout.replace("\n", "") for name in names)
    assert "Next: depthlens predict" in stdout  # the demo says what to try next
    scene = demo_scene()
    depth = depthlens.load_model(MODEL, device="cpu").predict(scene)
    anaglyph = render_still(
        "stereo", scene, depth.depth, depth.kind, EffectSettings(layout="anaglyph")
    )
    np.testing.assert_array_equal(
        np.asarray(PILImage.open(tmp_path / "input-anaglyph.png")), anaglyph.image
    )


def test_camera_flags_reach_every_video_frame(clip, tmp_path, capsys):
    runs = {}
    for fov in ("60", "90"):
        out = tmp_path / fov
        args = ["predict", clip, "-o", out, "-m", "depthlens-small-metric", "--fov", fov]
        code, _, err = run_cli([*args, "--lossless", "npz", "--no-stabilize"], capsys)
        assert code == 0, err
        sidecar = json.loads((out / "slide-depth.json").read_text())
        assert sidecar["camera"]["source"] == "user"
        runs[fov] = np.load(out / "slide-depth-chunk0000.npz")["depth"]
    # A metric model's meters follow the focal length: fx ∝ 1 / tan(fov / 2).
    ratio = np.tan(np.radians(30.0)) / np.tan(np.radians(45.0))
    np.testing.assert_allclose(runs["90"], runs["60"] * ratio, rtol=1e-5)
