"""Depth maps on disk: NPY and PFM (exact float32), 16-bit PNG (normalised), colour PNG,
and the JSON sidecar that says what a depth map holds and which camera saw it.

The ``encode_*`` functions give the bytes of a file in memory (the web service sends
them); each ``write_*`` writes the same bytes to disk.

Every writer is atomic: it writes a temporary file next to the target and renames
it over the target (``os.replace``), so a reader never sees a half-written file and
a failed write leaves the old file, if any, untouched and no temporary behind.
Parent folders are created. Failures to write raise ``OutputError``; files that
cannot be read back raise ``ImageError``.

What each writer does with non-finite depth (NaN, ±inf): NPY and PFM store it as
is; ``write_png16`` leaves it out of the min/max and writes 0 there.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from depthlens.errors import ImageError, OutputError
from depthlens.geometry.camera import Camera
from depthlens.io.images import DEFAULT_MAX_PIXELS, native_stderr_discarded

__all__ = [
    "DEPTH_UNITS",
    "atomic_write",
    "depth_sidecar",
    "encode_npy",
    "encode_png",
    "encode_png16",
    "read_npy",
    "read_pfm",
    "read_png16",
    "read_sidecar",
    "write_bytes",
    "write_npy",
    "write_pfm",
    "write_png",
    "write_png16",
    "write_sidecar",
]

PathLike = str | os.PathLike[str]

PNG16_MAX = 65535

# What the numbers of each depth kind are in, as the sidecar states it.
DEPTH_UNITS = {
    "metric": "m",
    "relative_inverse": "relative inverse depth (larger = nearer; unknown scale and shift)",
}


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write`` on a temporary file beside ``path``, then rename it to ``path``.

    The temporary is created with mode 0o666 minus the umask, like ``open(path, "w")``,
    so the result has the permissions a plain write would give. Atomic against this
    process failing or being interrupted, not against power loss (no fsync).
    """
    target = Path(path)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        fd = os.open(temp, flags, 0o666)
    except OSError as err:
        raise OutputError(f"Cannot write {target}: {err.strerror or err}.") from err
    done = False
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
        os.replace(temp, target)
        done = True
    except OSError as err:
        raise OutputError(f"Cannot write {target}: {err.strerror or err}.") from err
    finally:
        if not done:
            temp.unlink(missing_ok=True)
    return target


def read_file(path: PathLike, what: str) -> bytes:
    """The bytes of ``path``; ``ImageError`` naming it as ``what`` (e.g. "Depth file")
    when it is missing or cannot be read."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as err:
        raise ImageError(f"{what} {path} does not exist.") from err
    except OSError as err:
        raise ImageError(f"{what} {path} cannot be read: {err.strerror or err}.") from err


def write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`); returns the path."""

    def write(file: BinaryIO) -> None:
        file.write(data)

    return atomic_write(path, write)


def encode_npy(depth: np.ndarray) -> bytes:
    """The ``.npy`` file of ``depth`` (any shape, stored as float32), in memory."""
    buffer = io.BytesIO()
    _save_npy(buffer, depth)
    return buffer.getvalue()


def write_npy(path: PathLike, depth: np.ndarray) -> Path:
    """Save ``depth`` (any shape, stored as float32) as a ``.npy`` file; returns the path."""
    return atomic_write(path, lambda file: _save_npy(file, depth))


def _save_npy(file: BinaryIO, depth: np.ndarray) -> None:
    """Write ``depth`` as a float32 ``.npy`` (native byte order, C order, no pickles)."""
    np.save(file, np.ascontiguousarray(depth, dtype=np.float32), allow_pickle=False)


def read_npy(path: PathLike) -> np.ndarray:
    """Load a ``.npy`` array of real numbers as float32 (no pickles are loaded)."""
    try:
        array = np.load(Path(path), allow_pickle=False)
    except FileNotFoundError as err:
        raise ImageError(f"Depth file {path} does not exist.") from err
    except (OSError, ValueError, EOFError) as err:
        raise ImageError(f"{path} is not a readable .npy array file ({err}).") from err
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ImageError(f"{path} holds {array.dtype} values, not numbers.")
    return array.astype(np.float32, copy=False)


