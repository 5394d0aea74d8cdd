"""Idempotent intake shared by every subject the API accepts (feedback items, recordings).

A subject is stored once per external id (or idempotency key) together with its "queued"
status event and its first job; the UNIQUE constraints settle concurrent duplicates, a losing
insert rolling back to its savepoint and returning the row that won.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db.models import Base
from service.db.repositories import jobs, status

SubjectT = TypeVar("SubjectT", bound=Base)


def find_existing(
    session: Session, model: type[SubjectT], external_id: str, idempotency_key: str | None
) -> SubjectT | None:
    """The row already stored under this idempotency key, else under this external id."""
    columns: Any = model
    if idempotency_key is not None:
        found = session.scalar(select(model).where(columns.idempotency_key == idempotency_key))
        if found is not None:
            return found
    return session.scalar(select(model).where(columns.external_id == external_id))


def insert_queued(
    session: Session,
    model: type[SubjectT],
    values: dict[str, Any],
    idempotency_key: str | None,
    subject_type: str,
    job_kind: str,
) -> tuple[SubjectT, bool, str | None]:
    """Insert a subject with its "queued" event and first job; no commit.

    Returns the row, whether it was created, and the new job's id (None for a duplicate).
    """
    row = model(**values, idempotency_key=idempotency_key, status=jobs.QUEUED)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        # A concurrent request stored the same subject between our check and our insert.
        existing = find_existing(session, model, values["external_id"], idempotency_key)
        if existing is None:
            raise
        return existing, False, None
    row_id: str = row.id  # type: ignore[attr-defined]
    status.add_event(session, subject_type, row_id, jobs.QUEUED, "accepted")
    job = jobs.enqueue(session, job_kind, row_id)
    return row, True, job.id
