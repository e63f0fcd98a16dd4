"""Real-world objects built from primitives: furniture, vehicles, people, plants, props.

Each builder takes a ``Placer`` (the object's own frame: origin on the floor at the
object's centre, x to its right, y up, z towards its front), the scene's random
generator and sizes in metres, and adds primitives with their own materials. Shapes
follow real proportions (a dining chair's seat is 0.45 m high, a car's wheels 0.3 m in
radius), because a depth network learns sizes and arrangements as much as edges.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from depthlens.synth.scene import SceneBuilder, Tex, rot_x, rot_y, rot_z

__all__ = [
    "CAR_PAINTS",
    "CLOTHES",
    "FABRICS",
    "FACADES",
    "FOLIAGE",
    "METALS",
    "SKIN",
    "WALL_PAINTS",
    "WOODS",
    "Placer",
    "color",
    "jitter",
]

RGB = tuple[float, float, float]

WALL_PAINTS: list[RGB] = [
    (0.93, 0.92, 0.88),
    (0.90, 0.87, 0.80),
    (0.85, 0.85, 0.83),
    (0.78, 0.82, 0.85),
    (0.80, 0.85, 0.78),
    (0.88, 0.80, 0.70),
    (0.70, 0.72, 0.68),
    (0.95, 0.93, 0.85),
    (0.75, 0.68, 0.60),
    (0.60, 0.66, 0.72),
    (0.87, 0.76, 0.72),
    (0.55, 0.60, 0.55),
    (0.97, 0.97, 0.96),
    (0.82, 0.78, 0.74),
]
WOODS: list[RGB] = [
    (0.72, 0.55, 0.36),
    (0.55, 0.38, 0.22),
    (0.38, 0.25, 0.15),
    (0.82, 0.68, 0.50),
    (0.62, 0.50, 0.40),
    (0.30, 0.20, 0.13),
    (0.68, 0.60, 0.52),
    (0.78, 0.62, 0.42),
]
FABRICS: list[RGB] = [
    (0.45, 0.45, 0.47),
    (0.25, 0.28, 0.35),
    (0.65, 0.55, 0.35),
    (0.20, 0.40, 0.42),
    (0.75, 0.72, 0.66),
    (0.55, 0.30, 0.22),
    (0.38, 0.42, 0.30),
    (0.15, 0.15, 0.16),
    (0.60, 0.25, 0.28),
    (0.80, 0.78, 0.74),
    (0.30, 0.35, 0.55),
    (0.62, 0.58, 0.50),
]
METALS: list[RGB] = [(0.75, 0.76, 0.78), (0.18, 0.18, 0.19), (0.72, 0.60, 0.35), (0.55, 0.56, 0.58)]
CAR_PAINTS: list[RGB] = [
    (0.92, 0.92, 0.92),
    (0.92, 0.92, 0.90),
    (0.08, 0.08, 0.09),
    (0.10, 0.10, 0.12),
    (0.45, 0.46, 0.48),
    (0.70, 0.71, 0.73),
    (0.62, 0.63, 0.65),
    (0.60, 0.08, 0.08),
    (0.12, 0.22, 0.45),
    (0.15, 0.28, 0.20),
    (0.70, 0.62, 0.50),
    (0.85, 0.55, 0.10),
    (0.30, 0.32, 0.36),
]
FACADES: list[RGB] = [
    (0.55, 0.30, 0.22),
    (0.62, 0.38, 0.28),
    (0.62, 0.62, 0.60),
    (0.85, 0.80, 0.70),
    (0.80, 0.75, 0.62),
    (0.78, 0.68, 0.52),
    (0.70, 0.55, 0.45),
    (0.55, 0.62, 0.66),
    (0.35, 0.34, 0.33),
    (0.90, 0.88, 0.84),
    (0.72, 0.70, 0.66),
    (0.60, 0.52, 0.42),
]
FOLIAGE: list[RGB] = [
    (0.22, 0.36, 0.12),
    (0.30, 0.42, 0.15),
    (0.18, 0.30, 0.14),
    (0.35, 0.45, 0.20),
    (0.42, 0.48, 0.20),
    (0.26, 0.38, 0.18),
    (0.65, 0.42, 0.12),
    (0.55, 0.28, 0.10),
    (0.20, 0.28, 0.16),
]
SKIN: list[RGB] = [
    (0.95, 0.80, 0.70),
    (0.88, 0.70, 0.58),
    (0.78, 0.58, 0.44),
    (0.62, 0.43, 0.30),
    (0.45, 0.30, 0.20),
    (0.32, 0.22, 0.15),
]
CLOTHES: list[RGB] = [
    (0.12, 0.12, 0.14),
    (0.20, 0.25, 0.40),
    (0.55, 0.55, 0.57),
    (0.85, 0.85, 0.83),
    (0.50, 0.15, 0.15),
    (0.25, 0.35, 0.25),
    (0.65, 0.55, 0.40),
    (0.15, 0.20, 0.30),
    (0.75, 0.60, 0.20),
    (0.35, 0.25, 0.20),
    (0.60, 0.35, 0.45),
    (0.30, 0.45, 0.60),
]


def jitter(rng: np.random.Generator, rgb: Sequence[float], amount: float = 0.06) -> RGB:
    """``rgb`` with small random changes of brightness and tint, clipped to [0, 1]."""
    n = rng.normal(0.0, amount, 4)
    k = 1.0 + float(n[3])
    r, g, b = (
        min(max(float(c) * (1.0 + float(e)) * k, 0.0), 1.0) for c, e in zip(rgb, n[:3], strict=True)
    )
    return (r, g, b)


def color(rng: np.random.Generator, palette: Sequence[RGB], amount: float = 0.06) -> RGB:
    """A jittered colour from ``palette``."""
    return jitter(rng, palette[int(rng.integers(len(palette)))], amount)


class Placer:
    """Adds parts in an object's frame (origin at (x, base, z), turned by ``yaw``)."""

    def __init__(self, b: SceneBuilder, x: float, z: float, yaw: float = 0.0, base: float = 0.0):
        self.b = b
        self.rot = rot_y(yaw)
        self.origin = np.array([x, base, z], dtype=np.float64)
        self._c, self._s = math.cos(yaw), math.sin(yaw)
        self._x, self._y, self._z = float(x), float(base), float(z)

    @property
    def yaw(self) -> float:
        """The frame's turn about the vertical, radians."""
        return math.atan2(self._s, self._c)

    def sub(self, lx: float, lz: float, turn: float = 0.0, ly: float = 0.0) -> Placer:
        """A child frame at the local point (lx, ly, lz), turned ``turn`` radians more."""
        p = self.at(lx, ly, lz)
        return Placer(self.b, float(p[0]), float(p[2]), self.yaw + turn, float(p[1]))

    def at(self, lx: float, ly: float, lz: float) -> np.ndarray:
        """World position of the local point (lx, ly, lz)."""
        c, s = self._c, self._s  # rot_y(yaw) applied with plain floats (called very often)
        return np.array([self._x + c * lx + s * lz, self._y + ly, self._z - s * lx + c * lz])

    def box(
        self,
        lx: float,
        ly: float,
        lz: float,
        hx: float,
        hy: float,
        hz: float,
        mat: int,
        rot: np.ndarray | None = None,
        shadow: bool | int = True,
    ) -> None:
        """A box whose bottom is at height ``ly`` (centre lx, lz), half-sizes hx, hy, hz."""
        r = self.rot if rot is None else self.rot @ rot
        self.b.box(self.at(lx, ly + hy, lz), (hx, hy, hz), mat, r, shadow=shadow)

    def cbox(
        self,
        lx: float,
        ly: float,
        lz: float,
        hx: float,
        hy: float,
        hz: float,
        mat: int,
        rot: np.ndarray | None = None,
        shadow: bool | int = True,
    ) -> None:
        """A box centred at (lx, ly, lz)."""
        r = self.rot if rot is None else self.rot @ rot
        self.b.box(self.at(lx, ly, lz), (hx, hy, hz), mat, r, shadow=shadow)

    def cyl(
        self,
        lx: float,
        ly: float,
        lz: float,
        r: float,
        height: float,
        mat: int,
        taper: float = 1.0,
        shadow: bool | int = True,
    ) -> None:
        """An upright cylinder (or frustum) standing at height ``ly``."""
        self.b.cylinder(
            self.at(lx, ly + height / 2, lz),
            r,
            height / 2,
            mat,
            self.rot,
            taper=taper,
            shadow=shadow,
        )

    def rod(
        self, a: Sequence[float], b: Sequence[float], r: float, mat: int, taper: float = 1.0
    ) -> None:
        """A cylinder from local point ``a`` to ``b``."""
        self.b.cylinder_between(self.at(*a), self.at(*b), r, mat, taper=taper)

    def capsule(self, a: Sequence[float], b: Sequence[float], r: float, mat: int) -> None:
        """A capsule from local point ``a`` to ``b``."""
        self.b.capsule(self.at(*a), self.at(*b), r, mat)

    def sphere(self, lx: float, ly: float, lz: float, r: float, mat: int) -> None:
        """A sphere centred at (lx, ly, lz)."""
        self.b.sphere(self.at(lx, ly, lz), r, mat)

    def ellipsoid(
        self,
        lx: float,
        ly: float,
        lz: float,
        rx: float,
        ry: float,
        rz: float,
        mat: int,
        rot: np.ndarray | None = None,
    ) -> None:
        """An ellipsoid centred at (lx, ly, lz)."""
        r = self.rot if rot is None else self.rot @ rot
        self.b.ellipsoid(self.at(lx, ly, lz), (rx, ry, rz), mat, r)


