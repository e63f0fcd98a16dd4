"""The scene description the ray caster renders: primitives, materials, lights, camera.

A scene is built in a right-handed **world frame** in metres with y up (the ground is
usually y = 0), by a ``SceneBuilder`` that layout code calls once per primitive. The
builder freezes everything into flat numpy arrays (``Scene``), so the renderer moves a
whole scene to a torch device in a handful of copies and never loops over primitives.

Every primitive is stored as an affine map from world space to a **unit local frame**
in which its shape is fixed (the unit cube, the unit sphere, ...). Ray parameters are
unchanged by an affine map, so intersecting the mapped ray with the unit shape gives
the world hit distance directly; the normal is mapped back with the transpose of the
map's linear part. Shapes in their local frame:

==========  =============================================================  =========
type        unit shape                                                     ``param``
==========  =============================================================  =========
QUAD        the square |x| <= 1, |y| <= 1 in the plane z = 0 (two-sided)    unused
BOX         the cube |x|, |y|, |z| <= 1                                     unused
ELLIPSOID   the sphere x² + y² + z² <= 1                                    unused
CONE        frustum along y in [-1, 1], radius 1 at y = -1, ``k`` at y = 1  k (taper)
CAPSULE     points within 1 of the segment (0, ±h, 0) (uniform scale)      h
==========  =============================================================  =========

A cylinder is a CONE with taper 1. An unbounded plane is a QUAD with half-extents of
``PLANE_EXTENT`` metres (finite, so texture coordinates keep their metres).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "BOX",
    "CAPSULE",
    "CONE",
    "ELLIPSOID",
    "MATERIAL_FIELDS",
    "NUM_TYPES",
    "PLANE_EXTENT",
    "QUAD",
    "SHADOW_ALL",
    "SHADOW_LAMP",
    "SHADOW_SUN",
    "CameraPose",
    "Heightfield",
    "Lighting",
    "Scene",
    "SceneBuilder",
    "Sky",
    "Tex",
    "look_rotation",
    "rot_axis",
    "rot_x",
    "rot_y",
    "rot_z",
    "srgb_to_linear",
]

QUAD, BOX, ELLIPSOID, CONE, CAPSULE = range(5)
NUM_TYPES = 5

# Which lights a primitive blocks (a bitmask): walls of a convex room cannot shade its
# own lamp, so they block only the sun that comes through the windows.
SHADOW_SUN, SHADOW_LAMP = 1, 2
SHADOW_ALL = SHADOW_SUN | SHADOW_LAMP

_EYE = np.eye(3)

# Half-extent of an "unbounded" plane: far beyond any scene's far limit (a few km), and
# float32 keeps its relative precision, so local coordinates times this stay metres.
PLANE_EXTENT = 1.0e6


class Tex:
    """Texture pattern ids (column 0 of the material table); see ``textures.py``."""

    FLAT = 0  # colour a with a little noise
    NOISE = 1  # fractal noise between a and b (plaster, concrete, carpet, dirt)
    WOOD = 2  # planks with grain along u
    BRICK = 3  # running-bond bricks (a) in mortar (b)
    TILES = 4  # square tiles (a) with grout (b)
    STRIPES = 5  # stripes along u: a for ``param1`` of each period, b for the rest
    CHECKER = 6  # checkerboard of a and b
    GRADIENT = 7  # vertical blend from b (bottom) to a (top) over ``scale`` metres
    FACADE = 8  # wall a with a grid of windows b (building fronts)
    ROAD = 9  # asphalt a with lane markings b
    TERRAIN = 10  # grass a / rock b / snow by slope and height (heightfield only)
    FOLIAGE = 11  # leafy clumps of a and b
    WATER = 12  # dark water a with ripples, reflects the sky
    FABRIC = 13  # fine weave of a and b
    MARBLE = 14  # stone a with veins b
    COUNT = 15


# Columns of the material table (float32, one row per material).
MATERIAL_FIELDS = (
    "tex",  # Tex id
    "ar",
    "ag",
    "ab",  # colour a, linear RGB
    "br",
    "bg",
    "bb",  # colour b, linear RGB
    "scale",  # pattern period in metres
    "noise",  # strength of multiplicative fractal-noise variation, 0..1
    "spec",  # Blinn-Phong specular strength
    "shine",  # Blinn-Phong exponent
    "param1",  # pattern-specific (brick height ratio, stripe duty, mortar width, ...)
    "param2",  # pattern-specific (plank width, window width, ...)
    "noise_scale",  # period of the variation noise in metres
    "reflect",  # strength of the sky reflection at grazing angles (glass, water, paint)
    "emit",  # emission, as a multiple of colour a (lamps, screens, lit windows)
)
_NUM_FIELDS = len(MATERIAL_FIELDS)


def _srgb_channel(c: float) -> float:
    c = min(max(float(c), 0.0), 1.0)
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def srgb_to_linear(rgb: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    """sRGB colour components in [0, 1] -> linear RGB (the standard piecewise curve)."""
    return np.array([_srgb_channel(c) for c in rgb])


def rot_x(angle: float) -> np.ndarray:
    """(3, 3) rotation by ``angle`` radians about the x axis."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(angle: float) -> np.ndarray:
    """(3, 3) rotation by ``angle`` radians about the (vertical) y axis."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(angle: float) -> np.ndarray:
    """(3, 3) rotation by ``angle`` radians about the z axis."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_axis(axis: np.ndarray | tuple[float, float, float]) -> np.ndarray:
    """A (3, 3) rotation taking the local y axis to the direction ``axis``."""
    # Plain floats: this runs for every rod and limb, where numpy's call overhead dominates.
    ax, ay, az = (float(v) for v in axis)
    n = math.sqrt(ax * ax + ay * ay + az * az)
    ax, ay, az = ax / n, ay / n, az / n
    if abs(ax) < 0.9:  # x = y × (1, 0, 0)
        xx, xy, xz = 0.0, az, -ay
    else:  # x = y × (0, 0, 1)
        xx, xy, xz = ay, -ax, 0.0
    m = math.sqrt(xx * xx + xy * xy + xz * xz)
    xx, xy, xz = xx / m, xy / m, xz / m
    zx, zy, zz = xy * az - xz * ay, xz * ax - xx * az, xx * ay - xy * ax
    return np.array([[xx, ax, zx], [xy, ay, zy], [xz, az, zz]])


