"""Does the canonical camera work? Metric depth at focal lengths never seen in training.

The experiment of issue 6 (Metric3D's claim, on depthlens' own engine): the bundled
network trained twice for metric depth on the same scenes, once through the canonical
camera (``configs/metric-canonical.yaml``: depth × 1000 / f) and once on raw depth
(``configs/metric-plain.yaml``), then scored in meters, without any alignment, on
held-out renders grouped by focal length. Besides AbsRel and δ1 in meters, it prints
the scale error, mean |ln(median prediction / median truth)| per image (what the
canonical camera is meant to fix: 0.22 is a factor 1.25 off), and AbsRel after
median scaling (the shape alone, which the camera should not change).

    .venv/bin/python benchmarks/bench_canonical.py prepare
    .venv/bin/depthlens train configs/metric-canonical.yaml
    .venv/bin/depthlens train configs/metric-plain.yaml
    .venv/bin/python benchmarks/bench_canonical.py evaluate \\
        runs/metric-canonical/export runs/metric-plain/export

``prepare`` writes ``data/synth-metric-train`` (the renders of ``data/synth-v2`` whose
focal length lies in TRAIN_FOCAL, linked, not copied) and renders
``data/synth-metric-test`` from seeds no training run draws. ``evaluate`` prints these per
focal-length group, with the median over images of the ratio prediction / truth (1 is
unbiased).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

import depthlens
from depthlens.eval.metrics import aggregate, depth_metrics
from depthlens.io.images import Image
from depthlens.io.rgbd import RGBDFolder, RGBDWriter
from depthlens.synth.render import render_batches

SOURCE = Path("data/synth-v2")  # configs/bundled.yaml's 12 000 renders at 256 x 256
TRAIN = Path("data/synth-metric-train")
TEST = Path("data/synth-metric-test")
TRAIN_FOCAL = (150.0, 260.0)  # px at 256 x 256: horizontal fields of view 53-81 degrees
TEST_SEED = 3_100_000_000  # beyond every training, validation and bench_bundled range
MAX_DEPTH = 80.0  # meters: the range the validation and the KITTI protocol score


def focal_group(fx: float) -> str:
    """The row a test render belongs to, by its focal length at 256 px."""
    low, high = TRAIN_FOCAL
    if fx < low * 0.87:
        return f"wide (f < {low * 0.87:.0f} px)"
    if fx > high * 1.15:
        return f"long (f > {high * 1.15:.0f} px)"
    if low <= fx <= high:
        return f"trained band ({low:.0f}-{high:.0f} px)"
    return "margin"


def prepare(count: int, workers: int) -> None:
    rows = [json.loads(line) for line in (SOURCE / "manifest.jsonl").read_text().splitlines()]
    kept = [row for row in rows if TRAIN_FOCAL[0] <= row["fx"] <= TRAIN_FOCAL[1]]
    TRAIN.mkdir(parents=True, exist_ok=True)
    (TRAIN / "manifest.jsonl").write_text("".join(json.dumps(row) + "\n" for row in kept))
    for sub in ("rgb", "depth"):
        if not (TRAIN / sub).exists():
            os.symlink((SOURCE / sub).resolve(), TRAIN / sub)
    print(f"{TRAIN}: {len(kept)} of {len(rows)} renders of {SOURCE} (f in {TRAIN_FOCAL} px)")
    writer = RGBDWriter(TEST, "png16", False)
    seeds = list(range(TEST_SEED, TEST_SEED + count))
    for batch in render_batches(seeds, 256, 256, batch_size=16, workers=workers):
        writer.write(batch)
    print(f"{TEST}: {count} held-out renders (seeds {seeds[0]}..{seeds[-1]})")


def evaluate(exports: list[str]) -> None:
    test = RGBDFolder(TEST)
    groups = [focal_group(item.camera.fx) for item in test if item.camera is not None]
    print(
        f"Held-out renders: {len(test)}; per group: "
        + ", ".join(f"{g} {groups.count(g)}" for g in sorted(set(groups)))
    )
    print()
    print(
        "| model | canonical camera | focal group | n | AbsRel | δ1 | median pred/true "
        "| scale error | AbsRel, median-scaled |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for export in exports:
        estimator = depthlens.load_model(export)
        rows: dict[str, list[dict[str, float] | None]] = {}
        ratios: dict[str, list[float]] = {}
        shapes: dict[str, list[dict[str, float] | None]] = {}
        for item, group in zip(test, groups, strict=True):
            if group == "margin":
                continue
            image = Image(item.rgb, item.camera, item.name)
            prediction = estimator.predict(image).depth
            mask = item.valid & (item.depth <= MAX_DEPTH) & (prediction > 0)
            rows.setdefault(group, []).append(depth_metrics(prediction, item.depth, mask))
            if mask.any():
                ratio = float(np.median(item.depth[mask]) / np.median(prediction[mask]))
                ratios.setdefault(group, []).append(
                    float(np.median(prediction[mask] / item.depth[mask]))
                )
                shapes.setdefault(group, []).append(
                    depth_metrics(prediction * ratio, item.depth, mask)
                )
        focal = estimator.spec.canonical_focal
        canonical = f"f_c = {focal:g} px" if focal else "no"
        for group in sorted(rows):
            means = aggregate(rows[group])
            scale_error = float(np.mean(np.abs(np.log(ratios[group]))))
            shape = aggregate(shapes[group])["abs_rel"]
            print(
                f"| {export} | {canonical} | {group} "
                f"| {means['n']} | {means['abs_rel']:.3f} | {means['delta1']:.3f} "
                f"| {np.median(ratios[group]):.2f} | {scale_error:.3f} | {shape:.3f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="write the training subset and the test renders")
    prep.add_argument("--images", type=int, default=600, help="held-out renders")
    prep.add_argument("--workers", type=int, default=2)
    ev = sub.add_parser("evaluate", help="score trained exports on the test renders")
    ev.add_argument("exports", nargs="+", help="export folders of depthlens train")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.images, args.workers)
    else:
        evaluate(args.exports)


if __name__ == "__main__":
    main()
