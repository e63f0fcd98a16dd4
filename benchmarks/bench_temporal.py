"""Temporal consistency (issue 19): accuracy and TAE of per-frame vs stabilised depth.

Usage::

    .venv/bin/python benchmarks/bench_temporal.py [--frames 24] [--size 256x192] [--seed 11] \\
        [--vda-side 252]

Two synthetic clips of one indoor scene (``depthlens.synth``, exact z-depth and camera
poses from the renderer):

- **dolly**: the camera moves forward 2 cm and turns 0.4° about the vertical per frame;
- **tripod**: a still camera, each frame with ±2 levels of sensor noise and a random
  ±4 % brightness gain (auto exposure hunting), so a per-frame model sees different
  inputs.

Rows per clip: the exact disparity (a floor: TAE's pixel rounding on slanted surfaces),
the exact disparity times a per-frame random scale in [0.9, 1.1] (a known jitter), the
bundled network ``depthlens-small`` run frame by frame, the same predictions
passed through ``depthlens.video.DepthStabilizer`` with the frames (what
``predict_video(stabilize=True)`` computes), and Video Depth Anything Small's
architecture with seeded random weights (nothing can be downloaded here: what its
windows and its streaming cache do, not its quality) at network side ``--vda-side``,
windowed and streaming.

Columns (``depthlens.eval.temporal``): AbsRel and δ1 after ONE disparity scale and
shift fitted over the whole clip (Video Depth Anything's protocol, max depth 10 m);
AbsRel when each frame gets its own fit instead (for reference: the gap is the part
of the error that is drift between frames); TAE in percent (VDA's temporal alignment
error: consecutive frames reprojected with the true poses); and, on the tripod clip,
the static flicker (mean per-pixel temporal std / mean of the aligned depth).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace

import numpy as np
import torch

from depthlens.eval.temporal import (
    align_video_disparity,
    static_flicker,
    temporal_alignment_error,
    video_depth_metrics,
)
from depthlens.geometry.camera import Camera
from depthlens.synth.render import build_scene, choose_kind, render_scene
from depthlens.synth.scene import CameraPose, rot_y
from depthlens.video import DepthStabilizer

MAX_DEPTH = 10.0
STEP_M = 0.02
TURN_DEG = 0.4


def _pose_matrix(pose: CameraPose) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = pose.rotation
    matrix[:3, 3] = pose.position
    return matrix


def dolly_clip(
    seed: int, frames: int, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Camera]:
    """(T, H, W, 3) uint8 frames, (T, H, W) z-depth (0 invalid), (T, 4, 4) poses, camera."""
    scene = build_scene(seed, choose_kind(seed))
    base = scene.pose
    forward = base.rotation[:, 2]
    rgbs, depths, poses = [], [], []
    camera = None
    noise = np.random.default_rng(1)
    for k in range(frames):
        pose = CameraPose(
            rotation=rot_y(math.radians(TURN_DEG * k)) @ base.rotation,
            position=base.position + STEP_M * k * forward,
            hfov_deg=base.hfov_deg,
            principal_offset=base.principal_offset,
        )
        sample = render_scene(replace(scene, pose=pose), height, width, seed=seed)
        rgb = sample.rgb.astype(np.int16) + noise.integers(-2, 3, sample.rgb.shape)
        rgbs.append(np.clip(rgb, 0, 255).astype(np.uint8))
        depths.append(np.where(sample.valid, sample.depth, 0.0))
        poses.append(_pose_matrix(pose))
        camera = sample.camera
    assert camera is not None
    return np.stack(rgbs), np.stack(depths), np.stack(poses), camera


def tripod_clip(
    seed: int, frames: int, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Camera]:
    """The same scene from a still camera, with per-frame noise and exposure gain."""
    scene = build_scene(seed, choose_kind(seed))
    sample = render_scene(scene, height, width, seed=seed)
    rng = np.random.default_rng(2)
    rgbs = []
    for _ in range(frames):
        gain = rng.uniform(0.96, 1.04)
        frame = sample.rgb.astype(np.float64) * gain + rng.integers(-2, 3, sample.rgb.shape)
        rgbs.append(np.clip(np.rint(frame), 0, 255).astype(np.uint8))
    depth = np.where(sample.valid, sample.depth, 0.0)
    poses = np.stack([_pose_matrix(scene.pose)] * frames)
    return np.stack(rgbs), np.stack([depth] * frames), poses, sample.camera


def score(
    disparity: np.ndarray, gt: np.ndarray, poses: np.ndarray, camera: Camera, still: bool
) -> dict[str, float]:
    aligned = align_video_disparity(disparity, gt, MAX_DEPTH)
    row = video_depth_metrics(aligned.depth, gt, aligned.valid)
    per_frame = []
    for t in range(len(gt)):
        one = align_video_disparity(disparity[t : t + 1], gt[t : t + 1], MAX_DEPTH)
        per_frame.append(video_depth_metrics(one.depth, gt[t : t + 1], one.valid)["abs_rel"])
    row["abs_rel_frame_fit"] = float(np.mean(per_frame))
    row["tae"] = temporal_alignment_error(aligned.depth, poses, camera)
    row["flicker"] = static_flicker(aligned.depth, aligned.valid) if still else math.nan
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", default="256x192", help="WIDTHxHEIGHT")
    parser.add_argument("--seed", type=int, default=11, help="scene seed (11: indoor)")
    parser.add_argument(
        "--vda-side",
        type=int,
        default=252,
        help="Video Depth Anything's network side (518: as released)",
    )
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    import depthlens
    from depthlens.models import video_depth_anything as vda

    model = depthlens.load_model("depthlens-small", device="cpu")
    # Video Depth Anything Small's architecture with seeded random weights (no weights
    # can be downloaded here): what its windows and streaming cache do to consistency,
    # not its quality.
    torch.manual_seed(0)
    video_network = vda.build_network(vda.PRESETS["vits"]).eval()
    started = time.perf_counter()
    clips = {
        "dolly": dolly_clip(args.seed, args.frames, height, width),
        "tripod": tripod_clip(args.seed, args.frames, height, width),
    }
    render_s = time.perf_counter() - started
    print(
        f"== {args.frames} frames, {width}x{height}, scene seed {args.seed} "
        f"({choose_kind(args.seed)}), whole-clip disparity alignment, max depth {MAX_DEPTH} m"
    )
    header = (
        f"{'clip':<8}{'row':<32}{'AbsRel':>8}{'δ1':>7}{'AbsRel/frame-fit':>18}"
        f"{'TAE %':>8}{'flicker':>9}"
    )
    print(header)
    predict_s = 0.0
    jitter = np.random.default_rng(3)
    for name, (rgbs, gt, poses, camera) in clips.items():
        still = name == "tripod"
        exact = np.where(gt > 0, 1.0 / np.maximum(gt, 1e-6), 0.0)
        k = jitter.uniform(0.9, 1.1, len(gt))[:, None, None]
        t0 = time.perf_counter()
        raw = np.stack([model.predict(rgb).depth for rgb in rgbs]).astype(np.float64)
        predict_s += time.perf_counter() - t0
        stabilizer = DepthStabilizer(model.kind)
        stable = np.stack(
            [stabilizer(d.astype(np.float32), f) for d, f in zip(raw, rgbs, strict=True)]
        )
        with torch.inference_mode():
            windowed = vda.predict_clip(video_network, rgbs, args.vda_side)
            streamed = np.stack(
                list(vda.iter_video_depth_streaming(video_network, rgbs, args.vda_side))
            )
        rows = {
            "exact depth": exact,
            "exact, per-frame scale ±10 %": exact * k,
            "depthlens-small, per frame": raw,
            "depthlens-small, stabilised": stable.astype(np.float64),
            "VDA-S random, windowed": windowed.astype(np.float64),
            "VDA-S random, streaming": streamed.astype(np.float64),
        }
        for label, disparity in rows.items():
            r = score(disparity, gt, poses, camera, still)
            print(
                f"{name:<8}{label:<32}{r['abs_rel']:>8.4f}{r['delta1']:>7.3f}"
                f"{r['abs_rel_frame_fit']:>18.4f}{r['tae']:>8.3f}{r['flicker']:>9.4f}"
            )
    frames = sum(len(c[1]) for c in clips.values())
    print(
        f"(render {render_s:.1f} s; depthlens-small on CPU {predict_s / frames:.2f} s per frame; "
        f"total {time.perf_counter() - started:.1f} s)"
    )


if __name__ == "__main__":
    main()