# --------------------------------------------------------------------------- materials


def paint(
    b: SceneBuilder,
    rng: np.random.Generator,
    palette: Sequence[RGB] = WALL_PAINTS,
    noise: float = 0.12,
    spec: float = 0.03,
) -> int:
    """A matte painted surface."""
    return b.material(
        Tex.FLAT,
        color(rng, palette),
        noise=noise,
        spec=spec,
        noise_scale=float(rng.uniform(0.5, 3.0)),
    )


def wood(
    b: SceneBuilder, rng: np.random.Generator, planks: float = 10.0, base: RGB | None = None
) -> int:
    """Wood with grain; ``planks`` is the plank width in metres (large: one board)."""
    a = jitter(rng, base) if base is not None else color(rng, WOODS)
    dark = jitter(rng, tuple(0.6 * c for c in a), 0.05)
    return b.material(
        Tex.WOOD,
        a,
        dark,
        scale=float(rng.uniform(0.3, 0.8)),
        noise=0.1,
        spec=float(rng.uniform(0.05, 0.25)),
        shine=30.0,
        param2=planks,
        noise_scale=2.0,
    )


def fabric(b: SceneBuilder, rng: np.random.Generator) -> int:
    """Upholstery or cloth: plain, woven, striped or checked."""
    a = color(rng, FABRICS)
    roll = rng.random()
    if roll < 0.55:
        return b.material(
            Tex.NOISE,
            a,
            jitter(rng, tuple(0.8 * c for c in a)),
            noise=0.15,
            spec=0.01,
            noise_scale=0.3,
        )
    other = color(rng, FABRICS)
    if roll < 0.8:
        return b.material(
            Tex.STRIPES,
            a,
            other,
            scale=float(rng.uniform(0.03, 0.15)),
            param1=float(rng.uniform(0.2, 0.6)),
            noise=0.1,
            spec=0.01,
        )
    return b.material(
        Tex.FABRIC,
        a,
        other,
        scale=float(rng.uniform(0.04, 0.12)),
        param1=0.35,
        noise=0.1,
        spec=0.01,
    )


def metal(b: SceneBuilder, rng: np.random.Generator, rgb: RGB | None = None) -> int:
    """Brushed or painted metal: glossy."""
    a = jitter(rng, rgb) if rgb is not None else color(rng, METALS, 0.03)
    return b.material(Tex.FLAT, a, noise=0.05, spec=0.5, shine=60.0, reflect=0.4)


def plastic(b: SceneBuilder, rng: np.random.Generator, palette: Sequence[RGB] = FABRICS) -> int:
    """A saturated, slightly glossy colour (toys, bins, mugs)."""
    return b.material(Tex.FLAT, color(rng, palette, 0.1), noise=0.05, spec=0.3, shine=40.0)


def glass(b: SceneBuilder, rng: np.random.Generator, tint: RGB = (0.08, 0.1, 0.12)) -> int:
    """Dark glass that mirrors the sky (car windows, screens)."""
    return b.material(
        Tex.FLAT, jitter(rng, tint, 0.1), noise=0.02, spec=0.9, shine=120.0, reflect=0.8
    )


def leaves(b: SceneBuilder, rng: np.random.Generator, rgb: RGB | None = None) -> int:
    """Foliage clumps: light leaves over dark gaps, a little waxy shine."""
    a = jitter(rng, rgb, 0.08) if rgb is not None else color(rng, FOLIAGE, 0.08)
    dark = tuple(c * 0.3 for c in a)
    return b.material(
        Tex.FOLIAGE,
        a,
        dark,
        scale=float(rng.uniform(0.6, 1.4)),
        noise=0.25,
        spec=0.06,
        shine=12.0,
        noise_scale=2.0,
    )


def bark(b: SceneBuilder, rng: np.random.Generator) -> int:
    """Tree bark."""
    a = jitter(rng, (0.32, 0.25, 0.19), 0.1)
    return b.material(Tex.NOISE, a, tuple(c * 0.5 for c in a), noise=0.2, noise_scale=0.25)


def stone(b: SceneBuilder, rng: np.random.Generator) -> int:
    """Rock or concrete."""
    grey = float(rng.uniform(0.35, 0.6))
    a = jitter(rng, (grey, grey * 0.97, grey * 0.92), 0.03)
    return b.material(
        Tex.NOISE, a, tuple(c * 0.6 for c in a), noise=0.3, noise_scale=float(rng.uniform(0.3, 1.5))
    )


def emissive(b: SceneBuilder, rgb: RGB, strength: float) -> int:
    """A glowing surface (lamp shades, screens, lit windows)."""
    return b.material(Tex.FLAT, rgb, noise=0.02, emit=strength)


# --------------------------------------------------------------------------- furniture


def table(
    pl: Placer,
    rng: np.random.Generator,
    w: float,
    d: float,
    h: float,
    top: int | None = None,
    legs: int | None = None,
) -> float:
    """A table ``w`` × ``d`` metres, ``h`` high; returns the height of its top surface."""
    b = pl.b
    top = wood(b, rng) if top is None else top
    legs = top if legs is None else legs
    thick = float(rng.uniform(0.025, 0.05))
    if rng.random() < 0.2 and abs(w - d) < 0.3:  # round pedestal table
        r = min(w, d) / 2
        pl.cyl(0, h - thick, 0, r, thick, top)
        pl.cyl(0, 0.02, 0, 0.05, h - thick - 0.02, legs)
        pl.cyl(0, 0, 0, r * 0.45, 0.02, legs)
        return h
    pl.box(0, h - thick, 0, w / 2, thick / 2, d / 2, top)
    inset = float(rng.uniform(0.03, 0.09))
    lw = float(rng.uniform(0.015, 0.035))
    round_legs = rng.random() < 0.35
    for sx in (-1, 1):
        for sz in (-1, 1):
            x, z = sx * (w / 2 - inset - lw), sz * (d / 2 - inset - lw)
            if round_legs:
                pl.cyl(x, 0, z, lw, h - thick, legs, taper=float(rng.uniform(0.6, 1.0)))
            else:
                pl.box(x, 0, z, lw, (h - thick) / 2, lw, legs)
    if rng.random() < 0.5:  # apron under the top
        ah = 0.05
        pl.box(0, h - thick - 2 * ah, d / 2 - inset - lw, w / 2 - inset, ah, 0.01, legs)
        pl.box(0, h - thick - 2 * ah, -(d / 2 - inset - lw), w / 2 - inset, ah, 0.01, legs)
    return h


def chair(
    pl: Placer, rng: np.random.Generator, mat: int | None = None, seat: int | None = None
) -> None:
    """A dining or desk chair facing +z (backrest at -z)."""
    b = pl.b
    mat = wood(b, rng) if mat is None else mat
    seat = mat if seat is None else seat
    sw, sd, sh = float(rng.uniform(0.2, 0.24)), float(rng.uniform(0.2, 0.24)), 0.45
    if rng.random() < 0.3:  # office chair: column, star base on castors
        pl.box(0, sh, 0, sw, 0.04, sd, seat)
        pl.cyl(0, 0.1, 0, 0.025, sh - 0.1, mat)
        for k in range(5):
            a = 2 * math.pi * k / 5
            pl.rod((0, 0.08, 0), (0.3 * math.cos(a), 0.06, 0.3 * math.sin(a)), 0.015, mat)
            pl.sphere(0.3 * math.cos(a), 0.03, 0.3 * math.sin(a), 0.03, mat)
        pl.box(0, sh + 0.15, -sd + 0.02, sw * 0.9, 0.22, 0.03, seat, rot=rot_x(-0.12))
        return
    pl.box(0, sh - 0.04, 0, sw, 0.02, sd, seat)
    lw = 0.018
    for sx in (-1, 1):
        for sz in (-1, 1):
            pl.box(sx * (sw - lw), 0, sz * (sd - lw), lw, (sh - 0.04) / 2, lw, mat)
    top = sh + float(rng.uniform(0.35, 0.5))
    for sx in (-1, 1):
        pl.box(sx * (sw - lw), sh - 0.02, -(sd - lw), lw, (top - sh + 0.02) / 2, lw, mat)
    if rng.random() < 0.5:
        pl.box(0, top - 0.18, -(sd - lw), sw - lw, 0.09, 0.012, mat)
    else:
        for k in range(3):
            pl.box(0, sh + 0.06 + k * (top - sh - 0.08) / 3, -(sd - lw), sw - lw, 0.025, 0.01, mat)


