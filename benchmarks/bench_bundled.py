"""The bundled model on held-out synthetic scenes, and its speed.

1. Quality: ``--images`` scenes rendered from seeds that training never draws (the range
   starting at HELD_OUT_SEED, beyond the training and validation ranges of
   configs/bundled.yaml), scored with affine-invariant AbsRel and δ1 (least-squares
   scale and shift in disparity space, the MiDaS protocol; ground truth valid in
   (0, max_depth)). Beside it the trivial ground-plane prior "depth grows towards the
   horizon": disparity proportional to the image row, aligned the same way.
2. Speed: end-to-end ``predict`` at network inputs of 256 and 512 px, against MiDaS v2.1
   small's architecture (random weights) through the same pipeline, same threads.
3. ``--panel PATH``: a picture of a few held-out scenes (photo | ground truth | model).
4. ``--throughput N``: images per second over N photos of 256 px, one call per image
   (the peer) against batches of same-size inputs on each backend and precision
   (``--modes``); quality and speed are skipped.

    .venv/bin/python benchmarks/bench_bundled.py --images 500 --panel docs/bundled-heldout.png
    .venv/bin/python benchmarks/bench_bundled.py --throughput 128
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import depthlens
from depthlens.io.depth_files import write_png
from depthlens.io.images import Image
from depthlens.models import midas_small
from depthlens.models.estimator import Estimator
from depthlens.models.registry import get_spec
from depthlens.synth.render import SCENE_KINDS, render_batch
from depthlens.train.validate import affine_invariant_metrics
from depthlens.viz.colormaps import colorize

HELD_OUT_SEED = 3_000_000_000


def ground_plane_prior(height: int, width: int) -> np.ndarray:
    """Disparity growing linearly with the row: a flat ground seen from eye height."""
    return np.repeat(np.arange(height, dtype=np.float32)[:, None] + 1.0, width, axis=1)


def quality(model: Estimator, count: int, size: int, max_depth: float) -> None:
    rows: dict[str, list[dict[str, float]]] = {"model": [], "prior": []}
    per_kind: dict[str, list[dict[str, float]]] = {kind: [] for kind in SCENE_KINDS}
    for start in range(0, count, 16):
        seeds = [HELD_OUT_SEED + i for i in range(start, min(count, start + 16))]
        samples = render_batch(seeds, size, size)
        images = [Image(rgb=s.rgb, camera=s.camera, source=str(s.seed)) for s in samples]
        for sample, result in zip(samples, model.predict_images(images, 8), strict=True):
            valid = sample.valid & (sample.depth > 0) & (sample.depth < max_depth)
            ours = affine_invariant_metrics(result.depth, sample.depth, valid, max_depth)
            prior = affine_invariant_metrics(
                ground_plane_prior(size, size), sample.depth, valid, max_depth
            )
            if ours is None or prior is None:
                continue
            rows["model"].append(ours)
            rows["prior"].append(prior)
            per_kind[sample.kind].append(ours)
    print(f"held-out synthetic scenes: {len(rows['model'])} at {size}x{size}, cap {max_depth} m")
    print("| predictor | AbsRel | δ1 |")
    print("|---|---|---|")
    for name, label in (("model", model.name), ("prior", "ground-plane prior")):
        abs_rel = statistics.mean(r["abs_rel"] for r in rows[name])
        delta1 = statistics.mean(r["delta1"] for r in rows[name])
        print(f"| {label} | {abs_rel:.3f} | {delta1:.3f} |")
    for kind, found in per_kind.items():
        if found:
            abs_rel = statistics.mean(r["abs_rel"] for r in found)
            delta1 = statistics.mean(r["delta1"] for r in found)
            print(f"| {model.name}, {kind} only ({len(found)}) | {abs_rel:.3f} | {delta1:.3f} |")


def at_size(model: Estimator, size: int) -> Estimator:
    """The same network with its input rule set to ``size`` px."""
    policy = dataclasses.replace(model.spec.input, size=(size, size))
    return Estimator(dataclasses.replace(model.spec, input=policy), model.network, model.device)


def speed(model: Estimator, repeats: int) -> None:
    torch.manual_seed(0)
    peer_spec = get_spec("midas-v21-small")
    peer_network = midas_small.build_network(midas_small.PRESETS[peer_spec.variant])
    peer = Estimator(peer_spec, peer_network, "cpu", weights="<random>")
    print(f"\nspeed, one image per call, {torch.get_num_threads()} threads, median of {repeats}")
    print("| network input | depthlens-small | midas-v21-small | ratio |")
    print("|---|---|---|---|")
    for size in (256, 512):
        rgb = render_batch([HELD_OUT_SEED - 1], size, size)[0].rgb
        ours, theirs = at_size(model, size), at_size(peer, size)
        times: dict[str, list[float]] = {"ours": [], "peer": []}
        for runner in (ours, theirs):
            runner.predict(rgb)
        for _ in range(repeats):
            for key, runner in (("ours", ours), ("peer", theirs)):
                start = time.perf_counter()
                runner.predict(rgb)
                times[key].append(time.perf_counter() - start)
        a, b = statistics.median(times["ours"]), statistics.median(times["peer"])
        print(f"| {size}x{size} | {a * 1000:.1f} ms | {b * 1000:.1f} ms | {a / b:.2f} |")


def throughput(args: argparse.Namespace) -> None:
    """Images/s of ``predict_images`` on ``count`` photos, per backend, precision and
    batch size, beside the same model called one image at a time (torch fp32)."""
    count = args.throughput
    photos = [
        Image(rgb=s.rgb, camera=None, source=str(s.seed))
        for s in render_batch([HELD_OUT_SEED + i for i in range(count)], 256, 256)
    ]
    modes = [mode.split(":") for mode in args.modes.split(",")]
    models = {
        (backend, precision): depthlens.load_model(
            args.model, args.weights, device="cpu", backend=backend, precision=precision
        )
        for backend, precision in modes
    }
    single = models.get(("torch", "fp32")) or depthlens.load_model(args.model, args.weights)
    runs: list[tuple[str, Estimator, int]] = [("torch fp32, one image per call", single, 1)]
    runs += [
        (f"{backend} {precision}, batches of {batch}", model, batch)
        for (backend, precision), model in models.items()
        for batch in args.batches
    ]
    for _, model, batch in runs:  # warm-up: compile, caches, first-call allocations
        model.predict_images(photos[: max(batch, 2)], batch)
    times: dict[str, list[float]] = {label: [] for label, _, _ in runs}
    for _ in range(args.repeats):  # interleaved, so load on the machine hits all alike
        for label, model, batch in runs:
            start = time.perf_counter()
            model.predict_images(photos, batch)
            times[label].append(time.perf_counter() - start)
    base = statistics.median(times[runs[0][0]])
    print(
        f"\nthroughput of {args.model}: {count} photos of 256x256, {torch.get_num_threads()} "
        f"threads, median of {args.repeats} interleaved runs"
    )
    print("| mode | images/s | vs one image per call |")
    print("|---|---|---|")
    for label, _, _ in runs:
        took = statistics.median(times[label])
        print(f"| {label} | {count / took:.1f} | {base / took:.2f}x |")


def panel(model: Estimator, path: Path, size: int) -> None:
    seeds = [HELD_OUT_SEED + 100_000 + i for i in range(len(SCENE_KINDS))]
    rows = []
    for seed, kind in zip(seeds, SCENE_KINDS, strict=True):
        sample = render_batch([seed], size, size, kinds=[kind])[0]
        depth = model.predict(sample.rgb).depth
        gt = np.where(sample.valid, 1.0 / np.maximum(sample.depth, 1e-3), np.nan)
        gap = np.full((size, 4, 3), 255, np.uint8)
        rows.append(np.concatenate([sample.rgb, gap, colorize(gt), gap, colorize(depth)], axis=1))
    image = np.concatenate(
        [np.concatenate([r, np.full((4, r.shape[1], 3), 255, np.uint8)]) for r in rows]
    )
    write_png(path, image)
    print(f"\npanel (photo | ground truth | {model.name}) written to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--max-depth", type=float, default=80.0)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--model", default="depthlens-small")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--panel", type=Path, default=None)
    parser.add_argument("--throughput", type=int, default=0, metavar="N")
    parser.add_argument(
        "--modes", default="torch:fp32,onnxruntime:fp32,onnxruntime:int8,openvino:fp32"
    )
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    if args.throughput:
        throughput(args)
        return
    model = depthlens.load_model(args.model, args.weights, device="cpu")
    quality(model, args.images, args.size, args.max_depth)
    speed(model, args.repeats)
    if args.panel is not None:
        panel(model, args.panel, args.size)


if __name__ == "__main__":
    main()
