"""The 3D photo: camera paths, zero motion, parallax size, dolly zoom, no holes."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from depthlens.effects.parallax import (
    CAMERA_PATHS,
    MAX_PARALLAX_FRAMES,
    CameraMotion,
    camera_path,
    parallax_frames,
    render_view,
)

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


def test_swing_moves_the_near_square_more_than_the_far_background():
    rgb, depth = scene()
    strength = 0.05
    frames = list(parallax_frames(rgb, depth, "relative_inverse", "swing", 4, 1.0, strength))
    quarter = frames[1]  # θ = π/2: the camera is at tx = 1, right
    near_shift = centroid(is_square(quarter)) - centroid(is_square(rgb))
    far_shift = centroid(is_marker(quarter)) - centroid(is_marker(rgb))
    # Content moves left by f·T·w pixels: w = 1 near, 0.3 at the far end (f = W).
    assert near_shift[1] == pytest.approx(-W * strength, abs=1.0)
    assert far_shift[1] == pytest.approx(-W * strength * 0.3, abs=1.0)
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
    strength = 0.3
    pushed = list(parallax_frames(rgb, depth, "relative_inverse", "dolly-zoom", 2, 1.0, strength))
    frame = pushed[1]  # θ = π: the camera is in by 0.3 focus distances, zoomed out to 0.7
    assert np.abs(bounding_box(is_square(frame)) - bounding_box(is_square(rgb))).max() <= 1
    spread = marker_spread(frame) / marker_spread(rgb)
    # The far end (w = 0.3) is magnified by 0.7 / (1 − 0.3·0.3): it shrinks about 23 %.
    assert spread == pytest.approx(0.7 / 0.91, abs=0.02)


def test_pushing_in_magnifies_the_near_square():
    rgb, depth = scene()
    frame = render_view(rgb, depth, "relative_inverse", CameraMotion(0, 0, 1.0), strength=0.2)
    box, original = bounding_box(is_square(frame)), bounding_box(is_square(rgb))
    width, original_width = box[3] - box[1] + 1, original[3] - original[1] + 1
    assert width == pytest.approx(original_width / 0.8, abs=1.0)  # 1 / (1 − Tz·w), w = 1
    assert not (frame == 0).all(axis=-1).any()


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


def test_a_loop_has_at_most_max_parallax_frames():
    assert len(camera_path("circle", MAX_PARALLAX_FRAMES)) == MAX_PARALLAX_FRAMES
    rgb, depth = scene()
    for frames in (MAX_PARALLAX_FRAMES + 1, 10**6, 10**18):
        with pytest.raises(ValueError, match=f"at most {MAX_PARALLAX_FRAMES} frames"):
            camera_path("swing", frames)
        with pytest.raises(ValueError, match="at most"):  # on the call, before any list
            parallax_frames(rgb, depth, "relative_inverse", frames=frames)
