"""The web service under load: depthlens serve vs Estimator.predict called directly.

Starts the app in this process (uvicorn in a thread, on a free loopback port) with
depthlens-small and posts a rendered street photo (PNG, --size pixels wide, 4:3):

1. Throughput: --clients concurrent clients, each on its own keep-alive connection,
   post --requests photos in all (or stop at --duration seconds). Prints requests/s,
   p50/p95 latency and the process's peak RSS (server and clients together), then the
   named peer: as many ``Estimator.predict`` calls on the same PNG bytes in a plain
   loop, and the ratio of the two wall times (above 1: what serving costs on top of
   decoding and inference; the server also encodes --format and speaks HTTP). The two
   alternate in --rounds rounds, so that other load on the machine hits both alike.
2. Overload: 4 × (workers + queue) requests at once, each on a new connection. Every
   one must end in 200 or 503 (busy) within --timeout seconds: any other status, a
   transport error or a timeout is a failure, and the script exits 1.

    .venv/bin/python benchmarks/bench_serve.py --workers 1 --clients 4 --requests 64 --size 256
"""

from __future__ import annotations

import argparse
import io
import itertools
import resource
import socket
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass

import httpx
import numpy as np
import torch
import uvicorn
from fastapi import FastAPI
from PIL import Image

import depthlens
from depthlens.serve import FORMATS, ServeSettings, create_app
from depthlens.synth.demo import demo_scene

MODEL = "depthlens-small"


@dataclass(frozen=True)
class Outcome:
    """One request: its status (None when it raised), seconds taken, and the error."""

    status: int | None
    seconds: float
    error: str = ""


def start_server(app: FastAPI) -> tuple[uvicorn.Server, threading.Thread, str]:
    """Run ``app`` under uvicorn in a daemon thread on a free loopback port; its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SystemExit("the server did not start")
        time.sleep(0.01)
    host, port = sock.getsockname()
    return server, thread, f"http://{host}:{port}"


def post(client: httpx.Client, url: str, photo: bytes, fmt: str) -> Outcome:
    """POST the photo once; never raises."""
    start = time.perf_counter()
    try:
        response = client.post(
            f"{url}/v1/depth",
            files={"image": ("street.png", photo, "image/png")},
            data={"format": fmt},
        )
    except httpx.HTTPError as exc:
        return Outcome(None, time.perf_counter() - start, f"{type(exc).__name__}: {exc}")
    return Outcome(response.status_code, time.perf_counter() - start)


def throughput(
    url: str, photo: bytes, fmt: str, clients: int, requests: int, duration: float, timeout: float
) -> tuple[list[Outcome], float]:
    """``clients`` closed-loop clients share ``requests`` posts; outcomes and wall seconds."""
    tickets = itertools.count()
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def client_loop() -> None:
        with httpx.Client(timeout=timeout) as client:
            while next(tickets) < requests and time.monotonic() < deadline:
                outcome = post(client, url, photo, fmt)
                with lock:
                    outcomes.append(outcome)

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes, time.perf_counter() - start


def burst(url: str, photo: bytes, fmt: str, count: int, timeout: float) -> list[Outcome]:
    """``count`` requests released together, each on its own connection."""
    barrier = threading.Barrier(count)
    outcomes: list[Outcome | None] = [None] * count

    def one(index: int) -> None:
        with httpx.Client(timeout=timeout) as client:
            barrier.wait()
            outcomes[index] = post(client, url, photo, fmt)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 30)  # a thread still alive here is a hung request
    return [o if o is not None else Outcome(None, timeout, "hung") for o in outcomes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1, help="inference threads")
    parser.add_argument("--queue-size", type=int, default=None, help="default: 4 × workers")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients, phase 1")
    parser.add_argument("--requests", type=int, default=64, help="requests in phase 1")
    parser.add_argument("--rounds", type=int, default=4, help="phase 1 serve/direct rounds")
    parser.add_argument("--duration", type=float, default=120.0, help="phase 1 time cap (s)")
    parser.add_argument("--size", type=int, default=256, help="photo width in pixels (4:3)")
    parser.add_argument("--format", choices=FORMATS, default="color", dest="fmt")
    parser.add_argument("--timeout", type=float, default=60.0, help="per request (s)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    rgb = demo_scene(args.size * 3 // 4, args.size)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    photo = buffer.getvalue()
    settings = ServeSettings(
        models=(MODEL,), device=args.device, workers=args.workers, queue_size=args.queue_size
    )
    capacity = settings.workers + settings.waiting_limit
    print(
        f"{MODEL} on {args.device}, torch threads {torch.get_num_threads()}, "
        f"{rgb.shape[1]}x{rgb.shape[0]} PNG ({len(photo) / 1e3:.0f} kB), format {args.fmt}; "
        f"workers {settings.workers}, queue {settings.waiting_limit}, clients {args.clients}"
    )

    estimator = depthlens.load_model(MODEL, device=args.device)  # the server's, cached
    server, thread, url = start_server(create_app(settings))
    try:
        # Warm-up for both.
        throughput(url, photo, args.fmt, args.clients, 2 * args.clients, 60, args.timeout)
        estimator.predict(photo)
        outcomes: list[Outcome] = []
        elapsed = direct = 0.0
        deadline = time.monotonic() + args.duration
        # Rounds alternate serving and direct calls, so that load from elsewhere on the
        # machine weighs on both alike.
        for _ in range(args.rounds):
            served, seconds = throughput(
                url,
                photo,
                args.fmt,
                args.clients,
                -(-args.requests // args.rounds),
                deadline - time.monotonic(),
                args.timeout,
            )
            outcomes += served
            elapsed += seconds
            start = time.perf_counter()
            for _ in served:
                estimator.predict(photo)
            direct += time.perf_counter() - start
        overload = burst(url, photo, args.fmt, 4 * capacity, args.timeout)
    finally:
        server.should_exit = True
        thread.join(30)

    ok = [o.seconds * 1e3 for o in outcomes if o.status == 200]
    statuses = Counter(o.status for o in outcomes)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    latency = (
        f"latency p50 {statistics.median(ok):.1f} ms, p95 {np.percentile(ok, 95):.1f} ms"
        if ok
        else "no request succeeded"
    )
    print(
        f"serve:  {len(outcomes)} requests in {elapsed:.2f} s = "
        f"{len(outcomes) / elapsed:.1f} req/s; {latency}; "
        f"statuses {dict(statuses)}; peak RSS {peak_rss_mb:.0f} MB"
    )
    print(
        f"direct: {len(outcomes)} Estimator.predict calls in {direct:.2f} s = "
        f"{len(outcomes) / direct:.1f} /s"
    )
    print(f"serve / direct wall time: {elapsed / direct:.2f}")

    burst_statuses = Counter(o.status for o in overload)
    failures = [o for o in overload + outcomes if o.status not in (200, 503)]
    print(
        f"overload: {len(overload)} requests at once (capacity {capacity}): "
        f"{burst_statuses[200]} × 200, {burst_statuses[503]} × 503, {len(failures)} failed; "
        f"slowest {max(o.seconds for o in overload) * 1e3:.0f} ms"
    )
    for failure in failures[:5]:
        print(f"  failed: status {failure.status} {failure.error}")
    if failures or not ok or burst_statuses[200] == 0:
        sys.exit(1)


if __name__ == "__main__":
    main()
