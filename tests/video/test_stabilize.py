"""Temporal stabilisation: jitter removed on static scenes, moving objects ignored."""

from __future__ import annotations

import numpy as np
import pytest

from depthlens.errors import UsageError
from depthlens.synth.render import render_batch
from depthlens.video.stabilize import DepthStabilizer, flicker, static_mask

FRAMES = 24


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray]:
    """A rendered (48, 64) scene: its RGB frame and its depth in meters."""
    sample = render_batch([5], 48, 64)[0]
    depth = np.where(sample.valid, sample.depth, np.nan).astype(np.float32)
    return sample.rgb, depth


def _noisy_frames(rgb: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """The still scene with ±2 levels of noise per frame (a camera on a tripod)."""
    noise = [rng.integers(-2, 3, rgb.shape) for _ in range(FRAMES)]
    return [np.clip(rgb.astype(np.int16) + n, 0, 255).astype(np.uint8) for n in noise]


def _spread(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.abs(finite - np.median(finite)).mean())


def test_relative_jitter_is_removed(scene) -> None:
    rgb, depth = scene
    rng = np.random.default_rng(0)
    disparity = np.nan_to_num(1.0 / depth, nan=0.0)  # sky: disparity 0
    spread = _spread(disparity)
    preds = [
        rng.uniform(0.7, 1.3) * disparity
        + rng.uniform(-0.5, 0.5) * spread
        + rng.normal(0.0, 0.01 * spread, disparity.shape)
        for _ in range(FRAMES)
    ]
    frames = _noisy_frames(rgb, rng)
    stabilizer = DepthStabilizer("relative_inverse")
    stable = [stabilizer(p, f) for p, f in zip(preds, frames, strict=True)]

    raw, fixed = flicker(preds, "relative_inverse"), flicker(stable, "relative_inverse")
    assert raw > 0.3
    assert fixed < 0.2 * raw
    assert stable[0].dtype == np.float32
    np.testing.assert_array_equal(stable[0], preds[0].astype(np.float32))  # first passes through
    # Every frame lands on the first one's scale and shift.
    assert np.abs(stable[-1] - stable[0]).mean() < 0.05 * spread

    smoothed = DepthStabilizer("relative_inverse", smoothing=0.6)
    averaged = [smoothed(p, f) for p, f in zip(preds, frames, strict=True)]
    assert flicker(averaged, "relative_inverse") < fixed


def test_metric_scale_jitter_is_removed_and_meters_kept(scene) -> None:
    rgb, depth = scene
    rng = np.random.default_rng(1)
    scales = rng.uniform(0.8, 1.2, FRAMES)
    preds = [s * depth * (1 + rng.normal(0.0, 0.01, depth.shape)) for s in scales]
    frames = _noisy_frames(rgb, rng)
    stabilizer = DepthStabilizer("metric")
    stable = [stabilizer(p, f) for p, f in zip(preds, frames, strict=True)]

    raw, fixed = flicker(preds, "metric"), flicker(stable, "metric")
    assert raw > 0.05
    assert fixed < 0.2 * raw
    # Scale only: the last frame is the first frame's meters (s_0 · depth), sky stays NaN.
    assert np.nanmean(np.abs(stable[-1] / (scales[0] * depth) - 1)) < 0.02
    assert np.array_equal(np.isnan(stable[-1]), np.isnan(depth))
    assert stabilizer.last_shift == 0.0


def test_moving_object_does_not_drive_the_fit(scene) -> None:
    rgb, depth = scene
    rng = np.random.default_rng(2)
    disparity = np.nan_to_num(1.0 / depth, nan=0.0)
    spread = _spread(disparity)
    frames, preds = [], []
    covered = np.zeros(disparity.shape, bool)
    for k in range(16):
        # A large object crosses the frame: new colour, and a depth of its own that
        # jumps every frame (a quarter of the pixels in every frame).
        box = (slice(8, 34), slice(2 * k, 2 * k + 22))
        frame = rgb.copy()
        frame[box] = rng.integers(0, 256, 3)
        covered[box] = True
        pred = disparity.copy()
        pred[box] = rng.uniform(0.0, 5.0) * disparity.max()
        frames.append(frame)
        preds.append(rng.uniform(0.7, 1.3) * pred + rng.uniform(-0.5, 0.5) * spread)
    background = ~covered

    def worst_background_error(stabilizer: DepthStabilizer) -> float:
        stable = [stabilizer(p, f) for p, f in zip(preds, frames, strict=True)]
        first = stable[0][background]
        return max(float(np.abs(s[background] - first).mean()) for s in stable) / spread

    assert worst_background_error(DepthStabilizer("relative_inverse")) < 0.01
    # The same fit on every pixel (nothing counts as moving) is thrown off.
    assert worst_background_error(DepthStabilizer("relative_inverse", motion_threshold=1e9)) > 0.3


def test_smoothing_leaves_moving_pixels_alone(scene) -> None:
    rgb, depth = scene
    disparity = np.nan_to_num(1.0 / depth, nan=0.0)
    stabilizer = DepthStabilizer("relative_inverse", smoothing=0.5)
    stabilizer(disparity, rgb)
    moved_rgb = rgb.copy()
    moved_rgb[10:20, 10:20] = 255 - moved_rgb[10:20, 10:20]
    moved = disparity.copy()
    moved[10:20, 10:20] += 1.0
    out = stabilizer(moved, moved_rgb)
    np.testing.assert_allclose(out[14, 14], moved[14, 14], rtol=1e-5)  # unsmoothed
    assert stabilizer.last_static_fraction > 0.5


def test_scene_cut_keeps_the_value_range(scene) -> None:
    rgb, depth = scene
    disparity = np.nan_to_num(1.0 / depth, nan=0.0)
    stabilizer = DepthStabilizer("relative_inverse")
    stabilizer(disparity, rgb)
    other = np.linspace(0, 100, disparity.size, dtype=np.float32).reshape(disparity.shape)
    out = stabilizer(other, 255 - rgb)  # every pixel changed colour
    assert stabilizer.last_static_fraction < 0.05
    assert np.median(out) == pytest.approx(np.median(disparity), rel=1e-3)
    assert _spread(out) == pytest.approx(_spread(disparity), rel=1e-3)


def test_static_mask_marks_changed_pixels_and_their_surroundings() -> None:
    previous = np.full((40, 40, 3), 100, np.uint8)
    current = previous.copy()
    current[18:22, 18:22] = 200
    mask = static_mask(current, previous, threshold=12.0)
    assert not mask[20, 20] and not mask[16, 20]  # changed, and grown around
    assert mask[0, 0] and mask[39, 39]
    noisy = np.clip(previous.astype(np.int16) + 3, 0, 255).astype(np.uint8)
    assert static_mask(noisy, previous, threshold=12.0).all()


def test_flicker_definition() -> None:
    rng = np.random.default_rng(3)
    base = rng.uniform(1.0, 2.0, (8, 8))
    assert flicker([base, base, base], "relative_inverse") == 0.0
    assert flicker([base], "metric") == 0.0
    # Metric: mean |Δ| / mean |a|. Doubling every value of a pair changes it by 100 %.
    assert flicker([base, 2 * base], "metric") == pytest.approx(1.0)
    # Relative: mean |Δ| / mean |a − median(a)|; a shift of one spread gives 1.
    spread = float(np.abs(base - np.median(base)).mean())
    assert flicker([base, base + spread], "relative_inverse") == pytest.approx(1.0)
    # One constant for the whole sequence changes nothing.
    seq = [base, 1.3 * base + 0.1, 0.8 * base]
    assert flicker([5 * a + 2 for a in seq], "relative_inverse") == pytest.approx(
        flicker(seq, "relative_inverse")
    )
    # Non-finite pixels are left out.
    holed = base.copy()
    holed[0, 0] = np.nan
    assert flicker([holed, holed], "metric") == 0.0


def test_bad_arguments() -> None:
    with pytest.raises(UsageError, match="smoothing"):
        DepthStabilizer("relative_inverse", smoothing=1.0)
    with pytest.raises(UsageError, match="threshold"):
        DepthStabilizer("metric", motion_threshold=0)
    with pytest.raises(ValueError, match="kind"):
        DepthStabilizer("disparity")  # type: ignore[arg-type]
    stabilizer = DepthStabilizer("metric")
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        stabilizer(np.ones((4, 4)), np.zeros((4, 5, 3), np.uint8))
