"""Reading JSON bodies strictly: content type (415), size (413) and UTF-8 (400) come first.

`JsonBodyRoute` wraps FastAPI's handler so that these checks answer before FastAPI parses
the JSON; routes that read other bodies (multipart uploads) use the default route class.
"""

from __future__ import annotations

import email.message
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from service.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

BODY_METHODS = {"POST", "PUT", "PATCH"}


def _check_content_type(value: str | None) -> None:
    if not value:
        raise UnsupportedMediaType("missing Content-Type: send the body as application/json")
    message = email.message.Message()
    message["content-type"] = value
    subtype = message.get_content_subtype()
    is_json = message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )
    if not is_json:
        raise UnsupportedMediaType(
            f"Content-Type {message.get_content_type()} is not accepted: send application/json"
        )
    charset = message.get_param("charset")
    if isinstance(charset, str) and charset.lower().replace("-", "") != "utf8":
        raise UnsupportedMediaType(f"charset {charset} is not accepted: send UTF-8")


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The body, refusing it as soon as it grows past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes, the maximum is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over the maximum of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class JsonBodyRoute(APIRoute):
    """A route whose body must be UTF-8 JSON of at most ``app.state.max_request_bytes``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            if request.method in BODY_METHODS:
                _check_content_type(request.headers.get("content-type"))
                body = await read_limited_body(request, request.app.state.max_request_bytes)
                try:
                    body.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise BadRequest(
                        f"the body is not valid UTF-8 (byte {e.start})", code="invalid_encoding"
                    ) from e
                # Starlette serves request.body()/json() from this cache from now on.
                request._body = body
            return await handler(request)

        return checked
