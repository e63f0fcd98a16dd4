"""load_image: every format and pixel mode, EXIF, size limits, bad files; find_images."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path, PurePath
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageFile, ImageOps

from depthlens.errors import ImageError
from depthlens.geometry.camera import Camera, camera_from_exif
from depthlens.io.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    Image,
    find_images,
    load_image,
)

# A 6×8 picture with four flat colours, one per quadrant, so that lossy codecs keep
# the colours close and any rotation or flip is visible.
QUADRANTS = np.zeros((6, 8, 3), np.uint8)
QUADRANTS[:3, :4] = (200, 30, 30)
QUADRANTS[:3, 4:] = (30, 200, 30)
QUADRANTS[3:, :4] = (30, 30, 200)
QUADRANTS[3:, 4:] = (230, 230, 230)


def png_bytes(width: int, height: int, bit_depth: int, color_type: int, rows: bytes) -> bytes:
    """A PNG file built chunk by chunk (``rows`` already carry their filter bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def save(tmp_path: Path, name: str, image: PILImage.Image, **params: Any) -> Path:
    path = tmp_path / name
    image.save(path, **params)
    return path


# ---------------------------------------------------------------- formats and modes


@pytest.mark.parametrize(
    ("name", "params", "tolerance"),
    [
        ("a.png", {}, 0),
        ("a.bmp", {}, 0),
        ("a.tiff", {}, 0),
        ("a.webp", {"lossless": True}, 0),
        ("a.gif", {}, 0),
        ("a.jpg", {"quality": 95, "subsampling": 0}, 12),
    ],
)
def test_each_format_loads_as_rgb_uint8(tmp_path, name, params, tolerance):
    path = save(tmp_path, name, PILImage.fromarray(QUADRANTS), **params)
    image = load_image(path)
    assert isinstance(image, Image)
    assert image.rgb.dtype == np.uint8 and image.rgb.shape == (6, 8, 3)
    assert image.rgb.flags.c_contiguous and image.rgb.flags.writeable
    assert image.source == str(path)
    assert (image.height, image.width) == (6, 8)
    diff = np.abs(image.rgb.astype(int) - QUADRANTS.astype(int))
    assert diff.max() <= tolerance


def test_gif_gives_its_first_frame(tmp_path):
    first = PILImage.fromarray(QUADRANTS)
    second = PILImage.fromarray(255 - QUADRANTS)
    path = tmp_path / "anim.gif"
    first.save(path, save_all=True, append_images=[second], duration=100)
    np.testing.assert_array_equal(load_image(path).rgb, QUADRANTS)


def test_palette_with_transparency_gives_palette_colours_without_warnings(tmp_path):
    palette_image = PILImage.fromarray(QUADRANTS).convert("P", palette=PILImage.Palette.ADAPTIVE)
    transparency = bytes([0] + [255] * 255)  # index 0 fully transparent
    path = save(tmp_path, "p.png", palette_image, transparency=transparency)
    assert PILImage.open(path).mode == "P" and "transparency" in PILImage.open(path).info
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rgb = load_image(path).rgb
    np.testing.assert_array_equal(rgb, np.asarray(palette_image.convert("RGB")))


def test_gray_and_bilevel(tmp_path):
    gray = QUADRANTS[:, :, 0]
    rgb = load_image(save(tmp_path, "l.png", PILImage.fromarray(gray))).rgb
    np.testing.assert_array_equal(rgb, np.repeat(gray[:, :, None], 3, axis=2))
    bilevel = PILImage.fromarray(gray > 100).convert("1")
    rgb = load_image(save(tmp_path, "b.png", bilevel)).rgb
    np.testing.assert_array_equal(rgb[:, :, 0], np.where(gray > 100, 255, 0))


def test_alpha_is_dropped_and_colour_kept(tmp_path):
    rgba = np.dstack([QUADRANTS, np.zeros((6, 8), np.uint8)])  # fully transparent
    rgb = load_image(save(tmp_path, "rgba.png", PILImage.fromarray(rgba, "RGBA"))).rgb
    np.testing.assert_array_equal(rgb, QUADRANTS)
    la = np.dstack([QUADRANTS[:, :, 1], np.full((6, 8), 7, np.uint8)])
    rgb = load_image(save(tmp_path, "la.png", PILImage.fromarray(la, "LA"))).rgb
    np.testing.assert_array_equal(rgb, np.repeat(la[:, :, :1], 3, axis=2))


# 16-bit values where Pillow's high byte (v >> 8) and rounding (v / 257) disagree.
VALUES_16 = np.array([0, 128, 129, 1000, 40000, 65535], np.uint16)
EXPECTED_8 = np.array([0, 0, 1, 4, 156, 255], np.uint8)  # round(v * 255 / 65535)


def test_16bit_gray_scales_not_clips(tmp_path):
    gray = np.tile(VALUES_16, (2, 1))
    for name in ("g16.png", "g16.tif"):
        path = save(tmp_path, name, PILImage.fromarray(gray))
        assert PILImage.open(path).mode.startswith("I;16")
        rgb = load_image(path).rgb
        np.testing.assert_array_equal(rgb[:, :, 0], np.tile(EXPECTED_8, (2, 1)))
        np.testing.assert_array_equal(rgb[:, :, 0], rgb[:, :, 2])


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_48bit_rgb_rounds_each_channel(tmp_path, suffix):
    rgb16 = np.stack([VALUES_16, VALUES_16[::-1], np.full(6, 30000, np.uint16)], axis=1)
    rgb16 = np.tile(rgb16[None], (3, 1, 1))  # (3, 6, 3)
    path = tmp_path / f"rgb48{suffix}"
    assert cv2.imwrite(str(path), rgb16[:, :, ::-1])
    rgb = load_image(path).rgb
    expected = np.stack([EXPECTED_8, EXPECTED_8[::-1], np.full(6, 117, np.uint8)], axis=1)
    np.testing.assert_array_equal(rgb, np.tile(expected[None], (3, 1, 1)))


def test_64bit_rgba_and_32bit_gray_alpha_png(tmp_path):
    rgba16 = np.zeros((2, 6, 4), np.uint16)
    rgba16[..., 0] = VALUES_16
    rgba16[..., 3] = 1000
    path = tmp_path / "rgba64.png"
    cv2.imwrite(str(path), rgba16[:, :, [2, 1, 0, 3]])
    rgb = load_image(path).rgb
    np.testing.assert_array_equal(rgb[..., 0], np.tile(EXPECTED_8, (2, 1)))
    assert not rgb[..., 1:].any()

    pairs = [int(v) for value in VALUES_16 for v in (value, 5)]  # gray, alpha
    row = b"\x00" + struct.pack(f">{len(pairs)}H", *pairs)
    path = tmp_path / "la32.png"
    path.write_bytes(png_bytes(6, 2, 16, 4, row * 2))
    rgb = load_image(path).rgb
    np.testing.assert_array_equal(rgb, np.tile(EXPECTED_8[None, :, None], (2, 1, 3)))


def test_cmyk_jpeg(tmp_path):
    cmyk = np.zeros((8, 8, 4), np.uint8)
    cmyk[:, :4] = (0, 255, 255, 0)  # red
    cmyk[:, 4:] = (0, 0, 0, 255)  # black
    path = save(tmp_path, "cmyk.jpg", PILImage.fromarray(cmyk, "CMYK"), quality=95)
    assert PILImage.open(path).mode == "CMYK"
    rgb = load_image(path).rgb.astype(int)
    assert np.abs(rgb[:, :2] - (255, 0, 0)).max() <= 12
    assert rgb[:, 6:].max() <= 12


def test_float_and_int32_images(tmp_path):
    unit = np.array([[0.0, 0.5, 1.0]], np.float32)
    rgb = load_image(save(tmp_path, "f.tif", PILImage.fromarray(unit, "F"))).rgb
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 128, 255])
    wide = np.array([[-2.0, 3.0, 8.0]], np.float32)  # outside [0, 1]: min-max
    rgb = load_image(save(tmp_path, "g.tif", PILImage.fromarray(wide, "F"))).rgb
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 128, 255])
    int16_range = np.array([[0, 40000, 65535]], np.int32)
    rgb = load_image(PILImage.fromarray(int16_range, "I")).rgb
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 156, 255])
    big = np.array([[-100, 0, 100]], np.int32)
    rgb = load_image(PILImage.fromarray(big, "I")).rgb
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 128, 255])


