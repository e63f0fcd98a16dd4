"""Every failure of the web service as JSON ``{"error": {"status", "code", "message"}}``.

``ApiError`` is raised anywhere in a request; ``install_error_handlers`` turns it, the
routing and validation errors of FastAPI, and any unexpected exception into that body
with one sentence. Messages may quote what a client sent (a model name, a path) or what
a decoder said about its bytes, so ``plain_text`` makes every message printable, free
of byte dumps and short. Tracebacks go to the server log only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from depthlens.serve.schemas import ErrorBody, ErrorDetail

__all__ = ["ApiError", "error_response", "install_error_handlers", "plain_text"]

# The longest message, and the longest quote of a client's value inside one.
MAX_MESSAGE_CHARS = 300
MAX_QUOTE_CHARS = 60

# A Python bytes literal as decoders print them: b'\x89PNG...' or b"...".
_BYTES_LITERAL = re.compile(r"""\bb(['"])(?:\\.|(?!\1).)*\1""")


class ApiError(HTTPException):
    """An error response with a stable ``code`` and a one-sentence message.

    Being an HTTPException, it may be raised anywhere in a request, even while FastAPI
    reads the body (which turns other exceptions there into a generic 400), and still
    reach the app's error handler.
    """

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(status, message, headers)
        self.code = code


def plain_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` safe to show: bytes literals become "…", characters that do not print
    (control codes, line breaks) become spaces, runs of spaces one, and anything past
    ``limit`` characters is cut at a word and ends in "…"."""
    text = _BYTES_LITERAL.sub("…", text)
    text = "".join(c if c.isprintable() else " " for c in text)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0].rstrip(".,;:") + "…"
    return text


def quoted(value: object) -> str:
    """A client's value to quote inside a message: printable and at most a few words."""
    return plain_text(str(value), MAX_QUOTE_CHARS)


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The JSON error body every failure answers with."""
    message = plain_text(message)
    if not message.endswith("."):
        message += "."
    body = ErrorBody(error=ErrorDetail(status=status, code=code, message=message))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI, extra_headers: Mapping[str, str]) -> None:
    """Answer HTTP errors, validation errors and unexpected exceptions as JSON.

    ``extra_headers`` go on the 500 answer, which Starlette sends from outside every
    middleware of the app.
    """

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, ApiError):
            return error_response(exc.status_code, exc.code, exc.detail, exc.headers)
        code, message = _http_error_text(request, exc.status_code)
        return error_response(exc.status_code, code, message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(*_validation_error_text(exc.errors()))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises the exception after this answer, so the server logs it,
        # and uvicorn then drops the connection: "Connection: close" tells the client,
        # which would otherwise send its next request into a closed socket.
        return error_response(
            500,
            "internal_error",
            "The server failed on this request; the details are in its log.",
            {**extra_headers, "Connection": "close"},
        )


def _http_error_text(request: Request, status: int) -> tuple[str, str]:
    """The code and sentence for an HTTP error raised by routing or parsing."""
    where = quoted(f"{request.method} {request.url.path}")
    if status == 404:
        return "not_found", f"There is nothing at {where}; the API is described at /docs."
    if status == 405:
        return "method_not_allowed", f"{where} is not allowed; the API is described at /docs."
    if status == 400:
        return "bad_request", "The request body is not a well-formed multipart form."
    return "http_error", f"{HTTPStatus(status).phrase}."


def _validation_error_text(errors: Sequence[Any]) -> tuple[int, str, str]:
    """Status, code and sentence for FastAPI's request validation errors (first one)."""
    fields = [".".join(str(part) for part in error["loc"][1:]) for error in errors]
    if "image" in fields:
        return 400, "missing_image", "Send the photo as a file in the multipart form field 'image'."
    problem = plain_text(str(errors[0]["msg"])).removeprefix("Value error, ").rstrip(".")
    problem = problem[:1].lower() + problem[1:]
    where = f"form field '{quoted(fields[0])}'" if fields[0] else "request body"
    if errors[0]["loc"][0] == "path":
        where = f"path parameter '{quoted(fields[0])}'"
    return 422, "invalid_parameter", f"Invalid {where}: {problem}."
