"""Scene layouts: plausible rooms, streets, landscapes and tabletops from a seed.

Each builder draws a whole scene (geometry, materials, lights, sky, camera pose) from
one ``numpy.random.Generator``. Layouts follow how such places are arranged: furniture
stands against walls and around tables, clear of doorways; cars park along kerbs and
drive in lanes; trees grow on gentle slopes above the water line; objects on a table
cluster where the camera looks. The camera is placed first and kept out of every
object, at heights, pitches and fields of view people actually shoot with.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from depthlens.synth import objects as obj
from depthlens.synth.scene import (
    SHADOW_ALL,
    SHADOW_SUN,
    CameraPose,
    Heightfield,
    Lighting,
    Scene,
    SceneBuilder,
    Sky,
    Tex,
    look_rotation,
    rot_y,
    srgb_to_linear,
)

__all__ = ["BUILDERS", "indoor", "landscape", "street", "tabletop", "thin_structures"]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A uniform draw from [lo, hi] (lo itself when the range is empty)."""
    return float(rng.uniform(lo, hi)) if hi > lo else lo


# --------------------------------------------------------------------------- sky, lights


def _outdoor_light(
    rng: np.random.Generator,
    overcast: bool,
    sun_elev: float | None = None,
    sun_azimuth: float | None = None,
) -> tuple[Lighting, Sky]:
    """Sunlight and sky for an outdoor (or window-lit) scene."""
    elev = math.radians(_u(rng, 12, 70)) if sun_elev is None else sun_elev
    azim = _u(rng, 0, 2 * math.pi) if sun_azimuth is None else sun_azimuth
    sun_dir = np.array(
        [math.cos(elev) * math.sin(azim), math.sin(elev), math.cos(elev) * math.cos(azim)]
    )
    # Low sun is warmer and weaker (longer path through the air).
    warm = float(np.clip(1.0 - (math.degrees(elev) - 10) / 40, 0.0, 1.0))
    tint = np.array([1.0, 0.96 - 0.12 * warm, 0.9 - 0.3 * warm])
    strength = _u(rng, 2.6, 3.6) * (0.55 + 0.45 * min(1.0, math.sin(elev) * 2))
    zenith = srgb_to_linear(obj.jitter(rng, (0.32, 0.52, 0.85), 0.08))
    horizon = srgb_to_linear(obj.jitter(rng, (0.72, 0.8, 0.9), 0.04))
    if overcast:
        grey = _u(rng, 0.6, 0.8)
        zenith = srgb_to_linear((grey, grey + 0.01, grey + 0.03))
        horizon = srgb_to_linear((grey + 0.1, grey + 0.1, grey + 0.11))
        strength *= _u(rng, 0.08, 0.3)
    sky_gain = 2.2
    lighting = Lighting(
        sun_dir=sun_dir,
        sun_color=tint * strength,
        # The sun's disc is 0.27° in radius; a little more stands in for skylight softening.
        sun_angle=math.radians(_u(rng, 0.27, 0.7) if not overcast else _u(rng, 3.0, 6.0)),
        # Skylight, less saturated than the zenith (it comes from the whole sky dome).
        ambient_sky=(zenith * 0.5 + horizon * 0.5) * sky_gain * 0.45 + 0.05,
        ambient_ground=np.array([0.35, 0.32, 0.28]) * strength * 0.08,
        ao_radius=0.8,
        ao_strength=0.9,
    )
    haze = horizon * sky_gain * 0.95
    sky = Sky(
        zenith=zenith * sky_gain,
        horizon=horizon * sky_gain,
        ground=haze * 0.9,
        cloud_cover=_u(rng, 0.0, 0.6) if not overcast else _u(rng, 0.7, 1.0),
        cloud_color=np.array([1.0, 1.0, 1.0]) * sky_gain * (0.9 if not overcast else 0.7),
        cloud_scale=_u(rng, 0.15, 0.5),
        haze_color=haze,
        haze_density=0.0,
        sun_glow=0.0 if overcast else 1.0,
    )
    return lighting, sky


def _with_haze(sky: Sky, density: float) -> Sky:
    return Sky(
        sky.zenith,
        sky.horizon,
        sky.ground,
        sky.cloud_cover,
        sky.cloud_color,
        sky.cloud_scale,
        sky.haze_color,
        density,
        sky.sun_glow,
    )


def _pose(
    rng: np.random.Generator,
    position: tuple[float, float, float],
    yaw: float,
    pitch: float,
    hfov: float,
) -> CameraPose:
    roll = float(rng.normal(0, math.radians(1.5)))
    if rng.random() < 0.1:
        roll += float(rng.normal(0, math.radians(5)))
    return CameraPose(
        rotation=look_rotation(yaw, pitch, roll),
        position=np.asarray(position, dtype=np.float64),
        hfov_deg=hfov,
        principal_offset=(float(rng.normal(0, 0.015)), float(rng.normal(0, 0.015))),
    )


# --------------------------------------------------------------------------- rooms


@dataclass
class _Room:
    """A rectangular room over x in [-w/2, w/2], z in [0, d], floor y = 0, ceiling h."""

    w: float
    d: float
    h: float
    # per wall: list of openings (u0, u1, v0, v1) along the wall's own axis
    openings: dict[str, list[tuple[float, float, float, float]]] = field(default_factory=dict)
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)  # x0 x1 z0 z1
    windows: list[str] = field(default_factory=list)

    def frame(self, wall: str) -> tuple[float, float, float, float]:
        """(x, z) of the wall's start corner and its yaw (local x along, z inward), length."""
        if wall == "back":
            return self.w / 2, self.d, math.pi, self.w
        if wall == "front":
            return -self.w / 2, 0.0, 0.0, self.w
        if wall == "left":
            return -self.w / 2, self.d, math.pi / 2, self.d
        return self.w / 2, 0.0, -math.pi / 2, self.d

    def free(self, x0: float, x1: float, z0: float, z1: float, margin: float = 0.05) -> bool:
        """Whether the footprint lies inside the room and clear of placed things."""
        if x0 < -self.w / 2 or x1 > self.w / 2 or z0 < 0 or z1 > self.d:
            return False
        return all(
            x1 + margin <= a0 or x0 - margin >= a1 or z1 + margin <= c0 or z0 - margin >= c1
            for a0, a1, c0, c1 in self.boxes
        )


_WALLS = ("back", "left", "right", "front")


def _wall_point(room: _Room, wall: str, u: float, inset: float) -> tuple[float, float, float]:
    """(x, z, yaw) at distance u along ``wall`` and ``inset`` metres into the room."""
    x0, z0, yaw, _ = room.frame(wall)
    ax, az = math.cos(yaw), -math.sin(yaw)  # local x
    nx, nz = math.sin(yaw), math.cos(yaw)  # local z (inward)
    return x0 + ax * u + nx * inset, z0 + az * u + nz * inset, yaw


