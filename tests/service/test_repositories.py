"""Repositories and migrations on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from service.db.engine import create_db_engine
from service.db.migrate import current, downgrade, heads, upgrade
from service.db.models import Analysis, FeedbackItem, Job, utcnow
from service.db.repositories import analyses, feedback, jobs, status

TABLES = {
    "api_keys", "feedback_items", "analyses", "status_events", "jobs", "recordings",
    "recording_analyses",
}



def _item(external_id: str, text_: str = "The delivery was late again.") -> dict[str, Any]:
    return {"external_id": external_id, "text": text_, "channel": "review"}


def _accept(factory: sessionmaker[Session], external_id: str, key: str | None = None) -> Any:
    with factory() as session:
        [outcome] = feedback.accept(session, [_item(external_id)], idempotency_key=key)
        session.commit()
        return outcome


def _run_together(*calls: Callable[[], Any]) -> list[Any]:
    """Start the calls on threads released at the same moment; return their results."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


class TestMigrations:
    """Alembic migrations on both backends."""

    @pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
    def test_upgrade_from_empty_creates_every_table(
        self, backend: str, request: pytest.FixtureRequest, tmp_path: Any
    ) -> None:
        """An empty database reaches head with every table, and downgrades cleanly."""
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path / 'fresh.db'}"
            cleanup: Callable[[], None] = lambda: None  # noqa: E731
        else:
            url, cleanup = _fresh_postgres(request.getfixturevalue("postgres_server_url"))
        try:
            assert current(url) is None
            upgrade(url)
            assert current(url) == heads()[0]
            engine = create_db_engine(url)
            assert set(inspect(engine).get_table_names()) >= TABLES
            engine.dispose()
            downgrade(url, "base")
            engine = create_db_engine(url)
            assert not TABLES & set(inspect(engine).get_table_names())
            engine.dispose()
        finally:
            cleanup()


def _fresh_postgres(session_db_url: str) -> tuple[str, Callable[[], None]]:
    name = f"undertone_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(session_db_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = make_url(session_db_url).set(database=name).render_as_string(hide_password=False)
    return url, drop


class TestFeedbackAccept:
    """Accepting feedback idempotently."""

    def test_new_item_gets_queued_event_and_job(
        self, session_factory: sessionmaker[Session]
    ) -> None:
        """A new item is stored queued, with its history and one analysis job."""
        outcome = _accept(session_factory, "ext-1")
        assert outcome.created
        assert outcome.job_id
        with session_factory() as session:
            view = feedback.get(session, outcome.item.id)
            assert view is not None
            assert view.item.status == "queued"
            assert [e.status for e in view.events] == ["queued"]
            assert view.analysis is None
            job = jobs.get(session, outcome.job_id)
            assert job is not None
            assert job.kind == "feedback.analyze"
            assert job.subject_id == outcome.item.id

    def test_same_external_id_twice_returns_the_first(
        self, session_factory: sessionmaker[Session]
    ) -> None:
        """A retried item is a duplicate: same id, no second row, no second job."""
        first = _accept(session_factory, "ext-2")
        second = _accept(session_factory, "ext-2")
        assert not second.created
        assert second.item.id == first.item.id
        with session_factory() as session:
            assert session.scalar(
                select(FeedbackItem.id).where(FeedbackItem.external_id == "ext-2")
            )
            assert len(session.scalars(select(Job)).all()) == 1

    def test_idempotency_key_wins_over_a_new_external_id(
        self, session_factory: sessionmaker[Session]
    ) -> None:
        """A replay under the same Idempotency-Key returns the first item."""
        first = _accept(session_factory, "ext-3", key="key-1")
        again = _accept(session_factory, "ext-3b", key="key-1")
        assert not again.created
        assert again.item.id == first.item.id

    def test_duplicate_inside_one_batch(self, session_factory: sessionmaker[Session]) -> None:
        """The second copy of an external_id in one batch is a duplicate of the first."""
        with session_factory() as session:
            outcomes = feedback.accept(session, [_item("d"), _item("d"), _item("e")])
            session.commit()
        assert [o.created for o in outcomes] == [True, False, True]
        assert outcomes[0].item.id == outcomes[1].item.id

    def test_concurrent_duplicates_make_one_item(
        self, session_factory: sessionmaker[Session]
    ) -> None:
        """Four requests racing with one external_id store exactly one item."""
        results = _run_together(*[lambda: _accept(session_factory, "race")] * 4)
        assert sum(r.created for r in results) == 1
        assert len({r.item.id for r in results}) == 1
        with session_factory() as session:
            rows = session.scalars(select(FeedbackItem).where(FeedbackItem.external_id == "race"))
            assert len(rows.all()) == 1


