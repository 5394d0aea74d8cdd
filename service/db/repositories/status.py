"""Status events, and status changes of the subjects jobs work on."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.models import Base, FeedbackItem, Recording, StatusEvent, utcnow

# Subject types whose rows carry a `status` (and `error`) column; a job of kind
# "<subject_type>.<verb>" changes its subject's row. Later stages (recordings) add theirs here.
SUBJECT_MODELS: dict[str, type[Base]] = {"feedback": FeedbackItem, "recording": Recording}


def subject_type_of(kind: str) -> str:
    """The subject type a job kind works on: ``feedback.analyze`` -> ``feedback``."""
    return kind.split(".", 1)[0]


def add_event(
    session: Session, subject_type: str, subject_id: str, status: str, detail: str | None = None
) -> StatusEvent:
    """Record one status event (flushed, not committed)."""
    event = StatusEvent(
        subject_type=subject_type, subject_id=subject_id, status=status, detail=detail
    )
    session.add(event)
    return event


def set_subject_status(
    session: Session,
    subject_type: str,
    subject_id: str,
    status: str,
    detail: str | None = None,
    error: str | None = None,
) -> None:
    """Change a subject's status (when its table is known) and record the event; no commit."""
    model = SUBJECT_MODELS.get(subject_type)
    if model is not None:
        row = session.get(model, subject_id)
        if row is not None:
            row.status = status  # type: ignore[attr-defined]
            row.error = error  # type: ignore[attr-defined]
            row.updated_at = utcnow()  # type: ignore[attr-defined]
    add_event(session, subject_type, subject_id, status, detail if detail is not None else error)


def history(session: Session, subject_type: str, subject_id: str) -> list[StatusEvent]:
    """A subject's status events, oldest first."""
    query = (
        select(StatusEvent)
        .where(StatusEvent.subject_type == subject_type, StatusEvent.subject_id == subject_id)
        .order_by(StatusEvent.created_at, StatusEvent.id)
    )
    return list(session.scalars(query))
