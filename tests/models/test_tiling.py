"""Tiled prediction (models/tiling.py): the plan, the fit, the blend, guided upsampling,
and whole runs through ``Estimator.predict`` with networks whose answer is known."""

from __future__ import annotations

import itertools
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from depthlens.errors import UsageError
from depthlens.io.images import Image
from depthlens.models import tiling
from depthlens.models.estimator import Estimator
from depthlens.models.registry import MODELS
from depthlens.models.spec import IMAGENET_MEAN, IMAGENET_STD

SPEC = MODELS["depthlens-small"]  # 256 px network side (MiDaS-small input rule)
SIDE = 256


class Brightness(nn.Module):
    """(B, 3, h, w) -> (B, h, w): 1 + the channel mean of the normalised input. Linear
    and per pixel, so it commutes with crops and (linear) resizes: the exactly
    scale-equivariant model that tiles must reproduce."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.0 + x.mean(dim=1)


class Vignetted(Brightness):
    """Brightness plus a bowl over the network input (larger at its corners): a model
    whose tiles disagree with each other and with the global pass, as real ones do."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        yy = torch.linspace(-1, 1, h)[:, None]
        xx = torch.linspace(-1, 1, w)[None, :]
        return super().forward(x) + 0.3 * (yy**2 + xx**2)


def _estimator(network: nn.Module, kind: str = "relative_inverse") -> Estimator:
    return Estimator(replace(SPEC, kind=kind), network)  # type: ignore[arg-type]


def _smooth_photo(height: int, width: int) -> np.ndarray:
    """Low-frequency colour waves, well below the global pass's Nyquist limit."""
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    base = 0.5 + 0.25 * np.sin(2 * np.pi * 1.3 * xx) * np.cos(2 * np.pi * 0.9 * yy)
    rgb = np.stack([base, 0.8 * base + 0.1, 1.0 - 0.6 * base], axis=-1)
    return np.ascontiguousarray((255 * rgb).round().astype(np.uint8))


def _image(rgb: np.ndarray) -> Image:
    return Image(rgb, None, "photo")


# ------------------------------------------------------------------ the plan


@pytest.mark.parametrize(("height", "width", "count"), [(768, 1024, 3), (1500, 1000, 4)])
def test_plan_covers_the_photo_with_equal_overlapping_tiles(
    height: int, width: int, count: int
) -> None:
    plan = tiling.working_plan(height, width, count, 0.25, SIDE)
    covered = np.zeros((plan.height, plan.width), bool)
    for tile in plan.tiles:
        covered[tile.y0 : tile.y1, tile.x0 : tile.x1] = True
    assert covered.all()
    sizes = {(t.height, t.width) for t in plan.tiles}
    assert len(sizes) == 1  # one shape: the tiles batch together
    along_long = {t.x0 if width >= height else t.y0 for t in plan.tiles}
    assert len(along_long) == count
    # neighbours share at least the asked fraction of a tile
    starts = sorted(along_long)
    tile_side = plan.tiles[0].width if width >= height else plan.tiles[0].height
    assert all(b - a <= tile_side * 0.75 + 1 for a, b in itertools.pairwise(starts))
    # the working size keeps the aspect, and is never above the photo's
    assert plan.height <= height and plan.width <= width
    assert abs(plan.width / plan.height - width / height) < 0.01


def test_auto_tiles_follow_the_photo_and_stop_at_the_cap() -> None:
    assert len(tiling.working_plan(200, 250, "auto", 0.25, SIDE).tiles) == 1
    assert len(tiling.plan_tiles(480, 640, "auto", 0.25, SIDE)) > 1
    huge = tiling.working_plan(9000, 12000, "auto", 0.25, SIDE)
    assert len({t.x0 for t in huge.tiles}) == tiling.MAX_AUTO_TILES
    # plan_tiles speaks the photo's pixels: the last tile ends at its border
    tiles = tiling.plan_tiles(9000, 12000, "auto", 0.25, SIDE)
    assert max(t.x1 for t in tiles) == 12000 and max(t.y1 for t in tiles) == 9000


@pytest.mark.parametrize(
    ("tiles", "overlap", "upsample", "match"),
    [
        ("0", 0.25, "auto", "whole number"),
        ("many", 0.25, "auto", "whole number"),
        ("99", 0.25, "auto", "whole number"),
        ("2", 0.9, "auto", "overlap"),
        ("2", 0.25, "nearest", "Upsample"),
    ],
)
def test_bad_options_are_one_sentence(
    tiles: str, overlap: float, upsample: str, match: str
) -> None:
    with pytest.raises(UsageError, match=match):
        tiling.TileOptions.parse(tiles, overlap, upsample)


# ------------------------------------------------------------------ fit and blend


