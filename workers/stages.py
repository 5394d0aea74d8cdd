"""Stage functions: what the embedded runner and the Celery tasks both run for one job.

`run_job` owns the job protocol (claim, lease heartbeat, done or fail with backoff); a
handler owns one kind of work. A handler reads its inputs with a short session, does the
heavy work with no session open (on SQLite an open transaction holds the write lock), and
stores its result, the subject's status and the job's done in one transaction.

A job put back for a later attempt (a handler raised, or a handler counted a failure itself
and answered `Rescheduled`) is announced for its due time with ``announce_at`` (Celery: a task
with that ETA), so it runs then, not when a sweep finds it. An announcement that arrives
before the job is due (ETAs are capped, clocks differ) claims nothing and is put back for the
due time; one that arrives twice or after the job ran claims nothing either: the job row's due
time and lease decide, never the message.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from service.contract import validate_analysis
from service.db.models import FeedbackItem
from service.db.repositories import analyses, detections, jobs, status
from workers.errors import PermanentStageError, UnknownJobKind

log = structlog.get_logger(__name__)

SessionFactory = sessionmaker[Session]

Announce = Callable[[str, str], None]
"""Announces a committed job: ``announce(kind, job_id)`` (Celery: send the task)."""

AnnounceAt = Callable[[str, str, datetime], None]
"""Announces a committed job for when it is due: ``announce_at(kind, job_id, due)`` (Celery:
send the task with that ETA). Without one, the runner's own polling finds the job when due."""

FEEDBACK_ANALYZE = "feedback.analyze"
# Feedback columns handed to the analyzer with the text (the contract's optional input fields).
_ANALYZER_FIELDS = (
    "channel",
    "score",
    "scale",
    "customer_id",
    "employee_id",
    "team",
    "location",
    "journey",
    "segment",
    "language",
)


@dataclass(frozen=True)
class ClaimedJob:
    """The job a handler works on, detached from any session."""

    id: str
    kind: str
    subject_id: str
    attempts: int
    worker_id: str


@dataclass(frozen=True)
class Rescheduled:
    """A handler's answer when its attempt failed and it has itself put the job back.

    ``attempt`` counts as the handler does (a delivery counts its receiver's failures, not
    the job's claims); ``due_at`` is the job's new ``run_after``, already committed.
    """

    due_at: datetime
    attempt: int
    error: str


class StageHandler(Protocol):
    """One kind of stage work: must store its result and mark the job done in one transaction.

    Returns None when the job is done, or `Rescheduled` when the handler recorded a failed
    attempt and re-queued the job itself; raising leaves the retry to `run_job`.
    """

    def __call__(self, session_factory: SessionFactory, job: ClaimedJob) -> Rescheduled | None: ...


class Outcome(enum.Enum):
    """What `run_job` did with a job."""

    DONE = "done"
    NOT_CLAIMED = "not_claimed"  # someone else holds it, it is finished, or not due yet
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff between attempts of a job that raised."""

    max_attempts: int = 5
    base_seconds: float = 5.0
    max_seconds: float = 600.0

    def delay(self, attempts: int) -> float:
        """Seconds to wait before the next attempt, after `attempts` attempts."""
        return float(min(self.max_seconds, self.base_seconds * 2 ** max(0, attempts - 1)))


class Analyzer(Protocol):
    """What the stages need of `nlp`'s TextAnalyzer."""

    def analyze(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]: ...


def run_job(
    session_factory: SessionFactory,
    job_id: str,
    worker_id: str,
    lease_seconds: float,
    handlers: Mapping[str, StageHandler],
    retry: RetryPolicy | None = None,
    *,
    announce_at: AnnounceAt | None = None,
) -> Outcome:
    """Claim one job and run its handler while a heartbeat renews the lease.

    Safe to call for any announcement, duplicate or stale: a job that cannot be claimed is
    left alone (and announced again for its due time when it is only not due yet), and a
    handler stores at most one result per subject.
    """
    retry = retry or RetryPolicy()
    with session_factory() as session:
        job = jobs.claim(session, job_id, worker_id, lease_seconds, max_attempts=retry.max_attempts)
        if job is None:
            early = jobs.not_due_until(session, job_id)
            session.commit()
            if early is not None:
                kind, due = early
                log.info("job_not_due", job_id=job_id, kind=kind, due_at=due.isoformat())
                announce_committed_at(announce_at, kind, job_id, due)
            return Outcome.NOT_CLAIMED
        claimed = ClaimedJob(job.id, job.kind, job.subject_id, job.attempts, worker_id)
    return run_claimed(
        session_factory, claimed, lease_seconds, handlers, retry, announce_at=announce_at
    )


