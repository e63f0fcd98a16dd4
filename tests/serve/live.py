"""A real uvicorn server for the tests that need a socket (the browser, keep-alive)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


@contextmanager
def live_server(app: Any, **config: Any) -> Iterator[tuple[str, int]]:
    """``app`` under uvicorn in a daemon thread on a free loopback port, started (its
    lifespan has run, so models are loaded); yields the (host, port) it listens on.
    ``config`` goes to ``uvicorn.Config`` (``log_level`` defaults to warning)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, **{"log_level": "warning", **config}))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the depthlens server did not start")
        time.sleep(0.02)
    try:
        yield sock.getsockname()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
