"""Forward warping (z-buffer, cracks, holes) and filling holes from the background side."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from depthlens.effects.warp import fill_holes, forward_warp, splat_sources, warp_filled

H, W = 24, 32


def noise(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    """Random RGB with no pure-black pixel, so black can only mean 'unassigned'."""
    return np.random.default_rng(seed).integers(20, 236, (h, w, 3), dtype=np.uint8)


def grid(h: int = H, w: int = W) -> tuple[np.ndarray, np.ndarray]:
    rows, columns = np.indices((h, w), dtype=np.float32)
    return columns, rows


def test_identity_warp_returns_the_image_and_no_holes():
    rgb = noise()
    x, y = grid()
    warped, holes = forward_warp(rgb, x, y, np.zeros((H, W)))
    np.testing.assert_array_equal(warped, rgb)
    assert warped.dtype == np.uint8 and not holes.any()


def test_shift_moves_pixels_and_leaves_holes_where_nothing_lands():
    rgb = noise()
    x, y = grid()
    warped, holes = forward_warp(rgb, x + 3.2, y, np.zeros((H, W)))  # rounds to 3
    np.testing.assert_array_equal(warped[:, 3:], rgb[:, :-3])
    assert holes[:, :3].all() and not holes[:, 3:].any()
    assert (warped[:, :3] == 0).all()


def test_nearest_source_wins_whatever_its_order():
    rgb = noise(1, 4)
    x, y = grid(1, 4)
    x[0, 0] = x[0, 2] = 1.0  # sources 0, 1 and 2 all land on column 1
    for near_source in (0, 2):
        priority = np.zeros((1, 4))
        priority[0, near_source] = 1.0
        warped, holes = forward_warp(rgb, x, y, priority)
        np.testing.assert_array_equal(warped[0, 1], rgb[0, near_source])
        assert holes[0, 0] and not holes[0, 1]


def test_negative_priorities_keep_their_order():
    x, y = grid(1, 3)
    x[:] = 1.0
    sources = splat_sources(x, y, np.array([[-3.0, -0.5, -2.0]]))
    assert sources[0, 1] == 1


def test_stretching_leaves_no_cracks():
    rgb = noise()
    x, y = grid()
    cx, cy = (W - 1) / 2, (H - 1) / 2
    # A 1.4× zoom spreads neighbours 1.4 px apart: rounding alone leaves empty rows,
    # columns and their crossings.
    zoom_x, zoom_y = cx + 1.4 * (x - cx), cy + 1.4 * (y - cy)
    _, holes = forward_warp(rgb, zoom_x, zoom_y, np.zeros((H, W)))
    assert not holes.any()
    _, holes = forward_warp(rgb, np.rint(zoom_x), np.rint(zoom_y), np.zeros((H, W)))
    assert not holes.any()


def test_disocclusions_stay_holes():
    x, y = grid()
    x[:, 10:20] += 5.0  # a block moves right and uncovers five columns
    priority = np.zeros((H, W))
    priority[:, 10:20] = 1.0
    _, holes = forward_warp(noise(), x, y, priority)
    assert holes[:, 10:15].all() and holes.sum() == 5 * H


def test_off_grid_and_non_finite_positions_are_dropped():
    x, y = grid()
    x[:, 0] = np.nan
    y[:, 1] = -40.0
    _, holes = forward_warp(noise(), x, y, np.zeros((H, W)))
    assert holes[:, :2].all() and not holes[:, 2:].any()


@pytest.mark.parametrize("far_side", ["left", "right"])
def test_holes_are_filled_from_the_farther_side(far_side):
    near_colour, far_colour = (200, 30, 30), (30, 30, 200)
    image = np.empty((H, W, 3), np.uint8)
    nearness = np.empty((H, W), np.float32)
    image[:, :12], nearness[:, :12] = (
        (far_colour, 0.0) if far_side == "left" else (near_colour, 1.0)
    )
    image[:, 20:], nearness[:, 20:] = (
        (near_colour, 1.0) if far_side == "left" else (far_colour, 0.0)
    )
    holes = np.zeros((H, W), bool)
    holes[:, 12:20] = True
    image[holes] = 0
    filled = fill_holes(image, holes, nearness)
    assert (filled[holes] == far_colour).all()
    np.testing.assert_array_equal(filled[~holes], image[~holes])


def test_rows_without_known_pixels_are_filled_along_columns():
    image = noise()
    holes = np.zeros((H, W), bool)
    holes[:4] = True  # e.g. the top of a view that moved down
    holes[10, 5:9] = True
    image[holes] = 0
    filled = fill_holes(image, holes, np.zeros((H, W)))
    assert not (filled == 0).all(axis=-1).any()
    np.testing.assert_array_equal(filled[~holes], image[~holes])


def test_a_border_band_is_filled_with_the_texture_mirrored_into_it():
    image = noise(seed=3)
    holes = np.zeros((H, W), bool)
    holes[:, :8] = True  # the left edge of a view that moved right
    source = image.copy()
    image[holes] = 0
    filled = fill_holes(image, holes, np.zeros((H, W)))
    np.testing.assert_array_equal(filled[~holes], image[~holes])
    band = filled[:, :8].astype(np.float32)
    # Not one colour repeated along each row (a streak) but the texture beside the band
    # (column 7 shows column 8, column 0 shows 15), averaged over a 5 × 5 box of the band.
    mirrored = np.zeros((H, W, 3), np.float32)
    mirrored[:, :8] = source[:, 15:7:-1]
    total = cv2.blur(mirrored, (5, 5))[:, :8]
    expected = total / cv2.blur(holes.astype(np.float32), (5, 5))[:, :8, None]
    assert band.std(axis=1).mean() > 0.1 * source.astype(np.float32).std(axis=1).mean()
    np.testing.assert_allclose(band, expected, atol=0.5)


def test_the_mirror_does_not_reach_a_nearer_object_behind_the_edge():
    image = np.random.default_rng(4).integers(20, 121, (H, W, 3), dtype=np.uint8)
    nearness = np.zeros((H, W), np.float32)
    image[:, :4], nearness[:, :4] = 250, 1.0  # a near object left of a 4 px background
    image[:, 20:], nearness[:, 20:] = 250, 1.0  # the occluder right of the gap
    holes = np.zeros((H, W), bool)
    holes[:, 8:20] = True  # 12 px: a plain mirror would reach 4 px into the left object
    image[holes] = 0
    filled = fill_holes(image, holes, nearness)
    assert (filled[holes] <= 120).all()  # only the background's colours, never 250


def test_inpainting_without_nearness_fills_every_hole():
    image = noise()
    holes = np.zeros((H, W), bool)
    holes[5:15, 8:20] = True
    image[holes] = 0
    filled = fill_holes(image, holes)
    assert not (filled == 0).all(axis=-1).any()
    np.testing.assert_array_equal(filled[~holes], image[~holes])


def test_nothing_to_fill_returns_a_copy():
    image = noise()
    filled = fill_holes(image, np.zeros((H, W), bool), np.zeros((H, W)))
    np.testing.assert_array_equal(filled, image)
    assert filled is not image


def test_warp_filled_covers_a_disocclusion_with_background():
    rgb = np.full((H, W, 3), (30, 30, 200), np.uint8)
    rgb[8:16, 10:18] = (200, 30, 30)
    nearness = np.zeros((H, W), np.float32)
    nearness[8:16, 10:18] = 1.0
    x, y = grid()
    out = warp_filled(rgb, x + 6.0 * nearness, y, nearness)
    expected = np.full((H, W, 3), (30, 30, 200), np.uint8)
    expected[8:16, 16:24] = (200, 30, 30)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(
    ("rgb", "shape", "priority"),
    [
        (noise().astype(np.float32), (H, W), 0.0),  # not uint8
        (noise()[..., :2], (H, W), 0.0),  # not RGB
        (noise(), (H, W + 1), 0.0),  # positions of another size
        (noise(), (H, W), np.nan),  # no order
    ],
)
def test_bad_inputs_raise(rgb, shape, priority):
    with pytest.raises(ValueError):
        forward_warp(rgb, np.zeros(shape), np.zeros(shape), np.full(shape, priority))


def test_bad_hole_masks_raise():
    with pytest.raises(ValueError, match="holes must be"):
        fill_holes(noise(), np.zeros((H, W + 1), bool))
    with pytest.raises(ValueError, match="nearness must be"):
        fill_holes(noise(), np.ones((H, W), bool) ^ np.eye(H, W, dtype=bool), np.zeros(3))
