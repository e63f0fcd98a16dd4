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
For millions of images: ``input_list`` streams a file of paths, ``shard_size`` writes
tar shards instead of a folder (``train.shards``), and ``engine`` runs the job on a Ray
cluster (``engines.ray``).
"""

from __future__ import annotations

import json
import os
from collections import Counter
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
    from depthlens.pipeline import Engine, InputResult

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
    counts = Counter(stems)  # not stems.count: a folder of 100k photos is one call
    clashing = {stem for stem, count in counts.items() if count > 1}
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
    shard_size: int | None = None,
    input_list: str | os.PathLike[str] | None = None,
    engine: Engine | None = None,
    report_file: str | os.PathLike[str] | None = None,
    on_failure: Callable[[str, str], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> PseudoLabelReport:
    """Label the images named by ``inputs`` (files, folders, globs) and ``input_list``
    (a file of paths, streamed) with ``model``, through ``pipeline.predict_files`` into a
    ``PseudoLabelFolder``, or into tar shards of ``shard_size`` samples
    (``train.shards.PseudoLabelShards``), on ``engine`` (None: this process).

    Returns a report; ``on_failure(input, reason)`` is called for each input that could
    not be labelled and ``on_progress(done, total)`` after each image; ``report_file``
    gets a JSON line per input.
    """
    from depthlens.pipeline import predict_files
    from depthlens.train.shards import PseudoLabelShards

    failures: list[tuple[str, str]] = []

    def heard(result: InputResult) -> None:
        if result.error is not None:
            failures.append((result.input, result.error))
            if on_failure is not None:
                on_failure(result.input, result.error)

    folder: PseudoLabelFolder | PseudoLabelShards = (
        PseudoLabelFolder(Path(output))
        if shard_size is None
        else PseudoLabelShards(Path(output), shard_size=shard_size)
    )
    report = predict_files(
        list(inputs),
        Path(output),
        model=model,
        weights=weights,
        device=device,
        backend=backend,
        precision=precision,
        batch_size=batch_size,
        recursive=recursive,
        max_pixels=max_pixels,
        sink=folder,
        input_list=input_list,
        engine=engine,
        report_file=report_file,
        keep_results=False,
        on_result=heard,
        on_progress=on_progress,
    )
    return PseudoLabelReport(
        model=report.model,
        folder=Path(output),
        total=report.total,
        written=report.done - report.skipped,
        skipped=report.skipped,
        failures=failures,
    )


@dataclass
class PseudoLabelFolder:
    """The ``pipeline.Sink`` of pseudo-labelling: an RGB-D folder (see the module). Each
    image's files are written by whoever predicts it; its manifest line is appended by
    the run's driver once its batch is back (``commit``), so a line always follows its
    files and a batch retried elsewhere is never listed twice. Names already in the
    manifest are skipped (an interrupted run resumes)."""

    path: Path
    takes_videos: bool = False  # a video named here is refused as an image
    unit: int | None = None
    _taken: set[str] = field(default_factory=set)  # names given so far in this run
    _existing: set[str] | None = None  # names in the manifest when the run began

    def plan(
        self, found: list[tuple[Path, PurePath]], root: Path
    ) -> tuple[list[tuple[Path, Any]], list[Path]]:
        """Each image with its sample name; those already in the manifest are skipped.
        A name an earlier chunk of this run took gets ``-2``, ``-3``."""
        if self._existing is None:
            self._existing = _existing_names(self.path)
        todo, skipped = [], []
        for (path, _), name in zip(found, sample_names([r for _, r in found]), strict=True):
            unique, number = name, 1
            while unique in self._taken:
                number += 1
                unique = f"{name}-{number}"
            self._taken.add(unique)
            if unique in self._existing:
                skipped.append(path)
            else:
                todo.append((path, unique))
        return todo, skipped

    def __getstate__(self) -> dict[str, Any]:
        """A worker's copy (a batch engine pickles the sink): without the driver's names."""
        return {**self.__dict__, "_taken": set(), "_existing": None}

    def write(self, path: Path, key: Any, image: Image, result: DepthResult) -> InputResult:
        """The image and its target; its manifest line rides on the result."""
        from depthlens.pipeline import InputResult

        try:
            line = _write_label(self.path, str(key), path, image, result)
        except Exception as exc:  # this image's failure only
            return InputResult.failed(str(path), exc)
        return InputResult(
            str(path),
            written=(self.path / "rgb" / f"{key}.png", self.path / "depth" / f"{key}.npy"),
            record=line,
        )

    def flush(self, results: list[InputResult]) -> list[InputResult]:
        """Nothing more to write: each image's files are whole."""
        return results

    def commit(self, results: list[InputResult]) -> None:
        """Append the batch's manifest lines (one atomic append)."""
        append_lines(self.path / MANIFEST, [r.record for r in results if r.record])


def _write_label(folder: Path, name: str, path: Path, image: Image, result: DepthResult) -> str:
    """Write one image and its target (atomically, each); returns its manifest line."""
    stored, lo, hi = encode_disparity(teacher_disparity(result))
    entry: dict[str, Any] = {
        "name": name,
        "rgb": f"rgb/{name}.png",
        "depth": f"depth/{name}.npy",
        "depth_scale": 1.0,
    } | label_metadata(name, str(path), image, result.model, lo, hi)
    write_png(folder / entry["rgb"], image.rgb)
    write_npy(folder / entry["depth"], stored)
    return json.dumps(entry)


def teacher_disparity(result: DepthResult) -> np.ndarray:
    """(H, W) float64 relative inverse depth of a teacher's result: a metric teacher's
    depth ``z`` (meters) as ``1 / z``, NaN where ``z`` ≤ 0 or not finite; a relative
    teacher's map as it is."""
    disparity = result.depth.astype(np.float64)
    if result.kind == "metric":
        with np.errstate(divide="ignore", invalid="ignore"):
            disparity = np.where(disparity > 0, 1.0 / disparity, np.nan)
    return disparity


def label_metadata(
    name: str, source: str, image: Image, teacher: str, lo: float, hi: float
) -> dict[str, Any]:
    """The metadata of one pseudo-label, in the order of an RGB-D manifest line after its
    file keys: size in pixels, the photo's camera (pixels) when it has one, the target
    kind, the teacher, the ``[lo, hi]`` its target was mapped from, and the input."""
    entry: dict[str, Any] = {"name": name, "width": image.width, "height": image.height}
    if image.camera is not None:
        camera = image.camera
        entry.update(fx=camera.fx, fy=camera.fy, cx=camera.cx, cy=camera.cy)
    entry.update(target=TARGET, teacher=teacher, disparity_min=lo, disparity_max=hi, source=source)
    return entry


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
