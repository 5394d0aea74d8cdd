"""Stored analyses: one per feedback item, written with its status change and its job's done."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db.models import Analysis
from service.db.repositories.jobs import DONE, mark_done
from service.db.repositories.status import set_subject_status


def get_for_feedback(session: Session, feedback_id: str) -> Analysis | None:
    """The analysis of one feedback item, if stored."""
    return session.scalar(select(Analysis).where(Analysis.feedback_id == feedback_id))


def complete_feedback_analysis(
    session: Session,
    job_id: str,
    feedback_id: str,
    result: dict[str, Any],
    versions: dict[str, Any],
) -> bool:
    """Store the result, the item's "done" and the job's done in one transaction. Commits.

    Returns False (storing nothing new, but still closing the job) when the item already
    has an analysis, e.g. a re-run after a worker died between its commit and its ack.
    """
    stored = add_feedback_analysis(session, job_id, feedback_id, result, versions)
    session.commit()
    return stored


def add_feedback_analysis(
    session: Session,
    job_id: str,
    feedback_id: str,
    result: dict[str, Any],
    versions: dict[str, Any],
) -> bool:
    """`complete_feedback_analysis` inside the caller's transaction (no commit), so that a
    batch of items can be stored in one."""
    if get_for_feedback(session, feedback_id) is None:
        try:
            with session.begin_nested():
                session.add(
                    Analysis(feedback_id=feedback_id, result=result, model_versions=versions)
                )
        except IntegrityError:
            # Another worker stored it between our check and our insert: the UNIQUE on
            # feedback_id keeps theirs, ours is dropped.
            pass
        else:
            set_subject_status(session, "feedback", feedback_id, DONE)
            mark_done(session, job_id)
            return True
    mark_done(session, job_id)
    return False
