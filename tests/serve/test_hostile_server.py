"""Hostile clients against the real server (uvicorn on a loopback port, issue 13).

What only a real connection shows: after a 500 the client is told to close; a body
that stalls or trickles is answered 408 and the connection closed; requests whose
clients leave are taken out of the queue, and a running clip stops at its next frame.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest
from fastapi import FastAPI

from depthlens.serve import ServeSettings, create_app, uvicorn_options
from depthlens.serve import jobs as serve_jobs
from tests.hostile import encode, photo
from tests.serve.live import live_server

uvicorn = pytest.importorskip("uvicorn")

MODEL = "depthlens-small"
BOUNDARY = "depthlens-hostile-boundary"
Address = tuple[str, int]


@contextmanager
def serving(settings: ServeSettings) -> Iterator[tuple[FastAPI, Address]]:
    """The app for ``settings`` under uvicorn in a daemon thread, started (models loaded)."""
    app = create_app(settings)
    with live_server(app, log_level="critical", **uvicorn_options(settings)) as address:
        yield app, address


def form(data: bytes, **fields: str) -> bytes:
    """A multipart body: the photo in 'image' and the text ``fields``."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode()
        + data
        + b"\r\n"
    ]
    for name, value in fields.items():
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            "".encode()
        )
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts)


def request_head(path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {length}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n"
    ).encode()


def read_response(sock: socket.socket) -> http.client.HTTPResponse:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response


def error_of(response: http.client.HTTPResponse) -> dict:
    assert response.getheader("Content-Type") == "application/json"
    error = json.loads(response.read())["error"]
    assert error["status"] == response.status and error["message"].endswith(".")
    return error


def queue(address: Address) -> dict[str, int]:
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.request("GET", "/healthz")
        return json.loads(connection.getresponse().read())["queue"]
    finally:
        connection.close()


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# ---- item 6: a 500 keeps the client's connection usable ---------------------------------


def test_after_a_500_the_client_is_told_to_close_and_its_next_request_works(monkeypatch):
    with serving(ServeSettings(device="cpu")) as (app, address):

        def broken(image):
            raise RuntimeError("boom")

        monkeypatch.setattr(app.state.runtime.estimators[MODEL], "predict", broken)
        connection = http.client.HTTPConnection(*address, timeout=30)
        body = form(encode(photo(16, 16, seed=30), "PNG"))
        headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}

        connection.request("GET", "/no-such-page")  # an ordinary error keeps the socket
        assert connection.getresponse().read() and connection.sock is not None
        kept = connection.sock

        connection.request("POST", "/v1/depth", body, headers)
        crashed = connection.getresponse()
        assert crashed.status == 500 and crashed.getheader("Connection") == "close"
        assert error_of(crashed)["code"] == "internal_error"
        assert connection.sock is None  # http.client closed it, as it was told

        # The same client object goes on (on a fresh socket), as a browser would.
        connection.request("GET", "/healthz")
        after = connection.getresponse()
        assert after.status == 200 and json.loads(after.read())["status"] == "ok"
        assert connection.sock is not kept
        connection.close()


# ---- item 11: slow bodies and clients that leave ------------------------------------------


def test_a_stalled_body_gets_408_and_the_connection_closes():
    settings = ServeSettings(device="cpu", body_idle_timeout_s=0.5, body_timeout_s=30)
    with serving(settings) as (_, address):
        body = form(encode(photo(32, 32, seed=31), "PNG"))
        with socket.create_connection(address, timeout=15) as sock:
            sock.sendall(request_head("/v1/depth", len(body)) + body[:100])  # then nothing
            started = time.monotonic()
            response = read_response(sock)
            waited = time.monotonic() - started
            assert response.status == 408 and response.getheader("Connection") == "close"
            error = error_of(response)
            assert error["code"] == "body_timeout" and "stalled for 0.5 seconds" in error["message"]
            assert 0.4 < waited < 5
            assert sock.recv(1) == b""  # closed by the server