def sofa(pl: Placer, rng: np.random.Generator, w: float, arm: bool = True) -> None:
    """A sofa (or armchair when narrow) ``w`` metres wide facing +z."""
    b = pl.b
    cloth = fabric(b, rng)
    d = float(rng.uniform(0.8, 0.95))
    seat_h = float(rng.uniform(0.38, 0.45))
    back_h = float(rng.uniform(0.75, 0.9))
    aw = float(rng.uniform(0.1, 0.2)) if arm else 0.0
    feet = wood(b, rng) if rng.random() < 0.6 else metal(b, rng)
    foot = 0.08
    for sx in (-1, 1):
        for sz in (-1, 1):
            pl.cyl(sx * (w / 2 - 0.06), 0, sz * (d / 2 - 0.06), 0.02, foot, feet, taper=0.7)
    pl.box(0, foot, 0, w / 2, (seat_h - 0.12 - foot) / 2, d / 2, cloth)
    pl.box(0, foot, -d / 2 + 0.1, w / 2, (back_h - foot) / 2, 0.1, cloth)
    if arm:
        arm_h = float(rng.uniform(0.55, 0.65))
        for sx in (-1, 1):
            pl.box(sx * (w / 2 - aw / 2), foot, 0, aw / 2, (arm_h - foot) / 2, d / 2, cloth)
    inner = w - 2 * aw
    seats = max(1, round(inner / 0.65))
    cw = inner / seats
    for k in range(seats):
        x = -inner / 2 + cw * (k + 0.5)
        pl.box(x, seat_h - 0.12, 0.1, cw / 2 - 0.01, 0.06, d / 2 - 0.21, cloth)
        if rng.random() < 0.7:
            pl.box(
                x,
                seat_h,
                -d / 2 + 0.26,
                cw / 2 - 0.02,
                (back_h - seat_h) / 2 - 0.02,
                0.07,
                cloth,
                rot=rot_x(-0.15),
            )
    if rng.random() < 0.6:  # throw cushions
        for sx in (-1, 1):
            if rng.random() < 0.7:
                pl.ellipsoid(
                    sx * (inner / 2 - 0.22),
                    seat_h + 0.2,
                    -d / 2 + 0.38,
                    0.2,
                    0.18,
                    0.07,
                    fabric(b, rng),
                    rot=rot_x(-0.3) @ rot_z(sx * 0.2),
                )


def bed(pl: Placer, rng: np.random.Generator, w: float) -> None:
    """A bed ``w`` wide (2 m long) with the headboard at -z."""
    b = pl.b
    frame = wood(b, rng) if rng.random() < 0.6 else fabric(b, rng)
    length = 2.05
    pl.box(0, 0.05, 0, w / 2, 0.13, length / 2, frame)
    for sx in (-1, 1):
        for sz in (-1, 1):
            pl.box(sx * (w / 2 - 0.04), 0, sz * (length / 2 - 0.04), 0.03, 0.025, 0.03, frame)
    sheet = b.material(
        Tex.NOISE, color(rng, [(0.95, 0.95, 0.93), (0.85, 0.88, 0.92)]), (0.8, 0.8, 0.8), noise=0.05
    )
    pl.box(0, 0.31, 0.02, w / 2 - 0.03, 0.1, length / 2 - 0.05, sheet)
    duvet = fabric(b, rng)
    pl.box(0, 0.38, 0.25, w / 2 + 0.02, 0.06, length / 2 - 0.3, duvet)
    pl.box(0, 0.05, -length / 2 - 0.03, w / 2 + 0.03, float(rng.uniform(0.4, 0.6)), 0.04, frame)
    pillows = 2 if w > 1.2 else 1
    for k in range(pillows):
        x = (k - (pillows - 1) / 2) * w / pillows
        pl.ellipsoid(x, 0.5, -length / 2 + 0.28, w / pillows / 2 - 0.06, 0.08, 0.2, sheet)


def shelf(
    pl: Placer, rng: np.random.Generator, w: float, h: float, d: float = 0.32, books: bool = True
) -> list[float]:
    """A bookcase (back at -z) with books; returns the shelf heights."""
    b = pl.b
    mat = wood(b, rng) if rng.random() < 0.7 else paint(b, rng)
    t = 0.018
    for sx in (-1, 1):
        pl.box(sx * (w / 2 - t), 0, 0, t, h / 2, d / 2, mat)
    pl.box(0, h - t * 2, 0, w / 2, t, d / 2, mat)
    pl.box(0, 0, 0, w / 2 - t, 0.04, d / 2, mat)
    pl.box(0, 0, -d / 2 + 0.005, w / 2 - t, h / 2, 0.005, mat, shadow=False)
    levels = max(2, int(h / rng.uniform(0.3, 0.4)))
    heights = [0.08 + k * (h - 0.1) / levels for k in range(levels)]
    book_mats = [
        b.material(Tex.FLAT, color(rng, FABRICS + CLOTHES, 0.15), noise=0.1, spec=0.08)
        for _ in range(6)
    ]
    for k, y in enumerate(heights):
        if k > 0:
            pl.box(0, y - t, 0, w / 2 - t, t, d / 2 - 0.01, mat)
        if not books or rng.random() < 0.15:
            continue
        gap = heights[k + 1] - y - 0.03 if k + 1 < len(heights) else h - y - 0.06
        x = -w / 2 + 2 * t + float(rng.uniform(0, 0.1))
        while x < w / 2 - 2 * t - 0.04:
            if rng.random() < 0.12:  # a gap, a box or an ornament
                x += float(rng.uniform(0.05, 0.2))
                continue
            bw = float(rng.uniform(0.015, 0.045))
            bh = min(gap, float(rng.uniform(0.16, 0.3)))
            bd = float(rng.uniform(0.14, min(0.24, d - 0.04)))
            if x + 2 * bw > w / 2 - 2 * t:
                break
            pl.box(
                x + bw,
                y,
                -d / 2 + 0.02 + bd / 2,
                bw,
                bh / 2,
                bd / 2,
                book_mats[int(rng.integers(len(book_mats)))],
            )
            x += 2 * bw + 0.002
    return heights


def cabinet(
    pl: Placer,
    rng: np.random.Generator,
    w: float,
    h: float,
    d: float = 0.5,
    mat: int | None = None,
    top: int | None = None,
) -> float:
    """A cabinet or dresser (back at -z) with drawers or doors; returns its height."""
    b = pl.b
    mat = (wood(b, rng) if rng.random() < 0.5 else paint(b, rng)) if mat is None else mat
    top = mat if top is None else top
    pl.box(0, 0.08, 0, w / 2, (h - 0.08) / 2, d / 2, mat)
    pl.box(0, 0, 0.02, w / 2 - 0.02, 0.04, d / 2 - 0.04, metal(b, rng, (0.1, 0.1, 0.1)))
    pl.box(0, h, 0.01, w / 2 + 0.01, 0.015, d / 2 + 0.01, top)
    handle = metal(b, rng)
    if rng.random() < 0.5:  # drawers
        rows = max(2, int((h - 0.1) / 0.22))
        dh = (h - 0.1) / rows
        cols = 2 if w > 1.0 else 1
        for r in range(rows):
            for c in range(cols):
                x = -w / 2 + w / cols * (c + 0.5)
                y = 0.1 + r * dh
                pl.box(x, y + 0.008, d / 2, w / cols / 2 - 0.012, dh / 2 - 0.008, 0.008, mat)
                pl.cbox(x, y + dh * 0.55, d / 2 + 0.02, 0.05, 0.008, 0.01, handle)
    else:  # doors
        cols = max(1, round(w / 0.5))
        for c in range(cols):
            x = -w / 2 + w / cols * (c + 0.5)
            pl.box(x, 0.1, d / 2, w / cols / 2 - 0.006, (h - 0.12) / 2, 0.008, mat)
            side = 1 if c % 2 == 0 else -1
            pl.cbox(
                x + side * (w / cols / 2 - 0.05), h * 0.6, d / 2 + 0.02, 0.008, 0.06, 0.01, handle
            )
    return h + 0.015


def lamp_floor(pl: Placer, rng: np.random.Generator) -> None:
    """A floor lamp: base, pole, glowing shade."""
    b = pl.b
    m = metal(b, rng)
    h = float(rng.uniform(1.4, 1.7))
    pl.cyl(0, 0, 0, 0.15, 0.02, m)
    pl.cyl(0, 0.02, 0, 0.012, h - 0.2, m)
    shade = emissive(b, color(rng, [(0.95, 0.9, 0.8), (0.9, 0.85, 0.7)]), 0.6)
    pl.cyl(0, h - 0.25, 0, 0.22, 0.25, shade, taper=0.65)


def lamp_table(pl: Placer, rng: np.random.Generator, y: float) -> None:
    """A small table lamp standing at height ``y``."""
    b = pl.b
    base = plastic(b, rng) if rng.random() < 0.5 else metal(b, rng)
    pl.cyl(0, y, 0, 0.06, 0.02, base)
    pl.cyl(0, y + 0.02, 0, 0.01, 0.25, base)
    shade = emissive(b, color(rng, [(0.95, 0.9, 0.8), (0.85, 0.8, 0.7)]), 0.5)
    pl.cyl(0, y + 0.22, 0, 0.13, 0.17, shade, taper=0.7)


