"""lens_blur on synthetic two-plane scenes: what is sharp, what is blurred, no halos,
units of focus, auto focus, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from depthlens.effects.bokeh import lens_blur

H, W = 128, 160
SQUARE = (slice(40, 88), slice(56, 104))  # rows, cols of the near square
NEAR_M, FAR_M = 1.0, 4.0


def square_mask(margin: int = 0) -> np.ndarray:
    """The near square grown by ``margin`` pixels (shrunk when negative)."""
    mask = np.zeros((H, W), bool)
    rows, cols = SQUARE
    mask[rows.start - margin : rows.stop + margin, cols.start - margin : cols.stop + margin] = True
    return mask


def two_planes(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noise everywhere (every pixel its own detail), the square 1 m away, the rest 4 m."""
    rgb = np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth = np.full((H, W), FAR_M, np.float32)
    depth[SQUARE] = NEAR_M
    return rgb, depth


def red_on_blue(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A solid red near square on a textured blue far background."""
    rng = np.random.default_rng(seed)
    rgb = np.stack(
        [
            rng.integers(0, 40, (H, W)),
            rng.integers(60, 120, (H, W)),
            rng.integers(150, 256, (H, W)),
        ],
        axis=-1,
    ).astype(np.uint8)
    rgb[SQUARE] = (255, 0, 0)
    depth = np.full((H, W), FAR_M, np.float32)
    depth[SQUARE] = NEAR_M
    return rgb, depth


def sharpness(rgb: np.ndarray, region: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image over ``region``."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(cv2.Laplacian(grey, cv2.CV_32F)[region].var())


# Regions clear of the square's edge by more than the blur radius (12 px).
NEAR_INSIDE = square_mask(-14)
FAR_OUTSIDE = ~square_mask(14)
NEAR_POINT = (80, 64)
FAR_POINT = (10, 10)


@pytest.mark.parametrize(
    ("point", "sharp", "blurred"),
    [(NEAR_POINT, NEAR_INSIDE, FAR_OUTSIDE), (FAR_POINT, FAR_OUTSIDE, NEAR_INSIDE)],
    ids=["focus-near", "focus-far"],
)
def test_the_plane_in_focus_stays_sharp_and_the_other_blurs(point, sharp, blurred):
    rgb, depth = two_planes()
    result = lens_blur(rgb, depth, "metric", focus_point=point)
    assert result.image.shape == rgb.shape and result.image.dtype == np.uint8
    assert sharpness(result.image, sharp) >= 0.9 * sharpness(rgb, sharp)
    assert sharpness(result.image, blurred) <= 0.3 * sharpness(rgb, blurred)
    assert result.focus_point == point and result.max_radius == 12.0


def test_focus_nearness_is_that_of_the_plane_in_focus():
    rgb, depth = two_planes()
    assert lens_blur(rgb, depth, "metric", focus_point=NEAR_POINT).focus_nearness == 1.0
    assert lens_blur(rgb, depth, "metric", focus_point=FAR_POINT).focus_nearness == 0.0


def test_aperture_zero_returns_the_input_exactly():
    rgb, depth = two_planes()
    result = lens_blur(rgb, depth, "metric", focus_point=FAR_POINT, aperture=0.0)
    np.testing.assert_array_equal(result.image, rgb)
    assert result.image is not rgb


def test_focusing_near_leaves_no_halo_of_the_subject_on_the_background():
    rgb, depth = red_on_blue()
    ring = square_mask(5) & ~square_mask(0)  # background within 5 px of the square
    out = lens_blur(rgb, depth, "metric", focus_point=NEAR_POINT).image
    np.testing.assert_array_equal(out[SQUARE], rgb[SQUARE])  # the subject is untouched
    # The ring is the blurred background, like the background far from the square:
    # no red smeared outward (background reds are below 40, the square's 255) ...
    far = out[~square_mask(14)].astype(float)
    assert out[ring][:, 0].max() < 40
    assert abs(out[ring][:, 0].mean() - far[:, 0].mean()) < 2
    # ... and no dark ring where the subject cut a hole in the blurred background.
    assert abs(out[ring][:, 2].mean() - far[:, 2].mean()) < 2


def test_a_blurred_foreground_spreads_softly_over_the_sharp_background():
    rgb, depth = red_on_blue()
    out = lens_blur(rgb, depth, "metric", focus_point=FAR_POINT).image
    outside = square_mask(3) & ~square_mask(0)
    inside = square_mask(0) & ~square_mask(-3)
    mixed = (out[outside][:, 0] > 80) & (out[outside][:, 2] > 80)
    assert mixed.mean() > 0.9  # red over blue just outside the edge
    assert (out[inside][:, 2] > 40).mean() > 0.9  # blue seen through it just inside
    np.testing.assert_array_equal(out[~square_mask(14)], rgb[~square_mask(14)])
    assert (out[square_mask(-14)] == (255, 0, 0)).all()


def test_metric_and_relative_maps_of_one_scene_give_one_image():
    rgb, depth = two_planes()
    depth[:, :20] = 2.0  # a third plane in between
    relative = 3.0 / depth + 0.5  # inverse depth up to scale and shift
    for focus in ({"focus_point": FAR_POINT}, {"focus_point": (10, 64)}, {}):
        metric = lens_blur(rgb, depth, "metric", **focus)
        other = lens_blur(rgb, relative, "relative_inverse", **focus)
        np.testing.assert_array_equal(metric.image, other.image)
    by_meters = lens_blur(rgb, depth, "metric", focus_depth=2.0)
    by_model_value = lens_blur(rgb, relative, "relative_inverse", focus_depth=3.0 / 2.0 + 0.5)
    np.testing.assert_array_equal(by_meters.image, by_model_value.image)
    assert by_meters.focus_nearness == pytest.approx(1 / 3, abs=1e-5)
    assert by_meters.focus_point is None


def test_focus_depth_wins_over_focus_point():
    rgb, depth = two_planes()
    result = lens_blur(rgb, depth, "metric", focus_point=NEAR_POINT, focus_depth=FAR_M)
    assert result.focus_nearness == 0.0 and result.focus_point is None


def test_auto_focus_picks_the_subject_at_the_centre():
    rgb, depth = two_planes()  # the near square is at the centre
    auto = lens_blur(rgb, depth, "metric")
    assert auto.focus_point == (W // 2, H // 2) and auto.focus_nearness == 1.0
    explicit = lens_blur(rgb, depth, "metric", focus_point=NEAR_POINT)
    np.testing.assert_array_equal(auto.image, explicit.image)

    off_centre = np.full((H, W), FAR_M, np.float32)
    off_centre[:40, :40] = NEAR_M  # the near thing is in a corner: the centre is far
    assert lens_blur(rgb, off_centre, "metric").focus_nearness == 0.0


def test_a_flat_scene_has_nothing_to_blur():
    rgb, _ = two_planes()
    flat = np.full((H, W), 2.0, np.float32)
    np.testing.assert_array_equal(lens_blur(rgb, flat, "metric").image, rgb)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"focus_point": (-1, 5)}, "outside"),
        ({"focus_point": (W, 5)}, "outside"),
        ({"focus_point": (5, H)}, "outside"),
        ({"aperture": -1.0}, "aperture"),
        ({"aperture": float("nan")}, "aperture"),
        ({"layers": 0}, "layers"),
        ({"focus_depth": 0.0}, "focus_depth"),
        ({"depth": np.ones((H, W + 1), np.float32)}, "depth must be"),
        ({"rgb": np.zeros((H, W), np.uint8)}, "rgb must be"),
        ({"kind": "disparity"}, "kind"),
    ],
)
def test_bad_inputs_raise_value_error(change, message):
    rgb, depth = two_planes()
    args = {"rgb": rgb, "depth": depth, "kind": "metric"} | change
    with pytest.raises(ValueError, match=message):
        lens_blur(**args)


def test_progress_counts_every_depth_slab_and_changes_nothing():
    rgb, depth = two_planes(3)
    calls: list[tuple[int, int]] = []
    counted = lens_blur(rgb, depth, "metric", aperture=8, on_progress=lambda *c: calls.append(c))
    plain = lens_blur(rgb, depth, "metric", aperture=8)
    np.testing.assert_array_equal(counted.image, plain.image)
    # One call per slab from the far end to the near one, empty slabs included.
    slabs = calls[0][1]
    assert slabs > 2 and calls == [(done, slabs) for done in range(1, slabs + 1)]
    # Nothing out of focus: nothing to count.
    calls.clear()
    lens_blur(rgb, depth, "metric", aperture=0, on_progress=lambda *c: calls.append(c))
    assert calls == []
