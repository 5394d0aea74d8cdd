"""The job protocol of `workers.stages.run_job`, on SQLite and PostgreSQL.

The handlers here are small stand-ins for a stage's work (the analysis itself is covered by
the end-to-end tests); what is under test is the claim, the lease, done and retry.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.db.models import Analysis, Job, utcnow
from service.db.repositories import analyses, feedback, jobs, status
from workers.errors import PermanentStageError
from workers.stages import (
    FEEDBACK_ANALYZE,
    ClaimedJob,
    FeedbackAnalyzeHandler,
    Outcome,
    Rescheduled,
    RetryPolicy,
    StageHandler,
    run_job,
)

RESULT = {
    "id": "x",
    "language": "en",
    "sentiment": {
        "label": "negative",
        "scores": {"negative": 0.9, "neutral": 0.05, "positive": 0.05},
    },
    "sentences": [],
    "model_versions": {"encoder": "test"},
}


def _accept(factory: sessionmaker[Session], external_id: str = "ext-1") -> str:
    with factory() as session:
        [outcome] = feedback.accept(
            session, [{"external_id": external_id, "text": "Late again.", "channel": "review"}]
        )
        session.commit()
        assert outcome.job_id is not None
        return outcome.job_id


def _storing_handler(calls: list[str]) -> StageHandler:
    def handler(factory: sessionmaker[Session], job: ClaimedJob) -> None:
        calls.append(job.worker_id)
        with factory() as session:
            analyses.complete_feedback_analysis(session, job.id, job.subject_id, RESULT, {})

    return handler


def _job(factory: sessionmaker[Session], job_id: str) -> Job:
    with factory() as session:
        job = jobs.get(session, job_id)
        assert job is not None
        return job


def _statuses(factory: sessionmaker[Session], subject_id: str) -> list[str]:
    with factory() as session:
        return [e.status for e in status.history(session, "feedback", subject_id)]


def _analysis_count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(Analysis)) or 0)


class TestRunJob:
    def test_stores_result_and_walks_the_statuses(self, session_factory: Any) -> None:
        """A claimed job stores one result and goes queued -> running -> done."""
        job_id = _accept(session_factory)
        calls: list[str] = []
        outcome = run_job(
            session_factory, job_id, "w1", 30, {FEEDBACK_ANALYZE: _storing_handler(calls)}
        )
        assert outcome is Outcome.DONE
        job = _job(session_factory, job_id)
        assert job.status == "done"
        assert _statuses(session_factory, job.subject_id) == ["queued", "running", "done"]
        assert _analysis_count(session_factory) == 1

    def test_a_done_job_is_not_run_again(self, session_factory: Any) -> None:
        """A duplicate announcement of a finished job does nothing."""
        job_id = _accept(session_factory)
        calls: list[str] = []
        handlers = {FEEDBACK_ANALYZE: _storing_handler(calls)}
        run_job(session_factory, job_id, "w1", 30, handlers)
        assert run_job(session_factory, job_id, "w2", 30, handlers) is Outcome.NOT_CLAIMED
        assert calls == ["w1"]
        assert _analysis_count(session_factory) == 1

    def test_an_expired_lease_is_taken_over(self, session_factory: Any) -> None:
        """A job whose worker died (lease lapsed) is claimed and finished by another."""
        job_id = _accept(session_factory)
        with session_factory() as session:
            assert jobs.claim(session, job_id, "dead-worker", 0.05) is not None
        time.sleep(0.2)
        calls: list[str] = []
        outcome = run_job(
            session_factory, job_id, "w2", 30, {FEEDBACK_ANALYZE: _storing_handler(calls)}
        )
        assert outcome is Outcome.DONE
        assert calls == ["w2"]
        assert _job(session_factory, job_id).attempts == 2

    def test_a_live_lease_is_renewed_while_the_handler_works(self, session_factory: Any) -> None:
        """The heartbeat keeps the job ours for longer than one lease."""
        job_id = _accept(session_factory)
        entered, release = threading.Event(), threading.Event()

        def slow(factory: sessionmaker[Session], job: ClaimedJob) -> None:
            entered.set()
            release.wait(60)
            _storing_handler([])(factory, job)

        runner = threading.Thread(
            target=run_job, args=(session_factory, job_id, "w1", 1.5, {FEEDBACK_ANALYZE: slow})
        )
        runner.start()
        try:
            assert entered.wait(60)
            time.sleep(4.0)  # well past the first lease
            with session_factory() as session:
                assert jobs.claim(session, job_id, "thief", 30) is None
        finally:
            release.set()
            runner.join(60)
        assert _job(session_factory, job_id).status == "done"
        assert _analysis_count(session_factory) == 1

    def test_an_error_is_retried_later_with_backoff(self, session_factory: Any) -> None:
        """A failing handler puts the job back, due later, and records why."""
        job_id = _accept(session_factory)

        def broken(factory: sessionmaker[Session], job: ClaimedJob) -> None:
            raise RuntimeError("disk full")

        retry = RetryPolicy(max_attempts=3, base_seconds=30)
        outcome = run_job(session_factory, job_id, "w1", 30, {FEEDBACK_ANALYZE: broken}, retry)
        assert outcome is Outcome.RETRY
        job = _job(session_factory, job_id)
        assert job.status == "queued"
        assert job.run_after > utcnow()
        assert "disk full" in (job.last_error or "")
        # Not due yet: an early announcement does not run it.
        assert (
            run_job(session_factory, job_id, "w1", 30, {FEEDBACK_ANALYZE: broken}, retry)
            is Outcome.NOT_CLAIMED
        )

    def test_the_last_attempt_fails_the_item(self, session_factory: Any) -> None:
        """After max_attempts the job and its item are failed, with the error kept."""
        job_id = _accept(session_factory)

        def broken(factory: sessionmaker[Session], job: ClaimedJob) -> None:
            raise RuntimeError("still broken")

        retry = RetryPolicy(max_attempts=2, base_seconds=0)
        outcomes = [
            run_job(session_factory, job_id, "w1", 30, {FEEDBACK_ANALYZE: broken}, retry)
            for _ in range(3)
        ]
        assert outcomes == [Outcome.RETRY, Outcome.FAILED, Outcome.NOT_CLAIMED]
        job = _job(session_factory, job_id)
        assert job.status == "failed"
        assert _statuses(session_factory, job.subject_id)[-1] == "failed"

    def test_a_permanent_error_is_not_retried(self, session_factory: Any) -> None:
        """An input that can never work fails at once."""
        job_id = _accept(session_factory)

        def bad_input(factory: sessionmaker[Session], job: ClaimedJob) -> None:
            raise PermanentStageError("empty text")

        outcome = run_job(session_factory, job_id, "w1", 30, {FEEDBACK_ANALYZE: bad_input})
        assert outcome is Outcome.FAILED
        assert _job(session_factory, job_id).attempts == 1

    def test_an_unknown_kind_fails_instead_of_looping(self, session_factory: Any) -> None:
        """A job no handler knows is failed with a message naming its kind."""
        job_id = _accept(session_factory)
        assert run_job(session_factory, job_id, "w1", 30, {}) is Outcome.FAILED
        assert "feedback.analyze" in (_job(session_factory, job_id).last_error or "")


class _Announcements:
    """Records what `run_job` announces for later: (kind, job id, due time)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, datetime]] = []

    def __call__(self, kind: str, job_id: str, due: datetime) -> None:
        self.sent.append((kind, job_id, due))


