"""Camera intrinsics: where they come from (user, EXIF, default) and what they are."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL.TiffImagePlugin import IFDRational

from depthlens.geometry.camera import DEFAULT_FOV_DEG, Camera, camera_from_exif
from depthlens.io.images import load_image


def exif_focal_plane(
    focal_mm: float | None = 4.25,
    x_resolution: float | None = 1000.0,
    y_resolution: float | None = None,
    unit: int | None = 3,
    pixel_size: tuple[int, int] | None = None,
    orientation: int | None = None,
) -> PILImage.Exif:
    """EXIF with FocalLength and the FocalPlane* tags in the Exif sub-IFD."""
    exif = PILImage.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    sub = exif.get_ifd(0x8769)
    if focal_mm is not None:
        sub[0x920A] = IFDRational(Fraction(focal_mm).limit_denominator(1000))
    if x_resolution is not None:
        sub[0xA20E] = IFDRational(Fraction(x_resolution).limit_denominator(1000))
    if y_resolution is not None:
        sub[0xA20F] = IFDRational(Fraction(y_resolution).limit_denominator(1000))
    if unit is not None:
        sub[0xA210] = unit
    if pixel_size is not None:
        sub[0xA002], sub[0xA003] = pixel_size
    return exif


def jpeg(tmp_path: Path, width: int, height: int, exif: PILImage.Exif) -> Path:
    path = tmp_path / "photo.jpg"
    PILImage.fromarray(np.zeros((height, width, 3), np.uint8)).save(path, exif=exif)
    return path


@pytest.mark.parametrize(
    ("unit", "resolution", "pixels_per_mm"),
    [
        (2, 25.4 * 200, 200.0),  # inch
        (3, 2000.0, 200.0),  # cm
        (4, 200.0, 200.0),  # mm
        (5, 0.2, 200.0),  # µm
        (None, 5080.0, 200.0),  # absent: EXIF's default, inch
    ],
)
def test_focal_plane_resolution_units(tmp_path, unit, resolution, pixels_per_mm):
    exif = exif_focal_plane(focal_mm=4.5, x_resolution=resolution, unit=unit)
    camera = load_image(jpeg(tmp_path, 64, 48, exif)).camera
    assert camera is not None and camera.source == "exif"
    assert camera.fx == pytest.approx(4.5 * pixels_per_mm, rel=1e-3)  # 900 px
    assert camera.fy == pytest.approx(camera.fx)  # no y resolution: square pixels
    assert (camera.cx, camera.cy, camera.width, camera.height) == (32.0, 24.0, 64, 48)


def test_focal_plane_scaled_to_the_image_size(tmp_path):
    # The camera wrote 4000×3000 at 250 px/mm in x, 240 in y; this copy is 80×60.
    exif = exif_focal_plane(
        focal_mm=5.0, x_resolution=250.0, y_resolution=240.0, unit=4, pixel_size=(4000, 3000)
    )
    camera = load_image(jpeg(tmp_path, 80, 60, exif)).camera
    assert camera is not None
    assert camera.fx == pytest.approx(5.0 * 250.0 * 80 / 4000)  # 25 px
    assert camera.fy == pytest.approx(5.0 * 240.0 * 60 / 3000)  # 24 px


def test_focal_plane_with_orientation_swaps_axes(tmp_path):
    # Stored 80×40 (landscape), displayed 40×80 after orientation 6.
    exif = exif_focal_plane(
        focal_mm=2.0, x_resolution=10.0, y_resolution=20.0, unit=4, orientation=6
    )
    image = load_image(jpeg(tmp_path, 80, 40, exif))
    assert (image.width, image.height) == (40, 80)
    camera = image.camera
    assert camera is not None and (camera.width, camera.height) == (40, 80)
    assert camera.fx == pytest.approx(2.0 * 20.0)  # displayed x is the stored y
    assert camera.fy == pytest.approx(2.0 * 10.0)


def test_35mm_focal_takes_precedence():
    exif = exif_focal_plane(focal_mm=4.0, x_resolution=100.0, unit=4)
    exif.get_ifd(0x8769)[0xA405] = 36
    camera = camera_from_exif(exif, 100, 50)
    assert camera == Camera(100.0, 100.0, 50.0, 25.0, 100, 50, source="exif")


@pytest.mark.parametrize(
    "params",
    [
        {"focal_mm": None},
        {"x_resolution": None},
        {"unit": 1},  # "no absolute unit"
        {"focal_mm": 0.0},
    ],
)
def test_focal_plane_incomplete_gives_no_camera(params):
    assert camera_from_exif(exif_focal_plane(**params), 64, 48) is None


def test_default_camera():
    camera = Camera.default(640, 480)
    assert camera.source == "default" and DEFAULT_FOV_DEG == 60.0
    assert camera.fx == pytest.approx(320.0 / np.tan(np.radians(30.0)))
    assert (camera.cx, camera.cy) == (320.0, 240.0)
    assert Camera.from_fov(640, 480, 60.0).source == "user"
    assert Camera.default(640, 480).as_dict()["source"] == "default"


def test_camera_rejects_bad_values():
    with pytest.raises(ValueError, match="source"):
        Camera(1.0, 1.0, 0.5, 0.5, 1, 1, source="guess")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        Camera(float("inf"), 1.0, 0.5, 0.5, 1, 1)
    with pytest.raises(ValueError, match="principal"):
        Camera(1.0, 1.0, float("nan"), 0.5, 1, 1)
