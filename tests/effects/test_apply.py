from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from depthlens.effects.apply import (
    DEFAULT_LOOP_FRAMES,
    EFFECTS,
    EffectSettings,
    convert_video,
    loop_frames,
    parallax_animation,
    render_still,
)
from depthlens.effects.parallax import MAX_PARALLAX_FRAMES
from depthlens.errors import UsageError
from depthlens.io.video import MAX_FPS, MIN_FPS, FrameRateError, VideoReader, write_video
from tests.video import FakeEstimator, cut_video, moving_square

# Rates no clip may have: near 0 they overflowed the GIF and MP4 writers.
BAD_RATES = [1e-4, 1e-300, 0, -1, math.inf, math.nan, 1e6]


@pytest.fixture
def scene():
    """A textured far wall at 5 m with a textured box at 0.5 m in the middle."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    depth = np.full((48, 64), 5.0, np.float32)
    depth[16:32, 24:40] = 0.5
    return rgb, depth


@pytest.mark.parametrize("name", EFFECTS)
def test_every_effect_renders_and_reports_json(scene, name):
    rgb, depth = scene
    still = render_still(name, rgb, depth, "metric", EffectSettings(frames=8))
    width = 128 if name == "stereo" else 64  # side-by-side doubles the width
    assert still.image.shape == (48, width, 3) and still.image.dtype == np.uint8
    assert json.loads(json.dumps(still.report)) == still.report


def test_effects_do_what_their_settings_say(scene):
    rgb, depth = scene
    report = render_still("obstacle", rgb, depth, "metric", EffectSettings()).report
    assert report["warning"] is True and report["near_fraction"] == pytest.approx(256 / 3072)
    clear = render_still("obstacle", rgb, depth, "metric", EffectSettings(threshold=0.4))
    assert clear.report["warning"] is False
    np.testing.assert_array_equal(clear.image, rgb)
    # The first frame of every clip is the photo itself; later ones move.
    frames = list(parallax_animation(rgb, depth, "metric", EffectSettings(frames=6)))
    assert len(frames) == 6
    np.testing.assert_array_equal(frames[0], rgb)
    assert not np.array_equal(frames[2], rgb)
    moved = render_still("parallax", rgb, depth, "metric", EffectSettings(frames=6), frame=8)
    np.testing.assert_array_equal(moved.image, frames[2])  # frame 8 of a 6-frame loop
    sharp = render_still("bokeh", rgb, depth, "metric", EffectSettings(aperture=0))
    np.testing.assert_array_equal(sharp.image, rgb)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"path": "spiral"}, "Unknown camera path 'spiral'"),
        ({"layout": "interlaced"}, "Unknown stereo layout 'interlaced'"),
        ({"frames": 0}, "at least 1 frame"),
        ({"frames": MAX_PARALLAX_FRAMES + 1}, f"at most {MAX_PARALLAX_FRAMES} frames"),
        ({"frames": 10**6}, "at most"),
        ({"aperture": -1.0}, "cannot be negative"),
        ({"threshold": 0.0}, "must be positive"),
    ],
)
def test_bad_settings_are_one_sentence(changes, message):
    with pytest.raises(UsageError, match=message):
        EffectSettings(**changes)


def test_settings_an_effect_cannot_use_are_usage_errors(scene):
    rgb, depth = scene
    with pytest.raises(UsageError, match="Unknown effect 'sepia'"):
        render_still("sepia", rgb, depth, "metric", EffectSettings())
    with pytest.raises(UsageError, match="focus"):
        render_still("bokeh", rgb, depth, "metric", EffectSettings(focus_point=(500, 5)))


def test_loop_frames_from_a_count_a_duration_or_the_default():
    assert loop_frames() == DEFAULT_LOOP_FRAMES == EffectSettings().frames
    assert loop_frames(frames=12, duration=99.0, fps=10) == 12  # a count wins
    assert loop_frames(duration=0.5, fps=10) == 5
    assert loop_frames(duration=0.01, fps=10) == 1  # at least one frame
    assert loop_frames(duration=1.0, fps=MAX_FPS) == 240
    assert loop_frames(duration=MAX_PARALLAX_FRAMES / 30, fps=30) == MAX_PARALLAX_FRAMES
    assert loop_frames(duration=10.0, fps=MIN_FPS) == 1


@pytest.mark.parametrize("fps", BAD_RATES)
def test_loop_frames_refuses_rates_outside_the_range(fps):
    for args in ({}, {"frames": 10}, {"duration": 2.0}):
        with pytest.raises(FrameRateError, match=r"frame rate must be 0\.1 to 240") as caught:
            loop_frames(fps=fps, **args)
        assert isinstance(caught.value, UsageError)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"duration": 1e6, "fps": 30}, f"at most {MAX_PARALLAX_FRAMES} frames"),
        ({"duration": 1e308, "fps": MAX_FPS}, "at most"),  # no overflow on the way
        (
            {"duration": MAX_PARALLAX_FRAMES / 30 + 1, "fps": 30},
            r"3600 frames \(120 s at 30 frames per second\), not 121\.0 s\.",
        ),
        ({"frames": MAX_PARALLAX_FRAMES + 1}, "at most"),
        ({"duration": 0.0}, "positive number of seconds, not 0.0"),
        ({"duration": -1.0}, "positive number of seconds"),
        ({"duration": math.inf}, "positive number of seconds, not inf"),
        ({"duration": math.nan}, "positive number of seconds, not nan"),
        ({"frames": 0}, "at least 1"),
        ({"frames": 2.5}, "whole number"),
    ],
)
def test_loop_frames_refuses_impossible_loops(args, message):
    with pytest.raises(UsageError, match=message) as caught:
        loop_frames(**args)
    text = str(caught.value)
    assert text.endswith(".") and "\n" not in text


@pytest.mark.parametrize("fps", BAD_RATES)
def test_convert_video_refuses_bad_rates_before_reading(tmp_path, fps):
    source = tmp_path / "clip.mp4"
    write_video(source, moving_square(3), fps=10)
    with pytest.raises(FrameRateError):
        convert_video(
            FakeEstimator(), "stereo", source, tmp_path / "out.mp4", EffectSettings(), fps=fps
        )
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]


def test_convert_video_reports_a_truncated_input(tmp_path):
    source = cut_video(tmp_path / "cut.mp4", 30, 0.75)
    out = tmp_path / "3d.mp4"
    result = convert_video(FakeEstimator(), "parallax", source, out, EffectSettings(frames=8))
    assert result.truncated is True and result.expected_frames == 30
    assert 0 < result.frames < 30 and result.path == out
    with VideoReader(out) as video:
        assert len(list(video)) == result.frames


def test_convert_video_of_a_whole_video_is_not_truncated(tmp_path):
    source = tmp_path / "clip.webm"
    write_video(source, moving_square(6), fps=12)
    result = convert_video(
        FakeEstimator(), "stereo", source, tmp_path / "sbs.mp4", EffectSettings()
    )
    assert (result.frames, result.fps, result.truncated, result.expected_frames) == (
        6,
        12.0,
        False,
        6,
    )


def test_still_effects_report_their_steps(scene):
    rgb, depth = scene
    settings = EffectSettings(frames=7, aperture=6)
    calls: list[tuple[int, int]] = []
    frames = parallax_animation(rgb, depth, "metric", settings, lambda *c: calls.append(c))
    assert calls == []  # lazily: a frame is counted as it is rendered
    next(frames)
    assert calls == [(1, 7)]
    assert len(list(frames)) == 6 and calls == [(k, 7) for k in range(1, 8)]
    calls.clear()
    render_still("bokeh", rgb, depth, "metric", settings, on_progress=lambda *c: calls.append(c))
    assert calls and calls[-1][0] == calls[-1][1] == len(calls)  # bokeh's depth slabs
    calls.clear()
    render_still("stereo", rgb, depth, "metric", settings, on_progress=lambda *c: calls.append(c))
    assert calls == []  # one step: nothing to count
