"""End-to-end predict: depthlens on each backend and precision vs
transformers.pipeline("depth-estimation").

All run the same Depth-Anything-V2-Small-shaped network with the same random weights,
on the same 640x480 image, with the same thread count, in the same process, timed in
alternation. Each timing is one whole call (preprocessing, forward, resize back to
480x640). Prints each median, its speed-up over the pipeline (pipeline / depthlens:
above 1 means depthlens is faster), the share of the machine's practical peak it
reaches (the network's FLOPs, counted by torch, over the whole call's time), and how
far its output is from depthlens' torch fp32 as a share of the output range.

The outputs are not expected to be identical: depthlens reproduces the official
Depth Anything V2 pipeline (OpenCV bicubic resize, the official DINOv2 position-embedding
interpolation, bilinear align_corners=True back to the image size), while the pipeline
uses Pillow's bicubic resize, transformers' own interpolation and a bicubic resize back.

    .venv/bin/python benchmarks/bench_predict.py --repeats 10 --threads 2
    .venv/bin/python benchmarks/bench_predict.py --modes torch:fp32,onnxruntime:int8

``--peak-fp32`` and ``--peak-bf16`` (GFLOP/s) default to this machine's measured
practical peaks (2 Zen 5 cores: oneDNN/MLAS about 460 fp32, 900 bf16).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import depthlens
from depthlens.models import depth_anything
from depthlens.models.estimator import preprocess
from depthlens.models.registry import IMAGENET_MEAN, IMAGENET_STD, get_spec
from depthlens.models.weights import save_converted
from depthlens.synth.demo import demo_scene

MODES = (
    "torch:fp32",
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


def interleaved_medians(runs: list[Callable[[], object]], repeats: int, warmup: int) -> list[float]:
    """Median seconds of each callable, timed in alternation so drift hits all alike."""
    for _ in range(warmup):
        for run in runs:
            run()
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for run, bucket in zip(runs, times, strict=True):
            start = time.perf_counter()
            run()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(bucket) for bucket in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--modes", default=",".join(MODES), help="backend:precision,...")
    parser.add_argument("--peak-fp32", type=float, default=460.0, help="GFLOP/s")
    parser.add_argument("--peak-bf16", type=float, default=900.0, help="GFLOP/s")
    args = parser.parse_args()
    modes = [tuple(mode.split(":")) for mode in args.modes.split(",")]
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from transformers import DPTImageProcessorPil, pipeline

    spec = get_spec("depth-anything-v2-small")
    network = depth_anything.build_network(depth_anything.PRESETS[spec.variant])
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_converted(spec, network, Path(tmp) / "ours")
        ours = depthlens.load_model(folder, device="cpu")
        variants = {
            mode: depthlens.load_model(folder, device="cpu", backend=mode[0], precision=mode[1])
            for mode in modes
        }
        hf_folder = Path(tmp) / "hf"
        network.model.save_pretrained(hf_folder)
        # The preprocessing of the Hub's Depth-Anything-V2-Small-hf preprocessor_config.json.
        processor = DPTImageProcessorPil(
            do_resize=True,
            size={"height": 518, "width": 518},
            keep_aspect_ratio=True,
            ensure_multiple_of=14,
            resample=Image.Resampling.BICUBIC,
            do_normalize=True,
            image_mean=list(IMAGENET_MEAN),
            image_std=list(IMAGENET_STD),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peer = pipeline(
                "depth-estimation", model=str(hf_folder), image_processor=processor, device="cpu"
            )

    rgb = demo_scene(480, 640)
    pil = Image.fromarray(rgb)
    ours_depth = ours.predict(rgb).depth
    peer_depth = peer(pil)["predicted_depth"].squeeze().numpy()
    assert ours_depth.shape == peer_depth.shape == (480, 640), (ours_depth.shape, peer_depth.shape)

    # Where the outputs part: the preprocessing (OpenCV vs Pillow bicubic resize), and the
    # network on one identical input (official vs transformers' DINOv2 position-embedding
    # interpolation; the only change depthlens makes to transformers' module).
    peer_input = processor(images=pil, return_tensors="pt")["pixel_values"]
    ours_input = torch.from_numpy(preprocess(rgb, spec.input))[None]
    with torch.inference_mode():
        ours_net = ours.network(peer_input)
        peer_net = peer.model(pixel_values=peer_input).predicted_depth

    outputs = {mode: model.predict(rgb).depth for mode, model in variants.items()}
    flops = network_flops(ours, ours_input)
    times = interleaved_medians(
        [lambda: peer(pil), *(lambda m=m: m.predict(rgb) for m in variants.values())],
        args.repeats,
        args.warmup,
    )
    peer_s, mode_s = times[0], dict(zip(variants, times[1:], strict=True))
    print(
        f"image 640x480, network input 518x686 ({flops / 1e9:.1f} GFLOP), threads "
        f"{args.threads}, repeats {args.repeats}"
    )
    print(f"{'transformers.pipeline':33s} median {peer_s * 1000:8.1f} ms")
    for mode, seconds in mode_s.items():
        peak = args.peak_fp32 if mode[1] == "fp32" else args.peak_bf16
        peak_name = "fp32" if mode[1] == "fp32" else "bf16/int8"
        share = flops / seconds / (peak * 1e9)
        print(
            f"{'depthlens ' + ':'.join(mode):33s} median {seconds * 1000:8.1f} ms  "
            f"speed-up {peer_s / seconds:5.2f}x  {share:6.1%} of the {peak_name} peak  "
            f"vs torch fp32: {relative_difference(outputs[mode], ours_depth)}"
        )
    print("differences from the pipeline, as a share of the output range:")
    print(f"  end to end               {relative_difference(ours_depth, peer_depth)}")
    print(f"  network, same input      {relative_difference(ours_net, peer_net)}")
    print(
        f"  network input (OpenCV vs Pillow resize): max |difference| "
        f"{(ours_input - peer_input).abs().max().item():.3f} in normalised units"
    )


def network_flops(estimator: depthlens.Estimator, batch: torch.Tensor) -> float:
    """Floating-point operations of one forward pass (torch's count; a multiply-add is 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        estimator.network(batch)
    return float(counter.get_total_flops())


def relative_difference(ours: np.ndarray | torch.Tensor, peer: np.ndarray | torch.Tensor) -> str:
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(peer, dtype=np.float64)
    span = b.max() - b.min()
    diff = np.abs(a - b)
    return f"max {diff.max() / span:.2e}, mean {diff.mean() / span:.2e}"


if __name__ == "__main__":
    main()