def _build_room(
    b: SceneBuilder, rng: np.random.Generator, room: _Room, sunny: bool, annex: bool = True
) -> None:
    """Floor, ceiling, walls with a door and windows, their frames, and what lies beyond."""
    floor_kind = rng.random()
    if floor_kind < 0.45:
        floor = obj.wood(b, rng, planks=_u(rng, 0.1, 0.25))
    elif floor_kind < 0.7:
        a = obj.color(rng, [*obj.WALL_PAINTS, (0.6, 0.58, 0.55), (0.3, 0.3, 0.3)])
        floor = b.material(
            Tex.TILES,
            a,
            obj.jitter(rng, (0.6, 0.6, 0.58)),
            scale=_u(rng, 0.3, 0.8),
            param1=1.0 if rng.random() < 0.2 else 0.0,
            param2=0.004,
            noise=0.1,
            spec=0.3,
            shine=60.0,
            reflect=0.15,
        )
    elif floor_kind < 0.85:
        a = obj.color(rng, obj.FABRICS)
        floor = b.material(
            Tex.NOISE,
            a,
            obj.jitter(rng, tuple(c * 0.8 for c in a)),
            noise=0.1,
            noise_scale=0.2,
            spec=0.0,
        )
    else:
        floor = b.material(
            Tex.MARBLE,
            obj.color(rng, [(0.9, 0.9, 0.88), (0.3, 0.3, 0.32)]),
            obj.color(rng, [(0.55, 0.55, 0.55), (0.75, 0.7, 0.65)]),
            scale=_u(rng, 0.3, 1.0),
            noise=0.05,
            spec=0.4,
            shine=80.0,
            reflect=0.2,
        )
    wall_mat = obj.paint(b, rng)
    accent = wall_mat
    if rng.random() < 0.3:
        if rng.random() < 0.5:
            accent = b.material(
                Tex.BRICK,
                obj.color(rng, [*obj.FACADES[:2], (0.85, 0.85, 0.82)]),
                (0.7, 0.68, 0.64),
                scale=0.23,
                param1=0.33,
                param2=0.01,
                noise=0.15,
                noise_scale=2.0,
            )
        else:
            accent = b.material(
                Tex.STRIPES,
                obj.color(rng, obj.WALL_PAINTS),
                obj.color(rng, obj.WALL_PAINTS),
                scale=_u(rng, 0.05, 0.3),
                param1=0.5,
                noise=0.1,
            )
    ceiling = b.material(Tex.FLAT, obj.jitter(rng, (0.93, 0.93, 0.91), 0.03), noise=0.05)
    w, d, h = room.w, room.d, room.h
    t = 0.15
    sunny_mask = SHADOW_SUN if sunny else 0  # the room's own shell never shades its lamp
    b.box((0.0, -0.05, d / 2), (w / 2 + t, 0.05, d / 2 + t), floor, shadow=False)
    b.box((0.0, h + 0.05, d / 2), (w / 2 + t, 0.05, d / 2 + t), ceiling, shadow=sunny_mask)
    skirting = b.material(Tex.FLAT, obj.jitter(rng, (0.9, 0.9, 0.88)), noise=0.05)
    accent_wall = _WALLS[int(rng.integers(3))]
    for wall in _WALLS:
        x0, z0, yaw, length = room.frame(wall)
        pl = obj.Placer(b, x0, z0, yaw)
        mat = accent if wall == accent_wall else wall_mat
        holes = sorted(room.openings.get(wall, []))
        u = -t
        for u0, u1, v0, v1 in holes:
            if u0 > u:
                pl.box((u + u0) / 2, 0, -t / 2, (u0 - u) / 2, h / 2, t / 2, mat, shadow=sunny_mask)
            if v0 > 0:
                pl.box(
                    (u0 + u1) / 2, 0, -t / 2, (u1 - u0) / 2, v0 / 2, t / 2, mat, shadow=sunny_mask
                )
            pl.box(
                (u0 + u1) / 2,
                v1,
                -t / 2,
                (u1 - u0) / 2,
                (h - v1) / 2,
                t / 2,
                mat,
                shadow=sunny_mask,
            )
            u = u1
        pl.box(
            (u + length + t) / 2,
            0,
            -t / 2,
            (length + t - u) / 2,
            h / 2,
            t / 2,
            mat,
            shadow=sunny_mask,
        )
        # Skirting boards between the openings that reach the floor.
        u = 0.0
        for u0, u1, v0, _ in [*holes, (length, length, 0.0, 0.0)]:
            if v0 <= 0.01 and u0 - u > 0.05:
                pl.box((u + u0) / 2, 0, 0.006, (u0 - u) / 2, 0.04, 0.006, skirting, shadow=False)
            if v0 <= 0.01:
                u = u1
        for u0, u1, v0, v1 in holes:
            _frame_opening(b, rng, pl, u0, u1, v0, v1, t, h, room, wall, annex)


def _frame_opening(
    b: SceneBuilder,
    rng: np.random.Generator,
    pl: obj.Placer,
    u0: float,
    u1: float,
    v0: float,
    v1: float,
    t: float,
    h: float,
    room: _Room,
    wall: str,
    annex: bool,
) -> None:
    """Casing, door leaf or window frame for one opening, and what is seen through it."""
    uc, hw = (u0 + u1) / 2, (u1 - u0) / 2
    trim = b.material(
        Tex.FLAT,
        obj.color(rng, [(0.95, 0.95, 0.93), (0.5, 0.38, 0.25), (0.2, 0.2, 0.2)], 0.03),
        noise=0.05,
        spec=0.2,
    )
    if v0 <= 0.01:  # a door
        for side in (-1, 1):
            pl.box(uc + side * (hw + 0.03), 0, 0.01, 0.035, v1 / 2, 0.012, trim, shadow=SHADOW_SUN)
        pl.box(uc, v1, 0.01, hw + 0.065, 0.035, 0.012, trim, shadow=SHADOW_SUN)
        leaf = obj.wood(b, rng) if rng.random() < 0.5 else obj.paint(b, rng)
        if not annex or rng.random() < 0.35:  # closed
            pl.box(uc, 0.005, -t / 2, hw - 0.005, (v1 - 0.01) / 2, 0.02, leaf)
            pl.sphere(uc + hw * 0.75, 1.0, 0.05, 0.025, obj.metal(b, rng))
            return
        angle = _u(rng, 0.4, 1.5)
        hinge = pl.at(u0, 0, 0.0)
        local_yaw = pl.yaw
        rot = rot_y(local_yaw + angle)
        center = hinge + rot @ np.array([hw, v1 / 2, 0.02])
        b.box(center, (hw, v1 / 2 - 0.005, 0.02), leaf, rot)
        # A corridor or next room behind the door.
        depth = _u(rng, 1.5, 4.0)
        reach = _u(rng, 1.0, 2.5)
        other = obj.paint(b, rng)
        floor = b.material(Tex.NOISE, obj.color(rng, obj.WOODS + obj.WALL_PAINTS), noise=0.1)
        pl.box(uc, -0.1, -t - depth / 2, reach + 0.2, 0.05, depth / 2 + 0.01, floor, shadow=False)
        pl.box(uc, h, -t - depth / 2, reach + 0.2, 0.05, depth / 2 + 0.01, other, shadow=False)
        pl.box(uc, 0, -t - depth - 0.1, reach + 0.2, h / 2, 0.1, other, shadow=False)
        for sgn in (-1, 1):
            pl.box(
                uc + sgn * (reach + 0.1),
                0,
                -t - depth / 2,
                0.1,
                h / 2,
                depth / 2,
                other,
                shadow=False,
            )
        if rng.random() < 0.5:
            obj.cabinet(
                pl.sub(uc + _u(rng, -reach, reach) * 0.5, -t - depth + 0.3),
                rng,
                _u(rng, 0.6, 1.2),
                _u(rng, 0.8, 1.2),
            )
        return
    # A window: casing, sill, frame and mullions (no glass: the view goes through).
    frame_mat = trim
    pl.box(uc, v0 - 0.04, 0.04, hw + 0.06, 0.02, 0.06, frame_mat, shadow=SHADOW_SUN)
    depth_in = -t / 2
    bar = 0.025
    for side in (-1, 1):
        pl.box(
            uc + side * (hw - bar),
            v0,
            depth_in,
            bar,
            (v1 - v0) / 2,
            0.03,
            frame_mat,
            shadow=SHADOW_SUN,
        )
    pl.box(uc, v0, depth_in, hw, bar, 0.03, frame_mat, shadow=SHADOW_SUN)
    pl.box(uc, v1 - 2 * bar, depth_in, hw, bar, 0.03, frame_mat, shadow=SHADOW_SUN)
    panes = max(1, round(2 * hw / _u(rng, 0.5, 0.9)))
    for k in range(1, panes):
        pl.box(
            u0 + 2 * hw * k / panes,
            v0,
            depth_in,
            bar * 0.8,
            (v1 - v0) / 2,
            0.025,
            frame_mat,
            shadow=SHADOW_SUN,
        )
    if rng.random() < 0.5:
        pl.box(
            uc, v0 + (v1 - v0) * 0.62, depth_in, hw, bar * 0.8, 0.025, frame_mat, shadow=SHADOW_SUN
        )
    if rng.random() < 0.55:  # curtains
        cloth = obj.fabric(b, rng)
        drop = h - 0.05 if rng.random() < 0.6 else v1 + 0.1
        for side in (-1, 1):
            cw = _u(rng, 0.15, 0.4)
            pl.box(
                uc + side * (hw + cw * 0.6),
                h - drop,
                0.12,
                cw,
                (drop - 0.05) / 2,
                0.03,
                cloth,
                shadow=SHADOW_SUN,
            )
        pl.box(uc, h - 0.12, 0.14, hw + 0.6, 0.012, 0.012, obj.metal(b, rng))


def _outside(b: SceneBuilder, rng: np.random.Generator, room: _Room, ground_y: float) -> None:
    """What windows look out on: the ground below, and buildings and trees nearby."""
    grass = b.material(
        Tex.NOISE,
        obj.color(rng, [(0.35, 0.45, 0.2), (0.45, 0.45, 0.4)]),
        obj.jitter(rng, (0.3, 0.32, 0.2)),
        noise=0.2,
        noise_scale=4.0,
    )
    b.ground_plane(ground_y, grass)
    b.shadow_filter = SHADOW_SUN
    for wall in room.windows:
        x0, z0, yaw, length = room.frame(wall)
        pl = obj.Placer(b, x0, z0, yaw)
        for _ in range(int(rng.integers(1, 4))):
            dist = _u(rng, 12, 45)
            u = _u(rng, -20, length + 20)
            p = pl.at(u, 0, -dist)
            if rng.random() < 0.5:
                obj.tree(b, rng, float(p[0]), float(p[2]), ground_y)
            else:
                size = _u(rng, 8, 20)
                obj.building(
                    b,
                    rng,
                    float(p[0]) - size / 2,
                    float(p[0]) + size / 2,
                    float(p[2]) - size / 2,
                    float(p[2]) + size / 2,
                    _u(rng, 8, 40),
                    1.0,
                    ground_y,
                )
    b.shadow_filter = SHADOW_ALL


