"""ASGI middleware of the web service: a bounded request body and security headers.

``BodyLimit`` refuses a body over the upload limit (413) and one that arrives too
slowly (408), so a client can hold neither memory nor a connection for long.
``SecurityHeaders`` puts a strict Content-Security-Policy, ``nosniff`` and a framing
ban on every answer: the page loads nothing from outside and runs no inline code, so
the policy allows the server's own files only, plus the ``blob:`` URLs the page makes
of its results.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from depthlens.serve.errors import ApiError, error_response
from depthlens.serve.settings import ServeSettings

__all__ = [
    "FORM_ALLOWANCE",
    "PAGE_CSP",
    "SECURITY_HEADERS",
    "BodyLimit",
    "SecurityHeaders",
    "docs_csp",
]

# Room for the multipart framing and the small form fields around the photo: the
# request body may exceed max_upload_mb by this much before it is cut off.
FORM_ALLOWANCE = 64 * 1024

# The page (static/) and the API: own files and blob: images (results) only. connect-src
# allows blob: so that a script may read back an image it shows.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "media-src 'self' blob:; connect-src 'self' blob:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def docs_csp(html: str) -> str:
    """The policy of the Swagger UI page ``html``: its one inline script by hash, the
    inline styles and data: icons Swagger UI uses, and blob: for responses it shows."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


class SecurityHeaders:
    """ASGI middleware adding ``SECURITY_HEADERS`` to every HTTP answer that does not
    set its own (``/docs`` sets its own Content-Security-Policy)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def upload_too_large(settings: ServeSettings) -> ApiError:
    # The rest of the body is not read: the connection closes after the answer, or
    # uvicorn would read (and drop) every byte the client still sends.
    return ApiError(
        413,
        "upload_too_large",
        f"The upload is larger than this server's limit of {settings.max_upload_mb:g} MB.",
        {"Connection": "close"},
    )


def body_timeout(seconds: float, what: str) -> ApiError:
    return ApiError(
        408,
        "body_timeout",
        f"The request body {what} {seconds:g} seconds; send it again, faster.",
        {"Connection": "close"},
    )


class BodyLimit:
    """ASGI middleware bounding a request body's size and the time it takes to arrive.

    A Content-Length above ``max_upload_bytes + FORM_ALLOWANCE`` is refused (413)
    before any byte is read; a body streamed without one is cut off as soon as it passes
    the limit, so no more than the limit and one chunk are ever read (FastAPI spools
    file parts to disk beyond 1 MB, so memory holds far less). A body whose next piece
    takes over ``body_idle_timeout_s``, or whose whole takes over ``body_timeout_s``,
    is answered 408. Both errors close the connection.
    """

    def __init__(self, app: ASGIApp, settings: ServeSettings) -> None:
        self.app = app
        self.settings = settings
        self.limit = settings.max_upload_bytes + FORM_ALLOWANCE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.settings
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            error = upload_too_large(settings)
            response = error_response(error.status_code, error.code, error.detail, error.headers)
            await response(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.body_timeout_s
        received, complete = 0, False

        async def receive_within_limits() -> Message:
            nonlocal received, complete
            if complete:  # afterwards the app only listens for the client leaving
                return await receive()
            left = deadline - loop.time()
            wait = min(settings.body_idle_timeout_s, left)
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    message = await receive()
            except TimeoutError:
                if wait < settings.body_idle_timeout_s:
                    raise body_timeout(settings.body_timeout_s, "took longer than") from None
                raise body_timeout(wait, "stalled for") from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            received += len(message.get("body", b""))
            if received > self.limit:
                raise upload_too_large(settings)
            return message

        await self.app(scope, receive_within_limits, send)
