"""A local HTTP server for the URL-input tests: real sockets, no network beyond 127.0.0.1.

``serving(files)`` runs it in a thread; ``server.url(path)`` names a path on it. Routes:

- ``/img/...``, ``/other/...``: the bytes in ``files`` under that path, with Content-Length
- ``/missing.jpg``: 404 Not Found
- ``/slow.jpg``: answers only after ``SLOW_SECONDS`` (to run past a short timeout)
- ``/huge.jpg``: says Content-Length 60 MB and sends nothing
- ``/endless.jpg``: no Content-Length, bytes until the client hangs up (up to 5 MB)
- ``/short.jpg``: says 1,000 bytes and sends 10
- ``/redirect.jpg``: 302 to ``/img/photo.png``; ``/to-ftp.jpg``: 302 to an ftp:// URL
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

SLOW_SECONDS = 3.0


class LocalServer:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.server = server
        self.port = server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"http://{self.host}/{path.lstrip('/')}"


@contextlib.contextmanager
def serving(files: dict[str, bytes]) -> Iterator[LocalServer]:
    """Serve ``files`` (path -> bytes, paths without a leading slash) and the fixed routes."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path).lstrip("/")
            if path in files:
                self._send(200, files[path])
            elif path == "slow.jpg":
                time.sleep(SLOW_SECONDS)
                self._send(200, b"late")
            elif path == "huge.jpg":
                self.send_response(200)
                self.send_header("Content-Length", str(60_000_000))
                self.end_headers()
            elif path == "endless.jpg":
                self.send_response(200)
                self.end_headers()  # HTTP/1.0: the body ends when the connection does
                with contextlib.suppress(OSError):
                    for _ in range(80):
                        self.wfile.write(b"\xff" * 65536)
            elif path == "short.jpg":
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b"\xff\xd8\xff" + bytes(7))
            elif path == "redirect.jpg":
                self._redirect("/img/photo.png")
            elif path == "to-ftp.jpg":
                self._redirect("ftp://depthlens-test.invalid/photo.jpg")
            else:
                self.send_error(404)

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(body)

        def _redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LocalServer(server)
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    """A local port nothing listens on (connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
