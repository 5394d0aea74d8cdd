"""The durable job queue: the database is the source of truth, the broker only wakes workers.

Transactions: `enqueue` joins the caller's transaction (the API writes the item, its status
event and its job together, then commits, then announces). Every other function here is one
unit of the protocol and COMMITS the session itself, so a claim is visible to other workers
the moment it returns. Use a short-lived session per call; never hold one open while a job
runs (on SQLite every transaction holds the write lock).

Signatures (all times are timezone-aware UTC; ``now`` defaults to the current time):

    enqueue(session, kind, subject_id, run_after=None) -> Job
        Idempotent on (kind, subject_id): returns the existing job if there is one. No commit.
    claim(session, job_id, worker_id, lease_seconds, *, max_attempts=None) -> Job | None
        Atomic conditional UPDATE: wins only if the job is queued with run_after due, or
        running with its lease expired. Increments attempts, sets lease_until, marks the
        subject "running". None when someone else holds it, it is done/failed or not due.
        With max_attempts: a job whose attempts are used up is marked failed instead.
    claim_next(session, kinds, worker_id, lease_seconds, *, max_attempts=None) -> Job | None
        Claims the oldest due job of these kinds (FOR UPDATE SKIP LOCKED on PostgreSQL).
    renew(session, job_id, lease_seconds, *, worker_id=None) -> bool
        Extends the lease of a running job (of this worker, when given); False if lost.
    finish(session, job_id) -> None
        Marks the job done (for stages whose result is stored elsewhere).
    fail(session, job_id, error, retry_after, max_attempts) -> Job | None
        retry_after seconds (float) and attempts < max_attempts: back to queued with
        run_after = now + retry_after. retry_after None (a permanent error, e.g. bad input)
        or attempts used up: job failed and the subject's status "failed" with the reason.
    due_jobs(session, now=None, limit=100) -> list[Job]
        Queued jobs whose run_after is due and running jobs whose lease expired: what the
        sweeper re-announces. Read only (no commit needed, none done).
    not_due_until(session, job_id, now=None) -> tuple[str, datetime] | None
        (kind, run_after) of a queued job that is not due yet, else None: an announcement
        that came early is sent again for then. Read only.
    next_due(session, kinds) -> datetime | None
        The soonest moment a job of these kinds becomes claimable (a queued job's run_after,
        a running job's lease_until), None when there is none: how long a runner may sleep.
        Read only.
    get(session, job_id) -> Job | None

`service.db.repositories.analyses.complete_feedback_analysis(session, job_id, feedback_id,
result, versions) -> bool` stores a result, the item's "done" and the job's done in one
transaction (False, and nothing stored, when the item already had an analysis).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Update, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from service.db.models import Job, utcnow
from service.db.repositories.status import set_subject_status, subject_type_of

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


def get(session: Session, job_id: str) -> Job | None:
    """One job by id."""
    return session.get(Job, job_id)


def still_owned(session: Session, job_id: str, worker_id: str) -> bool:
    """Whether the job is running under this worker's lease (row locked on PostgreSQL until
    the caller's transaction ends, so that no one claims it before the caller records)."""
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    return job is not None and job.status == RUNNING and job.worker_id == worker_id


def enqueue(session: Session, kind: str, subject_id: str, run_after: datetime | None = None) -> Job:
    """Add a job (or return the existing one for this kind and subject); joins the caller's
    transaction."""
    existing = _find(session, kind, subject_id)
    if existing is not None:
        return existing
    job = Job(kind=kind, subject_id=subject_id, status=QUEUED, run_after=run_after or utcnow())
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        # A concurrent transaction enqueued the same work first; theirs is the job.
        existing = _find(session, kind, subject_id)
        if existing is None:
            raise
        return existing
    return job


