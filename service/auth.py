"""API keys: ``ut_<prefix>_<secret>``; only the sha256 of the secret is stored.

The prefix is public (it names the key in lists and logs); the secret is shown once, at
creation. Scopes: ``ingest`` (send feedback), ``read`` (read results, synchronous analysis),
``taxonomy-admin`` (change case types), ``admin`` (everything).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session

from service.db.models import ApiKey
from service.db.repositories import api_keys
from service.errors import ValidationFailed

SCOPES = ("ingest", "read", "taxonomy-admin", "admin")
ADMIN_SCOPE = "admin"
KEY_PREFIX = "ut"


@dataclass(frozen=True)
class IssuedKey:
    """A newly created key: the row and the only copy of the full key string."""

    key: ApiKey
    token: str


def hash_secret(secret: str) -> str:
    """The stored form of a secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parse_scopes(raw: str | list[str]) -> list[str]:
    """Scopes from a comma-separated string or a list, checked against the known ones."""
    items = raw.split(",") if isinstance(raw, str) else raw
    scopes = sorted({s.strip() for s in items if s.strip()})
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValidationFailed(
            f"unknown or missing scopes {unknown}; choose from {', '.join(SCOPES)}",
            code="invalid_scopes",
        )
    return scopes


def create_key(session: Session, name: str, scopes: list[str]) -> IssuedKey:
    """Make a key and store its hash (no commit)."""
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    row = api_keys.create(session, name, prefix, hash_secret(secret), parse_scopes(scopes))
    return IssuedKey(row, f"{KEY_PREFIX}_{prefix}_{secret}")


def authenticate(session: Session, token: str) -> ApiKey | None:
    """The active key matching ``token``, or None (malformed, unknown, revoked or wrong)."""
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    key = api_keys.by_prefix(session, parts[1])
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.secret_hash, hash_secret(parts[2])):
        return None
    return key


def has_scope(key: ApiKey, scope: str) -> bool:
    """Whether the key grants ``scope`` (``admin`` grants every scope)."""
    return scope in key.scopes or ADMIN_SCOPE in key.scopes
