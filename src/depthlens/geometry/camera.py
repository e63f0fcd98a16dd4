"""Pinhole camera intrinsics, and the focal length a photo's EXIF data implies.

Pixel coordinates have the origin at the top-left corner of the image, x to the
right and y down; pixel ``(row, col)`` covers ``[col, col + 1) × [row, row + 1)``, so
its centre is ``(col + 0.5, row + 0.5)``. The principal point of a camera made here
is the image centre ``(width / 2, height / 2)``.

Every camera says where it came from (``Camera.source``): ``"user"`` (given by the
caller: ``--fx``/``--fov`` options, a dataset's calibration), ``"exif"`` (the photo's
metadata), ``"estimated"`` (a model that predicts the camera from the photo, named by
``Camera.estimated_by``: Depth Pro, MoGe-2) or ``"default"`` (nothing was known;
``DEFAULT_FOV_DEG`` is assumed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "CAMERA_SOURCES",
    "DEFAULT_FOV_DEG",
    "MAX_FOV_DEG",
    "MIN_FOV_DEG",
    "Camera",
    "CameraSource",
    "camera_from_exif",
    "check_fov",
]

# EXIF tag numbers (EXIF 2.32, CIPA DC-008-2019, tables 4 and 7).
EXIF_IFD_POINTER = 0x8769  # 34665: offset of the Exif sub-IFD inside IFD0
ORIENTATION = 0x0112  # 274, IFD0: 5-8 mean the stored image is turned by 90 degrees
FOCAL_LENGTH = 0x920A  # 37386: RATIONAL, millimetres
PIXEL_X_DIMENSION = 0xA002  # 40962: "ExifImageWidth", the width the tags below refer to
PIXEL_Y_DIMENSION = 0xA003  # 40963: "ExifImageHeight"
FOCAL_PLANE_X_RESOLUTION = 0xA20E  # 41486: pixels per unit on the sensor, along x
FOCAL_PLANE_Y_RESOLUTION = 0xA20F  # 41487: pixels per unit on the sensor, along y
FOCAL_PLANE_RESOLUTION_UNIT = 0xA210  # 41488: SHORT, default 2 (inch)
FOCAL_LENGTH_IN_35MM_FILM = 0xA405  # 41989: SHORT, millimetres; 0 means unknown

# Width of a 35 mm full-frame sensor in millimetres (36 mm × 24 mm).
FULL_FRAME_WIDTH_MM = 36.0

# Millimetres per FocalPlaneResolutionUnit: 2 inch and 3 cm are EXIF's; 4 mm and 5 µm
# are the extensions some writers use (as ExifTool reads them). 1 ("no absolute
# unit") gives no physical size and is not listed.
_RESOLUTION_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}

# The field of view assumed when nothing says what the camera was: 60 degrees across
# is between a phone's main camera (about 65-75) and a normal lens (about 40-50).
DEFAULT_FOV_DEG = 60.0

# The fields of view a real camera can have, in degrees, across the image: below 1
# degree is a telescope (a 2500 mm lens on full frame), above 179 a pinhole model no
# longer describes the lens (fisheyes reach 180 and beyond, which it cannot). Cameras
# from flags, form fields and EXIF are checked against them (Camera.check_physical),
# so that a focal length from outside is never 0, inf or absurd (1e-306 degrees gave
# fx = inf).
MIN_FOV_DEG = 1.0
MAX_FOV_DEG = 179.0

CameraSource = Literal["user", "exif", "estimated", "default"]
CAMERA_SOURCES: tuple[CameraSource, ...] = ("user", "exif", "estimated", "default")


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics of an image of ``width`` × ``height`` pixels.

    ``fx`` and ``fy`` are focal lengths and ``cx``, ``cy`` the principal point, all in
    pixels; a point (X, Y, Z) in camera coordinates (metres, Z forward) projects to
    ``(fx * X / Z + cx, fy * Y / Z + cy)`` in continuous pixel coordinates (the centre
    of pixel ``(row, col)`` is ``(col + 0.5, row + 0.5)``). ``source`` says where the
    numbers came from: ``"user"``, ``"exif"``, ``"estimated"`` (by the model named in
    ``estimated_by``) or ``"default"`` (assumed).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    source: CameraSource = "user"
    estimated_by: str | None = None  # the model that estimated it (source "estimated")

    def __post_init__(self) -> None:
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if not (math.isfinite(self.fx) and math.isfinite(self.fy)):
            raise ValueError(f"focal lengths must be finite, got fx={self.fx}, fy={self.fy}")
        if not (math.isfinite(self.cx) and math.isfinite(self.cy)):
            raise ValueError(f"principal point must be finite, got ({self.cx}, {self.cy})")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}×{self.height}")
        for axis, centre, size in (("cx", self.cx, self.width), ("cy", self.cy, self.height)):
            if not -size <= centre <= 2 * size:
                raise ValueError(
                    f"principal point {axis}={centre:g} lies more than an image size ({size} px) "
                    "outside the image"
                )
        if self.source not in CAMERA_SOURCES:
            raise ValueError(
                f"camera source must be one of {', '.join(CAMERA_SOURCES)}, got {self.source!r}"
            )

    @classmethod
    def from_fov(
        cls,
        width: int,
        height: int,
        horizontal_fov_deg: float,
        source: CameraSource = "user",
    ) -> Camera:
        """A camera with square pixels seeing ``horizontal_fov_deg`` degrees across.

        ``fx = fy = (width / 2) / tan(fov / 2)``; principal point at the image centre.
        The field of view must lie in [``MIN_FOV_DEG``, ``MAX_FOV_DEG``] (ValueError).
        """
        check_fov(horizontal_fov_deg)
        focal = (width / 2.0) / math.tan(math.radians(horizontal_fov_deg) / 2.0)
        return cls(focal, focal, width / 2.0, height / 2.0, width, height, source)

    @classmethod
    def default(cls, width: int, height: int) -> Camera:
        """The assumed camera when nothing is known: ``DEFAULT_FOV_DEG`` across, centred."""
        return cls.from_fov(width, height, DEFAULT_FOV_DEG, source="default")

    @property
    def horizontal_fov(self) -> float:
        """The field of view across the image's width, in degrees."""
        return math.degrees(2.0 * math.atan(self.width / (2.0 * self.fx)))

    @property
    def vertical_fov(self) -> float:
        """The field of view across the image's height, in degrees."""
        return math.degrees(2.0 * math.atan(self.height / (2.0 * self.fy)))

    def check_physical(self) -> Camera:
        """This camera, if a real camera can have it, else ValueError saying why.

        For numbers that come from outside (flags, form fields, EXIF): the horizontal
        field of view must lie in [``MIN_FOV_DEG``, ``MAX_FOV_DEG``] and the pixels must
        be near square (``fy / fx`` in [1/4, 4]; real sensors are within a few percent).
        Not a check of every Camera: a 1×5000 strip's default camera sees 0.01 degrees
        vertically, which is right for a strip.
        """
        fov = self.horizontal_fov
        if not MIN_FOV_DEG <= fov <= MAX_FOV_DEG:
            raise ValueError(
                f"a focal length of {self.fx:g} px on an image {self.width} px wide is a field "
                f"of view of {fov:.3g} degrees, outside the {MIN_FOV_DEG:g} to "
                f"{MAX_FOV_DEG:g} a camera can have"
            )
        if not 0.25 <= self.fy / self.fx <= 4.0:
            raise ValueError(
                f"fy = {self.fy:g} and fx = {self.fx:g} px differ by more than 4 times, "
                "which no camera's pixels do"
            )
        return self

    def as_dict(self) -> dict[str, float | int | str]:
        """``fx, fy, cx, cy`` (pixels), ``width, height``, ``source`` and, for an
        estimated camera, ``estimated_by``, for JSON."""
        found: dict[str, float | int | str] = {
            "fx": self.fx,
            "fy": self.fy,
            "cx": self.cx,
            "cy": self.cy,
            "width": self.width,
            "height": self.height,
            "source": self.source,
        }
        if self.estimated_by is not None:
            found["estimated_by"] = self.estimated_by
        return found