def _place_against_wall(
    room: _Room,
    rng: np.random.Generator,
    width: float,
    depth: float,
    tall: bool,
    camera: tuple[float, float],
    tries: int = 25,
) -> tuple[float, float, float] | None:
    """A free spot (x, z, yaw) for an item with its back to a wall, or None."""
    for _ in range(tries):
        wall = _WALLS[int(rng.choice(4, p=[0.4, 0.25, 0.25, 0.1]))]
        _, _, yaw, length = room.frame(wall)
        if length < width + 0.1:
            continue
        u = _u(rng, width / 2 + 0.05, length - width / 2 - 0.05)
        blocked = False
        for u0, u1, v0, _ in room.openings.get(wall, []):
            overlap = u + width / 2 > u0 - 0.1 and u - width / 2 < u1 + 0.1
            if overlap and (v0 < 0.01 or tall):
                blocked = True
        if blocked:
            continue
        x, z, _ = _wall_point(room, wall, u, depth / 2 + 0.01)
        sideways = abs(math.sin(yaw)) > 0.5
        hx, hz = (depth / 2, width / 2) if sideways else (width / 2, depth / 2)
        if math.hypot(x - camera[0], z - camera[1]) < max(hx, hz) + 0.7:
            continue
        if room.free(x - hx, x + hx, z - hz, z + hz):
            room.boxes.append((x - hx, x + hx, z - hz, z + hz))
            return x, z, yaw
    return None


def _place_free(
    room: _Room,
    rng: np.random.Generator,
    hx: float,
    hz: float,
    camera: tuple[float, float],
    tries: int = 25,
    region: tuple[float, float, float, float] | None = None,
) -> tuple[float, float] | None:
    """A free spot (x, z) for an axis-aligned footprint of half-sizes (hx, hz), or None."""
    x0, x1, z0, z1 = region or (-room.w / 2, room.w / 2, 0.0, room.d)
    for _ in range(tries):
        x = _u(rng, x0 + hx + 0.3, x1 - hx - 0.3) if x1 - x0 > 2 * hx + 0.6 else (x0 + x1) / 2
        z = _u(rng, z0 + hz + 0.3, z1 - hz - 0.3) if z1 - z0 > 2 * hz + 0.6 else (z0 + z1) / 2
        if math.hypot(x - camera[0], z - camera[1]) < math.hypot(hx, hz) + 0.6:
            continue
        if room.free(x - hx, x + hx, z - hz, z + hz, 0.25):
            room.boxes.append((x - hx, x + hx, z - hz, z + hz))
            return x, z
    return None


def _room_with_openings(rng: np.random.Generator, w: float, d: float, h: float) -> _Room:
    room = _Room(w, d, h)
    door_wall = _WALLS[int(rng.choice(4, p=[0.35, 0.25, 0.25, 0.15]))]
    _, _, _, length = room.frame(door_wall)
    if length > 1.6:
        u0 = _u(rng, 0.2, length - 1.1)
        room.openings.setdefault(door_wall, []).append((u0, u0 + _u(rng, 0.8, 0.95), 0.0, 2.05))
    for wall in _WALLS:
        if wall == door_wall and rng.random() < 0.7:
            continue
        if rng.random() < (0.55 if wall != "front" else 0.2):
            _, _, _, length = room.frame(wall)
            ww = min(_u(rng, 0.8, 2.4), length - 0.8)
            if ww < 0.6:
                continue
            existing = room.openings.get(wall, [])
            for _ in range(10):
                u0 = _u(rng, 0.3, length - ww - 0.3)
                if all(u0 + ww + 0.3 < a or u0 > c + 0.3 for a, c, _, _ in existing):
                    sill = _u(rng, 0.5, 1.0)
                    top = min(h - 0.25, sill + _u(rng, 1.0, 1.7))
                    room.openings.setdefault(wall, []).append((u0, u0 + ww, sill, top))
                    room.windows.append(wall)
                    break
    return room


def _indoor_lights(
    b: SceneBuilder, rng: np.random.Generator, room: _Room, sunny: bool
) -> tuple[Lighting, Sky]:
    """A ceiling lamp (with its fixture), ambient light, and sun through a window."""
    lx, lz = _u(rng, -room.w * 0.25, room.w * 0.25), _u(rng, room.d * 0.3, room.d * 0.7)
    drop = _u(rng, 0.1, 0.7)
    fixture_y = room.h - drop
    shade = obj.emissive(b, obj.color(rng, [(0.95, 0.9, 0.8), (0.9, 0.9, 0.9)]), 1.2)
    if drop > 0.3:
        b.cylinder_between(
            (lx, room.h, lz), (lx, fixture_y + 0.15, lz), 0.006, obj.metal(b, rng, (0.1, 0.1, 0.1))
        )
        b.cylinder(
            (lx, fixture_y + 0.075, lz), _u(rng, 0.15, 0.3), 0.075, shade, taper=0.5, shadow=False
        )
    else:
        b.cylinder((lx, room.h - 0.04, lz), _u(rng, 0.15, 0.3), 0.04, shade, shadow=False)
    warm = obj.color(rng, [(1.0, 0.85, 0.65), (1.0, 0.92, 0.8), (0.95, 0.95, 1.0)], 0.02)
    sun_dir = None
    sun_color = np.zeros(3)
    wall = room.windows[int(rng.integers(len(room.windows)))] if room.windows else None
    _, sky = _outdoor_light(rng, overcast=rng.random() < 0.3)
    if sunny and wall is not None:
        _, _, yaw, _ = room.frame(wall)
        out = -np.array([math.sin(yaw), 0.0, math.cos(yaw)])  # outward from this wall
        azim = math.atan2(out[0], out[2]) + _u(rng, -0.7, 0.7)
        lighting, sky = _outdoor_light(rng, False, math.radians(_u(rng, 15, 50)), azim)
        sun_dir, sun_color = lighting.sun_dir, lighting.sun_color * 1.2
    ambient = np.array(warm) * _u(rng, 0.25, 0.5)
    if room.windows:
        ambient = ambient + sky.horizon * 0.08 * len(room.windows)
    lighting = Lighting(
        sun_dir=sun_dir,
        sun_color=sun_color,
        sun_angle=math.radians(_u(rng, 0.27, 1.0)),
        ambient_sky=ambient,
        ambient_ground=ambient * 0.5,
        lamp_pos=np.array([lx, fixture_y - 0.02, lz]),
        lamp_color=np.array(srgb_to_linear(warm)) * _u(rng, 1.5, 4.0),
        lamp_radius=_u(rng, 0.08, 0.25),
        ao_radius=0.35,
        ao_strength=0.9,
    )
    return lighting, _with_haze(sky, 0.0)


def indoor(rng: np.random.Generator) -> Scene:
    """A furnished room: living room, bedroom, kitchen/dining or office."""
    b = SceneBuilder()
    room = _room_with_openings(rng, _u(rng, 3.0, 7.0), _u(rng, 3.5, 8.0), _u(rng, 2.4, 3.2))
    sunny = bool(room.windows) and rng.random() < 0.45
    # Camera first, so furniture keeps clear of it.
    cam_x = _u(rng, -room.w / 2 + 0.5, room.w / 2 - 0.5)
    cam_z = _u(rng, 0.35, max(0.5, room.d * 0.35))
    eye = _u(rng, 1.1, 1.75) if rng.random() < 0.85 else _u(rng, 0.45, 1.0)
    target = (_u(rng, -room.w / 2, room.w / 2), _u(rng, 0.6, 1.2), _u(rng, room.d * 0.6, room.d))
    yaw = math.atan2(target[0] - cam_x, target[2] - cam_z) + float(rng.normal(0, 0.15))
    dist = math.hypot(target[0] - cam_x, target[2] - cam_z)
    pitch = math.atan2(target[1] - eye, dist) + float(rng.normal(0, 0.08))
    camera = (cam_x, cam_z)
    kind = int(rng.integers(4))
    _furnish(b, rng, room, kind, camera)
    _build_room(b, rng, room, sunny)
    if room.windows:
        _outside(b, rng, room, -0.3 if rng.random() < 0.5 else -_u(rng, 3, 15))
    lighting, sky = _indoor_lights(b, rng, room, sunny)
    pose = _pose(rng, (cam_x, eye, cam_z), yaw, pitch, _u(rng, 55, 100))
    return b.build("indoor", pose, lighting, sky, near=0.02, far=400.0)


Item = tuple[Callable[[obj.Placer], None], float, float, bool]  # build, width, depth, tall