def _broken(factory: sessionmaker[Session], job: ClaimedJob) -> None:
    raise RuntimeError("receiver down")


class TestRetryAnnouncements:
    def test_a_failed_attempt_is_announced_for_its_due_time(self, session_factory: Any) -> None:
        """The retry is announced once, after commit, for the job's new run_after."""
        job_id = _accept(session_factory)
        announced = _Announcements()
        retry = RetryPolicy(max_attempts=3, base_seconds=30)
        outcome = run_job(
            session_factory,
            job_id,
            "w1",
            30,
            {FEEDBACK_ANALYZE: _broken},
            retry,
            announce_at=announced,
        )
        assert outcome is Outcome.RETRY
        job = _job(session_factory, job_id)
        assert (job.status, job.attempts) == ("queued", 1)
        assert announced.sent == [(FEEDBACK_ANALYZE, job_id, job.run_after)]

    def test_a_handler_that_puts_its_job_back_is_a_retry_not_done(
        self, session_factory: Any
    ) -> None:
        """A handler answering Rescheduled (as deliveries do) is announced for its due time."""
        job_id = _accept(session_factory)
        announced = _Announcements()

        def counts_its_own_failure(factory: sessionmaker[Session], job: ClaimedJob) -> Rescheduled:
            with factory() as session:
                failed = jobs.fail(session, job.id, "HTTP 500", 45.0, max_attempts=10)
                assert failed is not None
                return Rescheduled(failed.run_after, 4, "HTTP 500")

        outcome = run_job(
            session_factory,
            job_id,
            "w1",
            30,
            {FEEDBACK_ANALYZE: counts_its_own_failure},
            announce_at=announced,
        )
        assert outcome is Outcome.RETRY
        job = _job(session_factory, job_id)
        assert job.status == "queued"
        assert announced.sent == [(FEEDBACK_ANALYZE, job_id, job.run_after)]

    def test_an_early_announcement_claims_nothing_and_comes_again_when_due(
        self, session_factory: Any
    ) -> None:
        """A task that arrives before its job is due is sent again for the due time."""
        job_id = _accept(session_factory)
        retry = RetryPolicy(max_attempts=3, base_seconds=30)
        run_job(session_factory, job_id, "w1", 30, {FEEDBACK_ANALYZE: _broken}, retry)
        due = _job(session_factory, job_id).run_after
        calls: list[str] = []
        announced = _Announcements()
        outcome = run_job(
            session_factory,
            job_id,
            "w2",
            30,
            {FEEDBACK_ANALYZE: _storing_handler(calls)},
            retry,
            announce_at=announced,
        )
        assert outcome is Outcome.NOT_CLAIMED
        assert calls == []
        job = _job(session_factory, job_id)
        assert (job.status, job.attempts, job.run_after) == ("queued", 1, due)
        assert announced.sent == [(FEEDBACK_ANALYZE, job_id, due)]

    def test_a_duplicate_of_a_running_or_finished_job_announces_nothing(
        self, session_factory: Any
    ) -> None:
        """Twice announced: the lease, then the done status, turn the second one away."""
        job_id = _accept(session_factory)
        with session_factory() as session:
            assert jobs.claim(session, job_id, "w1", 30) is not None
        calls: list[str] = []
        handlers = {FEEDBACK_ANALYZE: _storing_handler(calls)}
        announced = _Announcements()
        assert (
            run_job(session_factory, job_id, "w2", 30, handlers, announce_at=announced)
            is Outcome.NOT_CLAIMED
        )
        subject_id = _job(session_factory, job_id).subject_id
        with session_factory() as session:
            analyses.complete_feedback_analysis(session, job_id, subject_id, RESULT, {})
        assert (
            run_job(session_factory, job_id, "w2", 30, handlers, announce_at=announced)
            is Outcome.NOT_CLAIMED
        )
        assert calls == []
        assert announced.sent == []
        assert _analysis_count(session_factory) == 1


