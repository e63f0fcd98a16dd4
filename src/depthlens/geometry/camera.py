"""Pinhole camera intrinsics, and the focal length a photo's EXIF data implies.

Pixel coordinates have the origin at the top-left corner of the image, x to the
right and y down; the principal point of a camera made here is the image centre
``(width / 2, height / 2)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# EXIF tag numbers (EXIF 2.32, CIPA DC-008-2019, tables 4 and 7).
EXIF_IFD_POINTER = 0x8769  # 34665: offset of the Exif sub-IFD inside IFD0
FOCAL_LENGTH_IN_35MM_FILM = 0xA405  # 41989: SHORT, millimetres; 0 means unknown

# Width of a 35 mm full-frame sensor in millimetres (36 mm × 24 mm).
FULL_FRAME_WIDTH_MM = 36.0


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics of an image of ``width`` × ``height`` pixels.

    ``fx`` and ``fy`` are focal lengths and ``cx``, ``cy`` the principal point, all in
    pixels; a point (X, Y, Z) in camera coordinates (metres, Z forward) projects to
    ``(fx * X / Z + cx, fy * Y / Z + cy)``.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}×{self.height}")

    @classmethod
    def from_fov(cls, width: int, height: int, horizontal_fov_deg: float) -> Camera:
        """A camera with square pixels seeing ``horizontal_fov_deg`` degrees across.

        ``fx = fy = (width / 2) / tan(fov / 2)``; principal point at the image centre.
        """
        if not 0.0 < horizontal_fov_deg < 180.0:
            raise ValueError(
                f"horizontal field of view must be in (0, 180) degrees, got {horizontal_fov_deg}"
            )
        focal = (width / 2.0) / math.tan(math.radians(horizontal_fov_deg) / 2.0)
        return cls(focal, focal, width / 2.0, height / 2.0, width, height)


def camera_from_exif(exif: Mapping[int, Any], width: int, height: int) -> Camera | None:
    """The camera implied by EXIF ``FocalLengthIn35mmFilm``, or None when it is absent.

    ``exif`` is a ``PIL.Image.Exif`` (or any mapping of tag number to value); the tag
    is looked up in the Exif sub-IFD and, for writers that misplace it, in IFD0.
    ``width`` and ``height`` are the image size in pixels as displayed (after any
    EXIF orientation is applied). The 35 mm equivalent focal length is taken to be
    relative to the 36 mm width of a full-frame sensor, so
    ``fx = fy = f35 / 36 mm × width``; the principal point is the image centre.
    """
    value: Any = None
    get_ifd = getattr(exif, "get_ifd", None)
    if callable(get_ifd):
        value = get_ifd(EXIF_IFD_POINTER).get(FOCAL_LENGTH_IN_35MM_FILM)
    if value is None:
        value = exif.get(FOCAL_LENGTH_IN_35MM_FILM)
    focal_35mm = _as_float(value)
    if focal_35mm is None or focal_35mm <= 0.0:  # 0 is EXIF's "unknown"
        return None
    focal = focal_35mm / FULL_FRAME_WIDTH_MM * width
    return Camera(focal, focal, width / 2.0, height / 2.0, width, height)


def _as_float(value: Any) -> float | None:
    """An EXIF value (int, rational, or a one-element sequence of them) as a float."""
    if isinstance(value, tuple | list):
        value = value[0] if len(value) == 1 else None
    try:
        result = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return result if math.isfinite(result) else None
