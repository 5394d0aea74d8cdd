"""API keys: only a sha256 of each secret is stored."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.models import ApiKey, utcnow

# Writing last_used_at on every request would turn each read into a write; once a minute is
# enough to tell a used key from a forgotten one.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def create(session: Session, name: str, prefix: str, secret_hash: str, scopes: list[str]) -> ApiKey:
    """Store a key (flushed, not committed)."""
    key = ApiKey(name=name, prefix=prefix, secret_hash=secret_hash, scopes=sorted(set(scopes)))
    session.add(key)
    session.flush()
    return key


def by_prefix(session: Session, prefix: str) -> ApiKey | None:
    """The key with this public prefix, revoked or not."""
    return session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))


def list_all(session: Session) -> list[ApiKey]:
    """Every key, oldest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))


def count_active(session: Session) -> int:
    """How many keys are not revoked."""
    query = select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None))
    return int(session.scalar(query) or 0)


def revoke(session: Session, key_id_or_prefix: str) -> ApiKey | None:
    """Revoke a key by id or prefix (no commit); None when there is no such key."""
    key = session.get(ApiKey, key_id_or_prefix) or by_prefix(session, key_id_or_prefix)
    if key is not None and key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


def touch(session: Session, key: ApiKey, now: datetime | None = None) -> bool:
    """Note the key's use when the last note is old; True when something needs committing."""
    now = now or utcnow()
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_RESOLUTION:
        return False
    key.last_used_at = now
    return True
