"""Images from elsewhere than a file: ``fetch_url`` downloads an http(s) URL and
``read_stdin`` reads a piped image, each within a size limit and ending in one sentence
when it fails. Decoding stays ``io.images.load_image``'s (format allow-list, pixel limit).

>>> url_file_name("https://example.com/albums/photo%201.jpg?size=large")
'photo_1.jpg'
>>> shown_url("https://user:secret@example.com/a.jpg")
'https://user:***@example.com/a.jpg'
"""

from __future__ import annotations

import http.client
import importlib.metadata
import os
import re
import socket
import ssl
import sys
import time
from email.message import Message
from http import HTTPStatus
from typing import IO, Any
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlsplit
from urllib.request import (
    HTTPDefaultErrorHandler,
    HTTPErrorProcessor,
    HTTPHandler,
    HTTPRedirectHandler,
    HTTPSHandler,
    OpenerDirector,
    ProxyHandler,
    Request,
    UnknownHandler,
)

from depthlens.errors import ImageError, UsageError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT_S",
    "STDIN",
    "TIMEOUT_ENV",
    "fetch_url",
    "http_opener",
    "is_url",
    "network_failure",
    "read_stdin",
    "shown_url",
    "url_file_name",
    "url_timeout",
]

# Seconds to wait for the connection and for each read; a slow link still gets the
# whole picture, a silent server costs half a minute.
DEFAULT_TIMEOUT_S = 30.0
# The most one download (or standard input) may hold: above any camera's JPEG or HEIC
# (a 100 MP JPEG at high quality is about 40 MB), below an accidental video or disk image.
DEFAULT_MAX_BYTES = 50_000_000
# Overrides DEFAULT_TIMEOUT_S (seconds), for slow links (and for tests of silent servers).
TIMEOUT_ENV = "DEPTHLENS_URL_TIMEOUT"
# The whole download must end within this many timeouts: a server that trickles a byte
# just inside each read timeout would otherwise hold a run for days.
_WHOLE_DOWNLOAD_TIMEOUTS = 10
# The input that means standard input, as in cat, tar and pip.
STDIN = "-"

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")  # 2+ letters: C:// is a Windows drive
_SCHEMES = ("http", "https")
_CHUNK = 1 << 16


def is_url(text: str) -> bool:
    """Whether ``text`` is written as a URL (``scheme://...``) rather than a path.

    Any scheme counts, so that ``ftp://`` is refused with a sentence by ``fetch_url``
    instead of being looked for as a file.
    """
    return bool(_URL.match(text))


def shown_url(url: str) -> str:
    """``url`` for messages: a password masked, unprintable characters as ``?``, at most
    200 characters."""
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            netloc = parts.netloc.rsplit("@", 1)[1]
            url = parts._replace(netloc=f"{parts.username}:***@{netloc}").geturl()
    except ValueError:  # an invalid IPv6 host or port: shown as given
        pass
    text = "".join(c if c.isprintable() else "?" for c in url)
    return text if len(text) <= 200 else text[:197] + "..."


def url_file_name(url: str) -> str:
    """The file name a URL's path ends in, safe as an output name: percent-escapes
    decoded, anything but letters, digits, ``.``, ``-`` and ``_`` replaced by ``_``, no
    leading or trailing dots, at most 100 characters; ``""`` when nothing is left
    (``https://example.com/``)."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return ""
    segment = unquote(path.rsplit("/", 1)[-1])
    name = re.sub(r"[^\w.-]+", "_", segment).strip("._-")
    if len(name) > 100:
        stem, dot, suffix = name.rpartition(".")
        keep = f".{suffix}" if dot and stem and len(suffix) <= 10 else ""
        name = name[: 100 - len(keep)] + keep
    return name


def url_timeout() -> float:
    """The timeout in seconds: ``$DEPTHLENS_URL_TIMEOUT`` when set, else 30."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not (seconds > 0 and seconds < float("inf")):
        raise UsageError(f"{TIMEOUT_ENV} must be a positive number of seconds, not {raw!r}.")
    return seconds


