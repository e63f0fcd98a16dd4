"""Training data: augmentation geometry, canonical camera, mixing, determinism, sources."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from depthlens.models.spec import IMAGENET_MEAN, IMAGENET_STD
from depthlens.train.config import AugmentConfig, MetricConfig, SourceConfig
from depthlens.train.data import (
    CropBox,
    MixtureDataset,
    RawSample,
    StepSampler,
    augment,
    crop_resize_flip,
    sample_crop,
    to_canonical,
    to_tensors,
    transform_intrinsics,
)

HEIGHT, WIDTH = 48, 64
K = np.array([60.0, 55.0, 31.3, 22.8])
# A tilted plane n·P = 1 (meters) filling the view in front of the camera.
NORMAL = np.array([0.08, -0.12, 0.25])


def plane_disparity(k: np.ndarray, height: int, width: int, normal=NORMAL) -> np.ndarray:
    """1/Z of the plane at every pixel centre: affine in (u, v), so bilinear resampling
    reproduces it exactly away from the border."""
    fx, fy, cx, cy = k
    u = np.arange(width) + 0.5
    v = np.arange(height) + 0.5
    ray_x = (u[None, :] - cx) / fx
    ray_y = (v[:, None] - cy) / fy
    return (normal[0] * ray_x + normal[1] * ray_y + normal[2]).astype(np.float64)


def back_project(depth: np.ndarray, k: np.ndarray) -> np.ndarray:
    fx, fy, cx, cy = k
    height, width = depth.shape
    u = np.arange(width)[None, :] + 0.5
    v = np.arange(height)[:, None] + 0.5
    return np.stack([(u - cx) / fx * depth, (v - cy) / fy * depth, depth], -1)


@pytest.mark.parametrize(
    ("box", "size", "flip"),
    [
        (CropBox(0, 0, HEIGHT, WIDTH), (HEIGHT, WIDTH), True),  # flip only
        (CropBox(5, 9, 30, 40), (30, 40), False),  # crop only
        (CropBox(5, 9, 30, 40), (60, 60), False),  # crop, enlarge, anisotropic
        (CropBox(3, 2, 44, 60), (32, 32), True),  # crop, shrink, flip
        (CropBox(10, 20, 25, 33), (64, 64), True),
    ],
)
def test_crop_resize_flip_intrinsics_back_project_onto_the_same_plane(box, size, flip):
    """Resample the plane's disparity as the pixels move, back-project it with the new
    intrinsics: every point must lie on the plane (mirrored in x when flipped)."""
    disparity = plane_disparity(K, HEIGHT, WIDTH)
    moved = crop_resize_flip(disparity, box, size, flip, "linear")
    k_new = transform_intrinsics(K, box, size, flip)
    points = back_project(1.0 / moved, k_new)
    normal = NORMAL * ([-1.0, 1.0, 1.0] if flip else 1.0)
    residual = points @ normal - 1.0
    inner = residual[2:-2, 2:-2]  # OpenCV clamps at the border, where affine is not kept
    np.testing.assert_allclose(inner, 0.0, atol=1e-6)


def test_flip_maps_cx_to_width_minus_cx():
    box = CropBox(0, 0, HEIGHT, WIDTH)
    fx, fy, cx, cy = transform_intrinsics(K, box, (HEIGHT, WIDTH), flip=True)
    assert (fx, fy, cy) == (K[0], K[1], K[3])
    assert cx == pytest.approx(WIDTH - K[2])
    # pixel index j goes to W - 1 - j, which in pixel-index coordinates is cx -> W - 1 - cx
    assert (cx - 0.5) == pytest.approx(WIDTH - 1 - (K[2] - 0.5))


def test_augment_keeps_targets_on_the_plane_and_masks_aligned():
    """The whole augmentation (nearest-neighbour depth) against the same plane."""
    disparity = plane_disparity(K, HEIGHT, WIDTH)
    depth = (1.0 / disparity).astype(np.float32)
    valid = np.ones_like(depth, bool)
    valid[:, :8] = False  # a marked strip must travel with the depth
    depth[~valid] = 0.0
    rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    raw = RawSample(rgb, depth, valid, K, "depth")
    config = AugmentConfig(crop_scale=(0.3, 1.0), brightness=0.0, contrast=0.0, saturation=0.0)
    flips = 0
    for seed in range(12):
        out = augment(raw, np.random.default_rng(seed), config, 32)
        assert out.rgb.shape == (32, 32, 3) and out.target.shape == (32, 32)
        np.testing.assert_array_equal(out.valid, out.target > 0)
        points = back_project(out.target.astype(np.float64), out.intrinsics)[out.valid]
        flipped = abs(out.intrinsics[2] - K[2]) > 0 and _mirrored(out, points)
        flips += flipped
        normal = NORMAL * ([-1.0, 1.0, 1.0] if flipped else 1.0)
        # nearest neighbours: a target comes from up to half a source pixel away
        assert np.abs(points @ normal - 1.0).max() < 0.05
    assert 0 < flips < 12


def _mirrored(out: RawSample, points: np.ndarray) -> bool:
    direct = np.abs(points @ NORMAL - 1.0).mean()
    mirror = np.abs(points @ (NORMAL * [-1.0, 1.0, 1.0]) - 1.0).mean()
    return bool(mirror < direct)


def test_sample_crop_stays_inside_and_respects_scale():
    rng = np.random.default_rng(0)
    for _ in range(200):
        box = sample_crop(HEIGHT, WIDTH, (0.3, 0.8), (0.75, 1.33), rng)
        assert box.top >= 0 and box.top + box.height <= HEIGHT
        assert box.left >= 0 and box.left + box.width <= WIDTH
        assert 0.25 <= box.height * box.width / (HEIGHT * WIDTH) <= 0.85
    # impossible ratio for a full-area crop falls back to the largest centred crop
    box = sample_crop(HEIGHT, WIDTH, (1.0, 1.0), (1.0, 1.0), rng)
    assert (box.height, box.width) == (HEIGHT, HEIGHT) and box.left == (WIDTH - HEIGHT) // 2


def test_colour_jitter_changes_colours_but_not_geometry():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    depth = np.ones((HEIGHT, WIDTH), np.float32)
    raw = RawSample(rgb, depth, depth > 0, K, "depth")
    plain = AugmentConfig(
        crop_scale=(1.0, 1.0),
        crop_ratio=(0.1, 10.0),
        hflip=False,
        brightness=0.0,
        contrast=0.0,
        saturation=0.0,
    )
    jittered = dataclasses.replace(plain, brightness=0.4, contrast=0.4, saturation=0.4)
    a = augment(raw, np.random.default_rng(1), plain, 32)
    b = augment(raw, np.random.default_rng(1), jittered, 32)
    np.testing.assert_array_equal(a.intrinsics, b.intrinsics)
    assert not np.array_equal(a.rgb, b.rgb)


def test_to_tensors_for_depth_and_pseudo_labels():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    depth = rng.uniform(1, 5, (8, 8)).astype(np.float32)
    valid = np.ones((8, 8), bool)
    valid[0] = False
    sample = to_tensors(RawSample(rgb, depth, valid, K, "depth"), source=2)
    assert sample["image"].shape == (3, 8, 8) and sample["image"].dtype == torch.float32
    expected = (rgb[3, 4] / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(sample["image"][:, 3, 4].numpy(), expected, rtol=1e-5)
    assert not sample["valid"][0].any() and sample["valid"][1:].all()
    np.testing.assert_allclose(sample["disparity"][1:].numpy(), 1.0 / depth[1:], rtol=1e-6)
    assert (sample["disparity"][0] == 0).all() and (sample["depth"][0] == 0).all()
    assert bool(sample["has_depth"]) and int(sample["source"]) == 2
    relative = rng.uniform(0, 3, (8, 8)).astype(np.float32)
    pseudo = to_tensors(RawSample(rgb, relative, valid, K, "relative_inverse"), source=0)
    assert not bool(pseudo["has_depth"]) and (pseudo["depth"] == 0).all()
    np.testing.assert_allclose(pseudo["disparity"][1:].numpy(), relative[1:])


def test_sky_of_synthetic_sources_is_a_zero_disparity_target():
    depth = np.full((4, 4), 2.0, np.float32)
    depth[0] = 0.0  # sky
    raw = RawSample(np.zeros((4, 4, 3), np.uint8), depth, depth > 0, K, "depth")
    plain = to_tensors(raw, 0)
    assert torch.equal(plain["disparity_valid"], plain["valid"])
    sky = to_tensors(raw, 0, invalid_is_far=True)
    assert sky["disparity_valid"].all() and not sky["valid"][0].any()
    assert (sky["disparity"][0] == 0).all() and (sky["disparity"][1:] == 0.5).all()
    assert SourceConfig(kind="synth").far_invalid
    assert not SourceConfig(kind="folder", path="x").far_invalid
    assert SourceConfig(kind="folder", path="x", invalid_is_far=True).far_invalid


def test_canonical_label_transform_in_training_samples():
    depth = np.full((8, 8), 2.0, np.float32)
    raw = RawSample(np.zeros((8, 8, 3), np.uint8), depth, depth > 0, K, "depth")
    out = to_canonical(raw, MetricConfig(enabled=True, focal=1000.0, transform="label"))
    f = (K[0] + K[1]) / 2
    np.testing.assert_allclose(out.target, 2.0 * 1000.0 / f, rtol=1e-6)
    np.testing.assert_allclose(out.intrinsics, [K[0] * 1000 / f, K[1] * 1000 / f, K[2], K[3]])
    centred = dataclasses.replace(raw, intrinsics=np.array([500.0, 500.0, 4.0, 4.0]))
    image = to_canonical(centred, MetricConfig(enabled=True, focal=1000.0, transform="image"))
    np.testing.assert_array_equal(image.target, 2.0)  # depth unchanged, pixels enlarged ×2
    np.testing.assert_allclose(image.intrinsics, [1000.0, 1000.0, 4.0, 4.0])
    with pytest.raises(ValueError, match="metric depth"):
        to_canonical(dataclasses.replace(raw, target_kind="relative_inverse"), MetricConfig())


class FakeSource:
    """A source whose samples say where they came from (their constant depth)."""

    def __init__(self, value: float, size: int = 16) -> None:
        self.value, self.size = value, size

    def load(self, rng: np.random.Generator) -> RawSample:
        rgb = rng.integers(0, 255, (self.size, self.size + 4, 3), dtype=np.uint8)
        depth = np.full((self.size, self.size + 4), self.value, np.float32)
        return RawSample(rgb, depth, depth > 0, K, "depth")


def make_mixture(weights, seed=0):
    sources = [FakeSource(float(i + 1)) for i in range(len(weights))]
    return MixtureDataset(sources, weights, seed, 16, AugmentConfig(), MetricConfig())


def test_mixing_follows_the_weights():
    weights = [1.0, 3.0, 6.0]
    dataset = make_mixture(weights)
    n = 6000
    counts = np.bincount([dataset.source_of(k) for k in range(n)], minlength=3)
    expected = n * np.asarray(weights) / sum(weights)
    # each count is binomial: within 4 standard deviations
    sigma = np.sqrt(expected * (1 - np.asarray(weights) / sum(weights)))
    assert np.all(np.abs(counts - expected) < 4 * sigma), (counts, expected)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 13.8  # p = 0.001 for 2 degrees of freedom


def test_samples_come_from_the_chosen_source_and_are_deterministic():
    dataset = make_mixture([1.0, 1.0, 1.0], seed=5)
    for k in range(20):
        sample = dataset[k]
        source = dataset.source_of(k)
        assert int(sample["source"]) == source
        assert float(sample["depth"][sample["valid"]].max()) == source + 1.0
        again = dataset[k]
        for key in sample:
            torch.testing.assert_close(sample[key], again[key], rtol=0, atol=0)
    other_seed = make_mixture([1.0, 1.0, 1.0], seed=6)
    assert any(not torch.equal(dataset[k]["image"], other_seed[k]["image"]) for k in range(3))


def test_step_sampler_splits_each_step_over_ranks():
    single = list(StepSampler(3, 6, batch_size=4))
    assert single == list(range(12, 24))
    ranks = [list(StepSampler(3, 6, batch_size=4, rank=r, world=2)) for r in range(2)]
    assert ranks[0][:2] == [12, 13] and ranks[1][:2] == [14, 15]
    assert sorted(ranks[0] + ranks[1]) == single
    assert len(StepSampler(3, 6, batch_size=4, rank=1, world=2)) == 6
    with pytest.raises(ValueError, match="does not split"):
        StepSampler(0, 1, batch_size=3, world=2)


def test_dataloader_with_workers_gives_the_same_batches():
    from torch.utils.data import DataLoader

    dataset = make_mixture([1.0, 2.0])
    batches = []
    for workers in (0, 2):
        loader = DataLoader(
            dataset,
            batch_size=4,
            sampler=StepSampler(0, 3, 4),
            num_workers=workers,
            multiprocessing_context="forkserver" if workers else None,
        )
        batches.append([b["image"] for b in loader])
    for a, b in zip(*batches, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("transform", ["label", "none"])
def test_metric_samples_are_canonical_or_raw_depth(transform):
    source = FakeSource(2.0)
    no_zoom = AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(0.5, 2.0), hflip=False)
    metric = MetricConfig(enabled=True, focal=1000.0, transform=transform)
    sample = MixtureDataset([source], [1.0], 0, 16, no_zoom, metric)[0]
    depth = sample["depth"][sample["valid"]]
    # The 16 x 20 render is squeezed to 16 x 16: fx shrinks by 16 / 20, fy stays.
    f = (K[0] * 16 / 20 + K[1]) / 2
    expected = 2.0 * 1000.0 / f if transform == "label" else 2.0
    torch.testing.assert_close(depth, torch.full_like(depth, expected), rtol=1e-6, atol=0)
