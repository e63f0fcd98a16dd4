"""Reading photos into RGB arrays (finding them is ``io.inputs``, re-exported here).

``load_image`` is the one door through which pixels enter depthlens. Whatever the
source (a path, an http(s) URL, uploaded bytes, a PIL image or an array) it returns an
``Image`` holding an (H, W, 3) uint8 RGB array, upright as EXIF orientation says, and
the camera intrinsics EXIF implies. Anything it cannot read becomes an ``ImageError``
with one sentence naming the file.

HEIC/HEIF (iPhone photos) are decoded by pillow-heif's Pillow plugin, registered when
this module is imported, behind the same format allow-list and size limits.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import stat
import struct
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image as PILImage
from pillow_heif import register_heif_opener

from depthlens.errors import DepthlensError, ImageError, ImageTooLargeError
from depthlens.geometry.camera import Camera, camera_from_exif
from depthlens.io.inputs import IMAGE_SUFFIXES, find_images  # re-exported: where they lived
from depthlens.io.remote import fetch_url, is_url, shown_url

__all__ = [
    "DECODED_FORMATS",
    "DECODE_ERRORS",
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "Image",
    "find_images",
    "load_image",
]

# Refuse images larger than this before decoding them (decompression bombs). 100 MP
# is above any consumer camera's output and 300 MB as RGB uint8.
DEFAULT_MAX_PIXELS = 100_000_000

# EXIF orientation (tag 0x0112) -> the transpose that makes the image upright; the
# same table as PIL.ImageOps.exif_transpose, applied here to the converted RGB array
# so that images decoded by OpenCV (16-bit ones) are turned the same way.
_ORIENTATION_TAG = 0x0112
_UPRIGHT: dict[int, PILImage.Transpose] = {
    2: PILImage.Transpose.FLIP_LEFT_RIGHT,
    3: PILImage.Transpose.ROTATE_180,
    4: PILImage.Transpose.FLIP_TOP_BOTTOM,
    5: PILImage.Transpose.TRANSPOSE,
    6: PILImage.Transpose.ROTATE_270,
    7: PILImage.Transpose.TRANSVERSE,
    8: PILImage.Transpose.ROTATE_90,
}

# The only formats whose decoders ever see a user's bytes (Pillow format names).
# Everything else Pillow could open is
# refused unparsed: its EPS plugin hands files to Ghostscript, and PSD, PPM, IM and the
# other rarely used plugins are attack surface for no user benefit. (Multi-picture
# JPEGs, MPO, come through the JPEG entry.) "HEIF" is pillow-heif's plugin: HEIC/HEIF
# files (their primary image), decoded by libheif and libde265.
DECODED_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", "HEIF")
_FORMAT_NAMES = "JPEG, PNG, WebP, TIFF, BMP, GIF or HEIC/HEIF"

# pillow-heif's opener, once per process (registering again only repeats the same
# table entries). It applies the file's irot/imir boxes while decoding, as the HEIF
# specification says to, and resets the EXIF orientation to 1 so that nothing turns
# the pixels a second time; the orientation EXIF stated is kept in
# info["original_orientation"] (see _stored_orientation).
register_heif_opener()

# What Pillow raises on corrupt or truncated data: its plugins parse untrusted bytes
# with struct, indexing and arithmetic and let those errors escape (a TIFF whose
# StripOffsets entry is typed as a float raises TypeError), so the list is long on
# purpose. MemoryError: a header that asks for more memory than there is.
DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    EOFError,
    IndexError,
    KeyError,
    AttributeError,
    ArithmeticError,
    RuntimeError,
    MemoryError,
    struct.error,
)


@dataclass(frozen=True)
class Image:
    """A decoded photo: ``rgb`` is (H, W, 3) uint8, upright; ``camera`` comes from EXIF.

    ``rgb`` is C-contiguous and owned by the Image (never a view of the caller's array).

    ``source`` names where the pixels came from (a path, or a label such as
    ``"<bytes>"``) for messages and output names.

    ``prompt_depth`` is an optional (h, w) float32 metric depth map in meters for models
    that take one (Prompt Depth Anything), already checked against the image
    (``io/prompt_depth.py``); attach it with ``depthlens.io.prompt_depth.with_prompt``.
    """

    rgb: np.ndarray
    camera: Camera | None
    source: str
    prompt_depth: np.ndarray | None = None

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return int(self.rgb.shape[1])

    @property
    def camera_or_default(self) -> Camera:
        """``camera`` (given by the user, or from EXIF), else ``Camera.default`` for this
        size, whose ``source`` says it was assumed."""
        return self.camera or Camera.default(self.width, self.height)


ImageSource = str | os.PathLike[str] | bytes | bytearray | memoryview | PILImage.Image | np.ndarray


def load_image(
    source: ImageSource,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    name: str | None = None,
) -> Image:
    """Decode ``source`` into an upright (H, W, 3) uint8 RGB ``Image``.

    ``source`` is a file path, an ``http://`` or ``https://`` URL (a ``str``; fetched
    by ``io.remote.fetch_url``: 30 s timeout, 50 MB limit), the bytes of an encoded
    file, a ``PIL.Image.Image``, or an array: (H, W) or (H, W, 1|3|4) of uint8, uint16
    (scaled by 255 / 65535) or floats in [0, 1]. Files may be JPEG, PNG, WebP, TIFF,
    BMP, GIF (first frame) or HEIC/HEIF (primary image): ``DECODED_FORMATS``; any other
    format is refused before a decoder parses it. ``name`` labels bytes/PIL/array
    sources in messages (e.g. an upload's file name).

    Conversion to RGB: alpha is dropped, not composited (colour values are kept as
    stored); palette images take their palette colours; 16-bit samples are scaled
    by 255 / 65535 and rounded (a PIL image of a 48-bit file arrives already reduced
    by Pillow to the high byte); 32-bit float ('F') images are taken to be in [0, 1]
    when all finite values are, and min-max normalised otherwise; 32-bit integer
    ('I') images are taken as 16-bit when in [0, 65535], else min-max normalised.

    Images with more than ``max_pixels`` pixels are refused from the header, before
    any pixel is decoded. Pillow's own bomb limit (2 × ``PIL.Image.MAX_IMAGE_PIXELS``,
    about 179 MP) still applies to encoded sources above that.
    Truncated files raise ``ImageError`` as long as
    ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` keeps its default, False. Warnings the
    decoders raise about a file (corrupt EXIF, odd chunks) are dropped: an image either
    loads or fails with one sentence. A camera EXIF cannot describe (a zero, negative
    or absurd focal length) is left out, so the default camera is used.
    """
    if isinstance(source, np.ndarray):
        label = name or "<array>"
        rgb = _rgb_from_array(source, label)
        _check_pixels(rgb.shape[1], rgb.shape[0], max_pixels, label)
        return Image(rgb=np.array(rgb, order="C"), camera=None, source=label)  # own copy
    if isinstance(source, PILImage.Image):
        label = name or getattr(source, "filename", "") or "<PIL image>"
        return _load_pil(source, None, max_pixels, label)
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        label = name or "<bytes>"
        if not data:
            raise ImageError(f"{label} is empty (0 bytes), not an image.")
        return _open_and_load(io.BytesIO(data), lambda: data, max_pixels, label)
    if isinstance(source, str) and is_url(source):  # before Path(), which folds "//"
        label = name or shown_url(source)
        data = fetch_url(source)
        if not data:
            raise ImageError(f"{label} sent 0 bytes, not an image.")
        return _open_and_load(io.BytesIO(data), lambda: data, max_pixels, label)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        label = name or str(path)
        check_input_file(path)
        return _open_and_load(path, path.read_bytes, max_pixels, label)
    raise TypeError(
        "load_image takes a path, a URL, bytes, a PIL image or an array, "
        f"not {type(source).__name__}"
    )


def check_input_file(
    path: Path, what: str = "image", error: type[DepthlensError] = ImageError
) -> None:
    """Raise ``error`` unless ``path`` is a non-empty regular file; ``what`` names the
    kind of file in the sentence ("image", "video").

    The sentence says what the path is instead: missing, a broken link or a link
    loop, a folder, a named pipe, a device or a socket (reading those would block or
    never end: ``/dev/zero``), unreadable, or empty.
    """
    article = "an" if what[0] in "aeiou" else "a"
    try:
        info = path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise error(f"{path} is a symbolic link loop, not {article} {what} file.") from None
        if err.errno == errno.ENOENT and path.is_symlink():
            target = os.readlink(path)
            raise error(f"{path} is a broken symbolic link (to {target}).") from None
        if err.errno == errno.ENOENT:
            raise error(f"{what.capitalize()} file {path} does not exist.") from None
        raise error(f"{what.capitalize()} file {path} cannot be read: {err.strerror}.") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path} is {_file_kind(info.st_mode)}, not {article} {what} file.")
    if not os.access(path, os.R_OK):
        raise error(f"{what.capitalize()} file {path} cannot be read: permission denied.")
    if info.st_size == 0:
        raise error(f"{what.capitalize()} file {path} is empty (0 bytes).")


def _file_kind(mode: int) -> str:
    """What a file that is not a regular file is, for a sentence."""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((kind for test, kind in kinds if test(mode)), "not a regular file")


def _open_and_load(fp: Path | io.BytesIO, read_bytes: Any, max_pixels: int, label: str) -> Image:
    """Open an encoded image (header only), check its size, then decode it."""
    try:
        # Header warnings are about this file, which loads or fails with a sentence;
        # Pillow's bomb warning (between MAX_IMAGE_PIXELS and twice that) is replaced by
        # our own limit, checked next. (catch_warnings is process-wide: a concurrent
        # load may at worst have one of its warnings silenced too.)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pil = PILImage.open(fp, formats=DECODED_FORMATS)
    except PILImage.DecompressionBombError as err:
        raise _pillow_bomb_error(label, err, max_pixels) from err
    except PILImage.UnidentifiedImageError as err:
        # Pillow also says "cannot identify" when an allowed format's header is broken.
        looks_like = _sniff_format(_leading_bytes(fp))
        if looks_like is not None:
            raise ImageError(
                f"{label} starts like a {looks_like} file but is corrupt or truncated."
            ) from err
        raise ImageError(
            f"{label} is not an image in a format depthlens reads ({_FORMAT_NAMES})."
        ) from err
    except PermissionError as err:
        raise ImageError(f"Image file {label} cannot be read: permission denied.") from err
    except DECODE_ERRORS as err:
        raise ImageError(f"{label} could not be read as an image ({_short_reason(err)}).") from err
    with pil:
        return _load_pil(pil, read_bytes, max_pixels, label)


# The signatures of the allowed formats (their specifications' magic numbers).
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)


def _leading_bytes(fp: Path | io.BytesIO) -> bytes:
    """The first 16 bytes of a file or buffer (empty if it cannot be read)."""
    if isinstance(fp, io.BytesIO):
        return fp.getvalue()[:16]
    try:
        with fp.open("rb") as file:
            return file.read(16)
    except OSError:
        return b""


# The major brands of an ISO-BMFF "ftyp" box that pillow-heif opens (its
# _is_supported_heif): HEVC stills and sequences, and the generic HEIF brands.
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)


def _sniff_format(prefix: bytes) -> str | None:
    """The allowed format whose signature ``prefix`` starts with, if any."""
    if prefix[:4] == b"RIFF" and prefix[8:12] == b"WEBP":
        return "WebP"
    if prefix[4:8] == b"ftyp" and prefix[8:12] in _HEIF_BRANDS:
        return "HEIF"
    return next((name for magic, name in _SIGNATURES if prefix.startswith(magic)), None)


def _load_pil(pil: PILImage.Image, read_bytes: Any, max_pixels: int, label: str) -> Image:
    """Check the size, decode, convert to RGB, turn upright and read the camera."""
    width, height = pil.size
    _check_pixels(width, height, max_pixels, label)
    try:
        # Decoder warnings (corrupt EXIF, truncated metadata) are about this file, which
        # either decodes or fails with a sentence; they are not for the user's terminal.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rgb = None
            if read_bytes is not None and _is_16bit_colour(pil):  # before load() clears tile
                rgb = _rgb_from_16bit_file(read_bytes(), (height, width))
            if rgb is None:
                pil.load()  # decode now, so that truncation raises here, inside the try
                # pillow-heif takes the size from the decoded picture, which may differ
                # from the header's: the limit holds for what was decoded too.
                _check_pixels(pil.size[0], pil.size[1], max_pixels, label)
                rgb = _rgb_from_pil(pil, label)
            exif = _read_exif(pil)  # after decoding: a PNG's eXIf chunk may follow its pixels
    except PILImage.DecompressionBombError as err:  # e.g. a later GIF frame
        raise _pillow_bomb_error(label, err, max_pixels) from err
    except DECODE_ERRORS as err:
        reason = _short_reason(err)
        if pil.format == "HEIF":  # libheif says "Category: Subcategory: details (offsets)"
            reason = ": ".join(reason.split(": ")[:2])
        raise ImageError(
            f"{label} is corrupt or truncated and cannot be decoded ({reason})."
        ) from err

    orientation = exif.get(_ORIENTATION_TAG)
    if isinstance(orientation, int) and orientation in _UPRIGHT:
        rgb = np.asarray(PILImage.fromarray(rgb).transpose(_UPRIGHT[orientation]))
    rgb = np.array(rgb, dtype=np.uint8, order="C")  # writable, owned by this Image
    stored = _stored_orientation(pil)
    camera_exif = exif if stored is None else _ExifAsStored(exif, stored)
    camera = _exif_camera(camera_exif, rgb.shape[1], rgb.shape[0])
    return Image(rgb=rgb, camera=camera, source=label)


def _stored_orientation(pil: PILImage.Image) -> int | None:
    """The EXIF orientation a decoder applied itself and then reset to 1 in the EXIF it
    hands on, if any: pillow-heif's ``info["original_orientation"]`` for HEIF files
    (whose irot/imir boxes libheif applies while decoding)."""
    if pil.format != "HEIF":
        return None
    original = pil.info.get("original_orientation")
    return original if isinstance(original, int) and original in _UPRIGHT else None


class _ExifAsStored(Mapping[int, Any]):
    """EXIF as the file stored it, for ``camera_from_exif``: the orientation tag reads as
    ``orientation`` when a decoder already turned the pixels and reset the tag to 1.
    The camera needs it: the focal-plane resolution and PixelX/YDimension tags describe
    the picture as stored, so a turn by 90 degrees swaps their axes."""

    def __init__(self, exif: PILImage.Exif, orientation: int) -> None:
        self._exif = exif
        self._orientation = orientation

    def __getitem__(self, tag: int) -> Any:
        if tag == _ORIENTATION_TAG:
            return self._orientation
        return self._exif[tag]

    def __iter__(self) -> Iterator[int]:
        return iter(self._exif)

    def __len__(self) -> int:
        return len(self._exif)

    def get_ifd(self, tag: int) -> dict[int, Any]:
        """The sub-IFD ``tag`` points to (the Exif one for the focal length)."""
        return self._exif.get_ifd(tag)


def _exif_camera(exif: Mapping[int, Any], width: int, height: int) -> Camera | None:
    """``camera_from_exif``, or None when the EXIF block is too broken to parse (the
    Exif sub-IFD is read lazily, so corrupt data surfaces only here)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return camera_from_exif(exif, width, height)
    except DECODE_ERRORS:
        return None


def _short_reason(err: BaseException) -> str:
    """A decoder's complaint for the end of a sentence: one line, printable, at most 120
    characters (some decoders quote the file's bytes back)."""
    text = " ".join(str(err).split()).rstrip(".")
    text = "".join(c if c.isprintable() else "?" for c in text)
    if len(text) > 120:
        text = text[:117] + "..."
    return text or type(err).__name__


def _pillow_bomb_error(label: str, err: Exception, max_pixels: int) -> ImageTooLargeError:
    """The ImageTooLargeError for Pillow's own decompression-bomb refusal, which comes
    before our header check can run: it names the caller's limit when the image is
    over it, and Pillow's only when the caller allowed more than Pillow does."""
    found = re.search(r"\((\d+) pixels\)", str(err))
    pixels = int(found.group(1)) if found else None
    size = f"{pixels:,} pixels" if pixels is not None else "too many pixels"
    pillow_limit = 2 * (PILImage.MAX_IMAGE_PIXELS or 0)
    if pixels is None or pixels > max_pixels:
        return ImageTooLargeError(
            f"{label} has {size}, more than the limit of {max_pixels:,}; "
            "pass a larger max_pixels (--max-megapixels) if you trust it.",
            pixels,
            max_pixels,
        )
    return ImageTooLargeError(
        f"{label} has {size}, more than Pillow's decompression-bomb limit of "
        f"{pillow_limit:,} (2 × PIL.Image.MAX_IMAGE_PIXELS); raise that if you trust it.",
        pixels,
        pillow_limit,
    )


def _read_exif(pil: PILImage.Image) -> PILImage.Exif:
    """The image's EXIF data; empty when it is missing or unreadable (pixels still load)."""
    try:
        return pil.getexif()
    except DECODE_ERRORS:
        return PILImage.Exif()


def _check_pixels(width: int, height: int, max_pixels: int, label: str) -> None:
    """Refuse an image of more than ``max_pixels`` pixels, naming the way to allow it."""
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{label} is {width}×{height} = {width * height:,} pixels, more than the limit "
            f"of {max_pixels:,}; pass a larger max_pixels (--max-megapixels) if you trust it.",
            width * height,
            max_pixels,
        )


def _is_16bit_colour(pil: PILImage.Image) -> bool:
    """Whether Pillow will truncate 16-bit colour samples to their high byte.

    Pillow decodes 48/64-bit RGB(A) and 32-bit LA PNG/TIFF into 8-bit modes by
    keeping the high byte (``v >> 8``); OpenCV keeps all 16 bits, so those files are
    decoded with OpenCV and rounded (``round(v * 255 / 65535)``) instead.
    """
    tile = getattr(pil, "tile", None)  # only on images opened from a file, before load()
    if pil.mode not in ("RGB", "RGBA", "LA") or not tile:
        return False
    args = tile[0].args
    rawmode = args if isinstance(args, str) else (args[0] if args else "")
    return isinstance(rawmode, str) and ";16" in rawmode


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def native_stderr_discarded() -> Iterator[None]:
    """Drop what C libraries print to file descriptor 2 meanwhile, and OpenCV's log.

    libpng and libtiff inside OpenCV print their complaints about a file ("libpng
    warning: iCCP: too short") straight to the process's stderr, beside our one line
    for that file. The descriptor is process-wide: other threads' stderr output during
    the decode is dropped too, so the window is kept to one ``cv2.imdecode`` call.
    """
    with _STDERR_LOCK:
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        try:
            saved = os.dup(2)
        except OSError:  # no stderr to protect
            saved = -1
        try:
            if saved >= 0:
                sys.stderr.flush()
                with open(os.devnull, "wb") as devnull:
                    os.dup2(devnull.fileno(), 2)
            yield
        finally:
            if saved >= 0:
                os.dup2(saved, 2)
                os.close(saved)
            cv2.utils.logging.setLogLevel(level)


def _rgb_from_16bit_file(data: bytes, shape: tuple[int, int]) -> np.ndarray | None:
    """(H, W, 3) uint8 from a 16-bit colour file via OpenCV, or None if it disagrees."""
    # IMREAD_UNCHANGED keeps 16 bits and alpha and ignores EXIF orientation (applied later).
    with native_stderr_discarded():
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.dtype != np.uint16 or decoded.shape[:2] != shape:
        return None
    if decoded.ndim == 2:
        decoded = decoded[:, :, None]
    if decoded.shape[2] >= 3:
        decoded = decoded[:, :, 2::-1]  # BGR(A) -> RGB
    return _rgb_from_array(decoded, "<16-bit>")


def _rgb_from_pil(pil: PILImage.Image, label: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a decoded PIL image of any mode."""
    mode = pil.mode
    if mode == "RGB":
        return np.asarray(pil)
    if mode in ("L", "1"):
        return _gray_to_rgb(np.asarray(pil.convert("L")))
    if mode in ("LA", "La"):
        return _gray_to_rgb(np.asarray(pil)[:, :, 0])
    if mode in ("P", "PA", "RGBA", "RGBa", "RGBX"):
        # Through RGBA so palette transparency is understood rather than warned about;
        # then the alpha channel is dropped.
        return np.asarray(pil.convert("RGBA"))[:, :, :3]
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(pil).astype(np.int64)
        if mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
            return _gray_to_rgb(_min_max_to_uint8(values.astype(np.float64)))
        return _gray_to_rgb(_uint16_to_uint8(values))
    if mode == "F":
        return _gray_to_rgb(_float_to_uint8(np.asarray(pil, dtype=np.float64)))
    try:
        return np.asarray(pil.convert("RGB"))  # CMYK, YCbCr, HSV, LAB
    except ValueError as err:
        raise ImageError(
            f"{label} has pixel mode {mode}, which depthlens cannot convert to RGB."
        ) from err


def _rgb_from_array(array: np.ndarray, label: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an (H, W) or (H, W, 1|3|4) uint8/uint16/float array."""
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        channels = array[:, :, :3] if array.shape[2] >= 3 else array[:, :, 0]
    elif array.ndim == 2:
        channels = array
    else:
        raise ImageError(
            f"{label} has shape {array.shape}; an image array must be (H, W) or (H, W, 1|3|4)."
        )
    if channels.shape[0] == 0 or channels.shape[1] == 0:
        raise ImageError(f"{label} has shape {array.shape}, which holds no pixels.")
    if channels.dtype == np.uint8:
        out = channels
    elif channels.dtype == np.uint16:
        out = _uint16_to_uint8(channels)
    elif np.issubdtype(channels.dtype, np.floating):
        values = channels.astype(np.float64)
        if not np.isfinite(values).all() or values.min() < 0.0 or values.max() > 1.0:
            raise ImageError(f"{label} is a float array with values outside [0, 1].")
        out = np.rint(values * 255.0).astype(np.uint8)
    else:
        raise ImageError(
            f"{label} has dtype {channels.dtype}; an image array must be uint8, uint16 or float."
        )
    return np.ascontiguousarray(_gray_to_rgb(out) if out.ndim == 2 else out)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    """(H, W) -> (H, W, 3) by repeating the channel."""
    return np.repeat(gray[:, :, None], 3, axis=2)


def _uint16_to_uint8(values: np.ndarray) -> np.ndarray:
    """Round ``values * 255 / 65535`` (= values / 257) for integers in [0, 65535]."""
    # v / 257 is never exactly k + 0.5 (257 is odd), so integer rounding has no ties.
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _float_to_uint8(values: np.ndarray) -> np.ndarray:
    """[0, 1] floats (or min-max normalised if outside) to uint8; non-finite -> 0."""
    finite = np.isfinite(values)
    if finite.any() and (values[finite].min() < 0.0 or values[finite].max() > 1.0):
        return _min_max_to_uint8(values)
    return np.rint(np.where(finite, values, 0.0) * 255.0).astype(np.uint8)


def _min_max_to_uint8(values: np.ndarray) -> np.ndarray:
    """Map the finite range of ``values`` onto 0..255; non-finite and constant -> 0."""
    finite = np.isfinite(values)
    out = np.zeros(values.shape, np.uint8)
    if not finite.any():
        return out
    low, high = values[finite].min(), values[finite].max()
    if high > low:
        scaled = (values[finite] - low) / (high - low) * 255.0
        out[finite] = np.rint(scaled).astype(np.uint8)
    return out