def fetch_url(
    url: str, *, timeout: float | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> bytes:
    """The body of an ``http://`` or ``https://`` URL.

    ``timeout`` (seconds; default ``url_timeout()``) bounds the connection and each
    read, and ten of them the whole download. Bodies over ``max_bytes`` are refused
    from their Content-Length or as soon as they exceed it. Redirects are followed
    (to http(s) URLs only), proxies come from the usual environment variables and
    certificates are verified. Every failure is an ``ImageError`` whose sentence names
    the URL and what went wrong: an unresolvable host, a refused connection, no answer
    within the timeout, an HTTP error status, a body too large.
    """
    seconds = url_timeout() if timeout is None else timeout
    shown = shown_url(url)
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # raises ValueError for a port that is not a number
        server = _printable(parts.netloc.rsplit("@", 1)[-1])  # host[:port], for sentences
    except ValueError as err:
        raise ImageError(f"{shown} is not a valid URL ({err}).") from None
    if parts.scheme.lower() not in _SCHEMES:
        raise ImageError(
            f"{shown} is not an http:// or https:// URL, the only kind depthlens fetches."
        )
    if not host:
        raise ImageError(f"{shown} is not a valid URL: it names no host.")
    request = Request(url, headers={"User-Agent": _USER_AGENT, "Accept": "image/*, */*;q=0.5"})
    started = time.monotonic()
    try:
        response = http_opener()[0].open(request, timeout=seconds)
    except Exception as err:  # every way a request fails; each becomes its sentence
        reason = network_failure(err, host, server, seconds)
        raise ImageError(f"{shown} cannot be fetched: {reason}.") from None
    with response:
        declared = _content_length(response)
        if declared is not None and declared > max_bytes:
            raise ImageError(
                f"{shown} is {_size(declared)}, more than the download limit of {_size(max_bytes)}."
            )
        deadline = started + _WHOLE_DOWNLOAD_TIMEOUTS * seconds
        try:
            data = _read_body(response, shown, max_bytes, deadline, server)
        except ImageError:
            raise
        except Exception as err:  # the connection failing halfway
            reason = network_failure(err, host, server, seconds)
            raise ImageError(f"{shown} cannot be fetched: {reason}.") from None
    if declared is not None and len(data) < declared:
        raise ImageError(
            f"{shown} cannot be fetched: {server} closed the connection after "
            f"{len(data):,} of {declared:,} bytes."
        )
    return data


def read_stdin(max_bytes: int = DEFAULT_MAX_BYTES, stream: IO[bytes] | None = None) -> bytes:
    """The bytes piped into standard input (or ``stream``), at most ``max_bytes``.

    ``ImageError`` when there is no standard input, when it is a terminal (nothing was
    piped: reading would wait for typing), when it is empty, or when it holds more than
    ``max_bytes``.
    """
    if stream is None:
        if sys.stdin is None:
            raise ImageError("There is no standard input to read an image from.")
        if sys.stdin.isatty():
            raise ImageError(
                "Standard input is a terminal, not an image: pipe one in "
                "(cat photo.jpg | depthlens predict - -o out)."
            )
        stream = sys.stdin.buffer
    data = stream.read(max_bytes + 1)  # a buffered read: until that many bytes or the end
    if not data:
        raise ImageError("Standard input is empty (0 bytes), not an image.")
    if len(data) > max_bytes:
        raise ImageError(f"Standard input holds more than the limit of {_size(max_bytes)}.")
    return data


def _user_agent() -> str:
    """``depthlens/VERSION``: some servers refuse urllib's default agent."""
    try:
        return f"depthlens/{importlib.metadata.version('depthlens')}"
    except importlib.metadata.PackageNotFoundError:
        return "depthlens"


_USER_AGENT = _user_agent()


class _HttpRedirectsOnly(HTTPRedirectHandler):
    """Redirects to http(s) URLs only (urllib's own handler would follow one to ftp://),
    keeping each redirect's headers in ``hops``."""

    def __init__(self) -> None:
        self.hops: list[Message] = []

    def redirect_request(
        self, req: Request, fp: IO[bytes], code: int, msg: str, headers: Any, newurl: str
    ) -> Request | None:
        if urlsplit(newurl).scheme.lower() not in _SCHEMES:
            fp.close()
            raise URLError(f"it redirects to {shown_url(newurl)}, which is not an http(s) URL")
        self.hops.append(headers)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def http_opener() -> tuple[OpenerDirector, list[Message]]:
    """urllib's opener with the http(s) handlers only (no file://, ftp:// or data:), and
    the list its redirects' headers are added to (the Hugging Face Hub sends a file's
    sha256 with the redirect to its file store)."""
    opener = OpenerDirector()
    redirects = _HttpRedirectsOnly()
    handlers = (
        ProxyHandler(),  # $http_proxy, $https_proxy, $no_proxy, read now
        UnknownHandler(),
        HTTPHandler(),
        HTTPSHandler(),
        HTTPDefaultErrorHandler(),
        redirects,
        HTTPErrorProcessor(),
    )
    for handler in handlers:
        opener.add_handler(handler)
    return opener, redirects.hops


def _content_length(response: Any) -> int | None:
    """The Content-Length header as a number, or None when absent or malformed."""
    value = (response.headers.get("Content-Length") or "").strip()
    return int(value) if value.isdigit() else None


def _read_body(response: Any, shown: str, max_bytes: int, deadline: float, server: str) -> bytes:
    """The response body, refused once it holds more than ``max_bytes`` or takes longer
    than until ``deadline`` (a ``time.monotonic`` value)."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = response.read(min(_CHUNK, max_bytes + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            raise ImageError(f"{shown} sends more than the download limit of {_size(max_bytes)}.")
        if time.monotonic() > deadline:
            raise ImageError(
                f"{shown} cannot be fetched: {server} sent only {_size(total)} before "
                "the time allowed for the whole download ran out."
            )


def network_failure(err: BaseException, host: str, server: str, seconds: float) -> str:
    """Why a request to ``server`` (``host[:port]``) failed, as the end of a sentence
    (also for ``models.download``)."""
    if isinstance(err, HTTPError):
        err.close()
        try:
            phrase = err.reason if isinstance(err.reason, str) and err.reason else None
            phrase = phrase or HTTPStatus(err.code).phrase
        except ValueError:
            phrase = "an unknown status"
        return f"{server} answered {err.code} {phrase}"
    if isinstance(err, URLError):
        reason = err.reason
        if isinstance(reason, BaseException):
            return network_failure(reason, host, server, seconds)
        return _printable(str(reason))
    if isinstance(err, socket.gaierror):
        return f"could not resolve host {_printable(host)}"
    if isinstance(err, TimeoutError):
        return f"no answer from {server} within {seconds:g} s"
    if isinstance(err, ConnectionRefusedError):
        return f"{server} refused the connection"
    if isinstance(err, ConnectionError):
        return f"{server} closed the connection"
    if isinstance(err, ssl.SSLError):
        return f"the secure connection to {server} failed ({_printable(err.reason or str(err))})"
    if isinstance(err, http.client.InvalidURL):
        return f"it is not a valid URL ({_printable(str(err))})"
    if isinstance(err, http.client.HTTPException):
        return f"{server} sent a broken HTTP response ({type(err).__name__})"
    if isinstance(err, OSError):
        return f"{server} could not be reached ({_printable(err.strerror or str(err))})"
    return f"unexpected {type(err).__name__} ({_printable(str(err))})"


def _printable(text: str) -> str:
    """One printable line of at most 120 characters, without a final full stop."""
    text = " ".join(text.split()).rstrip(".")
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= 120 else text[:117] + "..."


def _size(count: int) -> str:
    """A byte count for a sentence: ``50 MB``, ``62.5 MB``, ``1,000 bytes``."""
    if count < 1_000_000:
        return f"{count:,} bytes"
    return f"{count / 1e6:.1f}".removesuffix(".0") + " MB"
