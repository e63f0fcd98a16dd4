"""The web service under load: depthlens serve vs the same work done by a direct call.

Starts ``depthlens serve`` (the CLI, in a process of its own, on a free loopback port)
with --model (default depthlens-small) and posts rendered street photos (PNG, --size
pixels wide, 4:3). Every request sends a different file (one pixel differs), so the
server's depth cache never answers: each request is decoded, predicted and encoded.

1. Throughput: --clients concurrent clients, each on its own keep-alive connection,
   post --requests photos in all (or stop at --duration seconds). Prints requests/s,
   p50/p95 latency, the server's CPU time per request and its peak RSS, and the CPU the
   clients themselves spent per request (they share the machine's cores with the
   server). Then the named peer, "direct": the same photos through the same work in a
   plain loop in this process, on one worker thread as in the server:
   ``Estimator.predict(png_bytes)`` (decodes the bytes, runs the network) and
   ``serve.jobs.encode_depth`` (the --format file the server answers with). The ratio
   of the two wall times is what serving costs on top of that work: HTTP, the
   multipart form, the hop to a worker thread, the clients' own CPU.
   The two alternate in --rounds rounds, so that other load on the machine hits both
   alike. The clients are lean (``http.client``, each form built once beforehand), as a
   load generator on another machine would be.
2. Overload: 4 × (workers + queue) requests at once, each on a new connection. Every
   one must end in 200 or 503 (busy) within --timeout seconds: any other status, a
   transport error or a timeout is a failure, and the script exits 1.

Both sides use torch's default threads (one per core), each of the server's workers
too, unless --server-threads sets the server's OMP_NUM_THREADS (e.g. cores / workers,
so that workers × threads = cores). The direct loop runs one call at a time, on a
thread of its own, not on the main thread, because with libgomp (torch's OpenMP on
Linux) the two wait differently: a process with more OpenMP threads than cores spins
only briefly before sleeping, one without spins long, and on a busy machine the long
spins of a lone main thread made its calls several times slower than a worker's
(BENCHMARKS.md). On its own thread the direct loop runs as the server's worker does.

    .venv/bin/python benchmarks/bench_serve.py --workers 1 --clients 4 --size 256

(BENCHMARKS.md gives the commands and the rounds of the published table.)
"""

from __future__ import annotations

import argparse
import http.client
import io
import itertools
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import depthlens
from depthlens.serve.jobs import FileFormat, encode_depth
from depthlens.synth.demo import demo_scene

BOUNDARY = "depthlens-bench-boundary"
FILE_FORMATS: tuple[FileFormat, ...] = ("color", "png16", "npy")


@dataclass(frozen=True)
class Outcome:
    """One request: its status (None when it raised), seconds taken, and the error."""

    status: int | None
    seconds: float
    error: str = ""


