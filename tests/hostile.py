"""Hostile inputs, made by the tests: every reproducer of the hostile-input campaign
(issue 13) as a small file built from scratch, never a stored blob.

``hostile_folder(path)`` writes them all into one folder (good photos among them) and
returns which names must succeed and which must fail; ``exif_jpeg`` and
``float_strip_offsets_tiff`` build the individual byte-level cases.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

# TIFF field types (TIFF 6.0, section 2): the ones the EXIF reproducers use.
SHORT, LONG, RATIONAL, SLONG, FLOAT, DOUBLE = 3, 4, 5, 9, 11, 12
_SIZES = {SHORT: 2, LONG: 4, RATIONAL: 8, SLONG: 4, FLOAT: 4, DOUBLE: 8}
_FORMATS = {SHORT: "H", LONG: "I", SLONG: "i", FLOAT: "f", DOUBLE: "d"}

EXIF_IFD = 0x8769
FOCAL_LENGTH = 0x920A
PIXEL_X_DIMENSION = 0xA002
PIXEL_Y_DIMENSION = 0xA003
FOCAL_PLANE_X_RESOLUTION = 0xA20E
FOCAL_LENGTH_IN_35MM_FILM = 0xA405


def photo(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth (H, W, 3) uint8 picture with some texture (compresses like a photo)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width, 1), y * 255 // max(height, 1), (x + y) % 256], -1)
    noise = rng.integers(0, 24, (height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def encode(rgb: np.ndarray, fmt: str = "PNG", **params: object) -> bytes:
    """``rgb`` encoded by Pillow as ``fmt``."""
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format=fmt, **params)
    return buffer.getvalue()


def exif_block(entries: list[tuple[int, int, object]], ifd0: bool = False) -> bytes:
    """Raw EXIF (``Exif\\0\\0`` + little-endian TIFF) holding ``entries`` of
    ``(tag, field type, value)`` in the Exif sub-IFD (or IFD0 when ``ifd0``), with the
    exact types given: the campaign's SLONG −120 PixelYDimension and DOUBLE 1e308
    FocalLengthIn35mmFilm cannot be written through Pillow's typed Exif API."""
    header = b"II*\x00" + struct.pack("<I", 8)

    def ifd(items: list[tuple[int, int, object]], start: int) -> bytes:
        table = struct.pack("<H", len(items))
        data = b""
        data_start = start + 2 + 12 * len(items) + 4
        for tag, kind, value in sorted(items, key=lambda item: item[0]):
            if kind == RATIONAL:
                num, den = value  # type: ignore[misc]
                payload = struct.pack("<II", num, den)
            else:
                payload = struct.pack("<" + _FORMATS[kind], value)
            if len(payload) <= 4:
                table += struct.pack("<HHI", tag, kind, 1) + payload.ljust(4, b"\0")
            else:
                table += struct.pack("<HHII", tag, kind, 1, data_start + len(data))
                data += payload
        return table + struct.pack("<I", 0) + data

    if ifd0:
        body = ifd(entries, 8)
    else:
        pointer_ifd_size = 2 + 12 + 4
        sub = ifd(entries, 8 + pointer_ifd_size)
        body = ifd([(EXIF_IFD, LONG, 8 + pointer_ifd_size)], 8) + sub
    return b"Exif\x00\x00" + header + body


def exif_jpeg(entries: list[tuple[int, int, object]], size: tuple[int, int] = (48, 64)) -> bytes:
    """A JPEG carrying ``exif_block(entries)``."""
    return encode(photo(*size), "JPEG", quality=90, exif=exif_block(entries))