def plant(pl: Placer, rng: np.random.Generator, y: float = 0.0, size: float = 1.0) -> None:
    """A potted plant of roughly ``size`` metres standing at height ``y``."""
    b = pl.b
    pot = plastic(b, rng, [(0.7, 0.4, 0.3), (0.9, 0.9, 0.88), (0.2, 0.2, 0.2), (0.5, 0.5, 0.45)])
    pr = 0.12 * size + 0.04
    ph = 0.25 * size + 0.05
    pl.cyl(0, y, 0, pr * 0.75, ph, pot, taper=1.33)
    green = leaves(b, rng)
    if rng.random() < 0.5:  # bushy
        for _ in range(int(rng.integers(3, 7))):
            r = float(rng.uniform(0.12, 0.25)) * size
            pl.ellipsoid(
                float(rng.normal(0, 0.08 * size)),
                y + ph + r * 0.8 + float(rng.uniform(0, 0.25 * size)),
                float(rng.normal(0, 0.08 * size)),
                r,
                r * 0.8,
                r,
                green,
            )
    else:  # stems with leaf clumps
        stem = bark(b, rng)
        for _ in range(int(rng.integers(2, 5))):
            top = np.array([rng.normal(0, 0.15), rng.uniform(0.5, 1.0), rng.normal(0, 0.15)]) * size
            pl.rod((0, y + ph, 0), (top[0], y + ph + top[1], top[2]), 0.01 * size + 0.004, stem)
            pl.ellipsoid(
                top[0], y + ph + top[1], top[2], 0.18 * size, 0.12 * size, 0.18 * size, green
            )


def rug(pl: Placer, rng: np.random.Generator, w: float, d: float) -> None:
    """A flat rug."""
    b = pl.b
    a, c = color(rng, FABRICS), color(rng, FABRICS)
    tex = [Tex.STRIPES, Tex.CHECKER, Tex.FABRIC, Tex.NOISE][int(rng.integers(4))]
    m = b.material(
        tex, a, c, scale=float(rng.uniform(0.1, 0.4)), param1=0.5, noise=0.2, noise_scale=0.5
    )
    pl.box(0, 0, 0, w / 2, 0.006, d / 2, m, shadow=False)


def picture(
    b: SceneBuilder, rng: np.random.Generator, center: np.ndarray, yaw: float, w: float, h: float
) -> None:
    """A framed picture on a wall, its face towards the local +z of ``yaw``."""
    pl = Placer(b, float(center[0]), float(center[2]), yaw, float(center[1]))
    frame = (
        wood(b, rng) if rng.random() < 0.5 else paint(b, rng, [(0.1, 0.1, 0.1), (0.9, 0.9, 0.9)])
    )
    pl.cbox(0, 0, 0.012, w / 2, h / 2, 0.012, frame)
    tex = [Tex.NOISE, Tex.GRADIENT, Tex.STRIPES, Tex.MARBLE][int(rng.integers(4))]
    art = b.material(
        tex,
        color(rng, FABRICS + FOLIAGE, 0.2),
        color(rng, FABRICS + WALL_PAINTS),
        scale=float(rng.uniform(0.1, 0.5)),
        param1=0.4,
        noise=0.3,
        noise_scale=float(rng.uniform(0.1, 0.4)),
    )
    pl.cbox(0, 0, 0.026, w / 2 - 0.04, h / 2 - 0.04, 0.003, art, shadow=False)


def side_table(pl: Placer, rng: np.random.Generator) -> None:
    """A small side table or nightstand with a lamp, a plant or a few things on it."""
    w = float(rng.uniform(0.35, 0.55))
    y = table(pl, rng, w, w, float(rng.uniform(0.45, 0.65)))
    roll = rng.random()
    if roll < 0.4:
        lamp_table(pl, rng, y)
    elif roll < 0.6:
        plant(pl, rng, y, float(rng.uniform(0.3, 0.6)))
    else:
        clutter(pl, rng, -w / 2 + 0.06, w / 2 - 0.06, -w / 2 + 0.06, w / 2 - 0.06, y, 2)


def stool(pl: Placer, rng: np.random.Generator) -> None:
    """A round stool or an upholstered ottoman."""
    b = pl.b
    if rng.random() < 0.5:
        m = wood(b, rng) if rng.random() < 0.6 else metal(b, rng)
        h = float(rng.uniform(0.45, 0.75))
        pl.cyl(0, h - 0.04, 0, 0.17, 0.04, m)
        for k in range(4):
            a = math.pi / 4 + k * math.pi / 2
            pl.rod(
                (0.12 * math.cos(a), h - 0.04, 0.12 * math.sin(a)),
                (0.19 * math.cos(a), 0.0, 0.19 * math.sin(a)),
                0.015,
                m,
            )
    else:
        s = float(rng.uniform(0.25, 0.45))
        pl.box(0, 0.04, 0, s, 0.2, s * float(rng.uniform(0.7, 1.0)), fabric(b, rng))


def radiator(pl: Placer, rng: np.random.Generator, w: float) -> None:
    """A panel radiator (ribbed) standing against the wall behind it."""
    b = pl.b
    m = b.material(
        Tex.STRIPES,
        (0.92, 0.92, 0.9),
        (0.7, 0.7, 0.7),
        scale=0.06,
        param1=0.7,
        noise=0.05,
        spec=0.3,
    )
    pl.box(0, 0.12, 0, w / 2, 0.28, 0.04, m)


def wall_shelf(
    b: SceneBuilder, rng: np.random.Generator, x: float, y: float, z: float, yaw: float, w: float
) -> None:
    """A floating shelf board at height ``y`` with books or ornaments on it."""
    pl = Placer(b, x, z, yaw, 0.0)
    m = wood(b, rng) if rng.random() < 0.6 else paint(b, rng)
    pl.box(0, y, 0.11, w / 2, 0.015, 0.11, m)
    if rng.random() < 0.6:
        xb = -w / 2 + 0.03
        while xb < w / 2 - 0.08:
            bw = float(rng.uniform(0.012, 0.035))
            bh = float(rng.uniform(0.14, 0.24))
            pl.box(
                xb + bw,
                y + 0.03,
                0.1,
                bw,
                bh / 2,
                0.08,
                b.material(Tex.FLAT, color(rng, FABRICS + CLOTHES, 0.15), noise=0.08),
            )
            xb += 2 * bw + 0.002
            if rng.random() < 0.08:
                break
    else:
        clutter(pl, rng, -w / 2 + 0.06, w / 2 - 0.06, 0.06, 0.16, y + 0.03, 3)


def mirror(
    b: SceneBuilder, rng: np.random.Generator, center: np.ndarray, yaw: float, w: float, h: float
) -> None:
    """A framed wall mirror (mirrors the sky/ambient light at grazing angles)."""
    pl = Placer(b, float(center[0]), float(center[2]), yaw, float(center[1]))
    pl.cbox(0, 0, 0.012, w / 2, h / 2, 0.012, metal(b, rng))
    glassm = b.material(Tex.FLAT, (0.45, 0.48, 0.5), noise=0.02, spec=1.0, shine=200.0, reflect=1.0)
    pl.cbox(0, 0, 0.025, w / 2 - 0.025, h / 2 - 0.025, 0.002, glassm, shadow=False)


def clock(b: SceneBuilder, rng: np.random.Generator, center: np.ndarray, yaw: float) -> None:
    """A round wall clock: a flat disc with a rim."""
    pl = Placer(b, float(center[0]), float(center[2]), yaw, float(center[1]))
    r = float(rng.uniform(0.12, 0.22))
    face = b.material(Tex.FLAT, color(rng, [(0.95, 0.95, 0.93), (0.1, 0.1, 0.1)]), noise=0.02)
    b.cylinder(pl.at(0, 0, 0.02), r, 0.02, metal(b, rng), pl.rot @ rot_x(math.pi / 2))
    b.cylinder(pl.at(0, 0, 0.041), r * 0.9, 0.002, face, pl.rot @ rot_x(math.pi / 2), shadow=False)


def boxes(pl: Placer, rng: np.random.Generator) -> None:
    """A stack of cardboard boxes or storage crates."""
    b = pl.b
    y = 0.0
    for _ in range(int(rng.integers(1, 4))):
        s = rng.uniform(0.15, 0.3, 3)
        m = b.material(
            Tex.NOISE,
            color(rng, [(0.72, 0.58, 0.4), (0.62, 0.5, 0.35), (0.85, 0.85, 0.83), (0.3, 0.4, 0.6)]),
            noise=0.12,
            noise_scale=0.3,
        )
        pl.box(
            float(rng.normal(0, 0.03)),
            y,
            float(rng.normal(0, 0.03)),
            float(s[0]),
            float(s[1]),
            float(s[2]),
            m,
            rot=rot_y(float(rng.normal(0, 0.15))),
        )
        y += 2 * float(s[1])


def basket(pl: Placer, rng: np.random.Generator) -> None:
    """A waste basket, laundry basket or umbrella stand."""
    b = pl.b
    m = plastic(b, rng, [(0.3, 0.3, 0.3), (0.8, 0.78, 0.7), (0.55, 0.42, 0.28), (0.2, 0.3, 0.5)])
    r = float(rng.uniform(0.12, 0.25))
    pl.cyl(0, 0, 0, r, float(rng.uniform(0.25, 0.55)), m, taper=float(rng.uniform(1.0, 1.25)))


# --------------------------------------------------------------------------- small things