class _CallRecorder:
    """Stands in for the text analyzer: records the size of every call, fails on "poison"."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def analyze(self, items: Any) -> list[dict[str, Any]]:
        texts = [item["text"] for item in items]
        self.calls.append(texts)
        if any("poison" in text for text in texts):
            raise ValueError("cannot analyse this text")
        return [{**RESULT, "id": item["id"]} for item in items]


def _item_status(factory: sessionmaker[Session], job_id: str) -> tuple[str, str]:
    job = _job(factory, job_id)
    return job.status, _statuses(factory, job.subject_id)[-1]


class TestBatches:
    def test_due_jobs_of_the_kind_are_analysed_in_one_call(self, session_factory: Any) -> None:
        """The claimed job takes up to batch_size - 1 due others along; each is done once."""
        ids = [_accept(session_factory, f"ext-{i}") for i in range(5)]
        analyzer = _CallRecorder()
        handlers = {FEEDBACK_ANALYZE: FeedbackAnalyzeHandler(analyzer)}
        outcome = run_job(session_factory, ids[0], "w1", 30, handlers, batch_size=4)
        assert outcome is Outcome.DONE
        assert [len(call) for call in analyzer.calls] == [4]
        done = [i for i in ids if _job(session_factory, i).status == "done"]
        assert len(done) == 4
        assert ids[0] in done
        # Their own announcements arrive later and find nothing to do.
        for job_id in done:
            assert run_job(session_factory, job_id, "w2", 30, handlers) is Outcome.NOT_CLAIMED
        (left,) = set(ids) - set(done)
        assert run_job(session_factory, left, "w2", 30, handlers, batch_size=4) is Outcome.DONE
        assert [len(call) for call in analyzer.calls] == [4, 1]
        assert _analysis_count(session_factory) == 5
        for job_id in ids:
            assert _statuses(session_factory, _job(session_factory, job_id).subject_id) == [
                "queued",
                "running",
                "done",
            ]

    def test_one_bad_item_fails_alone(self, session_factory: Any) -> None:
        """A batch that fails is analysed item by item: only the bad item's job is retried."""
        good = [_accept(session_factory, f"ext-{i}") for i in range(3)]
        with session_factory() as session:
            [outcome] = feedback.accept(
                session, [{"external_id": "bad", "text": "poison", "channel": "review"}]
            )
            session.commit()
        bad = outcome.job_id
        assert bad is not None
        analyzer = _CallRecorder()
        handlers = {FEEDBACK_ANALYZE: FeedbackAnalyzeHandler(analyzer)}
        retry = RetryPolicy(max_attempts=3, base_seconds=30)
        assert run_job(session_factory, good[0], "w1", 30, handlers, retry, batch_size=8) is (
            Outcome.DONE
        )
        assert [len(call) for call in analyzer.calls] == [4, 1, 1, 1, 1]
        for job_id in good:
            assert _item_status(session_factory, job_id) == ("done", "done")
        job = _job(session_factory, bad)
        assert (job.status, job.attempts) == ("queued", 1)
        assert "cannot analyse this text" in (job.last_error or "")
        assert _analysis_count(session_factory) == 3

    def test_a_retried_job_runs_alone(self, session_factory: Any) -> None:
        """Only first attempts are batched: a job that failed (or killed its worker) runs on
        its own, so it cannot take a batch of others down with it again."""
        retried, *fresh = [_accept(session_factory, f"ext-{i}") for i in range(3)]
        retry = RetryPolicy(max_attempts=3, base_seconds=0)
        assert run_job(session_factory, retried, "w1", 30, {FEEDBACK_ANALYZE: _broken}, retry) is (
            Outcome.RETRY
        )
        analyzer = _CallRecorder()
        handlers = {FEEDBACK_ANALYZE: FeedbackAnalyzeHandler(analyzer)}
        assert run_job(session_factory, retried, "w1", 30, handlers, retry, batch_size=8) is (
            Outcome.DONE
        )
        assert analyzer.calls == [["Late again."]]
        assert run_job(session_factory, fresh[0], "w1", 30, handlers, retry, batch_size=8) is (
            Outcome.DONE
        )
        assert [len(call) for call in analyzer.calls] == [1, 2]
        assert _job(session_factory, retried).attempts == 2
        assert {_item_status(session_factory, j) for j in fresh} == {("done", "done")}

    def test_an_analysed_item_is_closed_without_analysing_it_again(
        self, session_factory: Any
    ) -> None:
        """A re-run of a job whose result is stored (worker died before done) only closes it."""
        first, second = _accept(session_factory, "ext-1"), _accept(session_factory, "ext-2")
        with session_factory() as session:
            analyses.complete_feedback_analysis(
                session, first, _job(session_factory, first).subject_id, RESULT, {}
            )
            jobs.enqueue(session, FEEDBACK_ANALYZE, _job(session_factory, first).subject_id)
            session.commit()
        analyzer = _CallRecorder()
        handlers = {FEEDBACK_ANALYZE: FeedbackAnalyzeHandler(analyzer)}
        assert run_job(session_factory, second, "w1", 30, handlers, batch_size=8) is Outcome.DONE
        assert [len(call) for call in analyzer.calls] == [1]
        assert _analysis_count(session_factory) == 2
        with session_factory() as session:
            assert jobs.next_due(session, [FEEDBACK_ANALYZE]) is None
            session.commit()


