"""HEIC/HEIF through load_image and the command (issue 15, item 12): upright exactly once,
EXIF camera, the same limits as every format, found in folders, one sentence when broken.

The files are encoded by the test with pillow-heif (its wheel carries the x265 encoder),
which writes them as an iPhone does: the pixels as the sensor saw them, an ``irot`` box
turning them upright and the EXIF orientation tag saying the same.
"""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pillow_heif
import pytest
from PIL import Image as PILImage

from depthlens.errors import ImageError, ImageTooLargeError
from depthlens.geometry.camera import Camera
from depthlens.io.images import DECODED_FORMATS, IMAGE_SUFFIXES, find_images, load_image

# Four flat colours, one per quadrant: any turn or flip shows. 24 wide, 16 high.
QUADRANTS = np.zeros((16, 24, 3), np.uint8)
QUADRANTS[:8, :12] = (200, 30, 30)
QUADRANTS[:8, 12:] = (30, 200, 30)
QUADRANTS[8:, :12] = (30, 30, 200)
QUADRANTS[8:, 12:] = (230, 230, 230)

ORIENTATION = 0x0112
EXIF_IFD = 0x8769
FOCAL_LENGTH = 0x920A
PIXEL_X_DIMENSION = 0xA002
PIXEL_Y_DIMENSION = 0xA003
FOCAL_PLANE_X_RESOLUTION = 0xA20E
FOCAL_PLANE_Y_RESOLUTION = 0xA20F
FOCAL_PLANE_RESOLUTION_UNIT = 0xA210
FOCAL_LENGTH_IN_35MM_FILM = 0xA405

CLI = [sys.executable, "-c", "from depthlens.cli import main; main()"]


def exif(orientation: int | None = None, **exif_ifd: object) -> PILImage.Exif:
    """EXIF with ``orientation`` in IFD0 and ``exif_ifd`` (tag name -> value) in the
    Exif sub-IFD."""
    block = PILImage.Exif()
    if orientation is not None:
        block[ORIENTATION] = orientation
    for name, value in exif_ifd.items():
        block.get_ifd(EXIF_IFD)[globals()[name]] = value
    return block


def encode(rgb: np.ndarray, fmt: str, block: PILImage.Exif | None = None) -> bytes:
    """``rgb`` as a file of ``fmt``; HEIF losslessly (4:4:4) so colours survive."""
    params: dict[str, object] = {"exif": block.tobytes()} if block is not None else {}
    if fmt == "HEIF":
        params.update(quality=-1, chroma=444)
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format=fmt, **params)
    return buffer.getvalue()


def heic(rgb: np.ndarray = QUADRANTS, block: PILImage.Exif | None = None) -> bytes:
    return encode(rgb, "HEIF", block)


def test_heif_is_an_allowed_format_and_suffix():
    assert "HEIF" in DECODED_FORMATS
    assert {".heic", ".heif", ".hif"} <= IMAGE_SUFFIXES
    assert pillow_heif.libheif_info()["HEIF"], "this pillow-heif wheel cannot encode HEIC"


def test_heic_loads_as_rgb_uint8(tmp_path):
    path = tmp_path / "photo.heic"
    path.write_bytes(heic())
    image = load_image(path)
    assert image.rgb.dtype == np.uint8 and image.rgb.shape == (16, 24, 3)
    assert image.rgb.flags.c_contiguous and image.rgb.flags.writeable
    np.testing.assert_allclose(image.rgb, QUADRANTS, atol=2)
    assert image.source == str(path) and image.camera is None


def test_the_encoded_file_is_built_like_an_iphone_photo():
    data = heic(block=exif(6))
    assert data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix") and b"irot" in data
    raw = pillow_heif.open_heif(io.BytesIO(data))  # before pillow-heif's Pillow plugin
    stored = PILImage.Exif()
    stored.load(raw.info["exif"])
    assert stored[ORIENTATION] == 6


def test_orientation_6_turns_the_picture_exactly_once():
    image = load_image(heic(block=exif(6)))
    assert (image.height, image.width) == (24, 16)  # turned: portrait
    # orientation 6 = turn 90 degrees clockwise: the top-left quadrant ends top-right
    np.testing.assert_allclose(image.rgb, np.rot90(QUADRANTS, k=-1), atol=2)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_the_same_exif_on_a_png(orientation):
    from_heic = load_image(heic(block=exif(orientation))).rgb
    from_png = load_image(encode(QUADRANTS, "PNG", exif(orientation))).rgb
    assert from_heic.shape == from_png.shape
    np.testing.assert_allclose(from_heic, from_png, atol=2)


def test_focal_length_in_35mm_film_gives_the_camera_after_turning():
    block = exif(6, FOCAL_LENGTH_IN_35MM_FILM=26)
    camera = load_image(heic(block=block)).camera
    assert camera == Camera(26 / 36 * 16, 26 / 36 * 16, 8.0, 12.0, 16, 24, source="exif")