def test_a_trickled_body_gets_408_when_its_time_is_up():
    settings = ServeSettings(device="cpu", body_idle_timeout_s=0.5, body_timeout_s=1.0)
    with serving(settings) as (_, address):
        body = form(encode(photo(32, 32, seed=32), "PNG"))
        with socket.create_connection(address, timeout=15) as sock:
            sock.sendall(request_head("/v1/depth", len(body)))
            stop = threading.Event()

            def trickle() -> None:  # a byte every 0.1 s: never idle for 0.5 s
                for byte in body:
                    if stop.wait(0.1):
                        return
                    try:
                        sock.sendall(bytes([byte]))
                    except OSError:
                        return

            sender = threading.Thread(target=trickle, daemon=True)
            started = time.monotonic()
            sender.start()
            response = read_response(sock)
            stop.set()
            assert response.status == 408
            assert "took longer than 1 seconds" in error_of(response)["message"]
            assert time.monotonic() - started < 5


def test_abandoned_requests_leave_the_queue_without_running(monkeypatch):
    """The issue's case: 8 parallax requests whose clients gave up kept one worker busy
    for 14.5 s. Now their slots free as the clients leave and none of them runs."""
    settings = ServeSettings(device="cpu", workers=1, queue_size=8)
    with serving(settings) as (app, address), ThreadPoolExecutor(1) as sender:
        estimator = app.state.runtime.estimators[MODEL]
        predict, calls = estimator.predict, []
        started, release = threading.Event(), threading.Event()

        def blocked_predict(image):
            calls.append(image.width)
            started.set()
            assert release.wait(60)
            return predict(image)

        monkeypatch.setattr(estimator, "predict", blocked_predict)
        try:

            def first_request() -> int:
                connection = http.client.HTTPConnection(*address, timeout=60)
                body = form(encode(photo(24, 32, seed=33), "PNG"))
                connection.request(
                    "POST",
                    "/v1/depth",
                    body,
                    {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
                )
                return connection.getresponse().status

            first = sender.submit(first_request)
            assert started.wait(30)  # the first request holds the only worker
            body = form(encode(photo(40, 48, seed=34), "PNG"), frames="120")
            clients = []
            for _ in range(8):
                sock = socket.create_connection(address, timeout=15)
                sock.sendall(request_head("/v1/effects/parallax", len(body)) + body)
                clients.append(sock)
            assert wait_until(lambda: queue(address)["waiting"] == 8), queue(address)
            for sock in clients:
                sock.close()
            # Freed while the first request still runs: no worker was needed for it.
            assert wait_until(lambda: queue(address)["waiting"] == 0, 10), queue(address)
            assert queue(address)["running"] == 1
        finally:
            release.set()
        assert first.result(timeout=60) == 200
        assert calls == [32]  # only the first request was predicted
        assert wait_until(lambda: queue(address) == {"running": 0, "waiting": 0, "capacity": 9})


def test_a_running_clip_stops_when_its_client_leaves(monkeypatch):
    frames_made, first_frame = [], threading.Event()

    def slow_animation(rgb, depth, kind, settings):
        for index in range(settings.frames):
            frames_made.append(index)
            first_frame.set()
            time.sleep(0.05)
            yield np.zeros_like(rgb)

    monkeypatch.setattr(serve_jobs, "parallax_animation", slow_animation)
    with serving(ServeSettings(device="cpu", workers=1)) as (_, address):
        body = form(encode(photo(24, 32, seed=35), "PNG"), frames="120")
        with socket.create_connection(address, timeout=15) as sock:
            sock.sendall(request_head("/v1/effects/parallax", len(body)) + body)
            assert first_frame.wait(30)
        assert wait_until(lambda: queue(address)["running"] == 0, 10)
        made = len(frames_made)
        time.sleep(0.3)
        assert len(frames_made) == made < 60  # stopped, at least 3 s before its end