class TestNextDue:
    def test_the_soonest_retry_or_lease_of_the_given_kinds(self, session_factory: Any) -> None:
        """How long an idle runner may sleep: the earliest run_after or lease end of its kinds."""
        first, second = _accept(session_factory, "ext-1"), _accept(session_factory, "ext-2")
        queued_at = _job(session_factory, first).run_after
        with session_factory() as session:
            assert jobs.next_due(session, ["webhook.deliver"]) is None
            assert jobs.next_due(session, [FEEDBACK_ANALYZE]) == queued_at
            session.commit()
        with session_factory() as session:
            jobs.fail(session, first, "later", 600.0, max_attempts=5)
            jobs.fail(session, second, "later", 60.0, max_attempts=5)
            # Claimed once due (a minute on): its lease ends before the other's retry.
            claimed = jobs.claim(session, second, "w1", 30, now=utcnow() + timedelta(minutes=2))
            assert claimed is not None
        lease_until, retry_at = claimed.lease_until, _job(session_factory, first).run_after
        assert lease_until is not None
        assert lease_until < retry_at
        with session_factory() as session:
            assert jobs.next_due(session, [FEEDBACK_ANALYZE]) == lease_until
            session.commit()


class _ReadingDetector:
    """A detector whose `prepare` reads the database on a connection of its own, as the
    taxonomy source does when it checks for a newly activated version."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory
        self.prepared: list[Any] = []

    def prepare(self) -> int:
        with self._factory() as session:
            count = int(session.scalar(select(func.count()).select_from(Analysis)) or 0)
            session.commit()
        return count

    def evaluate(self, analysis: Any, item: Any, baseline: Any, recent: Any, prepared: Any = None):  # type: ignore[no-untyped-def]
        from workers.stages_detect import DetectorOutput

        self.prepared.append(prepared)
        return DetectorOutput([], None)

    def merge(self, existing: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        return new


class TestDetectionsEvaluate:
    def test_what_reads_the_database_is_fetched_before_the_transaction(
        self, session_factory: Any
    ) -> None:
        """On SQLite the stage's transaction holds the write lock, so a read on another
        connection inside it would wait out the busy timeout (30 s) and fail: the detector's
        `prepare` runs before it, and its answer reaches `evaluate`."""
        from service.config import DetectionSettings
        from workers.stages_detect import DETECTIONS_EVALUATE, build_detection_handlers

        job_id = _accept(session_factory)
        subject = _job(session_factory, job_id).subject_id
        with session_factory() as session:
            analyses.complete_feedback_analysis(session, job_id, subject, RESULT, {})
            detect_job = jobs.enqueue(session, DETECTIONS_EVALUATE, subject).id
            session.commit()
        detector = _ReadingDetector(session_factory)
        handlers = build_detection_handlers(DetectionSettings(), detector=detector)
        # Inside the transaction, on SQLite, the read fails after 30 s: the job is retried.
        assert run_job(session_factory, detect_job, "w1", 60, handlers) is Outcome.DONE
        assert detector.prepared == [1]