# ---------------------------------------------------------------- other sources


def test_bytes_and_pil_sources(tmp_path):
    path = save(tmp_path, "a.png", PILImage.fromarray(QUADRANTS))
    from_bytes = load_image(path.read_bytes(), name="upload.png")
    np.testing.assert_array_equal(from_bytes.rgb, QUADRANTS)
    assert from_bytes.source == "upload.png"
    assert load_image(path.read_bytes()).source == "<bytes>"
    np.testing.assert_array_equal(load_image(str(path)).rgb, QUADRANTS)
    with PILImage.open(path) as opened:
        np.testing.assert_array_equal(load_image(opened).rgb, QUADRANTS)
    np.testing.assert_array_equal(load_image(PILImage.fromarray(QUADRANTS)).rgb, QUADRANTS)


def test_array_sources():
    np.testing.assert_array_equal(load_image(QUADRANTS).rgb, QUADRANTS)
    gray = QUADRANTS[:, :, 0]
    np.testing.assert_array_equal(load_image(gray).rgb, np.dstack([gray] * 3))
    np.testing.assert_array_equal(load_image(gray[:, :, None]).rgb, np.dstack([gray] * 3))
    rgba = np.dstack([QUADRANTS, np.zeros((6, 8), np.uint8)])
    np.testing.assert_array_equal(load_image(rgba).rgb, QUADRANTS)
    floats = QUADRANTS.astype(np.float32) / 255.0
    np.testing.assert_array_equal(load_image(floats).rgb, QUADRANTS)
    assert load_image(QUADRANTS).camera is None
    assert load_image(QUADRANTS).source == "<array>"
    not_shared = load_image(QUADRANTS[:, ::-1])
    assert not_shared.rgb.flags.c_contiguous and not_shared.rgb.flags.writeable
    assert not np.shares_memory(load_image(QUADRANTS).rgb, QUADRANTS)


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.zeros((4, 4, 3), np.float32) + 1.5, "outside [0, 1]"),
        (np.full((4, 4), np.nan), "outside [0, 1]"),
        (np.zeros((4, 4, 3), np.int64), "dtype int64"),
        (np.zeros((4, 4, 2), np.uint8), "shape (4, 4, 2)"),
        (np.zeros((2, 4, 4, 3), np.uint8), "shape (2, 4, 4, 3)"),
        (np.zeros((0, 4, 3), np.uint8), "no pixels"),
    ],
)
def test_bad_arrays(array, words):
    with pytest.raises(ImageError, match=r"^<array> .*") as caught:
        load_image(array)
    assert words in str(caught.value)