def write_pfm(path: PathLike, depth: np.ndarray, scale: float = 1.0) -> Path:
    """Save an (H, W), (H, W, 1) or (H, W, 3) array as little-endian float32 PFM.

    The layout of MiDaS's ``write_pfm`` (isl-org/MiDaS: utils.py): a ``Pf`` (grey) or
    ``PF`` (colour) line, ``"<width> <height>"``, the scale written negative to mean
    little-endian (``-1.000000``), then the rows bottom-up.
    """
    array = np.asarray(depth)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        magic = b"Pf"
    elif array.ndim == 3 and array.shape[2] == 3:
        magic = b"PF"
    else:
        raise ValueError(f"PFM holds (H, W) or (H, W, 3) arrays, got shape {array.shape}")
    if not scale > 0:
        raise ValueError(f"PFM scale must be positive, got {scale}")
    header = b"%s\n%d %d\n%f\n" % (magic, array.shape[1], array.shape[0], -scale)
    body = np.ascontiguousarray(np.flipud(array), dtype="<f4").tobytes()

    def write(file: BinaryIO) -> None:
        file.write(header)
        file.write(body)

    return atomic_write(path, write)


def read_pfm(path: PathLike) -> np.ndarray:
    """Load a PFM file as float32 (H, W) (``Pf``) or (H, W, 3) (``PF``), top row first.

    Both byte orders are read (negative scale: little-endian, positive: big-endian);
    the scale's magnitude is not applied, as in MiDaS's ``read_pfm``.
    """
    data = read_file(path, "Depth file")
    header, offset = _pfm_header(data)
    if header is None:
        raise ImageError(f"{path} is not a PFM file (it must start with 'Pf' or 'PF').")
    magic, width, height, scale = header
    channels = 3 if magic == b"PF" else 1
    count = width * height * channels
    if len(data) - offset < 4 * count:
        raise ImageError(
            f"{path} is truncated: its header says {width}×{height}×{channels} floats "
            f"but only {(len(data) - offset) // 4} follow."
        )
    dtype = "<f4" if scale < 0 else ">f4"
    values = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    shape = (height, width, 3) if channels == 3 else (height, width)
    return np.flipud(values.reshape(shape)).astype(np.float32)


def _pfm_header(data: bytes) -> tuple[tuple[bytes, int, int, float] | None, int]:
    """Parse ``magic``, ``width height`` and ``scale`` (whitespace-separated tokens).

    Returns the header (None if malformed) and the offset of the first data byte,
    which follows the single whitespace byte ending the scale token.
    """
    tokens: list[bytes] = []
    offset = 0
    while len(tokens) < 4:
        while offset < len(data) and data[offset : offset + 1].isspace():
            offset += 1
        start = offset
        while offset < len(data) and not data[offset : offset + 1].isspace():
            offset += 1
        if start == offset or offset - start > 32:
            return None, 0
        tokens.append(data[start:offset])
    offset += 1  # the newline after the scale
    magic, width, height, scale = tokens
    if magic not in (b"Pf", b"PF"):
        return None, 0
    try:
        parsed = (magic, int(width), int(height), float(scale))
    except ValueError:
        return None, 0
    if parsed[1] <= 0 or parsed[2] <= 0 or parsed[3] == 0:
        return None, 0
    return parsed, offset


def write_png16(path: PathLike, depth: np.ndarray) -> tuple[float, float]:
    """Save (H, W) ``depth`` as a 16-bit grey PNG (see :func:`encode_png16`).

    Returns the ``(min, max)`` used, which maps 0..65535 back to depth.
    """
    data, low, high = encode_png16(depth)
    write_bytes(path, data)
    return low, high


def encode_png16(depth: np.ndarray) -> tuple[bytes, float, float]:
    """(H, W) ``depth`` as the bytes of a 16-bit grey PNG normalised to 0..65535.

    As MiDaS's ``write_depth(..., bits=2)`` (isl-org/MiDaS: utils.py):
    ``65535 * (depth - min) / (max - min)``, all zeros when ``max - min`` is not above
    float eps; rounded to nearest here rather than truncated, so the error is at
    most half a step. Non-finite pixels are left out of min/max and written as 0.
    Returns the PNG and the ``(min, max)`` used, which maps 0..65535 back to depth;
    ``(nan, nan)`` when no pixel is finite.
    """
    values = np.asarray(depth, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"encode_png16 takes an (H, W) depth map, got shape {values.shape}")
    finite = np.isfinite(values)
    out = np.zeros(values.shape, np.uint16)
    if not finite.any():
        low = high = float("nan")
    else:
        low, high = float(values[finite].min()), float(values[finite].max())
        if high - low > np.finfo(np.float64).eps:
            scaled = (values[finite] - low) / (high - low) * PNG16_MAX
            out[finite] = np.rint(scaled).astype(np.uint16)
    return _encode_png(out), low, high


