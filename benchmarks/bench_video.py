"""Video depth: flicker with and without temporal stabilisation, and memory while streaming.

Usage::

    .venv/bin/python benchmarks/bench_video.py [--size 128x96] [--flicker-frames 40] \\
        [--real-frames 24] [--short 100] [--long 2000] [--memory-model stand-in]
    .venv/bin/python benchmarks/bench_video.py --skip-flicker --memory-model depthlens-small \\
        --long 1000

Prints two things:

1. **Flicker** (``depthlens.video.flicker``: mean over consecutive frames of the mean
   absolute change divided by the earlier frame's spread; 0 = perfectly steady) of
   ``predict_video``'s lossless output, with and without ``DepthStabilizer``, on a still
   synthetic scene (``depthlens.synth``) written as an H.264 video whose frames carry
   ±2 levels of sensor-like noise (a camera on a tripod):

   - a *jittering* stand-in model: the scene's true disparity times a random scale in
     [0.7, 1.3] plus a random shift of up to half its spread, plus 1 % noise, per
     frame (what frame-by-frame relative models do, exaggerated);
   - the real bundled network (``depthlens.load_model("depthlens-small")``, CPU), on
     that video and on one whose frames also get a random ±4 % brightness gain (auto
     exposure hunting). Its stabilised run is the unstabilised prediction passed
     through ``DepthStabilizer`` with the decoded frames, exactly what
     ``predict_video(stabilize=True)`` computes, so the network runs once per video.

2. **Peak memory** of ``predict_video`` streaming over a short and a long video (a
   panning synthetic scene, generated frame by frame beforehand), with PNG16 and
   with NPZ output, each run in a fresh child process so peaks don't mix (peak RSS:
   see ``_peak_kib``). "after imports" is the child's peak before the call (torch,
   and the model if any), "growth" what streaming added on top. By default the model
   is a cheap stand-in (depth from brightness), as the bundled network takes 0.05-0.6
   s a frame on two busy cores (minutes for 2000 frames) and memory use does not
   depend on what computes the depth; ``--memory-model depthlens-small`` runs the
   real network instead. The long/short ratio of the peaks is the point: about 1 means
   memory does not grow with length. (The ffmpeg processes stream too; their memory
   is their own and not counted.)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Literal

import numpy as np

from depthlens.io.video import VideoReader, VideoWriter
from depthlens.models.spec import DepthKind
from depthlens.synth.render import render_batch
from depthlens.video import DepthStabilizer, flicker, predict_video
from depthlens.video.stream import DepthPredictor

SEED = 7
Lossless = Literal["png16", "npz"]
LOSSLESS: tuple[Lossless, ...] = ("png16", "npz")


class JitterModel:
    """Stand-in model: a fixed disparity map, rescaled and shifted at random per frame."""

    name = "jitter"
    kind: DepthKind = "relative_inverse"

    def __init__(self, disparity: np.ndarray, seed: int = 0) -> None:
        self.disparity = disparity
        self.spread = float(np.abs(disparity - np.median(disparity)).mean())
        self.rng = np.random.default_rng(seed)

    def predict_images(self, images: Sequence, batch_size: int = 4) -> list[SimpleNamespace]:
        out = []
        for _ in images:
            scale = self.rng.uniform(0.7, 1.3)
            shift = self.rng.uniform(-0.5, 0.5) * self.spread
            noise = self.rng.normal(0.0, 0.01 * self.spread, self.disparity.shape)
            depth = (scale * self.disparity + shift + noise).astype(np.float32)
            out.append(SimpleNamespace(depth=depth))
        return out


class BrightnessModel:
    """Stand-in model for the memory runs: disparity = 0.2 + brightness (0..1)."""

    name = "brightness"
    kind: DepthKind = "relative_inverse"

    def predict_images(self, images: Sequence, batch_size: int = 4) -> list[SimpleNamespace]:
        return [
            SimpleNamespace(depth=(0.2 + image.rgb.mean(axis=2) / 255.0).astype(np.float32))
            for image in images
        ]


def still_video(
    path: Path, frames: int, height: int, width: int, exposure: float = 0.0
) -> np.ndarray:
    """Write a still synthetic scene with ±2 levels of noise per frame (and a random
    brightness gain in [1 − exposure, 1 + exposure] per frame); its disparity."""
    sample = render_batch([SEED], height, width)[0]
    rng = np.random.default_rng(1)
    with VideoWriter(path, fps=25) as video:
        for _ in range(frames):
            gain = rng.uniform(1.0 - exposure, 1.0 + exposure)
            noise = rng.integers(-2, 3, sample.rgb.shape)
            frame = sample.rgb.astype(np.float32) * gain + noise
            video.write(np.clip(np.rint(frame), 0, 255).astype(np.uint8))
    return np.where(sample.valid, 1.0 / np.maximum(sample.depth, 1e-3), 0.0).astype(np.float32)


def npz_depths(out_dir: Path, name: str) -> list[np.ndarray]:
    """Every depth map of ``predict_video``'s NPZ chunks, in order."""
    info = json.loads((out_dir / f"{name}-depth.json").read_text())
    depths: list[np.ndarray] = []
    for file in info["lossless"]["files"]:
        with np.load(out_dir / file) as chunk:
            depths.extend(chunk["depth"])
    return depths


