"""Training losses: invariances, values by hand, masks, degenerate inputs and gradients."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from depthlens.train.losses import (
    depth_to_normals,
    feature_alignment_loss,
    gradient_matching_loss,
    pairwise_normal_loss,
    rpnl_loss,
    scale_anchor_loss,
    silog_loss,
    ssi_mse_loss,
    ssi_trimmed_mae_loss,
    virtual_normal_loss,
)

FAST = settings(max_examples=20, deadline=None)


def scene(batch=2, height=12, width=14, seed=0, dtype=torch.float64):
    """A positive target map, a different positive prediction, and a random mask."""
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(batch, height, width, generator=g, dtype=dtype) * 4 + 1
    pred = torch.rand(batch, height, width, generator=g, dtype=dtype) * 4 + 1
    mask = torch.rand(batch, height, width, generator=g) > 0.25
    return pred, target, mask


def camera_for(batch, height, width, dtype=torch.float64):
    f = float(max(height, width))
    return torch.tensor([[f, 1.1 * f, width / 2, height / 2]] * batch, dtype=dtype)


def plane_depth(normal, point, camera, height, width):
    """Depth (B, H, W) of the plane through ``point`` with ``normal`` seen by ``camera``."""
    n = torch.tensor(normal, dtype=torch.float64)
    n = n / n.norm()
    p0 = torch.tensor(point, dtype=torch.float64)
    fx, fy, cx, cy = camera.unbind(-1)
    u = torch.arange(width, dtype=torch.float64)[None, None, :] + 0.5
    v = torch.arange(height, dtype=torch.float64)[None, :, None] + 0.5
    rx = (u - cx[:, None, None]) / fx[:, None, None]
    ry = (v - cy[:, None, None]) / fy[:, None, None]
    return (n @ p0) / (n[0] * rx + n[1] * ry + n[2])  # Z along the ray (x̃, ỹ, 1)


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


# Every loss of (pred, target, mask) form, with its random sampling pinned.
MAP_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "ssi_mse": ssi_mse_loss,
    "ssi_trimmed_mae": ssi_trimmed_mae_loss,
    "gradient_matching": gradient_matching_loss,
    "silog": silog_loss,
    "rpnl": lambda p, t, m: rpnl_loss(p, t, m, num_crops=8, generator=seeded()),
    "virtual_normal": lambda p, t, m: virtual_normal_loss(
        p, t, m, _camera_of(p), num_triplets=200, generator=seeded()
    ),
    "pairwise_normal": lambda p, t, m: pairwise_normal_loss(
        p, _normals_like(t), m, _camera_of(p), num_pairs=200, generator=seeded()
    ),
}


def _camera_of(depth):
    batch = depth.shape[0] if depth.ndim == 3 else 1
    return camera_for(batch, depth.shape[-2], depth.shape[-1])


def _normals_like(target):
    """Unit normals (B, 3, H, W) derived from a map, so each test has some ground truth."""
    n = torch.stack([torch.sin(target), torch.cos(target), -torch.ones_like(target)], 1)
    return n / n.norm(dim=1, keepdim=True)


# --- smoke, shape, bad input ----------------------------------------------------------------------


@pytest.mark.parametrize("name", MAP_LOSSES)
def test_smoke_scalar_and_differentiable(name):
    pred, target, mask = scene()
    pred.requires_grad_(True)
    loss = MAP_LOSSES[name](pred, target, mask)
    assert loss.shape == () and loss.dtype == torch.float64
    assert loss.item() > 0
    loss.backward()
    assert pred.grad is not None and pred.grad.isfinite().all()


@pytest.mark.parametrize("name", MAP_LOSSES)
def test_float32_inputs(name):
    pred, target, mask = scene(dtype=torch.float32)
    loss = MAP_LOSSES[name](pred, target, mask)
    assert loss.dtype == torch.float32 and loss.isfinite()


@pytest.mark.parametrize("name", MAP_LOSSES)
def test_bad_shapes_and_mask_raise(name):
    pred, target, mask = scene()
    fn = MAP_LOSSES[name]
    with pytest.raises(ValueError, match=r"shape|differ|must be"):
        fn(pred, target, mask[:, :-1])
    with pytest.raises(ValueError, match="bool"):
        fn(pred, target, mask.double())
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        fn(pred[0], target[0], mask[0])


def test_bad_arguments_raise():
    pred, target, mask = scene()
    camera = camera_for(*pred.shape)
    with pytest.raises(ValueError, match="trim"):
        ssi_trimmed_mae_loss(pred, target, mask, trim=1.0)
    with pytest.raises(ValueError, match="scales"):
        gradient_matching_loss(pred, target, mask, scales=0)
    with pytest.raises(ValueError, match="lam"):
        silog_loss(pred, target, mask, lam=1.5)
    with pytest.raises(ValueError, match="num_crops"):
        rpnl_loss(pred, target, mask, num_crops=0)
    with pytest.raises(ValueError, match="fractions"):
        rpnl_loss(pred, target, mask, min_frac=0.6, max_frac=0.5)
    with pytest.raises(ValueError, match="camera"):
        virtual_normal_loss(pred, target, mask, camera[:1])
    with pytest.raises(ValueError, match="focal"):
        virtual_normal_loss(pred, target, mask, camera * torch.tensor([-1.0, 1, 1, 1]))
    with pytest.raises(ValueError, match="num_triplets"):
        virtual_normal_loss(pred, target, mask, camera, num_triplets=0)
    with pytest.raises(ValueError, match="target_normals"):
        pairwise_normal_loss(pred, _normals_like(target).permute(0, 2, 3, 1), mask, camera)
    with pytest.raises(ValueError, match="3×3"):
        depth_to_normals(pred[:, :2], camera, mask[:, :2])
    with pytest.raises(ValueError, match="features"):
        feature_alignment_loss(torch.zeros(1, 4, 2, 2), torch.zeros(1, 5, 2, 2))
    with pytest.raises(ValueError, match="alpha"):
        feature_alignment_loss(torch.zeros(1, 4, 2, 2), torch.zeros(1, 4, 2, 2), alpha=1.5)


# --- empty masks, degenerate inputs, masks respected ----------------------------------------------


@pytest.mark.parametrize("name", MAP_LOSSES)
def test_all_false_mask_gives_zero_in_the_graph(name):
    pred, target, mask = scene()
    pred.requires_grad_(True)
    loss = MAP_LOSSES[name](pred, target, torch.zeros_like(mask))
    assert loss.item() == 0.0
    loss.backward()
    assert pred.grad is not None and (pred.grad == 0).all()


@pytest.mark.parametrize("name", MAP_LOSSES)
def test_empty_image_is_left_out_of_the_batch_mean(name):
    pred, target, mask = scene()
    alone = MAP_LOSSES[name](pred[:1], target[:1], mask[:1])
    mask[1] = False
    assert MAP_LOSSES[name](pred, target, mask).item() == pytest.approx(alone.item())


@pytest.mark.parametrize("name", MAP_LOSSES)
@pytest.mark.parametrize("case", ["constant_pred", "constant_both", "one_pixel"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_degenerate_inputs_have_finite_gradients(name, case, dtype):
    pred, target, mask = scene(dtype=dtype)
    if case == "constant_pred":
        pred = torch.full_like(pred, 2.0)
    elif case == "constant_both":
        pred, target = torch.full_like(pred, 2.0), torch.full_like(target, 3.0)
    else:
        mask = torch.zeros_like(mask)
        mask[:, 5, 6] = True
    pred.requires_grad_(True)
    loss = MAP_LOSSES[name](pred, target, mask)
    assert loss.isfinite()
    loss.backward()
    assert pred.grad is not None and pred.grad.isfinite().all()


@pytest.mark.parametrize("name", MAP_LOSSES)
def test_masked_out_pixels_change_nothing(name):
    pred, target, mask = scene()
    loss = MAP_LOSSES[name](pred, target, mask)
    wild_pred = torch.where(mask, pred, torch.nan).requires_grad_(True)
    wild_target = torch.where(mask, target, -torch.inf)
    wild = MAP_LOSSES[name](wild_pred, wild_target, mask)
    assert wild.item() == pytest.approx(loss.item(), rel=1e-12)
    wild.backward()
    assert wild_pred.grad is not None
    assert (wild_pred.grad[~mask] == 0).all() and wild_pred.grad.isfinite().all()


# --- MiDaS losses -------------------------------------------------------------------------------


@FAST
@given(a=st.floats(-10.0, 10.0).filter(lambda a: abs(a) > 0.01), b=st.floats(-10.0, 10.0))
def test_ssi_mse_is_affine_invariant(a, b):
    _, target, mask = scene(seed=1)
    assert ssi_mse_loss(a * target + b, target, mask).item() == pytest.approx(0.0, abs=1e-20)


@FAST
@given(a=st.floats(0.01, 100.0), b=st.floats(-10.0, 10.0))
def test_ssi_trimmed_mae_is_invariant_to_positive_affine_maps(a, b):
    _, target, mask = scene(seed=1)
    assert ssi_trimmed_mae_loss(a * target + b, target, mask).item() == pytest.approx(0.0, abs=1e-8)


@FAST
@given(a=st.floats(-10.0, 10.0).filter(lambda a: abs(a) > 0.01), b=st.floats(-10.0, 10.0))
def test_gradient_matching_is_affine_invariant_when_aligned(a, b):
    _, target, mask = scene(seed=1)
    loss = gradient_matching_loss(a * target + b, target, mask)
    assert loss.item() == pytest.approx(0.0, abs=1e-8)


def test_ssi_mse_by_hand():
    # s = 1.5, t = −0.5 (see the alignment tests) → residuals −0.5, 1, −0.5 → 1.5 / (2·3)
    pred = torch.tensor([[[0.0, 1.0, 2.0]]])
    target = torch.tensor([[[0.0, 0.0, 3.0]]])
    assert ssi_mse_loss(pred, target, torch.ones_like(pred, dtype=torch.bool)).item() == (
        pytest.approx(0.25)
    )


def test_ssi_trimmed_mae_by_hand():
    # target: median 2, MAD 6/5 → (−5/3, −5/6, 0, 5/6, 5/3)
    # pred:   median 2, MAD 16/5 → (−5/8, −5/16, 0, 5/16, 15/4)
    # residuals 25/24, 25/48, 0, 25/48, 25/12; ⌊0.8·5⌋ = 4 smallest kept → 25/12 / 10
    target = torch.tensor([[[0.0, 1.0, 2.0, 3.0, 4.0]]], dtype=torch.float64)
    pred = torch.tensor([[[0.0, 1.0, 2.0, 3.0, 14.0]]], dtype=torch.float64)
    mask = torch.ones_like(pred, dtype=torch.bool)
    assert ssi_trimmed_mae_loss(pred, target, mask).item() == pytest.approx(5 / 24)
    # trim = 0 keeps every residual: (25/12 + 25/12) / 10
    assert ssi_trimmed_mae_loss(pred, target, mask, trim=0.0).item() == pytest.approx(5 / 12)
    # trim = 0.3: ⌊0.7·5⌋ = 3 kept, (0 + 25/48 + 25/48) / 10
    # trim = 0.7 on the pixels twice over: ⌊0.3·10⌋ = 3 kept, (0 + 0 + 25/48) / 20
    assert ssi_trimmed_mae_loss(pred, target, mask, trim=0.3).item() == pytest.approx(5 / 48)
    ten = torch.cat([pred, pred], -1), torch.cat([target, target], -1), torch.cat([mask, mask], -1)
    assert ssi_trimmed_mae_loss(*ten, trim=0.7).item() == pytest.approx(25 / 48 / 20)


def test_gradient_matching_by_hand():
    residual = torch.arange(9.0, dtype=torch.float64).reshape(1, 3, 3)
    zero = torch.zeros_like(residual)
    mask = torch.ones_like(residual, dtype=torch.bool)
    # scale 0: x-differences 6·1, y-differences 6·3 over 9 pixels; scale 1: [[0, 2], [6, 8]]
    # gives x 2 + 2, y 6 + 6 over 4 pixels
    loss = gradient_matching_loss(residual, zero, mask, scales=2, align=False)
    assert loss.item() == pytest.approx(24 / 9 + 16 / 4)
    assert gradient_matching_loss(residual, zero, mask, scales=1, align=False).item() == (
        pytest.approx(24 / 9)
    )
    # centre pixel invalid: differences touching it are dropped → (4 + 12) / 8 at scale 0
    mask[0, 1, 1] = False
    loss = gradient_matching_loss(residual, zero, mask, scales=2, align=False)
    assert loss.item() == pytest.approx(16 / 8 + 16 / 4)


# --- SILog --------------------------------------------------------------------------------------


@FAST
@given(c=st.floats(0.05, 20.0), lam=st.floats(0.0, 1.0), scale=st.floats(0.5, 10.0))
def test_silog_global_scale_error_costs_sqrt_one_minus_lambda(c, lam, scale):
    _, target, mask = scene(seed=2)
    loss = silog_loss(c * target, target, mask, lam=lam, scale=scale)
    expected = scale * math.sqrt(1.0 - lam) * abs(math.log(c))
    assert loss.item() == pytest.approx(expected, rel=1e-6, abs=1e-7)


@FAST
@given(c=st.floats(0.05, 20.0))
def test_silog_is_scale_invariant_when_lambda_is_one(c):
    pred, target, mask = scene(seed=2)
    a = silog_loss(c * pred, target, mask, lam=1.0)
    b = silog_loss(pred, target, mask, lam=1.0)
    assert a.item() == pytest.approx(b.item(), rel=1e-9)


def test_silog_by_hand():
    # g = (1, 2): mean 1.5, mean g² 2.5 → sqrt(2.5 − 0.5 · 2.25) = sqrt(1.375)
    target = torch.tensor([[[1.0, 3.0]]], dtype=torch.float64)
    pred = target * torch.tensor([math.e, math.e**2], dtype=torch.float64)
    mask = torch.ones_like(pred, dtype=torch.bool)
    assert silog_loss(pred, target, mask, lam=0.5).item() == pytest.approx(math.sqrt(1.375))
    assert silog_loss(pred, target, mask, lam=0.5, scale=10).item() == pytest.approx(
        10 * math.sqrt(1.375)
    )
    assert silog_loss(pred, target, mask, lam=0.0).item() == pytest.approx(math.sqrt(2.5))


def test_silog_zero_and_its_gradient_at_a_perfect_prediction():
    _, target, mask = scene()
    pred = target.clone().requires_grad_(True)
    loss = silog_loss(pred, target, mask)
    assert loss.item() == 0.0
    loss.backward()
    assert pred.grad is not None and pred.grad.isfinite().all()


# --- RPNL ---------------------------------------------------------------------------------------


@FAST
@given(a=st.floats(0.01, 100.0), b=st.floats(-10.0, 10.0))
def test_rpnl_is_invariant_to_positive_affine_maps(a, b):
    _, target, mask = scene(seed=3)
    loss = rpnl_loss(a * target + b, target, mask, generator=seeded(1))
    assert loss.item() == pytest.approx(0.0, abs=1e-8)


def test_rpnl_with_whole_image_crops_is_the_untrimmed_ssi_mae():
    # a crop of the whole image: mean |p̂ − d̂| over valid pixels, which ssi_trimmed_mae
    # with trim = 0 halves
    pred, target, mask = scene(seed=4)
    loss = rpnl_loss(pred, target, mask, num_crops=3, min_frac=1.0, max_frac=1.0)
    ssi = ssi_trimmed_mae_loss(pred, target, mask, trim=0.0)
    assert loss.item() == pytest.approx(2 * ssi.item())
    with_image = rpnl_loss(pred, target, mask, 3, 1.0, 1.0, whole_image=True)
    assert with_image.item() == pytest.approx(loss.item())


def test_rpnl_crops_are_reproducible_with_a_generator():
    pred, target, mask = scene(seed=5, height=32, width=40)
    a = rpnl_loss(pred, target, mask, generator=seeded(7))
    b = rpnl_loss(pred, target, mask, generator=seeded(7))
    c = rpnl_loss(pred, target, mask, generator=seeded(8))
    assert a.item() == b.item() and a.item() != c.item()


# --- virtual normals and normals from depth -----------------------------------------------------


def test_virtual_normal_zero_for_exact_and_scaled_predictions():
    _, target, mask = scene(height=16, width=20)
    camera = camera_for(2, 16, 20)
    for s in (1.0, 0.3, 7.0):
        loss = virtual_normal_loss(s * target, target, mask, camera, generator=seeded())
        assert loss.item() == pytest.approx(0.0, abs=1e-10)


def test_virtual_normal_tilted_plane_against_flat_by_hand():
    height, width = 16, 20
    camera = camera_for(1, height, width)
    flat = plane_depth((0.0, 0.0, -1.0), (0.0, 0.0, 3.0), camera, height, width)
    tilted = plane_depth((1.0, 0.0, -1.0), (0.0, 0.0, 3.0), camera, height, width)  # 45°
    mask = torch.ones_like(flat, dtype=torch.bool)
    # every triangle: |(1, 0, −1)/√2 − (0, 0, −1)|₁ = 1/√2 + (1 − 1/√2) = 1
    loss = virtual_normal_loss(tilted, flat, mask, camera, num_triplets=500, generator=seeded())
    assert loss.item() == pytest.approx(1.0)
    assert virtual_normal_loss(flat, flat, mask, camera, generator=seeded()).item() == 0.0


def test_virtual_normal_rejects_collinear_triplets():
    # a single valid row: every triangle is degenerate in the ground truth, nothing is accepted
    height, width = 8, 10
    camera = camera_for(1, height, width)
    flat = plane_depth((0.0, 0.0, -1.0), (0.0, 0.0, 3.0), camera, height, width)
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[0, 4] = True
    pred = torch.rand_like(flat) + 1
    assert virtual_normal_loss(pred, flat, mask, camera, generator=seeded()).item() == 0.0


def test_depth_to_normals_exact_on_planes():
    height, width = 9, 11
    camera = camera_for(2, height, width)
    normal = torch.tensor([0.3, -0.4, -0.8], dtype=torch.float64)
    depth = plane_depth(normal.tolist(), (0.1, 0.2, 4.0), camera, height, width)
    mask = torch.ones_like(depth, dtype=torch.bool)
    mask[1, 4, 5] = False
    normals, valid = depth_to_normals(depth, camera, mask)
    assert normals.shape == (2, 3, height, width) and valid.shape == (2, height, width)
    assert not valid[:, 0].any() and not valid[:, :, -1].any()  # border
    assert not valid[1, 4, 5] and not valid[1, 3, 5] and not valid[1, 4, 4]  # hole, neighbours
    assert valid[0, 1:-1, 1:-1].all() and valid.sum() == 2 * 7 * 9 - 5
    unit = normal / normal.norm()
    got = normals.permute(0, 2, 3, 1)[valid]
    torch.testing.assert_close(got, unit.expand_as(got))
    assert (normals.permute(0, 2, 3, 1)[~valid] == 0).all()


def test_depth_to_normals_face_the_camera():
    camera = camera_for(1, 5, 5)
    normals, _ = depth_to_normals(torch.full((1, 5, 5), 2.0), camera, torch.ones(1, 5, 5).bool())
    torch.testing.assert_close(normals[0, :, 2, 2], torch.tensor([0.0, 0.0, -1.0]))


def test_pairwise_normal_zero_on_a_plane_with_exact_normals():
    height, width = 12, 14
    camera = camera_for(2, height, width)
    normal = torch.tensor([0.2, 0.5, -0.84], dtype=torch.float64)
    depth = plane_depth(normal.tolist(), (0.0, 0.0, 2.5), camera, height, width)
    target = (normal / normal.norm())[None, :, None, None].expand(2, 3, height, width)
    mask = torch.ones_like(depth, dtype=torch.bool)
    loss = pairwise_normal_loss(depth, target, mask, camera, generator=seeded())
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    flipped = pairwise_normal_loss(depth, -target, mask, camera, generator=seeded())
    assert flipped.item() == pytest.approx(0.0, abs=1e-12)  # sign convention does not matter


def test_pairwise_normal_positive_when_the_target_has_a_crease():
    height, width = 12, 14
    camera = camera_for(1, height, width)
    depth = torch.full((1, height, width), 2.0, dtype=torch.float64)
    target = torch.zeros(1, 3, height, width, dtype=torch.float64)
    target[:, 2] = -1.0
    target[:, :, :, width // 2 :] = torch.tensor([0.6, 0.0, -0.8], dtype=torch.float64)[
        :, None, None
    ]
    mask = torch.ones_like(depth, dtype=torch.bool)
    loss = pairwise_normal_loss(depth, target, mask, camera, num_pairs=4000, generator=seeded())
    # a pair straddles the crease about half the time, and then costs 1 − 0.8
    assert loss.item() == pytest.approx(0.1, abs=0.02)


# --- feature alignment --------------------------------------------------------------------------


def test_feature_alignment_by_hand():
    # pixels: cos 1 (passes the margin, left out), cos 0, cos 1/√2
    student = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]).T.reshape(1, 2, 1, 3)
    teacher = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]).T.reshape(1, 2, 1, 3)
    loss = feature_alignment_loss(student, teacher)
    assert loss.item() == pytest.approx((1.0 + (1 - 1 / math.sqrt(2))) / 2)
    assert feature_alignment_loss(student, teacher, alpha=0.5).item() == pytest.approx(1.0)
    assert feature_alignment_loss(student, teacher, alpha=1.0).item() == pytest.approx(
        (0.0 + 1.0 + (1 - 1 / math.sqrt(2))) / 3
    )


def test_feature_alignment_zero_when_aligned_and_teacher_frozen():
    g = seeded()
    teacher = torch.randn(2, 8, 3, 4, generator=g, requires_grad=True)
    student = (2.5 * teacher.detach()).requires_grad_(True)  # same directions
    loss = feature_alignment_loss(student, teacher)
    assert loss.item() == 0.0
    loss.backward()
    assert teacher.grad is None
    assert student.grad is not None and (student.grad == 0).all()
    zero = feature_alignment_loss(
        torch.zeros(1, 4, 2, 2, requires_grad=True), teacher[:1, :4, :2, :2]
    )
    assert zero.item() == pytest.approx(1.0)  # zero features: cos 0, finite


# --- gradcheck ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MAP_LOSSES)
def test_gradcheck(name):
    pred, target, mask = scene(batch=2, height=5, width=6, seed=9)
    pred.requires_grad_(True)
    fn = MAP_LOSSES[name]
    assert torch.autograd.gradcheck(lambda p: fn(p, target, mask), (pred,))


def test_gradcheck_feature_alignment():
    g = seeded(3)
    student = torch.randn(2, 4, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(2, 4, 2, 3, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda s: feature_alignment_loss(s, teacher, 1.0), (student,))


# --- scale anchor -------------------------------------------------------------------------------


def test_scale_anchor_is_log_spread_squared_and_ignores_shift_and_masked_pixels():
    # One image whose valid pixels are 0, 2, 4, 6 (median 2 as the lower median,
    # absolute deviations 2, 0, 2, 4: spread 2) and one whose valid pixels are
    # 10 ± 0.5 (spread 0.5); masked-out pixels hold wild values that must not count.
    pred = torch.tensor(
        [[[0.0, 2.0, 1e6], [4.0, 6.0, -1e6]], [[9.5, 10.5, 1e9], [9.5, 10.5, float("nan")]]],
        dtype=torch.float64,
    )
    mask = torch.tensor([[[True, True, False], [True, True, False]]] * 2)
    expected = (math.log(2.0) ** 2 + math.log(0.5) ** 2) / 2
    assert scale_anchor_loss(pred, mask).item() == pytest.approx(expected)
    assert scale_anchor_loss(pred + 123.0, mask).item() == pytest.approx(expected)
    assert scale_anchor_loss(pred / 2.0, mask).item() == pytest.approx(
        (math.log(1.0) ** 2 + math.log(0.25) ** 2) / 2
    )


def test_scale_anchor_pulls_the_spread_towards_one_and_skips_empty_images():
    pred, _, mask = scene()
    mask[1] = False  # an image with no valid pixel is left out of the mean
    big = (pred * 50.0).requires_grad_(True)
    loss = scale_anchor_loss(big, mask)
    loss.backward()
    assert loss.item() > 1.0 and big.grad is not None and big.grad.isfinite().all()
    assert big.grad[1].abs().sum().item() == 0.0
    # One gradient step on a scale factor reduces the spread of a too-wide map.
    factor = torch.ones((), dtype=torch.float64, requires_grad=True)
    scale_anchor_loss(big.detach() * factor, mask).backward()
    assert factor.grad is not None and factor.grad.item() > 0.0
    assert scale_anchor_loss(torch.zeros_like(pred), torch.zeros_like(mask)).item() == 0.0
