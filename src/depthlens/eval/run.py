"""Evaluating a model on datasets: per-image metrics, their means, and the reports.

``evaluate_dataset`` is the library entry point of ``depthlens eval``: each item of a
dataset (``eval/datasets``) is predicted at its own size by the one inference path
(``Estimator.predict``), prepared by ``protocol.prepare_prediction`` with the dataset's
protocol and the alignment that fits the model's output (relative inverse depth: the
MiDaS disparity fit; metric depth: none) and scored by ``AlignedPair.metrics``, as
``protocol.score_prediction`` does. The panels of ``eval/vis.py`` show the same
prepared maps.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depthlens.eval.datasets import Dataset, EvalItem
from depthlens.eval.metrics import METRIC_NAMES, SilogVariant, aggregate
from depthlens.eval.protocol import Alignment, DatasetProtocol, kb_crop_item, prepare_prediction
from depthlens.eval.published import Published, published_for
from depthlens.eval.vis import evaluation_panel
from depthlens.geometry.camera import Camera
from depthlens.io.depth_files import read_npy, write_bytes, write_npy, write_png
from depthlens.io.images import Image
from depthlens.models.estimator import Estimator

# The columns of the printed table, in the papers' usual order.
TABLE_METRICS = ("abs_rel", "delta1", "delta2", "delta3", "rmse", "silog")


def default_alignment(kind: str) -> Alignment:
    """The alignment for a model's output kind: disparity fit for relative inverse
    depth, none for metric depth."""
    return "none" if kind == "metric" else "depth_from_disparity"


@dataclass
class EvalResult:
    """The per-image metric rows of one model on one dataset and their means."""

    model: str
    dataset: str
    alignment: Alignment
    protocol: DatasetProtocol
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    silog: SilogVariant = "zoedepth"
    panels: Path | None = None  # the folder of the items' panels, when written

    @property
    def dataset_kind(self) -> str:
        return self.dataset.split(":", 1)[0]

    @property
    def published(self) -> Published | None:
        """The papers' numbers for this model on this dataset kind, if any."""
        return published_for(self.model, self.dataset_kind)

    @property
    def means(self) -> dict[str, float]:
        scored = [{k: row[k] for k in METRIC_NAMES} for row in self.rows]
        if not scored:
            return {**{name: math.nan for name in METRIC_NAMES}, "n": 0}
        return aggregate(scored)


def evaluate_dataset(
    estimator: Estimator,
    dataset: Dataset,
    protocol: DatasetProtocol,
    alignment: Alignment | None = None,
    silog: SilogVariant = "zoedepth",
    limit: int | None = None,
    min_pixels: int = 1,
    on_item: Callable[[], None] | None = None,
    cache: Path | None = None,
    save_vis: Path | None = None,
) -> EvalResult:
    """Score ``estimator`` on the first ``limit`` items of ``dataset`` (all when None).

    Items with fewer than ``min_pixels`` counted pixels are listed in ``skipped``. With
    ``cache``, each raw prediction is kept there as NPY (``prediction_cache_dir``), so a
    rerun with other metrics, alignments or crops predicts nothing again. With
    ``save_vis``, each scored item's panel (``vis.evaluation_panel``) is written as
    ``<item>.png`` in ``panel_dir(save_vis, ...)``, the result's ``panels``. With
    ``protocol.kb_crop`` each item is cut to the KITTI benchmark crop before it is
    predicted.
    """
    cache_dir = None
    if cache is not None:
        cache_dir = prediction_cache_dir(cache, estimator, dataset, protocol.kb_crop)
    vis_dir = None
    if save_vis is not None:
        vis_dir = panel_dir(save_vis, estimator, dataset, protocol.kb_crop)
    chosen = alignment or default_alignment(estimator.kind)
    result = EvalResult(
        estimator.name, f"{dataset.kind}:{dataset.root}", chosen, protocol, silog=silog
    )
    count = len(dataset) if limit is None else min(limit, len(dataset))
    for index in range(count):
        item = kb_crop_item(dataset[index]) if protocol.kb_crop else dataset[index]
        cached = cache_dir / f"{_safe_name(item.name)}.npy" if cache_dir is not None else None
        if cached is not None and cached.is_file():
            prediction = read_npy(cached)
        else:
            prediction = estimator.predict(item_image(item)).depth
            if cached is not None:
                write_npy(cached, prediction)
        pair = prepare_prediction(prediction, item.depth, item.valid, protocol, chosen, min_pixels)
        metrics = None if pair is None else pair.metrics(silog, min_pixels)
        if pair is None or metrics is None:
            result.skipped.append(item.name)
        else:
            result.rows.append({"image": item.name, **metrics})
            if vis_dir is not None:
                write_png(
                    vis_dir / f"{_safe_name(item.name)}.png", evaluation_panel(item.rgb, pair)
                )
                result.panels = vis_dir
        if on_item is not None:
            on_item()
    return result


