"""Depth files: exact NPY/PFM round trips, MiDaS's PFM layout, 16-bit PNG, atomic writes."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from depthlens.errors import ImageError, OutputError
from depthlens.io import depth_files
from depthlens.io.depth_files import (
    read_npy,
    read_pfm,
    read_png16,
    write_npy,
    write_pfm,
    write_png,
    write_png16,
)

depth_maps = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
    elements=st.floats(width=32, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=40, deadline=None)
@given(depth=depth_maps)
def test_npy_and_pfm_round_trip_exactly(tmp_path_factory, depth):
    folder = tmp_path_factory.mktemp("round")
    write_npy(folder / "d.npy", depth)
    np.testing.assert_array_equal(read_npy(folder / "d.npy"), depth)
    write_pfm(folder / "d.pfm", depth)
    back = read_pfm(folder / "d.pfm")
    assert back.dtype == np.float32 and back.shape == depth.shape
    np.testing.assert_array_equal(back, depth)


def test_non_finite_values_survive_npy_and_pfm(tmp_path):
    depth = np.array([[np.nan, np.inf], [-np.inf, -0.0]], np.float32)
    write_npy(tmp_path / "d.npy", depth)
    write_pfm(tmp_path / "d.pfm", depth)
    for back in (read_npy(tmp_path / "d.npy"), read_pfm(tmp_path / "d.pfm")):
        np.testing.assert_array_equal(back, depth)
        assert np.signbit(back[1, 1])


def test_pfm_bytes_follow_midas_layout(tmp_path):
    depth = np.arange(6, dtype=np.float32).reshape(2, 3)  # rows [0 1 2], [3 4 5]
    path = write_pfm(tmp_path / "d.pfm", depth)
    expected = b"Pf\n3 2\n-1.000000\n" + np.array([3, 4, 5, 0, 1, 2], "<f4").tobytes()
    assert path.read_bytes() == expected


def test_pfm_colour_and_big_endian_are_read(tmp_path):
    colour = np.arange(24, dtype=np.float32).reshape(2, 4, 3)
    write_pfm(tmp_path / "c.pfm", colour)
    assert (tmp_path / "c.pfm").read_bytes().startswith(b"PF\n4 2\n")
    np.testing.assert_array_equal(read_pfm(tmp_path / "c.pfm"), colour)

    depth = np.array([[1.5, -2.0], [3.25, 1e-7]], np.float32)
    big = b"Pf\n2 2\n1.0\n" + np.flipud(depth).astype(">f4").tobytes()
    (tmp_path / "big.pfm").write_bytes(big)
    back = read_pfm(tmp_path / "big.pfm")
    np.testing.assert_array_equal(back, depth)
    assert back.dtype == np.dtype(np.float32)  # native byte order


def test_pfm_accepts_h_w_1_and_rejects_other_shapes(tmp_path):
    depth = np.ones((3, 2, 1), np.float32)
    write_pfm(tmp_path / "d.pfm", depth)
    assert read_pfm(tmp_path / "d.pfm").shape == (3, 2)
    with pytest.raises(ValueError):
        write_pfm(tmp_path / "e.pfm", np.ones((3, 2, 2), np.float32))


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"P6\n2 2\n255\n", "not a PFM"),
        (b"Pf\n2\n", "not a PFM"),
        (b"Pf\nx y\n-1.0\n", "not a PFM"),
        (b"Pf\n2 2\n-1.0\n" + b"\0" * 12, "truncated"),
        (b"", "not a PFM"),
    ],
)
def test_bad_pfm_files(tmp_path, content, words):
    path = tmp_path / "bad.pfm"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=words) as caught:
        read_pfm(path)
    assert str(path) in str(caught.value)


def test_bad_npy_and_missing_files(tmp_path):
    (tmp_path / "bad.npy").write_text("not numpy")
    with pytest.raises(ImageError, match=r"bad\.npy is not a readable"):
        read_npy(tmp_path / "bad.npy")
    np.save(tmp_path / "obj.npy", np.array(["a"]))
    with pytest.raises(ImageError, match="not numbers"):
        read_npy(tmp_path / "obj.npy")
    for reader in (read_npy, read_pfm, read_png16):
        with pytest.raises(ImageError, match="does not exist"):
            reader(tmp_path / "missing")


def test_png16_matches_midas_normalisation(tmp_path):
    rng = np.random.default_rng(0)
    depth = rng.uniform(-3.0, 40.0, (17, 23)).astype(np.float32)
    low, high = write_png16(tmp_path / "d.png", depth)
    assert (low, high) == (float(depth.min()), float(depth.max()))
    stored = read_png16(tmp_path / "d.png")
    assert stored.dtype == np.uint16 and stored.shape == depth.shape
    assert stored.min() == 0 and stored.max() == 65535
    recovered = low + stored.astype(np.float64) / 65535 * (high - low)
    assert np.abs(recovered - depth).max() <= (high - low) / 65535
    # OpenCV (as in MiDaS's write_depth) reads it back as the same 16-bit grey image.
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED), stored)


def test_png16_constant_and_non_finite(tmp_path):
    assert write_png16(tmp_path / "c.png", np.full((4, 5), 2.5, np.float32)) == (2.5, 2.5)
    assert not read_png16(tmp_path / "c.png").any()

    depth = np.array([[1.0, np.nan], [np.inf, 3.0]], np.float32)
    assert write_png16(tmp_path / "n.png", depth) == (1.0, 3.0)
    np.testing.assert_array_equal(read_png16(tmp_path / "n.png"), [[0, 0], [0, 65535]])

    low, high = write_png16(tmp_path / "all.png", np.full((2, 2), np.nan))
    assert np.isnan(low) and np.isnan(high)
    assert not read_png16(tmp_path / "all.png").any()


def test_read_png16_refuses_8bit(tmp_path):
    write_png(tmp_path / "rgb.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ImageError, match="not a 16-bit grey PNG"):
        read_png16(tmp_path / "rgb.png")
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(ImageError, match="not a PNG file"):
        read_png16(tmp_path / "junk.png")


def test_read_png16_decodes_only_png(tmp_path):
    """OpenCV would parse a 16-bit PGM named .png; only PNG reaches its decoder."""
    import cv2

    ok, pgm = cv2.imencode(".pgm", np.full((4, 4), 1000, np.uint16))
    assert ok
    (tmp_path / "netpbm.png").write_bytes(pgm.tobytes())
    with pytest.raises(ImageError, match="not a PNG file"):
        read_png16(tmp_path / "netpbm.png")
    write_png16(tmp_path / "deep.png", np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4))
    data = bytearray((tmp_path / "deep.png").read_bytes())
    data[16:24] = (200_000).to_bytes(4, "big") * 2  # IHDR claims 200000 × 200000
    (tmp_path / "bomb.png").write_bytes(bytes(data))
    with pytest.raises(ImageError, match="more than the limit"):
        read_png16(tmp_path / "bomb.png")
    (tmp_path / "truncated.png").write_bytes((tmp_path / "deep.png").read_bytes()[:40])
    with pytest.raises(ImageError, match="not a readable PNG"):
        read_png16(tmp_path / "truncated.png")


def test_write_png_keeps_rgb_order(tmp_path):
    rgb = np.zeros((3, 4, 3), np.uint8)
    rgb[..., 0] = 200  # red
    path = write_png(tmp_path / "sub" / "dir" / "r.png", rgb)  # parents are created
    assert path == tmp_path / "sub" / "dir" / "r.png"
    np.testing.assert_array_equal(cv2.imread(str(path))[..., ::-1], rgb)
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(cv2.imread(str(write_png(tmp_path / "g.png", gray)), 0), gray)
    with pytest.raises(ValueError):
        write_png(tmp_path / "f.png", rgb.astype(np.float32))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "d.npy"
    write_npy(target, np.ones((2, 2), np.float32))
    before = target.read_bytes()

    def half_then_fail(file, array, allow_pickle):
        file.write(b"\x93NUMPY partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(depth_files.np, "save", half_then_fail)
    with pytest.raises(OutputError, match="No space left on device") as caught:
        write_npy(target, np.zeros((5, 5), np.float32))
    assert str(target) in str(caught.value)
    assert target.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_interrupted_write_cleans_up_and_propagates(tmp_path, monkeypatch):
    def interrupted(file, array, allow_pickle):
        file.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(depth_files.np, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_npy(tmp_path / "d.npy", np.zeros((2, 2)))
    assert list(tmp_path.iterdir()) == []


def test_failed_rename_leaves_no_temporary(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(depth_files.os, "replace", refuse)
    with pytest.raises(OutputError, match="Permission denied"):
        write_pfm(tmp_path / "d.pfm", np.zeros((2, 2), np.float32))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_read_only_folder_is_output_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match=r"Cannot write .*d\.png"):
            write_png16(folder / "d.png", np.zeros((2, 2)))
    finally:
        folder.chmod(0o700)


def test_output_under_a_file_is_output_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError) as caught:
        write_npy(tmp_path / "file" / "d.npy", np.zeros((2, 2)))
    message = str(caught.value)
    assert message.startswith("Cannot write ") and message.endswith(".") and "\n" not in message


def test_written_files_get_normal_permissions(tmp_path):
    path = write_npy(tmp_path / "d.npy", np.zeros((2, 2)))
    reference = tmp_path / "plain"
    reference.write_bytes(b"")
    assert path.stat().st_mode == reference.stat().st_mode


def test_pfm_header_scale_is_written_negative(tmp_path):
    write_pfm(tmp_path / "s.pfm", np.zeros((1, 1), np.float32), scale=2.0)
    lines = (tmp_path / "s.pfm").read_bytes().split(b"\n")
    assert lines[2] == b"-2.000000"
    assert struct.unpack("<f", lines[3][:4])[0] == 0.0