def _wall_items(
    rng: np.random.Generator, room: _Room, kind: int
) -> list[tuple[float, Callable[[], Item]]]:
    """(weight, make) pairs: the pieces that stand against walls in a room type."""

    def sofa() -> Item:
        w = _u(rng, 1.6, 2.4)
        return (lambda pl: obj.sofa(pl, rng, w), w, 0.9, False)

    def armchair() -> Item:
        return (lambda pl: obj.sofa(pl, rng, _u(rng, 0.8, 1.0)), 1.0, 0.9, False)

    def shelf() -> Item:
        w, h = _u(rng, 0.6, 1.2), _u(rng, 1.0, 2.1)
        return (lambda pl: _shelf_with_things(pl, rng, w, h), w, 0.34, h > 1.2)

    def tv() -> Item:
        w = _u(rng, 1.0, 1.8)
        return (lambda pl: _tv_unit(pl, rng, w), w, 0.45, False)

    def floor_lamp() -> Item:
        return (lambda pl: obj.lamp_floor(pl, rng), 0.35, 0.35, True)

    def plant() -> Item:
        size = _u(rng, 0.5, 1.6)
        return (lambda pl: obj.plant(pl, rng, 0.0, size), 0.45, 0.45, size > 0.9)

    def side_table() -> Item:
        return (lambda pl: obj.side_table(pl, rng), 0.55, 0.55, False)

    def cabinet() -> Item:
        w, h = _u(rng, 0.6, 1.6), _u(rng, 0.5, 1.2)
        return (lambda pl: _dresser(pl, rng, w, h), w, 0.48, False)

    def wardrobe() -> Item:
        w = _u(rng, 1.0, 2.0)
        return (lambda pl: _wardrobe(pl, rng, w), w, 0.6, True)

    def bed() -> Item:
        w = _u(rng, 0.9, 1.8)
        return (lambda pl: _bed_with_tables(pl, rng, w), w + 1.0, 2.1, False)

    def desk() -> Item:
        w = _u(rng, 1.1, 1.6)
        return (lambda pl: _desk(pl, rng, w), w, 0.75, False)

    def kitchen() -> Item:
        w = min(_u(rng, 1.8, 3.6), max(room.w, room.d) - 0.6)
        return (lambda pl: _kitchen(pl, rng, w, room.h), w, 0.62, True)

    def fridge() -> Item:
        return (lambda pl: _fridge(pl, rng), 0.7, 0.7, True)

    def chair() -> Item:
        return (lambda pl: obj.chair(pl, rng), 0.5, 0.5, False)

    def stool() -> Item:
        return (lambda pl: obj.stool(pl, rng), 0.45, 0.45, False)

    def radiator() -> Item:
        w = _u(rng, 0.6, 1.4)
        return (lambda pl: obj.radiator(pl, rng, w), w, 0.1, False)

    def boxes() -> Item:
        return (lambda pl: obj.boxes(pl, rng), 0.6, 0.6, False)

    def basket() -> Item:
        return (lambda pl: obj.basket(pl, rng), 0.5, 0.5, False)

    common = [
        (1.0, plant),
        (0.8, side_table),
        (0.6, shelf),
        (0.5, radiator),
        (0.4, boxes),
        (0.5, basket),
        (0.4, floor_lamp),
        (0.3, stool),
        (0.3, chair),
    ]
    if kind == 0:
        special = [(3.0, sofa), (1.5, armchair), (2.0, shelf), (1.5, tv), (1.0, cabinet)]
    elif kind == 1:
        special = [(4.0, bed), (1.5, wardrobe), (1.5, cabinet), (1.0, armchair), (0.5, desk)]
    elif kind == 2:
        special = [(4.0, kitchen), (1.5, fridge), (1.0, cabinet), (1.0, shelf)]
    else:
        special = [(3.0, desk), (1.5, cabinet), (1.5, shelf), (0.8, armchair)]
    return special + common


def _furnish(
    b: SceneBuilder, rng: np.random.Generator, room: _Room, kind: int, camera: tuple[float, float]
) -> None:
    """Furniture for a room type (0 living, 1 bedroom, 2 kitchen/dining, 3 office):
    pieces against the walls (the first of a room's kind is its signature piece), a
    table group or rug in the middle, things on the floor and on the walls."""
    options = _wall_items(rng, room, kind)
    weights = np.array([w for w, _ in options])
    signature = options[int(np.argmax(weights))][1]
    picks = [signature] + [
        options[int(i)][1]
        for i in rng.choice(len(options), size=int(rng.integers(4, 11)), p=weights / weights.sum())
    ]
    for make in picks:
        fn, w, d, tall = make()
        at_wall = _place_against_wall(room, rng, w, d, tall, camera)
        if at_wall is not None:
            fn(obj.Placer(b, at_wall[0], at_wall[1], at_wall[2]))
    # Free-standing pieces.
    if kind in (0, 2, 3) or rng.random() < 0.3:
        if kind == 0:
            tw, td = _u(rng, 0.8, 1.3), _u(rng, 0.5, 0.7)
            spot = _place_free(room, rng, tw / 2 + 0.5, td / 2 + 0.5, camera)
            if spot:
                pl = obj.Placer(b, spot[0], spot[1], 0.0)
                obj.rug(pl, rng, tw + 1.2, td + 1.2)
                y = obj.table(pl, rng, tw, td, _u(rng, 0.38, 0.48))
                obj.clutter(
                    pl,
                    rng,
                    -tw / 2 + 0.1,
                    tw / 2 - 0.1,
                    -td / 2 + 0.1,
                    td / 2 - 0.1,
                    y,
                    int(rng.integers(1, 5)),
                )
        else:
            tw, td = _u(rng, 0.9, 2.0), _u(rng, 0.8, 1.0)
            spot = _place_free(room, rng, tw / 2 + 0.45, td / 2 + 0.45, camera)
            if spot:
                yaw = 0.0 if rng.random() < 0.5 else math.pi / 2
                pl = obj.Placer(b, spot[0], spot[1], yaw)
                y = obj.table(pl, rng, tw, td, _u(rng, 0.72, 0.78))
                chair_mat = obj.wood(b, rng)
                seats = max(1, int(tw / 0.6))
                for side in (-1, 1):
                    for k in range(seats):
                        if rng.random() < 0.8:
                            cx = -tw / 2 + tw / seats * (k + 0.5)
                            turn = (math.pi if side > 0 else 0.0) + float(rng.normal(0, 0.15))
                            sub = pl.sub(cx, side * (td / 2 + 0.15), turn)
                            obj.chair(sub, rng, chair_mat)
                obj.clutter(
                    pl,
                    rng,
                    -tw / 2 + 0.1,
                    tw / 2 - 0.1,
                    -td / 2 + 0.1,
                    td / 2 - 0.1,
                    y,
                    int(rng.integers(2, 8)),
                )
    for _ in range(int(rng.integers(0, 4))):  # things on the floor
        spot = _place_free(room, rng, 0.25, 0.25, camera, tries=5)
        if spot is None:
            continue
        r = rng.random()
        if r < 0.3:
            b.sphere((spot[0], 0.11, spot[1]), _u(rng, 0.08, 0.14), obj.plastic(b, rng))
        elif r < 0.6:
            s = rng.uniform(0.12, 0.3, 3)
            box_mat = b.material(
                Tex.NOISE,
                obj.color(rng, [(0.72, 0.58, 0.4), (0.6, 0.5, 0.35)]),
                noise=0.1,
                noise_scale=0.3,
            )
            b.ground_box(
                spot[0],
                spot[1],
                (float(s[0]), float(s[1]), float(s[2])),
                box_mat,
                _u(rng, 0, math.pi),
            )
        elif r < 0.8:
            obj.person(b, rng, spot[0], spot[1], _u(rng, 0, 2 * math.pi))
        else:
            obj.plant(obj.Placer(b, spot[0], spot[1]), rng, 0.0, _u(rng, 0.5, 1.0))
    # On the walls: pictures, mirrors, clocks, floating shelves.
    for _ in range(int(rng.integers(1, 7))):
        wall = _WALLS[int(rng.choice(4, p=[0.4, 0.27, 0.27, 0.06]))]
        _, _, yaw, length = room.frame(wall)
        pw, ph = _u(rng, 0.3, 1.2), _u(rng, 0.3, 0.9)
        u = _u(rng, pw / 2 + 0.2, max(pw / 2 + 0.3, length - pw / 2 - 0.2))
        if any(
            u + pw / 2 > u0 - 0.1 and u - pw / 2 < u1 + 0.1
            for u0, u1, _, _ in room.openings.get(wall, [])
        ):
            continue
        x, z, _ = _wall_point(room, wall, u, 0.0)
        y = _u(rng, 1.3, min(1.9, room.h - ph / 2 - 0.1))
        roll = rng.random()
        if roll < 0.55:
            obj.picture(b, rng, np.array([x, y, z]), yaw, pw, ph)
        elif roll < 0.7:
            obj.mirror(b, rng, np.array([x, y, z]), yaw, pw * 0.7, ph * 1.3)
        elif roll < 0.8:
            obj.clock(b, rng, np.array([x, _u(rng, 1.7, room.h - 0.3), z]), yaw)
        else:
            obj.wall_shelf(b, rng, x, _u(rng, 1.2, 1.9), z, yaw, pw)