def small_object(pl: Placer, rng: np.random.Generator, x: float, y: float, z: float) -> float:
    """One tabletop object at (x, y, z) in the placer's frame; returns its footprint radius."""
    b = pl.b
    kind = int(rng.integers(12))
    if kind == 0:  # mug with handle
        r, h = float(rng.uniform(0.035, 0.045)), float(rng.uniform(0.08, 0.11))
        m = plastic(b, rng, WALL_PAINTS + FABRICS)
        pl.cyl(x, y, z, r, h, m)
        pl.capsule((x + r, y + h * 0.75, z), (x + r + 0.025, y + h * 0.5, z), 0.008, m)
        pl.capsule((x + r + 0.025, y + h * 0.5, z), (x + r, y + h * 0.25, z), 0.008, m)
        return r + 0.03
    if kind == 1:  # bottle
        r, h = float(rng.uniform(0.03, 0.045)), float(rng.uniform(0.2, 0.32))
        m = glass(b, rng, color(rng, [(0.1, 0.3, 0.1), (0.4, 0.25, 0.1), (0.6, 0.7, 0.7)]))
        pl.cyl(x, y, z, r, h * 0.65, m)
        pl.cyl(x, y + h * 0.65, z, r, h * 0.12, m, taper=0.35)
        pl.cyl(x, y + h * 0.77, z, r * 0.35, h * 0.2, m)
        pl.cyl(x, y + h * 0.97, z, r * 0.4, h * 0.03, metal(b, rng))
        return r
    if kind == 2:  # bowl (an open frustum, wider at the top)
        r = float(rng.uniform(0.06, 0.12))
        pl.cyl(x, y, z, r * 0.55, r * 0.6, plastic(b, rng, WALL_PAINTS), taper=1.8)
        return r
    if kind == 3:  # fruit
        m = b.material(
            Tex.NOISE,
            color(
                rng, [(0.8, 0.1, 0.05), (0.95, 0.55, 0.05), (0.5, 0.7, 0.1), (0.9, 0.8, 0.2)], 0.1
            ),
            noise=0.1,
            spec=0.3,
            noise_scale=0.05,
        )
        r = float(rng.uniform(0.03, 0.045))
        pl.ellipsoid(x, y + r * 0.9, z, r, r * 0.92, r, m)
        return r
    if kind == 4:  # book or a small stack
        m = b.material(Tex.FLAT, color(rng, FABRICS + CLOTHES, 0.15), noise=0.08)
        bw, bd = float(rng.uniform(0.07, 0.12)), float(rng.uniform(0.1, 0.15))
        yaw = float(rng.uniform(-0.6, 0.6))
        level = y
        for _ in range(int(rng.integers(1, 4))):
            th = float(rng.uniform(0.01, 0.025))
            pl.box(x, level, z, bw, th, bd, m, rot=rot_y(yaw + float(rng.normal(0, 0.1))))
            level += 2 * th
            m = b.material(Tex.FLAT, color(rng, FABRICS + CLOTHES, 0.15), noise=0.08)
        return max(bw, bd)
    if kind == 5:  # packaging box
        hx, hy, hz = (float(v) for v in rng.uniform(0.03, 0.12, 3))
        m = b.material(
            Tex.NOISE,
            color(rng, [(0.72, 0.58, 0.4), (0.9, 0.9, 0.88), *FABRICS]),
            noise=0.1,
            noise_scale=0.2,
        )
        pl.box(x, y, z, hx, hy, hz, m, rot=rot_y(float(rng.uniform(0, math.pi))))
        return max(hx, hz) * 1.4
    if kind == 6:  # can
        r = 0.033
        pl.cyl(x, y, z, r, 0.12, metal(b, rng, color(rng, CAR_PAINTS)))
        return r
    if kind == 7:  # glass
        r = float(rng.uniform(0.03, 0.04))
        pl.cyl(
            x,
            y,
            z,
            r * 0.85,
            float(rng.uniform(0.08, 0.14)),
            glass(b, rng, (0.6, 0.65, 0.65)),
            taper=1.18,
        )
        return r
    if kind == 8:  # plate
        r = float(rng.uniform(0.1, 0.14))
        pl.cyl(x, y, z, r, 0.015, plastic(b, rng, WALL_PAINTS))
        return r
    if kind == 9:  # vase
        r = float(rng.uniform(0.04, 0.07))
        m = plastic(b, rng, WALL_PAINTS + FABRICS)
        pl.ellipsoid(x, y + r * 1.2, z, r, r * 1.3, r, m)
        pl.cyl(x, y + r * 2.0, z, r * 0.45, r * 1.4, m, taper=1.3)
        return r
    if kind == 10:  # laptop, open
        m = metal(b, rng)
        yaw = float(rng.uniform(-0.5, 0.5))
        sub = pl.sub(x, z, yaw, y)
        sub.box(0, 0, 0, 0.16, 0.008, 0.11, m)
        sub.cbox(0, 0.11, -0.13, 0.16, 0.11, 0.005, m, rot=rot_x(-0.25))
        sub.cbox(
            0,
            0.11,
            -0.124,
            0.145,
            0.095,
            0.002,
            emissive(b, color(rng, [(0.3, 0.5, 0.8), (0.8, 0.8, 0.85), (0.2, 0.2, 0.25)]), 0.8),
            rot=rot_x(-0.25),
        )
        return 0.2
    # pen, remote, phone: thin flat things
    m = plastic(b, rng, [(0.1, 0.1, 0.1), (0.2, 0.3, 0.6), (0.7, 0.1, 0.1)])
    if rng.random() < 0.5:
        a = float(rng.uniform(0, math.pi))
        dx, dz = 0.07 * math.cos(a), 0.07 * math.sin(a)
        pl.capsule((x - dx, y + 0.006, z - dz), (x + dx, y + 0.006, z + dz), 0.006, m)
    else:
        pl.box(x, y, z, 0.035, 0.005, 0.075, m, rot=rot_y(float(rng.uniform(0, math.pi))))
    return 0.08


def clutter(
    pl: Placer,
    rng: np.random.Generator,
    x0: float,
    x1: float,
    z0: float,
    z1: float,
    y: float,
    count: int,
) -> None:
    """Up to ``count`` small objects on the surface [x0, x1] × [z0, z1] at height ``y``."""
    if x1 <= x0 or z1 <= z0:
        return
    placed: list[tuple[float, float, float]] = []
    for _ in range(count * 3):
        if len(placed) >= count:
            break
        x, z = float(rng.uniform(x0, x1)), float(rng.uniform(z0, z1))
        if any((x - px) ** 2 + (z - pz) ** 2 < (pr + 0.07) ** 2 for px, pz, pr in placed):
            continue
        r = small_object(pl, rng, x, y, z)
        placed.append((x, z, r))


# --------------------------------------------------------------------------- people


def person(
    b: SceneBuilder,
    rng: np.random.Generator,
    x: float,
    z: float,
    yaw: float,
    base: float = 0.0,
    height: float | None = None,
) -> None:
    """A standing or walking person of ``height`` metres facing +z of ``yaw``: capsule
    limbs and torso, a sphere head, shoes."""
    h = float(rng.uniform(1.55, 1.92)) if height is None else height
    s = h / 1.75
    pl = Placer(b, x, z, yaw, base)
    skin = b.material(Tex.FLAT, color(rng, SKIN, 0.04), noise=0.05, spec=0.1)
    top = b.material(Tex.NOISE, color(rng, CLOTHES, 0.1), noise=0.15, noise_scale=0.3)
    legs = b.material(
        Tex.NOISE, color(rng, CLOTHES[:4] + CLOTHES[7:8], 0.1), noise=0.15, noise_scale=0.3
    )
    hair = b.material(
        Tex.NOISE,
        color(rng, [(0.1, 0.07, 0.05), (0.3, 0.2, 0.1), (0.6, 0.45, 0.25), (0.5, 0.5, 0.5)], 0.1),
        noise=0.2,
        noise_scale=0.05,
    )
    shoe = b.material(Tex.FLAT, color(rng, [(0.1, 0.1, 0.1), (0.9, 0.9, 0.9), (0.4, 0.3, 0.2)]))
    stride = float(rng.uniform(0.0, 0.3)) * s
    hip = 0.92 * s
    for side, phase in ((-1, 1.0), (1, -1.0)):
        fx = side * 0.09 * s
        foot_z = phase * stride / 2
        knee = (fx, 0.48 * s, foot_z * 0.5 + 0.02 * s)
        pl.capsule((fx, hip, 0), knee, 0.065 * s, legs)
        pl.capsule(knee, (fx, 0.1 * s, foot_z), 0.05 * s, legs)
        pl.box(fx, 0, foot_z + 0.04 * s, 0.045 * s, 0.04 * s, 0.12 * s, shoe)
    pl.ellipsoid(0, hip + 0.02 * s, 0, 0.17 * s, 0.1 * s, 0.11 * s, legs)
    pl.capsule((0, hip + 0.12 * s, 0), (0, 1.36 * s, 0), 0.15 * s, top)
    pl.ellipsoid(0, 1.38 * s, 0, 0.2 * s, 0.08 * s, 0.1 * s, top)
    pl.capsule((0, 1.42 * s, 0), (0, 1.5 * s, 0), 0.05 * s, skin)
    pl.ellipsoid(0, 1.62 * s, 0.01 * s, 0.085 * s, 0.11 * s, 0.095 * s, skin)
    pl.ellipsoid(0, 1.66 * s, -0.015 * s, 0.092 * s, 0.09 * s, 0.1 * s, hair)
    swing = float(rng.uniform(-0.3, 0.3))
    for side in (-1, 1):
        sh = (side * 0.21 * s, 1.38 * s, 0)
        el = (side * 0.24 * s, 1.1 * s, side * swing * 0.2)
        hand = (side * 0.25 * s, 0.84 * s, side * swing * 0.5 + 0.05 * s)
        pl.capsule(sh, el, 0.05 * s, top)
        pl.capsule(el, hand, 0.042 * s, skin if rng.random() < 0.4 else top)
    if rng.random() < 0.2:  # a bag
        pl.box(0.28 * s, 0.75 * s, 0, 0.05 * s, 0.14 * s, 0.16 * s, plastic(b, rng, CLOTHES))