class TestJobs:
    """The durable job queue."""

    def _job(self, factory: sessionmaker[Session], external_id: str = "j") -> str:
        outcome = _accept(factory, external_id)
        assert outcome.job_id
        return str(outcome.job_id)

    def test_enqueue_is_idempotent(self, session_factory: sessionmaker[Session]) -> None:
        """Enqueueing the same kind and subject twice yields one job."""
        with session_factory() as session:
            a = jobs.enqueue(session, "test.kind", "subject-1")
            b = jobs.enqueue(session, "test.kind", "subject-1")
            session.commit()
            assert a.id == b.id

    def test_claim_is_exclusive(self, session_factory: sessionmaker[Session]) -> None:
        """Of several workers claiming one job at once, exactly one wins."""
        job_id = self._job(session_factory)

        def claim(worker: str) -> Callable[[], Any]:
            def run() -> Any:
                with session_factory() as session:
                    return jobs.claim(session, job_id, worker, 30)

            return run

        results = _run_together(*(claim(f"w{i}") for i in range(4)))
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        assert winners[0].attempts == 1
        assert winners[0].status == "running"

    def test_expired_lease_is_claimed_again(self, session_factory: sessionmaker[Session]) -> None:
        """A job whose worker died is handed out again once its lease ran out."""
        job_id = self._job(session_factory)
        with session_factory() as session:
            assert jobs.claim(session, job_id, "dead", 30) is not None
            assert jobs.claim(session, job_id, "other", 30) is None
            later = utcnow() + timedelta(seconds=31)
            assert [j.id for j in jobs.due_jobs(session, now=later)] == [job_id]
            job = jobs.claim(session, job_id, "other", 30, now=later)
            assert job is not None
            assert job.attempts == 2
            assert job.worker_id == "other"

    def test_renew_keeps_the_job_and_refuses_a_stranger(
        self, session_factory: sessionmaker[Session]
    ) -> None:
        """The owner extends its lease; another worker id cannot."""
        job_id = self._job(session_factory)
        with session_factory() as session:
            jobs.claim(session, job_id, "me", 30)
            assert jobs.renew(session, job_id, 120, worker_id="me")
            assert not jobs.renew(session, job_id, 120, worker_id="you")
            assert (
                jobs.claim(session, job_id, "you", 30, now=utcnow() + timedelta(seconds=60)) is None
            )

    def test_fail_requeues_then_fails_the_subject(
        self, session_factory: sessionmaker[Session]
    ) -> None:
        """Failures retry after a delay; the last one fails the job and the item with a reason."""
        outcome = _accept(session_factory, "flaky")
        job_id, item_id = outcome.job_id, outcome.item.id
        with session_factory() as session:
            jobs.claim(session, job_id, "w", 30)
            job = jobs.fail(session, job_id, "boom", retry_after=5, max_attempts=2)
            assert job is not None
            assert job.status == "queued"
            assert jobs.claim(session, job_id, "w", 30) is None  # not due yet
            later = utcnow() + timedelta(seconds=6)
            assert jobs.claim(session, job_id, "w", 30, now=later) is not None
            job = jobs.fail(session, job_id, "boom again", retry_after=5, max_attempts=2)
            assert job is not None
            assert job.status == "failed"
            item = feedback.get(session, item_id)
            assert item is not None
            assert item.item.status == "failed"
            assert item.item.error == "boom again"
            assert [e.status for e in item.events] == [
                "queued",
                "running",
                "queued",
                "running",
                "failed",
            ]

    def test_permanent_error_fails_at_once(self, session_factory: sessionmaker[Session]) -> None:
        """retry_after=None means the input itself is bad: no retry."""
        job_id = self._job(session_factory)
        with session_factory() as session:
            jobs.claim(session, job_id, "w", 30)
            job = jobs.fail(session, job_id, "unreadable", retry_after=None, max_attempts=5)
            assert job is not None
            assert job.status == "failed"

    def test_poison_job_is_failed_after_max_attempts(
        self, session_factory: sessionmaker[Session]
    ) -> None:
        """A job whose worker died on every attempt is failed instead of claimed forever."""
        job_id = self._job(session_factory)
        now = utcnow()
        with session_factory() as session:
            for i in range(2):
                t = now + timedelta(seconds=40 * i)
                assert jobs.claim(session, job_id, "w", 30, max_attempts=2, now=t) is not None
            t = now + timedelta(seconds=100)
            assert jobs.claim(session, job_id, "w", 30, max_attempts=2, now=t) is None
            job = jobs.get(session, job_id)
            session.refresh(job)
            assert job is not None
            assert job.status == "failed"
            assert jobs.due_jobs(session, now=t) == []

    def test_claim_next_hands_out_distinct_jobs(
        self, session_factory: sessionmaker[Session]
    ) -> None:
        """Concurrent claim_next calls never get the same job; then the queue is empty."""
        ids = {self._job(session_factory, f"n{i}") for i in range(3)}

        def take(worker: str) -> Callable[[], Any]:
            def run() -> Any:
                with session_factory() as session:
                    job = jobs.claim_next(session, ["feedback.analyze"], worker, 30)
                    return job.id if job else None

            return run

        got = _run_together(*(take(f"w{i}") for i in range(3)))
        assert set(got) == ids
        with session_factory() as session:
            assert jobs.claim_next(session, ["feedback.analyze"], "late", 30) is None
            assert jobs.claim_next(session, ["other.kind"], "late", 30) is None

    def test_complete_analysis_stores_once(self, session_factory: sessionmaker[Session]) -> None:
        """The result, the item's done and the job's done land together, and only once."""
        outcome = _accept(session_factory, "done-1")
        job_id, item_id = outcome.job_id, outcome.item.id
        result = {"id": item_id, "language": "en"}
        with session_factory() as session:
            jobs.claim(session, job_id, "w", 30)
            assert analyses.complete_feedback_analysis(session, job_id, item_id, result, {"e": "1"})
            assert not analyses.complete_feedback_analysis(
                session, job_id, item_id, {"other": True}, {}
            )
            assert len(session.scalars(select(Analysis)).all()) == 1
            view = feedback.get(session, item_id)
            assert view is not None
            assert view.analysis is not None
            assert view.analysis.result == result
            assert view.item.status == "done"
            job = jobs.get(session, job_id)
            session.refresh(job)
            assert job is not None
            assert job.status == "done"
            assert jobs.claim(session, job_id, "w", 30, now=utcnow() + timedelta(hours=1)) is None

    def test_status_history_is_per_subject(self, session_factory: sessionmaker[Session]) -> None:
        """Events of other subjects never show in a subject's history."""
        with session_factory() as session:
            status.add_event(session, "feedback", "a", "queued")
            status.add_event(session, "recording", "a", "queued")
            session.commit()
            assert len(status.history(session, "feedback", "a")) == 1


class TestMigrationHistory:
    """The migration scripts themselves."""

    def test_history_has_a_single_head(self) -> None:
        """Parallel branches of migrations must be chained, never left as two heads."""
        assert len(heads()) == 1
