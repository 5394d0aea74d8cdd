"""Errors of the service shell: one base class carrying its HTTP status and a stable code.

The API renders every one of them (and request validation errors) through a single handler
as ``{"error": {"code": ..., "message": ..., "details": ...}}``.
"""

from __future__ import annotations

from typing import Any


class UndertoneError(Exception):
    """Base of the service's errors; ``code`` is stable, ``message`` is for people."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of this error."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(UndertoneError):
    """The request cannot be read (malformed JSON, not UTF-8, conflicting headers)."""

    status_code = 400
    code = "bad_request"


class Unauthenticated(UndertoneError):
    """No valid API key was presented."""

    status_code = 401
    code = "unauthenticated"


class Forbidden(UndertoneError):
    """The API key lacks the scope this operation needs."""

    status_code = 403
    code = "insufficient_scope"


class NotFound(UndertoneError):
    """No such resource."""

    status_code = 404
    code = "not_found"


class PayloadTooLarge(UndertoneError):
    """The body (or the number of items in it) is over the limit."""

    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(UndertoneError):
    """The body is not of a content type this endpoint reads."""

    status_code = 415
    code = "unsupported_media_type"


class ValidationFailed(UndertoneError):
    """The body is well-formed but its content breaks the schema or a limit."""

    status_code = 422
    code = "validation_error"


class ServiceUnavailable(UndertoneError):
    """A dependency (analysis backend, database) cannot serve the request right now."""

    status_code = 503
    code = "service_unavailable"


class Conflict(UndertoneError):
    """The request contradicts what is stored (e.g. a changed taxonomy under a used version)."""

    status_code = 409
    code = "conflict"


class SecretUndecryptable(UndertoneError):
    """A stored secret is encrypted and no configured key decrypts it (a key is missing)."""

    status_code = 503
    code = "secret_undecryptable"