def test_fit_recovers_scale_and_shift_past_outliers() -> None:
    rng = np.random.default_rng(0)
    tile = rng.uniform(0.5, 2.0, (64, 64)).astype(np.float32)
    target = 3.0 * tile - 0.7
    target[10:14, :] += 5.0  # a thin structure only the tile sees
    scale, shift = tiling.fit_tile(tile, target, metric=False) or (0.0, 0.0)
    assert scale == pytest.approx(3.0, abs=1e-6) and shift == pytest.approx(-0.7, abs=1e-6)
    assert tiling.fit_tile(np.full((32, 32), 2.0), target[:32, :32], metric=False) is None
    assert tiling.fit_tile(tile, -tile, metric=False) is None  # no positive scale
    metric_scale, metric_shift = tiling.fit_tile(tile, 1.5 * tile, metric=True) or (0, 1)
    assert metric_scale == pytest.approx(1.5) and metric_shift == 0.0


def test_blend_weights_sum_to_a_smooth_positive_field() -> None:
    plan = tiling.working_plan(600, 800, 3, 0.25, SIDE)
    total = np.zeros((plan.height, plan.width))
    for tile in plan.tiles:
        weight = tiling.blend_weights(tile, plan.height, plan.width, 0.25)
        assert weight.min() > 0 and weight.max() == pytest.approx(1.0)
        total[tile.y0 : tile.y1, tile.x0 : tile.x1] += weight
    assert total.min() > 0.5
    # no step anywhere: neighbouring pixels differ by a small part of the field
    assert np.abs(np.diff(total, axis=1)).max() < 0.05
    assert np.abs(np.diff(total, axis=0)).max() < 0.05


# ------------------------------------------------------------------ guided upsampling


def test_guided_upsampling_keeps_a_depth_that_is_linear_in_the_guide() -> None:
    high = cv2.GaussianBlur(
        np.random.default_rng(1).random((120, 160)).astype(np.float32), (0, 0), 3
    )
    low = cv2.resize(high, (40, 30), interpolation=cv2.INTER_AREA)
    out = tiling.guided_upsample(2.0 * low + 1.0, low, high, radius=2, eps=1e-12)
    np.testing.assert_allclose(out, 2.0 * high + 1.0, atol=1e-3)


def test_guided_upsampling_is_bilinear_on_a_flat_guide() -> None:
    depth = np.random.default_rng(2).random((30, 40)).astype(np.float32)
    flat_low, flat_high = np.full((30, 40), 0.5, np.float32), np.full((120, 160), 0.5, np.float32)
    out = tiling.guided_upsample(depth, flat_low, flat_high, radius=2)
    box = cv2.blur(depth, (5, 5), borderType=cv2.BORDER_REFLECT)
    box = cv2.blur(box, (5, 5), borderType=cv2.BORDER_REFLECT)
    np.testing.assert_allclose(out, cv2.resize(box, (160, 120)), atol=1e-5)


def test_guided_upsampling_puts_the_edge_where_the_photo_has_it() -> None:
    guide_high = np.zeros((64, 256), np.float32)
    guide_high[:, 131:] = 1.0  # the photo's edge, between two low-res pixels
    guide_low = cv2.resize(guide_high, (64, 16), interpolation=cv2.INTER_AREA)
    depth_low = 1.0 + guide_low
    bilinear = cv2.resize(depth_low, (256, 64))
    guided = tiling.guided_upsample(depth_low, guide_low, guide_high)
    truth = 1.0 + guide_high

    def error(x: np.ndarray) -> float:
        return float(np.abs(x - truth).mean())

    assert error(guided) < 0.25 * error(bilinear)


# ------------------------------------------------------------------ whole runs


