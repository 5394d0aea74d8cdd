"""Request and response bodies of detections, outcomes, webhooks, trends and incidents."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

EventType = Literal["detection.created", "detection.updated"]
ALL_EVENTS: tuple[EventType, ...] = ("detection.created", "detection.updated")


class DetectionOut(BaseModel):
    """One detection: the detector's object (case type, signals, evidence, priority, ...)
    plus its delivery state. ``seq`` changes whenever Undertone changes the detection."""

    model_config = ConfigDict(extra="allow")

    id: str
    seq: int
    version: int
    status: Literal["open", "acked", "closed"]
    kind: str
    case_type: dict[str, Any] | None = None
    signals: list[dict[str, Any]] = Field(default_factory=list)
    confidence: float | None = None
    evidence: list[dict[str, Any]] = Field(default_factory=list)
    priority: dict[str, Any] | None = None
    due_by: str | None = None
    customer_id: str | None = None
    employee_id: str | None = None
    incident_id: str | None = None
    outcome: str | None = None
    outcome_notes: str | None = None
    sources: list[dict[str, str]] = Field(default_factory=list)


class DetectionPage(BaseModel):
    """A page of the pull. Store ``next_cursor`` and send it back as ``cursor``."""

    items: list[DetectionOut]
    next_cursor: str
    has_more: bool


class OutcomeIn(BaseModel):
    """What the case system concluded."""

    model_config = ConfigDict(extra="forbid")

    outcome: Literal["recovered", "not_recovered", "not_a_complaint", "duplicate"]
    notes: str | None = Field(default=None, max_length=5000)


class FalsePositiveRow(BaseModel):
    """Confirmed verdicts and false positives of one case type or signal."""

    model_config = ConfigDict(extra="allow")

    confirmed: int
    false_positives: int
    false_positive_rate: float | None


class FalsePositiveReport(BaseModel):
    """Confirmed false-positive rates (outcome ``not_a_complaint`` over all verdicts but
    ``duplicate``)."""

    by_case_type: list[FalsePositiveRow]
    by_signal: list[FalsePositiveRow]


class WebhookIn(BaseModel):
    """A new subscription."""

    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl
    event_types: list[EventType] = Field(default_factory=lambda: list(ALL_EVENTS), min_length=1)
    description: str | None = Field(default=None, max_length=500)


class WebhookOut(BaseModel):
    """A subscription (its secret is shown only when created)."""

    id: str
    url: str
    event_types: list[str]
    description: str | None
    active: bool
    created_at: datetime
    circuit: Literal["closed", "open", "half-open"] = Field(
        description="closed: deliveries go; open: after `consecutive_failures` failed attempts "
        "in a row they are held (no attempt spent) until `circuit_open_until`; half-open: the "
        "next attempt probes the receiver"
    )
    consecutive_failures: int
    circuit_open_until: datetime | None


class WebhookCreated(WebhookOut):
    """A new subscription with its signing secret: store it now, it is not shown again."""

    secret: str


class DeliveryOut(BaseModel):
    """One message to one subscriber and where it stands."""

    id: str
    message_id: str
    event_type: str
    detection_id: str | None
    detection_seq: int | None
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime


class DeliveryList(BaseModel):
    """Deliveries of a subscription, newest first."""

    items: list[DeliveryOut]


class TrendPoint(BaseModel):
    """Detections of one key in one time bucket."""

    dimension: str
    key: str
    bucket_start: str
    count: int


class TrendsOut(BaseModel):
    """Detection counts over time."""

    bucket: Literal["hour", "day"]
    since: datetime
    until: datetime
    points: list[TrendPoint]


class IncidentOut(BaseModel):
    """A spike of detections for one key in one window."""

    id: str
    dimension: str
    key: str
    key_name: str | None
    window_start: datetime
    window_end: datetime
    count: int
    expected: float
    p_value: float
    status: str
    created_at: datetime
    updated_at: datetime
    detection_ids: list[str] | None = None
