"""Detail on high-resolution photos: one pass against tiles, for the bundled model (issue 20).

1. Quality on ``--scenes`` synthetic ``thin_structures`` scenes (railings, poles, wires,
   leafless twigs, chair legs; exact depth) at ``--size`` (2048x1536 by default), per
   way of predicting (``MODES``): AbsRel and δ1 after the MiDaS scale-and-shift fit in
   disparity (``depth_from_disparity``, 80 m cap, as ``depthlens eval`` scores relative
   models); Depth Pro's boundary F1, precision and recall of the same aligned depth
   (``eval.edges``; the sky counts as far, at the cap, so poles and twigs against it
   count), and F1 again on every 4th pixel of both maps (steps that bilinear
   upsampling spreads over a few pixels count there); the seam score of the raw
   prediction along the tiled plan's interior tile borders (``plan_tiles``; the
   one-pass row is the baseline: what the scene's own edges give there); seconds per
   photo. Means over the scenes, and ratios to one pass.
2. Cost against megapixels (``--megapixels``): seconds and peak resident memory
   (VmHWM) of one ``predict`` per mode, each in a fresh process on the first
   scene resized to that many megapixels (4:3), loaded from a PNG as a user's photo is.

    .venv/bin/python benchmarks/bench_tiles.py [--scenes 4] [--megapixels 1 4 8 12]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

import depthlens
from depthlens.eval.edges import TileBounds, boundary_scores, seam_score
from depthlens.eval.protocol import prepare_prediction, protocol_for
from depthlens.io.depth_files import write_png
from depthlens.io.images import load_image
from depthlens.models.estimator import Estimator
from depthlens.models.tiling import DEFAULT_OVERLAP, network_side, plan_tiles
from depthlens.synth.render import render_sample

#: The ways of predicting compared: keyword arguments of ``Estimator.predict`` (the
#: tiles count, "auto" unless ``--tiles`` says otherwise, fills in ``TILES``).
TILES = "<tiles>"
MODES: dict[str, dict[str, Any]] = {
    "one pass": {},
    "one pass + guided": {"tiles": 1, "upsample": "guided"},
    "tiled": {"tiles": TILES, "upsample": "bilinear"},
    "tiled + guided": {"tiles": TILES, "upsample": "guided"},
}

# Peak memory is the address space's high-water mark, VmHWM (Linux): a child's
# ru_maxrss starts from this parent's size (2 GB here, holding the scenes).
CHILD = """
import json, sys, time
import numpy as np
import torch
import depthlens
from depthlens.io.images import load_image

def peak_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024

path, model, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
torch.set_num_threads(int(sys.argv[4]))
estimator = depthlens.load_model(model, device="cpu")
image = load_image(path)
estimator.predict(np.ascontiguousarray(image.rgb[:256, :256]))  # first-call setup
before = peak_mb()
start = time.perf_counter()
estimator.predict(image, **options)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "before_mb": before, "peak_mb": peak_mb()}))
"""


def options(mode: str, tiles: str | int) -> dict[str, Any]:
    """``predict``'s keyword arguments for ``mode``."""
    return {k: tiles if v == TILES else v for k, v in MODES[mode].items()}


def score(
    pred: np.ndarray,
    depth: np.ndarray,
    valid: np.ndarray,
    tiles: Sequence[TileBounds],
    max_depth: float,
) -> dict[str, float]:
    """AbsRel, δ1, boundary scores and seam score of one relative inverse depth map."""
    pair = prepare_prediction(
        np.nan_to_num(pred),
        depth,
        valid,
        protocol_for("folder", max_depth=max_depth),
        "depth_from_disparity",
    )
    metrics = None if pair is None else pair.metrics()
    if pair is None or metrics is None:
        raise SystemExit("a scene has no ground truth inside the depth cap")
    far = np.where(valid & (depth < max_depth), depth, max_depth)  # the sky is far
    aligned = np.clip(pair.compared, 1e-3, max_depth)
    edges = boundary_scores(aligned, far)
    return {
        "abs_rel": metrics["abs_rel"],
        "delta1": metrics["delta1"],
        "f1": edges.f1,
        "precision": edges.precision,
        "recall": edges.recall,
        "f1_quarter": boundary_scores(aligned[::4, ::4], far[::4, ::4]).f1,
        "seam": seam_score(np.nan_to_num(pred), tiles),
    }


