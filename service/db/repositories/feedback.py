"""Feedback items: idempotent acceptance, and reading an item back with its analysis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from service.db.models import Analysis, FeedbackItem, StatusEvent
from service.db.repositories import analyses, intake, status

ANALYZE_KIND = "feedback.analyze"
SUBJECT_TYPE = "feedback"


@dataclass(frozen=True)
class Accepted:
    """The outcome for one submitted item."""

    item: FeedbackItem
    created: bool
    job_id: str | None


@dataclass(frozen=True)
class FeedbackView:
    """One item with its status history and stored analysis."""

    item: FeedbackItem
    events: list[StatusEvent]
    analysis: Analysis | None


def accept(
    session: Session, fields: list[dict[str, Any]], idempotency_key: str | None = None
) -> list[Accepted]:
    """Store new items with their "queued" event and analysis job; no commit.

    ``fields`` holds the FeedbackItem columns of each item (``extra`` for the metadata).
    An item whose ``external_id`` (or, for a single item, ``idempotency_key``) is already
    stored is returned as it is, with ``created=False``: retries and concurrent duplicates
    never make a second item, because the UNIQUE constraints decide and a losing insert is
    rolled back to its savepoint.
    """
    if idempotency_key is not None and len(fields) != 1:
        raise ValueError("an idempotency key applies to a single item")
    outcomes: list[Accepted] = []
    for values in fields:
        existing = _existing(session, values["external_id"], idempotency_key)
        if existing is not None:
            outcomes.append(Accepted(existing, False, None))
            continue
        outcomes.append(_insert(session, values, idempotency_key))
    return outcomes


def _existing(
    session: Session, external_id: str, idempotency_key: str | None
) -> FeedbackItem | None:
    return intake.find_existing(session, FeedbackItem, external_id, idempotency_key)


def _insert(session: Session, values: dict[str, Any], idempotency_key: str | None) -> Accepted:
    return Accepted(
        *intake.insert_queued(
            session, FeedbackItem, values, idempotency_key, SUBJECT_TYPE, ANALYZE_KIND
        )
    )


def get(session: Session, feedback_id: str) -> FeedbackView | None:
    """An item with its history and analysis, or None."""
    item = session.get(FeedbackItem, feedback_id)
    if item is None:
        return None
    return FeedbackView(
        item=item,
        events=status.history(session, SUBJECT_TYPE, feedback_id),
        analysis=analyses.get_for_feedback(session, feedback_id),
    )


def get_item(session: Session, feedback_id: str) -> FeedbackItem | None:
    """Just the item (for the analysis stage)."""
    return session.get(FeedbackItem, feedback_id)
