"""Seeded fuzzing of everything that reads outside input (issue 13): mutated image
files through the decoder and the estimator's input path, and random EXIF blocks
through the camera. Each case either works or fails with one ``DepthlensError``
sentence; nothing else may escape. Deterministic (fixed seeds), bounded to seconds.

The web API's form fields are fuzzed in tests/serve (schemathesis and the hostile
uploads there).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depthlens.errors import ImageError
from depthlens.io.images import load_image
from tests.hostile import (
    DOUBLE,
    FLOAT,
    FOCAL_LENGTH,
    FOCAL_LENGTH_IN_35MM_FILM,
    FOCAL_PLANE_X_RESOLUTION,
    LONG,
    PIXEL_X_DIMENSION,
    PIXEL_Y_DIMENSION,
    RATIONAL,
    SHORT,
    SLONG,
    encode,
    exif_block,
    photo,
    regular_files,
)

INTERESTING = (0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE)


def seeds() -> dict[str, bytes]:
    """Valid small files of every allowed format (one with EXIF), and the campaign's."""
    rgb = photo(20, 28, seed=9)
    exif = exif_block([(FOCAL_LENGTH_IN_35MM_FILM, SHORT, 28), (PIXEL_X_DIMENSION, LONG, 28)])
    files = {
        "jpeg": encode(rgb, "JPEG", quality=80),
        "jpeg-exif": encode(rgb, "JPEG", quality=80, exif=exif),
        "png": encode(rgb, "PNG"),
        "png-palette": encode(rgb[:, :, 0] // 32, "PNG"),
        "webp": encode(rgb, "WEBP", quality=80),
        "tiff": encode(rgb, "TIFF"),
        "tiff-lzw": encode(rgb, "TIFF", compression="tiff_lzw"),
        "bmp": encode(rgb, "BMP"),
        "gif": encode(rgb, "GIF"),
    }
    files.update({name: data for name, data in regular_files().items() if data})
    return files


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One to four random edits: flip, set to an interesting byte, insert, delete,
    truncate, or copy a run over another place."""
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        if not out:
            break
        at = int(rng.integers(0, len(out)))
        kind = int(rng.integers(0, 6))
        if kind == 0:
            out[at] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:
            out[at] = INTERESTING[int(rng.integers(0, len(INTERESTING)))]
        elif kind == 2:
            out[at:at] = bytes(rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8))
        elif kind == 3:
            del out[at : at + int(rng.integers(1, 9))]
        elif kind == 4:
            del out[max(1, at) :]
        else:
            source = int(rng.integers(0, len(out)))
            out[at : at + 8] = out[source : source + 8]
    return bytes(out)


def check_one(data: bytes, label: str) -> np.ndarray | None:
    """Decode ``data``: an upright RGB image, or None after a one-sentence ImageError."""
    try:
        image = load_image(data, max_pixels=4_000_000, name=label)
    except ImageError as err:
        message = str(err)
        assert "\n" not in message and message.endswith((".", ")")), message
        assert message.isprintable() and len(message) < 400, message
        return None
    assert image.rgb.dtype == np.uint8 and image.rgb.ndim == 3 and image.rgb.shape[2] == 3
    assert image.rgb.flags.c_contiguous
    camera = image.camera
    if camera is not None:  # whatever EXIF said, a camera that exists is physical
        assert camera.check_physical() is camera
    return image.rgb


def test_mutated_files_decode_or_fail_in_one_sentence():
    rng = np.random.default_rng(13)
    decoded: list[np.ndarray] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may warn past load_image
        for name, data in seeds().items():
            for index in range(1000):
                rgb = check_one(mutate(data, rng), f"{name}-{index}")
                if rgb is not None and len(decoded) < 400:
                    decoded.append(rgb)
    assert len(decoded) > 100  # the mutations are mild enough that many still decode


def test_decoded_mutants_go_through_the_estimator():
    """Whatever the decoder lets through (odd sizes, strips) the network can take."""
    import depthlens

    estimator = depthlens.load_model("depthlens-small", device="cpu")
    rng = np.random.default_rng(14)
    by_shape: dict[tuple[int, ...], np.ndarray] = {}  # one image per shape the decoder gave
    for name, data in seeds().items():
        for index in range(40):
            rgb = check_one(mutate(data, rng), f"{name}-{index}")
            if rgb is not None:
                by_shape.setdefault(rgb.shape, rgb)
    images = list(by_shape.values())[:40]
    # plus shapes no mutation reaches: strips, single pixels, the 4:1 edge
    images += [photo(h, w) for h, w in [(1, 1), (1, 3000), (3000, 1), (2, 9), (100, 400)]]
    results = estimator.predict(images, batch_size=8)
    for rgb, result in zip(images, results, strict=True):
        assert result.depth.shape == rgb.shape[:2]
        assert np.isfinite(result.depth).all()


TAGS = (
    FOCAL_LENGTH,
    FOCAL_LENGTH_IN_35MM_FILM,
    FOCAL_PLANE_X_RESOLUTION,
    FOCAL_PLANE_X_RESOLUTION + 1,  # Y resolution
    FOCAL_PLANE_X_RESOLUTION + 2,  # resolution unit
    PIXEL_X_DIMENSION,
    PIXEL_Y_DIMENSION,
    0x0112,  # orientation
)

VALUES = {
    SHORT: st.integers(0, 0xFFFF),
    LONG: st.integers(0, 0xFFFFFFFF),
    SLONG: st.integers(-(2**31), 2**31 - 1),
    RATIONAL: st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF)),
    FLOAT: st.floats(width=32, allow_nan=True, allow_infinity=True),
    DOUBLE: st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([1e308, 5e-324, -0.0, 1e-300, 26.0]),
    ),
}


@st.composite
def exif_entries(draw: st.DrawFn) -> list[tuple[int, int, object]]:
    entries = {}
    for tag in draw(st.lists(st.sampled_from(TAGS), min_size=1, max_size=6, unique=True)):
        kind = draw(st.sampled_from(sorted(VALUES)))
        entries[tag] = (tag, kind, draw(VALUES[kind]))
    return list(entries.values())


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(entries=exif_entries(), in_ifd0=st.booleans())
def test_random_exif_blocks_never_fail_an_image(entries, in_ifd0):
    """352 of 77,211 random EXIF blocks used to fail their image; none may now."""
    data = encode(photo(12, 16), "JPEG", exif=exif_block(entries, ifd0=in_ifd0))
    image = load_image(data, name="exif.jpg")
    assert image.rgb.shape[:2] in ((12, 16), (16, 12))  # orientation may turn it
    if image.camera is not None:
        assert image.camera.source == "exif"
        assert image.camera.check_physical() is image.camera
        assert math.isfinite(image.camera.fx) and math.isfinite(image.camera.fy)


@pytest.mark.parametrize("value", [1e308, 5e-324, float("inf"), float("nan"), -1.0, 0.0])
def test_exif_focal_length_as_double_falls_back(value):
    data = encode(
        photo(12, 16), "JPEG", exif=exif_block([(FOCAL_LENGTH_IN_35MM_FILM, DOUBLE, value)])
    )
    assert load_image(data).camera is None