def _shelf_with_things(pl: obj.Placer, rng: np.random.Generator, w: float, h: float) -> None:
    levels = obj.shelf(pl, rng, w, h, books=rng.random() < 0.8)
    if rng.random() < 0.5 and len(levels) > 1:
        k = int(rng.integers(1, len(levels)))
        obj.clutter(pl, rng, -w / 2 + 0.1, w / 2 - 0.1, -0.05, 0.05, levels[k] + 0.005, 2)


def _tv_unit(pl: obj.Placer, rng: np.random.Generator, w: float) -> None:
    y = obj.cabinet(pl, rng, w, _u(rng, 0.4, 0.55), 0.42)
    b = pl.b
    tw = min(w * 0.9, _u(rng, 0.9, 1.5))
    black = b.material(Tex.FLAT, (0.04, 0.04, 0.05), noise=0.02, spec=0.6, shine=90.0, reflect=0.5)
    pl.box(0, y, 0, 0.15, 0.01, 0.1, black)
    pl.box(0, y + 0.01, 0, 0.03, 0.06, 0.02, black)
    pl.box(0, y + 0.06, -0.02, tw / 2, tw * 0.28, 0.025, black)
    if rng.random() < 0.5:
        pl.box(
            0,
            y + 0.07,
            0.006,
            tw / 2 - 0.02,
            tw * 0.28 - 0.02,
            0.001,
            obj.emissive(
                b, obj.color(rng, [(0.3, 0.4, 0.6), (0.6, 0.5, 0.4), (0.2, 0.5, 0.3)], 0.2), 0.8
            ),
            shadow=False,
        )
    obj.clutter(pl, rng, -w / 2 + 0.1, -tw / 2 - 0.05, -0.1, 0.1, y, 1)


def _bed_with_tables(pl: obj.Placer, rng: np.random.Generator, w: float) -> None:
    obj.bed(pl.sub(0, 0.03), rng, w)
    for side in (-1, 1):
        if rng.random() < 0.8:
            sub = pl.sub(side * (w / 2 + 0.3), -0.8)
            y = obj.cabinet(sub, rng, 0.45, 0.5, 0.4)
            if rng.random() < 0.7:
                obj.lamp_table(sub, rng, y)


def _wardrobe(pl: obj.Placer, rng: np.random.Generator, w: float) -> None:
    obj.cabinet(pl, rng, w, _u(rng, 1.8, 2.2), 0.58)


def _dresser(pl: obj.Placer, rng: np.random.Generator, w: float, h: float) -> None:
    y = obj.cabinet(pl, rng, w, h, 0.48)
    obj.clutter(pl, rng, -w / 2 + 0.1, w / 2 - 0.1, -0.1, 0.1, y, int(rng.integers(1, 4)))


def _kitchen(pl: obj.Placer, rng: np.random.Generator, w: float, h: float) -> None:
    b = pl.b
    body = obj.paint(b, rng, [*obj.WALL_PAINTS, (0.2, 0.25, 0.3), (0.3, 0.35, 0.3)])
    counter = b.material(
        Tex.MARBLE,
        obj.color(rng, [(0.9, 0.9, 0.88), (0.2, 0.2, 0.2), (0.6, 0.55, 0.5)]),
        obj.color(rng, [(0.6, 0.6, 0.6), (0.4, 0.35, 0.3)]),
        scale=_u(rng, 0.3, 0.8),
        noise=0.05,
        spec=0.5,
        shine=90.0,
        reflect=0.25,
    )
    y = obj.cabinet(pl, rng, w, 0.86, 0.6, body, counter)
    # Upper cabinets and a tiled splashback.
    tiles = b.material(
        Tex.TILES,
        obj.color(rng, obj.WALL_PAINTS),
        obj.jitter(rng, (0.7, 0.7, 0.7)),
        scale=_u(rng, 0.1, 0.3),
        param2=0.003,
        noise=0.05,
        spec=0.4,
        reflect=0.15,
    )
    pl.box(0, y, -0.29, w / 2, 0.3, 0.005, tiles, shadow=False)
    if rng.random() < 0.8:
        sub = pl.sub(0, -0.13, ly=y + 0.55)
        obj.cabinet(sub, rng, w, min(0.75, h - y - 0.65), 0.34, body)
    # A hob and a sink.
    black = b.material(Tex.FLAT, (0.05, 0.05, 0.05), noise=0.02, spec=0.7, shine=100.0, reflect=0.4)
    pl.box(-w / 4, y + 0.015, 0.02, 0.3, 0.004, 0.25, black)
    pl.box(w / 4, y + 0.015, 0.02, 0.25, 0.003, 0.2, obj.metal(b, rng, (0.7, 0.7, 0.72)))
    pl.rod((w / 4, y, -0.22), (w / 4, y + 0.3, -0.22), 0.012, obj.metal(b, rng))
    pl.rod((w / 4, y + 0.3, -0.22), (w / 4, y + 0.3, -0.05), 0.012, obj.metal(b, rng))
    obj.clutter(pl, rng, -w / 2 + 0.1, w / 2 - 0.1, -0.2, 0.2, y + 0.015, int(rng.integers(1, 5)))


def _fridge(pl: obj.Placer, rng: np.random.Generator) -> None:
    b = pl.b
    m = obj.metal(
        b, rng, obj.color(rng, [(0.85, 0.85, 0.85), (0.6, 0.6, 0.62), (0.15, 0.15, 0.15)])
    )
    h = _u(rng, 1.7, 2.0)
    pl.box(0, 0, 0, 0.33, h / 2, 0.32, m)
    pl.cbox(0.25, h * 0.7, 0.34, 0.01, 0.2, 0.015, obj.metal(b, rng))
    pl.cbox(0, h * 0.62, 0.33, 0.32, 0.003, 0.01, b.material(Tex.FLAT, (0.1, 0.1, 0.1)))


def _desk(pl: obj.Placer, rng: np.random.Generator, w: float) -> None:
    b = pl.b
    top = obj.wood(b, rng) if rng.random() < 0.5 else obj.paint(b, rng)
    y = obj.table(pl, rng, w, 0.72, 0.74, top, obj.metal(b, rng))
    black = b.material(Tex.FLAT, (0.05, 0.05, 0.05), noise=0.02, spec=0.5, shine=80.0, reflect=0.4)
    for k in range(1 if rng.random() < 0.7 else 2):
        x = (k - 0.5) * 0.6 if k or rng.random() < 0.3 else 0.0
        mw = _u(rng, 0.25, 0.35)
        pl.box(x, y, -0.18, 0.1, 0.008, 0.08, black)
        pl.box(x, y, -0.2, 0.02, 0.12, 0.015, black)
        pl.box(x, y + 0.1, -0.17, mw, mw * 0.58, 0.015, black)
        pl.box(
            x,
            y + 0.1 + 0.015,
            -0.154,
            mw - 0.015,
            mw * 0.58 - 0.015,
            0.001,
            obj.emissive(
                b, obj.color(rng, [(0.85, 0.88, 0.92), (0.2, 0.3, 0.5), (0.3, 0.3, 0.32)], 0.1), 0.7
            ),
            shadow=False,
        )
    pl.box(0, y, 0.1, 0.22, 0.01, 0.07, black)
    sub = pl.sub(_u(rng, -0.2, 0.2), 0.55, math.pi + float(rng.normal(0, 0.3)))
    obj.chair(sub, rng)
    obj.clutter(pl, rng, -w / 2 + 0.1, w / 2 - 0.1, 0.0, 0.3, y, int(rng.integers(0, 4)))


# --------------------------------------------------------------------------- street