def run_claimed(
    session_factory: SessionFactory,
    job: ClaimedJob,
    lease_seconds: float,
    handlers: Mapping[str, StageHandler],
    retry: RetryPolicy,
    *,
    announce_at: AnnounceAt | None = None,
) -> Outcome:
    """Run the handler of a job this worker has already claimed."""
    bound = log.bind(job_id=job.id, kind=job.kind, subject_id=job.subject_id, attempt=job.attempts)
    with _Heartbeat(session_factory, job, lease_seconds):
        try:
            handler = handlers.get(job.kind)
            if handler is None:
                raise UnknownJobKind(f"no stage handles job kind {job.kind!r}")
            rescheduled = handler(session_factory, job)
        except Exception as error:
            return _after_error(session_factory, job, error, retry, announce_at, bound)
    if rescheduled is not None:
        bound.warning(
            "job_rescheduled",
            attempt=rescheduled.attempt,
            due_at=rescheduled.due_at.isoformat(),
            error=rescheduled.error,
        )
        announce_committed_at(announce_at, job.kind, job.id, rescheduled.due_at)
        return Outcome.RETRY
    bound.info("job_done")
    return Outcome.DONE


def _after_error(
    session_factory: SessionFactory,
    job: ClaimedJob,
    error: Exception,
    retry: RetryPolicy,
    announce_at: AnnounceAt | None,
    bound: Any,
) -> Outcome:
    permanent = isinstance(error, PermanentStageError)
    outcome, due = _record_failure(session_factory, job, error, permanent, retry)
    if outcome is Outcome.RETRY and due is not None:
        bound.warning("job_rescheduled", due_at=due.isoformat(), error=repr(error))
        announce_committed_at(announce_at, job.kind, job.id, due)
    elif outcome is Outcome.FAILED:
        bound.error("job_failed", error=repr(error), permanent=permanent)
    else:
        # Our lease ran out meanwhile and another worker owns the job: its outcome is theirs.
        bound.warning("job_attempt_abandoned", error=repr(error))
    return outcome


def _record_failure(
    session_factory: SessionFactory,
    job: ClaimedJob,
    error: Exception,
    permanent: bool,
    retry: RetryPolicy,
) -> tuple[Outcome, datetime | None]:
    message = f"{type(error).__name__}: {error}"[:2000]
    with session_factory() as session:
        current = jobs.get(session, job.id)
        # Our lease ran out and another worker owns the job now: its outcome is theirs.
        if current is None or current.status != jobs.RUNNING or current.worker_id != job.worker_id:
            session.commit()
            return Outcome.NOT_CLAIMED, None
        delay = None if permanent else retry.delay(job.attempts)
        result = jobs.fail(session, job.id, message, delay, retry.max_attempts)
    if result is not None and result.status == jobs.QUEUED:
        return Outcome.RETRY, result.run_after
    return Outcome.FAILED, None


class _Heartbeat:
    """Renews a job's lease every third of its length while the handler works."""

    def __init__(self, session_factory: SessionFactory, job: ClaimedJob, lease: float) -> None:
        self._session_factory = session_factory
        self._job = job
        self._lease = lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job.id[:8]}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._lease / 3):
            try:
                with self._session_factory() as session:
                    kept = jobs.renew(
                        session, self._job.id, self._lease, worker_id=self._job.worker_id
                    )
            except Exception as error:  # a database hiccup must not kill the heartbeat
                log.warning("lease_renew_failed", job_id=self._job.id, error=repr(error))
                continue
            if not kept:
                # Another worker took over (our lease lapsed); its result or ours, the
                # unique analysis row keeps exactly one.
                log.warning("lease_lost", job_id=self._job.id)
                return