# --------------------------------------------------------------------------- vehicles


def car(
    b: SceneBuilder,
    rng: np.random.Generator,
    x: float,
    z: float,
    yaw: float,
    base: float = 0.0,
    detail: float = 1.0,
) -> tuple[float, float]:
    """A car, SUV or van facing +z of ``yaw``; returns its half width and half length.
    Below ``detail`` 0.5 (far away) lamps, mirrors and hubcaps are left out."""
    kind = rng.random()
    if kind < 0.55:
        length, width, height, cabin = rng.uniform(3.9, 4.8), rng.uniform(1.7, 1.85), 1.45, 0.5
    elif kind < 0.85:
        length, width, height, cabin = rng.uniform(4.4, 5.0), rng.uniform(1.8, 1.95), 1.75, 0.62
    else:
        length, width, height, cabin = rng.uniform(4.8, 5.6), rng.uniform(1.9, 2.05), 2.1, 0.8
    length, width = float(length), float(width)
    pl = Placer(b, x, z, yaw, base)
    body = b.material(
        Tex.FLAT, color(rng, CAR_PAINTS, 0.03), noise=0.04, spec=0.7, shine=80.0, reflect=0.35
    )
    win = glass(b, rng)
    dark = b.material(Tex.FLAT, (0.06, 0.06, 0.06), noise=0.05, spec=0.05)
    rim = metal(b, rng, (0.7, 0.7, 0.72))
    wr = float(rng.uniform(0.3, 0.36))
    floor = 0.18
    belt = wr * 2 + 0.12 if height < 2 else 1.0
    # Lower body, bumpers, cabin (glass), roof.
    pl.box(0, floor, 0, width / 2, (belt - floor) / 2, length / 2 - 0.1, body)
    pl.box(0, floor + 0.05, 0, width / 2 - 0.04, 0.12, length / 2, dark)
    cab_len = length * cabin
    cab_z = -length * 0.08 if cabin < 0.7 else -length * 0.05
    roof_y = height - 0.05
    pl.box(0, belt, cab_z, width / 2 - 0.1, (roof_y - belt) / 2, cab_len / 2, win)
    pl.box(0, roof_y, cab_z, width / 2 - 0.12, 0.03, cab_len / 2 - 0.05, body)
    for sz in (-1, 1):  # pillars at the windscreen and rear window
        pl.box(
            0,
            belt,
            cab_z + sz * (cab_len / 2 - 0.04),
            width / 2 - 0.08,
            (roof_y - belt) / 2,
            0.04,
            body,
        )
    if cabin < 0.7:  # bonnet slope in front of the windscreen
        pl.box(
            0,
            belt - 0.08,
            cab_z + cab_len / 2 + 0.2,
            width / 2 - 0.05,
            0.06,
            0.35,
            body,
            rot=rot_x(0.25),
        )
    lamp = emissive(b, (0.95, 0.95, 0.9), 0.3)
    tail = emissive(b, (0.7, 0.05, 0.05), 0.4)
    axis = pl.rot @ rot_z(math.pi / 2)
    for sx in (-1, 1):
        if detail >= 0.5:
            pl.box(sx * (width / 2 - 0.22), belt - 0.18, length / 2 - 0.1, 0.15, 0.05, 0.02, lamp)
            pl.box(sx * (width / 2 - 0.15), belt - 0.2, -length / 2 + 0.1, 0.1, 0.07, 0.02, tail)
            mirror_z = cab_z + cab_len / 2 - 0.1
            pl.cbox(sx * (width / 2 + 0.06), belt + 0.05, mirror_z, 0.05, 0.04, 0.08, body)
        for sz in (-1, 1):
            wz = sz * (length / 2 - wr - 0.45)
            b.cylinder(pl.at(sx * (width / 2 - 0.12), wr, wz), wr, 0.11, dark, axis)
            if detail >= 0.5:
                hub = pl.at(sx * (width / 2 - 0.005), wr, wz)
                b.cylinder(hub, wr * 0.6, 0.01, rim, axis)
    return width / 2, length / 2


# --------------------------------------------------------------------------- outdoor props


