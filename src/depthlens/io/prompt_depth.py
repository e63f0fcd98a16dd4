"""Prompt depth: the low-resolution metric depth map a prompt-depth model takes beside
the photo (Prompt Depth Anything; an iPhone LiDAR frame is 256 x 192).

Formats:
- 16-bit single-channel PNG in millimetres, as ARKit exports (Stray Scanner, Record3D)
  write them and as the official PromptDA reader takes them (promptda/utils/
  io_wrapper.py::load_depth: value / 1000); default scale 0.001 (mm -> m).
- ``.npy`` of float (or integer) values in meters; default scale 1.
- ``.npz`` with a ``depth`` array (the official reader's other format), meters; scale 1.
- In Python, any 2-D array of meters (scale 1 unless given).

``scale`` multiplies the stored numbers into meters (``--prompt-scale``).

Invalid pixels: 0 means "no reading" in sensor exports; the official model takes the
map as is, zeros included (its min/max normalisation counts them), and so does
depthlens. NaN and +-inf, which the official code would spread through the whole
output, are set to 0 like a missing reading. Refused, each in one sentence: not 2-D,
smaller than 2 x 2, an aspect ratio more than 10 % off the photo's, negative values,
values above 1000 m, no valid pixel, or a map of one single value (it carries no
depth range to scale by).
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from depthlens.errors import ImageError
from depthlens.io.depth_files import _decode_file
from depthlens.io.images import Image, native_stderr_discarded

__all__ = [
    "MAX_PROMPT_METERS",
    "PromptSource",
    "check_prompt_depth",
    "default_prompt_scale",
    "read_prompt_depth",
    "with_prompt",
]

PromptSource = str | os.PathLike[str] | bytes | np.ndarray

# Anything beyond is a unit mistake (millimetres read as meters, say): LiDAR reaches ~5 m.
MAX_PROMPT_METERS = 1000.0
# How far the prompt's width/height may be from the photo's (relative).
ASPECT_TOLERANCE = 0.10
MIN_PROMPT_SIDE = 2

_PNG = b"\x89PNG\r\n\x1a\n"
_NPY = b"\x93NUMPY"
_NPZ = b"PK\x03\x04"


def default_prompt_scale(source: PromptSource) -> float:
    """0.001 for a PNG (millimetres), 1 for everything else (meters)."""
    if isinstance(source, bytes):
        return 0.001 if source.startswith(_PNG) else 1.0
    if isinstance(source, np.ndarray):
        return 1.0
    return 0.001 if Path(source).suffix.lower() == ".png" else 1.0


def read_prompt_depth(
    source: PromptSource, scale: float | None = None, name: str | None = None
) -> np.ndarray:
    """The prompt depth of ``source`` in meters: (h, w) float32, non-finite values set to
    0 (a missing reading); ``scale`` (default ``default_prompt_scale``) turns the stored
    numbers into meters. Unreadable or wrongly shaped input raises ``ImageError``; the
    values are checked by ``check_prompt_depth``."""
    label = name or (
        f"<{type(source).__name__}>" if not isinstance(source, str | os.PathLike) else str(source)
    )
    factor = default_prompt_scale(source) if scale is None else float(scale)
    if not math.isfinite(factor) or factor <= 0:
        raise ImageError(f"The prompt depth scale must be a positive number, not {scale}.")
    raw = _load(source, label)
    if raw.ndim == 3 and raw.shape[2] == 1:
        raw = raw[:, :, 0]
    if raw.ndim != 2:
        raise ImageError(
            f"Prompt depth {label} has shape {raw.shape}; it must be one 2-D depth map (h, w)."
        )
    depth = raw.astype(np.float64) * factor
    depth[~np.isfinite(depth)] = 0.0
    return depth.astype(np.float32)


def _load(source: PromptSource, label: str) -> np.ndarray:
    if isinstance(source, np.ndarray):
        if not (
            np.issubdtype(source.dtype, np.floating) or np.issubdtype(source.dtype, np.integer)
        ):
            raise ImageError(f"Prompt depth {label} holds {source.dtype} values, not numbers.")
        return np.asarray(source)
    if isinstance(source, bytes):
        data = source
        if data.startswith(_PNG):
            with native_stderr_discarded():
                decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if decoded is None:
                raise ImageError(f"Prompt depth {label} is not a readable PNG image.")
            return _png_values(decoded, label)
        if data.startswith(_NPY) or data.startswith(_NPZ):
            return _numpy_values(io.BytesIO(data), label)
        raise ImageError(f"Prompt depth {label} is neither a 16-bit PNG nor an NPY/NPZ file.")
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix == ".png":
        return _png_values(_decode_file(path, cv2.IMREAD_UNCHANGED), label)
    if suffix in (".npy", ".npz"):
        if not path.is_file():
            raise ImageError(f"Prompt depth file {path} does not exist.")
        return _numpy_values(path, label)
    raise ImageError(
        f"Prompt depth {path} must be a 16-bit PNG (millimetres) or an .npy/.npz file (meters)."
    )


def _png_values(decoded: np.ndarray, label: str) -> np.ndarray:
    if decoded.dtype != np.uint16 or decoded.ndim != 2:
        kind = "colour" if decoded.ndim == 3 else f"{decoded.dtype}"
        raise ImageError(
            f"Prompt depth {label} is a {kind} PNG; it must be a 16-bit single-channel PNG "
            "(millimetres)."
        )
    return decoded


def _numpy_values(file: io.BytesIO | Path, label: str) -> np.ndarray:
    try:
        loaded = np.load(file, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                if "depth" not in loaded.files:
                    raise ImageError(f"Prompt depth {label} is an NPZ without a 'depth' array.")
                array = loaded["depth"]
        else:
            array = loaded
    except (OSError, ValueError, EOFError) as err:
        raise ImageError(f"Prompt depth {label} is not a readable NPY/NPZ file ({err}).") from None
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ImageError(f"Prompt depth {label} holds {array.dtype} values, not numbers.")
    return np.asarray(array)


def check_prompt_depth(depth: np.ndarray, height: int, width: int, label: str = "") -> np.ndarray:
    """``depth`` (meters, from ``read_prompt_depth``) if it can prompt an image of
    ``height`` x ``width``; else ``ImageError`` in one sentence."""
    name = f"Prompt depth {label}".rstrip()
    rows, cols = depth.shape
    if min(rows, cols) < MIN_PROMPT_SIDE:
        raise ImageError(f"{name} is {cols}×{rows} pixels; it needs at least 2×2.")
    ratio, image_ratio = cols / rows, width / height
    if abs(ratio / image_ratio - 1) > ASPECT_TOLERANCE:
        hint = (
            " (rotated? it matches the photo turned by 90°)"
            if abs(rows / cols / image_ratio - 1) <= ASPECT_TOLERANCE
            else ""
        )
        raise ImageError(
            f"{name} is {cols}×{rows}, an aspect ratio of {ratio:.2f}, but the photo is "
            f"{width}×{height} ({image_ratio:.2f}){hint}."
        )
    if (depth < 0).any():
        raise ImageError(f"{name} has negative values (down to {float(depth.min()):.3g} m).")
    if not (depth > 0).any():
        raise ImageError(f"{name} has no valid pixel (all zero, NaN or infinite).")
    top = float(depth.max())
    if top > MAX_PROMPT_METERS:
        raise ImageError(
            f"{name} reaches {top:.4g} m, beyond {MAX_PROMPT_METERS:.0f} m: check the units "
            "(--prompt-scale; PNG files are read as millimetres, NPY as meters)."
        )
    if float(depth.min()) == top:
        raise ImageError(f"{name} holds the one value {top:.4g} m everywhere, so no depth range.")
    return depth


def with_prompt(
    image: Image, prompt: PromptSource, scale: float | None = None, name: str | None = None
) -> Image:
    """``image`` with ``prompt`` read (``read_prompt_depth``), checked against its size
    (``check_prompt_depth``) and attached as ``Image.prompt_depth``."""
    depth = read_prompt_depth(prompt, scale, name)
    label = name or (str(prompt) if isinstance(prompt, str | os.PathLike) else "")
    return replace(image, prompt_depth=check_prompt_depth(depth, image.height, image.width, label))