def test_focal_plane_tags_give_the_same_camera_as_the_same_exif_on_a_jpeg():
    # Non-square sensor pixels, so that a missed (or doubled) turn swaps fx and fy; the
    # tags describe the picture as stored (24 × 16), before the turn.
    block = exif(
        6,
        FOCAL_LENGTH=4.0,
        FOCAL_PLANE_X_RESOLUTION=3.0,
        FOCAL_PLANE_Y_RESOLUTION=6.0,
        FOCAL_PLANE_RESOLUTION_UNIT=4,  # millimetres
        PIXEL_X_DIMENSION=24,
        PIXEL_Y_DIMENSION=16,
    )
    from_heic = load_image(heic(block=block)).camera
    from_jpeg = load_image(encode(QUADRANTS, "JPEG", block)).camera
    assert from_heic is not None and from_heic == from_jpeg
    assert (from_heic.fx, from_heic.fy) == (24.0, 12.0)  # 4 mm × 6 and × 3 pixels/mm
    assert (from_heic.width, from_heic.height) == (16, 24)


def test_max_pixels_is_checked_before_decoding():
    with pytest.raises(ImageTooLargeError, match="more than the limit of 100") as caught:
        load_image(heic(), max_pixels=100, name="big.heic")
    assert caught.value.pixels == 24 * 16 and str(caught.value).startswith("big.heic is 24×16")


def test_pillows_decompression_bomb_check_applies(monkeypatch):
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100)  # refused above 2 × 100
    with pytest.raises(ImageTooLargeError, match="decompression-bomb"):
        load_image(heic(), name="bomb.heic")


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.99])
def test_truncated_heic_is_one_sentence(tmp_path, keep):
    data = heic(np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8))
    path = tmp_path / "cut.heic"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ImageError) as caught:
        load_image(path)
    message = str(caught.value)
    # libheif reads the boxes up front and the image data on decoding, so a file cut in
    # the data opens and then fails to decode: either way one short sentence.
    assert message in (
        f"{path} starts like a HEIF file but is corrupt or truncated.",
        f"{path} is corrupt or truncated and cannot be decoded "
        "(Invalid input: Unexpected end of file).",
    )


def test_corrupt_image_data_is_one_sentence():
    data = bytearray(heic(np.random.default_rng(1).integers(0, 256, (32, 48, 3), np.uint8)))
    start = data.rindex(b"mdat") + 4  # the coded picture's first NAL unit length
    data[start : start + 8] = b"\xff" * 8
    with pytest.raises(ImageError) as caught:
        load_image(bytes(data), name="corrupt.heic")
    message = str(caught.value)
    assert message.startswith("corrupt.heic is corrupt or truncated and cannot be decoded (")
    assert message.endswith(").") and "\n" not in message and len(message) < 160


def test_other_iso_media_files_are_not_taken_for_heif():
    mp4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(64)
    with pytest.raises(ImageError, match="not an image in a format depthlens reads"):
        load_image(mp4, name="clip.heic")


def test_folders_pick_up_heic_like_jpeg(tmp_path):
    (tmp_path / "b.heic").write_bytes(heic())
    (tmp_path / "c.HEIF").write_bytes(heic())
    (tmp_path / "a.jpg").write_bytes(encode(QUADRANTS, "JPEG"))
    names = [relative.name for _, relative in find_images([tmp_path], recursive=False)]
    assert names == ["a.jpg", "b.heic", "c.HEIF"]


def test_predict_takes_a_heic_beside_a_jpeg_and_one_line_for_a_truncated_one(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "phone.heic").write_bytes(heic(block=exif(6, FOCAL_LENGTH_IN_35MM_FILM=26)))
    (folder / "camera.jpg").write_bytes(encode(QUADRANTS, "JPEG"))
    whole = heic(np.random.default_rng(2).integers(0, 256, (32, 48, 3), dtype=np.uint8))
    (folder / "cut.heic").write_bytes(whole[: len(whole) // 2])
    result = subprocess.run(
        [*CLI, "predict", "in", "-o", "out", "--format", "npy", "--model", "depthlens-small"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr
    depth = np.load(tmp_path / "out" / "phone-depth.npy")
    assert depth.shape == (24, 16)  # upright
    assert np.load(tmp_path / "out" / "camera-depth.npy").shape == (16, 24)
    sidecar = (tmp_path / "out" / "phone-depth.json").read_text()
    assert '"exif"' in sidecar
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("failed in/cut.heic: in/cut.heic "), lines
    assert "corrupt or truncated" in lines[0] and "Traceback" not in result.stderr
    assert "2 of 3 inputs" in result.stdout