def make_due(session: Session, kind: str, subject_id: str, now: datetime) -> list[str]:
    """A queued job of this kind and subject runs from ``now`` on; its id (none if not queued).

    Joins the caller's transaction.
    """
    job = _find(session, kind, subject_id)
    if job is None or job.status != QUEUED:
        return []
    job.run_after = min(job.run_after, now)
    return [job.id]


def _find(session: Session, kind: str, subject_id: str) -> Job | None:
    return session.scalar(select(Job).where(Job.kind == kind, Job.subject_id == subject_id))


def _claimable(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(Job.status == QUEUED, Job.run_after <= now),
        and_(Job.status == RUNNING, Job.lease_until < now),
    )


def claim(
    session: Session,
    job_id: str,
    worker_id: str,
    lease_seconds: float,
    *,
    max_attempts: int | None = None,
    now: datetime | None = None,
) -> Job | None:
    """Take a job if it is free; exactly one of several concurrent callers wins. Commits."""
    now = now or utcnow()
    if max_attempts is not None and _fail_if_exhausted(session, job_id, max_attempts, now):
        return None
    result = session.execute(_take([job_id], worker_id, lease_seconds, now))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.commit()
        return None
    job = session.get(Job, job_id, populate_existing=True)
    assert job is not None
    _record_running(session, job)
    session.commit()
    return job


