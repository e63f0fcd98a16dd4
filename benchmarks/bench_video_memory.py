"""Peak memory of a Video Depth Anything run against the length of the video.

``depthlens predict VIDEO --model video-depth-anything-small`` streams the video
through the official windowed inference (``models.video_depth_anything.iter_video_depth``:
one 32-frame window held at a time), or with ``--video-mode streaming`` through its
streaming mode (``iter_video_depth_streaming``: 42 frames' cached states), into
``video.stream.predict_video``'s writers; their peak resident memory should not grow
with the number of frames. This script writes
synthetic videos of N frames, runs ``predict_video`` on each in a fresh process (random
weights in the Small layout: memory, not quality) and prints each run's peak RSS
(``ru_maxrss``) and its growth per 100 frames, against the peer: the same frames
predicted as one array (``predict_clip``), which holds every frame and depth.

    .venv/bin/python benchmarks/bench_video_memory.py [--frames 64 256] [--input-size 112]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from depthlens.io.video import VideoWriter
from depthlens.models import video_depth_anything as vda

HEIGHT, WIDTH = 240, 320
# stream: predict_video, windowed; streaming: predict_video, --video-mode streaming;
# array: the peer, every frame and depth in memory
MODES = ("stream", "streaming", "array")

CHILD = """
import json, resource, sys
from functools import partial
import numpy as np
import depthlens
from depthlens.io.video import VideoReader
from depthlens.models import video_depth_anything as vda
from depthlens.video.stream import predict_video

video, weights, out, size, mode = sys.argv[1:6]
estimator = depthlens.load_model("video-depth-anything-small", weights)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if mode in ("stream", "streaming"):  # windowed, or the official streaming mode
    vda.iter_video_depth = partial(vda.iter_video_depth, input_size=int(size))
    vda.iter_video_depth_streaming = partial(vda.iter_video_depth_streaming, input_size=int(size))
    video_mode = "windowed" if mode == "stream" else "streaming"
    frames = predict_video(
        estimator, video, out, lossless="npz", chunk_frames=32, video_mode=video_mode
    ).frames
else:  # the peer: every frame decoded into one array, every depth kept
    with VideoReader(video) as reader:
        clip = np.stack(list(reader))
    frames = len(vda.predict_clip(estimator.network, clip, int(size)))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"frames": frames, "loaded_mb": before / 1024, "peak_mb": peak / 1024}))
"""


def write_video(path: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (HEIGHT, WIDTH + count, 3), dtype=np.uint8)
    with VideoWriter(path, 24.0) as writer:
        for index in range(count):  # a pan across one wide picture
            writer.write(np.ascontiguousarray(base[:, index : index + WIDTH]))


def run(video: Path, weights: Path, out: Path, size: int, mode: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(video), str(weights), str(out), str(size), mode],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[64, 256])
    parser.add_argument(
        "--input-size", type=int, default=112, help="network side (518: as released)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        torch.manual_seed(0)
        weights = root / "video_depth_anything_vits.pth"
        torch.save(vda.build_network(vda.PRESETS["vits"]).state_dict(), weights)
        rows = []
        for count in args.frames:
            video = root / f"pan{count}.mp4"
            write_video(video, count)
            for mode in MODES:
                measured = run(video, weights, root / f"out-{mode}-{count}", args.input_size, mode)
                rows.append((mode, count, measured))
                print(
                    f"{mode:9s} {count:5d} frames  model loaded {measured['loaded_mb']:7.1f} MB"
                    f"  peak {measured['peak_mb']:7.1f} MB",
                    flush=True,
                )
    print(f"\n{HEIGHT}x{WIDTH} frames, network side {args.input_size}, random Small weights")
    for mode in MODES:
        peaks = [(count, m["peak_mb"]) for kind, count, m in rows if kind == mode]
        counts, mbs = np.array(peaks, dtype=np.float64).T
        slope = np.polyfit(counts, mbs, 1)[0] * 100 if len(peaks) > 1 else 0.0
        listed = ", ".join(f"{mb:.0f} MB at {count}" for count, mb in peaks)
        print(f"{mode:9s}: peak {listed} frames; fitted growth {slope:+.1f} MB per 100 frames")


if __name__ == "__main__":
    main()