def test_wrong_source_type_is_a_type_error():
    with pytest.raises(TypeError):
        load_image(12)


# ---------------------------------------------------------------- EXIF


def exif_with(orientation: int | None = None, focal_35mm: int | None = None) -> PILImage.Exif:
    exif = PILImage.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if focal_35mm is not None:
        exif.get_ifd(0x8769)[0xA405] = focal_35mm
    return exif


def test_exif_orientation_6_rotates_clockwise(tmp_path):
    picture = np.zeros((20, 40, 3), np.uint8)
    picture[:, :20] = 255  # left half white
    path = save(tmp_path, "o6.jpg", PILImage.fromarray(picture), exif=exif_with(6), quality=95)
    rgb = load_image(path).rgb
    assert rgb.shape == (40, 20, 3)
    assert rgb[:18].min() > 200 and rgb[22:].max() < 50  # white now on top


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(tmp_path, orientation):
    path = save(tmp_path, "o.png", PILImage.fromarray(QUADRANTS), exif=exif_with(orientation))
    with PILImage.open(path) as opened:
        expected = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
    np.testing.assert_array_equal(load_image(path).rgb, expected)


def test_exif_orientation_applies_to_16bit_files_too():
    rgb16 = np.ascontiguousarray((QUADRANTS.astype(np.uint16) * 257)[:, :, ::-1])
    ok, encoded = cv2.imencode(".png", rgb16)
    assert ok
    # Pillow cannot write 48-bit PNGs: splice an eXIf chunk in after IHDR by hand.
    exif = exif_with(6).tobytes()
    chunk = struct.pack(">I", len(exif)) + b"eXIf" + exif
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + exif))
    end_of_ihdr = 8 + 8 + 13 + 4  # signature, length + type, IHDR data, CRC
    data = encoded.tobytes()
    data = data[:end_of_ihdr] + chunk + data[end_of_ihdr:]
    with PILImage.open(io.BytesIO(data)) as opened:
        assert opened.getexif()[0x0112] == 6
    np.testing.assert_array_equal(load_image(data).rgb, np.rot90(QUADRANTS, k=-1))


