"""Request dependencies: a database session and the API key's scopes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from service import auth
from service.db.models import ApiKey
from service.db.repositories import api_keys
from service.errors import Forbidden, Unauthenticated


def get_session(request: Request) -> Iterator[Session]:
    """A session for this request, closed afterwards (routes commit explicitly)."""
    session: Session = request.app.state.session_factory()
    try:
        yield session
    finally:
        session.close()


def _presented_token(authorization: str | None, x_api_key: str | None) -> str | None:
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        raise Unauthenticated("the Authorization header must read 'Bearer <api key>'")
    return None


def require_scope(scope: str) -> Callable[..., ApiKey | None]:
    """A dependency admitting only keys with ``scope`` (any caller when auth is disabled)."""

    def check(
        request: Request,
        session: Session = Depends(get_session),
        authorization: str | None = Header(default=None),
        x_api_key: str | None = Header(default=None),
    ) -> ApiKey | None:
        if not request.app.state.settings.api.auth_enabled:
            return None
        token = _presented_token(authorization, x_api_key)
        if token is None:
            raise Unauthenticated(
                "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
                " (create one with `undertone keys create --name NAME --scopes ingest,read`)"
            )
        key = auth.authenticate(session, token)
        if key is None:
            raise Unauthenticated(
                "the API key is unknown, revoked or malformed", code="invalid_api_key"
            )
        if not auth.has_scope(key, scope):
            raise Forbidden(
                f"this API key lacks the '{scope}' scope (it has: {', '.join(key.scopes)})",
                details={"required_scope": scope, "key_scopes": key.scopes},
            )
        if api_keys.touch(session, key):
            session.commit()
        return key

    return check