def float_strip_offsets_tiff() -> bytes:
    """An uncompressed TIFF whose StripOffsets (tag 273) entry is retyped as FLOAT:
    a one-byte change that made Pillow raise TypeError."""
    data = bytearray(encode(photo(16, 16), "TIFF"))
    assert data[:2] == b"II"
    (offset,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, offset)
    for index in range(count):
        entry = offset + 2 + 12 * index
        tag, _kind, n = struct.unpack_from("<HHI", data, entry)
        if tag == 273 and n == 1:
            struct.pack_into("<H", data, entry + 2, FLOAT)
            return bytes(data)
    raise AssertionError("no single StripOffsets entry in Pillow's TIFF")


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header says ``width`` × ``height`` but holds one tiny row of data."""
    small = encode(photo(4, 4), "PNG")
    # IHDR is the first chunk: 8-byte signature, length, type, then width and height.
    ihdr = bytearray(small[8 : 8 + 25])
    struct.pack_into(">II", ihdr, 8, width, height)
    import zlib

    crc = zlib.crc32(bytes(ihdr[4:21])) & 0xFFFFFFFF
    struct.pack_into(">I", ihdr, 21, crc)
    return small[:8] + bytes(ihdr) + small[33:]


def png16_with_bad_icc() -> bytes:
    """A 48-bit RGB PNG (decoded by OpenCV) with a broken iCCP chunk: libpng prints
    "libpng warning: iCCP: too short" to stderr unless it is silenced."""
    import zlib

    import cv2

    rgb16 = photo(24, 32).astype(np.uint16) * 257
    ok, encoded = cv2.imencode(".png", rgb16[:, :, ::-1])
    assert ok
    data = encoded.tobytes()
    body = b"iCCP" + b"bogus\x00\x00" + zlib.compress(b"not a profile" * 10)
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    return data[:33] + chunk + data[33:]  # after the signature and IHDR


EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
    b"%%EndComments\n/Helvetica findfont 1 scalefont setfont\nshowpage\n%%EOF\n"
)

# name -> bytes of every regular-file case; GOOD ones must give outputs.
GOOD_NAMES = (
    "good.jpg",
    "good.png",
    "thin-1x16.png",
    "thin-10x200.png",
    "thin-20x1000.png",
    "thin-1x5000.png",
    "exif-negative-pixel-y.jpg",
    "exif-f35-1e308.jpg",
    "exif-f35-5e-324.jpg",
    "exif-focal-zero.jpg",
    "exif-focal-inf.jpg",
    "exif-garbage.jpg",
    "png16-bad-icc.png",
    "jpeg-extraneous-bytes.jpg",
)
# The good files whose EXIF camera no camera can have: they load with the default one.
IMPOSSIBLE_EXIF = tuple(name for name in GOOD_NAMES if name.startswith("exif-"))


def regular_files() -> dict[str, bytes]:
    """Every regular-file case of the campaign, by file name."""
    truncated = encode(photo(64, 96, seed=1), "JPEG", quality=90)
    png = encode(photo(64, 96, seed=2), "PNG")
    files = {
        "good.jpg": encode(photo(48, 64, seed=3), "JPEG", quality=90),
        "good.png": encode(photo(40, 56, seed=4), "PNG"),
        "thin-1x16.png": encode(photo(1, 16), "PNG"),
        "thin-10x200.png": encode(photo(10, 200), "PNG"),
        "thin-20x1000.png": encode(photo(20, 1000), "PNG"),
        "thin-1x5000.png": encode(photo(1, 5000), "PNG"),
        "exif-negative-pixel-y.jpg": exif_jpeg(
            [
                (FOCAL_LENGTH, RATIONAL, (50, 1)),
                (FOCAL_PLANE_X_RESOLUTION, RATIONAL, (3000, 1)),
                (PIXEL_X_DIMENSION, LONG, 64),
                (PIXEL_Y_DIMENSION, SLONG, -120),
            ]
        ),
        "exif-f35-1e308.jpg": exif_jpeg([(FOCAL_LENGTH_IN_35MM_FILM, DOUBLE, 1e308)]),
        "exif-f35-5e-324.jpg": exif_jpeg([(FOCAL_LENGTH_IN_35MM_FILM, DOUBLE, 5e-324)]),
        "exif-focal-zero.jpg": exif_jpeg(
            [(FOCAL_LENGTH, RATIONAL, (0, 0)), (FOCAL_PLANE_X_RESOLUTION, RATIONAL, (1, 0))]
        ),
        "exif-focal-inf.jpg": exif_jpeg([(FOCAL_LENGTH_IN_35MM_FILM, FLOAT, float("inf"))]),
        "exif-garbage.jpg": encode(
            photo(48, 64), "JPEG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f" + b"\x01" * 40
        ),
        "png16-bad-icc.png": png16_with_bad_icc(),
        "jpeg-extraneous-bytes.jpg": _with_extraneous_bytes(
            encode(photo(32, 48, seed=6), "JPEG", quality=90)
        ),
        # Must fail, each with one sentence.
        "png16-truncated.png": png16_with_bad_icc()[:300],
        "tiff-truncated.tif": encode(photo(64, 64), "TIFF")[:100],
        "tiff-float-strip-offsets.tif": float_strip_offsets_tiff(),
        "postscript.png": EPS,
        "postscript.eps.jpg": EPS,
        "photoshop.png": b"8BPS\x00\x01" + b"\x00" * 6 + struct.pack(">HIIHH", 3, 8, 8, 8, 3),
        "netpbm.png": b"P6\n8 8\n255\n" + bytes(192),
        "truncated.jpg": truncated[: len(truncated) * 2 // 3],
        "truncated.png": png[: len(png) // 2],
        "random-bytes.jpg": np.random.default_rng(5).integers(0, 256, 4096, np.uint8).tobytes(),
        "text.png": b"this is not an image\n" * 10,
        "empty.jpg": b"",
        "header-bomb.png": png_claiming(200_000, 200_000),
    }
    return files


def _with_extraneous_bytes(jpeg: bytes) -> bytes:
    """Three stray bytes before the start-of-scan marker: libjpeg's "Corrupt JPEG data:
    3 extraneous bytes before marker 0xda" (a warning; the image still decodes)."""
    index = jpeg.find(b"\xff\xda")
    return jpeg[:index] + b"\x00\x01\x02" + jpeg[index:]


def hostile_folder(folder: Path) -> tuple[list[str], list[str]]:
    """Write every case into ``folder``; return (names that must succeed, names that
    must fail). Special files (a FIFO, a link loop, a broken link, a link to
    /dev/zero) are made where the platform allows."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in regular_files().items():
        (folder / name).write_bytes(data)
    special = []
    if hasattr(os, "mkfifo"):
        os.mkfifo(folder / "fifo.jpg")
        special.append("fifo.jpg")
    (folder / "loop.jpg").symlink_to("loop.jpg")
    (folder / "broken-link.png").symlink_to("nowhere.png")
    special += ["loop.jpg", "broken-link.png"]
    if Path("/dev/zero").exists():
        (folder / "zeros.png").symlink_to("/dev/zero")
        special.append("zeros.png")
    names = sorted([*regular_files(), *special])
    good = [n for n in names if n in GOOD_NAMES]
    bad = [n for n in names if n not in GOOD_NAMES]
    return good, bad
