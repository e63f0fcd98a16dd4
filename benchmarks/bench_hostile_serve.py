"""The worst request each route of the web service allows: seconds and peak server RSS.

Starts the real server (the app under uvicorn in a subprocess, as ``depthlens serve``
runs it: the bundled depthlens-small on the CPU, every limit at its default) and sends
the costliest request its limits let through (issue 13, "bounded cost per request"):

- ``/v1/depth`` in each format with a photo of ``max_megapixels`` (40 MP), and
  ``format=json`` with ``include_depth`` and ``include_color`` at ``json_megapixels``
  (16 MP): the largest JSON answer;
- bokeh at the largest aperture (100 px) on a photo of ``effect_megapixels`` (2 MP,
  rendered whole) and on one of 40 MP (depth at 40 MP, blur shrunk to 2 MP);
- stereo at the largest baseline, obstacle, and parallax with the most frames (120) as
  GIF and MP4, each on a 40 MP photo.

Each photo is a JPEG of a smooth rendered scene, under 1 MB, whose header claims the
size; a comment segment makes every upload's bytes new, so the depth cache never
answers. Every request gets a fresh server (warmed up by one small request), whose
peak RSS (``VmHWM`` in ``/proc/PID/status``) is reset just before it: the peak is that
request's alone. The named peer, in the same run: a plain 640x480 ``/v1/depth``
(colour PNG) request; every row gives its time and peak as a ratio to the peer's.
With ``--lifted``, the issue's requests also run on a server whose effect, JSON and
clip limits are lifted to the photo limit: what those limits save. MP4 is encoded by
an ffmpeg child process, whose memory is not in the server's RSS.

    .venv/bin/python benchmarks/bench_hostile_serve.py --lifted
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import cv2
import httpx
from PIL import Image

from depthlens.serve import ServeSettings
from depthlens.synth.demo import demo_scene

DEFAULTS = ServeSettings()
# The effect, JSON and clip limits raised to what the photo limit allows (--lifted).
LIFTED = {
    "effect_megapixels": DEFAULTS.max_megapixels,
    "json_megapixels": DEFAULTS.max_megapixels,
    "clip_megapixels": 1e6,
}
# The server as `depthlens serve` builds it, with ServeSettings(**argv[2]).
SERVER = """
import json, sys, uvicorn
from depthlens.serve import ServeSettings, create_app, uvicorn_options
settings = ServeSettings(device="cpu", **json.loads(sys.argv[2]))
uvicorn.run(create_app(settings), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning", **uvicorn_options(settings))
"""


@dataclass(frozen=True)
class Case:
    """One request: its name, route, photo size in pixels, form fields, server limits."""

    name: str
    route: str
    pixels: int
    fields: dict[str, str]
    limits: dict[str, float]


def cases(lifted: bool) -> list[Case]:
    most, effect, json_limit = DEFAULTS.max_pixels, DEFAULTS.effect_pixels, DEFAULTS.json_pixels
    depth, bokeh = "/v1/depth", "/v1/effects/bokeh"
    parallax, stereo = "/v1/effects/parallax", "/v1/effects/stereo"
    maps = {"format": "json", "include_depth": "true", "include_color": "true"}
    blur, wide, clip = {"aperture": "100", "format": "json"}, {"baseline": "0.2"}, {"frames": "120"}
    chosen = [
        *[
            Case(f"depth {fmt}", depth, most, {"format": fmt}, {})
            for fmt in ("color", "png16", "npy")
        ],
        Case("depth json (statistics)", depth, most, {"format": "json"}, {}),
        Case("depth json + depth + color", depth, json_limit, maps, {}),
        Case("bokeh, aperture 100, 2 MP", bokeh, effect, blur, {}),
        Case("bokeh, aperture 100, 40 MP", bokeh, most, blur, {}),
        Case("stereo, baseline 0.2", stereo, most, wide, {}),
        Case("obstacle json", "/v1/effects/obstacle", most, {}, {}),
        Case("parallax gif, 120 frames", parallax, most, clip, {}),
        Case("parallax mp4, 120 frames", parallax, most, {**clip, "format": "mp4"}, {}),
    ]
    if lifted:
        chosen += [
            Case("LIFTED json + depth + color", depth, most, maps, LIFTED),
            Case("LIFTED bokeh, aperture 100", bokeh, most, blur, LIFTED),
            Case("LIFTED stereo, baseline 0.2", stereo, most, wide, LIFTED),
            Case("LIFTED parallax gif, 120", parallax, most, clip, LIFTED),
        ]
    return chosen


def photo_jpeg(pixels: int, quality: int = 40) -> bytes:
    """A 4:3 JPEG of at most ``pixels`` pixels: a rendered scene, upscaled smoothly."""
    width = int(math.sqrt(pixels * 4 / 3))
    height = pixels // width
    rgb = cv2.resize(demo_scene(480, 640), (width, height), interpolation=cv2.INTER_LINEAR)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


_TAGS = count()


def unique(jpeg: bytes) -> bytes:
    """``jpeg`` with a new comment segment after its start marker: other bytes, the same
    pixels, so the server's depth cache never answers for it."""
    text = f"depthlens benchmark request {next(_TAGS)}".encode()
    return jpeg[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + jpeg[2:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(limits: dict[str, float], log: Path) -> Iterator[tuple[int, str]]:
    """A fresh server with ``limits`` (ServeSettings fields), once /healthz answers:
    its pid and URL."""
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(port), json.dumps(limits)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the server exited ({process.returncode}); see {log}")
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start within 120 s")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield process.pid, url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def memory_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"/proc/{pid}/status has no {field}")


def reset_peak(pid: int) -> None:
    """Reset the peak RSS (VmHWM) to the current RSS (Linux 4.0+, same user or root)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError as err:
        raise SystemExit(f"cannot reset the server's peak RSS ({err})") from err


@dataclass(frozen=True)
class Measured:
    status: int
    seconds: float
    rest_mb: float
    peak_mb: float
    answer_mb: float


def measure(client: httpx.Client, url: str, pid: int, photo: bytes, case: Case) -> Measured:
    data = unique(photo)
    reset_peak(pid)
    rest = memory_mb(pid, "VmRSS")
    start = time.perf_counter()
    response = client.post(
        url + case.route, files={"image": ("photo.jpg", data, "image/jpeg")}, data=case.fields
    )
    seconds = time.perf_counter() - start
    return Measured(
        response.status_code, seconds, rest, memory_mb(pid, "VmHWM"), len(response.content) / 1e6
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-repeats", type=int, default=5, help="peer requests (median)")
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--lifted", action="store_true", help="also run with limits lifted")
    parser.add_argument("--log", type=Path, default=Path("/tmp/depthlens-bench-serve.log"))
    args = parser.parse_args()
    if not Path("/proc/self/status").exists():
        raise SystemExit("this script reads peak RSS from /proc (Linux)")

    print(
        f"depthlens-small, cpu, {os.cpu_count()} cores; limits: photos {DEFAULTS.max_megapixels:g}"
        f" MP, effects {DEFAULTS.effect_megapixels:g} MP, JSON maps "
        f"{DEFAULTS.json_megapixels:g} MP, clips {DEFAULTS.clip_max_side} px, "
        f"{DEFAULTS.clip_max_frames} frames, {DEFAULTS.clip_megapixels:g} MP in all"
    )
    warm_up = Case("warm-up", "/v1/depth", 64 * 48, {}, {})
    small = photo_jpeg(warm_up.pixels)
    peer_case = Case("peer: depth color 640x480", "/v1/depth", 640 * 480, {}, {})
    peer_photo = photo_jpeg(peer_case.pixels)
    with httpx.Client(timeout=900) as client:
        with server({}, args.log) as (pid, url):
            measure(client, url, pid, peer_photo, warm_up)
            runs = [
                measure(client, url, pid, peer_photo, peer_case) for _ in range(args.peer_repeats)
            ]
        peer = Measured(
            runs[0].status,
            statistics.median(r.seconds for r in runs),
            statistics.median(r.rest_mb for r in runs),
            statistics.median(r.peak_mb for r in runs),
            runs[0].answer_mb,
        )
        header = (
            f"{'request':<28} {'photo':>9} {'upload':>7} {'status':>6} {'seconds':>7} "
            f"{'x peer':>6} {'rest':>7} {'peak RSS':>8} {'x peer':>6} {'answer':>9}"
        )
        print(header)
        print("-" * len(header))

        def row(case: Case, size: str, upload_mb: float, m: Measured) -> None:
            print(
                f"{case.name:<28} {size:>9} {upload_mb:>5.2f}MB {m.status:>6} {m.seconds:>7.2f} "
                f"{m.seconds / peer.seconds:>6.1f} {m.rest_mb:>4.0f} MB {m.peak_mb:>5.0f} MB "
                f"{m.peak_mb / peer.peak_mb:>6.2f} {m.answer_mb:>6.2f} MB",
                flush=True,
            )

        row(peer_case, "640x480", len(peer_photo) / 1e6, peer)
        photos: dict[int, bytes] = {}
        for case in cases(args.lifted):
            if args.only not in case.name:
                continue
            photo = photos.setdefault(case.pixels, photo_jpeg(case.pixels))
            with Image.open(io.BytesIO(photo)) as image:
                size = f"{image.width}x{image.height}"
            with server(case.limits, args.log) as (pid, url):
                measure(client, url, pid, small, warm_up)
                result = measure(client, url, pid, photo, case)
            row(case, size, len(photo) / 1e6, result)
    print(
        f"peer: median of {args.peer_repeats}. Every row: a fresh server, warmed up by one "
        "64x48 request; rest = its RSS before the request, peak = its VmHWM during it."
    )


if __name__ == "__main__":
    main()