def tree(
    b: SceneBuilder,
    rng: np.random.Generator,
    x: float,
    z: float,
    base: float = 0.0,
    height: float | None = None,
    conifer: bool | None = None,
    detail: float = 1.0,
) -> float:
    """A deciduous or conifer tree; returns its crown radius. ``detail`` in [0, 1] scales
    how many blobs and limbs make the crown (distant trees need fewer)."""
    conifer = rng.random() < 0.35 if conifer is None else conifer
    h = float(rng.uniform(5.0, 14.0)) if height is None else height
    trunk = bark(b, rng)
    pl = Placer(b, x, z, float(rng.uniform(0, 2 * math.pi)), base - 0.1)
    if conifer:
        green = leaves(
            b, rng, color(rng, [(0.12, 0.22, 0.12), (0.16, 0.26, 0.14), (0.2, 0.3, 0.18)])
        )
        r = h * float(rng.uniform(0.16, 0.26))
        pl.cyl(0, 0, 0, 0.08 + 0.012 * h, h * 0.35, trunk, taper=0.8)
        tiers = int(rng.integers(3, 6)) if detail > 0.3 else 2
        for k in range(tiers):
            y0 = h * (0.12 + 0.78 * k / tiers)
            tr = r * (1.0 - 0.65 * k / tiers) * float(rng.uniform(0.9, 1.1))
            lean = rng.normal(0, 0.03 * h, 2)
            pl.cyl(
                float(lean[0]),
                y0,
                float(lean[1]),
                tr,
                h * 0.9 / tiers * 1.7,
                green,
                taper=float(rng.uniform(0.0, 0.12)),
            )
        return r
    green = leaves(b, rng)
    shape = rng.random()  # round, tall and narrow, or wide and spreading
    crown_h = h * float(rng.uniform(0.45, 0.65))
    if shape < 0.5:
        rx = crown_h * float(rng.uniform(0.45, 0.6))
    elif shape < 0.75:
        rx = crown_h * float(rng.uniform(0.25, 0.38))
    else:
        rx = crown_h * float(rng.uniform(0.65, 0.85))
    ry = crown_h / 2
    trunk_top = h - crown_h * 0.75
    radius = 0.06 + 0.013 * h
    pl.cyl(0, 0, 0, radius, trunk_top + 0.3, trunk, taper=0.6)
    cy = h - ry
    # Limbs from the top of the trunk towards the crown's edge.
    for _ in range(int(rng.integers(2, 5)) if detail > 0.5 else 0):
        a = float(rng.uniform(0, 2 * math.pi))
        reach = float(rng.uniform(0.4, 0.8))
        pl.rod(
            (0, trunk_top, 0),
            (
                rx * reach * math.cos(a),
                cy + ry * float(rng.uniform(-0.3, 0.4)),
                rx * reach * math.sin(a),
            ),
            radius * 0.45,
            trunk,
            taper=0.4,
        )
    # The crown: a core and many overlapping clumps near its envelope, so its outline is
    # lumpy rather than one smooth ball.
    pl.ellipsoid(0, cy, 0, rx * 0.75, ry * 0.75, rx * 0.75, green)
    clumps = max(3, round((6 + rng.integers(0, 8)) * detail))
    # All the clumps' random draws at once (this runs for every tree in a forest).
    dirs = rng.normal(0, 1, (clumps, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True) + 1e-9
    upward = rng.random(clumps) < 0.7  # more clumps up top
    dirs[:, 1] = np.where(upward, np.abs(dirs[:, 1]) * 0.8, dirs[:, 1])
    draws = rng.uniform(0, 1, (clumps, 3))
    for (dx, dy, dz), (f, size, squash) in zip(dirs.tolist(), draws.tolist(), strict=True):
        f = 0.55 + 0.3 * f
        cr = rx * (0.25 + 0.2 * size)
        pl.ellipsoid(
            dx * rx * f, cy + dy * ry * f, dz * rx * f, cr, cr * (0.7 + 0.3 * squash), cr, green
        )
    return rx


def bare_tree(
    b: SceneBuilder,
    rng: np.random.Generator,
    x: float,
    z: float,
    base: float = 0.0,
    height: float | None = None,
    levels: int = 4,
) -> None:
    """A leafless tree: a trunk that forks ``levels`` times into two or three thinner,
    shorter limbs each, down to twigs two to four centimetres across (winter trees,
    saplings: the thin branches against the sky that depth maps blur)."""
    h = float(rng.uniform(4.0, 9.0)) if height is None else height
    wood_mat = bark(b, rng)
    trunk_top = h * float(rng.uniform(0.3, 0.45))
    radius = 0.05 + 0.015 * h
    start = np.array([x, base - 0.1, z])
    top = np.array([x + float(rng.normal(0, 0.1)), base + trunk_top, z + float(rng.normal(0, 0.1))])
    b.cylinder_between(start, top, radius, wood_mat, taper=0.75)
    # (base point, direction, length, radius) of the limbs still to grow.
    limbs = [(top, np.array([0.0, 1.0, 0.0]), (h - trunk_top) * 0.45, radius * 0.75)]
    for _ in range(levels):
        grown = []
        for origin, direction, length, r in limbs:
            for _ in range(int(rng.integers(2, 4))):
                bend = rng.normal(0, 0.55, 3)
                d = direction + bend + np.array([0.0, 0.35, 0.0])  # branches reach upwards
                d /= np.linalg.norm(d)
                reach = length * float(rng.uniform(0.7, 1.05))
                end = origin + d * reach
                b.cylinder_between(origin, end, r, wood_mat, taper=0.7)
                grown.append((end, d, reach * 0.72, r * 0.55))
        limbs = grown


def pole(
    b: SceneBuilder,
    rng: np.random.Generator,
    x: float,
    z: float,
    height: float,
    radius: float,
    base: float = 0.0,
    mat: int | None = None,
) -> np.ndarray:
    """A plain upright pole (utility, flag or washing-line post); returns its top point."""
    m = metal(b, rng, color(rng, METALS)) if mat is None else mat
    b.cylinder((x, base + height / 2, z), radius, height / 2, m)
    return np.array([x, base + height, z])


def bush(
    b: SceneBuilder,
    rng: np.random.Generator,
    x: float,
    z: float,
    base: float = 0.0,
    size: float = 1.0,
) -> None:
    """A low cluster of foliage blobs."""
    green = leaves(b, rng, color(rng, FOLIAGE[:6] + FOLIAGE[8:], 0.08))
    for _ in range(int(rng.integers(2, 6))):
        r = float(rng.uniform(0.3, 0.7)) * size
        b.ellipsoid(
            (
                x + float(rng.normal(0, 0.4 * size)),
                base + r * 0.6,
                z + float(rng.normal(0, 0.4 * size)),
            ),
            (r, r * 0.75, r),
            green,
        )


def rock(
    b: SceneBuilder,
    rng: np.random.Generator,
    x: float,
    z: float,
    base: float = 0.0,
    size: float = 1.0,
) -> None:
    """A rock: one to three turned, squashed ellipsoids or an angular block."""
    m = stone(b, rng)
    for _ in range(int(rng.integers(1, 4))):
        rx, ry, rz = (float(v) for v in rng.uniform(0.5, 1.0, 3) * size)
        rot = rot_y(float(rng.uniform(0, math.pi))) @ rot_x(float(rng.normal(0, 0.25)))
        center = (
            x + float(rng.normal(0, 0.3 * size)),
            base + ry * 0.35,
            z + float(rng.normal(0, 0.3 * size)),
        )
        if rng.random() < 0.3:
            b.box(center, (rx * 0.8, ry * 0.7, rz * 0.8), m, rot @ rot_z(float(rng.normal(0, 0.3))))
        else:
            b.ellipsoid(center, (rx, ry * 0.7, rz), m, rot)


def street_lamp(
    b: SceneBuilder, rng: np.random.Generator, x: float, z: float, yaw: float, base: float = 0.0
) -> None:
    """A street light whose arm reaches towards +z of ``yaw`` (over the road)."""
    pl = Placer(b, x, z, yaw, base)
    m = metal(b, rng, color(rng, [(0.25, 0.27, 0.28), (0.5, 0.52, 0.5), (0.1, 0.12, 0.1)]))
    h = float(rng.uniform(5.0, 8.0))
    pl.cyl(0, 0, 0, 0.12, 0.5, m)
    pl.cyl(0, 0.5, 0, 0.08, h - 0.5, m, taper=0.6)
    reach = float(rng.uniform(0.8, 2.0))
    pl.rod((0, h - 0.1, 0), (0, h, reach), 0.04, m)
    pl.cbox(0, h - 0.05, reach + 0.25, 0.15, 0.06, 0.35, m)
    pl.cbox(0, h - 0.12, reach + 0.25, 0.11, 0.01, 0.28, emissive(b, (0.95, 0.9, 0.8), 0.4))


def traffic_light(
    b: SceneBuilder, rng: np.random.Generator, x: float, z: float, yaw: float, base: float = 0.0
) -> None:
    """A signal head on a pole, facing +z of ``yaw``."""
    pl = Placer(b, x, z, yaw, base)
    m = metal(b, rng, (0.15, 0.15, 0.15))
    pl.cyl(0, 0, 0, 0.07, 3.2, m)
    pl.box(0, 2.3, 0.15, 0.16, 0.45, 0.12, m)
    on = int(rng.integers(3))
    for k, rgb in enumerate([(0.9, 0.1, 0.05), (0.95, 0.7, 0.05), (0.1, 0.9, 0.3)]):
        lit = (
            emissive(b, rgb, 1.5) if k == on else b.material(Tex.FLAT, tuple(c * 0.2 for c in rgb))
        )
        pl.sphere(0, 3.0 - k * 0.28, 0.25, 0.09, lit)


def sign(
    b: SceneBuilder, rng: np.random.Generator, x: float, z: float, yaw: float, base: float = 0.0
) -> None:
    """A road sign: pole and a disc, square or triangle-ish plate facing +z of ``yaw``."""
    pl = Placer(b, x, z, yaw, base)
    m = metal(b, rng, (0.6, 0.6, 0.62))
    h = float(rng.uniform(2.2, 3.0))
    pl.cyl(0, 0, 0, 0.035, h, m)
    face = b.material(
        Tex.FLAT,
        color(rng, [(0.8, 0.1, 0.1), (0.1, 0.3, 0.7), (0.9, 0.75, 0.1), (0.9, 0.9, 0.9)], 0.05),
        noise=0.05,
        spec=0.3,
    )
    if rng.random() < 0.5:
        b.cylinder(pl.at(0, h, 0.05), 0.32, 0.015, face, pl.rot @ rot_x(math.pi / 2))
    else:
        pl.cbox(0, h, 0.05, 0.3, 0.3, 0.015, face)


def bollard(
    b: SceneBuilder, rng: np.random.Generator, x: float, z: float, base: float, mat: int
) -> None:
    """A short post."""
    pl = Placer(b, x, z, 0.0, base)
    h = 0.9
    pl.cyl(0, 0, 0, 0.08, h, mat)
    pl.sphere(0, h, 0, 0.08, mat)


def bench(
    b: SceneBuilder, rng: np.random.Generator, x: float, z: float, yaw: float, base: float = 0.0
) -> None:
    """A park bench facing +z of ``yaw``."""
    pl = Placer(b, x, z, yaw, base)
    slat = wood(b, rng)
    frame = metal(b, rng, (0.15, 0.15, 0.15))
    w = float(rng.uniform(1.4, 2.0))
    for sx in (-1, 1):
        pl.box(sx * (w / 2 - 0.1), 0, 0, 0.03, 0.22, 0.22, frame)
        pl.box(sx * (w / 2 - 0.1), 0.44, -0.2, 0.03, 0.2, 0.03, frame)
    for k in range(4):
        pl.box(0, 0.44, -0.18 + k * 0.12, w / 2, 0.015, 0.05, slat)
    for k in range(2):
        pl.box(0, 0.6 + k * 0.15, -0.23, w / 2, 0.05, 0.015, slat)


def bin_(b: SceneBuilder, rng: np.random.Generator, x: float, z: float, base: float = 0.0) -> None:
    """A litter bin."""
    pl = Placer(b, x, z, 0.0, base)
    m = plastic(b, rng, [(0.2, 0.3, 0.2), (0.3, 0.3, 0.3), (0.1, 0.2, 0.4), (0.5, 0.5, 0.5)])
    pl.cyl(0, 0, 0, 0.25, 0.9, m, taper=1.05)
    pl.cyl(0, 0.9, 0, 0.27, 0.05, m)


def hydrant(
    b: SceneBuilder, rng: np.random.Generator, x: float, z: float, base: float = 0.0
) -> None:
    """A fire hydrant."""
    pl = Placer(b, x, z, float(rng.uniform(0, 3)), base)
    m = plastic(b, rng, [(0.8, 0.1, 0.05), (0.9, 0.8, 0.1)])
    pl.cyl(0, 0, 0, 0.12, 0.1, m)
    pl.cyl(0, 0.1, 0, 0.09, 0.5, m)
    pl.sphere(0, 0.6, 0, 0.1, m)
    pl.rod((-0.16, 0.42, 0), (0.16, 0.42, 0), 0.045, m)


def fence(
    b: SceneBuilder,
    rng: np.random.Generator,
    a: Sequence[float],
    c: Sequence[float],
    base_of: object = None,
    kind: int | None = None,
) -> None:
    """A fence or railing along the ground from (x, z) ``a`` to ``c``: posts and rails,
    or vertical bars. ``base_of(x, z)`` gives the ground height (default 0)."""
    kind = int(rng.integers(3)) if kind is None else kind
    m = (
        wood(b, rng)
        if kind == 0
        else metal(b, rng, color(rng, [(0.1, 0.1, 0.1), (0.3, 0.35, 0.3), (0.6, 0.6, 0.6)]))
    )
    ground = base_of if callable(base_of) else (lambda x, z: 0.0)
    ax, az = float(a[0]), float(a[1])
    cx, cz = float(c[0]), float(c[1])
    length = math.hypot(cx - ax, cz - az)
    if length < 0.5:
        return
    h = float(rng.uniform(0.9, 1.3))
    spacing = float(rng.uniform(1.5, 2.5)) if kind != 2 else 0.15
    n = max(1, int(length / spacing))
    pts = [(ax + (cx - ax) * k / n, az + (cz - az) * k / n) for k in range(n + 1)]
    heights = [float(ground(x, z)) for x, z in pts]
    for (x, z), y in zip(pts, heights, strict=True):
        if kind == 0:
            b.box((x, y + h / 2, z), (0.05, h / 2, 0.05), m)
        elif kind == 1:
            b.cylinder((x, y + h / 2, z), 0.03, h / 2, m)
        else:
            b.cylinder((x, y + h / 2, z), 0.012, h / 2, m)
    for frac in (0.35, 0.9) if kind != 2 else (0.1, 0.95):
        for k in range(n if kind != 2 else 1):
            if kind == 2:
                p0 = (ax, heights[0] + h * frac, az)
                p1 = (cx, heights[-1] + h * frac, cz)
            else:
                p0 = (pts[k][0], heights[k] + h * frac, pts[k][1])
                p1 = (pts[k + 1][0], heights[k + 1] + h * frac, pts[k + 1][1])
            if kind == 0:
                mid = np.add(p0, p1) / 2
                yaw = math.atan2(p1[0] - p0[0], p1[2] - p0[2])
                seg = math.dist(p0, p1)
                b.box(mid, (0.02, 0.05, seg / 2), m, rot_y(yaw))
            else:
                b.cylinder_between(p0, p1, 0.02, m)


def building(
    b: SceneBuilder,
    rng: np.random.Generator,
    x0: float,
    x1: float,
    z0: float,
    z1: float,
    height: float,
    facing: float,
    base: float = 0.0,
) -> None:
    """A city block building over [x0, x1] × [z0, z1], ``height`` metres tall, its
    street front on the side ``facing`` (+1: towards +x, -1: towards -x)."""
    wall = color(rng, FACADES)
    roll = rng.random()
    window = color(
        rng, [(0.15, 0.2, 0.25), (0.25, 0.3, 0.35), (0.12, 0.14, 0.16), (0.3, 0.35, 0.3)]
    )
    floor_h = float(rng.uniform(2.9, 3.8))
    bay = float(rng.uniform(1.8, 4.0))
    if roll < 0.3:  # brick walls get their windows from geometry-free texture too
        mat = b.material(
            Tex.FACADE,
            wall,
            window,
            scale=bay,
            param1=floor_h,
            param2=float(rng.uniform(0.35, 0.7)),
            noise=0.2,
            spec=0.5,
            shine=90.0,
            reflect=0.6,
            noise_scale=4.0,
        )
    elif roll < 0.45:  # glass curtain wall
        mat = b.material(
            Tex.FACADE,
            jitter(rng, (0.5, 0.52, 0.55)),
            window,
            scale=1.5,
            param1=floor_h,
            param2=0.9,
            noise=0.05,
            spec=0.8,
            shine=120.0,
            reflect=0.8,
            noise_scale=6.0,
        )
    else:
        mat = b.material(
            Tex.FACADE,
            wall,
            window,
            scale=bay,
            param1=floor_h,
            param2=float(rng.uniform(0.3, 0.6)),
            noise=0.25,
            spec=0.5,
            shine=90.0,
            reflect=0.5,
            noise_scale=3.0,
        )
    cx, cz = (x0 + x1) / 2, (z0 + z1) / 2
    hx, hz = (x1 - x0) / 2, (z1 - z0) / 2
    b.box((cx, base + height / 2, cz), (hx, height / 2, hz), mat)
    trim = b.material(Tex.NOISE, jitter(rng, tuple(c * 0.85 for c in wall)), noise=0.2)
    front = cx + facing * hx
    if rng.random() < 0.6:  # cornice and parapet
        b.box((cx, base + height + 0.4, cz), (hx + 0.15, 0.4, hz + 0.15), trim)
    if rng.random() < 0.5:  # ground-floor band
        b.box((front + facing * 0.05, base + floor_h + 0.15, cz), (0.08, 0.15, hz), trim)
    if rng.random() < 0.35 and height > 8:  # balconies
        rail = metal(b, rng, (0.15, 0.15, 0.15))
        for level in range(1, int(height / floor_h)):
            y = base + level * floor_h
            for zc in np.arange(z0 + bay, z1 - bay / 2, bay * 2):
                b.box((front + facing * 0.6, y + 0.06, float(zc)), (0.6, 0.06, bay * 0.35), trim)
                b.box((front + facing * 1.17, y + 0.55, float(zc)), (0.02, 0.45, bay * 0.35), rail)
    if rng.random() < 0.4:  # awnings over the ground floor
        cloth = b.material(
            Tex.STRIPES,
            color(rng, FABRICS),
            color(rng, WALL_PAINTS),
            scale=0.5,
            param1=0.5,
            noise=0.1,
        )
        b.box(
            (front + facing * 0.9, base + 2.8, cz),
            (0.9, 0.03, hz * 0.8),
            cloth,
            rot_z(facing * 0.3),
        )
    if rng.random() < 0.5:  # rooftop units
        for _ in range(int(rng.integers(1, 4))):
            ux = float(rng.uniform(x0 + 1, x1 - 1))
            uz = float(rng.uniform(z0 + 1, z1 - 1))
            s = rng.uniform(0.5, 1.5, 3)
            b.box((ux, base + height + s[1], uz), (float(s[0]), float(s[1]), float(s[2])), trim)


def house(
    b: SceneBuilder, rng: np.random.Generator, x: float, z: float, yaw: float, base: float = 0.0
) -> tuple[float, float]:
    """A detached house with a pitched roof, door and windows facing +z of ``yaw``;
    returns its half width and half depth."""
    pl = Placer(b, x, z, yaw, base)
    w, d = float(rng.uniform(4.0, 6.0)), float(rng.uniform(4.0, 6.0))
    h = float(rng.uniform(2.8, 5.8))
    wall = color(rng, FACADES + WALL_PAINTS)
    win = (0.15, 0.18, 0.22)
    tex = Tex.BRICK if rng.random() < 0.3 else Tex.FACADE
    if tex == Tex.BRICK:
        walls = b.material(
            Tex.BRICK,
            color(rng, FACADES[:2]),
            (0.75, 0.73, 0.7),
            scale=0.23,
            param1=0.33,
            param2=0.012,
            noise=0.15,
            noise_scale=3.0,
        )
    else:
        walls = b.material(
            Tex.FACADE,
            wall,
            win,
            scale=float(rng.uniform(2.0, 3.0)),
            param1=h + 1,
            param2=0.4,
            noise=0.15,
            spec=0.4,
            reflect=0.5,
        )
    pl.box(0, 0, 0, w, h / 2, d, walls)
    roof = b.material(
        Tex.STRIPES,
        color(rng, [(0.45, 0.2, 0.15), (0.25, 0.25, 0.27), (0.35, 0.3, 0.28)]),
        color(rng, [(0.3, 0.15, 0.1), (0.15, 0.15, 0.16)]),
        scale=0.3,
        param1=0.8,
        noise=0.15,
    )
    # A 45° roof: its gable ends are the upper half of a box turned 45° about x, whose
    # corners meet the walls 0.3 m above their top and the ridge under the roof.
    pitch = math.pi / 4
    run = d + 0.4
    rise = run
    slab = run / math.cos(pitch) / 2
    for sz in (-1, 1):
        pl.cbox(0, h + rise / 2, sz * run / 2, w + 0.3, 0.08, slab, roof, rot=rot_x(sz * pitch))
    gable = b.material(Tex.FLAT, wall, noise=0.1)
    half = d / math.sqrt(2.0)
    pl.cbox(0, h + 0.3, 0, w - 0.02, half, half, gable, rot=rot_x(pitch))
    door = wood(b, rng, base=color(rng, [*WOODS, (0.2, 0.3, 0.4), (0.5, 0.1, 0.1)]))
    pl.box(float(rng.uniform(-w * 0.5, w * 0.5)), 0, d, 0.45, 1.05, 0.05, door)
    if tex == Tex.BRICK:
        glassm = glass(b, rng)
        for sx in (-1, 1):
            for level in range(int(h / 2.7) + 1):
                pl.box(sx * w * 0.6, 0.9 + level * 2.7, d, 0.5, 0.6, 0.03, glassm)
    if rng.random() < 0.5:
        pl.box(w * 0.6, h, -d * 0.3, 0.3, rise * 0.6 + 0.6, 0.3, walls)
    return w, d