def prediction_cache_dir(
    root: Path, estimator: Estimator, dataset: Dataset, kb_crop: bool = False
) -> Path:
    """``root/<model>/<kind>[-kb]-<key>``: one folder per model, weights, dataset and
    input crop, the key a hash of the model name, its weights location, the dataset's
    kind and resolved path, and the KITTI benchmark crop when it is on (the cut frame
    is another input, so another prediction)."""
    identity = [estimator.name, str(estimator.weights), dataset.kind]
    identity.append(str(Path(dataset.root).resolve()))
    if kb_crop:
        identity.append("kb_crop")
    key = hashlib.sha256("\n".join(identity).encode()).hexdigest()[:16]
    label = f"{dataset.kind}-kb" if kb_crop else dataset.kind
    return root / _safe_name(estimator.name) / f"{label}-{key}"


def panel_dir(root: Path, estimator: Estimator, dataset: Dataset, kb_crop: bool = False) -> Path:
    """``root/<model>-<dataset>[-kb]``, the folder of a run's panels, named to be read:
    the model's name and the dataset's folder name, led by its kind unless the name
    holds it (``depthlens-small-folder-scenes``, ``depth-anything-v2-small-nyu_v2``),
    then ``-kb`` for the KITTI benchmark crop; odd characters become ``_``. Unlike
    ``prediction_cache_dir`` it does not tell two weights of one model apart: a rerun
    replaces the panels, as it does the model's CSV."""
    folder = Path(dataset.root).resolve().name
    name = folder if dataset.kind in folder.lower() else f"{dataset.kind}-{folder}".rstrip("-")
    label = f"{estimator.name}-{name}" + ("-kb" if kb_crop else "")
    return root / _safe_name(label)


def item_image(item: EvalItem) -> Image:
    """The item's photo with the dataset's camera, so metric models scale by the true
    focal length (NYU's, a folder's manifest) rather than an assumed one."""
    camera = None
    if item.intrinsics is not None:
        height, width = item.rgb.shape[:2]
        fx, fy, cx, cy = item.intrinsics
        camera = Camera(fx, fy, cx, cy, width, height, source="user")
    return Image(item.rgb, camera, item.name)


def _safe_name(name: str) -> str:
    """A file name for an item or model name (path separators and odd characters out)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "item"


def markdown_table(results: Sequence[EvalResult]) -> str:
    """One row per model × dataset: the means of TABLE_METRICS, the image count, and the
    published numbers for that model and dataset where the papers give them."""
    header = ["model", "dataset", "alignment", *TABLE_METRICS, "images", "published"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        means = result.means
        cells = [result.model, result.dataset, result.alignment]
        cells += [f"{means[name]:.4f}" for name in TABLE_METRICS]
        cells.append(str(int(means["n"])))
        published = result.published
        cells.append(published.describe() if published is not None else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_reports(results: Sequence[EvalResult], folder: Path) -> list[Path]:
    """``results.json`` (settings, means and per-image rows of every result) and one
    ``<model>__<dataset kind>.csv`` of per-image rows each; written atomically."""
    summary = [
        {
            "model": r.model,
            "dataset": r.dataset,
            "alignment": r.alignment,
            "silog": r.silog,
            "protocol": {
                "min_depth": r.protocol.min_depth,
                "max_depth": r.protocol.max_depth,
                "crop": r.protocol.crop,
                "kb_crop": r.protocol.kb_crop,
            },
            "means": r.means,
            "published": (
                None
                if r.published is None
                else {
                    "metrics": dict(r.published.metrics),
                    "source": r.published.source,
                    "alignment": r.published.alignment,
                }
            ),
            "skipped": r.skipped,
            "images": r.rows,
        }
        for r in results
    ]
    json_text = json.dumps(summary, indent=2, allow_nan=True) + "\n"
    written = [write_bytes(folder / "results.json", json_text.encode())]
    for result in results:
        table = io.StringIO(newline="")
        writer = csv.DictWriter(table, fieldnames=["image", *METRIC_NAMES])
        writer.writeheader()
        writer.writerows(result.rows)
        csv_path = folder / f"{result.model}__{result.dataset_kind}.csv"
        written.append(write_bytes(csv_path, table.getvalue().encode()))
    return written