def test_exif_focal_length_gives_camera_after_orientation(tmp_path):
    picture = PILImage.fromarray(np.zeros((20, 40, 3), np.uint8))
    path = save(tmp_path, "f.jpg", picture, exif=exif_with(6, focal_35mm=28))
    camera = load_image(path).camera
    assert camera == Camera(28 / 36 * 20, 28 / 36 * 20, 10.0, 20.0, 20, 40, source="exif")
    plain = save(tmp_path, "plain.jpg", picture)
    assert load_image(plain).camera is None
    unknown = save(tmp_path, "zero.jpg", picture, exif=exif_with(focal_35mm=0))
    assert load_image(unknown).camera is None


def test_camera_from_exif_and_fov():
    assert camera_from_exif({}, 100, 50) is None
    assert camera_from_exif({0xA405: 0}, 100, 50) is None
    assert camera_from_exif({0xA405: "junk"}, 100, 50) is None
    camera = camera_from_exif({0xA405: 36}, 100, 50)  # misplaced in IFD0: still read
    assert camera == Camera(100.0, 100.0, 50.0, 25.0, 100, 50, source="exif")
    camera = camera_from_exif(exif_with(focal_35mm=72), 100, 50)
    assert camera is not None and camera.fx == pytest.approx(200.0)
    wide = Camera.from_fov(640, 480, 90.0)
    assert wide.fx == pytest.approx(320.0) and wide.fy == wide.fx
    assert (wide.cx, wide.cy, wide.width, wide.height) == (320.0, 240.0, 640, 480)
    with pytest.raises(ValueError):
        Camera.from_fov(640, 480, 180.0)
    with pytest.raises(ValueError):
        Camera(0.0, 1.0, 0.0, 0.0, 10, 10)


# ---------------------------------------------------------------- bad files


def test_missing_directory_and_empty_files(tmp_path):
    missing = tmp_path / "nope.jpg"
    with pytest.raises(ImageError, match="does not exist") as caught:
        load_image(missing)
    assert str(missing) in str(caught.value)
    with pytest.raises(ImageError, match="is a directory") as caught:
        load_image(tmp_path)
    assert str(tmp_path) in str(caught.value)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty") as caught:
        load_image(empty)
    assert str(empty) in str(caught.value)
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp"])
@pytest.mark.parametrize("keep", [0.3, 0.7])
def test_truncated_files_raise_rather_than_pad(tmp_path, suffix, keep):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    rng = np.random.default_rng(0)
    noisy = PILImage.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    whole = save(tmp_path, "whole" + suffix, noisy)
    data = whole.read_bytes()
    cut = tmp_path / ("cut" + suffix)
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ImageError) as caught:
        load_image(cut)
    message = str(caught.value)
    assert str(cut) in message and message.endswith(".") and "\n" not in message


def test_truncated_48bit_png_raises(tmp_path):
    path = tmp_path / "rgb48.png"
    rng = np.random.default_rng(1)
    cv2.imwrite(str(path), rng.integers(0, 65536, (32, 32, 3), dtype=np.uint16))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImageError, match="truncated"):
        load_image(path)


def test_text_renamed_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n" * 20)
    with pytest.raises(ImageError, match="not an image") as caught:
        load_image(path)
    assert str(path) in str(caught.value)