def look_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world rotation (3, 3) whose columns are the camera's x (right), y (down)
    and z (forward) axes in world coordinates (y up).

    ``yaw`` turns the view about the vertical (0 looks along +z), ``pitch`` raises it
    (positive looks up) and ``roll`` turns the image clockwise; all in radians.
    """
    forward = np.array(
        [math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)]
    )
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c, s = math.cos(roll), math.sin(roll)
    right, down = c * right + s * down, -s * right + c * down
    return np.stack([right, down, forward], axis=1)


@dataclass(frozen=True)
class CameraPose:
    """Where the camera is and how it sees.

    ``rotation`` is camera-to-world (columns: right, down, forward), ``position`` the
    optical centre in world metres, ``hfov_deg`` the horizontal field of view and
    ``principal_offset`` the principal point's offset from the image centre as a
    fraction of (width, height).
    """

    rotation: np.ndarray
    position: np.ndarray
    hfov_deg: float
    principal_offset: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class Lighting:
    """Light sources in world space; colours are linear RGB irradiance multipliers.

    ``sun_dir`` points from the scene towards the sun (unit), ``sun_angle`` is the
    angular radius in radians used for soft shadows. ``lamp_pos`` is a small area light
    of radius ``lamp_radius`` metres with inverse-square falloff (``lamp_color`` is the
    irradiance at 1 m). Ambient light is a hemisphere blend of ``ambient_sky`` (from
    above) and ``ambient_ground`` (from below).
    """

    sun_dir: np.ndarray | None
    sun_color: np.ndarray
    sun_angle: float
    ambient_sky: np.ndarray
    ambient_ground: np.ndarray
    lamp_pos: np.ndarray | None = None
    lamp_color: np.ndarray = field(default_factory=lambda: np.zeros(3))
    lamp_radius: float = 0.1
    ao_radius: float = 0.5  # metres: the scale of ambient-occlusion darkening
    ao_strength: float = 0.8


@dataclass(frozen=True)
class Sky:
    """Sky and atmosphere, linear RGB. ``haze_density`` is per metre (mild: the haze
    fraction ``1 - exp(-density * depth)`` stays small at the scene's depths)."""

    zenith: np.ndarray
    horizon: np.ndarray
    ground: np.ndarray
    cloud_cover: float
    cloud_color: np.ndarray
    cloud_scale: float
    haze_color: np.ndarray
    haze_density: float
    sun_glow: float = 1.0


@dataclass(frozen=True)
class Heightfield:
    """Terrain y = h(x, z): ``heights`` (G, G) metres on a square grid covering
    x in [x0, x0 + size] (columns) and z in [z0, z0 + size] (rows), interpolated
    bilinearly, clamped at the border. ``far`` limits how far rays march (metres)."""

    heights: np.ndarray
    x0: float
    z0: float
    size: float
    material: int
    far: float

    def height_at(self, x: np.ndarray | float, z: np.ndarray | float) -> np.ndarray:
        """Bilinear terrain height (metres) at world (x, z), as the ray caster sees it."""
        g = self.heights.shape[0]
        if isinstance(x, float | int) and isinstance(z, float | int):
            return np.asarray(self._height_scalar(float(x), float(z)))
        fx = np.clip((np.asarray(x, dtype=np.float64) - self.x0) / self.size * (g - 1), 0, g - 1)
        fz = np.clip((np.asarray(z, dtype=np.float64) - self.z0) / self.size * (g - 1), 0, g - 1)
        ix = np.minimum(np.floor(fx).astype(np.int64), g - 2)
        iz = np.minimum(np.floor(fz).astype(np.int64), g - 2)
        ax, az = fx - ix, fz - iz
        h = self.heights
        top = h[iz, ix] * (1 - ax) + h[iz, ix + 1] * ax
        bottom = h[iz + 1, ix] * (1 - ax) + h[iz + 1, ix + 1] * ax
        return top * (1 - az) + bottom * az

    def _height_scalar(self, x: float, z: float) -> float:
        g = self.heights.shape[0]
        fx = min(max((x - self.x0) / self.size * (g - 1), 0.0), g - 1.0)
        fz = min(max((z - self.z0) / self.size * (g - 1), 0.0), g - 1.0)
        ix, iz = min(int(fx), g - 2), min(int(fz), g - 2)
        ax, az = fx - ix, fz - iz
        h = self.heights
        top = float(h[iz, ix]) * (1 - ax) + float(h[iz, ix + 1]) * ax
        bottom = float(h[iz + 1, ix]) * (1 - ax) + float(h[iz + 1, ix + 1]) * ax
        return top * (1 - az) + bottom * az


@dataclass(frozen=True)
class Scene:
    """A frozen scene: P primitives and M materials as arrays, plus lights and camera.

    ``types`` (P,) int8; ``to_local`` (P, 3, 4) world -> unit local frame (linear part
    and translation); ``scale`` (P, 3) metres per local unit along each local axis
    (texture coordinates); ``param`` (P,) taper or capsule half-length; ``material``
    (P,) int32 rows of ``materials`` (M, len(MATERIAL_FIELDS)) float32;
    ``casts_shadow`` (P,) uint8 bitmask of the lights each blocks (``SHADOW_SUN``,
    ``SHADOW_LAMP``). Primitives are sorted by type.
    """

    kind: str
    types: np.ndarray
    to_local: np.ndarray
    scale: np.ndarray
    param: np.ndarray
    material: np.ndarray
    casts_shadow: np.ndarray
    materials: np.ndarray
    pose: CameraPose
    lighting: Lighting
    sky: Sky
    terrain: Heightfield | None = None
    near: float = 0.02
    far: float = 2000.0

    @property
    def num_primitives(self) -> int:
        """How many primitives the scene holds (terrain excluded)."""
        return int(self.types.shape[0])


class SceneBuilder:
    """Collects primitives and materials, then freezes them into a ``Scene``.

    Methods take world-space centres and sizes in metres; rotations are (3, 3) local-to-
    world matrices (``rot_y(yaw)`` for objects standing on the ground). ``shadow`` is
    True (blocks every light), False, or a ``SHADOW_*`` bitmask.
    """

    def __init__(self) -> None:
        self._types: list[int] = []
        self._rotation: list[np.ndarray] = []
        self._center: list[tuple[float, float, float]] = []
        self._scale: list[tuple[float, float, float]] = []
        self._param: list[float] = []
        self._material: list[int] = []
        self._shadow: list[int] = []
        self._materials: list[list[float]] = []
        # ANDed into every new primitive's shadow mask (e.g. SHADOW_SUN for what lies
        # outside a room, which its lamp never reaches).
        self.shadow_filter = SHADOW_ALL

    def __len__(self) -> int:
        return len(self._types)

    def material(
        self,
        tex: int,
        a: Sequence[float] | np.ndarray,
        b: Sequence[float] | np.ndarray | None = None,
        *,
        scale: float = 1.0,
        noise: float = 0.15,
        spec: float = 0.04,
        shine: float = 24.0,
        param1: float = 0.5,
        param2: float = 0.2,
        noise_scale: float = 1.0,
        reflect: float = 0.0,
        emit: float = 0.0,
    ) -> int:
        """Add a material with sRGB colours ``a`` and ``b`` (b defaults to a darker a);
        returns its id. Parameters are described in ``MATERIAL_FIELDS``."""
        lin_a = [_srgb_channel(c) for c in a]
        lin_b = [_srgb_channel(c) for c in b] if b is not None else [0.6 * c for c in lin_a]
        row = [float(tex), *lin_a, *lin_b, scale, noise, spec, shine, param1, param2]
        row += [noise_scale, reflect, emit]
        self._materials.append(row)
        return len(self._materials) - 1

    def _add(
        self,
        kind: int,
        center: np.ndarray | tuple[float, float, float],
        rotation: np.ndarray | None,
        scale: tuple[float, float, float],
        param: float,
        material: int,
        shadow: bool | int,
    ) -> None:
        self._types.append(kind)
        self._rotation.append(_EYE if rotation is None else rotation)
        self._center.append((float(center[0]), float(center[1]), float(center[2])))
        self._scale.append(scale)
        self._param.append(param)
        self._material.append(material)
        mask = SHADOW_ALL if shadow is True else int(shadow)
        self._shadow.append(mask & self.shadow_filter)

    def box(
        self,
        center: np.ndarray | tuple[float, float, float],
        half: tuple[float, float, float],
        material: int,
        rotation: np.ndarray | None = None,
        *,
        shadow: bool | int = True,
    ) -> None:
        """A box of half-sizes ``half`` (metres) along its local axes."""
        self._add(BOX, center, rotation, half, 0.0, material, shadow)

    def ground_box(
        self,
        x: float,
        z: float,
        half: tuple[float, float, float],
        material: int,
        yaw: float = 0.0,
        base: float = 0.0,
        *,
        shadow: bool | int = True,
    ) -> None:
        """A box standing on the height ``base`` at (x, z), turned by ``yaw`` radians."""
        self.box((x, base + half[1], z), half, material, rot_y(yaw) if yaw else None, shadow=shadow)

    def ellipsoid(
        self,
        center: np.ndarray | tuple[float, float, float],
        radii: tuple[float, float, float],
        material: int,
        rotation: np.ndarray | None = None,
        *,
        shadow: bool | int = True,
    ) -> None:
        """An ellipsoid with semi-axes ``radii`` (a sphere when all are equal)."""
        self._add(ELLIPSOID, center, rotation, radii, 0.0, material, shadow)

    def sphere(
        self,
        center: np.ndarray | tuple[float, float, float],
        radius: float,
        material: int,
        *,
        shadow: bool | int = True,
    ) -> None:
        """A sphere of ``radius`` metres."""
        self.ellipsoid(center, (radius, radius, radius), material, shadow=shadow)

    def cylinder(
        self,
        center: np.ndarray | tuple[float, float, float],
        radius: float,
        half_height: float,
        material: int,
        rotation: np.ndarray | None = None,
        *,
        taper: float = 1.0,
        radius_z: float | None = None,
        shadow: bool | int = True,
    ) -> None:
        """A capped cylinder (or cone frustum: top radius = ``taper`` × radius) along its
        local y axis; ``radius_z`` makes the cross-section elliptic."""
        rz = radius if radius_z is None else radius_z
        self._add(CONE, center, rotation, (radius, half_height, rz), taper, material, shadow)

    def cylinder_between(
        self,
        a: np.ndarray | tuple[float, float, float],
        b: np.ndarray | tuple[float, float, float],
        radius: float,
        material: int,
        *,
        taper: float = 1.0,
        shadow: bool | int = True,
    ) -> None:
        """A capped cylinder (or frustum) from point ``a`` (radius) to ``b`` (taper × radius)."""
        pa, pb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        length = float(np.linalg.norm(pb - pa))
        if length < 1e-9:
            return
        self.cylinder(
            (pa + pb) / 2,
            radius,
            length / 2,
            material,
            rot_axis(pb - pa),
            taper=taper,
            shadow=shadow,
        )

    def capsule(
        self,
        a: np.ndarray | tuple[float, float, float],
        b: np.ndarray | tuple[float, float, float],
        radius: float,
        material: int,
        *,
        shadow: bool | int = True,
    ) -> None:
        """All points within ``radius`` metres of the segment from ``a`` to ``b``."""
        pa, pb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        half = float(np.linalg.norm(pb - pa)) / 2
        rotation = rot_axis(pb - pa) if half > 1e-9 else None
        self._add(
            CAPSULE,
            (pa + pb) / 2,
            rotation,
            (radius, radius, radius),
            half / radius,
            material,
            shadow,
        )

    def quad(
        self,
        center: np.ndarray | tuple[float, float, float],
        half_u: float,
        half_v: float,
        material: int,
        rotation: np.ndarray | None = None,
        *,
        shadow: bool | int = True,
    ) -> None:
        """A rectangle of half-sizes (``half_u``, ``half_v``) in its local xy plane
        (normal: local z); seen from both sides."""
        self._add(QUAD, center, rotation, (half_u, half_v, 1.0), 0.0, material, shadow)

    def ground_plane(self, height: float, material: int) -> None:
        """The unbounded horizontal plane y = ``height`` (casts no shadows)."""
        # local x -> world x, local y -> world z, local z (normal) -> world up
        rotation = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
        self.quad((0.0, height, 0.0), PLANE_EXTENT, PLANE_EXTENT, material, rotation, shadow=False)

    def build(
        self,
        kind: str,
        pose: CameraPose,
        lighting: Lighting,
        sky: Sky,
        terrain: Heightfield | None = None,
        near: float = 0.02,
        far: float = 2000.0,
    ) -> Scene:
        """Freeze the collected primitives (sorted by type) into a ``Scene``."""
        count = len(self._types)
        types = np.asarray(self._types, dtype=np.int8)
        order = np.argsort(types, kind="stable")
        rotation = np.asarray(self._rotation, dtype=np.float64).reshape(count, 3, 3)[order]
        center = np.asarray(self._center, dtype=np.float64).reshape(count, 3)[order]
        scale = np.asarray(self._scale, dtype=np.float64).reshape(count, 3)[order]
        # world -> local: diag(1/scale) R^T (p - c)
        linear = rotation.transpose(0, 2, 1) / scale[:, :, None]
        translation = -np.einsum("pij,pj->pi", linear, center)
        to_local = np.concatenate([linear, translation[:, :, None]], axis=2)
        materials = np.asarray(self._materials, dtype=np.float32).reshape(-1, _NUM_FIELDS)
        return Scene(
            kind=kind,
            types=types[order],
            to_local=to_local,
            scale=scale,
            param=np.asarray(self._param, dtype=np.float64)[order],
            material=np.asarray(self._material, dtype=np.int32)[order],
            casts_shadow=np.asarray(self._shadow, dtype=np.uint8)[order],
            materials=materials,
            pose=pose,
            lighting=lighting,
            sky=sky,
            terrain=terrain,
            near=near,
            far=far,
        )
