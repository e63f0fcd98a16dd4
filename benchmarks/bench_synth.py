"""Synthetic-data throughput: samples/s of ``depthlens.synth`` at 256×256 on this machine.

Usage: ``python benchmarks/bench_synth.py [--size 256] [--samples 96] [--workers N]``

Prints three things, over a fixed list of seeds (the scene mix the seeds choose):

1. one process (``render_batch`` renders on one torch thread): samples/s, per kind, and
   where the time goes: scene building (Python, numpy), intersection (camera, terrain
   and shadow rays), shading (textures, lights, ambient occlusion, sky, tone mapping)
   and camera effects;
2. ``render_batches`` with one single-threaded worker process per core (how training
   and ``depthlens synth --workers`` use a machine): the headline samples/s.

No peer is compared (no other engine makes these samples). The machine's load average
is printed too: on a shared machine, other jobs take cores away; the CPU time per sample
(and the rate it implies per free core) is much less sensitive to them than wall time.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from depthlens.synth.render import (
    SCENE_KINDS,
    build_scene,
    choose_kind,
    render_batches,
    render_scene,
)


def single_process(seeds: list[int], size: int, kinds: tuple[str, ...]) -> None:
    """Render every seed in this process, timing the phases."""
    warm = build_scene(seeds[0], choose_kind(seeds[0], kinds))
    render_scene(warm, size, size, seed=seeds[0])  # first calls build caches
    phases: dict[str, float] = {}
    per_kind: dict[str, list[float]] = {k: [] for k in kinds}
    cpu_start = time.process_time()
    start = time.perf_counter()
    for seed in seeds:
        t0 = time.perf_counter()
        kind = choose_kind(seed, kinds)
        scene = build_scene(seed, kind)
        phases["scene"] = phases.get("scene", 0.0) + time.perf_counter() - t0
        render_scene(scene, size, size, seed=seed, timings=phases)
        per_kind[kind].append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    n = len(seeds)
    print(
        f"  one process, {torch.get_num_threads()} torch thread(s): {n / elapsed:.1f} samples/s "
        f"({1e3 * elapsed / n:.1f} ms/sample wall, {1e3 * cpu / n:.1f} ms CPU: "
        f"{n / cpu:.1f} samples/s per free core)"
    )
    for kind, times in per_kind.items():
        if times:
            print(
                f"    {kind:<10} {len(times):>3} samples  {1e3 * sum(times) / len(times):6.1f} ms"
            )
    total = sum(phases.values())
    for name in ("scene", "intersection", "shading", "effects"):
        value = phases.get(name, 0.0)
        print(f"    {name:<13} {1e3 * value / n:6.1f} ms/sample  {100 * value / total:5.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="image height and width")
    parser.add_argument("--samples", type=int, default=96, help="samples per measurement")
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--kinds", default=",".join(SCENE_KINDS))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    kinds = tuple(args.kinds.split(","))
    seeds = list(range(args.first_seed, args.first_seed + args.samples))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"synth {args.size}x{args.size}, {os.cpu_count()} CPU cores, load average {load}")
    # render_batch renders on one torch thread (see its docstring); time the same.
    torch.set_num_threads(1)
    single_process(seeds, args.size, kinds)

    # Worker processes. They start one after the other (imports take seconds), so the
    # rate is taken in the steady state: over the second half of the batches.
    batch = 4
    arrivals = []
    start = time.perf_counter()
    for samples in render_batches(seeds, args.size, args.size, kinds, batch, args.workers):
        arrivals.append((time.perf_counter(), len(samples)))
    half = len(arrivals) // 2
    span = arrivals[-1][0] - arrivals[half - 1][0]
    count = sum(n for _, n in arrivals[half:])
    print(
        f"  {args.workers} worker processes x 1 thread: {count / span:.1f} samples/s "
        f"(steady state; {len(seeds)} samples in {time.perf_counter() - start:.1f} s "
        "including start-up)"
    )


if __name__ == "__main__":
    main()
