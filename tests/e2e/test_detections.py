"""Feedback in, detections out: pull by cursor, push to a real local webhook receiver that
fails before accepting, dead letters and replay, outcomes, incidents, a runner restart.

Real API, real embedded stage threads, real PostgreSQL and SQLite; the analyzer and the
detector are rule-based stand-ins (see `detections_support`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.api.app import create_app
from service.config import (
    ApiSettings,
    DetectionSettings,
    QueueSettings,
    Settings,
    WebhookSettings,
)
from service.db.engine import create_db_engine, create_session_factory
from service.db.models import Job
from service.webhooks import WebhookVerificationError, verify
from tests.e2e.detections_support import Receiver, RuleAnalyzer, RuleDetector, webhook_receiver
from tests.e2e.support import wait_for
from workers.delivery import build_delivery_handlers
from workers.embedded import EmbeddedDispatcher
from workers.runtime import AnalysisRuntime
from workers.stages import build_handlers
from workers.stages_detect import build_detection_handlers

DEADLINE = 60.0


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh, migrated database on each backend in turn."""
    url: str = request.getfixturevalue(
        "sqlite_url" if request.param == "sqlite" else "postgres_url"
    )
    return url


@pytest.fixture
def session_factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test database."""
    engine = create_db_engine(db_url)
    try:
        yield create_session_factory(engine)
    finally:
        engine.dispose()


def _settings(
    db_url: str, tmp_path: Path, hooks: dict[str, Any] | None = None, **detection: Any
) -> Settings:
    webhook_options: dict[str, Any] = {
        "timeout_seconds": 2.0,
        "max_attempts": 4,
        "backoff_base_seconds": 0.1,
        "backoff_max_seconds": 0.5,
        "jitter": 0.5,
        "allow_private_urls": True,
        "circuit_cooldown_seconds": 0.2,
        "circuit_max_cooldown_seconds": 1.0,
    }
    return Settings(
        data_dir=tmp_path,
        database_url=db_url,
        api=ApiSettings(auth_enabled=False),
        queue=QueueSettings(lease_seconds=10.0, sweep_interval_seconds=0.2, embedded_threads=2),
        detections=DetectionSettings(**detection),
        webhooks=WebhookSettings(**(webhook_options | (hooks or {}))),
    )


def _app(settings: Settings, factory: sessionmaker[Session], detector: Any = None) -> TestClient:
    analyzer = RuleAnalyzer()
    handlers = (
        build_handlers(analyzer)
        | build_detection_handlers(settings.detections, detector=detector or RuleDetector())
        | build_delivery_handlers(settings.webhooks)
    )
    dispatcher = EmbeddedDispatcher(
        settings, factory, runtime=AnalysisRuntime(settings, analyzer=analyzer), handlers=handlers
    )
    return TestClient(create_app(settings, dispatcher, factory))


def _post(client: TestClient, items: list[dict[str, Any]]) -> list[str]:
    response = client.post("/v1/feedback", json={"items": items})
    assert response.status_code == 202, response.text
    return [entry["id"] for entry in response.json()["items"]]


def _item(n: int, text: str = "My parcel was late again.", **extra: Any) -> dict[str, Any]:
    return {
        "external_id": f"e-{n}",
        "text": text,
        "channel": "review",
        "customer_id": f"c-{n}",
        **extra,
    }


def _pull_all(
    client: TestClient, cursor: str = "0", limit: int = 2, **filters: str
) -> tuple[list[dict[str, Any]], str]:
    seen: list[dict[str, Any]] = []
    while True:
        page = client.get("/v1/detections", params={"cursor": cursor, "limit": limit, **filters})
        assert page.status_code == 200, page.text
        body = page.json()
        seen.extend(body["items"])
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return seen, cursor


class TestPull:
    def test_each_detection_once_in_order_across_pages(
        self, db_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
    ) -> None:
        """Pages of 2 deliver every detection once, by seq; the cursor then stays quiet."""
        with _app(_settings(db_url, tmp_path), session_factory) as client:
            ids = _post(
                client, [_item(n) for n in range(5)] + [_item(9, "Lovely staff, thank you!")]
            )

            def five() -> list[dict[str, Any]] | None:
                seen, _ = _pull_all(client)
                return seen if len(seen) >= 5 else None

            wait_for(five, "five detections", timeout=DEADLINE)
            seen, cursor = _pull_all(client)
            assert len(seen) == 5
            assert len({d["id"] for d in seen}) == 5
            seqs = [d["seq"] for d in seen]
            assert seqs == sorted(seqs)
            assert {d["sources"][0]["id"] for d in seen} == set(ids[:5])
            assert all(d["case_type"] == {"id": "case.late", "name": "Late"} for d in seen)
            again, _ = _pull_all(client, cursor)
            assert again == []
            # A new detection after the cursor is the only thing the next poll returns.
            [later] = _post(client, [_item(20, "The driver was rude.")])
            fresh = wait_for(
                lambda: _pull_all(client, cursor)[0], "the new detection", timeout=DEADLINE
            )
            assert [d["sources"][0]["id"] for d in fresh] == [later]
            assert fresh[0]["seq"] > max(seqs)
            assert _pull_all(client, "0", case_type="case.rude")[0][0]["id"] == fresh[0]["id"]

    def test_same_customer_and_case_type_merge_and_come_again(
        self, db_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
    ) -> None:
        """A second complaint of one customer about one case type updates the detection."""
        with _app(_settings(db_url, tmp_path), session_factory) as client:
            _post(client, [_item(1)])
            first = wait_for(lambda: _pull_all(client)[0], "a detection", timeout=DEADLINE)
            cursor = _pull_all(client)[1]
            _post(client, [{**_item(2), "customer_id": "c-1"}])
            updated = wait_for(lambda: _pull_all(client, cursor)[0], "the update", timeout=DEADLINE)
            everything, _ = _pull_all(client)
        assert [d["id"] for d in updated] == [first[0]["id"]]
        assert updated[0]["version"] == 2
        assert updated[0]["seq"] > first[0]["seq"]
        assert len(updated[0]["evidence"]) == 2
        assert len(updated[0]["sources"]) == 2
        assert len(everything) == 1


class TestOutcomes:
    def test_ack_outcome_conflicts_and_false_positive_rate(
        self, db_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
    ) -> None:
        """open -> acked -> closed; a changed verdict is 409; the report counts verdicts."""
        with _app(_settings(db_url, tmp_path), session_factory) as client:
            _post(client, [_item(n) for n in range(3)])
            found = wait_for(
                lambda: (s := _pull_all(client)[0]) and len(s) == 3 and s,
                "three detections",
                timeout=DEADLINE,
            )
            a, b, c = (d["id"] for d in found)
            acked = client.post(f"/v1/detections/{a}/ack")
            assert acked.status_code == 200
            assert acked.json()["status"] == "acked"
            closed = client.post(
                f"/v1/detections/{a}/outcome", json={"outcome": "recovered", "notes": "refunded"}
            )
            assert closed.json()["status"] == "closed"
            assert closed.json()["outcome_notes"] == "refunded"
            same = client.post(f"/v1/detections/{a}/outcome", json={"outcome": "recovered"})
            assert same.status_code == 200
            changed = client.post(f"/v1/detections/{a}/outcome", json={"outcome": "duplicate"})
            assert changed.status_code == 409
            assert changed.json()["error"]["code"] == "invalid_transition"
            assert client.post(f"/v1/detections/{a}/ack").status_code == 409
            bad = client.post(f"/v1/detections/{b}/outcome", json={"outcome": "meh"})
            assert bad.status_code == 422
            client.post(f"/v1/detections/{b}/outcome", json={"outcome": "not_a_complaint"})
            client.post(f"/v1/detections/{c}/outcome", json={"outcome": "duplicate"})
            assert client.post("/v1/detections/nope/ack").status_code == 404
            report = client.get("/v1/reports/false-positives").json()
            assert client.get(f"/v1/detections/{b}").json()["outcome"] == "not_a_complaint"
        [row] = report["by_case_type"]
        assert (row["case_type"], row["confirmed"], row["false_positives"]) == ("case.late", 2, 1)
        assert row["false_positive_rate"] == 0.5
        assert report["by_signal"][0]["signal"] == "negative_sentiment"


def _delivered(client: TestClient, hook: str, count: int) -> list[dict[str, Any]]:
    """Wait until the subscription lists `count` deliveries, all recorded as delivered.

    The receiver answers 200 before the sender records it, so a test that has seen the
    receiver accept waits here for the record too.
    """

    def settled() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = client.get(f"/v1/webhooks/{hook}/deliveries").json()["items"]
        done = len(items) == count and all(d["status"] == "delivered" for d in items)
        return items if done else None

    found: list[dict[str, Any]] = wait_for(
        settled, f"{count} deliveries recorded as delivered", timeout=DEADLINE
    )
    return found


def _subscribe(client: TestClient, url: str) -> tuple[str, str]:
    response = client.post("/v1/webhooks", json={"url": url})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert "secret" not in client.get("/v1/webhooks").json()[0]
    return body["id"], body["secret"]


@contextmanager
def _outage(
    db_url: str, tmp_path: Path, factory: sessionmaker[Session], hooks: dict[str, Any]
) -> Iterator[tuple[Receiver, TestClient, str]]:
    """A receiver that fails every request, subscribed, with three detections on their way."""
    with (
        webhook_receiver(Receiver(always_fail=True)) as receiver,
        _app(_settings(db_url, tmp_path, hooks), factory) as client,
    ):
        hook, _secret = _subscribe(client, receiver.url)
        _post(client, [_item(n) for n in range(3)])
        yield receiver, client, hook


class TestPush:
    def test_failing_receiver_gets_each_event_once_in_effect(
        self, db_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
    ) -> None:
        """3 failures then 200: one accepted message per event, same id, signature valid."""
        with (
            webhook_receiver(Receiver(failures_per_message=3)) as receiver,
            _app(_settings(db_url, tmp_path), session_factory) as client,
        ):
            hook, secret = _subscribe(client, receiver.url)
            _post(client, [_item(n) for n in range(3)])
            wait_for(
                lambda: len(receiver.accepted_ids()) >= 3,
                "three accepted messages",
                timeout=DEADLINE,
            )
            deliveries = _delivered(client, hook, 3)
        accepted = receiver.accepted_ids()
        assert len(accepted) == len(set(accepted)) == 3
        for message_id in accepted:
            assert receiver.attempts_of(message_id) == 4
        events = []
        for entry in receiver.accepted:
            event = verify(entry["body"], entry["headers"], secret)
            events.append(event)
            assert event["type"] == "detection.created"
        assert {e["data"]["sources"][0]["type"] for e in events} == {"feedback"}
        assert {d["status"] for d in deliveries} == {"delivered"}
        assert all(d["attempts"] == 4 for d in deliveries)
        with pytest.raises(WebhookVerificationError, match="no signature matches"):
            verify(
                receiver.accepted[0]["body"],
                receiver.accepted[0]["headers"],
                "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
            )

    def test_dead_letter_then_replay_with_the_same_id(
        self, db_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
    ) -> None:
        """After max attempts a delivery is dead and listed; a replay delivers it once."""
        with (
            webhook_receiver(Receiver(always_fail=True)) as receiver,
            _app(_settings(db_url, tmp_path), session_factory) as client,
        ):
            hook, _secret = _subscribe(client, receiver.url)
            _post(client, [_item(1)])

            def dead() -> list[dict[str, Any]] | None:
                items = client.get(
                    f"/v1/webhooks/{hook}/deliveries", params={"status": "dead"}
                ).json()["items"]
                return items or None

            [letter] = wait_for(dead, "a dead letter", timeout=DEADLINE)
            assert letter["attempts"] == 4
            assert receiver.attempts_of(letter["message_id"]) == 4
            receiver.always_fail = False
            replayed = client.post(f"/v1/webhooks/{hook}/deliveries/{letter['id']}/replay")
            assert replayed.status_code == 202
            wait_for(lambda: receiver.accepted_ids(), "the replayed message", timeout=DEADLINE)
            final = _delivered(client, hook, 1)
        assert receiver.accepted_ids() == [letter["message_id"]]
        assert [(d["status"], d["message_id"]) for d in final] == [
            ("delivered", letter["message_id"])
        ]

    def test_an_outage_opens_the_circuit_and_held_deliveries_spend_no_attempts(
        self, db_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
    ) -> None:
        """Two failures in a row open the circuit: nothing more is sent, nothing dies;
        `resume` closes it and every held message is accepted once."""
        hooks = {
            "circuit_failures": 2,
            "circuit_cooldown_seconds": 60.0,
            "circuit_max_cooldown_seconds": 60.0,
        }
        with _outage(db_url, tmp_path, session_factory, hooks) as (receiver, client, hook):

            def opened() -> dict[str, Any] | None:
                body: dict[str, Any] = client.get(f"/v1/webhooks/{hook}").json()
                return body if body["circuit"] == "open" else None

            state = wait_for(opened, "the circuit to open", timeout=DEADLINE)
            assert state["consecutive_failures"] >= 2
            assert state["circuit_open_until"] is not None
            # Every delivery comes up for its next attempt within a second; all are held.
            wait_for(
                lambda: len(client.get(f"/v1/webhooks/{hook}/deliveries").json()["items"]) == 3,
                "three deliveries",
                timeout=DEADLINE,
            )
            time.sleep(1.5)
            sent = len(receiver.requests)
            time.sleep(1.0)
            assert len(receiver.requests) == sent  # held, not sent
            held = client.get(f"/v1/webhooks/{hook}/deliveries").json()["items"]
            assert {d["status"] for d in held} == {"pending"}
            assert sum(d["attempts"] for d in held) == sent  # a hold spends no attempt
            assert 2 <= sent <= 3  # the threshold, plus at most one already in flight

            receiver.always_fail = False
            resumed = client.post(f"/v1/webhooks/{hook}/resume")
            assert resumed.status_code == 200, resumed.text
            assert resumed.json()["circuit"] == "closed"
            assert resumed.json()["consecutive_failures"] == 0
            wait_for(lambda: len(receiver.accepted_ids()) >= 3, "three accepted", timeout=10.0)
            final = _delivered(client, hook, 3)
        assert len(set(receiver.accepted_ids())) == len(receiver.accepted_ids()) == 3
        assert {d["status"] for d in final} == {"delivered"}

    def test_after_the_cooldown_a_probe_goes_and_its_success_releases_the_rest(
        self, db_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
    ) -> None:
        """No hand needed: the receiver comes back, the next probe succeeds, all arrive."""
        hooks = {
            "circuit_failures": 2,
            "circuit_cooldown_seconds": 1.0,
            "circuit_max_cooldown_seconds": 1.0,
            "max_attempts": 8,
        }
        with _outage(db_url, tmp_path, session_factory, hooks) as (receiver, client, hook):
            wait_for(
                lambda: client.get(f"/v1/webhooks/{hook}").json()["circuit"] == "open",
                "the circuit to open",
                timeout=DEADLINE,
            )
            receiver.always_fail = False
            wait_for(lambda: len(receiver.accepted_ids()) >= 3, "three accepted", timeout=DEADLINE)
            wait_for(
                lambda: client.get(f"/v1/webhooks/{hook}").json()["circuit"] == "closed",
                "the circuit to close",
                timeout=DEADLINE,
            )
            final = _delivered(client, hook, 3)
        assert len(set(receiver.accepted_ids())) == 3
        assert {d["status"] for d in final} == {"delivered"}
        assert sum(d["attempts"] for d in final) == len(receiver.requests)

    def test_test_ping_and_delete(
        self, db_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
    ) -> None:
        """A test ping arrives signed; a deleted subscription is gone with its deliveries."""
        with (
            webhook_receiver(Receiver()) as receiver,
            _app(_settings(db_url, tmp_path), session_factory) as client,
        ):
            hook, secret = _subscribe(client, receiver.url)
            assert client.post(f"/v1/webhooks/{hook}/test").status_code == 202
            wait_for(lambda: receiver.accepted_ids(), "the ping", timeout=DEADLINE)
            assert (
                verify(receiver.accepted[0]["body"], receiver.accepted[0]["headers"], secret)[
                    "type"
                ]
                == "webhook.test"
            )
            assert client.delete(f"/v1/webhooks/{hook}").status_code == 204
            assert client.get(f"/v1/webhooks/{hook}/deliveries").status_code == 404

    def test_nothing_lost_or_doubled_across_a_runner_restart(
        self, db_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
    ) -> None:
        """Stop the runner with deliveries pending; a new one delivers each message once."""
        # Attempts enough that no message can reach the dead letters while the first runner
        # still retries after the wait below (a loaded machine stretches that window).
        settings = _settings(db_url, tmp_path, {"max_attempts": 100})
        with webhook_receiver(Receiver(always_fail=True)) as receiver:
            with _app(settings, session_factory) as client:
                _hook, _secret = _subscribe(client, receiver.url)
                _post(client, [_item(n) for n in range(4)])
                wait_for(
                    lambda: len({r["headers"]["webhook-id"] for r in receiver.requests}) >= 4,
                    "an attempt of every message",
                    timeout=DEADLINE,
                )
            receiver.always_fail = False
            with _app(settings, session_factory) as client:
                wait_for(
                    lambda: len(receiver.accepted_ids()) >= 4,
                    "every message accepted",
                    timeout=DEADLINE,
                )
                detections, _ = _pull_all(client)
        accepted = receiver.accepted_ids()
        assert len(accepted) == len(set(accepted)) == 4
        assert len(detections) == 4


class TestDeliveryLease:
    def test_a_result_after_the_lease_was_lost_is_not_recorded(
        self, db_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
    ) -> None:
        """A worker whose lease ran out during its request records nothing: the worker that
        took the delivery over decides it (a failure must not turn its success into dead)."""
        from service.db.repositories import jobs, webhooks
        from service.secrets_at_rest import SecretCipher
        from workers.stages import ClaimedJob, Outcome, RetryPolicy, run_claimed

        settings = _settings(db_url, tmp_path, {"max_attempts": 1})
        with webhook_receiver(Receiver(always_fail=True)) as receiver:
            with session_factory() as session:
                subscription = webhooks.create_subscription(
                    session, receiver.url, ["*"], "whsec_" + "a" * 32, cipher=SecretCipher()
                )
                delivery, job_id = webhooks.enqueue_test(session, subscription, "msg_lease")
                session.commit()
                delivery_id = delivery.id
            with session_factory() as session:  # w1 claims, then stalls past its lease
                claimed = jobs.claim(session, job_id, "w1", 0.05)
                assert claimed is not None
                stale = ClaimedJob(job_id, claimed.kind, delivery_id, claimed.attempts, "w1")
            time.sleep(0.2)
            with session_factory() as session:
                assert jobs.claim(session, job_id, "w2", 30) is not None
            handlers = build_delivery_handlers(settings.webhooks)
            # w1's request fails (and with max_attempts 1 would make the delivery dead).
            outcome = run_claimed(session_factory, stale, 30, handlers, RetryPolicy())
            assert outcome is Outcome.NOT_CLAIMED
            assert len(receiver.requests) == 1
        with session_factory() as session:
            row = webhooks.get_delivery(session, delivery_id)
            assert row is not None
            assert (row.status, row.attempts) == (webhooks.PENDING, 0)
            job = jobs.get(session, job_id)
            assert job is not None
            assert (job.status, job.worker_id) == ("running", "w2")


class TestIncidents:
    def test_a_spike_becomes_an_incident_and_detections_carry_its_id(
        self, db_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
    ) -> None:
        """Four 'late' complaints in one hour, none before: one incident grouping them."""
        settings = _settings(db_url, tmp_path, incident_min_count=4, incident_p_value=0.01)
        now = datetime.now(UTC)
        with _app(settings, session_factory) as client:
            # A steady history of one 'rude' complaint per hour: no spike.
            _post(
                client,
                [
                    _item(
                        100 + h,
                        "The driver was rude.",
                        location="north",
                        occurred_at=(now - timedelta(hours=h)).isoformat(),
                    )
                    for h in range(1, 9)
                ],
            )
            _post(
                client, [_item(n, location="north", occurred_at=now.isoformat()) for n in range(4)]
            )

            def incident() -> list[dict[str, Any]] | None:
                found: list[dict[str, Any]] = client.get("/v1/incidents").json()
                return found or None

            [only] = wait_for(incident, "an incident", timeout=DEADLINE)
            grouped = wait_for(
                lambda: (
                    (d := client.get(f"/v1/incidents/{only['id']}").json()["detection_ids"])
                    and len(d) == 4
                    and d
                ),
                "four detections in it",
                timeout=DEADLINE,
            )
            late = [
                d for d in _pull_all(client, limit=50)[0] if d["case_type"]["id"] == "case.late"
            ]
            trends = client.get(
                "/v1/trends", params={"bucket": "hour", "dimension": ["case_type", "location"]}
            )
        assert (only["dimension"], only["key"], only["count"]) == ("case_type", "case.late", 4)
        assert {d["incident_id"] for d in late} == {only["id"]}
        assert {d["id"] for d in late} == set(grouped)
        points = trends.json()["points"]
        assert sum(p["count"] for p in points if p["key"] == "case.rude") == 8
        assert sum(p["count"] for p in points if p["key"] == "north") == 12


class TestRealDetector:
    def test_nlp_detect_signals_merge_and_a_rerun_stores_nothing(
        self, db_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
    ) -> None:
        """nlp.detect through the stage: score contradiction, then a merged repeat contact."""
        from workers.stages_detect import NlpDetector

        with _app(_settings(db_url, tmp_path), session_factory, NlpDetector()) as client:
            stars = {"score": 5, "scale": "stars_1_5", "customer_id": "c-7"}
            [first_id] = _post(client, [{**_item(1), **stars}])
            [first] = wait_for(lambda: _pull_all(client)[0], "a detection", timeout=DEADLINE)
            cursor = _pull_all(client)[1]
            _post(client, [{**_item(2, "Late again, second time I ask."), **stars}])
            [second] = wait_for(
                lambda: _pull_all(client, cursor)[0], "the merged update", timeout=DEADLINE
            )
            # Run the first item's evaluation again, as after a crash before its ack.
            with session_factory() as session:
                session.execute(
                    update(Job)
                    .where(Job.kind == "detections.evaluate", Job.subject_id == first_id)
                    .values(status="queued", attempts=0)
                )
                session.commit()
            wait_for(lambda: _all_jobs_done(session_factory), "the re-run", timeout=DEADLINE)
            after, _ = _pull_all(client)
        assert "score_contradiction" in {s["name"] for s in first["signals"]}
        assert first["case_type"]["id"] == "case.late"
        assert first["due_by"]
        assert second["id"] == first["id"]
        assert second["version"] == 2
        assert "repeat_contact" in {s["name"] for s in second["signals"]}
        assert [(d["id"], d["seq"]) for d in after] == [(second["id"], second["seq"])]


def _all_jobs_done(factory: sessionmaker[Session]) -> bool:
    with factory() as session:
        return set(session.scalars(select(Job.status))) == {"done"}


def _delivery_jobs(factory: sessionmaker[Session]) -> dict[str, str]:
    """Delivery id -> the status of its `webhook.deliver` job."""
    with factory() as session:
        rows = session.execute(
            select(Job.subject_id, Job.status).where(Job.kind == "webhook.deliver")
        ).all()
        return {subject_id: status for subject_id, status in rows}


class TestDeliveryScheduling:
    def test_a_retry_runs_at_its_due_time_without_waiting_for_a_poll(
        self, db_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
    ) -> None:
        """Two failed attempts, each retried once its backoff is over: the threads poll hourly."""
        backoff = 1.0
        base = _settings(db_url, tmp_path)
        settings = base.model_copy(
            update={
                "queue": base.queue.model_copy(update={"sweep_interval_seconds": 3600.0}),
                "webhooks": base.webhooks.model_copy(
                    update={
                        "backoff_base_seconds": backoff,
                        "backoff_max_seconds": 10.0,
                        "jitter": 0.0,
                    }
                ),
            }
        )
        with (
            webhook_receiver(Receiver(failures_per_message=2)) as receiver,
            _app(settings, session_factory) as client,
        ):
            _subscribe(client, receiver.url)
            _post(client, [_item(1)])
            [accepted] = wait_for(receiver.accepted_ids, "the third attempt", timeout=DEADLINE)
        arrivals = [r["at"] for r in receiver.requests]
        assert receiver.attempts_of(accepted) == 3
        # Each retry waited for its due time (backoff 1 s, then 2 s), none ran early.
        assert arrivals[1] - arrivals[0] >= backoff
        assert arrivals[2] - arrivals[1] >= 2 * backoff

    def test_a_stalled_receiver_does_not_hold_up_analysis(
        self, db_url: str, tmp_path: Path, session_factory: sessionmaker[Session]
    ) -> None:
        """One stage thread: new feedback is analysed while every delivery waits on its receiver."""
        base = _settings(db_url, tmp_path)
        settings = base.model_copy(
            update={
                "queue": base.queue.model_copy(update={"embedded_threads": 1}),
                # The sender waits this long; the receiver holds each first request longer.
                "webhooks": base.webhooks.model_copy(update={"timeout_seconds": 45.0}),
            }
        )
        stalling = Receiver(failures_per_message=1, hang_on_request=1, hang_seconds=120.0)
        with webhook_receiver(stalling) as receiver, _app(settings, session_factory) as client:
            hook, _secret = _subscribe(client, receiver.url)
            [first] = _post(client, [_item(1)])
            [stalled] = wait_for(receiver.hanging_ids, "a delivery in flight", timeout=DEADLINE)
            [second] = _post(client, [_item(2, "The driver was rude.")])

            def second_detected() -> bool:
                found, _ = _pull_all(client)
                return any(d["sources"][0]["id"] == second for d in found)

            wait_for(second_detected, "the new item analysed and detected", timeout=DEADLINE)
            # Meanwhile the first delivery is still in flight: its sender still waits.
            assert stalled in receiver.hanging_ids()
            deliveries = client.get(f"/v1/webhooks/{hook}/deliveries").json()["items"]
            [stalled_delivery] = [d["id"] for d in deliveries if d["message_id"] == stalled]
            assert _delivery_jobs(session_factory)[stalled_delivery] == "running"
            receiver.released.set()
            wait_for(lambda: len(receiver.accepted_ids()) == 2, "both messages", timeout=DEADLINE)
        assert first != second
        assert sorted(receiver.accepted_ids()) == sorted(d["message_id"] for d in deliveries)
