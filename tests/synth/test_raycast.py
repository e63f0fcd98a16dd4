"""The ray caster's closed-form intersections, checked against brute-force marching."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from depthlens.synth.raycast import hit_distance, local_normals, march_heightfield
from depthlens.synth.scene import BOX, CAPSULE, CONE, ELLIPSOID, QUAD


def _inside(kind: int, p: torch.Tensor, k: float) -> torch.Tensor:
    """Whether points p (..., 3) lie inside the unit shape of ``kind`` (parameter k)."""
    x, y, z = p.unbind(-1)
    if kind == BOX:
        return p.abs().amax(-1) <= 1.0
    if kind == ELLIPSOID:
        return (p * p).sum(-1) <= 1.0
    if kind == CONE:
        radius = (1.0 + k) / 2 + (k - 1.0) / 2 * y
        return (y.abs() <= 1.0) & (x * x + z * z <= radius * radius)
    assert kind == CAPSULE
    cy = y.clamp(-k, k)
    return x * x + (y - cy) ** 2 + z * z <= 1.0


def _random_rays(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    origin = (torch.rand(count, 3, generator=g, dtype=torch.float64) - 0.5) * 8.0
    origin = origin + origin.sign() * 1.5  # start outside the shapes
    target = (torch.rand(count, 3, generator=g, dtype=torch.float64) - 0.5) * 3.0
    scale = 0.5 + torch.rand(count, 1, generator=g, dtype=torch.float64) * 2.0
    return origin, (target - origin) * scale  # unnormalised directions


@pytest.mark.parametrize(
    ("kind", "k"),
    [(BOX, 0.0), (ELLIPSOID, 0.0), (CONE, 1.0), (CONE, 0.4), (CONE, 0.0), (CAPSULE, 1.7)],
)
def test_nearest_hit_matches_marching(kind, k):
    """t is where the ray first enters the shape: on the surface, nothing inside before."""
    origin, direction = _random_rays(3000, seed=kind * 10 + int(k * 10))
    outside = ~_inside(kind, origin, k)
    origin, direction = origin[outside], direction[outside]
    param = torch.full((origin.shape[0],), k, dtype=torch.float64)
    t = hit_distance(kind, origin.unbind(1), direction.unbind(1), param, 1e-9)
    steps = torch.linspace(0.0, 1.0, 600, dtype=torch.float64)
    # March far enough to pass the shape (it lies within |p| <= 2.8 of the origin).
    span = (origin.norm(dim=1) + 3.0) / direction.norm(dim=1)
    s = steps[None, :] * span[:, None]
    points = origin[:, None, :] + s[..., None] * direction[:, None, :]
    inside = _inside(kind, points, k)
    entered = inside.any(1)
    hit = torch.isfinite(t)
    assert hit.sum() > 300 and (~hit).sum() > 300
    # Every marched entry is a hit (marching can only miss grazing entries, not invent).
    assert (entered & ~hit).sum() == 0
    # No sample strictly before t (by more than one marching step) is inside.
    step = span / 599
    before = inside & (s < (t - 1.5 * step)[:, None])
    assert before.sum() == 0
    # The hit point is on the surface: just after it we are inside (or at a grazing rim).
    p_hit = origin + t[:, None] * direction
    nudge = p_hit + 1e-6 * direction / direction.norm(dim=1, keepdim=True)
    assert _inside(kind, nudge[hit], k).float().mean() > 0.99


def test_quad_hits_inside_its_square():
    origin = torch.tensor(
        [[0.3, -0.2, 2.0], [1.5, 0.0, 2.0], [0.0, 0.0, -3.0]], dtype=torch.float64
    )
    direction = torch.tensor(
        [[0.0, 0.0, -2.0], [0.0, 0.0, -1.0], [0.1, 0.1, 1.0]], dtype=torch.float64
    )
    t = hit_distance(QUAD, origin.unbind(1), direction.unbind(1), torch.zeros(3), 0.0)
    assert t[0].item() == pytest.approx(1.0)
    assert math.isinf(t[1].item())  # beyond |x| = 1
    assert t[2].item() == pytest.approx(3.0)  # seen from behind: quads are two-sided


@pytest.mark.parametrize("kind", [BOX, ELLIPSOID, CONE, CAPSULE])
def test_local_normals_point_outwards(kind):
    origin, direction = _random_rays(2000, seed=99)
    k = 0.5 if kind == CONE else (1.2 if kind == CAPSULE else 0.0)
    param = torch.full((origin.shape[0],), k, dtype=torch.float64)
    t = hit_distance(kind, origin.unbind(1), direction.unbind(1), param, 1e-9)
    hit = torch.isfinite(t)
    q = origin[hit] + t[hit, None] * direction[hit]
    n = local_normals(kind, q, param[hit])
    n = n / n.norm(dim=1, keepdim=True)
    assert torch.all(_inside(kind, q - 1e-4 * n, k))  # just inside
    assert not torch.any(_inside(kind, q + 1e-4 * n, k))  # just outside
    assert torch.all((n * direction[hit]).sum(1) <= 1e-9)  # the ray comes from outside


def test_heightfield_march_finds_a_known_slope():
    """A planar heightfield y = 0.1 x + 2: the march lands on it to float precision."""
    g = 65
    xs = torch.linspace(-100.0, 100.0, g)
    heights = (0.1 * xs[None, :] + 2.0).expand(g, g).contiguous()
    origin = torch.tensor([0.0, 10.0, 0.0])
    angles = torch.linspace(-0.6, -0.05, 50)
    directions = torch.stack([torch.sin(angles * 3), torch.sin(angles), torch.cos(angles)])
    t_lo = torch.full((50,), 0.01)
    t_hi = torch.full((50,), 500.0)
    t = march_heightfield(heights, -100.0, -100.0, 200.0, origin, directions, t_lo, t_hi)
    p = origin[:, None] + t[None] * directions
    inside = (p[0].abs() < 99) & (p[2].abs() < 99) & torch.isfinite(t)
    assert inside.sum() > 20
    residual = (p[1] - (0.1 * p[0] + 2.0))[inside]
    assert residual.abs().max() < 1e-3
    # A ray going up never hits.
    t_up = march_heightfield(
        heights,
        -100.0,
        -100.0,
        200.0,
        origin,
        torch.tensor([[0.0], [1.0], [1.0]]),
        t_lo[:1],
        t_hi[:1],
    )
    assert math.isinf(t_up.item())


def test_unit_shapes_scale_to_world_sizes():
    """A builder box of half-size (2, 1, 0.5) keeps its size through the local frame."""
    from depthlens.synth.scene import SceneBuilder

    b = SceneBuilder()
    m = b.material(0, (0.5, 0.5, 0.5))
    b.box((0.0, 0.0, 10.0), (2.0, 1.0, 0.5), m)
    scene = b.build("test", *_dummy_setup())
    to_local = scene.to_local[0]
    corner = np.array([2.0, 1.0, 10.5, 1.0])
    np.testing.assert_allclose(to_local @ corner, [1.0, 1.0, 1.0], atol=1e-12)


def _dummy_setup():
    from depthlens.synth.scene import CameraPose, Lighting, Sky

    zero = np.zeros(3)
    pose = CameraPose(np.eye(3), zero, 60.0)
    light = Lighting(None, zero, 0.01, zero, zero)
    sky = Sky(zero, zero, zero, 0.0, zero, 1.0, zero, 0.0)
    return pose, light, sky