def flicker_section(height: int, width: int, frames: int, real_frames: int) -> None:
    print(f"== flicker on a still scene ({width}x{height}, ±2 levels of noise per frame)")
    print(f"{'model':<34}{'frames':>7}{'unstabilised':>14}{'stabilised':>12}{'ratio':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        video = folder / "still.mp4"
        disparity = still_video(video, frames, height, width)
        runs = {}
        for stabilize in (False, True):
            out = folder / f"jitter-{stabilize}"
            predict_video(JitterModel(disparity), video, out, stabilize=stabilize, lossless="npz")
            runs[stabilize] = flicker(npz_depths(out, "still"), "relative_inverse")
        _row("jittering stand-in (relative)", frames, runs[False], runs[True])

        import depthlens

        model = depthlens.load_model("depthlens-small", device="cpu")
        for exposure in (0.0, 0.04):
            name = f"still-{exposure}"
            clip = folder / f"{name}.mp4"
            still_video(clip, real_frames, height, width, exposure)
            out = folder / name
            started = time.perf_counter()
            predict_video(model, clip, out, stabilize=False, lossless="npz")
            seconds = time.perf_counter() - started
            raw = npz_depths(out, name)
            stabilizer = DepthStabilizer(model.kind)
            with VideoReader(clip) as reader:
                stable = [stabilizer(d, f) for d, f in zip(raw, reader, strict=True)]
            label = "depthlens-small" + (f", ±{exposure:.0%} exposure" if exposure else "")
            _row(label, real_frames, flicker(raw, model.kind), flicker(stable, model.kind))
        print(f"  (depthlens-small on CPU: {seconds / real_frames:.2f} s per frame end to end)")


def _row(label: str, frames: int, raw: float, stable: float) -> None:
    ratio = stable / raw if raw > 0 else float("nan")
    print(f"{label:<34}{frames:>7}{raw:>14.4f}{stable:>12.4f}{ratio:>8.3f}")


def pan_video(path: Path, frames: int, height: int, width: int) -> None:
    """Write a video of ``frames`` frames panning across a wide synthetic scene."""
    wide = render_batch([SEED], height, 2 * width)[0].rgb
    with VideoWriter(path, fps=25) as writer:
        for k in range(frames):
            x = int((width - 1) * (0.5 - 0.5 * np.cos(2 * np.pi * k / 200)))
            writer.write(np.ascontiguousarray(wide[:, x : x + width]))


def child(video: Path, lossless: Lossless, model_name: str) -> None:
    """Stream predict_video over ``video`` in this fresh process; print one JSON line:
    the peak RSS before and after, and seconds."""
    model: DepthPredictor
    if model_name == "stand-in":
        model = BrightnessModel()
    else:
        import depthlens

        model = depthlens.load_model(model_name, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        before = _peak_kib()
        started = time.perf_counter()
        result = predict_video(model, video, Path(tmp), lossless=lossless)
        seconds = time.perf_counter() - started
        row = {
            "frames": result.frames,
            "before_kib": before,
            "peak_kib": _peak_kib(),
            "seconds": seconds,
        }
    print(json.dumps(row))


def _peak_kib() -> int:
    """This process's peak resident memory, KiB.

    Linux: ``VmHWM`` of /proc/self/status. ``ru_maxrss`` would be the same number but
    for one quirk: the kernel folds in the RSS the process had *before* its exec,
    i.e. the parent's whole RSS copied at fork (CPython forks, not vforks, here), so a
    child of a 500 MB parent reports at least 500 MB. Elsewhere: ``ru_maxrss``.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # macOS reports bytes


def memory_section(height: int, width: int, lengths: Sequence[int], model: str) -> None:
    print(f"\n== peak memory streaming predict_video ({width}x{height}, model: {model})")
    print(
        f"{'lossless':<9}{'frames':>7}{'after imports':>15}{'peak RSS':>11}{'growth':>10}"
        f"{'ms/frame':>10}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        videos = {n: Path(tmp) / f"pan-{n}.mp4" for n in lengths}
        for frames, path in videos.items():
            pan_video(path, frames, height, width)
        for lossless in LOSSLESS:
            peaks = []
            for path in videos.values():
                command = [sys.executable, __file__, "--child", str(path), "--lossless", lossless]
                command += ["--memory-model", model]
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                row = json.loads(done.stdout.strip().splitlines()[-1])
                peaks.append(row["peak_kib"])
                print(
                    f"{lossless:<9}{row['frames']:>7}{_mib(row['before_kib']):>15}"
                    f"{_mib(row['peak_kib']):>11}"
                    f"{_mib(row['peak_kib'] - row['before_kib']):>10}"
                    f"{1000 * row['seconds'] / row['frames']:>10.1f}"
                )
            ratio = peaks[-1] / peaks[0]
            print(f"{'':<9}peak RSS, {lengths[-1]} / {lengths[0]} frames: {ratio:.3f}")


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="128x96", help="frame WIDTHxHEIGHT")
    parser.add_argument("--flicker-frames", type=int, default=40)
    parser.add_argument("--real-frames", type=int, default=24)
    parser.add_argument("--short", type=int, default=100)
    parser.add_argument("--long", type=int, default=2000)
    parser.add_argument(
        "--memory-model",
        default="stand-in",
        help="model of the memory runs: stand-in (default) or a zoo name, e.g. depthlens-small",
    )
    parser.add_argument("--skip-flicker", action="store_true", help="only the memory runs")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--lossless", default="png16", choices=LOSSLESS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.child is not None:
        child(args.child, args.lossless, args.memory_model)
        return
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"{os.cpu_count()} cores, load average {load}\n")
    if not args.skip_flicker:
        flicker_section(height, width, args.flicker_frames, args.real_frames)
    memory_section(height, width, (args.short, args.long), args.memory_model)


if __name__ == "__main__":
    main()