def test_tiles_of_an_equivariant_model_reproduce_its_single_pass() -> None:
    """Equal up to resampling: the single pass's own (MiDaS's bicubic, align_corners)
    resize from 256 px moves its map by up to ~2 px at the far border, and the tiles see
    the photo requantised to 8 bits at the working size (±0.5 level)."""
    estimator = _estimator(Brightness())
    rgb = _smooth_photo(768, 1024)
    single = estimator.predict(_image(rgb)).depth
    exact = 1.0 + ((rgb / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).mean(axis=-1)
    span = float(np.ptp(exact))
    for count in (2, 3, 4):
        tiled = estimator.predict(_image(rgb), tiles=count, upsample="bilinear").depth
        assert tiled.shape == single.shape
        assert np.median(np.abs(tiled - single)) < 3e-3 * span
        assert np.abs(tiled - single).max() < 2e-2 * span
        assert np.abs(tiled - exact).max() <= np.abs(single - exact).max()


def test_one_tile_with_bilinear_upsampling_is_the_single_pass() -> None:
    estimator = _estimator(Vignetted())
    photo = _image(_smooth_photo(300, 400))
    single = estimator.predict(photo)
    one = estimator.predict(photo, tiles=1, upsample="bilinear")
    np.testing.assert_array_equal(one.depth, single.depth)


def _edge_width(row: np.ndarray) -> int:
    """Pixels between 10 % and 90 % of a rising step."""
    low, high = row[:50].mean(), row[-50:].mean()
    level = (row - low) / (high - low)
    return int(np.argmax(level > 0.9) - np.argmax(level > 0.1))


def test_a_step_edge_stays_one_sharp_step_across_tile_borders() -> None:
    rgb = np.full((768, 1024, 3), 40, np.uint8)
    rgb[:, 517:] = 220  # a vertical edge crossing every row of tiles
    estimator = _estimator(Brightness())
    photo = _image(rgb)
    single = estimator.predict(photo).depth
    tiled = estimator.predict(photo, tiles=4, upsample="bilinear").depth
    borders = {t.y0 for t in tiling.plan_tiles(768, 1024, 4, 0.25, SIDE)} - {0}
    rows = sorted({0, 767, *borders, *(b - 1 for b in borders), *(b + 8 for b in borders)})
    positions = [int(np.argmax(tiled[r] > tiled[r].mean())) for r in rows]
    assert max(positions) - min(positions) <= 1  # the same edge in every row of tiles
    np.testing.assert_allclose(tiled[rows, 400], single[rows, 400], rtol=5e-3)
    np.testing.assert_allclose(tiled[rows, 700], single[rows, 700], rtol=5e-3)
    assert _edge_width(tiled[384]) <= _edge_width(single[384])  # and no softer


def test_by_default_the_merged_step_snaps_to_the_photos_edge() -> None:
    """Guided upsampling (the default with tiles) puts most of the step in the one
    pixel step of the photo; bilinear spreads it over several."""
    rgb = np.full((768, 1024, 3), 40, np.uint8)
    rgb[:, 517:] = 220
    estimator = _estimator(Brightness())
    for upsample, share in (("auto", 0.7), ("bilinear", 0.4)):
        depth = estimator.predict(_image(rgb), tiles=4, upsample=upsample).depth
        jumps = np.diff(depth, axis=1)
        step = depth[:, 700] - depth[:, 400]
        if upsample == "auto":
            assert (np.argmax(jumps, axis=1) == 516).all()  # between columns 516 and 517
            assert (jumps[:, 516] > share * step).all()
        else:
            assert (jumps.max(axis=1) < share * step).all()


def test_a_smooth_ramp_stays_smooth_across_tile_borders() -> None:
    """No seam: the merged map never steps by more than the photo's own 8-bit steps,
    though the model's tiles disagree by far more than that where they meet."""
    ramp = np.linspace(20, 235, 1024)[None, :, None].repeat(768, 0).repeat(3, 2)
    photo = _image(np.ascontiguousarray(ramp.round().astype(np.uint8)))
    estimator = _estimator(Vignetted())
    raw = estimator.predict(_image(np.ascontiguousarray(photo.rgb[:410, :410]))).depth
    assert np.ptp(raw[:, 205]) > 0.25  # a tile's bowl, along a line the ramp keeps flat
    tiled = estimator.predict(photo, tiles=3, upsample="bilinear").depth
    level = float(np.mean(1.0 / np.asarray(IMAGENET_STD)) / 255.0)  # one 8-bit step
    assert np.abs(np.diff(tiled, axis=1)).max() < 1.5 * level
    assert np.abs(np.diff(tiled, axis=0)).max() < 0.5 * level


class FramedMetric(Brightness):
    """Meters that scale with the network input's height, as a metric model's do with
    the field of view it believes: the square tiles come out 4/3 too far."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * x.shape[-2] / SIDE


def test_metric_tiles_are_scaled_to_the_global_pass() -> None:
    estimator = _estimator(FramedMetric(), kind="metric")
    photo = _image(_smooth_photo(600, 800))  # network input 192 x 256; tiles 256 x 256
    single = estimator.predict(photo).depth
    tiled = estimator.predict(photo, tiles=3, upsample="bilinear").depth
    assert np.median(np.abs(tiled / single - 1.0)) < 3e-3
    assert np.abs(tiled / single - 1.0).max() < 2e-2


def test_progress_counts_the_global_pass_and_every_tile() -> None:
    estimator = _estimator(Brightness())
    photo = _image(_smooth_photo(600, 800))
    options = tiling.TileOptions(3)
    seen: list[tuple[int, int]] = []
    estimator.predict_images([photo], 4, options, lambda done, total: seen.append((done, total)))
    count = len(tiling.plan_tiles(600, 800, 3, 0.25, SIDE))
    assert seen[0] == (1, count + 1) and seen[-1] == (count + 1, count + 1)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_prompt_depth_models_refuse_tiles() -> None:
    spec = replace(SPEC, takes_prompt_depth=True)
    estimator = Estimator(spec, Brightness())
    with pytest.raises(UsageError, match="without tiles"):
        tiling.predict_tiled(estimator, _image(_smooth_photo(64, 64)), tiling.TileOptions(2))