def photos(size: int, count: int) -> list[bytes]:
    """``count`` PNGs of one rendered scene, ``size`` pixels wide (4:3), each file
    different (its top-left pixel holds its number) so that no two hash alike."""
    rgb = demo_scene(size * 3 // 4, size)
    files = []
    for index in range(count):
        rgb[0, 0] = (index % 256, index // 256 % 256, index // 65536 % 256)
        buffer = io.BytesIO()
        Image.fromarray(rgb).save(buffer, format="PNG")
        files.append(buffer.getvalue())
    return files


def multipart(photo: bytes, fmt: str) -> bytes:
    """The body of a POST /v1/depth form: the photo and the format."""
    return b"".join(
        [
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; '
            'filename="street.png"\r\nContent-Type: image/png\r\n\r\n'.encode(),
            photo,
            f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="format"\r\n\r\n'
            f"{fmt}\r\n--{BOUNDARY}--\r\n".encode(),
        ]
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen[bytes]:
    """``depthlens serve`` with the benchmark's settings, once it answers /healthz."""
    command = [
        sys.executable,
        "-m",
        "depthlens",
        "--quiet",
        "serve",
        "--port",
        str(port),
        "--model",
        args.model,
        "--device",
        args.device,
        "--backend",
        args.backend,
        "--precision",
        args.precision,
        "--workers",
        str(args.workers),
    ]
    if args.queue_size is not None:
        command += ["--queue-size", str(args.queue_size)]
    env = dict(os.environ)
    if args.server_threads is not None:
        env["OMP_NUM_THREADS"] = str(args.server_threads)  # torch's threads, read at start
    server = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 600  # a first ONNX/OpenVINO export takes a while
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with status {server.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not start within 600 s")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float | None:
    """The peak resident memory of process ``pid`` in MB (Linux /proc; None elsewhere)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return None


def post(connection: http.client.HTTPConnection, body: bytes) -> Outcome:
    """POST one form and read the whole answer; never raises."""
    start = time.perf_counter()
    try:
        connection.request(
            "POST",
            "/v1/depth",
            body,
            {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException) as exc:
        connection.close()  # the next request reconnects
        return Outcome(None, time.perf_counter() - start, f"{type(exc).__name__}: {exc}")
    return Outcome(response.status, time.perf_counter() - start)


def throughput(
    port: int, bodies: Sequence[bytes], clients: int, duration: float, timeout: float
) -> tuple[list[Outcome], float, float]:
    """``clients`` closed-loop clients post ``bodies``, each once; the outcomes, the wall
    seconds and the CPU seconds this process (the clients) spent meanwhile."""
    tickets = itertools.count()
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def client_loop() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            while (ticket := next(tickets)) < len(bodies) and time.monotonic() < deadline:
                outcome = post(connection, bodies[ticket])
                with lock:
                    outcomes.append(outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    cpu, start = time.process_time(), time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes, time.perf_counter() - start, time.process_time() - cpu


def burst(port: int, bodies: Sequence[bytes], timeout: float) -> list[Outcome]:
    """``bodies`` posted all at once, each on its own connection."""
    barrier = threading.Barrier(len(bodies))
    outcomes: list[Outcome | None] = [None] * len(bodies)

    def one(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            connection.connect()
            barrier.wait()
            outcomes[index] = post(connection, bodies[index])
        except OSError as exc:
            outcomes[index] = Outcome(None, 0.0, f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 30)  # a thread still alive here is a hung request
    return [o if o is not None else Outcome(None, timeout, "hung") for o in outcomes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="depthlens-small")
    parser.add_argument("--workers", type=int, default=1, help="inference threads")
    parser.add_argument("--queue-size", type=int, default=None, help="default: 4 × workers")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients, phase 1")
    parser.add_argument("--requests", type=int, default=64, help="requests in phase 1")
    parser.add_argument("--rounds", type=int, default=4, help="phase 1 serve/direct rounds")
    parser.add_argument("--duration", type=float, default=600.0, help="phase 1 time cap (s)")
    parser.add_argument("--size", type=int, default=256, help="photo width in pixels (4:3)")
    parser.add_argument("--format", choices=FILE_FORMATS, default="color", dest="fmt")
    parser.add_argument("--timeout", type=float, default=120.0, help="per request (s)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", default="torch", help="torch, onnxruntime or openvino")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16 or int8")
    parser.add_argument(
        "--server-threads", type=int, default=None, help="the server's OMP_NUM_THREADS"
    )
    args = parser.parse_args()

    capacity = args.workers + (4 * args.workers if args.queue_size is None else args.queue_size)
    per_round = -(-args.requests // args.rounds)
    warmup = 2 * args.clients
    files = photos(args.size, warmup + per_round * args.rounds + 4 * capacity)
    bodies = [multipart(photo, args.fmt) for photo in files]
    print(
        f"{args.model} on {args.device} ({args.backend} {args.precision}), "
        f"{args.size}x{args.size * 3 // 4} PNG ({len(files[0]) / 1e3:.0f} kB), "
        f"format {args.fmt}; workers {args.workers} × threads "
        f"{args.server_threads or torch.get_num_threads()}, capacity {capacity}, "
        f"clients {args.clients}; direct: torch threads {torch.get_num_threads()}"
    )

    estimator = depthlens.load_model(
        args.model, device=args.device, backend=args.backend, precision=args.precision
    )

    def direct(photos: Sequence[bytes]) -> tuple[float, float]:
        """What the server does for each of ``photos``, minus the HTTP and the hop to a
        worker; the wall and CPU seconds it took (CPU: the whole process's)."""
        cpu, start = time.process_time(), time.perf_counter()
        for photo in photos:
            encode_depth(estimator.predict(photo), args.fmt)
        return time.perf_counter() - start, time.process_time() - cpu

    direct_worker = ThreadPoolExecutor(1, thread_name_prefix="direct")

    port = free_port()
    server = start_server(args, port)
    try:
        # Warm-up for both, on photos of their own.
        throughput(port, bodies[:warmup], args.clients, 120, args.timeout)
        direct_worker.submit(direct, files[:warmup]).result()
        outcomes: list[Outcome] = []
        elapsed = direct_seconds = client_cpu = direct_cpu = 0.0
        round_ratios = []
        server_cpu: float | None = 0.0
        deadline = time.monotonic() + args.duration
        # Rounds alternate serving and direct calls on the same photos, so that load
        # from elsewhere on the machine weighs on both alike.
        for round_index in range(args.rounds):
            first = warmup + round_index * per_round
            chunk = slice(first, first + per_round)
            before = cpu_seconds(server.pid)
            served, seconds, cpu = throughput(
                port, bodies[chunk], args.clients, deadline - time.monotonic(), args.timeout
            )
            after = cpu_seconds(server.pid)
            if server_cpu is not None and before is not None and after is not None:
                server_cpu += after - before
            else:
                server_cpu = None
            outcomes += served
            elapsed += seconds
            client_cpu += cpu
            direct_wall, cpu = direct_worker.submit(direct, files[chunk][: len(served)]).result()
            round_ratios.append(seconds / direct_wall)
            direct_seconds += direct_wall
            direct_cpu += cpu
        overload = burst(port, bodies[-4 * capacity :], args.timeout)
        rss = peak_rss_mb(server.pid)
    finally:
        direct_worker.shutdown()
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()

    count = len(outcomes)
    ok = [o.seconds * 1e3 for o in outcomes if o.status == 200]
    statuses = Counter(o.status for o in outcomes)
    latency = (
        f"latency p50 {statistics.median(ok):.1f} ms, p95 {np.percentile(ok, 95):.1f} ms"
        if ok
        else "no request succeeded"
    )
    server_line = (
        f"server CPU {server_cpu / count * 1e3:.1f} ms/request" if server_cpu is not None else ""
    )
    rss_line = f", peak RSS {rss:.0f} MB" if rss is not None else ""
    print(
        f"serve:  {count} requests in {elapsed:.2f} s = {count / elapsed:.1f} req/s; "
        f"{latency}; statuses {dict(statuses)}; {server_line}{rss_line}; "
        f"clients' CPU {client_cpu / count * 1e3:.1f} ms/request"
    )
    print(
        f"direct: {count} × predict(PNG bytes) + encode_depth in {direct_seconds:.2f} s = "
        f"{count / direct_seconds:.1f} /s; CPU {direct_cpu / count * 1e3:.1f} ms/call"
    )
    print(
        f"serve / direct wall time: {elapsed / direct_seconds:.3f} "
        f"(rounds: {', '.join(f'{ratio:.2f}' for ratio in round_ratios)})"
    )

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
