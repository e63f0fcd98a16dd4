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
what they mean for a room's depths.

    .venv/bin/python benchmarks/bench_precision.py --images 24 --size 320
"""

from __future__ import annotations

import argparse
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
    "openvino:fp32",
    "openvino:bf16",
    "openvino:int8",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--size", type=int, default=320, help="square scenes, pixels")
    parser.add_argument("--modes", default=",".join(REDUCED), help="backend:precision,...")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
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
            reference = _predict(weights, "torch", "fp32", images)
            print(f"\n{label}: vs torch fp32")
            for backend, precision in modes:
                reduced = _predict(weights, backend, precision, images)
                print(f"  {backend + ':' + precision:18s} {_compare(reduced, reference)}")


def _predict(weights: Path, backend: str, precision: str, images: list[Image]) -> list[np.ndarray]:
    model = weights if weights.is_dir() else "depthlens-small"
    estimator = depthlens.load_model(
        model,
        None if weights.is_dir() else weights,
        "cpu",
        backend=backend,
        precision=precision,
    )
    return [result.depth for result in estimator.predict_images(images)]


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
