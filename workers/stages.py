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
from typing import Any, Protocol, runtime_checkable

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


@runtime_checkable
class BatchStageHandler(StageHandler, Protocol):
    """A stage handler that can also run many claimed jobs of its kind in one call.

    ``run_batch`` stores every job's result (and its done) and returns the error of every job
    that failed, keyed by job id; the caller records those.
    """

    def run_batch(
        self, session_factory: SessionFactory, batch: Sequence[ClaimedJob]
    ) -> dict[str, Exception]: ...


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
    batch_size: int = 1,
) -> Outcome:
    """Claim one job and run its handler while a heartbeat renews the lease.

    Safe to call for any announcement, duplicate or stale: a job that cannot be claimed is
    left alone (and announced again for its due time when it is only not due yet), and a
    handler stores at most one result per subject. With ``batch_size`` > 1 a job whose
    handler works in batches takes other due jobs of its kind along (`run_claimed`).
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
        session_factory,
        claimed,
        lease_seconds,
        handlers,
        retry,
        announce_at=announce_at,
        batch_size=batch_size,
    )


def run_claimed(
    session_factory: SessionFactory,
    job: ClaimedJob,
    lease_seconds: float,
    handlers: Mapping[str, StageHandler],
    retry: RetryPolicy,
    *,
    announce_at: AnnounceAt | None = None,
    batch_size: int = 1,
) -> Outcome:
    """Run the handler of a job this worker has already claimed.

    When the handler works in batches (`BatchStageHandler`), ``batch_size`` > 1 and this is
    the job's first attempt, up to ``batch_size - 1`` other due, never-tried jobs of the same
    kind are claimed too and run in one call (one encoder pass for many feedback items); each
    job still gets its own outcome, and their own announcements, arriving later, find them
    done and claim nothing. A retried job always runs alone, so an item that crashes its
    worker costs the others of its batch one attempt at most. Returns the outcome of ``job``.
    """
    handler = handlers.get(job.kind)
    if batch_size > 1 and job.attempts == 1 and isinstance(handler, BatchStageHandler):
        batch = [job, *_claim_more(session_factory, job, batch_size - 1, lease_seconds)]
        if len(batch) > 1:
            return _run_batch(session_factory, batch, lease_seconds, handler, retry, announce_at)
    bound = log.bind(job_id=job.id, kind=job.kind, subject_id=job.subject_id, attempt=job.attempts)
    with _Heartbeat(session_factory, [job], lease_seconds):
        try:
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


def _claim_more(
    session_factory: SessionFactory, first: ClaimedJob, count: int, lease_seconds: float
) -> list[ClaimedJob]:
    """Up to ``count`` more due, never-tried jobs of ``first``'s kind, for the same worker."""
    try:
        with session_factory() as session:
            more = jobs.claim_more(session, first.kind, first.worker_id, lease_seconds, count)
            return [
                ClaimedJob(j.id, j.kind, j.subject_id, j.attempts, first.worker_id) for j in more
            ]
    except Exception as error:  # the database hiccuped: run the one job alone
        log.warning("batch_claim_failed", job_id=first.id, error=repr(error))
        return []


def _run_batch(
    session_factory: SessionFactory,
    batch: list[ClaimedJob],
    lease_seconds: float,
    handler: BatchStageHandler,
    retry: RetryPolicy,
    announce_at: AnnounceAt | None,
) -> Outcome:
    """Run claimed jobs of one kind in one handler call; each gets its own outcome."""
    with _Heartbeat(session_factory, batch, lease_seconds):
        try:
            errors = handler.run_batch(session_factory, batch)
        except Exception as error:  # the whole call failed: every job records it
            errors = dict.fromkeys((job.id for job in batch), error)
    log.info("job_batch_ran", kind=batch[0].kind, jobs=len(batch), failed=len(errors))
    outcomes = {}
    for job in batch:
        bound = log.bind(
            job_id=job.id, kind=job.kind, subject_id=job.subject_id, attempt=job.attempts
        )
        failure = errors.get(job.id)
        if failure is None:
            bound.info("job_done")
            outcomes[job.id] = Outcome.DONE
        else:
            outcomes[job.id] = _after_error(
                session_factory, job, failure, retry, announce_at, bound
            )
    return outcomes[batch[0].id]


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
        # Our lease ran out and another worker owns the job now: its outcome is theirs.
        if not jobs.still_owned(session, job.id, job.worker_id):
            session.commit()
            return Outcome.NOT_CLAIMED, None
        delay = None if permanent else retry.delay(job.attempts)
        result = jobs.fail(session, job.id, message, delay, retry.max_attempts)
    if result is not None and result.status == jobs.QUEUED:
        return Outcome.RETRY, result.run_after
    return Outcome.FAILED, None


