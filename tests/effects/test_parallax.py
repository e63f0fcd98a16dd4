"""The 3D photo: camera paths, zero motion, parallax size, dolly zoom, the covering crop,
no holes and no streaks at the frame's border."""

from __future__ import annotations

from itertools import pairwise

import cv2
import numpy as np
import pytest

from depthlens.effects.parallax import (
    CAMERA_PATHS,
    MAX_CROP_ZOOM,
    MAX_PARALLAX_FRAMES,
    CameraMotion,
    camera_path,
    covering_crop,
    parallax_frames,
    render_view,
    view_positions,
)
from depthlens.effects.warp import view_nearness

from .streaks import streak_energy

H, W = 96, 128
SQUARE = (slice(36, 60), slice(52, 76))  # the near subject, centred
MARKERS = [(slice(8, 14), slice(8, 14)), (slice(8, 14), slice(114, 120))]  # far, blue


def scene() -> tuple[np.ndarray, np.ndarray]:
    """Relative inverse depth: a textured far background (no channel at 0 or 255) with
    two blue markers (blue alone 255), and a near square whose red alone is 255."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(40, 201, (H, W, 3), dtype=np.uint8)
    rgb[*SQUARE, 0] = 255
    for marker in MARKERS:
        rgb[*marker, 2] = 255
    depth = np.full((H, W), 0.2, np.float32)
    depth[SQUARE] = 1.0
    return rgb, depth


def textured_scene(h: int = 240, w: int = 320) -> tuple[np.ndarray, np.ndarray]:
    """A photo-like texture (blurred noise: blobs a few pixels wide, as in a photo, not
    pixel noise that a 5 × 5 blur flattens) on a far wall, a floor that comes nearer
    down to the bottom edge, where it is nearest and meets the left and right edges
    too, and a near box in the middle. Relative inverse depth."""
    noise = np.random.default_rng(0).integers(40, 201, (h, w, 3)).astype(np.float32)
    rgb = np.clip((cv2.GaussianBlur(noise, (0, 0), 1.5) - 120) * 4 + 120, 0, 255)
    rows = np.arange(h, dtype=np.float32)[:, None]
    floor = 0.2 + 0.8 * (rows - 0.75 * h) / (0.25 * h)
    depth = np.broadcast_to(np.where(rows >= 0.75 * h, floor, 0.2), (h, w)).copy()
    depth[h // 3 : h // 3 + h // 4, w * 3 // 8 : w * 5 // 8] = 1.0
    return rgb.astype(np.uint8), depth.astype(np.float32)


def centroid(mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask).mean(axis=0)  # (row, column)


def bounding_box(mask: np.ndarray) -> np.ndarray:
    where = np.argwhere(mask)
    return np.concatenate([where.min(axis=0), where.max(axis=0)])


def marker_spread(image: np.ndarray) -> float:
    """Columns between the centroids of the left and the right far marker."""
    left_half = np.arange(W) < W // 2
    markers = is_marker(image)
    return float(centroid(markers & ~left_half)[1] - centroid(markers & left_half)[1])


def is_square(image: np.ndarray) -> np.ndarray:
    return image[..., 0] == 255


def is_marker(image: np.ndarray) -> np.ndarray:
    return image[..., 2] == 255


@pytest.mark.parametrize("path", CAMERA_PATHS)
def test_paths_start_at_rest_and_loop(path):
    motions = camera_path(path, 24, amplitude=2.0)
    assert len(motions) == 24
    assert motions[0] == CameraMotion(0.0, 0.0, 0.0, 1.0)

    def step(a: CameraMotion, b: CameraMotion) -> float:
        return float(np.hypot.reduce([a.tx - b.tx, a.ty - b.ty, a.tz - b.tz, a.zoom - b.zoom]))

    largest_step = max(step(a, b) for a, b in pairwise(motions))
    assert largest_step > 0
    assert step(motions[-1], motions[0]) <= largest_step + 1e-9  # loops: last → first
    assert len(camera_path(path, 1)) == 1


@pytest.mark.parametrize("path", CAMERA_PATHS)
def test_first_frame_and_zero_amplitude_are_the_input(path):
    rgb, depth = scene()
    first = next(parallax_frames(rgb, depth, "relative_inverse", path, frames=8, strength=0.3))
    np.testing.assert_array_equal(first, rgb)
    for frame in parallax_frames(rgb, depth, "relative_inverse", path, frames=3, amplitude=0.0):
        np.testing.assert_array_equal(frame, rgb)


def test_zero_motion_is_exact_for_metric_depth():
    rgb, _ = scene()
    meters = np.random.default_rng(1).uniform(1.0, 20.0, (H, W)).astype(np.float32)
    np.testing.assert_array_equal(render_view(rgb, meters, "metric", CameraMotion(0, 0, 0)), rgb)


def test_view_positions_move_near_pixels_more_than_far_ones():
    rgb, depth = scene()
    near = view_nearness(rgb, depth, "relative_inverse")
    x, y = view_positions(near, CameraMotion(1.0, 0.0, 0.0), strength=0.05)
    rows, columns = np.indices((H, W))
    # Content moves left by f·T·w pixels: w = 1 near, 0.3 at the far end (f = W).
    np.testing.assert_allclose(x - columns, -W * 0.05 * (0.3 + 0.7 * near), atol=1e-4)
    np.testing.assert_array_equal(y, rows)


def test_swing_moves_the_near_square_more_than_the_far_background():
    rgb, depth = scene()
    strength = 0.05
    motions = camera_path("swing", 4)
    frames = list(parallax_frames(rgb, depth, "relative_inverse", "swing", 4, 1.0, strength))
    quarter = frames[1]  # θ = π/2: the camera is at tx = 1, right
    near_shift = centroid(is_square(quarter)) - centroid(is_square(rgb))
    far_shift = centroid(is_marker(quarter)) - centroid(is_marker(rgb))
    # The view positions, then the crop that keeps the frame covered: the right edge is
    # uncovered by the far end's move, and the view follows the background that way.
    near = view_nearness(rgb, depth, "relative_inverse")
    zoom, pu, pv = covering_crop(*view_positions(near, motions[1], strength))
    assert zoom == 1.0 and pu == pytest.approx((W - 1) / 2 - W * strength * 0.3)
    assert pv == (H - 1) / 2
    assert near_shift[1] == pytest.approx(-W * strength * 0.7, abs=1.0)
    assert far_shift[1] == pytest.approx(0.0, abs=1.0)
    assert near_shift[0] == far_shift[0] == 0
    assert centroid(is_square(frames[3]))[1] > centroid(is_square(rgb))[1]  # and back right


def test_a_big_disocclusion_is_filled_with_background():
    rgb, depth = scene()
    for frame in parallax_frames(rgb, depth, "relative_inverse", "circle", 6, strength=0.1):
        assert frame.shape == rgb.shape and frame.dtype == np.uint8
        assert not (frame == 0).all(axis=-1).any()  # no unassigned pixel
        # The square is moved, not smeared over the background it uncovers.
        assert is_square(frame).sum() == is_square(rgb).sum()


def test_dolly_zoom_keeps_the_subject_and_rescales_the_background():
    rgb, depth = scene()
    strength = 0.2
    pulled = list(parallax_frames(rgb, depth, "relative_inverse", "dolly-zoom", 2, 1.0, strength))
    frame = pulled[1]  # θ = π: the camera is back by 0.2 focus distances, zoomed in to 1.2
    assert np.abs(bounding_box(is_square(frame)) - bounding_box(is_square(rgb))).max() <= 1
    spread = marker_spread(frame) / marker_spread(rgb)
    # The far end (w = 0.3) is magnified by 1.2 / (1 + 0.2·0.3): it grows about 13 %.
    assert spread == pytest.approx(1.2 / 1.06, abs=0.02)
    assert not (frame == 0).all(axis=-1).any()


def test_pushing_in_magnifies_the_near_square():
    rgb, depth = scene()
    frame = render_view(rgb, depth, "relative_inverse", CameraMotion(0, 0, 1.0), strength=0.2)
    box, original = bounding_box(is_square(frame)), bounding_box(is_square(rgb))
    width, original_width = box[3] - box[1] + 1, original[3] - original[1] + 1
    assert width == pytest.approx(original_width / 0.8, abs=1.0)  # 1 / (1 − Tz·w), w = 1
    assert not (frame == 0).all(axis=-1).any()


def test_no_motion_needs_no_crop():
    x, y = view_positions(np.zeros((H, W)), CameraMotion(0, 0, 0), strength=0.05)
    assert covering_crop(x, y) == (1.0, (W - 1) / 2, (H - 1) / 2)


def test_a_uniform_shift_is_followed_without_zoom():
    rows, columns = np.indices((H, W), dtype=np.float32)
    zoom, pu, pv = covering_crop(columns + 4.0, rows - 3.0)
    assert (zoom, pu, pv) == (1.0, (W - 1) / 2 + 4.0, (H - 1) / 2 - 3.0)


def test_one_uncovered_side_is_cropped_away_with_the_least_zoom():
    rows, columns = np.indices((H, W), dtype=np.float32)
    # The left edge lands 6 px in, the right one stays: a band of 6 columns is empty.
    x = 6.0 + columns * (W - 7) / (W - 1)
    zoom, pu, pv = covering_crop(x, rows)
    assert zoom == pytest.approx((W - 1) / (W - 7))
    assert (pu, pv) == (pytest.approx((W - 1 + 6) / 2), (H - 1) / 2)


def test_a_shrunk_view_is_zoomed_about_the_centre_up_to_the_limit():
    rows, columns = np.indices((H, W), dtype=np.float32)
    cx, cy = (W - 1) / 2, (H - 1) / 2
    for shrink in (0.9, 0.5):
        zoom, pu, pv = covering_crop(cx + shrink * (columns - cx), cy + shrink * (rows - cy))
        assert zoom == pytest.approx(min(1 / shrink, MAX_CROP_ZOOM))
        assert (pu, pv) == (pytest.approx(cx), pytest.approx(cy))


@pytest.mark.parametrize("path", CAMERA_PATHS)
def test_the_default_strength_keeps_every_frame_covered_by_a_crop(path):
    rgb, depth = textured_scene()
    near = view_nearness(rgb, depth, "relative_inverse")
    for motion in camera_path(path, 16):
        zoom, _, _ = covering_crop(*view_positions(near, motion, strength=0.05))
        assert zoom < MAX_CROP_ZOOM


@pytest.mark.parametrize("strength", [0.05, 0.1])
@pytest.mark.parametrize("path", CAMERA_PATHS)
def test_no_streaks_at_the_border(path, strength):
    """The issue's case: the floor runs out of the bottom of the frame, so the circle
    path uncovers a band there 13 % of the height deep at the default strength, and the
    pushed-in dolly zoom shrank the background away from every edge. Such bands were
    filled by repeating the edge pixel: streaks (energies 0.08 to 0.47 on the circle,
    swing and dolly-zoom paths here, for the photo's own 0.002)."""
    rgb, depth = textured_scene()
    source = streak_energy(rgb, rgb)
    assert source < 0.02
    frames = parallax_frames(rgb, depth, "relative_inverse", path, 8, 1.0, strength)
    for index, frame in enumerate(frames):
        assert streak_energy(frame, rgb) < source + 0.02, f"frame {index}"


def test_bad_arguments_raise_with_the_choices():
    rgb, depth = scene()
    with pytest.raises(ValueError, match="circle, swing, zoom, dolly-zoom"):
        camera_path("spiral", 10)
    with pytest.raises(ValueError, match="frames"):
        camera_path("circle", 0)
    with pytest.raises(ValueError, match="circle, swing, zoom, dolly-zoom"):
        parallax_frames(rgb, depth, "relative_inverse", "spiral")  # on the call, not lazily
    with pytest.raises(ValueError, match="strength"):
        render_view(rgb, depth, "relative_inverse", CameraMotion(1, 0, 0), strength=-1.0)
    with pytest.raises(ValueError, match="nearest surface"):
        render_view(rgb, depth, "relative_inverse", CameraMotion(0, 0, 1.0), strength=1.0)
    with pytest.raises(ValueError, match="depth must be"):
        render_view(rgb, depth[:-1], "relative_inverse", CameraMotion(0, 0, 0))
    with pytest.raises(ValueError, match="max_zoom"):
        covering_crop(np.zeros((H, W)), np.zeros((H, W)), max_zoom=0.5)
    with pytest.raises(ValueError, match="one shape"):
        covering_crop(np.zeros((H, W)), np.zeros((H, W + 1)))


def test_a_loop_has_at_most_max_parallax_frames():
    assert len(camera_path("circle", MAX_PARALLAX_FRAMES)) == MAX_PARALLAX_FRAMES
    rgb, depth = scene()
    for frames in (MAX_PARALLAX_FRAMES + 1, 10**6, 10**18):
        with pytest.raises(ValueError, match=f"at most {MAX_PARALLAX_FRAMES} frames"):
            camera_path("swing", frames)
        with pytest.raises(ValueError, match="at most"):  # on the call, before any list
            parallax_frames(rgb, depth, "relative_inverse", frames=frames)
