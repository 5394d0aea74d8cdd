"""Tables of detections and their delivery: detections, their sources, customer baselines,
webhook subscriptions and deliveries, incidents.

Kept in their own module (same `Base`, same naming convention as `service.db.models`) so
that the detection work and the other stages do not edit one file side by side.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.db.models import Base, new_id, utcnow


class Incident(Base):
    """A spike of detections for one key (case type, team, ...) in one time window."""

    __tablename__ = "incidents"
    __table_args__ = (UniqueConstraint("dimension", "key", "window_start"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    dimension: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(200))
    key_name: Mapped[str | None] = mapped_column(String(200), default=None)
    window_start: Mapped[datetime] = mapped_column()
    window_end: Mapped[datetime] = mapped_column()
    count: Mapped[int] = mapped_column(Integer, default=0)
    # The mean count of the previous windows, and the Poisson tail of `count` under it.
    expected: Mapped[float] = mapped_column(Float, default=0.0)
    p_value: Mapped[float] = mapped_column(Float, default=1.0)
    status: Mapped[str] = mapped_column(String(20), default="open")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Detection(Base):
    """One detection (the contract's detection object in ``payload``) and its delivery state.

    ``seq`` is the pull cursor: assigned from max(seq)+1 under a lock held to commit, so seq
    order is commit order; it is re-assigned whenever Undertone changes the detection
    (merged evidence, incident), which re-emits it to pollers and webhooks.
    """

    __tablename__ = "detections"
    __table_args__ = (
        UniqueConstraint("seq"),
        Index("ix_detections_merge_key", "customer_id", "case_type_id", "status"),
        Index("ix_detections_occurred_at", "occurred_at"),
        Index("ix_detections_incident_id", "incident_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(20))
    # open -> acked -> closed (an outcome), or open -> closed.
    status: Mapped[str] = mapped_column(String(20), default="open")
    case_type_id: Mapped[str | None] = mapped_column(String(200), default=None)
    case_type_name: Mapped[str | None] = mapped_column(String(200), default=None)
    customer_id: Mapped[str | None] = mapped_column(String(200), default=None)
    employee_id: Mapped[str | None] = mapped_column(String(200), default=None)
    team: Mapped[str | None] = mapped_column(String(200), default=None)
    location: Mapped[str | None] = mapped_column(String(200), default=None)
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    priority_score: Mapped[float | None] = mapped_column(Float, default=None)
    due_by: Mapped[datetime | None] = mapped_column(default=None)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    outcome: Mapped[str | None] = mapped_column(String(40), default=None)
    outcome_notes: Mapped[str | None] = mapped_column(Text, default=None)
    acked_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    incident_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("incidents.id", ondelete="SET NULL"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DetectionSource(Base):
    """A feedback item or call that contributed to a detection."""

    __tablename__ = "detection_sources"
    __table_args__ = (UniqueConstraint("detection_id", "source_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    detection_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("detections.id", ondelete="CASCADE")
    )
    source_type: Mapped[str] = mapped_column(String(20))
    source_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DetectionEvaluation(Base):
    """The one evaluation of an analysed item: its row makes a re-run a no-op."""

    __tablename__ = "detection_evaluations"

    subject_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    source_type: Mapped[str] = mapped_column(String(20))
    detection_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CustomerBaseline(Base):
    """A customer's running baseline across channels (the detector's state, as JSON)."""

    __tablename__ = "customer_baselines"

    customer_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookSubscription(Base):
    """A receiver of detection events. The signing secret must be kept to sign each message."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(500), default=None)
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    # "fernet:<token>" (171 characters for a whsec_ secret) when webhooks.secret_keys is set,
    # else the secret itself; read it through repositories.webhooks.signing_secret.
    secret: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Circuit breaker (repositories.webhooks): failed attempts in a row across this
    # subscriber's deliveries, and while the circuit is open, when the next probe may go.
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    circuit_open_until: Mapped[datetime | None] = mapped_column(default=None)


class WebhookDelivery(Base):
    """One message to one subscriber: the body is fixed at creation, the id on every retry."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "detection_id", "detection_seq"),
        Index("ix_webhook_deliveries_subscription_status", "subscription_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    subscription_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    event_type: Mapped[str] = mapped_column(String(60))
    detection_id: Mapped[str | None] = mapped_column(String(36), default=None)
    detection_seq: Mapped[int | None] = mapped_column(BigInteger, default=None)
    body: Mapped[str] = mapped_column(Text)
    # pending -> delivered, or pending -> dead (replay: dead -> pending).
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