def _take(ids: Sequence[str], worker_id: str, lease_seconds: float, now: datetime) -> Update:
    """The UPDATE that makes those of the jobs that are claimable this worker's (a claim)."""
    return (
        update(Job)
        .where(Job.id.in_(list(ids)), _claimable(now))
        .values(
            status=RUNNING,
            worker_id=worker_id,
            attempts=Job.attempts + 1,
            lease_until=now + timedelta(seconds=lease_seconds),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )


def _record_running(session: Session, job: Job) -> None:
    set_subject_status(
        session, subject_type_of(job.kind), job.subject_id, RUNNING, f"attempt {job.attempts}"
    )


def _fail_if_exhausted(session: Session, job_id: str, max_attempts: int, now: datetime) -> bool:
    """A job whose worker died on every attempt (a poison item) is failed, not retried forever."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or job.attempts < max_attempts:
        return False
    error = job.last_error or f"gave up after {job.attempts} attempts (worker lost each time)"
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, _claimable(now))
        .values(status=FAILED, lease_until=None, last_error=error, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:  # type: ignore[attr-defined]
        set_subject_status(session, subject_type_of(job.kind), job.subject_id, FAILED, error=error)
    session.commit()
    return True


def claim_next(
    session: Session,
    kinds: Sequence[str],
    worker_id: str,
    lease_seconds: float,
    *,
    max_attempts: int | None = None,
    now: datetime | None = None,
) -> Job | None:
    """Claim the oldest due job of the given kinds, or None when there is none. Commits."""
    now = now or utcnow()
    query = (
        select(Job.id)
        .where(Job.kind.in_(list(kinds)), _claimable(now))
        .order_by(Job.run_after)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Skip rows another worker is claiming right now instead of queueing behind it.
        job_id = session.scalar(query.with_for_update(skip_locked=True))
        if job_id is None:
            session.commit()
            return None
        return claim(session, job_id, worker_id, lease_seconds, max_attempts=max_attempts, now=now)
    # SQLite: transactions are serialised (BEGIN IMMEDIATE), so candidates are tried in turn.
    for job_id in session.scalars(query.limit(20)).all():
        job = claim(session, job_id, worker_id, lease_seconds, max_attempts=max_attempts, now=now)
        if job is not None:
            return job
    session.commit()
    return None


def claim_more(
    session: Session,
    kind: str,
    worker_id: str,
    lease_seconds: float,
    limit: int,
    *,
    now: datetime | None = None,
) -> list[Job]:
    """Claim up to ``limit`` due, never-tried jobs of one kind in one transaction. Commits.

    Only first attempts are taken: a job tried before may be the one that killed its worker,
    and it must not take a batch of others down with it again (it runs on its own).
    """
    now = now or utcnow()
    query = (
        select(Job.id)
        .where(Job.kind == kind, Job.attempts == 0, _claimable(now))
        .order_by(Job.run_after)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    if not ids:
        session.commit()
        return []
    session.execute(_take(ids, worker_id, lease_seconds, now))
    claimed = list(
        session.scalars(
            select(Job)
            .where(Job.id.in_(ids), Job.status == RUNNING, Job.worker_id == worker_id)
            .execution_options(populate_existing=True)
        )
    )
    for job in claimed:
        _record_running(session, job)
    session.commit()
    return claimed


def renew(
    session: Session,
    job_id: str,
    lease_seconds: float,
    *,
    worker_id: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Extend a running job's lease; False when the job is no longer ours. Commits."""
    now = now or utcnow()
    conditions = [Job.id == job_id, Job.status == RUNNING]
    if worker_id is not None:
        conditions.append(Job.worker_id == worker_id)
    result = session.execute(
        update(Job)
        .where(*conditions)
        .values(lease_until=now + timedelta(seconds=lease_seconds), updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def mark_done(session: Session, job_id: str, now: datetime | None = None) -> None:
    """Mark a job done inside the caller's transaction (no commit)."""
    now = now or utcnow()
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(status=DONE, lease_until=None, last_error=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def finish(session: Session, job_id: str) -> None:
    """Mark a job done. Commits."""
    mark_done(session, job_id)
    session.commit()


def fail(
    session: Session,
    job_id: str,
    error: str,
    retry_after: float | None,
    max_attempts: int,
    *,
    now: datetime | None = None,
) -> Job | None:
    """Record a failed attempt: re-queue it later, or fail the job and its subject. Commits."""
    now = now or utcnow()
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or job.status in (DONE, FAILED):
        session.commit()
        return job
    subject_type = subject_type_of(job.kind)
    job.last_error = error
    job.lease_until = None
    job.updated_at = now
    if retry_after is not None and job.attempts < max_attempts:
        job.status = QUEUED
        job.run_after = now + timedelta(seconds=retry_after)
        detail = f"attempt {job.attempts} failed, retrying in {retry_after:g}s: {error}"
        set_subject_status(session, subject_type, job.subject_id, QUEUED, detail)
    else:
        job.status = FAILED
        set_subject_status(session, subject_type, job.subject_id, FAILED, error=error)
    session.commit()
    return job


def due_jobs(session: Session, now: datetime | None = None, limit: int = 100) -> list[Job]:
    """Jobs the sweeper must re-announce: queued and due, or running with an expired lease."""
    now = now or utcnow()
    query = select(Job).where(_claimable(now)).order_by(Job.run_after).limit(limit)
    return list(session.scalars(query))


def not_due_until(
    session: Session, job_id: str, now: datetime | None = None
) -> tuple[str, datetime] | None:
    """(kind, run_after) when the job is queued but not due yet; None otherwise."""
    now = now or utcnow()
    row = session.execute(
        select(Job.kind, Job.run_after).where(
            Job.id == job_id, Job.status == QUEUED, Job.run_after > now
        )
    ).first()
    return (row.kind, row.run_after) if row is not None else None


def next_due(session: Session, kinds: Sequence[str]) -> datetime | None:
    """The soonest run_after of a queued job or lease_until of a running one, of these kinds."""
    queued = session.scalar(
        select(func.min(Job.run_after)).where(Job.kind.in_(list(kinds)), Job.status == QUEUED)
    )
    leased = session.scalar(
        select(func.min(Job.lease_until)).where(Job.kind.in_(list(kinds)), Job.status == RUNNING)
    )
    candidates = [t for t in (queued, leased) if t is not None]
    return min(candidates) if candidates else None


def count_by_status(session: Session) -> dict[str, int]:
    """How many jobs are in each status (for /metrics)."""
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
    return {status: count for status, count in rows}
