"""Pseudo-labelling: a teacher's relative inverse depth for unlabelled photos.

``depthlens pseudo-label --model TEACHER IMAGES... -o DIR`` runs the teacher through
``pipeline.predict_files`` (the one files -> outputs path) and writes an
RGB-D folder (``depthlens.io.rgbd``) that ``RGBDFolder`` reads and training mixes with
labelled data as a ``kind: pseudo`` source::

    DIR/manifest.jsonl   one line per image, with "target": "relative_inverse"
    DIR/rgb/NAME.png     the photo as the teacher saw it (upright, RGB)
    DIR/depth/NAME.npy   float32 target, exact

What the depth file holds: relative inverse depth (larger = nearer) is only known up to
scale and shift, and an RGB-D folder treats values ≤ 0 as invalid, so each map ``d`` is
stored as ``1 + (d − lo) / (hi − lo)`` in [1, 2], with ``lo``, ``hi`` its finite minimum
and maximum recorded on the line as ``disparity_min`` and ``disparity_max`` (the
teacher's values come back as ``lo + (stored − 1)(hi − lo)``). Non-finite teacher pixels
are stored as 0: invalid. Only scale-and-shift-invariant losses may train on these
targets, and the training loop uses only those for relative training.

A metric teacher's depth ``z`` is stored as its inverse ``1 / z``. Photos that cannot be
read, or on which the teacher fails, are reported and skipped; an existing folder is
continued (names already in its manifest are skipped), so an interrupted run resumes.
For millions of images, run shards of the input list on a batch engine (Ray Data), each
into its own folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import numpy as np

from depthlens.errors import UsageError
from depthlens.io.depth_files import write_npy, write_png
from depthlens.io.images import DEFAULT_MAX_PIXELS, Image
from depthlens.io.rgbd import MANIFEST, append_lines
from depthlens.models.estimator import DepthResult

if TYPE_CHECKING:
    from depthlens.pipeline import InputResult

TARGET = "relative_inverse"


@dataclass
class PseudoLabelReport:
    """What a pseudo-labelling run did: ``written`` new labels (``skipped`` were already
    in the folder) of ``total`` inputs; ``failures`` lists ``(input, reason)``."""

    model: str
    folder: Path
    total: int = 0
    written: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)


def encode_disparity(disparity: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(H, W) relative inverse depth -> ``(stored, lo, hi)`` as the module describes."""
    values = np.asarray(disparity, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        raise ValueError("the teacher's output has no finite value")
    lo, hi = float(values[finite].min()), float(values[finite].max())
    span = hi - lo
    stored = np.ones_like(values) if span <= 0 else 1.0 + (values - lo) / span
    stored = np.where(finite, stored, 0.0).astype(np.float32)
    return stored, lo, hi


def decode_disparity(stored: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The teacher's values back from a stored target (NaN where it was invalid)."""
    values = lo + (stored.astype(np.float64) - 1.0) * (hi - lo)
    return np.where(stored > 0, values, np.nan)


def sample_names(relatives: Sequence[PurePath]) -> list[str]:
    """Unique RGB-D sample names for input paths: ``a/photo.jpg`` -> ``a--photo``; a
    clash (``photo.jpg`` and ``photo.png``) keeps the suffix (``photo_png``), and any
    clash left gets ``-2``, ``-3``."""
    stems = [rel.with_suffix("").as_posix().replace("/", "--") for rel in relatives]
    clashing = {stem for stem in stems if stems.count(stem) > 1}
    named = [
        f"{stem}_{rel.suffix.lstrip('.')}" if stem in clashing and rel.suffix else stem
        for stem, rel in zip(stems, relatives, strict=True)
    ]
    named = [name.lstrip(".") or "image" for name in named]
    seen: dict[str, int] = {}
    unique = []
    for name in named:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return unique


def pseudo_label(
    inputs: Sequence[str],
    output: str | os.PathLike[str],
    model: str,
    weights: str | os.PathLike[str] | None = None,
    device: str = "auto",
    batch_size: int = 4,
    backend: str = "torch",
    precision: str = "fp32",
    recursive: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_failure: Callable[[str, str], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> PseudoLabelReport:
    """Label the images named by ``inputs`` (files, folders, globs) with ``model``,
    through ``pipeline.predict_files`` into a ``PseudoLabelFolder``.

    Returns a report; ``on_failure(input, reason)`` is called for each input that could
    not be labelled and ``on_progress(done, total)`` after each image.
    """
    from depthlens.pipeline import predict_files

    def heard(result: InputResult) -> None:
        if result.error is not None and on_failure is not None:
            on_failure(result.input, result.error)

    folder = PseudoLabelFolder(Path(output))
    report = predict_files(
        list(inputs),
        folder.path,
        model=model,
        weights=weights,
        device=device,
        backend=backend,
        precision=precision,
        batch_size=batch_size,
        recursive=recursive,
        max_pixels=max_pixels,
        sink=folder,
        on_result=heard,
        on_progress=on_progress,
    )
    return PseudoLabelReport(
        model=report.model,
        folder=folder.path,
        total=len(report.results),
        written=report.done - report.skipped,
        skipped=report.skipped,
        failures=report.failures,
    )


@dataclass
class PseudoLabelFolder:
    """The ``pipeline.Sink`` of pseudo-labelling: an RGB-D folder (see the module), one
    manifest line per image appended after each batch, names already in the manifest
    skipped (an interrupted run resumes)."""

    path: Path
    takes_videos: bool = False  # a video named here is refused as an image
    _lines: list[str] = field(default_factory=list)

    def plan(
        self, found: list[tuple[Path, PurePath]], root: Path
    ) -> tuple[list[tuple[Path, Any]], list[Path]]:
        """Each image with its sample name; those already in the manifest are skipped."""
        names = sample_names([relative for _, relative in found])
        existing = _existing_names(self.path)
        todo = [(path, name) for (path, _), name in zip(found, names, strict=True)]
        return [item for item in todo if item[1] not in existing], [
            path for path, name in todo if name in existing
        ]

    def write(self, path: Path, key: Any, image: Image, result: DepthResult) -> InputResult:
        """The image and its target; the manifest line waits for ``flush``."""
        from depthlens.pipeline import InputResult

        try:
            line = _write_label(self.path, str(key), path, image, result)
        except Exception as exc:  # this image's failure only
            return InputResult.failed(str(path), exc)
        self._lines.append(line)
        return InputResult(
            str(path),
            written=(self.path / "rgb" / f"{key}.png", self.path / "depth" / f"{key}.npy"),
        )

    def flush(self) -> None:
        """Append the batch's manifest lines (one atomic append)."""
        append_lines(self.path / MANIFEST, self._lines)
        self._lines = []


def _write_label(folder: Path, name: str, path: Path, image: Image, result: DepthResult) -> str:
    """Write one image and its target (atomically, each); returns its manifest line."""
    disparity = result.depth.astype(np.float64)
    if result.kind == "metric":
        with np.errstate(divide="ignore", invalid="ignore"):
            disparity = np.where(disparity > 0, 1.0 / disparity, np.nan)
    stored, lo, hi = encode_disparity(disparity)
    entry: dict[str, Any] = {
        "name": name,
        "rgb": f"rgb/{name}.png",
        "depth": f"depth/{name}.npy",
        "depth_scale": 1.0,
        "width": image.width,
        "height": image.height,
    }
    write_png(folder / entry["rgb"], image.rgb)
    write_npy(folder / entry["depth"], stored)
    if image.camera is not None:
        camera = image.camera
        entry.update(fx=camera.fx, fy=camera.fy, cx=camera.cx, cy=camera.cy)
    entry.update(
        target=TARGET,
        teacher=result.model,
        disparity_min=lo,
        disparity_max=hi,
        source=str(path),
    )
    return json.dumps(entry)


def _existing_names(folder: Path) -> set[str]:
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return set()
    names = set()
    for number, line in enumerate(manifest.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise UsageError(f"{manifest} line {number} is not valid JSON.") from None
        if entry.get("target") != TARGET:
            raise UsageError(
                f"{folder} already holds samples that are not pseudo-labels; "
                "write pseudo-labels to a folder of their own."
            )
        names.add(entry["name"])
    return names