def street(rng: np.random.Generator) -> Scene:
    """A city street or suburban road with kerbs, buildings, parked and moving cars,
    people, street furniture and trees."""
    b = SceneBuilder()
    hw = _u(rng, 3.2, 8.0)  # road half width
    sw = _u(rng, 2.0, 5.0)  # sidewalk width
    kerb = _u(rng, 0.1, 0.18)
    length = _u(rng, 150, 320)
    urban = rng.random() < 0.6
    asphalt = obj.jitter(rng, (0.3, 0.3, 0.31), 0.03)
    marks = obj.color(rng, [(0.9, 0.9, 0.88), (0.88, 0.75, 0.2)], 0.03)
    road = b.material(
        Tex.ROAD,
        asphalt,
        marks,
        param1=hw,
        param2=1.0 if rng.random() < 0.8 else 0.0,
        noise=0.25,
        noise_scale=6.0,
        spec=0.05,
    )
    b.ground_plane(0.0, road)
    walk = b.material(
        Tex.TILES,
        obj.color(rng, [(0.62, 0.6, 0.56), (0.55, 0.52, 0.5), (0.7, 0.66, 0.6)]),
        obj.jitter(rng, (0.45, 0.44, 0.42)),
        scale=_u(rng, 0.3, 0.8),
        param2=0.006,
        noise=0.25,
        noise_scale=2.0,
    )
    kerb_mat = obj.stone(b, rng)
    for side in (-1, 1):
        b.box(
            (side * (hw + sw / 2), kerb / 2, length / 2 - 20),
            (sw / 2, kerb / 2, length / 2 + 20),
            walk,
            shadow=False,
        )
        b.box(
            (side * (hw + 0.08), kerb / 2 + 0.005, length / 2 - 20),
            (0.08, kerb / 2 + 0.005, length / 2 + 20),
            kerb_mat,
            shadow=False,
        )
    # Camera.
    roll = rng.random()
    if roll < 0.65:
        cam = (_u(rng, -hw * 0.6, hw * 0.6), _u(rng, 1.2, 1.8), 0.0)
    elif roll < 0.9:
        cam = (
            float(rng.choice([-1, 1])) * (hw + _u(rng, 0.5, sw - 0.3)),
            kerb + _u(rng, 1.45, 1.8),
            0.0,
        )
    else:
        cam = (_u(rng, -hw, hw), _u(rng, 3.0, 12.0), 0.0)
    if rng.random() < 0.75:
        yaw = float(rng.normal(0, 0.2))
    else:
        yaw = float(rng.choice([-1, 1])) * _u(rng, 0.5, 1.3)
    pitch = math.radians(_u(rng, -12, 6) if cam[1] < 3 else _u(rng, -30, -8))
    keep_out = (cam[0], cam[2])

    def clear(x: float, z: float, r: float) -> bool:
        return math.hypot(x - keep_out[0], z - keep_out[1]) > r + 1.2

    def detail(x: float, z: float) -> float:
        # Far things are small in the image: fewer parts for them.
        return float(np.clip(40.0 / max(math.hypot(x - cam[0], z - cam[2]), 1.0), 0.25, 1.0))

    # Buildings or houses on both sides.
    for side in (-1, 1):
        z = -30.0
        edge = hw + sw
        while z < length:
            if urban:
                width = _u(rng, 8, 30)
                depth = _u(rng, 10, 22)
                setback = _u(rng, 0, 1.5) if rng.random() < 0.3 else 0.0
                height = _u(rng, 6, 45) if rng.random() < 0.85 else _u(rng, 45, 90)
                if rng.random() > 0.08:
                    x0 = edge + setback
                    xa, xb = sorted((side * x0, side * (x0 + depth)))
                    obj.building(
                        b,
                        rng,
                        xa,
                        xb,
                        z,
                        z + width,
                        height,
                        -side,
                    )
                z += width + (_u(rng, 2, 6) if rng.random() < 0.15 else 0.0)
            else:
                lawn = _u(rng, 3, 10)
                grass = b.material(
                    Tex.NOISE,
                    obj.color(rng, [(0.3, 0.45, 0.15), (0.35, 0.42, 0.2)]),
                    obj.jitter(rng, (0.25, 0.35, 0.12)),
                    noise=0.25,
                    noise_scale=2.0,
                )
                lot = _u(rng, 14, 25)
                b.box(
                    (side * (edge + 20), 0.02, z + lot / 2),
                    (20, 0.02, lot / 2),
                    grass,
                    shadow=False,
                )
                if rng.random() < 0.9:
                    obj.house(b, rng, side * (edge + lawn + 6), z + lot / 2, -side * math.pi / 2)
                if rng.random() < 0.5:
                    tx, tz = side * (edge + _u(rng, 1, lawn)), z + _u(rng, 0, lot)
                    obj.tree(b, rng, tx, tz, detail=detail(tx, tz))
                if rng.random() < 0.4:
                    hedge = obj.leaves(b, rng, obj.color(rng, obj.FOLIAGE[:6]))
                    b.box((side * (edge + 0.5), 0.5, z + lot / 2), (0.4, 0.5, lot / 2 - 1.0), hedge)
                elif rng.random() < 0.3:
                    obj.fence(
                        b, rng, (side * (edge + 0.3), z + 0.5), (side * (edge + 0.3), z + lot - 3)
                    )
                z += lot
    # Street furniture along the kerb.
    lamp_gap = _u(rng, 18, 35)
    for side in (-1, 1):
        x = side * (hw + 0.5)
        offset = _u(rng, 0, lamp_gap)
        for z in np.arange(-10 + offset, length, lamp_gap):
            if clear(x, float(z), 0.3):
                obj.street_lamp(b, rng, x, float(z), -side * math.pi / 2, kerb)
        if rng.random() < 0.6:
            gap = _u(rng, 8, 16)
            for z in np.arange(-10 + _u(rng, 0, gap), length * 0.7, gap):
                if clear(x, float(z), 1.0) and rng.random() < 0.85:
                    tx = side * (hw + _u(rng, 0.8, 1.5))
                    height = _u(rng, 5, 11)
                    obj.tree(b, rng, tx, float(z), kerb, height, False, detail(tx, float(z)))
        for _ in range(int(rng.integers(1, 7))):
            z = _u(rng, -5, length * 0.5)
            xp = side * (hw + _u(rng, 0.3, sw - 0.3))
            if not clear(xp, z, 0.5):
                continue
            pick = rng.random()
            if pick < 0.25:
                obj.sign(b, rng, side * (hw + 0.4), z, math.pi if side > 0 else 0.0, kerb)
            elif pick < 0.4:
                obj.bin_(b, rng, xp, z, kerb)
            elif pick < 0.55:
                obj.bench(b, rng, side * (hw + sw - 0.6), z, -side * math.pi / 2, kerb)
            elif pick < 0.65:
                obj.hydrant(b, rng, side * (hw + 0.4), z, kerb)
            elif pick < 0.8:
                post = obj.metal(b, rng, (0.2, 0.2, 0.2))
                for k in range(int(rng.integers(3, 8))):
                    if clear(side * (hw + 0.35), z + k * 1.5, 0.3):
                        obj.bollard(b, rng, side * (hw + 0.35), z + k * 1.5, kerb, post)
            else:
                obj.traffic_light(b, rng, side * (hw + 0.4), z, math.pi if side > 0 else 0.0, kerb)
        if rng.random() < 0.25:
            obj.fence(
                b,
                rng,
                (side * (hw + 0.25), _u(rng, 2, 20)),
                (side * (hw + 0.25), _u(rng, 25, 60)),
                kind=2,
            )
    # Cars: parked along both kerbs, a few driving.
    for side in (-1, 1):
        z = _u(rng, -12, 0)
        occupancy = _u(rng, 0.3, 0.9)
        while z < length * 0.6:
            spot = _u(rng, 5.3, 7.0)
            x = side * (hw - 1.15)
            if rng.random() < occupancy and clear(x, z, 2.6):
                yaw_car = float(rng.normal(0, 0.02)) + (0.0 if side > 0 else math.pi)
                x_car = x + float(rng.normal(0, 0.08))
                obj.car(b, rng, x_car, z, yaw_car, detail=detail(x_car, z))
            z += spot
    for _ in range(int(rng.integers(0, 6))):
        lane = float(rng.choice([-1, 1]))
        x = lane * hw * _u(rng, 0.3, 0.55)
        z = _u(rng, 6, 80)
        if clear(x, z, 3.0):
            yaw_car = (0.0 if lane > 0 else math.pi) + float(rng.normal(0, 0.03))
            obj.car(b, rng, x, z, yaw_car, detail=detail(x, z))
    # People.
    for _ in range(int(rng.integers(0, 14))):
        walk_side = float(rng.choice([-1, 1]))
        if rng.random() < 0.85:
            x, base = walk_side * (hw + _u(rng, 0.4, sw - 0.3)), kerb
        else:
            x, base = _u(rng, -hw, hw), 0.0
        z = _u(rng, 2, 60)
        if clear(x, z, 0.5):
            obj.person(
                b, rng, x, z, float(rng.choice([0.0, math.pi])) + float(rng.normal(0, 0.3)), base
            )
    lighting, sky = _outdoor_light(rng, rng.random() < 0.25)
    sky = _with_haze(sky, _u(rng, 1e-4, 8e-4))
    pose = _pose(rng, cam, yaw, pitch, _u(rng, 40, 95))
    return b.build("street", pose, lighting, sky, near=0.05, far=1500.0)


# --------------------------------------------------------------------------- landscape


def _fractal_grid(rng: np.random.Generator, size: int, octaves: int, gain: float) -> np.ndarray:
    """(size, size) fractal noise about in [-1, 1]: bicubically upsampled random grids."""
    total = np.zeros((size, size), np.float32)
    amp, norm = 1.0, 0.0
    for k in range(octaves):
        cells = 2 ** (k + 2)
        coarse = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
        total += amp * cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
        norm += amp
        amp *= gain
    return total / norm


