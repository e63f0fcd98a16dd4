"""Synthetic RGB-D samples: procedural scene -> ray cast -> shading -> camera effects.

``render_batch`` is the entry point training code uses. Each sample is a pure function
of (seed, kind, height, width): its scene, lighting and camera effects are drawn from
generators seeded by the sample's own seed, and samples are rendered one at a time
(each one is already a batch of tens of thousands of rays), so a sample never depends
on the batch it is in. The same code runs on CPU and CUDA.

Pixel convention: pixel (u, v) (column, row) is the ray through the image point
(u + 0.5, v + 0.5) of ``camera``; a valid pixel's camera-frame hit point is
``depth * ((u + 0.5 - cx) / fx, (v + 0.5 - cy) / fy, 1)``.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from depthlens.geometry.camera import Camera
from depthlens.synth import camera_effects, textures
from depthlens.synth.raycast import (
    CameraRays,
    Primitives,
    cast_camera_rays,
    cast_shadow_rays,
    heightfield_normals,
    local_normals,
    march_heightfield_image,
    prepare_primitives,
    ray_slab,
)
from depthlens.synth.scene import QUAD, Lighting, Scene

__all__ = [
    "EXTRA_KINDS",
    "SCENE_KINDS",
    "SynthSample",
    "build_scene",
    "choose_kind",
    "render_batch",
    "render_batches",
    "render_sample",
    "render_scene",
]

#: The kinds a sample's seed draws from by default (training and validation data).
SCENE_KINDS = ("indoor", "street", "landscape", "tabletop")
#: Kinds rendered only when named: they stay out of the default pool, so every seed
#: keeps its scene. ``thin_structures`` is the high-resolution sharp-edge benchmark's.
EXTRA_KINDS = ("thin_structures",)
_ALL_KINDS = SCENE_KINDS + EXTRA_KINDS

_SEED_MASK = (1 << 64) - 1
_SCENE_STREAM, _EFFECT_STREAM, _KIND_STREAM = 1, 2, 3


@dataclass(frozen=True)
class SynthSample:
    """One rendered sample.

    ``rgb`` (H, W, 3) uint8; ``depth`` (H, W) float32 metres along the optical axis
    (z-depth), 0 where invalid; ``valid`` (H, W) bool (False for sky and anything
    beyond the scene's far limit); ``normals`` (H, W, 3) float32 unit normals in the
    camera frame (x right, y down, z forward) facing the camera, 0 where invalid;
    ``camera`` the pinhole intrinsics (see the module docstring for pixel centres);
    ``seed`` and ``kind`` name the sample.
    """

    rgb: np.ndarray
    depth: np.ndarray
    valid: np.ndarray
    normals: np.ndarray
    camera: Camera
    seed: int
    kind: str


def choose_kind(seed: int, kinds: Sequence[str] | None = None) -> str:
    """The scene kind of ``seed``: drawn from ``kinds`` (default: all) by the seed alone."""
    pool = _check_kinds(kinds)
    if len(pool) == 1:
        return pool[0]
    rng = np.random.default_rng([seed & _SEED_MASK, _KIND_STREAM])
    return pool[int(rng.integers(len(pool)))]


def build_scene(seed: int, kind: str) -> Scene:
    """The procedural scene of (``seed``, ``kind``), independent of the image size."""
    from depthlens.synth import layouts

    _check_kinds([kind])
    rng = np.random.default_rng([seed & _SEED_MASK, _ALL_KINDS.index(kind), _SCENE_STREAM])
    return layouts.BUILDERS[kind](rng)


def render_sample(
    seed: int,
    height: int,
    width: int,
    kind: str | None = None,
    device: str | torch.device = "cpu",
) -> SynthSample:
    """Render one sample; ``kind`` None picks the kind from the seed."""
    return render_batch([seed], height, width, None if kind is None else [kind], device)[0]


def render_batch(
    seeds: Sequence[int],
    height: int,
    width: int,
    kinds: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
) -> list[SynthSample]:
    """Render one sample per seed at ``height`` × ``width`` pixels.

    ``kinds`` is the pool of scene kinds to draw from (default ``SCENE_KINDS``); each
    sample's kind is chosen by its seed alone (a pool of one kind fixes it). The same
    (seed, kind, size) always gives the identical sample, in any batch. On CPU the work
    runs on one torch thread (see ``render_batches`` for several cores).
    """
    if height < 8 or width < 8:
        raise ValueError(f"synthetic images must be at least 8×8 pixels, got {width}×{height}")
    pool = _check_kinds(kinds)
    target = torch.device(device)
    samples = []
    with _one_thread(target):
        for seed in seeds:
            kind = choose_kind(int(seed), pool)
            scene = build_scene(int(seed), kind)
            samples.append(render_scene(scene, height, width, seed=int(seed), device=target))
    return samples


@contextmanager
def _one_thread(device: torch.device) -> Iterator[None]:
    """Run CPU rendering with one torch intra-op thread, then restore the setting.

    The renderer issues thousands of small tensor ops per sample: more threads barely
    speed them up, and when another job holds a core every op's parallel region waits
    for a descheduled thread (measured: 15× slower with 2 threads on a busy 2-core
    machine). Several cores are used through worker processes (``render_batches``).
    The setting is process-wide: torch work on other threads slows while this runs.
    """
    if device.type != "cpu" or torch.get_num_threads() == 1:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def render_batches(
    seeds: Sequence[int],
    height: int,
    width: int,
    kinds: Sequence[str] | None = None,
    batch_size: int = 16,
    workers: int = 1,
    device: str | torch.device = "cpu",
) -> Iterator[list[SynthSample]]:
    """Yield ``render_batch`` results for consecutive batches of ``seeds``, in order.

    With ``workers`` > 1 the batches are rendered by that many worker processes (each
    with one torch thread, like DataLoader workers), which is how this engine uses
    several CPU cores: its many small tensor ops scale poorly across threads. Samples
    are identical to those of ``render_batch`` whatever the number of workers.
    """
    pool = _check_kinds(kinds)
    batches = [list(seeds[i : i + batch_size]) for i in range(0, len(seeds), batch_size)]
    if workers <= 1:
        for batch in batches:
            yield render_batch(batch, height, width, pool, device)
        return
    context = multiprocessing.get_context("spawn")  # safe with torch and threads
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init) as executor:
        # A bounded window of batches in flight keeps memory flat for long runs.
        pending: deque[Future[list[SynthSample]]] = deque()
        for batch in batches:
            pending.append(executor.submit(render_batch, batch, height, width, pool, str(device)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _worker_init() -> None:
    torch.set_num_threads(1)


def _check_kinds(kinds: Sequence[str] | None) -> tuple[str, ...]:
    if kinds is None:
        return SCENE_KINDS
    pool = tuple(kinds)
    unknown = [k for k in pool if k not in _ALL_KINDS]
    if unknown or not pool:
        raise ValueError(
            f"unknown scene kind {', '.join(unknown) or '(none)'}: "
            f"choose from {', '.join(_ALL_KINDS)}"
        )
    return pool


# ---------------------------------------------------------------------------------------


class _Timer:
    """Accumulates wall time per phase into a dict (a no-op without one)."""

    def __init__(self, out: dict[str, float] | None, device: torch.device) -> None:
        self.out = out
        self.device = device

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.out is None:
            yield
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.out[name] = self.out.get(name, 0.0) + time.perf_counter() - start


def _vec(array: np.ndarray | Sequence[float], device: torch.device) -> Tensor:
    return torch.as_tensor(np.asarray(array, dtype=np.float64), dtype=torch.float32).to(device)


def intrinsics(scene: Scene, height: int, width: int) -> Camera:
    """The pinhole camera of ``scene``'s pose at ``height`` × ``width`` pixels."""
    pose = scene.pose
    focal = (width / 2.0) / math.tan(math.radians(pose.hfov_deg) / 2.0)
    cx = width / 2.0 + pose.principal_offset[0] * width
    cy = height / 2.0 + pose.principal_offset[1] * height
    return Camera(focal, focal, cx, cy, width, height)


def render_scene(
    scene: Scene,
    height: int,
    width: int,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    effects: bool = True,
    timings: dict[str, float] | None = None,
) -> SynthSample:
    """Ray cast and shade ``scene`` into a ``SynthSample`` of ``height`` × ``width``.

    ``effects`` False skips exposure randomness and camera effects (a clean image);
    ``timings`` (optional) receives seconds spent per phase: "intersection" (camera,
    terrain and shadow rays), "shading" (textures, lights, occlusion, sky, tone) and
    "effects" (camera effects on the CPU).
    """
    dev = torch.device(device)
    timer = _Timer(timings, dev)
    camera = intrinsics(scene, height, width)
    fx_rng = np.random.default_rng([seed & _SEED_MASK, _EFFECT_STREAM, height, width])
    rot = scene.pose.rotation  # camera -> world
    pos = scene.pose.position
    n = height * width

    with timer("intersection"):
        prims = prepare_primitives(scene, (rot.T, pos), dev)
        rays = CameraRays.create(height, width, camera.fx, camera.fy, camera.cx, camera.cy, dev)
        dirs = rays.directions()  # (3, n), z = 1
        t, prim = cast_camera_rays(prims, rays, scene.near)
        rot_t = _vec(rot, dev)
        terrain_hit = torch.zeros(n, dtype=torch.bool, device=dev)
        heights = None
        if scene.terrain is not None:
            hf = scene.terrain
            heights = torch.as_tensor(hf.heights, dtype=torch.float32).to(dev)
            world_dirs = rot_t @ dirs
            lo, hi = ray_slab(
                float(pos[1]), world_dirs[1], float(hf.heights.min()), float(hf.heights.max())
            )
            hi = torch.minimum(torch.minimum(hi, t), torch.full_like(t, hf.far))
            lo = lo.clamp(min=scene.near)
            tt = march_heightfield_image(
                heights, hf.x0, hf.z0, hf.size, _vec(pos, dev), world_dirs, lo, hi, height, width
            )
            terrain_hit = tt < t
            t = torch.where(terrain_hit, tt, t)
            prim = torch.where(terrain_hit, -1, prim)
        valid = t <= scene.far
        idx = torch.nonzero(valid).squeeze(1)
        tv = t.index_select(0, idx)
        d = dirs.index_select(1, idx)
        p = d * tv[None]  # (3, m) camera-frame hit points

    with timer("shading"):
        up = rot_t[1]  # world up in the camera frame (row 1 of camera -> world)
        surf = _surface(
            scene,
            prims,
            prim.index_select(0, idx),
            terrain_hit.index_select(0, idx),
            p,
            rot_t,
            pos,
            heights,
            dev,
        )
        normal, u_tex, v_tex, top, mat_id = surf
        # Face the camera (quads are two-sided; rounding at silhouettes).
        facing = (normal * d).sum(0)
        normal = torch.where((facing > 0)[None], -normal, normal)
        d_len = _length(d)
        dn = d / d_len[None]
        cos_view = (-(normal * dn).sum(0)).clamp(min=0.0)
        footprint = tv * d_len / camera.fx / cos_view.clamp(min=0.2)
        materials = torch.as_tensor(scene.materials).to(dev)
        mat = materials.T.contiguous().index_select(1, mat_id)  # (16, m)
        world_y = up @ p + float(pos[1])
        up_n = up @ normal
        albedo, gloss = textures.albedo(mat, u_tex, v_tex, footprint, world_y, up_n, top)

    light = scene.lighting
    sun = None if light.sun_dir is None else rot_t.T @ _vec(light.sun_dir, dev)
    lamp = None
    if light.lamp_pos is not None:
        lamp = rot_t.T @ (_vec(light.lamp_pos, dev) - _vec(pos, dev))
    depth_img = torch.zeros(n, device=dev).index_copy_(0, idx, tv).reshape(height, width)
    sun_vis, lamp_vis, ao = _light_terms(
        prims, light, sun, lamp, up, p, normal, tv, idx, depth_img, camera, timer
    )

    with timer("shading"):
        image, illuminant = _shade(
            scene,
            camera,
            dev,
            idx,
            valid,
            tv,
            p,
            normal,
            dn,
            d_len,
            up,
            rot_t,
            sun,
            lamp,
            albedo,
            gloss,
            mat,
            sun_vis,
            lamp_vis,
            ao,
            dirs,
        )
        depth = torch.where(valid, t, 0.0)
        exposure_rng = fx_rng if effects else None
        rgb = _tone(image, illuminant, exposure_rng)
        normals = torch.zeros(3, n, device=dev)
        normals.index_copy_(1, idx, normal)
        rgb_np = rgb.reshape(3, height, width).permute(1, 2, 0).cpu().numpy()
        depth_np = depth.reshape(height, width).cpu().numpy().astype(np.float32)
        valid_np = valid.reshape(height, width).cpu().numpy()
        normals_np = normals.reshape(3, height, width).permute(1, 2, 0).cpu().numpy()

    with timer("effects"):
        if effects:
            params = camera_effects.draw_effects(fx_rng, depth_np, valid_np)
            rgb_u8 = camera_effects.apply_effects(rgb_np, depth_np, valid_np, params, fx_rng)
        else:
            rgb_u8 = np.clip(rgb_np * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return SynthSample(
        rgb=rgb_u8,
        depth=depth_np,
        valid=valid_np,
        normals=np.ascontiguousarray(normals_np, dtype=np.float32),
        camera=camera,
        seed=seed,
        kind=scene.kind,
    )


def _surface(
    scene: Scene,
    prims: Primitives,
    prim: Tensor,
    on_terrain: Tensor,
    p: Tensor,
    rot: Tensor,
    pos: np.ndarray,
    heights: Tensor | None,
    dev: torch.device,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Normals (3, m) (camera frame, unit), texture coordinates u, v (m,) in metres, the
    top-face flag (m,) and material ids (m,) of the hit points ``p`` (3, m)."""
    m = p.shape[1]
    normal = torch.zeros(3, m, device=dev)
    u = torch.zeros(m, device=dev)
    v = torch.zeros(m, device=dev)
    top = torch.zeros(m, dtype=torch.bool, device=dev)
    mat_id = torch.zeros(m, dtype=torch.int64, device=dev)
    for kind, lo, hi in prims.ranges:
        rows = torch.nonzero((prim >= lo) & (prim < hi)).squeeze(1)
        if rows.numel() == 0:
            continue
        k = prim.index_select(0, rows)
        lin = prims.lin.index_select(1, k)
        off = prims.off.index_select(1, k)
        scale = prims.scale.index_select(1, k)
        pr = p.index_select(1, rows)
        q = torch.stack(
            [
                lin[0] * pr[0] + lin[1] * pr[1] + lin[2] * pr[2] + off[0],
                lin[3] * pr[0] + lin[4] * pr[1] + lin[5] * pr[2] + off[1],
                lin[6] * pr[0] + lin[7] * pr[1] + lin[8] * pr[2] + off[2],
            ],
            1,
        )
        nl = local_normals(kind, q, prims.param.index_select(0, k))
        # camera-frame normal = A^T n_local (A: camera -> local linear part)
        nc = torch.stack(
            [
                lin[0] * nl[:, 0] + lin[3] * nl[:, 1] + lin[6] * nl[:, 2],
                lin[1] * nl[:, 0] + lin[4] * nl[:, 1] + lin[7] * nl[:, 2],
                lin[2] * nl[:, 0] + lin[5] * nl[:, 1] + lin[8] * nl[:, 2],
            ]
        )
        normal.index_copy_(1, rows, nc / _length(nc).clamp(min=1e-12)[None])
        qm = q.T * scale  # local metres
        # Texture coordinates on the face the local normal points along (v upwards on
        # the vertical faces of upright objects).
        a = (nl / scale.T).abs() if kind != QUAD else nl.abs()
        on_x = (a[:, 0] >= a[:, 1]) & (a[:, 0] >= a[:, 2])
        on_y = ~on_x & (a[:, 1] >= a[:, 2])
        u.index_copy_(0, rows, torch.where(on_x, qm[2], qm[0]))
        v.index_copy_(0, rows, torch.where(on_x, qm[1], torch.where(on_y, qm[2], qm[1])))
        top.index_copy_(0, rows, on_y)
        mat_id.index_copy_(0, rows, prims.material.index_select(0, k))
    if heights is not None and scene.terrain is not None:
        rows = torch.nonzero(on_terrain).squeeze(1)
        if rows.numel():
            hf = scene.terrain
            world = rot @ p.index_select(1, rows) + _vec(pos, dev)[:, None]
            nw = heightfield_normals(heights, hf.x0, hf.z0, hf.size, world[0], world[2])
            normal.index_copy_(1, rows, rot.T @ nw)
            u.index_copy_(0, rows, world[0])
            v.index_copy_(0, rows, world[2])
            top.index_fill_(0, rows, True)
            mat_id.index_fill_(0, rows, hf.material)
    return normal, u, v, top, mat_id


def _length(v: Tensor) -> Tensor:
    """Euclidean lengths (n,) of the columns of v (3, n) (faster than ``norm`` on CPU)."""
    return (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()


def _perp(axis: Tensor) -> tuple[Tensor, Tensor]:
    """Two unit vectors perpendicular to the unit vector ``axis`` (3,) and each other."""
    helper = torch.tensor([1.0, 0.0, 0.0], device=axis.device)
    if abs(float(axis[0])) > 0.9:
        helper = torch.tensor([0.0, 1.0, 0.0], device=axis.device)
    e1 = torch.linalg.cross(axis, helper)
    e1 = e1 / e1.norm()
    return e1, torch.linalg.cross(axis, e1)


def _ign(u: Tensor, v: Tensor) -> Tensor:
    """Interleaved gradient noise (Jimenez 2014): a per-pixel value in [0, 1) whose
    neighbourhoods are well spread, so a small blur averages it out."""
    x = 0.06711056 * u + 0.00583715 * v
    x = 52.9829189 * (x - torch.floor(x))
    return x - torch.floor(x)


_JITTER: dict[tuple[int, int, str], Tensor] = {}


def _jitter(height: int, width: int, dev: torch.device) -> Tensor:
    """(2, H * W) points in the unit disc, one per pixel, stratified by IGN (cached)."""
    key = (height, width, str(dev))
    if key not in _JITTER:
        _JITTER[key] = _make_jitter(height, width, dev)
    return _JITTER[key]


def _make_jitter(height: int, width: int, dev: torch.device) -> Tensor:
    v, u = torch.meshgrid(
        torch.arange(height, device=dev, dtype=torch.float32),
        torch.arange(width, device=dev, dtype=torch.float32),
        indexing="ij",
    )
    # Shadow rays are cast on the 2 × 2 lattice, so the noise runs over lattice cells
    # (a lattice pixel and its three neighbours share a value; only gap-filling rays off
    # the lattice use it too). The radius comes from a 4 × 4 Bayer matrix: a stratified
    # ring distance, and the angle from IGN.
    cu, cv = torch.floor(u / 2), torch.floor(v / 2)
    bayer = torch.tensor([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]], device=dev)
    rank = bayer[cv.long() % 4, cu.long() % 4].float()
    r = ((rank + 0.5) / 16.0).sqrt().reshape(-1)
    phi = 2.0 * math.pi * _ign(cu, cv).reshape(-1)
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi)])


def _shade(
    scene: Scene,
    camera: Camera,
    dev: torch.device,
    idx: Tensor,
    valid: Tensor,
    t: Tensor,
    p: Tensor,
    normal: Tensor,
    dn: Tensor,
    d_len: Tensor,
    up: Tensor,
    rot: Tensor,
    sun: Tensor | None,
    lamp: Tensor | None,
    albedo: Tensor,
    gloss: Tensor,
    mat: Tensor,
    sun_vis: Tensor,
    lamp_vis: Tensor,
    ao: Tensor,
    dirs: Tensor,
) -> tuple[Tensor, Tensor]:
    """Linear radiance (3, H * W) of every pixel (lit surfaces, sky, mild haze) and the
    mean irradiance colour (3,) the surfaces receive (the illuminant, for white balance)."""
    height, width = camera.height, camera.width
    n = height * width
    light = scene.lighting
    sky = scene.sky
    up_n = up @ normal
    amb_sky = _vec(light.ambient_sky, dev)[:, None]
    amb_ground = _vec(light.ambient_ground, dev)[:, None]
    hemi = (0.5 + 0.5 * up_n)[None]
    irradiance = (amb_ground + (amb_sky - amb_ground) * hemi) * ao[None]
    spec_strength = mat[9] * gloss
    shine = mat[10]
    specular = torch.zeros_like(albedo)
    if sun is not None:
        ndl = (normal.T @ sun).clamp(min=0.0)
        sun_col = _vec(light.sun_color, dev)[:, None]
        direct = sun_col * (ndl * sun_vis)[None]
        irradiance = irradiance + direct
        half = sun[:, None] - dn
        half = half / _length(half).clamp(min=1e-6)[None]
        nh = (normal * half).sum(0).clamp(min=0.0, max=1.0)
        specular = specular + direct * (spec_strength * nh.pow(shine))[None]
    if lamp is not None:
        to_lamp = lamp[:, None] - p
        dist2 = (to_lamp * to_lamp).sum(0)
        ndl = ((normal * to_lamp).sum(0) / dist2.sqrt()).clamp(min=0.0)
        lamp_col = _vec(light.lamp_color, dev)[:, None]
        direct = lamp_col * (ndl * lamp_vis / dist2.clamp(min=0.05))[None]
        irradiance = irradiance + direct
        half = to_lamp / dist2.sqrt()[None] - dn
        half = half / _length(half).clamp(min=1e-6)[None]
        nh = (normal * half).sum(0).clamp(min=0.0, max=1.0)
        specular = specular + direct * (spec_strength * nh.pow(shine))[None]
    illuminant = irradiance.mean(1) if irradiance.shape[1] else torch.ones(3, device=dev)
    radiance = albedo * irradiance + specular
    radiance = radiance + albedo * mat[15][None]  # emission
    x_axis, z_axis = rot[0], rot[2]  # world x and z in the camera frame
    sun_color = _vec(light.sun_color, dev)
    # Glossy surfaces mirror the sky at grazing angles (Schlick's Fresnel).
    reflective = torch.nonzero(mat[14] * gloss > 0).squeeze(1)
    if reflective.numel():
        nr = normal.index_select(1, reflective)
        dr = dn.index_select(1, reflective)
        cos_i = (-(nr * dr).sum(0)).clamp(0.0, 1.0)
        strength = (mat[14] * gloss).index_select(0, reflective)
        fresnel = (0.04 + 0.96 * (1.0 - cos_i) ** 5) * strength
        mirror = dr + 2.0 * cos_i[None] * nr
        env = textures.sky_radiance(mirror, sky, sun, sun_color, up, x_axis, z_axis)
        if scene.kind in ("indoor", "tabletop"):
            env = env * 0.3 + amb_sky * 0.7
        env = env * ao.index_select(0, reflective)[None]
        mixed = radiance.index_select(1, reflective) * (1.0 - fresnel) + env * fresnel
        radiance.index_copy_(1, reflective, mixed)
    # Mild haze: a fraction 1 - exp(-density * distance) of the haze colour.
    distance = t * d_len
    haze = (1.0 - torch.exp(-sky.haze_density * distance))[None]
    radiance = radiance + (_vec(sky.haze_color, dev)[:, None] - radiance) * haze
    image = torch.zeros(3, n, device=dev)
    image.index_copy_(1, idx, radiance)
    sky_rows = torch.nonzero(~valid).squeeze(1)
    if sky_rows.numel():
        sky_dirs = dirs.index_select(1, sky_rows)
        radiance = textures.sky_radiance(sky_dirs, sky, sun, sun_color, up, x_axis, z_axis)
        image.index_copy_(1, sky_rows, radiance)
    return image, illuminant


def _positions_image(p: Tensor, idx: Tensor, depth: Tensor) -> Tensor:
    """(3, H * W + 1) camera-frame points per pixel; sky (depth 0) and the extra last
    column (off-image lookups) sit far away, so they never occlude."""
    n = depth.numel()
    positions = torch.zeros(3, n + 1, device=p.device)
    positions.index_copy_(1, idx, p)
    positions[2, :n] = torch.where(depth > 0, positions[2, :n], 1e9)
    positions[2, n] = 1e9
    return positions


def _ssao(
    p: Tensor,
    normal: Tensor,
    idx: Tensor,
    positions: Tensor,
    camera: Camera,
    radius: float,
    strength: float,
    rows: Tensor,
    samples: int = 6,
) -> Tensor:
    """Screen-space ambient occlusion (r,) in [0, 1] (1 = open) of the hit points
    ``rows`` (indices into the m hit points ``p`` (3, m), ``normal`` (3, m), raster
    indices ``idx`` (m,); ``positions`` from ``_positions_image``).

    For each point, ``samples`` neighbours within ``radius`` metres (projected to pixels,
    rotated per pixel) are read back; a neighbour above the tangent plane and closer
    than the radius occludes (the normal-oriented variant of SSAO, after Bavoil &
    Sainz 2008).
    """
    height, width = camera.height, camera.width
    dev = p.device
    r = rows.numel()
    if r == 0:
        return torch.ones(0, device=dev)
    n = height * width
    pr, nr = p.index_select(1, rows), normal.index_select(1, rows)
    pix = idx.index_select(0, rows)
    u = (pix % width).float()
    v = torch.div(pix, width, rounding_mode="floor").float()
    r_px = (radius * camera.fx / pr[2].clamp(min=1e-3)).clamp(2.0, max(height, width) / 6.0)
    spin = _ign(u, v) * (2.0 * math.pi)
    # Sample k turns the per-pixel direction by 2πk/K: rotate (cos, sin) of the spin by
    # constants instead of calling the trigonometric functions K times.
    cs, sn = torch.cos(spin) * r_px, torch.sin(spin) * r_px
    occlusion = torch.zeros(r, device=dev)
    r2 = radius * radius
    for k in range(samples):
        a = 2.0 * math.pi * k / samples
        frac = math.sqrt(((k * 5) % samples + 0.5) / samples)
        ca, sa = math.cos(a) * frac, math.sin(a) * frac
        su = (u + cs * ca - sn * sa).round()
        sv = (v + sn * ca + cs * sa).round()
        inside = (su >= 0) & (su < width) & (sv >= 0) & (sv < height)
        j = torch.where(inside, sv * width + su, float(n)).long()
        vec = positions.index_select(1, j) - pr
        dist2 = (vec * vec).sum(0)
        cos = (nr * vec).sum(0) / dist2.sqrt().clamp(min=1e-6)
        falloff = (1.0 - dist2 / r2).clamp(min=0.0)
        occlusion = occlusion + (cos - 0.15).clamp(min=0.0) * falloff
    return (1.0 - strength * occlusion * (2.0 / samples)).clamp(0.0, 1.0)


def _joint_blur(
    values: Tensor, depth: Tensor, radius: int, weight: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Separable depth-aware Gaussian blur (a cross-bilateral filter) of (C, H, W)
    ``values`` guided by ``depth`` (H, W) metres (0 = invalid, never mixed in).

    ``weight`` (C, H, W) marks which values are samples (1) and which are unknown (0);
    unknown values are filled from the samples around them. Returns the blurred values
    and the accumulated sample weight (C, H, W) (near 0 where no sample was near).
    """
    sigma = radius / 2.0
    valid = (depth > 0).float()
    den = valid[None].expand_as(values) if weight is None else weight * valid[None]
    num = values * den
    inv_tol = 1.0 / (0.04 * depth.clamp(min=1e-3))
    channels = values.shape[0]
    for dim in (2, 1):
        size = values.shape[dim]
        pad = [0, 0, 0, 0]
        pad[0 if dim == 2 else 2] = radius
        pad[1 if dim == 2 else 3] = radius
        both = torch.nn.functional.pad(torch.cat([num, den])[None], pad)[0]
        dp = torch.nn.functional.pad(depth[None, None], pad, mode="replicate")[0, 0]
        acc = torch.cat([num, den])  # the centre tap, weight 1
        for o in range(-radius, radius + 1):
            if o == 0:
                continue
            sl = slice(radius + o, radius + o + size)
            bs = both[:, :, sl] if dim == 2 else both[:, sl, :]
            ds = dp[:, sl] if dim == 2 else dp[sl, :]
            rel = (ds - depth) * inv_tol
            w = math.exp(-(o * o) / (2 * sigma * sigma)) / (1.0 + rel * rel)
            acc.addcmul_(bs, w[None])
        num, den = acc[:channels], acc[channels:]
    return torch.where(den > 1e-6, num / den.clamp(min=1e-6), values), den


def _light_terms(
    prims: Primitives,
    light: Lighting,
    sun: Tensor | None,
    lamp: Tensor | None,
    up: Tensor,
    p: Tensor,
    normal: Tensor,
    t: Tensor,
    idx: Tensor,
    depth_img: Tensor,
    camera: Camera,
    timer: _Timer,
) -> tuple[Tensor, Tensor, Tensor]:
    """Soft visibility of the sun and of the lamp, and ambient occlusion, (m,) each in
    [0, 1], at the hit points ``p`` (3, m) (raster indices ``idx``).

    All three are computed on a 2 × 2 lattice (a quarter of the pixels): one jittered
    shadow ray per lattice pixel towards a random point of the light (the sun's disc,
    the lamp's disc) and one SSAO estimate; a single depth-aware blur turns them into
    soft, smooth terms at full resolution. Pixels with no lattice sample nearby (thin
    poles, chair legs) get their own ray and estimate.
    """
    height, width = depth_img.shape
    n = height * width
    dev = p.device
    jitter_all = _jitter(height, width, dev)
    column = idx % width
    row = torch.div(idx, width, rounding_mode="floor")
    lattice = (column % 2 == 0) & (row % 2 == 0)
    start_all = p + normal * (1e-3 + 2e-4 * t)[None]
    spread = math.tan(light.sun_angle)
    facing = [
        None if sun is None else normal.T @ sun > 0,
        None if lamp is None else (normal * (lamp[:, None] - p)).sum(0) > 0,
    ]

    def cast(which: int, rows: Tensor) -> Tensor:
        """Visibility (0/1) of light ``which`` (0 sun, 1 lamp) for hit points ``rows``."""
        jit = jitter_all.index_select(1, idx.index_select(0, rows))
        start = start_all.index_select(1, rows)
        if which == 0:
            assert sun is not None
            e1, e2 = _perp(sun)
            directions = sun[:, None] + spread * (e1[:, None] * jit[0] + e2[:, None] * jit[1])
            blocked = cast_shadow_rays(prims, start, directions, sun_dir=sun, sun_spread=spread)
        else:
            assert lamp is not None
            e1, e2 = _perp(up)
            disc = e1[:, None] * jit[0] + e2[:, None] * jit[1]
            targets = lamp[:, None] + light.lamp_radius * disc
            blocked = cast_shadow_rays(
                prims, start, targets, lamp=lamp, lamp_up=up, lamp_radius=light.lamp_radius
            )
        return (~blocked).float()

    positions = _positions_image(p, idx, depth_img.reshape(-1))

    def occlusion(rows: Tensor) -> Tensor:
        return _ssao(p, normal, idx, positions, camera, light.ao_radius, light.ao_strength, rows)

    # Channels: the lights present (sun, lamp), then occlusion; blurred together.
    lights = [which for which in (0, 1) if facing[which] is not None]
    count = len(lights) + 1
    values = torch.zeros(count, n, device=dev)
    weights = torch.zeros(count, n, device=dev)
    with timer("intersection"):
        for c, which in enumerate(lights):
            lit = facing[which]
            assert lit is not None
            rows = torch.nonzero(lit & lattice).squeeze(1)
            if rows.numel():
                where = idx.index_select(0, rows)
                values[c].index_copy_(0, where, cast(which, rows))
                weights[c].index_fill_(0, where, 1.0)
    with timer("shading"):
        rows = torch.nonzero(lattice).squeeze(1)
        where = idx.index_select(0, rows)
        values[-1].index_copy_(0, where, occlusion(rows))
        weights[-1].index_fill_(0, where, 1.0)
        blurred, got = _joint_blur(
            values.reshape(count, height, width),
            depth_img,
            3,
            weights.reshape(count, height, width),
        )
        terms = blurred.reshape(count, n).index_select(1, idx)
        got = got.reshape(count, n).index_select(1, idx)
        holes = torch.nonzero(got[-1] < 0.05).squeeze(1)
        if holes.numel():
            terms[-1].index_copy_(0, holes, occlusion(holes))
    out = [torch.zeros(idx.numel(), device=dev) for _ in range(2)]
    with timer("intersection"):
        for c, which in enumerate(lights):
            lit = facing[which]
            assert lit is not None
            holes = torch.nonzero(lit & (got[c] < 0.05)).squeeze(1)
            if holes.numel():
                terms[c].index_copy_(0, holes, cast(which, holes))
            out[which] = torch.where(lit, terms[c], 0.0)
    return out[0], out[1], terms[-1]


def _tone(image: Tensor, illuminant: Tensor, rng: np.random.Generator | None) -> Tensor:
    """Linear radiance (3, n) -> display sRGB in [0, 1]: auto exposure (log-average
    luminance, Reinhard et al. 2002), white balance towards the scene's ``illuminant``
    (3,) (mostly, as cameras do, so skylight does not tint every shadow blue), ACES
    filmic curve, gamma."""
    lum = 0.2126 * image[0] + 0.7152 * image[1] + 0.0722 * image[2]
    key = torch.exp(torch.log(lum.clamp(min=1e-4)).mean())
    if rng is not None:
        target = 0.2 * 2.0 ** rng.uniform(-0.6, 0.5)
        balance = 1.0 + rng.normal(0.0, 0.03, 3)
        saturation = float(rng.uniform(0.85, 1.15))
        awb = float(rng.uniform(0.6, 1.0))
    else:
        target, balance, saturation, awb = 0.2, np.ones(3), 1.0, 0.8
    light = illuminant.clamp(min=1e-6)
    gains = ((light.mean() / light) ** awb).clamp(0.6, 1.6)
    x = image * (target / key.clamp(min=1e-6))
    x = x * (gains * torch.as_tensor(balance, dtype=torch.float32, device=image.device))[:, None]
    # ACES filmic approximation (Krzysztof Narkowicz, 2015).
    x = (x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14)
    x = x.clamp(0.0, 1.0)
    grey = (0.2126 * x[0] + 0.7152 * x[1] + 0.0722 * x[2])[None]
    x = (grey + (x - grey) * saturation).clamp(0.0, 1.0)
    return x.pow(1.0 / 2.2)
