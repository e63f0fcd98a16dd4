"""Procedural textures and the sky, evaluated only at the pixels that need them.

Every pattern is a function of 2D texture coordinates in metres (taken in the hit
primitive's own frame, on the face its normal points along) and of a few material
parameters, so one tensor expression serves every material of a pattern at once.
Variation comes from a small tileable noise texture: four independent band-limited
noise channels (256² texels, generated once from a fixed seed) sampled at several
scales give fractal noise (fBm) with a single ``grid_sample`` call.

Patterns fade to their mean colour where a pixel covers more than about half a
period, a cheap stand-in for texture filtering that keeps small images free of moiré.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import torch
from torch import Tensor

from depthlens.synth.scene import Sky, Tex

__all__ = ["NOISE_CHANNELS", "albedo", "fbm", "hash2", "noise_texture", "sky_radiance"]

NOISE_CHANNELS = 4
_NOISE_SIZE = 256
_NOISE_SEED = 20240611  # fixed: the texture is part of the engine, not of a sample


@cache
def _noise_array() -> np.ndarray:
    """(4, 257, 257) float32 tileable noise in [0, 1], the last row/column repeating the
    first so bilinear lookups wrap. Band-limited to about 8 features per tile."""
    rng = np.random.default_rng(_NOISE_SEED)
    white = rng.standard_normal((NOISE_CHANNELS, _NOISE_SIZE, _NOISE_SIZE))
    freq = np.fft.fftfreq(_NOISE_SIZE) * _NOISE_SIZE
    radius = np.hypot(freq[:, None], freq[None, :])
    # A smooth band around 8 cycles per tile, like one octave of gradient noise.
    envelope = np.exp(-(((radius - 8.0) / 4.0) ** 2)) + 0.5 * np.exp(-((radius / 5.0) ** 2))
    envelope[0, 0] = 0.0
    noise = np.real(np.fft.ifft2(np.fft.fft2(white) * envelope))
    noise /= noise.std(axis=(1, 2), keepdims=True) * 6.0
    noise = np.clip(noise + 0.5, 0.0, 1.0)
    padded = np.concatenate([noise, noise[:, :1]], axis=1)
    padded = np.concatenate([padded, padded[:, :, :1]], axis=2)
    return padded.astype(np.float32)


_DEVICE_NOISE: dict[str, Tensor] = {}


def noise_texture(device: torch.device) -> Tensor:
    """The (1, 4, 257, 257) noise texture on ``device`` (cached)."""
    key = str(device)
    if key not in _DEVICE_NOISE:
        _DEVICE_NOISE[key] = torch.from_numpy(_noise_array())[None].to(device)
    return _DEVICE_NOISE[key]


def fbm(u: Tensor, v: Tensor, octaves: int = 3, gain: float = 0.5) -> Tensor:
    """Fractal noise (4, N) in about [0, 1] at coordinates ``u``, ``v`` (N,) in noise
    periods (about 8 features per unit); the 4 channels are independent."""
    tex = noise_texture(u.device)
    # Octave k reads the texture at 2^k times the frequency; the offsets decorrelate the
    # octaves (they all read the same texture). Coordinates wrap: the texture tiles.
    freq = torch.tensor([2.0**k for k in range(octaves)], device=u.device)[:, None, None]
    shift = torch.tensor([[0.371 * k, 0.619 * k] for k in range(octaves)], device=u.device)
    coords = torch.stack([u, v], -1)[None] * freq + shift[:, None, :]
    grid = (coords - torch.floor(coords))[None] * 2.0 - 1.0  # (1, octaves, N, 2)
    samples = torch.nn.functional.grid_sample(
        tex, grid, mode="bilinear", padding_mode="border", align_corners=True
    )[0]  # (4, octaves, N)
    weights = torch.tensor([gain**k for k in range(octaves)], device=u.device)
    return (samples * (weights / weights.sum())[None, :, None]).sum(1)


def hash2(i: Tensor, j: Tensor, salt: int = 0) -> Tensor:
    """A deterministic pseudo-random value in [0, 1) per integer cell (i, j) (int64)."""
    h = (i * 92837111) ^ (j * 689287499) ^ (salt * 283923481)
    h = h & 0xFFFFFFF
    h = (h * 1274126177) & 0x7FFFFFFF
    h = h ^ (h >> 15)
    h = (h * 2246822519) & 0x7FFFFFFF
    h = h ^ (h >> 13)
    return (h & 0xFFFF).to(torch.float32) / 65536.0


def _smoothstep(e0: float | Tensor, e1: float | Tensor, x: Tensor) -> Tensor:
    t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _mix(a: Tensor, b: Tensor, w: Tensor) -> Tensor:
    """a (3, N) -> b (3, N) by w (N,)."""
    return a + (b - a) * w[None]


def _fade(pattern: Tensor, mean: float | Tensor, footprint: Tensor, period: Tensor) -> Tensor:
    """Blend a pattern to its mean where a pixel spans more than ~half its period."""
    keep = (1.0 - footprint / (0.35 * period)).clamp(0.0, 1.0)
    return mean + (pattern - mean) * keep


def albedo(
    mat: Tensor,
    u: Tensor,
    v: Tensor,
    footprint: Tensor,
    world_y: Tensor,
    up: Tensor,
    top: Tensor,
) -> tuple[Tensor, Tensor]:
    """Surface colour of N hit points.

    ``mat`` (16, N) material rows (see ``scene.MATERIAL_FIELDS``) per point; ``u``,
    ``v`` (N,) texture coordinates in metres (v up the face on vertical faces);
    ``footprint`` (N,) metres one pixel spans on the surface; ``world_y`` (N,) height in
    metres; ``up`` (N,) the normal's world-up component; ``top`` (N,) bool, True on faces
    whose local normal is the local y axis (roofs, table tops).
    Returns (linear RGB albedo (3, N) in [0, 1], gloss (N,) scaling specular and
    reflection: 1 by default, 0 on matte parts of mixed materials such as facades).
    """
    n = u.shape[0]
    a, b = mat[1:4], mat[4:7]
    scale = mat[7].clamp(min=1e-4)
    p1, p2 = mat[11], mat[12]
    nscale = mat[13].clamp(min=1e-4)
    variation = fbm(u / nscale, v / nscale, 2)  # (4, N)
    out = a.clone()
    gloss = torch.ones(n, device=u.device)
    tex = mat[0].round().long()
    present = torch.unique(tex).tolist()
    for kind in present:
        idx = torch.nonzero(tex == kind).squeeze(1)
        args = (
            a.index_select(1, idx),
            b.index_select(1, idx),
            u.index_select(0, idx),
            v.index_select(0, idx),
            scale.index_select(0, idx),
            p1.index_select(0, idx),
            p2.index_select(0, idx),
        )
        fp = footprint.index_select(0, idx)
        var = variation.index_select(1, idx)
        if kind == Tex.FLAT:
            col = args[0]
        elif kind == Tex.NOISE:
            col = _mix(args[0], args[1], _smoothstep(0.25, 0.75, var[1]))
        elif kind == Tex.WOOD:
            col = _wood(*args, fp)
        elif kind == Tex.BRICK:
            col = _brick(*args, fp)
        elif kind == Tex.TILES:
            col = _tiles(*args, fp)
        elif kind == Tex.STRIPES:
            stripes = _fade(_stripes(args[2], args[4], args[5]), args[5], fp, args[4])
            col = _mix(args[1], args[0], stripes)
        elif kind == Tex.CHECKER:
            cell = torch.floor(args[2] / args[4]) + torch.floor(args[3] / args[4])
            parity = (cell - 2.0 * torch.floor(cell / 2.0)).float()
            col = _mix(args[0], args[1], _fade(parity, 0.5, fp, 2.0 * args[4]))
        elif kind == Tex.GRADIENT:
            col = _mix(args[1], args[0], (args[3] / args[4] + 0.5).clamp(0.0, 1.0))
        elif kind == Tex.FACADE:
            col, g = _facade(*args, fp, top.index_select(0, idx))
            gloss.index_copy_(0, idx, g)
        elif kind == Tex.ROAD:
            col = _road(*args, fp, var)
        elif kind == Tex.TERRAIN:
            col = _terrain(
                args[0],
                args[1],
                world_y.index_select(0, idx),
                up.index_select(0, idx),
                args[5],
                args[6],
                var,
            )
        elif kind == Tex.FOLIAGE:
            fine = fbm(args[2] / args[4], args[3] / args[4], 2)
            # Leaf clusters (bright) over gaps (dark), with patches of colour change.
            leaf = _fade(_smoothstep(0.38, 0.62, fine[0]), 0.55, fp, args[4] * 0.12)
            tint = 0.75 + 0.5 * fine[2]
            col = _mix(args[1], args[0], leaf) * tint[None]
        elif kind == Tex.WATER:
            col = args[0] * (0.85 + 0.3 * var[2])[None]
        elif kind == Tex.FABRIC:
            su = _stripes(args[2], args[4], args[5])
            sv = _stripes(args[3], args[4] * 1.3, args[5])
            w = _fade(0.5 * (su + sv), args[5], fp, args[4])
            col = _mix(args[0], args[1], w.clamp(0.0, 1.0))
        elif kind == Tex.MARBLE:
            warp = fbm(args[2] / args[4], args[3] / args[4], 3)[3]
            vein = (torch.sin((args[2] + args[3] * 0.6) / args[4] * 6.0 + warp * 9.0)).abs()
            col = _mix(args[1], args[0], _fade(_smoothstep(0.0, 0.25, vein), 0.8, fp, args[4]))
        else:
            col = args[0]
        out.index_copy_(1, idx, col)
    # Multiplicative variation (dirt, paint, wear) on everything.
    strength = mat[8]
    out = out * (1.0 + strength * (variation[0] - 0.5) * 1.6)[None]
    return out.clamp(0.0, 1.0), gloss


def _stripes(u: Tensor, period: Tensor, duty: Tensor) -> Tensor:
    f = u / period
    return ((f - torch.floor(f)) < duty).float()


def _wood(
    a: Tensor, b: Tensor, u: Tensor, v: Tensor, scale: Tensor, p1: Tensor, p2: Tensor, fp: Tensor
) -> Tensor:
    # Planks p2 wide along u, 8 widths long, each with its own shade and end offset.
    row = torch.floor(v / p2)
    shade = hash2(row.long(), torch.zeros_like(row).long(), 7)
    length = p2 * 8.0
    along = u + shade * length
    col_idx = torch.floor(along / length)
    plank = hash2(row.long(), col_idx.long(), 11)
    # Grain: noise stretched 20x along the planks, banded into growth rings.
    grain = fbm(along / scale * 0.2 + plank * 5.0, v / scale * 4.0, 2)
    rings = torch.sin((grain[1] * 6.0 + plank * 3.0) * math.pi * scale.clamp(max=1.0) * 4.0)
    pattern = _fade(0.5 + 0.5 * rings, 0.5, fp, scale * 0.1)
    col = _mix(a, b, pattern * 0.7 + grain[2] * 0.3) * (0.8 + 0.35 * plank)[None]
    fv = v / p2 - row
    fu = along / length - col_idx
    seam_v = torch.minimum(fv, 1.0 - fv) * p2
    seam_u = torch.minimum(fu, 1.0 - fu) * length
    seam = ((seam_v < 0.003) | (seam_u < 0.003)).float()
    seam = _fade(seam, 0.03, fp, p2 * 0.5)
    return col * (1.0 - 0.55 * seam)[None]


def _brick(
    a: Tensor, b: Tensor, u: Tensor, v: Tensor, scale: Tensor, p1: Tensor, p2: Tensor, fp: Tensor
) -> Tensor:
    bw, bh, mortar = scale, scale * p1, p2
    row = torch.floor(v / bh)
    odd = row - 2.0 * torch.floor(row / 2.0)
    uu = u + 0.5 * bw * odd
    col = torch.floor(uu / bw)
    fu = uu - col * bw
    fv = v - row * bh
    is_mortar = ((fu < mortar) | (fv < mortar)).float()
    is_mortar = _fade(is_mortar, (mortar / bw + mortar / bh).clamp(max=1.0), fp, bh)
    ri, ci = row.long(), col.long()
    tone = 0.72 + 0.5 * hash2(ri, ci, 3)
    tint = torch.stack([hash2(ri, ci, 5), hash2(ri, ci, 9), hash2(ri, ci, 13)]) - 0.5
    brick = a * tone[None] * (1.0 + 0.12 * tint)
    brick = _mix(a, brick, _fade(torch.ones_like(fp), 0.0, fp, bh * 2.0))
    return _mix(brick, b, is_mortar)


def _tiles(
    a: Tensor, b: Tensor, u: Tensor, v: Tensor, scale: Tensor, p1: Tensor, p2: Tensor, fp: Tensor
) -> Tensor:
    cu, cv = torch.floor(u / scale), torch.floor(v / scale)
    fu, fv = u - cu * scale, v - cv * scale
    grout = ((fu < p2) | (fv < p2)).float()
    grout = _fade(grout, (2.0 * p2 / scale).clamp(max=1.0), fp, scale)
    tone = 0.9 + 0.2 * hash2(cu.long(), cv.long(), 17)
    # p1 > 0.5 alternates two colours like a checkerboard floor.
    parity = cu + cv - 2.0 * torch.floor((cu + cv) / 2.0)
    alt = _fade(parity * (p1 > 0.5).float(), 0.5 * (p1 > 0.5).float(), fp, scale * 2.0)
    tile = _mix(a, a * 0.45 + b * 0.1, alt) * tone[None]
    return _mix(tile, b, grout)


def _facade(
    a: Tensor,
    b: Tensor,
    u: Tensor,
    v: Tensor,
    scale: Tensor,
    p1: Tensor,
    p2: Tensor,
    fp: Tensor,
    top: Tensor,
) -> tuple[Tensor, Tensor]:
    # Windows on a grid: ``scale`` metres apart, floors ``p1`` metres high, ``p2`` of the
    # bay wide. The ground floor (v < p1) has wide shop windows.
    fu_all = u / scale
    col = torch.floor(fu_all)
    fu = fu_all - col
    fv_all = v / p1
    row = torch.floor(fv_all)
    fv = fv_all - row
    ground = row < 1.0
    half_w = torch.where(ground, 0.42, p2 * 0.5)
    v_lo = torch.where(ground, 0.05, 0.3)
    v_hi = torch.where(ground, 0.8, 0.82)
    dx = half_w - (fu - 0.5).abs()
    dy = torch.minimum(fv - v_lo, v_hi - fv)
    window = (dx > 0) & (dy > 0)
    frame = window & ((dx * scale < 0.06) | (dy * p1 < 0.06))
    glass = window & ~frame
    lit = hash2(col.long(), row.long(), 21)
    pane = b * (0.35 + 1.1 * lit * lit)[None]
    # Curtains or blinds behind some windows: a lighter band at the top.
    blind = (hash2(col.long(), row.long(), 23) > 0.6) & (fv > v_hi - (v_hi - v_lo) * 0.35)
    pane = torch.where(blind[None], a * 0.9, pane)
    sill = ~window & (fv < v_lo) & (fv > v_lo - 0.05) & (dx > -0.05)
    wall = a * torch.where(sill, 0.75, 1.0)[None]
    colour = torch.where(glass[None], pane, torch.where(frame[None], a * 1.15 + 0.05, wall))
    mean_w = (2.0 * half_w * (v_hi - v_lo)).clamp(0.0, 1.0)
    keep = (1.0 - fp / (0.35 * scale)).clamp(0.0, 1.0)
    colour = _mix(a * (1.0 - mean_w)[None] + b * (mean_w * 0.7)[None], colour, keep)
    colour = torch.where(top[None], a * 0.55, colour)
    gloss = (glass & ~top).float() * keep + (1.0 - keep) * mean_w * 0.5
    return colour, gloss


def _road(
    a: Tensor,
    b: Tensor,
    u: Tensor,
    v: Tensor,
    scale: Tensor,
    p1: Tensor,
    p2: Tensor,
    fp: Tensor,
    var: Tensor,
) -> Tensor:
    # u across the road (0 at the centre line), v along; p1 = half width of the road.
    au = u.abs()
    dash = ((v / 9.0) - torch.floor(v / 9.0)) < 0.4
    centre = (au < 0.07) & dash & (p2 > 0.5)
    edge = (au > p1 - 0.45) & (au < p1 - 0.3)
    mark = _fade((centre | edge).float(), 0.05, fp, torch.full_like(fp, 0.3))
    # Darker wheel tracks and patched asphalt.
    track = 1.0 - 0.12 * torch.exp(-(((au - p1 * 0.5) / 0.5) ** 2))
    patch = 1.0 - 0.15 * _smoothstep(0.6, 0.65, var[3])
    asphalt = a * (track * patch * (0.85 + 0.3 * var[2]))[None]
    return _mix(asphalt, b, mark * (0.75 + 0.25 * var[1]))


def _terrain(
    a: Tensor, b: Tensor, y: Tensor, up: Tensor, snow: Tensor, water: Tensor, var: Tensor
) -> Tensor:
    # Grass (a) on gentle slopes, rock (b) on steep ones, dry patches, sand near the
    # water line (p2) and snow above p1 metres.
    rock = _smoothstep(0.82, 0.68, up + (var[1] - 0.5) * 0.25)
    dry = _smoothstep(0.55, 0.8, var[2])
    grass = _mix(a, a * torch.tensor([1.25, 1.05, 0.6], device=a.device)[:, None] + 0.02, dry)
    col = _mix(grass, b, rock)
    sand = _smoothstep(1.2, 0.3, y - water)
    col = _mix(col, torch.tensor([0.45, 0.38, 0.26], device=a.device)[:, None], sand)
    snowy = _smoothstep(0.0, 40.0, y - snow + (var[3] - 0.5) * 60.0) * _smoothstep(0.5, 0.8, up)
    return _mix(col, torch.full_like(col, 0.85), snowy)


def sky_radiance(
    directions: Tensor,
    sky: Sky,
    sun_dir: Tensor | None,
    sun_color: Tensor,
    up: Tensor,
    x_axis: Tensor,
    z_axis: Tensor,
) -> Tensor:
    """Linear sky radiance (3, N) seen along ``directions`` (3, N) (camera frame).

    ``up``, ``x_axis``, ``z_axis`` (3,) are the world axes in the camera frame (for the
    elevation and the cloud layer); ``sun_dir`` (3,) camera frame, or None indoors.
    """
    device = directions.device
    d = directions * torch.rsqrt((directions * directions).sum(0, keepdim=True))
    e = up @ d
    zenith = torch.as_tensor(sky.zenith, dtype=torch.float32, device=device)[:, None]
    horizon = torch.as_tensor(sky.horizon, dtype=torch.float32, device=device)[:, None]
    ground = torch.as_tensor(sky.ground, dtype=torch.float32, device=device)[:, None]
    above = e.clamp(min=0.0)
    col = horizon + (zenith - horizon) * (above.sqrt() * (2.0 - above.sqrt()))[None]
    below = horizon + (ground - horizon) * (-e * 4.0).clamp(0, 1)[None]
    col = torch.where(e[None] < 0, below, col)
    if sky.cloud_cover > 0:
        lift = (e + 0.06).clamp(min=0.02)
        cu = (x_axis @ d) / lift * sky.cloud_scale
        cv = (z_axis @ d) / lift * sky.cloud_scale
        clouds = fbm(cu, cv, 3, 0.55)
        cover = _smoothstep(1.0 - sky.cloud_cover, 1.0 - sky.cloud_cover + 0.3, clouds[0])
        cover = cover * _smoothstep(0.0, 0.12, e)
        cloud_col = torch.as_tensor(sky.cloud_color, dtype=torch.float32, device=device)
        shade = 0.7 + 0.5 * clouds[1]
        col = col + (cloud_col[:, None] * shade[None] - col) * cover[None]
    if sun_dir is not None and sky.sun_glow > 0:
        c = (sun_dir @ d).clamp(-1.0, 1.0)
        glow = 0.35 * torch.exp((c - 1.0) * 40.0) + 0.12 * torch.exp((c - 1.0) * 5.0)
        disc = (c > math.cos(0.012)).float() * 8.0
        col = col + sun_color[:, None] * ((glow * sky.sun_glow + disc) * (e > -0.02).float())[None]
    return col
