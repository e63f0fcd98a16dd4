"""Scale/shift fits, median scaling, MiDaS disparity alignment and median/MAD normalisation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from depthlens.geometry.align import (
    align_disparity_to_depth,
    fit_scale,
    fit_scale_shift,
    masked_median,
    median_scale,
    normalize_median_mad,
)

FAST = settings(max_examples=25, deadline=None)


def maps(batch=2, height=6, width=7, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(batch, height, width, generator=g, dtype=dtype) + 0.1
    target = torch.rand(batch, height, width, generator=g, dtype=dtype) + 0.1
    mask = torch.rand(batch, height, width, generator=g) > 0.3
    return pred, target, mask


def row(*values, dtype=torch.float64):
    return torch.tensor([[list(values)]], dtype=dtype)


def full(x):
    return torch.ones_like(x, dtype=torch.bool)


# --- fit_scale_shift --------------------------------------------------------------------------


def test_fit_scale_shift_smoke_shape():
    pred, target, mask = maps(batch=3)
    scale, shift = fit_scale_shift(pred, target, mask)
    assert scale.shape == (3,) and shift.shape == (3,)
    assert scale.dtype == pred.dtype


def test_fit_scale_shift_known_values():
    # exact fit: d = 2p + 1
    scale, shift = fit_scale_shift(row(0.0, 1.0, 2.0), row(1.0, 3.0, 5.0), full(row(0, 0, 0)))
    assert scale.item() == pytest.approx(2.0) and shift.item() == pytest.approx(1.0)
    # by hand: p̄ = 1, d̄ = 1, Σ(p−p̄)(d−d̄) = 3, Σ(p−p̄)² = 2 → s = 1.5, t = 1 − 1.5 = −0.5
    scale, shift = fit_scale_shift(row(0.0, 1.0, 2.0), row(0.0, 0.0, 3.0), full(row(0, 0, 0)))
    assert scale.item() == pytest.approx(1.5) and shift.item() == pytest.approx(-0.5)


@FAST
@given(
    a=st.floats(-20.0, 20.0).filter(lambda a: abs(a) > 1e-3),
    b=st.floats(-50.0, 50.0),
)
def test_fit_scale_shift_recovers_affine_maps(a, b):
    pred, _, mask = maps(seed=1)
    target = a * pred + b
    scale, shift = fit_scale_shift(pred, target, mask)
    torch.testing.assert_close(scale, torch.full_like(scale, a), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(shift, torch.full_like(shift, b), rtol=1e-9, atol=1e-8)


def test_fit_scale_shift_ignores_masked_out_values():
    pred, target, mask = maps()
    before = fit_scale_shift(pred, target, mask)
    pred2 = torch.where(mask, pred, torch.nan)
    target2 = torch.where(mask, target, torch.inf)
    after = fit_scale_shift(pred2, target2, mask)
    torch.testing.assert_close(before, after)


def test_fit_scale_shift_degenerate_masks_and_constant_prediction():
    pred, target, mask = maps()
    mask[0] = False  # no valid pixel
    pred[1] = 0.3  # constant prediction
    pred.requires_grad_(True)
    target.requires_grad_(True)
    scale, shift = fit_scale_shift(pred, target, mask)
    assert scale.tolist() == [0.0, 0.0]
    assert shift[0].item() == 0.0
    assert shift[1].item() == pytest.approx(target[1][mask[1]].mean().item())
    (scale.sum() + shift.sum()).backward()
    assert pred.grad is not None and target.grad is not None
    assert pred.grad.isfinite().all() and target.grad.isfinite().all()


def test_fit_scale_shift_one_valid_pixel():
    pred, target, _ = maps(batch=1)
    mask = torch.zeros_like(pred, dtype=torch.bool)
    mask[0, 2, 3] = True
    scale, shift = fit_scale_shift(pred, target, mask)
    assert scale.item() == 0.0 and shift.item() == pytest.approx(target[0, 2, 3].item())


def test_fit_scale_shift_float32_constant_is_detected_exactly():
    pred = torch.full((1, 3, 7), 0.1, dtype=torch.float32)  # mean of 0.1s is not exactly 0.1
    target = torch.rand(1, 3, 7)
    scale, shift = fit_scale_shift(pred, target, full(pred))
    assert scale.item() == 0.0 and math.isfinite(shift.item())


def test_fit_scale_shift_gradcheck():
    pred, target, mask = maps(batch=2, height=3, width=4)
    pred.requires_grad_(True)
    target.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, t: fit_scale_shift(p, t, mask), (pred, target))


@pytest.mark.parametrize(
    ("pred", "target", "mask", "message"),
    [
        (torch.zeros(4, 4), torch.zeros(4, 4), torch.ones(4, 4, dtype=torch.bool), "(B, H, W)"),
        (
            torch.zeros(1, 4, 4),
            torch.zeros(1, 4, 5),
            torch.ones(1, 4, 4, dtype=torch.bool),
            "differ",
        ),
        (torch.zeros(1, 4, 4), torch.zeros(1, 4, 4), torch.ones(1, 4, 4), "bool"),
        (
            torch.zeros(1, 4, 4, dtype=torch.int64),
            torch.zeros(1, 4, 4),
            torch.ones(1, 4, 4, dtype=torch.bool),
            "floating",
        ),
    ],
)
def test_bad_input_raises(pred, target, mask, message):
    for fn in (fit_scale_shift, fit_scale, median_scale):
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            fn(pred, target, mask)


# --- fit_scale, median_scale --------------------------------------------------------------------


def test_fit_scale_known_values_and_degenerate():
    # s = Σpd / Σp² = (1·2 + 2·5) / (1 + 4) = 2.4
    assert fit_scale(row(1.0, 2.0), row(2.0, 5.0), full(row(0, 0))).item() == pytest.approx(2.4)
    zero = fit_scale(row(0.0, 0.0), row(2.0, 5.0), full(row(0, 0)))
    assert zero.item() == 0.0
    empty = fit_scale(row(1.0, 2.0), row(2.0, 5.0), torch.zeros(1, 1, 2, dtype=torch.bool))
    assert empty.item() == 0.0


@FAST
@given(a=st.floats(0.01, 100.0))
def test_fit_scale_and_median_scale_recover_scale(a):
    pred, _, mask = maps(seed=2)
    torch.testing.assert_close(
        fit_scale(pred, a * pred, mask), torch.full((2,), a, dtype=pred.dtype)
    )
    torch.testing.assert_close(
        median_scale(pred, a * pred, mask), torch.full((2,), a, dtype=pred.dtype)
    )


def test_median_scale_known_values():
    assert median_scale(row(1.0, 2.0, 3.0), row(2.0, 4.0, 9.0), full(row(0, 0, 0))).item() == 2.0
    # even count: lower median, 2 and 20
    value = median_scale(
        row(4.0, 1.0, 3.0, 2.0), row(10.0, 40.0, 20.0, 30.0), full(row(0, 0, 0, 0))
    )
    assert value.item() == 10.0
    assert median_scale(row(0.0, 1.0, -1.0), row(1.0, 1.0, 1.0), full(row(0, 0, 0))).item() == 0.0


def test_masked_median_ignores_masked_out_and_empty():
    x = row(5.0, torch.nan, 1.0, 3.0)
    mask = torch.tensor([[[True, False, True, True]]])
    assert masked_median(x, mask).item() == 3.0
    assert masked_median(x, torch.zeros_like(mask)).item() == 0.0


# --- align_disparity_to_depth -------------------------------------------------------------------


def test_align_disparity_recovers_depth():
    g = torch.Generator().manual_seed(3)
    depth = torch.rand(2, 5, 6, generator=g, dtype=torch.float64) * 8 + 1  # 1..9 m
    mask = torch.rand(2, 5, 6, generator=g) > 0.2
    pred = 0.37 / depth + 4.0  # disparity up to scale and shift
    aligned = align_disparity_to_depth(pred, torch.where(mask, depth, 0.0), mask, max_depth=10.0)
    assert aligned.shape == depth.shape
    torch.testing.assert_close(aligned, depth)  # at every pixel, valid or not


def test_align_disparity_caps_at_max_depth():
    depth = row(1.0, 2.0, 4.0, 8.0)
    pred = 1.0 / depth
    mask = torch.tensor([[[True, True, True, False]]])
    aligned = align_disparity_to_depth(pred, depth, mask, max_depth=5.0)
    torch.testing.assert_close(aligned, row(1.0, 2.0, 4.0, 5.0))
    # aligned disparity at or below zero (very far or behind) also maps to the cap
    fit_on = torch.tensor([[[True, True, False]]])  # s = 0.5, t = 0 → −2.5 at the third pixel
    far = align_disparity_to_depth(row(2.0, 1.0, -5.0), row(1.0, 2.0, 1.0), fit_on, 10.0)
    assert far[0, 0, 2].item() == 10.0
    assert (far <= 10.0).all()


def test_align_disparity_empty_mask_gives_max_depth():
    depth = row(1.0, 2.0)
    out = align_disparity_to_depth(depth, depth, torch.zeros(1, 1, 2, dtype=torch.bool), 7.0)
    assert out.tolist() == [[[7.0, 7.0]]]


def test_align_disparity_bad_input():
    depth = row(1.0, 2.0)
    with pytest.raises(ValueError, match="max_depth"):
        align_disparity_to_depth(depth, depth, full(depth), 0.0)
    with pytest.raises(ValueError, match="positive"):
        align_disparity_to_depth(depth, row(1.0, 0.0), full(depth), 10.0)
    # zero depth is fine where masked out
    align_disparity_to_depth(depth, row(1.0, 0.0), torch.tensor([[[True, False]]]), 10.0)


# --- normalize_median_mad -----------------------------------------------------------------------


def test_normalize_median_mad_known_values():
    # lower median of [1, 2, 3, 10] is 2; deviations 1, 0, 1, 8 → s = 2.5
    out = normalize_median_mad(row(1.0, 2.0, 3.0, 10.0), full(row(0, 0, 0, 0)))
    torch.testing.assert_close(out, row(-0.4, 0.0, 0.4, 3.2))


@FAST
@given(a=st.floats(0.01, 100.0), b=st.floats(-100.0, 100.0))
def test_normalize_median_mad_is_affine_invariant(a, b):
    x, _, mask = maps(seed=4)
    torch.testing.assert_close(
        normalize_median_mad(a * x + b, mask), normalize_median_mad(x, mask), atol=1e-8, rtol=1e-7
    )


def test_normalize_median_mad_masks_and_degenerate():
    x, _, mask = maps()
    out = normalize_median_mad(torch.where(mask, x, torch.nan), mask)
    assert (out[~mask] == 0).all()
    torch.testing.assert_close(out, normalize_median_mad(x, mask))
    const = torch.full((1, 3, 3), 4.0, requires_grad=True)
    out = normalize_median_mad(const, full(const))
    assert (out == 0).all()
    out.sum().backward()
    assert const.grad is not None and const.grad.isfinite().all()
    empty = normalize_median_mad(x, torch.zeros_like(mask))
    assert (empty == 0).all()


def test_normalize_median_mad_gradcheck():
    x, _, mask = maps(batch=1, height=3, width=4)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: normalize_median_mad(v, mask), (x,))
