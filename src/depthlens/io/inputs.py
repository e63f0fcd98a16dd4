"""Finding the photos a user named: files, folders (recursively) and glob patterns,
each with the path its outputs keep relative to the output folder."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path, PurePath

from depthlens.errors import ImageError

__all__ = ["IMAGE_SUFFIXES", "find_images"]

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
    | {".heic", ".heif", ".hif"}  # iPhones write .heic; Canon and Fujifilm cameras .hif
)
# A folder without images of its own has its subfolders counted for the --recursive
# hint, up to this many images or this many entries looked at (a huge tree is not walked).
_HINT_MAX_IMAGES = 1000
_HINT_MAX_ENTRIES = 100_000

_GLOB_CHARS = frozenset("*?[")


def find_images(
    inputs: Iterable[str | os.PathLike[str]], recursive: bool
) -> list[tuple[Path, PurePath]]:
    """Expand files, folders and glob patterns into ``(path, relative output path)``.

    A named file is taken whatever its suffix, with its name as relative path. A
    folder contributes the files in it (in its subfolders too when ``recursive``)
    whose suffix is in ``IMAGE_SUFFIXES``, relative to the folder. A glob pattern
    (``*``, ``?``, ``[``; ``**`` spans folders) contributes matching image files,
    relative to the pattern's leading folder. Relative paths are never absolute and
    never contain ``..``, so outputs written under them stay inside the output folder.
    URLs and ``-`` (standard input) are not found here: ``pipeline.predict_files``
    takes them as they are.

    Each input's files are sorted by relative path and inputs keep their order; a
    file reached twice is kept the first time. Different inputs may yield the same
    relative path (``a/x.jpg`` and ``b/x.jpg``); callers decide how to tell them
    apart. An input that does not exist, a pattern that matches no image file, or a
    folder (not ``recursive``) with no images directly inside but some in its
    subfolders raises ``ImageError`` (the last one suggesting ``--recursive``).
    """
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]  # one input, not an iterable of characters
    found: list[tuple[Path, PurePath]] = []
    seen: set[Path] = set()
    for raw in inputs:
        for path, relative in _expand_input(str(raw), recursive):
            key = _identity(path)
            if key not in seen:
                seen.add(key)
                found.append((path, relative))
    return found


def _identity(path: Path) -> Path:
    """The file ``path`` names, for spotting the same file reached twice (a link loop
    has no resolved path: it stands for itself)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def _expand_input(raw: str, recursive: bool) -> list[tuple[Path, PurePath]]:
    """The ``(path, relative path)`` pairs of one input, sorted by relative path."""
    path = Path(raw)
    if path.is_file() or (os.path.lexists(path) and not path.is_dir()):
        # Links to nowhere, pipes and devices too: loading says what they are.
        return [(path, PurePath(path.name))]
    if path.is_dir():
        pairs = [(p, _relative_to(p, path)) for p in _walk(path, recursive)]
        if not pairs and not recursive:
            _suggest_recursive(path)
    elif _GLOB_CHARS & set(raw):
        base = _glob_base(raw)
        matches = [Path(m) for m in glob.glob(raw, recursive=True)]
        pairs = [(m, _relative_to(m, base)) for m in matches if _is_image_file(m)]
        if not pairs:
            raise ImageError(f"The pattern {raw} matches no image files.")
    else:
        raise ImageError(f"Input {raw} does not exist.")
    return sorted(pairs, key=lambda pair: pair[1].as_posix())


def _walk(folder: Path, recursive: bool) -> list[Path]:
    """Image files in ``folder``, and below it when ``recursive`` (folder links not followed)."""
    if not recursive:
        return [p for p in folder.iterdir() if _is_image_file(p)]
    files: list[Path] = []
    for root, _dirs, names in os.walk(folder):
        files.extend(Path(root) / n for n in names if _is_image_file(Path(root) / n))
    return files


def _suggest_recursive(folder: Path) -> None:
    """Raise the ImageError that suggests --recursive when ``folder``'s subfolders hold
    images (counted up to _HINT_MAX_IMAGES); return when they hold none."""
    found = 0
    looked_at = 0
    pending = [folder]
    cut_short = False
    while pending and not cut_short:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    looked_at += 1
                    if _is_folder(entry):
                        pending.append(Path(entry.path))
                    elif Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
                        found += 1
                    if found >= _HINT_MAX_IMAGES or looked_at >= _HINT_MAX_ENTRIES:
                        cut_short = True
                        break
        except OSError:  # an unreadable subfolder hides what it holds
            continue
    if found == 0:
        return
    count = f"at least {found}" if cut_short else str(found)
    raise ImageError(
        f"No images directly in {folder}; {count} found in its subfolders: pass --recursive."
    )


def _is_folder(entry: os.DirEntry[str]) -> bool:
    """A real folder (links to folders are not followed, as with ``recursive``)."""
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _is_image_file(path: Path) -> bool:
    """Anything but a folder with an image suffix: links to nowhere, pipes and devices
    named like images are kept, so that loading reports what they are."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.is_dir()


def _glob_base(pattern: str) -> Path:
    """The leading folders of a glob pattern that contain no wildcard."""
    parts = Path(pattern).parts
    literal: list[str] = []
    for part in parts[:-1]:
        if _GLOB_CHARS & set(part):
            break
        literal.append(part)
    return Path(*literal) if literal else Path(".")


def _relative_to(path: Path, base: Path) -> PurePath:
    """``path`` relative to ``base``, normalised; its name alone if that would escape."""
    relative = PurePath(os.path.normpath(os.path.relpath(path, base)))
    if relative.is_absolute() or ".." in relative.parts or relative.name in ("", "."):
        return PurePath(path.name)
    return relative