def check_fov(degrees: float) -> float:
    """``degrees`` if it is a field of view a camera can have, else ValueError."""
    if not (math.isfinite(degrees) and MIN_FOV_DEG <= degrees <= MAX_FOV_DEG):
        raise ValueError(
            f"a field of view must be between {MIN_FOV_DEG:g} and {MAX_FOV_DEG:g} degrees, "
            f"not {degrees:g}"
        )
    return degrees


def camera_from_exif(exif: Mapping[int, Any], width: int, height: int) -> Camera | None:
    """The camera a photo's EXIF data implies, or None when it says too little or
    something impossible.

    EXIF comes from outside: values that are zero, negative, infinite, of the wrong
    type, or that give a field of view no camera has (``Camera``'s checks) make it
    say nothing, so the caller falls back to ``Camera.default`` rather than failing.

    ``exif`` is a ``PIL.Image.Exif`` (or any mapping of tag number to value); tags
    are looked up in the Exif sub-IFD and, for writers that misplace them, in IFD0.
    ``width`` and ``height`` are the image size in pixels as displayed (after any
    EXIF orientation is applied). The principal point is the image centre. In order:

    1. ``FocalLengthIn35mmFilm``, taken to be relative to the 36 mm width of a
       full-frame sensor: ``fx = fy = f35 / 36 mm × width``.
    2. ``FocalLength`` (mm) with ``FocalPlaneXResolution``/``YResolution`` in
       ``FocalPlaneResolutionUnit`` (2 inch, 3 cm, 4 mm, 5 µm): the sensor's pixels
       per mm, so ``fx = f_mm × x_resolution / unit_mm`` (and ``fy`` from the y
       resolution, or the x one when only that is given). The resolution counts the
       pixels of an image ``PixelXDimension`` × ``PixelYDimension`` wide (as stored,
       before orientation); for an image of another size, such as a resized copy,
       the focal lengths are scaled by ``width / PixelXDimension`` and
       ``height / PixelYDimension``. Orientations 5-8 (turned by 90 degrees) swap
       the x and y values.
    """
    try:
        focal_35mm = _as_float(_exif_value(exif, FOCAL_LENGTH_IN_35MM_FILM))
        camera: Camera | None
        if focal_35mm is not None and focal_35mm > 0.0:  # 0 is EXIF's "unknown"
            focal = focal_35mm / FULL_FRAME_WIDTH_MM * width
            camera = Camera(focal, focal, width / 2.0, height / 2.0, width, height, "exif")
        else:
            camera = _camera_from_focal_plane(exif, width, height)
        return camera.check_physical() if camera is not None else None
    except (ValueError, TypeError, ArithmeticError):
        # Impossible numbers (a 1e308 mm lens, a negative PixelYDimension): no camera.
        return None