class _Heartbeat:
    """Renews the jobs' leases every third of their length while the handler works."""

    def __init__(
        self, session_factory: SessionFactory, batch: Sequence[ClaimedJob], lease: float
    ) -> None:
        self._session_factory = session_factory
        self._jobs = list(batch)
        self._lease = lease
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"lease-{self._jobs[0].id[:8]}", daemon=True
        )

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while self._jobs and not self._stop.wait(self._lease / 3):
            for job in list(self._jobs):
                try:
                    with self._session_factory() as session:
                        kept = jobs.renew(session, job.id, self._lease, worker_id=job.worker_id)
                except Exception as error:  # a database hiccup must not kill the heartbeat
                    log.warning("lease_renew_failed", job_id=job.id, error=repr(error))
                    continue
                if not kept:
                    # Another worker took over (our lease lapsed), or the job is finished;
                    # either way the unique analysis row keeps exactly one result.
                    log.warning("lease_lost", job_id=job.id)
                    self._jobs.remove(job)


class FeedbackAnalyzeHandler:
    """`feedback.analyze`: analyse items' texts and store their contract objects.

    One job at a time (``__call__``) or many in one analyzer call (``run_batch``: one encoder
    pass for the batch, which is how the encoder is fast); if a batched call fails, its items
    are analysed one by one, so one bad item fails only its own job.
    """

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
        payload = self._prepare(session_factory, job)
        if payload is not None:
            self._store(session_factory, job, self._analyze([payload])[0])

    def run_batch(
        self, session_factory: SessionFactory, batch: Sequence[ClaimedJob]
    ) -> dict[str, Exception]:
        """Analyse the jobs' items in one call; returns the errors of the jobs that failed."""
        errors: dict[str, Exception] = {}
        todo: list[tuple[ClaimedJob, dict[str, Any]]] = []
        for job in batch:
            try:
                payload = self._prepare(session_factory, job)
            except Exception as error:
                errors[job.id] = error
                continue
            if payload is not None:
                todo.append((job, payload))
        if not todo:
            return errors
        results: list[dict[str, Any] | None]
        try:
            results = list(self._analyze([payload for _, payload in todo]))
        except Exception as error:
            log.warning("batch_analysis_failed", jobs=len(todo), error=repr(error))
            results = []
            for job, payload in todo:  # one by one: only a bad item fails
                try:
                    results.append(self._analyze([payload])[0])
                except Exception as item_error:
                    errors[job.id] = item_error
                    results.append(None)
        done = [(job, r) for (job, _), r in zip(todo, results, strict=True) if r is not None]
        try:
            self._store_all(session_factory, done)
        except Exception as error:  # one transaction for all failed: one per item
            log.warning("batch_store_failed", jobs=len(done), error=repr(error))
            for job, result in done:
                try:
                    self._store(session_factory, job, result)
                except Exception as item_error:
                    errors[job.id] = item_error
        return errors

    def _prepare(self, session_factory: SessionFactory, job: ClaimedJob) -> dict[str, Any] | None:
        """The analyzer input of the job's item; None (job closed) when it is analysed."""
        with session_factory() as session:
            item = session.get(FeedbackItem, job.subject_id)
            if item is None:
                raise PermanentStageError(f"feedback item {job.subject_id} does not exist")
            already = analyses.get_for_feedback(session, item.id) is not None
            payload = analyzer_input(item)
            session.commit()
        if not already:
            return payload
        # A re-run after a worker died between its commit and its ack: close the job.
        with session_factory() as session:
            status.set_subject_status(
                session, "feedback", job.subject_id, jobs.DONE, "already analysed"
            )
            jobs.finish(session, job.id)
        return None

    def _analyze(self, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Contract-checked analyses of the payloads, in order."""
        results = self._get_analyzer().analyze(payloads)
        if len(results) != len(payloads):
            raise PermanentStageError(
                f"the analyzer returned {len(results)} results for {len(payloads)} texts"
            )
        try:
            return [
                validate_analysis(r).model_dump(mode="json", exclude_none=True) for r in results
            ]
        except ValidationError as error:
            raise PermanentStageError(f"the analysis breaks the contract: {error}") from error

    def _store(
        self, session_factory: SessionFactory, job: ClaimedJob, result: dict[str, Any]
    ) -> None:
        self._store_all(session_factory, [(job, result)])

    def _store_all(
        self,
        session_factory: SessionFactory,
        done: Sequence[tuple[ClaimedJob, dict[str, Any]]],
    ) -> None:
        """Store the results, their items' done and their jobs' done in one transaction."""
        announced = []
        with session_factory() as session:
            for job, result in done:
                # The same transaction enqueues the detections' job: they follow every analysis.
                detect_job = jobs.enqueue(session, detections.EVALUATE_KIND, job.subject_id).id
                versions = dict(result.get("model_versions", {}))
                if analyses.add_feedback_analysis(
                    session, job.id, job.subject_id, result, versions
                ):
                    announced.append(detect_job)
            session.commit()
        for detect_job in announced:
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