def _segment_distance(ax: float, az: float, cx: float, cz: float) -> float:
    """Distance from the origin (the camera) to the segment from (ax, az) to (cx, cz)."""
    dx, dz = cx - ax, cz - az
    t = min(max(-(ax * dx + az * dz) / max(dx * dx + dz * dz, 1e-9), 0.0), 1.0)
    return math.hypot(ax + t * dx, az + t * dz)


def landscape(rng: np.random.Generator) -> Scene:
    """A vista: hills and far mountains (a heightfield), sometimes a lake, meadows with
    scattered trees and forest patches, bushes, rocks, and now and then a fence, a
    cabin or walkers."""
    b = SceneBuilder()
    size, grid = 3200.0, 256
    coords = (np.arange(grid) + 0.5) / grid * size - size / 2
    gx, gz = np.meshgrid(coords, coords)
    r = np.hypot(gx, gz)
    relief = _fractal_grid(rng, grid, 7, 0.5)
    ridges = 1.0 - np.abs(_fractal_grid(rng, grid, 6, 0.55))
    near_amp = _u(rng, 5, 40)
    far_amp = _u(rng, 100, 700)
    start = _u(rng, 250, 900)
    ramp = np.clip((r - start) / 900, 0, 1) ** 1.5
    heights = relief * near_amp * 3 + ramp * far_amp * (0.4 + ridges)
    # Gentler ground around the camera so it stands on walkable land.
    flat = np.exp(-((r / _u(rng, 40, 150)) ** 2)) * _u(rng, 0.4, 0.9)
    heights = heights * (1 - flat)
    cell = size / grid
    terrain = Heightfield(
        heights=heights.astype(np.float32),
        x0=-size / 2 + cell / 2,
        z0=-size / 2 + cell / 2,
        size=size - cell,
        material=0,
        far=size / 2 - 150,
    )
    ground0 = float(terrain.height_at(0.0, 0.0))
    water_level = None
    if rng.random() < 0.4:
        near = heights[r < 500]
        water_level = float(np.quantile(near, _u(rng, 0.08, 0.35)))
        if ground0 < water_level + 1.0:
            water_level = ground0 - _u(rng, 1.0, 3.0)
    grass = obj.color(
        rng,
        [
            (0.3, 0.42, 0.15),
            (0.38, 0.45, 0.2),
            (0.26, 0.4, 0.14),
            (0.45, 0.45, 0.22),
            (0.5, 0.48, 0.28),
            (0.28, 0.36, 0.16),
            (0.35, 0.4, 0.18),
            (0.32, 0.46, 0.2),
        ],
    )
    rockc = obj.color(rng, [(0.45, 0.43, 0.4), (0.5, 0.45, 0.38), (0.38, 0.37, 0.36)])
    snowy = rng.random() < 0.4
    snow_line = float(np.quantile(heights, _u(rng, 0.85, 0.99))) if snowy else 1e6
    terrain_mat = b.material(
        Tex.TERRAIN,
        grass,
        rockc,
        param1=snow_line,
        param2=water_level if water_level is not None else -1e6,
        noise=0.3,
        noise_scale=_u(rng, 3, 10),
    )
    hf = Heightfield(
        terrain.heights, terrain.x0, terrain.z0, terrain.size, terrain_mat, terrain.far
    )
    if water_level is not None:
        water = b.material(
            Tex.WATER,
            obj.color(rng, [(0.08, 0.14, 0.16), (0.1, 0.16, 0.14), (0.12, 0.13, 0.15)]),
            noise=0.1,
            noise_scale=8.0,
            spec=0.8,
            shine=200.0,
            reflect=1.0,
        )
        b.ground_plane(water_level, water)
    drone = rng.random() < 0.15
    eye = _u(rng, 15, 80) if drone else _u(rng, 1.4, 2.0)
    cam = (0.0, ground0 + eye, 0.0)
    yaw = _u(rng, 0, 2 * math.pi)
    if water_level is not None and rng.random() < 0.75:
        # Face the lake: towards the middle of the flooded ground within 500 m.
        wet = (heights < water_level) & (r < 500)
        if wet.any():
            yaw = math.atan2(float(gx[wet].mean()), float(gz[wet].mean())) + float(
                rng.normal(0, 0.3)
            )
    pitch = math.radians(_u(rng, -35, -8) if drone else _u(rng, -12, 5))
    hfov = _u(rng, 35, 90)

    def ground(x: float, z: float) -> float:
        return float(hf.height_at(x, z))

    def spot(dmin: float, dmax: float, spread: float = 0.7) -> tuple[float, float, float] | None:
        # In (and a little beyond) the view, log-uniform in distance.
        dist = dmin * (dmax / dmin) ** rng.random()
        angle = yaw + _u(rng, -1, 1) * math.radians(hfov * spread)
        return _on_land(math.sin(angle) * dist, math.cos(angle) * dist)

    def _on_land(x: float, z: float) -> tuple[float, float, float] | None:
        y = ground(x, z)
        if water_level is not None and y < water_level + 0.4:
            return None
        slope = abs(ground(x + 1, z) - ground(x - 1, z)) + abs(ground(x, z + 1) - ground(x, z - 1))
        return None if slope > 1.2 else (x, y, z)

    conifer_share = _u(rng, 0, 1)
    # Forest patches: clusters of trees at mid distance, then scattered single trees.
    for _ in range(int(rng.integers(0, 6))):
        centre = spot(40, 500, 0.8)
        if centre is None:
            continue
        dist = math.hypot(centre[0], centre[2])
        radius = _u(rng, 10, 50)
        count = int(rng.integers(5, 25))
        detail = float(np.clip(60 / dist, 0.2, 1.0))
        for _ in range(count):
            p = _on_land(
                centre[0] + float(rng.normal(0, radius)), centre[2] + float(rng.normal(0, radius))
            )
            if p and math.hypot(p[0], p[2]) > 12:
                obj.tree(
                    b,
                    rng,
                    p[0],
                    p[2],
                    p[1],
                    _u(rng, 6, 20),
                    conifer=rng.random() < conifer_share,
                    detail=detail,
                )
    for _ in range(int(rng.integers(3, 30))):
        p = spot(10, 300)
        if p:
            detail = float(np.clip(40 / math.hypot(p[0], p[2]), 0.25, 1.0))
            obj.tree(
                b,
                rng,
                p[0],
                p[2],
                p[1],
                _u(rng, 4, 16),
                conifer=rng.random() < conifer_share,
                detail=detail,
            )
    for _ in range(int(rng.integers(3, 30))):
        p = spot(6, 120)
        if p:
            obj.bush(b, rng, p[0], p[2], p[1], _u(rng, 0.4, 1.3))
    for _ in range(int(rng.integers(2, 20))):
        p = spot(4, 150)
        if p:
            dist = math.hypot(p[0], p[2])
            obj.rock(b, rng, p[0], p[2], p[1], _u(rng, 0.2, 0.5) * min(dist / 4, 5.0))
    if rng.random() < 0.3:
        a, c = spot(6, 40), spot(6, 40)
        if a and c and _segment_distance(a[0], a[2], c[0], c[2]) > 2.0:  # not across the camera
            obj.fence(b, rng, (a[0], a[2]), (c[0], c[2]), ground, kind=int(rng.integers(2)))
    if rng.random() < 0.25:
        p = spot(30, 200)
        if p:
            obj.house(b, rng, p[0], p[2], _u(rng, 0, 2 * math.pi), p[1] - 0.3)
    if rng.random() < 0.2:
        for _ in range(int(rng.integers(1, 4))):
            p = spot(5, 40)
            if p:
                obj.person(b, rng, p[0], p[2], _u(rng, 0, 2 * math.pi), p[1])
    lighting, sky = _outdoor_light(rng, rng.random() < 0.2)
    sky = _with_haze(sky, _u(rng, 3e-5, 2e-4))
    pose = _pose(rng, cam, yaw, pitch, hfov)
    return b.build("landscape", pose, lighting, sky, terrain=hf, near=0.05, far=hf.far)


# --------------------------------------------------------------------------- tabletop


