"""The canonical camera transform: both variants, forward and inverse, and their geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depthlens.geometry.canonical import (
    CANONICAL_FOCAL,
    canonical_intrinsics,
    canonical_ratio,
    depth_from_canonical,
    depth_to_canonical,
    image_from_canonical,
    image_to_canonical,
    resize_about_principal_point,
)

K = (500.0, 520.0, 40.3, 31.7)  # mean focal 510 px


def test_ratio_uses_the_mean_focal_length():
    assert canonical_ratio(K) == pytest.approx(CANONICAL_FOCAL / 510.0)
    assert canonical_ratio(K, focal=510.0) == pytest.approx(1.0)
    assert canonical_intrinsics(K) == pytest.approx(
        (500 * 1000 / 510, 520 * 1000 / 510, 40.3, 31.7)
    )


def test_bad_focal_lengths_raise():
    with pytest.raises(ValueError, match="positive"):
        canonical_ratio((0.0, 1.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="positive"):
        canonical_ratio(K, focal=-1.0)


def test_label_variant_round_trips_arrays_tensors_and_floats():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 20.0, (6, 8)).astype(np.float32)
    depth[0, 0] = 0.0  # invalid stays invalid
    canonical = depth_to_canonical(depth, K)
    assert canonical[0, 0] == 0.0
    np.testing.assert_allclose(canonical, depth * 1000.0 / 510.0, rtol=1e-6)
    np.testing.assert_allclose(depth_from_canonical(canonical, K), depth, rtol=1e-6)
    tensor = torch.from_numpy(depth)
    torch.testing.assert_close(depth_from_canonical(depth_to_canonical(tensor, K), K), tensor)
    assert depth_from_canonical(depth_to_canonical(3.0, K), K) == pytest.approx(3.0)


def test_label_variant_is_the_same_picture_seen_by_the_canonical_camera():
    """Depth × r with focal × r: every pixel keeps its lateral position (X, Y) and moves
    r times as far away, so the canonical camera projects it to the same pixel."""
    fx, fy, cx, cy = K
    u, v, z = 12.5, 40.5, 7.0
    point = np.array([(u - cx) / fx * z, (v - cy) / fy * z, z])
    fx_c, fy_c, cx_c, cy_c = canonical_intrinsics(K)
    z_c = depth_to_canonical(z, K)
    point_c = np.array([(u - cx_c) / fx_c * z_c, (v - cy_c) / fy_c * z_c, z_c])
    np.testing.assert_allclose(point_c, point * [1.0, 1.0, canonical_ratio(K)])


def test_image_variant_moves_points_about_the_principal_point():
    """A one-pixel dot at u moves to r·(u − c) + c, pixel centres at index + 0.5."""
    height, width = 64, 80
    k = (400.0, 400.0, 37.0, 29.0)
    ratio = CANONICAL_FOCAL / 400.0  # 2.5
    image = np.zeros((height, width), np.float32)
    row, col = 33, 41
    image[row, col] = 1.0
    out, k_c = image_to_canonical(image, k, interpolation="nearest")
    assert out.shape == image.shape
    assert k_c == pytest.approx((1000.0, 1000.0, 37.0, 29.0))
    centre_u = ratio * (col + 0.5 - 37.0) + 37.0
    centre_v = ratio * (row + 0.5 - 29.0) + 29.0
    rows, cols = np.nonzero(out)
    # the dot becomes a 2.5 px square whose centre is where the point went
    assert (cols + 0.5).mean() == pytest.approx(centre_u, abs=0.5)
    assert (rows + 0.5).mean() == pytest.approx(centre_v, abs=0.5)


@pytest.mark.parametrize("interpolation", ["nearest", "linear"])
def test_image_variant_round_trip_when_shrinking(interpolation):
    """f > f_c shrinks the image (padding the border); the inverse restores it."""
    height, width = 48, 64
    k = (2000.0, 2000.0, width / 2, height / 2)  # r = 0.5
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    smooth = 5.0 + 0.1 * rows + 0.05 * cols  # affine: exact under linear resampling
    canonical, _ = image_to_canonical(smooth, k, interpolation=interpolation)
    assert canonical[0, 0] == 0.0 and canonical[-1, -1] == 0.0  # padded outside
    back = image_from_canonical(canonical, k, interpolation=interpolation)
    inner = (slice(4, -4), slice(4, -4))
    tolerance = 1e-4 if interpolation == "linear" else 0.2
    np.testing.assert_allclose(back[inner], smooth[inner], atol=tolerance)


def test_image_variant_round_trip_when_enlarging_keeps_the_centre():
    """f < f_c enlarges (the border is cropped away and lost); the kept centre returns
    exactly for an integer ratio with nearest-neighbour sampling."""
    height, width = 40, 60
    k = (500.0, 500.0, 30.0, 20.0)  # r = 2
    rng = np.random.default_rng(1)
    depth = rng.uniform(1.0, 9.0, (height, width)).astype(np.float32)
    canonical, _ = image_to_canonical(depth, k, interpolation="nearest")
    back = image_from_canonical(canonical, k, interpolation="nearest")
    # source pixels whose ×2 image lies fully inside the frame: the middle half
    np.testing.assert_array_equal(back[11:29, 16:44], depth[11:29, 16:44])


def test_masks_and_rgb_follow_and_keep_their_dtype():
    mask = np.ones((20, 30), bool)
    rgb = np.full((20, 30, 3), 200, np.uint8)
    k = (2000.0, 2000.0, 15.0, 10.0)
    out_mask, _ = image_to_canonical(mask, k, interpolation="nearest")
    out_rgb, _ = image_to_canonical(rgb, k)
    assert out_mask.dtype == np.bool_ and out_rgb.dtype == np.uint8
    assert out_rgb.shape == rgb.shape
    assert not out_mask[0, 0] and out_mask[10, 15]
    assert out_mask.sum() == pytest.approx(mask.sum() / 4, rel=0.1)


def test_single_channel_3d_array_keeps_its_axis():
    out = resize_about_principal_point(np.ones((10, 12, 1), np.float32), 0.5, (6.0, 5.0))
    assert out.shape == (10, 12, 1)
    with pytest.raises(ValueError, match="positive"):
        resize_about_principal_point(np.ones((4, 4)), 0.0, (2.0, 2.0))


def test_estimator_scale_is_the_label_inverse_at_the_network_size():
    from depthlens.geometry.camera import Camera
    from depthlens.models.estimator import canonical_scale

    camera = Camera(500.0, 480.0, 256.0, 192.0, 512, 384)
    # A 512 x 384 photo run at 128 x 96: the focal lengths shrink by 4.
    scale = canonical_scale(camera, (384, 512), (96, 128), 1000.0)
    assert scale == pytest.approx((125.0 + 120.0) / 2 / 1000.0)
    assert depth_from_canonical(1.0, (125.0, 120.0, 64.0, 48.0)) == pytest.approx(scale)
    doubled = Camera(1000.0, 960.0, 256.0, 192.0, 512, 384)
    assert canonical_scale(doubled, (384, 512), (96, 128), 1000.0) == pytest.approx(2 * scale)
