"""Depth Pro boundary metric and the tile-seam score against closed forms."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from depthlens.errors import UsageError
from depthlens.eval.edges import (
    BOUNDARY_THRESHOLDS,
    boundary_scores,
    occluding_contours,
    seam_mask,
    seam_score,
)


def square_scene(shift: int = 0, near: float = 2.0, far: float = 4.0, n: int = 12) -> np.ndarray:
    """A near n × n square (rows and columns 10 .. 10 + n, moved ``shift`` columns
    right) in front of a far wall: contours in all four directions."""
    depth = np.full((32, 40), far)
    depth[10 : 10 + n, 10 + shift : 10 + n + shift] = near
    return depth


def test_a_map_against_itself_scores_one_when_all_four_directions_have_contours():
    depth = square_scene()
    scores = boundary_scores(depth, depth)
    assert (scores.precision, scores.recall, scores.f1) == (1.0, 1.0, 1.0)


def test_scores_are_invariant_to_the_scale_of_depth_but_not_to_a_shift():
    gt = square_scene()
    assert boundary_scores(7.5 * gt, gt).f1 == 1.0
    # +3 m turns the 2:1 step into 7:5 = 1.4, still above every threshold...
    assert boundary_scores(gt + 3.0, gt).f1 == 1.0
    # ...but +20 m makes it 24:22 ≈ 1.09, above only the first two thresholds.
    weights = BOUNDARY_THRESHOLDS / BOUNDARY_THRESHOLDS.sum()
    assert boundary_scores(gt + 20.0, gt).f1 == pytest.approx(weights[:2].sum())


def test_one_column_shift_keeps_only_the_top_and_bottom_edges():
    n = 12
    scores = boundary_scores(square_scene(shift=1, n=n), square_scene(n=n))
    # Left/right contours miss entirely; n − 1 of the n top and bottom pairs still match.
    expected = 0.25 * (0 + 0 + 2 * (n - 1) / n)
    assert scores.precision == pytest.approx(expected)
    assert scores.recall == pytest.approx(expected)
    assert scores.f1 == pytest.approx(expected)


def test_a_single_vertical_step_scores_a_quarter_as_the_reference_defines_it():
    depth = np.full((16, 16), 5.0)
    depth[:, 8:] = 1.0  # one contour direction: the right pixel is the near one
    contours = occluding_contours(depth, 1.05)
    assert [int(c.sum()) for c in contours] == [0, 0, 16, 0]
    assert boundary_scores(depth, depth).f1 == pytest.approx(0.25)


def test_flat_maps_have_no_contours_and_score_zero():
    flat = np.full((20, 20), 3.0)
    assert not any(c.any() for c in occluding_contours(flat, 1.05))
    assert boundary_scores(flat, flat).f1 == 0.0
    # Predicting no boundary where there are some: recall 0, F1 0.
    scores = boundary_scores(flat, square_scene()[:20, :20])
    assert (scores.recall, scores.f1) == (0.0, 0.0)


def test_a_weak_step_counts_only_at_the_thresholds_below_its_ratio():
    gt = square_scene(near=2.0, far=2.0 * 1.15)
    below = BOUNDARY_THRESHOLDS < 1.15
    expected = BOUNDARY_THRESHOLDS[below].sum() / BOUNDARY_THRESHOLDS.sum()
    assert boundary_scores(gt, gt).f1 == pytest.approx(expected)


def test_spurious_predicted_edges_lower_precision_only():
    gt = square_scene()
    pred = gt.copy()
    pred[25:, :] = 0.5  # a near band in the prediction: new contours, none in gt
    scores = boundary_scores(pred, gt)
    assert scores.recall == 1.0
    # The band's top edge adds 40 "bottom pixel nearer" pairs to the 12 of the square's
    # top edge: that direction's precision is 12 / 52, the other three stay 1.
    assert scores.precision == pytest.approx(0.25 * (1 + 12 / 52 + 1 + 1))


def test_invalid_pixels_drop_their_pairs_from_both_maps():
    gt = square_scene()
    valid = np.ones_like(gt, dtype=bool)
    valid[:, :16] = False  # hides the square's left edge
    gt_holes = np.where(valid, gt, np.nan)
    pred = gt.copy()
    pred[:, :16] = np.nan  # whatever is predicted there is not read
    assert boundary_scores(pred, gt_holes, valid).f1 == pytest.approx(0.75)


def reference_scores(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float, float]:
    """The definition spelled out: each threshold on its own, the four directions by
    comparing inverse depths, as the Depth Pro reference does."""

    def ratios(d: np.ndarray) -> list[np.ndarray]:
        inv = 1.0 / d  # larger = nearer; left, top, right, bottom neighbour nearer
        return [
            inv[:, :-1] / inv[:, 1:],
            inv[:-1, :] / inv[1:, :],
            inv[:, 1:] / inv[:, :-1],
            inv[1:, :] / inv[:-1, :],
        ]

    totals = np.zeros(3)
    for t in BOUNDARY_THRESHOLDS:
        recalls, precisions = [], []
        for rp, rg in zip(ratios(pred), ratios(gt), strict=True):
            both = np.count_nonzero((rp > t) & (rg > t))
            recalls.append(both / max(int(np.count_nonzero(rg > t)), 1))
            precisions.append(both / max(int(np.count_nonzero(rp > t)), 1))
        r, p = np.mean(recalls), np.mean(precisions)
        f1 = 0.0 if r + p == 0 else 2 * p * r / (p + r)
        totals += t / BOUNDARY_THRESHOLDS.sum() * np.array([p, r, f1])
    return float(totals[0]), float(totals[1]), float(totals[2])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_match_the_definition_computed_threshold_by_threshold(seed):
    rng = np.random.default_rng(seed)
    blocks = np.exp(rng.normal(1.0, 0.4, (8, 10)))
    gt = np.kron(blocks, np.ones((5, 5))) * (1 + 0.02 * rng.random((40, 50)))
    pred = 3.0 * gt * np.exp(rng.normal(0.0, 0.08, gt.shape))
    scores = boundary_scores(pred, gt)
    expected = reference_scores(pred, gt)
    assert 0.1 < scores.f1 < 0.9  # a case where every count matters
    np.testing.assert_allclose((scores.precision, scores.recall, scores.f1), expected, rtol=1e-12)


def test_bad_inputs_raise_one_sentence_errors():
    with pytest.raises(UsageError, match="same shape"):
        boundary_scores(np.ones((4, 4)), np.ones((4, 5)))
    with pytest.raises(UsageError, match="finite"):
        boundary_scores(np.full((4, 4), np.nan), np.ones((4, 4)))
    with pytest.raises(UsageError, match="bool map"):
        boundary_scores(np.ones((4, 4)), np.ones((4, 4)), np.ones((4, 4)))


@dataclass(frozen=True)
class Box:
    y0: int
    x0: int
    y1: int
    x1: int


TWO_TILES = [Box(0, 0, 32, 40), Box(0, 32, 32, 64)]  # an interior border at columns 32 and 40


def test_the_seam_band_covers_interior_borders_only():
    mask = seam_mask(32, 64, TWO_TILES, band=2)
    columns = np.flatnonzero(mask.any(0))
    assert columns.tolist() == [30, 31, 32, 33, 38, 39, 40, 41]
    assert mask[:, columns].all()


def test_a_ramp_has_no_seam_and_a_step_at_a_border_has_the_closed_form_score():
    ramp = np.tile(np.arange(64, dtype=np.float64), (32, 1))  # |∇d| = 1 everywhere
    assert seam_score(ramp, TWO_TILES) == pytest.approx(1.0)
    step = 6.0
    stepped = ramp + step * (np.arange(64) >= 40)
    # Central differences put step / 2 on columns 39 and 40, inside the 8-column band.
    assert seam_score(stepped, TWO_TILES) == pytest.approx(1.0 + step / 8)
    # The same step away from the borders raises the off-band mean instead.
    elsewhere = ramp + step * (np.arange(64) >= 12)
    off_columns = 64 - 8
    assert seam_score(elsewhere, TWO_TILES) == pytest.approx(1.0 / (1.0 + step / off_columns))


def test_seam_score_needs_an_interior_border():
    with pytest.raises(UsageError, match="no border"):
        seam_score(np.zeros((8, 8)), [Box(0, 0, 8, 8)])
    assert seam_score(np.zeros((32, 64)), TWO_TILES) == 1.0