class FeedbackAnalyzeHandler:
    """`feedback.analyze`: analyse one item's text and store the contract object."""

    def __init__(
        self, analyzer: Callable[[], Analyzer] | Analyzer, announce: Announce | None = None
    ) -> None:
        # A factory lets a process load its models lazily, on its first job.
        self._analyzer = analyzer
        self._announce = announce

    def _get_analyzer(self) -> Analyzer:
        if hasattr(self._analyzer, "analyze"):
            return self._analyzer
        return self._analyzer()

    def __call__(self, session_factory: SessionFactory, job: ClaimedJob) -> None:
        with session_factory() as session:
            item = session.get(FeedbackItem, job.subject_id)
            if item is None:
                raise PermanentStageError(f"feedback item {job.subject_id} does not exist")
            already = analyses.get_for_feedback(session, item.id) is not None
            payload = analyzer_input(item)
            session.commit()
        if already:
            # A re-run after a worker died between its commit and its ack: close the job.
            with session_factory() as session:
                status.set_subject_status(
                    session, "feedback", job.subject_id, jobs.DONE, "already analysed"
                )
                jobs.finish(session, job.id)
            return
        results = self._get_analyzer().analyze([payload])
        if len(results) != 1:
            raise PermanentStageError(f"the analyzer returned {len(results)} results for 1 text")
        try:
            result = validate_analysis(results[0]).model_dump(mode="json", exclude_none=True)
        except ValidationError as error:
            raise PermanentStageError(f"the analysis breaks the contract: {error}") from error
        with session_factory() as session:
            # Joins the transaction that stores the analysis: detections follow every one.
            detect_job = jobs.enqueue(session, detections.EVALUATE_KIND, job.subject_id).id
            stored = analyses.complete_feedback_analysis(
                session, job.id, job.subject_id, result, dict(result.get("model_versions", {}))
            )
        if stored:
            announce_committed(self._announce, detections.EVALUATE_KIND, detect_job)


def announce_committed(announce: Announce | None, kind: str, job_id: str) -> None:
    """Announce a committed job; a failure only delays it (the sweeper finds it)."""
    if announce is None:
        return
    try:
        announce(kind, job_id)
    except Exception as error:  # committed: the sweeper announces it later
        log.warning("announce_failed", kind=kind, job_id=job_id, error=repr(error))


def announce_committed_at(
    announce_at: AnnounceAt | None, kind: str, job_id: str, due: datetime
) -> None:
    """Announce a committed job for its due time; a failure only delays it (the sweeper)."""
    if announce_at is None:
        return
    try:
        announce_at(kind, job_id, due)
    except Exception as error:  # committed: the sweeper announces it once it is due
        log.warning("announce_failed", kind=kind, job_id=job_id, error=repr(error))


def analyzer_input(item: FeedbackItem) -> dict[str, Any]:
    """The dict the analyzer is given for one stored item (the `undertone analyze` line)."""
    payload: dict[str, Any] = {"id": item.id, "text": item.text}
    for name in _ANALYZER_FIELDS:
        value = getattr(item, name)
        if value is not None:
            payload[name] = value
    if item.occurred_at is not None:
        payload["occurred_at"] = item.occurred_at.isoformat()
    if item.extra:
        payload["metadata"] = item.extra
    return payload


def build_handlers(
    analyzer: Callable[[], Analyzer] | Analyzer, announce: Announce | None = None
) -> dict[str, StageHandler]:
    """The stage handlers of this release, keyed by job kind (= Celery task name).

    ``announce`` sends the next stage's job after commit (Celery); without it (embedded) the
    runner's own polling finds it.
    """
    return {FEEDBACK_ANALYZE: FeedbackAnalyzeHandler(analyzer, announce)}


def analyze_texts(analyzer: Analyzer, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Synchronous analysis (`POST /v1/analyze`): validated contract dicts, nothing stored."""
    results = analyzer.analyze(items)
    return [validate_analysis(r).model_dump(mode="json", exclude_none=True) for r in results]
