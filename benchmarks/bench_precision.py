"""How far each reduced backend/precision is from depthlens' torch fp32, on held-out
synthetic scenes (seeds that training never draws).

Two networks: the bundled ``depthlens-small`` (trained weights: the deviations a user
of that model sees) and a Depth-Anything-V2-Small-shaped network with random weights
(the official weights cannot be downloaded here; a random ViT's activations are not a
trained one's, so its numbers say how the arithmetic behaves, not the final quality).
For every image: the largest and the mean absolute difference as a share of the fp32
output's range, and the δ1 agreement (share of pixels within a factor 1.25) after the
reduced output is fitted to the fp32 one by scale and shift (least squares), the way
relative depth is scored, with the fp32 output mapped onto [1, 10] so that ratios mean
what they mean for a room's depths. With ``--repeats``, each mode's whole ``predict`` of
one scene is also timed, all modes in alternation (``bench_predict.interleaved_medians``)
so that a busy machine slows them alike, and each median is given as a speed-up over
the same backend's fp32 (when that is among the modes) and over torch fp32.

``int8-static`` calibrates on scenes of its own (``export.calibration_inputs``), never
these.

    .venv/bin/python benchmarks/bench_precision.py --images 24 --size 320
    .venv/bin/python benchmarks/bench_precision.py --images 8 --size 256 --repeats 7 \
        --modes onnxruntime:fp32,onnxruntime:int8,onnxruntime:int8-static
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import depthlens
from depthlens.io.images import Image
from depthlens.models import depth_anything
from depthlens.models.registry import get_spec
from depthlens.models.weights import save_converted
from depthlens.synth.render import render_batch

HELD_OUT_SEED = 3_000_000_000  # as benchmarks/bench_bundled.py: never drawn in training
REDUCED = (
    "torch:bf16",
    "torch:int8",
    "onnxruntime:fp32",
    "onnxruntime:int8",
    "onnxruntime:int8-static",
    "openvino:fp32",
    "openvino:bf16",
    "openvino:int8",
    "openvino:int8-static",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--size", type=int, default=320, help="square scenes, pixels")
    parser.add_argument("--modes", default=",".join(REDUCED), help="backend:precision,...")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=0, help="time each mode this often")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    modes = [tuple(mode.split(":")) for mode in args.modes.split(",")]
    samples = render_batch([HELD_OUT_SEED + i for i in range(args.images)], args.size, args.size)
    images = [Image(rgb=s.rgb, camera=s.camera, source=str(s.seed)) for s in samples]
    print(f"{args.images} held-out synthetic scenes, {args.size}x{args.size}")
    with tempfile.TemporaryDirectory() as tmp:
        spec = get_spec("depth-anything-v2-small")
        random_vit = depth_anything.build_network(depth_anything.PRESETS[spec.variant])
        networks = {
            "depthlens-small (trained)": Path(depthlens.load_model("depthlens-small").weights),
            "DA-V2-S shape (random)": save_converted(spec, random_vit, Path(tmp) / "da"),
        }
        for label, weights in networks.items():
            reference_model = _load(weights, "torch", "fp32")
            reference = _predict(reference_model, images)
            print(f"\n{label}: vs torch fp32")
            loaded = {("torch", "fp32"): reference_model}
            for backend, precision in modes:
                loaded[backend, precision] = _load(weights, backend, precision)
                reduced = _predict(loaded[backend, precision], images)
                print(f"  {backend + ':' + precision:24s} {_compare(reduced, reference)}")
            if args.repeats > 0:
                _time(loaded, images[0], args.repeats)


def _load(weights: Path, backend: str, precision: str) -> depthlens.Estimator:
    model = weights if weights.is_dir() else "depthlens-small"
    return depthlens.load_model(
        model,
        None if weights.is_dir() else weights,
        "cpu",
        backend=backend,
        precision=precision,
    )


def _predict(estimator: depthlens.Estimator, images: list[Image]) -> list[np.ndarray]:
    return [result.depth for result in estimator.predict_images(images)]


def _time(loaded: dict[tuple[str, str], depthlens.Estimator], image: Image, repeats: int) -> None:
    """Each mode's median ``predict`` of ``image``, timed in alternation."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_predict import interleaved_medians

    runs = [lambda model=model: model.predict_images([image]) for model in loaded.values()]
    medians = dict(zip(loaded, interleaved_medians(runs, repeats, warmup=1), strict=True))
    print(f"  one {image.width}x{image.height} scene, median of {repeats} in alternation:")
    for (backend, precision), seconds in medians.items():
        same = medians.get((backend, "fp32"))
        versus = f"  {same / seconds:5.2f}x {backend} fp32" if same and backend != "torch" else ""
        print(
            f"  {backend + ':' + precision:24s} {seconds * 1000:8.1f} ms  "
            f"{medians['torch', 'fp32'] / seconds:5.2f}x torch fp32{versus}"
        )


def _compare(reduced: list[np.ndarray], reference: list[np.ndarray]) -> str:
    worst, means, agreement = 0.0, [], []
    for ours, ref in zip(reduced, reference, strict=True):
        a, b = ours.astype(np.float64).ravel(), ref.astype(np.float64).ravel()
        span = max(b.max() - b.min(), 1e-12)
        diff = np.abs(a - b) / span
        worst, means = max(worst, float(diff.max())), [*means, float(diff.mean())]
        scale, shift = np.linalg.lstsq(np.stack([a, np.ones_like(a)], 1), b, rcond=None)[0]
        # δ1 needs positive values of a known spread: the reference is mapped linearly
        # onto [1, 10] (a tenfold range, like a room's depths) and the fit alongside it
        fitted = 1 + 9 * (scale * a + shift - b.min()) / span
        target = 1 + 9 * (b - b.min()) / span
        fitted = np.maximum(fitted, 1e-6)
        ratio = np.maximum(fitted / target, target / fitted)
        agreement.append(float(np.mean(ratio < 1.25)))
    return (
        f"max {worst:.2e}  mean {np.mean(means):.2e} of the range  "
        f"δ1 agreement {np.mean(agreement):.4f} (worst image {min(agreement):.4f})"
    )


if __name__ == "__main__":
    main()