def read_png16(path: PathLike) -> np.ndarray:
    """Load a 16-bit grey PNG as an (H, W) uint16 array (values as stored)."""
    decoded = _decode_file(path, cv2.IMREAD_UNCHANGED)
    if decoded.dtype != np.uint16 or decoded.ndim != 2:
        channels = 1 if decoded.ndim == 2 else decoded.shape[2]
        raise ImageError(
            f"{path} is a {decoded.dtype.itemsize * 8}-bit, {channels}-channel image, "
            "not a 16-bit grey PNG."
        )
    return decoded


def write_png(path: PathLike, rgb: np.ndarray) -> Path:
    """Save an (H, W, 3) RGB or (H, W) grey uint8 image as PNG; returns the path."""
    return write_bytes(path, encode_png(rgb))


def encode_png(rgb: np.ndarray) -> bytes:
    """An (H, W, 3) RGB uint8 image, or an (H, W) grey uint8 or uint16 one (values as
    they are), as the bytes of a PNG file."""
    image = np.asarray(rgb)
    grey = image.ndim == 2 and image.dtype in (np.uint8, np.uint16)
    if not grey and not (image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
        raise ValueError(
            f"encode_png takes (H, W, 3) uint8 or (H, W) uint8/uint16, got {image.dtype} "
            f"{image.shape}"
        )
    return _encode_png(image[:, :, ::-1] if image.ndim == 3 else image)


def _encode_png(image: np.ndarray) -> bytes:
    """A BGR or grey uint8/uint16 array as PNG bytes (OpenCV's encoder)."""
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image))
    if not ok:
        raise OutputError(
            f"Cannot encode a {image.shape[1]}×{image.shape[0]} {image.dtype} image as PNG."
        )
    return encoded.tobytes()


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _decode_file(path: PathLike, flags: int) -> np.ndarray:
    """Decode a PNG file with OpenCV; ImageError if missing, not a PNG, larger than
    ``DEFAULT_MAX_PIXELS`` or unreadable.

    Only PNG reaches the decoder (OpenCV would also parse PPM, Sun raster, JPEG 2000
    and more, whatever the name), and its size is read from the header first.
    """
    data = read_file(path, "Depth file")
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 24:
        raise ImageError(f"{path} is not a PNG file.")
    width, height = struct.unpack(">II", data[16:24])  # IHDR, the first chunk
    if width * height > DEFAULT_MAX_PIXELS:
        raise ImageError(
            f"{path} is {width}×{height} pixels, more than the limit of {DEFAULT_MAX_PIXELS:,}."
        )
    with native_stderr_discarded():
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if decoded is None:
        raise ImageError(f"{path} is not a readable PNG image.")
    return decoded


def depth_sidecar(
    depth: np.ndarray, kind: str, model: str, camera: Camera, **extra: object
) -> dict[str, object]:
    """The sidecar of a depth map: what it holds, its size, camera and range.

    Keys: ``model``, ``kind``, ``units`` (``DEPTH_UNITS[kind]``), ``width``,
    ``height``, ``fx``, ``fy``, ``cx``, ``cy`` (pixels), ``camera_source`` (``user``,
    ``exif``, ``estimated`` or ``default``; an estimated camera adds
    ``camera_estimated_by``, the model's name), ``min_depth`` and ``max_depth`` over the
    finite values (None when there are none), then ``extra`` as given (JSON-serialisable values).
    """
    finite = depth[np.isfinite(depth)]
    info: dict[str, object] = {
        "model": model,
        "kind": kind,
        "units": DEPTH_UNITS.get(kind, kind),
        "width": int(depth.shape[1]),
        "height": int(depth.shape[0]),
        "fx": camera.fx,
        "fy": camera.fy,
        "cx": camera.cx,
        "cy": camera.cy,
        "camera_source": camera.source,
        **({"camera_estimated_by": camera.estimated_by} if camera.estimated_by else {}),
        "min_depth": float(finite.min()) if finite.size else None,
        "max_depth": float(finite.max()) if finite.size else None,
    }
    info.update(extra)
    return info


def write_sidecar(path: PathLike, info: dict[str, object]) -> Path:
    """Write ``info`` (see :func:`depth_sidecar`) as indented UTF-8 JSON; returns the path."""
    try:
        text = json.dumps(info, indent=2, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise OutputError(f"Cannot write {path}: the sidecar is not plain JSON ({err}).") from err
    return write_bytes(path, (text + "\n").encode("utf-8"))


def read_sidecar(path: PathLike) -> dict[str, object]:
    """A sidecar written by :func:`write_sidecar`, as a dict; ``ImageError`` if unreadable."""
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ImageError(f"Sidecar file {path} does not exist.") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ImageError(f"{path} is not a readable JSON sidecar ({err}).") from err
    if not isinstance(info, dict):
        raise ImageError(f"{path} holds JSON that is not an object.")
    return info
