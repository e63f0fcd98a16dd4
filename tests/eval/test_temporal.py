"""Video metrics (whole-video alignment, TAE, static flicker) against closed forms."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from depthlens.errors import UsageError
from depthlens.eval.temporal import (
    align_video_disparity,
    relative_pose,
    static_flicker,
    temporal_alignment_error,
    video_depth_metrics,
)
from depthlens.geometry.camera import Camera

H, W = 24, 32
CAMERA = Camera(40.0, 40.0, W / 2, H / 2, W, H)


def _scene(frames: int = 5, seed: int = 0) -> np.ndarray:
    """A static (T, H, W) depth video of a random smooth-ish scene, 1..5 m."""
    rng = np.random.default_rng(seed)
    depth = 1.0 + 4.0 * rng.random((H, W))
    return np.repeat(depth[None], frames, axis=0)


def _pose(tx: float = 0.0, tz: float = 0.0) -> np.ndarray:
    pose = np.eye(4)
    pose[0, 3], pose[2, 3] = tx, tz
    return pose


# -- whole-video alignment -------------------------------------------------------------


def test_alignment_recovers_one_affine_map_exactly() -> None:
    gt = _scene()
    pred = (1.0 / gt - 0.1) / 2.5  # gt disparity = 2.5 · pred + 0.1
    aligned = align_video_disparity(pred, gt, max_depth=10.0)
    assert aligned.scale == pytest.approx(2.5, rel=1e-6)
    assert aligned.shift == pytest.approx(0.1, rel=1e-5)
    np.testing.assert_allclose(aligned.depth, gt, rtol=1e-6)
    metrics = video_depth_metrics(aligned.depth, gt, aligned.valid)
    assert metrics["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["delta1"] == 1.0
    assert metrics["frames"] == 5


def test_alignment_is_one_fit_for_the_whole_video_not_per_frame() -> None:
    # Frame t is disparity · k_t; with no shift in the data the best single fit over
    # a two-frame video of one depth map has scale 1/mean(k²)·mean(k) and shift 0 ...
    gt = _scene(frames=2)
    k = np.array([1.0, 2.0])
    pred = (1.0 / gt) * k[:, None, None]
    aligned = align_video_disparity(pred, gt, max_depth=10.0)
    # ... only if the fit is global: a per-frame fit would map both frames exactly.
    assert not np.allclose(aligned.depth, gt)
    # Closed form of the global fit: y = 1/g; x_t = k_t·y; LS over both frames.
    y = (1.0 / (gt[0] + 1e-8)).ravel()
    x = np.concatenate([k[0] * (1.0 / gt[0]).ravel(), k[1] * (1.0 / gt[1]).ravel()])
    yy = np.concatenate([y, y])
    a = np.stack([x, np.ones_like(x)], axis=1)
    scale, shift = np.linalg.lstsq(a, yy, rcond=None)[0]
    assert aligned.scale == pytest.approx(scale, rel=1e-9)
    assert aligned.shift == pytest.approx(shift, rel=1e-6, abs=1e-12)


def test_alignment_masks_the_depth_range_and_clips() -> None:
    gt = _scene(frames=2)
    gt[0, 0, 0] = 0.0  # invalid: not above 1e-3
    gt[1, 0, 0] = 50.0  # invalid: beyond max_depth
    gt[1, 0, 1] = np.nan  # invalid: not finite
    pred = 1.0 / np.where(np.isfinite(gt) & (gt > 0), gt, 1.0)
    aligned = align_video_disparity(pred, gt, max_depth=10.0)
    assert not aligned.valid[0, 0, 0] and not aligned.valid[1, 0, 0] and not aligned.valid[1, 0, 1]
    assert aligned.valid.sum() == gt.size - 3
    assert aligned.depth.max() <= 10.0 and aligned.depth.min() >= 1e-3


def test_metrics_known_uniform_error() -> None:
    gt = _scene(frames=3)
    depth = gt * np.array([1.1, 1.0, 1.3])[:, None, None]
    metrics = video_depth_metrics(depth, gt, np.ones(gt.shape, dtype=bool))
    assert metrics["abs_rel"] == pytest.approx((0.1 + 0.0 + 0.3) / 3)
    assert metrics["delta1"] == pytest.approx(2 / 3)  # 1.3 is not below 1.25


def test_metrics_skip_empty_frames() -> None:
    gt = _scene(frames=2)
    depth = gt * 1.2
    valid = np.ones(gt.shape, dtype=bool)
    valid[1] = False
    metrics = video_depth_metrics(depth, gt, valid)
    assert metrics["frames"] == 1
    assert metrics["abs_rel"] == pytest.approx(0.2)


# -- TAE -------------------------------------------------------------------------------


def test_tae_of_a_consistent_static_video_is_zero() -> None:
    video = _scene()
    poses = np.stack([np.eye(4)] * len(video))
    assert temporal_alignment_error(video, poses, CAMERA) == 0.0


def test_tae_of_per_frame_scale_jitter_under_a_static_camera() -> None:
    # d_t = k_t · d: pair error = ½(|k_{t+1} − k_t|/k_{t+1} + |k_t − k_{t+1}|/k_t).
    k = np.array([1.0, 1.1, 0.9, 1.0])
    video = _scene(frames=4) * k[:, None, None]
    poses = np.stack([np.eye(4)] * 4)
    expected = 100 * np.mean(
        [0.5 * (abs(b - a) / b + abs(a - b) / a) for a, b in itertools.pairwise(k)]
    )
    assert temporal_alignment_error(video, poses, CAMERA) == pytest.approx(expected)


def test_tae_of_a_plane_seen_by_a_moving_camera() -> None:
    # A fronto-parallel plane at Z = 4: a sideways move of 0.1 m shifts it by exactly
    # fx·0.1/4 = 1 pixel, a forward move of 0.5 m brings it to Z = 3.5. Exact depth has
    # zero error. Scaled by k = (1, 1.2, 1) the frames hold 4, 4.8, 3.5 m, and each
    # direction's projected plane depth is known: 0→1: 4 vs 4.8; 1→0: 4.8 vs 4;
    # 1→2: 4.8 − 0.5 = 4.3 vs 3.5; 2→1: 3.5 + 0.5 = 4 vs 4.8.
    poses = np.stack([_pose(0.0), _pose(0.1), _pose(0.1, 0.5)])
    plane = np.array([4.0, 4.0, 3.5])[:, None, None] * np.ones((3, H, W))
    assert temporal_alignment_error(plane, poses, CAMERA) == 0.0
    jittered = plane * np.array([1.0, 1.2, 1.0])[:, None, None]
    expected = 100 * (0.8 / 4.8 + 0.8 / 4.0 + 0.8 / 3.5 + 0.8 / 4.8) / 4
    assert temporal_alignment_error(jittered, poses, CAMERA) == pytest.approx(expected)


def test_tae_counts_both_directions_and_the_target_mask() -> None:
    video = _scene(frames=2) * np.array([1.0, 2.0])[:, None, None]
    poses = np.stack([np.eye(4)] * 2)
    mask = np.ones(video.shape, dtype=bool)
    mask[0] = False  # the backward direction has nothing to compare: counts 0 (VDA)
    value = temporal_alignment_error(video, poses, CAMERA, mask=mask)
    assert value == pytest.approx(100 * (0.5 + 0.0) / 2)


def test_tae_keeps_the_nearest_point_on_collisions() -> None:
    # A wall at 4 m with a post at 1 m in columns 10..17; the camera moves 0.1 m right,
    # so the wall shifts 1 pixel left (fx·0.1/4) and the post 4 (fx·0.1/1): the post
    # lands on wall pixels that land there too. Frame 1 is the true view, so only a
    # z-buffer (the nearest point wins) gives zero error, in both directions.
    frame0 = np.full((H, W), 4.0)
    frame0[5:15, 10:18] = 1.0
    frame1 = np.full((H, W), 4.0)
    frame1[5:15, 6:14] = 1.0
    poses = np.stack([_pose(), _pose(tx=0.1)])
    assert temporal_alignment_error(np.stack([frame0, frame1]), poses, CAMERA) == 0.0


def test_relative_pose_composes_camera_to_world() -> None:
    a, b = _pose(1.0, 2.0), _pose(0.5, 0.0)
    np.testing.assert_allclose(relative_pose(a, b), _pose(0.5, 2.0))


def test_tae_usage_errors() -> None:
    video = _scene(frames=2)
    with pytest.raises(UsageError):
        temporal_alignment_error(video, np.stack([np.eye(4)]), CAMERA)
    with pytest.raises(UsageError):
        temporal_alignment_error(video[:1], np.stack([np.eye(4)]), CAMERA)
    with pytest.raises(UsageError):
        temporal_alignment_error(video, np.stack([np.eye(4)] * 2), Camera(1, 1, 0, 0, 8, 8))


# -- static flicker --------------------------------------------------------------------


def test_static_flicker_zero_for_a_constant_video() -> None:
    assert static_flicker(_scene()) == pytest.approx(0.0, abs=1e-12)


def test_static_flicker_of_scale_jitter_is_the_coefficient_of_variation() -> None:
    k = np.array([1.0, 1.1, 0.9, 1.2, 0.8])
    video = _scene(frames=5) * k[:, None, None]
    assert static_flicker(video) == pytest.approx(k.std() / k.mean())


def test_static_flicker_uses_pixels_valid_in_every_frame() -> None:
    video = _scene(frames=2)
    video[1, :, : W // 2] *= 3.0  # this half flickers: cv = 0.5 (values d, 3d)
    mask = np.zeros((H, W), dtype=bool)
    mask[:, W // 2 :] = True
    assert static_flicker(video, mask) == 0.0
    assert static_flicker(video) == pytest.approx(0.25)
    video[0, 0, 0] = 0.0  # non-positive: left out
    assert np.isfinite(static_flicker(video))


def test_usage_errors_are_one_sentence() -> None:
    with pytest.raises(UsageError, match=r"^[^\n]*\.$"):
        align_video_disparity(np.ones((2, 4, 4)), np.ones((2, 4, 4)), max_depth=10.0)
    with pytest.raises(UsageError):
        align_video_disparity(np.ones((4, 4)), np.ones((4, 4)), max_depth=10.0)
    with pytest.raises(UsageError):
        static_flicker(np.ones((1, 4, 4)))