def huge_png_header(width: int, height: int) -> bytes:
    """A valid 1×1 gray PNG whose IHDR is patched to claim ``width`` × ``height``."""
    data = bytearray(png_bytes(1, 1, 8, 0, b"\x00\x00"))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if Pillow starts decoding pixels."""

    def refuse(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def test_oversized_image_refused_from_header(tmp_path, no_decoding):
    path = tmp_path / "huge.png"
    path.write_bytes(huge_png_header(12000, 10000))  # 120 MP: past ours, under Pillow's
    assert len(path.read_bytes()) < 100
    with pytest.raises(ImageError) as caught:
        load_image(path)
    message = str(caught.value)
    for words in (str(path), "12000×10000", "120,000,000", f"{DEFAULT_MAX_PIXELS:,}", "max_pixels"):
        assert words in message


def test_pillow_bomb_limit_becomes_image_error(tmp_path, no_decoding):
    path = tmp_path / "bomb.png"
    path.write_bytes(huge_png_header(60000, 60000))
    with pytest.raises(ImageError) as caught:
        load_image(path, max_pixels=10**10)
    message = str(caught.value)
    assert str(path) in message and "3,600,000,000 pixels" in message
    assert "MAX_IMAGE_PIXELS" in message


def test_max_pixels_applies_to_every_source(tmp_path):
    path = save(tmp_path, "a.png", PILImage.fromarray(QUADRANTS))
    for source in (path, path.read_bytes(), PILImage.fromarray(QUADRANTS), QUADRANTS):
        with pytest.raises(ImageError, match="limit of 47"):
            load_image(source, max_pixels=47)
        assert load_image(source, max_pixels=48).rgb.shape == (6, 8, 3)


# ---------------------------------------------------------------- find_images


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """photos/{a.jpg, B.PNG, notes.txt, sub/c.webp, sub/deeper/d.tif}, cwd = tmp_path."""
    root = tmp_path / "photos"
    (root / "sub" / "deeper").mkdir(parents=True)
    for name in ("a.jpg", "B.PNG", "sub/c.webp", "sub/deeper/d.tif"):
        (root / name).write_bytes(b"x")
    (root / "notes.txt").write_text("no")
    (root / "sub" / "fake.jpg").mkdir()  # a folder with an image suffix
    monkeypatch.chdir(tmp_path)
    return root


def rels(found: list[tuple[Path, PurePath]]) -> list[str]:
    return [rel.as_posix() for _, rel in found]


def test_find_images_in_folders(tree):
    assert rels(find_images(["photos"], recursive=False)) == ["B.PNG", "a.jpg"]
    found = find_images([str(tree)], recursive=True)
    assert rels(found) == ["B.PNG", "a.jpg", "sub/c.webp", "sub/deeper/d.tif"]
    assert found[2][0] == tree / "sub" / "c.webp"
    assert all(not rel.is_absolute() and ".." not in rel.parts for _, rel in found)


def test_find_images_named_files_and_globs(tree):
    assert rels(find_images(["photos/sub/deeper/d.tif"], recursive=False)) == ["d.tif"]
    assert rels(find_images(["photos/notes.txt"], recursive=False)) == ["notes.txt"]
    assert rels(find_images(["photos/*"], recursive=False)) == ["B.PNG", "a.jpg"]
    assert rels(find_images(["photos/**/*.*"], recursive=False)) == [
        "B.PNG",
        "a.jpg",
        "sub/c.webp",
        "sub/deeper/d.tif",
    ]
    assert rels(find_images(["photos/sub/../*.jpg"], recursive=False)) == ["a.jpg"]
    assert rels(find_images([str(tree / "s*" / "*.webp")], recursive=False)) == ["sub/c.webp"]


def test_find_images_keeps_input_order_and_drops_duplicates(tree):
    found = find_images(["photos/sub/c.webp", "photos", "photos/a.jpg"], recursive=True)
    assert rels(found) == ["c.webp", "B.PNG", "a.jpg", "sub/deeper/d.tif"]
    assert find_images("photos/a.jpg", recursive=False) == [  # one string is one input
        (Path("photos/a.jpg"), PurePath("a.jpg"))
    ]


def test_find_images_errors_name_the_input(tree):
    with pytest.raises(ImageError, match=r"missing\.jpg does not exist"):
        find_images(["photos/a.jpg", "missing.jpg"], recursive=False)
    with pytest.raises(ImageError, match=r"photos/\*\.gif matches no image"):
        find_images(["photos/*.gif"], recursive=False)


def test_image_suffixes_are_lower_case():
    assert isinstance(IMAGE_SUFFIXES, frozenset)
    assert {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"} <= IMAGE_SUFFIXES
    assert all(s == s.lower() and s.startswith(".") for s in IMAGE_SUFFIXES)
