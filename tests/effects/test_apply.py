from __future__ import annotations

import json

import numpy as np
import pytest

from depthlens.effects.apply import (
    EFFECTS,
    EffectSettings,
    parallax_animation,
    render_still,
)
from depthlens.errors import UsageError


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
