"""Tables of Undertone, portable between SQLite and PostgreSQL.

Ids are UUID strings (so SQLite and PostgreSQL store the same thing and ids can be made
before insert); timestamps are timezone-aware UTC; free-form data is JSON.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names so Alembic migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A fresh UUID4 as a string."""
    return str(uuid.uuid4())


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp; SQLite drops the zone, so values are read back as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a timezone-aware column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


class ApiKey(Base):
    """An API key: only the sha256 of its secret is kept."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class FeedbackItem(Base):
    """One piece of customer feedback as accepted by the API."""

    __tablename__ = "feedback_items"
    __table_args__ = (
        Index("ix_feedback_items_customer_id", "customer_id"),
        Index("ix_feedback_items_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
    text: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(20))
    score: Mapped[float | None] = mapped_column(Float, default=None)
    scale: Mapped[str | None] = mapped_column(String(20), default=None)
    customer_id: Mapped[str | None] = mapped_column(String(200), default=None)
    occurred_at: Mapped[datetime | None] = mapped_column(default=None)
    employee_id: Mapped[str | None] = mapped_column(String(200), default=None)
    team: Mapped[str | None] = mapped_column(String(200), default=None)
    location: Mapped[str | None] = mapped_column(String(200), default=None)
    journey: Mapped[str | None] = mapped_column(String(200), default=None)
    segment: Mapped[str | None] = mapped_column(String(200), default=None)
    language: Mapped[str | None] = mapped_column(String(20), default=None)
    # "metadata" is reserved by SQLAlchemy's declarative base, hence the attribute name.
    extra: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Analysis(Base):
    """The stored analysis of one feedback item (the contract object); one per item."""

    __tablename__ = "analyses"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    feedback_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("feedback_items.id", ondelete="CASCADE"), unique=True
    )
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    model_versions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StatusEvent(Base):
    """Every status change of a subject (a feedback item, a recording, ...)."""

    __tablename__ = "status_events"
    __table_args__ = (Index("ix_status_events_subject", "subject_type", "subject_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """A unit of stage work; the database is the source of truth, the queue only wakes workers."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("kind", "subject_id"),
        Index("ix_jobs_status_run_after", "status", "run_after"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(60))
    subject_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(200), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Recording(Base):
    """An uploaded call recording: its metadata, where its audio is, and its transcript.

    ``audio_file`` is a name relative to ``Settings.audio_dir``, so API and workers on
    different machines find the file as long as they mount the same data directory.
    """

    __tablename__ = "recordings"
    __table_args__ = (Index("ix_recordings_created_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
    channel: Mapped[str] = mapped_column(String(20), default="call")
    score: Mapped[float | None] = mapped_column(Float, default=None)
    scale: Mapped[str | None] = mapped_column(String(20), default=None)
    customer_id: Mapped[str | None] = mapped_column(String(200), default=None)
    occurred_at: Mapped[datetime | None] = mapped_column(default=None)
    employee_id: Mapped[str | None] = mapped_column(String(200), default=None)
    team: Mapped[str | None] = mapped_column(String(200), default=None)
    location: Mapped[str | None] = mapped_column(String(200), default=None)
    journey: Mapped[str | None] = mapped_column(String(200), default=None)
    segment: Mapped[str | None] = mapped_column(String(200), default=None)
    language: Mapped[str | None] = mapped_column(String(20), default=None)
    extra: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    layout: Mapped[str] = mapped_column(String(40))
    filename: Mapped[str | None] = mapped_column(String(300), default=None)
    audio_file: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    container: Mapped[str | None] = mapped_column(String(100), default=None)
    codec: Mapped[str | None] = mapped_column(String(100), default=None)
    duration: Mapped[float | None] = mapped_column(Float, default=None)
    channels: Mapped[int | None] = mapped_column(Integer, default=None)
    sample_rate: Mapped[int | None] = mapped_column(Integer, default=None)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    # Percent of the audio transcribed so far (0-100), written a few times per audio minute.
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # SQL NULL (not JSON null) until transcribed: "transcript IS NULL" guards the one write.
    transcript: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RecordingAnalysis(Base):
    """The scored call (turn scores, trajectory, peak-end); one per recording."""

    __tablename__ = "recording_analyses"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    recording_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("recordings.id", ondelete="CASCADE"), unique=True
    )
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    model_versions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TaxonomyVersion(Base):
    """One uploaded taxonomy version: immutable YAML text (name + version are unique)."""

    __tablename__ = "taxonomy_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    # The file exactly as uploaded (comments kept), and a hash of its parsed content, so an
    # upload that only changes comments or layout is the same version, not a conflict.
    content: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    case_type_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TaxonomyActivation(Base):
    """Each activation of a taxonomy version; the newest row names the active version.

    Kept as a history (not a flag on the version) so that a rollback knows what was active
    before and every change of the active version is on record.
    """

    __tablename__ = "taxonomy_activations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("taxonomy_versions.id", ondelete="CASCADE")
    )
    reason: Mapped[str] = mapped_column(String(40), default="activate")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
