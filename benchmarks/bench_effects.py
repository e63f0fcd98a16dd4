"""What each effect costs next to the depth inference it follows.

Every effect runs after a depth prediction, so the natural peer is that prediction:
``depthlens-small``'s end-to-end ``predict`` on the same photo, in the same process
and threads. For each effect the script prints the median time of one render (one
frame for parallax) and its ratio to the inference; for parallax also the frames per
second of a whole clip. A second peer for bokeh is one OpenCV Gaussian blur of the
whole photo at the same largest radius: the cheapest blur there is, with no depth.

    .venv/bin/python benchmarks/bench_effects.py --size 1024x768 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import cv2
import torch

import depthlens
from depthlens.effects import EffectSettings, parallax_animation, render_still
from depthlens.synth.render import render_batch


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: caches, lazy imports, first-call allocations
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1024x768", help="WIDTHxHEIGHT of the photo")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=30, help="parallax clip length")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    scene = render_batch([3_000_000_007], height, width)[0]
    model = depthlens.load_model("depthlens-small", device="cpu")
    result = model.predict(scene.rgb)
    print(f"{width}x{height} photo, torch threads {torch.get_num_threads()}, CPU")

    inference = median_seconds(lambda: model.predict(scene.rgb), args.repeats)
    print(f"{'depthlens-small predict (peer)':40s} {inference * 1e3:8.1f} ms   1.00x")
    settings = {
        "bokeh": EffectSettings(aperture=16.0),
        "stereo (anaglyph)": EffectSettings(layout="anaglyph"),
        "obstacle": EffectSettings(),
        "parallax (one frame)": EffectSettings(frames=args.frames),
    }
    for label, chosen in settings.items():
        name = label.split(" ")[0]
        seconds = median_seconds(
            lambda n=name, s=chosen: render_still(n, scene.rgb, result.depth, result.kind, s, 7),
            args.repeats,
        )
        print(f"{label:40s} {seconds * 1e3:8.1f} ms   {seconds / inference:.2f}x")
    gaussian = median_seconds(
        lambda: cv2.GaussianBlur(scene.rgb, (0, 0), sigmaX=16.0 / 2), args.repeats
    )
    label = "  OpenCV Gaussian blur, no depth"
    print(f"{label:40s} {gaussian * 1e3:8.1f} ms   {gaussian / inference:.2f}x")
    clip_settings = EffectSettings(frames=args.frames, path="circle")
    start = time.perf_counter()
    frames = sum(1 for _ in parallax_animation(scene.rgb, result.depth, result.kind, clip_settings))
    elapsed = time.perf_counter() - start
    print(f"parallax clip: {frames} frames in {elapsed:.2f} s ({frames / elapsed:.1f} frames/s)")


if __name__ == "__main__":
    main()
