"""Every decoder reproducer of the hostile-input campaign (issue 13) loads or fails
with one sentence: no uncaught exception, no decoder outside the allow-list."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from PIL import EpsImagePlugin, PsdImagePlugin
from PIL import Image as PILImage

from depthlens.errors import ImageError, ImageTooLargeError
from depthlens.geometry.camera import Camera, camera_from_exif
from depthlens.io.images import find_images, load_image
from tests.hostile import (
    EPS,
    FOCAL_LENGTH_IN_35MM_FILM,
    GOOD_NAMES,
    IMPOSSIBLE_EXIF,
    SHORT,
    encode,
    exif_jpeg,
    hostile_folder,
    photo,
    png_claiming,
    regular_files,
)


def one_sentence(message: str) -> bool:
    return "\n" not in message and message.endswith(".") and "Traceback" not in message


@pytest.mark.parametrize("name", sorted(regular_files()))
def test_each_reproducer_loads_or_fails_with_one_sentence(name):
    data = regular_files()[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning escaping to the user fails the test
        if name in GOOD_NAMES:
            image = load_image(data, name=name)
            assert image.rgb.ndim == 3 and image.rgb.dtype.name == "uint8"
            return
        with pytest.raises(ImageError) as caught:
            load_image(data, name=name)
    assert one_sentence(str(caught.value)), str(caught.value)
    assert str(caught.value).startswith(name)


@pytest.mark.parametrize("name", IMPOSSIBLE_EXIF)
def test_impossible_exif_cameras_fall_back_to_the_default(name):
    image = load_image(regular_files()[name], name=name)
    assert image.camera is None
    assert image.camera_or_default.source == "default"


def test_a_sound_exif_camera_is_still_read():
    image = load_image(exif_jpeg([(FOCAL_LENGTH_IN_35MM_FILM, SHORT, 26)]))
    assert image.camera is not None and image.camera.source == "exif"
    assert image.camera.fx == pytest.approx(26 / 36 * 64)


@pytest.mark.parametrize("f35", [1e308, 5e-324, 1e-6, 1e6])
def test_exif_focal_lengths_no_camera_has_give_no_camera(f35):
    exif = PILImage.Exif()
    exif[FOCAL_LENGTH_IN_35MM_FILM] = f35
    assert camera_from_exif(exif, 640, 480) is None
    exif[FOCAL_LENGTH_IN_35MM_FILM] = 26.0
    assert camera_from_exif(exif, 640, 480) is not None


def test_postscript_never_reaches_its_decoder(monkeypatch):
    """Pillow's EPS plugin would hand the file to Ghostscript; it must not even be asked."""
    asked = []
    monkeypatch.setattr(EpsImagePlugin, "_accept", lambda prefix: asked.append(1) or True)
    monkeypatch.setattr(PsdImagePlugin, "_accept", lambda prefix: asked.append(1) or True)
    for payload in (EPS, b"8BPS" + bytes(40)):
        with pytest.raises(ImageError, match="not an image in a format depthlens reads"):
            load_image(payload, name="upload.png")
    assert asked == []


def test_every_documented_format_is_still_read():
    rgb = photo(24, 32)
    for fmt, params in [
        ("JPEG", {"quality": 95}),
        ("PNG", {}),
        ("WEBP", {"lossless": True}),
        ("TIFF", {}),
        ("BMP", {}),
        ("GIF", {}),
    ]:
        image = load_image(encode(rgb, fmt, **params), name=f"x.{fmt.lower()}")
        assert image.rgb.shape == (24, 32, 3), fmt


def test_pillow_bomb_names_the_callers_limit():
    with pytest.raises(ImageTooLargeError) as caught:
        load_image(png_claiming(200_000, 200_000), max_pixels=40_000_000, name="bomb.png")
    message = str(caught.value)
    assert "40,000,000" in message and "178,956,970" not in message
    assert caught.value.limit == 40_000_000
    assert "--max-megapixels" in message and one_sentence(message)


def test_decoder_complaints_are_printable_and_short():
    # A TIFF whose tag parsing fails quotes nothing raw back at the user.
    data = regular_files()["tiff-float-strip-offsets.tif"]
    with pytest.raises(ImageError) as caught:
        load_image(data, name="t.tif")
    message = str(caught.value)
    assert message.isprintable() and len(message) < 250


def test_special_files_say_what_they_are(tmp_path: Path):
    good, bad = hostile_folder(tmp_path / "h")
    expected = {
        "fifo.jpg": "named pipe",
        "loop.jpg": "symbolic link loop",
        "broken-link.png": "broken symbolic link",
        "zeros.png": "character device",
    }
    for name, words in expected.items():
        if name not in bad:
            continue
        with pytest.raises(ImageError, match=words):
            load_image(tmp_path / "h" / name)
        # named on the command line, they are passed on to be reported, not "missing"
        assert find_images([tmp_path / "h" / name], recursive=False)[0][0].name == name
    # and a folder scan keeps them too, so the batch reports them
    found = {path.name for path, _ in find_images([tmp_path / "h"], recursive=False)}
    assert set(good) | set(bad) <= found


def test_thin_strips_load():
    for height, width in [(1, 16), (1, 5000), (5000, 1)]:
        assert load_image(photo(height, width)).rgb.shape == (height, width, 3)


def test_user_cameras_are_checked_physically():
    Camera.from_fov(640, 480, 1.0)
    Camera.from_fov(640, 480, 179.0)
    for fov in (0.5, 179.5, 1e-306, 5e-324, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="field of view"):
            Camera.from_fov(640, 480, fov)
    with pytest.raises(ValueError, match="field of view"):
        Camera(1e-3, 1e-3, 320, 240, 640, 480).check_physical()
    with pytest.raises(ValueError, match="4 times"):
        Camera(500, 5000, 320, 240, 640, 480).check_physical()
    with pytest.raises(ValueError, match="principal point"):
        Camera(500, 500, 1e300, 240, 640, 480)