def _camera_from_focal_plane(exif: Mapping[int, Any], width: int, height: int) -> Camera | None:
    """Case 2 of :func:`camera_from_exif`: focal length times the sensor's pixel density."""
    focal_mm = _as_float(_exif_value(exif, FOCAL_LENGTH))
    x_resolution = _as_float(_exif_value(exif, FOCAL_PLANE_X_RESOLUTION))
    y_resolution = _as_float(_exif_value(exif, FOCAL_PLANE_Y_RESOLUTION))
    unit = _as_float(_exif_value(exif, FOCAL_PLANE_RESOLUTION_UNIT))
    unit_mm = _RESOLUTION_UNIT_MM.get(int(unit) if unit is not None else 2)
    if focal_mm is None or focal_mm <= 0.0 or unit_mm is None:
        return None
    if x_resolution is None or x_resolution <= 0.0:
        return None
    if y_resolution is None or y_resolution <= 0.0:
        y_resolution = x_resolution  # square pixels
    fx_stored = focal_mm * x_resolution / unit_mm
    fy_stored = focal_mm * y_resolution / unit_mm
    turned = exif.get(ORIENTATION) in (5, 6, 7, 8)
    stored_width, stored_height = (height, width) if turned else (width, height)
    exif_width = _as_float(_exif_value(exif, PIXEL_X_DIMENSION))
    exif_height = _as_float(_exif_value(exif, PIXEL_Y_DIMENSION))
    if exif_width is not None and exif_width > 0.0:
        fx_stored *= stored_width / exif_width
        # Without a (positive) height, the image was scaled by the same factor both ways.
        scale_y = (
            stored_height / exif_height
            if exif_height is not None and exif_height > 0.0
            else stored_width / exif_width
        )
        fy_stored *= scale_y
    fx, fy = (fy_stored, fx_stored) if turned else (fx_stored, fy_stored)
    return Camera(fx, fy, width / 2.0, height / 2.0, width, height, "exif")


def _exif_value(exif: Mapping[int, Any], tag: int) -> Any:
    """A tag's value from the Exif sub-IFD, else from IFD0; None when in neither."""
    value: Any = None
    get_ifd = getattr(exif, "get_ifd", None)
    if callable(get_ifd):
        value = get_ifd(EXIF_IFD_POINTER).get(tag)
    if value is None:
        value = exif.get(tag)
    return value


def _as_float(value: Any) -> float | None:
    """An EXIF value (int, rational, or a one-element sequence of them) as a float."""
    if isinstance(value, tuple | list):
        value = value[0] if len(value) == 1 else None
    try:
        result = float(value)
    except (TypeError, ValueError, ArithmeticError):
        return None
    return result if math.isfinite(result) else None