def tabletop(rng: np.random.Generator) -> Scene:
    """A close-up of a table with everyday objects, in a room."""
    b = SceneBuilder()
    room = _room_with_openings(rng, _u(rng, 3.0, 6.0), _u(rng, 3.0, 6.0), _u(rng, 2.4, 3.0))
    sunny = bool(room.windows) and rng.random() < 0.5
    tw, td = _u(rng, 1.0, 2.2), _u(rng, 0.7, 1.1)
    tx = _u(rng, -room.w / 2 + tw / 2 + 0.3, room.w / 2 - tw / 2 - 0.3)
    tz = _u(rng, td / 2 + 0.9, max(td / 2 + 1.0, room.d - td / 2 - 0.3))
    room.boxes.append((tx - tw / 2, tx + tw / 2, tz - td / 2, tz + td / 2))
    pl = obj.Placer(b, tx, tz, 0.0)
    kind = rng.random()
    if kind < 0.45:
        top = obj.wood(b, rng)
    elif kind < 0.65:
        top = b.material(
            Tex.MARBLE,
            obj.color(rng, [(0.9, 0.9, 0.88), (0.25, 0.25, 0.25)]),
            obj.color(rng, [(0.6, 0.6, 0.6), (0.45, 0.4, 0.35)]),
            scale=_u(rng, 0.2, 0.6),
            noise=0.05,
            spec=0.5,
            shine=90.0,
            reflect=0.25,
        )
    elif kind < 0.85:
        top = obj.fabric(b, rng)
    else:
        top = obj.paint(b, rng, obj.WALL_PAINTS + obj.FABRICS)
    y = obj.table(pl, rng, tw, td, _u(rng, 0.72, 0.78), top, obj.wood(b, rng))
    # Camera at the near edge, looking down at the objects.
    focus_x = _u(rng, -tw * 0.25, tw * 0.25)
    focus_z = _u(rng, -td * 0.2, td * 0.2)
    dist = _u(rng, 0.35, 1.1)
    heading = float(rng.normal(0, 0.3))
    elev = math.radians(_u(rng, 12, 60))
    fx, fz = tx + focus_x, tz + focus_z
    cam_x = fx - math.sin(heading) * dist * math.cos(elev)
    cam_z = fz - math.cos(heading) * dist * math.cos(elev)
    cam_y = y + dist * math.sin(elev)
    # Stay inside the room: clamp the camera, then aim at the focus again.
    cam_x = min(max(cam_x, -room.w / 2 + 0.25), room.w / 2 - 0.25)
    cam_z = min(max(cam_z, 0.25), room.d - 0.25)
    ground_dist = max(math.hypot(fx - cam_x, fz - cam_z), 0.05)
    heading = math.atan2(fx - cam_x, fz - cam_z)
    elev = math.atan2(cam_y - y, ground_dist)
    obj.clutter(
        pl,
        rng,
        max(-tw / 2 + 0.08, focus_x - 0.45),
        min(tw / 2 - 0.08, focus_x + 0.45),
        max(-td / 2 + 0.08, focus_z - 0.35),
        min(td / 2 - 0.08, focus_z + 0.35),
        y,
        int(rng.integers(4, 14)),
    )
    # A chair or two, and some background furniture.
    for side in (-1, 1):
        if rng.random() < 0.4:
            chair_x, chair_z = tx + _u(rng, -tw / 3, tw / 3), tz + side * (td / 2 + 0.2)
            if math.hypot(chair_x - cam_x, chair_z - cam_z) > 0.6:  # not around the camera
                obj.chair(obj.Placer(b, chair_x, chair_z, math.pi if side > 0 else 0.0), rng)
    _furnish(b, rng, room, int(rng.integers(4)), (cam_x, cam_z))
    _build_room(b, rng, room, sunny)
    if room.windows:
        _outside(b, rng, room, -0.3)
    lighting, sky = _indoor_lights(b, rng, room, sunny)
    lighting = Lighting(
        lighting.sun_dir,
        lighting.sun_color,
        lighting.sun_angle,
        lighting.ambient_sky,
        lighting.ambient_ground,
        lighting.lamp_pos,
        lighting.lamp_color,
        lighting.lamp_radius,
        ao_radius=0.08,
        ao_strength=0.9,
    )
    pitch = -elev + float(rng.normal(0, 0.05))
    pose = _pose(rng, (cam_x, cam_y, cam_z), heading, pitch, _u(rng, 35, 75))
    return b.build("tabletop", pose, lighting, sky, near=0.02, far=400.0)


# --------------------------------------------------------------------------- thin structures


def thin_structures(rng: np.random.Generator) -> Scene:
    """A back garden at eye level, full of thin things in front of far ones: a railing
    or picket fence across the view, poles with wires strung between them, leafless
    trees whose twigs are a centimetre across, a patio table with chairs, and houses,
    hedges and trees behind. Made for measuring sharp edges in high-resolution photos
    (at 2048 px a railing bar 5 m away is a few pixels wide); never drawn into the
    default pool of kinds."""
    b = SceneBuilder()
    grass = b.material(
        Tex.NOISE,
        obj.color(rng, [(0.3, 0.45, 0.15), (0.35, 0.42, 0.2), (0.4, 0.45, 0.25)]),
        obj.jitter(rng, (0.25, 0.35, 0.12)),
        noise=0.3,
        noise_scale=1.5,
    )
    b.ground_plane(0.0, grass)
    yaw = float(rng.normal(0, 0.15))
    cam = (0.0, _u(rng, 1.3, 1.8), 0.0)
    forward_x, forward_z = math.sin(yaw), math.cos(yaw)

    def ahead(distance: float, across: float) -> tuple[float, float]:
        """(x, z) ``distance`` m along the view and ``across`` m to its right."""
        return (
            forward_x * distance + forward_z * across,
            forward_z * distance - forward_x * across,
        )

    # Far: houses and hedges 18-35 m away, with full trees between them.
    for across in np.arange(-30.0, 30.0, _u(rng, 9, 14)):
        distance = _u(rng, 20, 35)
        hx, hz = ahead(distance, float(across) + _u(rng, -2, 2))
        if rng.random() < 0.7:
            obj.house(b, rng, hx, hz, yaw + math.pi + float(rng.normal(0, 0.2)))
        else:
            hedge = obj.leaves(b, rng, obj.color(rng, obj.FOLIAGE[:6]))
            b.box((hx, 1.2, hz), (4.0, 1.2, 0.6), hedge, rot_y(yaw))
        if rng.random() < 0.6:
            tx, tz = ahead(distance - _u(rng, 3, 6), float(across) + _u(rng, 3, 6))
            obj.tree(b, rng, tx, tz, detail=0.6)
    # Middle: leafless trees and poles carrying wires, 7-16 m away.
    for _ in range(int(rng.integers(2, 5))):
        tx, tz = ahead(_u(rng, 7, 16), _u(rng, -9, 9))
        obj.bare_tree(b, rng, tx, tz)
    wire_height = _u(rng, 5.5, 7.5)
    tops = []
    for across in (_u(rng, -12, -5), _u(rng, 5, 12)):
        px, pz = ahead(_u(rng, 9, 15), across)
        tops.append(obj.pole(b, rng, px, pz, wire_height, _u(rng, 0.06, 0.12)))
    cable = b.material(Tex.FLAT, (0.08, 0.08, 0.08), noise=0.02, spec=0.2)
    for k in range(int(rng.integers(1, 4))):
        drop = np.array([0.0, 0.25 * k + 0.1, 0.0])
        b.cylinder_between(tops[0] - drop, tops[1] - drop, _u(rng, 0.006, 0.012), cable)
    for _ in range(int(rng.integers(1, 4))):  # washing-line and sign posts
        px, pz = ahead(_u(rng, 4, 12), _u(rng, -6, 6))
        if rng.random() < 0.5:
            obj.pole(b, rng, px, pz, _u(rng, 1.8, 2.6), _u(rng, 0.015, 0.04))
        else:
            obj.sign(b, rng, px, pz, yaw + math.pi)
    # Near: a fence across the view 4-8 m away, and a patio set in front of it.
    fence_distance = _u(rng, 4, 8)
    obj.fence(
        b,
        rng,
        ahead(fence_distance, -15.0),
        ahead(fence_distance + _u(rng, -1, 1), 15.0),
        kind=int(rng.choice([0, 1, 2, 2])),  # railings (2) are the thinnest: twice as likely
    )
    table_distance = _u(rng, 2.8, fence_distance - 1.0)
    tx, tz = ahead(table_distance, _u(rng, -1.2, 1.2))
    patio = obj.metal(b, rng, obj.color(rng, obj.METALS))
    table_yaw = _u(rng, 0, math.pi)
    obj.table(obj.Placer(b, tx, tz, table_yaw), rng, 0.9, 0.9, 0.74, legs=patio)
    for k in range(int(rng.integers(2, 5))):
        turn = table_yaw + k * math.pi / 2
        cx, cz = tx + 0.75 * math.sin(turn), tz + 0.75 * math.cos(turn)
        obj.chair(obj.Placer(b, cx, cz, turn + math.pi), rng, patio)
    lighting, sky = _outdoor_light(rng, rng.random() < 0.3)
    # Looking a little down, so the chair and table legs are in view.
    pose = _pose(rng, cam, yaw, math.radians(_u(rng, -16, -6)), _u(rng, 50, 75))
    return b.build("thin_structures", pose, lighting, sky, near=0.05, far=1500.0)


BUILDERS: dict[str, Callable[[np.random.Generator], Scene]] = {
    "indoor": indoor,
    "street": street,
    "landscape": landscape,
    "tabletop": tabletop,
    "thin_structures": thin_structures,
}