def quality(model: Estimator, args: argparse.Namespace, photo: Path) -> None:
    height, width = args.size
    tiles = plan_tiles(height, width, args.tiles, DEFAULT_OVERLAP, network_side(model))
    rows: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for index in range(args.scenes):
        sample = render_sample(index, height, width, kind="thin_structures")
        if index == 0:
            write_png(photo, sample.rgb)
        for mode in MODES:
            model.predict(sample.rgb, **options(mode, args.tiles))  # warm caches for this size
            start = time.perf_counter()
            pred = model.predict(sample.rgb, **options(mode, args.tiles)).depth
            seconds = time.perf_counter() - start
            found = score(pred, sample.depth, sample.valid, tiles, args.max_depth)
            rows[mode].append({**found, "seconds": seconds})
        print(f"scene {index} done", file=sys.stderr, flush=True)
    means = {
        mode: {k: statistics.mean(r[k] for r in scored) for k in scored[0]}
        for mode, scored in rows.items()
    }
    base = means["one pass"]
    print(
        f"\n{model.name} on {args.scenes} thin_structures scenes at {width}x{height}, tiles "
        f"{args.tiles} ({len(tiles)} tiles, {tiles[0].x1 - tiles[0].x0} px wide in the photo), "
        f"{torch.get_num_threads()} threads; ratios to one pass in brackets"
    )
    print(
        "| mode | AbsRel | δ1 | boundary F1 | precision | recall | F1 at ¼ size | seam | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for mode, m in means.items():
        cells = [
            f"{m[k]:.3f} ({m[k] / base[k]:.2f}x)" if base[k] else f"{m[k]:.3f}"
            for k in ("abs_rel", "delta1", "f1", "precision", "recall", "f1_quarter", "seam")
        ]
        cells.append(f"{m['seconds']:.2f} ({m['seconds'] / base['seconds']:.1f}x)")
        print(f"| {mode} | {' | '.join(cells)} |")


def cost(model_name: str, photo: Path, megapixels: list[float], tiles: str | int) -> None:
    threads = str(torch.get_num_threads())
    rgb = load_image(photo).rgb
    print(f"\ncost of one predict against photo size ({model_name}, fresh process per run)")
    print("| megapixels | size | mode | seconds | peak RSS MB | over the loaded model MB |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for mp in megapixels:
            width = round((mp * 1e6 * 4 / 3) ** 0.5)
            height = round(width * 3 / 4)
            path = Path(scratch) / f"{mp}mp.png"
            resized = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC)
            write_png(path, resized)
            for mode in MODES:
                done = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        CHILD,
                        str(path),
                        model_name,
                        json.dumps(options(mode, tiles)),
                        threads,
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                m = json.loads(done.stdout.strip().splitlines()[-1])
                print(
                    f"| {mp:g} | {width}x{height} | {mode} | {m['seconds']:.2f} | "
                    f"{m['peak_mb']:.0f} | {m['peak_mb'] - m['before_mb']:.0f} |",
                    flush=True,
                )


def tiles_arg(text: str) -> str | int:
    return text if text == "auto" else int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="depthlens-small")
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--size", type=int, nargs=2, default=[1536, 2048], metavar=("H", "W"))
    parser.add_argument("--tiles", type=tiles_arg, default="auto")
    parser.add_argument("--max-depth", type=float, default=80.0)
    parser.add_argument("--megapixels", type=float, nargs="*", default=[1, 4, 8, 12])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = depthlens.load_model(args.model, device="cpu")
    with tempfile.TemporaryDirectory() as scratch:
        photo = Path(scratch) / "scene0.png"
        quality(model, args, photo)
        if args.megapixels:
            cost(args.model, photo, args.megapixels, args.tiles)


if __name__ == "__main__":
    main()
