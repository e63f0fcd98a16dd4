"""Stereo pairs: disparity direction and size, a still background, layouts, no holes."""

from __future__ import annotations

import numpy as np
import pytest

from depthlens.effects.stereo import STEREO_LAYOUTS, compose_stereo, stereo_image, stereo_views

H, W = 96, 128
SQUARE = (slice(32, 64), slice(48, 80))  # rows, columns of the near square
DEPTHS = {"relative_inverse": (0.1, 0.5), "metric": (10.0, 2.0)}  # (far, near)


def scene(kind: str = "relative_inverse") -> tuple[np.ndarray, np.ndarray]:
    """A textured far background (no channel at 0 or 255) and a textured near square
    whose red channel alone is 255, so its pixels can be found after warping."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(40, 201, (H, W, 3), dtype=np.uint8)
    rgb[*SQUARE, 0] = 255
    far, near = DEPTHS[kind]
    depth = np.full((H, W), far, np.float32)
    depth[SQUARE] = near
    return rgb, depth


def square_centroid_x(image: np.ndarray) -> float:
    return float(np.nonzero(image[..., 0] == 255)[1].mean())


@pytest.mark.parametrize("kind", list(DEPTHS))
def test_near_content_moves_right_in_the_left_view_and_left_in_the_right(kind):
    rgb, depth = scene(kind)
    baseline = 0.1
    left, right = stereo_views(rgb, depth, kind, baseline)
    half = baseline * W / 2  # 6.4 px for the nearest pixels
    centre = square_centroid_x(rgb)
    assert square_centroid_x(left) - centre == pytest.approx(half, abs=1.0)
    assert square_centroid_x(right) - centre == pytest.approx(-half, abs=1.0)
    # The square keeps its size: moved, not smeared into the gap it leaves.
    assert (left[..., 0] == 255).sum() == (rgb[..., 0] == 255).sum()
    # Nearness 0 does not move: the background away from the square is untouched.
    still = np.ones((H, W), bool)
    still[SQUARE[0], 40:88] = False
    for view in (left, right):
        np.testing.assert_array_equal(view[still], rgb[still])


def test_zero_baseline_gives_the_input_twice():
    rgb, depth = scene()
    left, right = stereo_views(rgb, depth, "relative_inverse", baseline=0.0)
    np.testing.assert_array_equal(left, rgb)
    np.testing.assert_array_equal(right, rgb)


def test_wide_baseline_leaves_no_unassigned_pixel():
    rgb, depth = scene()
    assert not (rgb == 0).all(axis=-1).any()
    for view in stereo_views(rgb, depth, "relative_inverse", baseline=0.3):
        assert view.shape == rgb.shape and view.dtype == np.uint8
        assert not (view == 0).all(axis=-1).any()


def test_anaglyph_takes_red_from_the_left_and_cyan_from_the_right():
    rgb, depth = scene()
    left, right = stereo_views(rgb, depth, "relative_inverse")
    anaglyph = stereo_image(rgb, depth, "relative_inverse", "anaglyph")
    assert anaglyph.shape == (H, W, 3)
    np.testing.assert_array_equal(anaglyph[..., 0], left[..., 0])
    np.testing.assert_array_equal(anaglyph[..., 1:], right[..., 1:])


def test_side_by_side_and_top_bottom_put_the_left_view_first():
    rgb, depth = scene()
    left, right = stereo_views(rgb, depth, "relative_inverse")
    side = stereo_image(rgb, depth, "relative_inverse", "side-by-side")
    assert side.shape == (H, 2 * W, 3)
    np.testing.assert_array_equal(side[:, :W], left)
    np.testing.assert_array_equal(side[:, W:], right)
    stacked = compose_stereo(left, right, "top-bottom")
    assert stacked.shape == (2 * H, W, 3)
    np.testing.assert_array_equal(stacked[:H], left)
    np.testing.assert_array_equal(stacked[H:], right)


def test_bad_arguments_raise_with_the_choices():
    rgb, depth = scene()
    with pytest.raises(ValueError, match=", ".join(STEREO_LAYOUTS)):
        stereo_image(rgb, depth, "relative_inverse", "checkerboard")
    with pytest.raises(ValueError, match="baseline"):
        stereo_views(rgb, depth, "relative_inverse", baseline=-0.01)
    with pytest.raises(ValueError, match="baseline"):
        stereo_views(rgb, depth, "relative_inverse", baseline=float("nan"))
    with pytest.raises(ValueError, match="depth must be"):
        stereo_views(rgb, depth[:, :-1], "relative_inverse")
    with pytest.raises(ValueError, match="one shape"):
        compose_stereo(rgb, rgb[:, :-1], "side-by-side")
