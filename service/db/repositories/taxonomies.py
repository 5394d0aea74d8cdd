"""Taxonomy versions (immutable uploads) and their activations (the newest names the active one).

Validation of the YAML itself belongs to `nlp.taxonomy` and happens at the composition roots
before anything is stored here; this module only keeps the text, its identity and history.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db.models import Analysis, FeedbackItem, TaxonomyActivation, TaxonomyVersion
from service.errors import Conflict, NotFound


def parsed_hash(content: str) -> str:
    """A hash of the parsed YAML: comments and layout do not change it."""
    data = yaml.safe_load(content)
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ActiveRef:
    """What a worker needs to know whether its mapper is current (one cheap query)."""

    version_id: str
    name: str
    version: str
    content_hash: str


def get(session: Session, name: str, version: str) -> TaxonomyVersion | None:
    """A stored version by name and version."""
    return session.scalar(
        select(TaxonomyVersion).where(
            TaxonomyVersion.name == name, TaxonomyVersion.version == version
        )
    )


def require(session: Session, name: str, version: str) -> TaxonomyVersion:
    """A stored version, or NotFound naming it."""
    row = get(session, name, version)
    if row is None:
        raise NotFound(f"no taxonomy {name!r} version {version!r}", code="taxonomy_not_found")
    return row


def add_version(
    session: Session, name: str, version: str, content: str, case_type_count: int
) -> tuple[TaxonomyVersion, bool]:
    """Store a validated version; flushes, no commit.

    Returns:
        (row, created): created is False when the same content was already stored.

    Raises:
        Conflict: the name and version exist with different content (versions are immutable).
    """
    digest = parsed_hash(content)
    existing = get(session, name, version)
    if existing is None:
        row = TaxonomyVersion(
            name=name,
            version=version,
            content=content,
            content_hash=digest,
            case_type_count=case_type_count,
        )
        session.add(row)
        try:
            with session.begin_nested():
                session.flush()
        except IntegrityError:  # a concurrent upload of the same name and version won
            existing = get(session, name, version)
            assert existing is not None
        else:
            return row, True
    if existing.content_hash != digest:
        raise Conflict(
            f"taxonomy {name!r} version {version!r} already exists with different content; "
            "versions are immutable: upload it under a new version",
            code="taxonomy_version_exists",
            details={"name": name, "version": version},
        )
    return existing, False


def list_versions(session: Session, name: str | None = None) -> list[TaxonomyVersion]:
    """Stored versions, newest first."""
    query = select(TaxonomyVersion).order_by(TaxonomyVersion.created_at.desc())
    if name is not None:
        query = query.where(TaxonomyVersion.name == name)
    return list(session.scalars(query))


def active(session: Session) -> TaxonomyVersion | None:
    """The active version: the one of the newest activation."""
    return session.scalar(
        select(TaxonomyVersion)
        .join(TaxonomyActivation, TaxonomyActivation.version_id == TaxonomyVersion.id)
        .order_by(TaxonomyActivation.id.desc())
        .limit(1)
    )


def active_ref(session: Session) -> ActiveRef | None:
    """The active version's identity without its text (what workers poll)."""
    row = session.execute(
        select(
            TaxonomyVersion.id,
            TaxonomyVersion.name,
            TaxonomyVersion.version,
            TaxonomyVersion.content_hash,
        )
        .join(TaxonomyActivation, TaxonomyActivation.version_id == TaxonomyVersion.id)
        .order_by(TaxonomyActivation.id.desc())
        .limit(1)
    ).first()
    return None if row is None else ActiveRef(row[0], row[1], row[2], row[3])


def activate(session: Session, row: TaxonomyVersion, reason: str = "activate") -> None:
    """Make a version the active one (no commit); activating the active one is a no-op."""
    current = active(session)
    if current is not None and current.id == row.id:
        return
    session.add(TaxonomyActivation(version_id=row.id, reason=reason))
    session.flush()


def rollback(session: Session) -> TaxonomyVersion:
    """Re-activate the version that was active before the current one (no commit).

    Raises:
        Conflict: nothing was active before the current version.
    """
    history = list(
        session.scalars(
            select(TaxonomyActivation.version_id).order_by(TaxonomyActivation.id.desc())
        )
    )
    if not history:
        raise Conflict("no taxonomy is active", code="nothing_to_roll_back")
    previous = next((v for v in history[1:] if v != history[0]), None)
    if previous is None:
        raise Conflict(
            "no taxonomy version was active before the current one", code="nothing_to_roll_back"
        )
    row = session.get(TaxonomyVersion, previous)
    assert row is not None
    activate(session, row, reason="rollback")
    return row


def history(session: Session, limit: int = 20) -> list[tuple[TaxonomyActivation, TaxonomyVersion]]:
    """The newest activations with their versions."""
    rows = session.execute(
        select(TaxonomyActivation, TaxonomyVersion)
        .join(TaxonomyVersion, TaxonomyActivation.version_id == TaxonomyVersion.id)
        .order_by(TaxonomyActivation.id.desc())
        .limit(limit)
    ).all()
    return [(a, v) for a, v in rows]


def ensure_active(
    session: Session, name: str, version: str, content: str, case_type_count: int
) -> TaxonomyVersion:
    """Store and activate a default version when no version is active yet (commits)."""
    current = active(session)
    if current is not None:
        return current
    row, _ = add_version(session, name, version, content, case_type_count)
    activate(session, row, reason="default")
    session.commit()
    return row


def count_activations(session: Session) -> int:
    """How many activations are on record."""
    return int(session.scalar(select(func.count()).select_from(TaxonomyActivation)) or 0)


@dataclass(frozen=True)
class StoredFeedback:
    """A stored, analysed feedback item as `diff` and `suggest` see it."""

    id: str
    text: str
    created_at: datetime
    result: dict[str, Any]


def recent_analysed(
    session: Session, since: datetime | None = None, limit: int = 2000
) -> list[StoredFeedback]:
    """The newest analysed feedback items (newest first), with their stored analysis."""
    query = (
        select(FeedbackItem.id, FeedbackItem.text, FeedbackItem.created_at, Analysis.result)
        .join(Analysis, Analysis.feedback_id == FeedbackItem.id)
        .order_by(FeedbackItem.created_at.desc())
        .limit(limit)
    )
    if since is not None:
        query = query.where(FeedbackItem.created_at >= since)
    return [StoredFeedback(r[0], r[1], r[2], r[3]) for r in session.execute(query)]
