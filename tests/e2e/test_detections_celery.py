"""Feedback in, detections out, in Celery mode with the real models: pulled by cursor and
pushed to a real local receiver that fails (500s, then a timeout) before accepting, while the
worker is SIGKILLed in the middle of a delivery and a new one takes over.

The API runs in-process with `CeleryDispatcher`; `undertone worker` subprocesses run the
real analyzer and the real detector (`nlp.detect`) on real Redis and PostgreSQL.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.api.app import create_app
from service.config import Settings, WebhookSettings
from service.db.engine import create_db_engine, create_session_factory
from service.db.models import Job
from service.db.models_detections import Detection, DetectionSource
from service.webhooks import verify
from tests.e2e.detections_support import CursorPoller, Receiver, webhook_receiver
from tests.e2e.support import (
    all_done,
    analyses_per_item,
    kill_group,
    make_settings,
    post_items,
    process_env,
    running,
    start_cli,
    wait_for,
)
from workers.celery_config import AUDIO_QUEUE, DELIVERY_QUEUE, JOBS_QUEUE, SYNC_QUEUE
from workers.celery_dispatch import CeleryDispatcher

pytestmark = [pytest.mark.slow, pytest.mark.celery]

# Failed attempts before the receiver accepts a message: two 500s, then a stall that the
# sender gives up on (its timeout).
FAILURES = 3
HANG_ON_REQUEST = 3
WEBHOOKS = WebhookSettings(
    timeout_seconds=3.0,
    max_attempts=8,
    backoff_base_seconds=0.2,
    backoff_max_seconds=1.0,
    jitter=0.5,
    allow_private_urls=True,
    circuit_cooldown_seconds=0.2,
    circuit_max_cooldown_seconds=1.0,
)

# What a worker that leaves deliveries to a dedicated one consumes.
MODEL_QUEUES = (JOBS_QUEUE, SYNC_QUEUE, AUDIO_QUEUE)

# external id -> (fields, what the real models must make of it).
COMPLAINTS: dict[str, dict[str, Any]] = {
    "refund": {
        "text": "My refund still has not arrived after three weeks and nobody answers my emails.",
        "channel": "email",
    },
    # Stated as praise: the score and the irony tell (an unexpressed complaint).
    "hold": {
        "text": "Great, another hour on hold. Just perfect.",
        "channel": "survey",
        "score": 5,
        "scale": "stars_1_5",
    },
    # Five stars over an angry text: the score contradicts the words.
    "crash": {
        "text": "The app crashes every time I try to pay and I was charged twice. Fix it.",
        "channel": "review",
        "score": 5,
        "scale": "stars_1_5",
    },
}
PRAISE = {
    "thanks": {
        "text": "Lovely staff, quick delivery, thank you so much!",
        "channel": "review",
        "score": 5,
        "scale": "stars_1_5",
    },
}
# Sent while no worker runs (between the kill and the restart).
LATE = {
    "rude": {
        "text": "I was charged twice for the same order and the agent was rude to me on the phone.",
        "channel": "chat",
    },
}


def _items(group: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    # One customer per item: no two complaints merge into one detection.
    return [{"external_id": k, "customer_id": f"cust-{k}", **v} for k, v in group.items()]


@pytest.fixture
def session_factory(postgres_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test's own PostgreSQL database."""
    engine = create_db_engine(postgres_url)
    try:
        yield create_session_factory(engine)
    finally:
        engine.dispose()


def _worker_env(base: dict[str, str], settings: Settings) -> dict[str, str]:
    env = process_env(base, settings)
    hooks = settings.webhooks
    env.update(
        {
            "UNDERTONE_WEBHOOKS__TIMEOUT_SECONDS": str(hooks.timeout_seconds),
            "UNDERTONE_WEBHOOKS__MAX_ATTEMPTS": str(hooks.max_attempts),
            "UNDERTONE_WEBHOOKS__BACKOFF_BASE_SECONDS": str(hooks.backoff_base_seconds),
            "UNDERTONE_WEBHOOKS__BACKOFF_MAX_SECONDS": str(hooks.backoff_max_seconds),
            "UNDERTONE_WEBHOOKS__JITTER": str(hooks.jitter),
            "UNDERTONE_WEBHOOKS__CIRCUIT_FAILURES": str(hooks.circuit_failures),
            "UNDERTONE_WEBHOOKS__CIRCUIT_COOLDOWN_SECONDS": str(hooks.circuit_cooldown_seconds),
            "UNDERTONE_WEBHOOKS__CIRCUIT_MAX_COOLDOWN_SECONDS": str(
                hooks.circuit_max_cooldown_seconds
            ),
            "UNDERTONE_WEBHOOKS__ALLOW_PRIVATE_URLS": "true",
            # Incidents re-emit detections (tested in test_detections); here each detection
            # has exactly one event, so counting messages means something.
            "UNDERTONE_DETECTIONS__INCIDENT_MIN_COUNT": "1000",
        }
    )
    return env


def _worker(env: dict[str, str], log: Path, *options: str) -> subprocess.Popen[bytes]:
    return start_cli(["worker", "--concurrency", "1", "--loglevel", "INFO", *options], env, log)


def _wait_until_answering(client: TestClient, log: Path) -> None:
    """The worker answers once its models are loaded: its first sweep is behind it."""
    probe = {"items": [{"id": "probe", "text": "Hello."}]}
    wait_for(
        lambda: client.post("/v1/analyze", json=probe).status_code == 200,
        "the worker to answer",
        log_path=log,
    )


def _log_events(log: Path, event: str, kind: str) -> int:
    """How many lines of a worker log are `event` for a job of `kind` (colours stripped)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))
    return sum(1 for line in text.splitlines() if f" {event} " in line and f"kind={kind}" in line)


def _jobs(factory: sessionmaker[Session]) -> list[tuple[str, str, str]]:
    with factory() as session:
        return [(r.kind, r.subject_id, r.status) for r in session.scalars(select(Job))]


def _detection_sources(factory: sessionmaker[Session]) -> dict[str, list[str]]:
    """Detection id -> the ids of the items it came from."""
    with factory() as session:
        out: dict[str, list[str]] = {d: [] for d in session.scalars(select(Detection.id))}
        for row in session.scalars(select(DetectionSource)):
            out[row.detection_id].append(row.source_id)
        return out


class TestDetectionsCelery:
    def test_detections_reach_poller_and_flaky_receiver_once_across_a_worker_kill(
        self,
        postgres_url: str,
        redis_url: str,
        tmp_path: Path,
        model_artifacts_dir: Path,
        offline_env: dict[str, str],
        session_factory: sessionmaker[Session],
    ) -> None:
        """SIGKILL mid-delivery: every event accepted once under one id, pulled once in order."""
        settings = make_settings(
            database_url=postgres_url,
            data_dir=tmp_path / "data",
            artifacts_dir=model_artifacts_dir,
            backend="celery",
            broker_url=redis_url,
            lease_seconds=6.0,
            sweep_seconds=0.5,
        ).model_copy(update={"webhooks": WEBHOOKS})
        env = _worker_env(offline_env, settings)
        first_log, second_log = tmp_path / "worker-1.log", tmp_path / "worker-2.log"
        app = create_app(settings, CeleryDispatcher(settings), session_factory)
        receiver = Receiver(
            failures_per_message=FAILURES,
            failure_status=500,
            hang_on_request=HANG_ON_REQUEST,
            hang_seconds=3 * WEBHOOKS.timeout_seconds,
        )
        with webhook_receiver(receiver), TestClient(app) as client:
            created = client.post("/v1/webhooks", json={"url": receiver.url})
            assert created.status_code == 201, created.text
            hook, secret = created.json()["id"], created.json()["secret"]
            poller = CursorPoller(client)
            ids = dict(
                zip(
                    COMPLAINTS | PRAISE,
                    post_items(client, _items(COMPLAINTS | PRAISE)),
                    strict=True,
                )
            )

            first = _worker(env, first_log)
            with running(first):
                # A delivery stalls in the receiver: the worker is waiting on it. Kill it.
                def in_flight() -> str | None:
                    stalled = receiver.hanging_ids()
                    if stalled:
                        return stalled[0]
                    poller.poll()
                    return None

                victim = wait_for(in_flight, "a delivery in flight", log_path=first_log)
                kill_group(first)
            deliveries = client.get(f"/v1/webhooks/{hook}/deliveries").json()["items"]
            [victim_delivery] = [d["id"] for d in deliveries if d["message_id"] == victim]
            assert ("webhook.deliver", victim_delivery, "running") in _jobs(session_factory)

            ids |= dict(zip(LATE, post_items(client, _items(LATE)), strict=True))
            with running(_worker(env, second_log)):

                def settled() -> bool:
                    poller.poll()
                    if not all_done(session_factory, list(ids.values())):
                        return False
                    if any(status != "done" for _, _, status in _jobs(session_factory)):
                        return False
                    pending = client.get(
                        f"/v1/webhooks/{hook}/deliveries", params={"status": "pending"}
                    ).json()["items"]
                    return not pending

                wait_for(settled, "every item, job and delivery settled", log_path=second_log)
                poller.poll()
            deliveries = client.get(f"/v1/webhooks/{hook}/deliveries").json()["items"]

        # Every item done with exactly one analysis; no job left behind.
        assert analyses_per_item(session_factory) == dict.fromkeys(ids.values(), 1)
        assert {status for _, _, status in _jobs(session_factory)} == {"done"}

        # The real models found each complaint, stated or not, and nothing in the praise.
        sources = _detection_sources(session_factory)
        by_item: dict[str, list[str]] = {}
        for detection_id, items in sources.items():
            assert len(items) == 1, "no two customers' complaints merge"
            by_item.setdefault(items[0], []).append(detection_id)
        assert set(by_item) == {ids[k] for k in (*COMPLAINTS, *LATE)}

        # The poller saw each detection once, in commit (seq) order, as stored.
        seen = poller.seen
        assert sorted(d["id"] for d in seen) == sorted(sources)
        assert [d["seq"] for d in seen] == sorted({d["seq"] for d in seen})
        assert all(d["version"] == 1 for d in seen)
        pulled = {d["id"]: d for d in seen}
        [hold] = by_item[ids["hold"]]
        assert pulled[hold]["kind"] == "unexpressed"
        [refund] = by_item[ids["refund"]]
        assert pulled[refund]["kind"] == "explicit"
        assert any(
            s["name"] == "score_contradiction"
            for d in by_item[ids["crash"]]
            for s in pulled[d]["signals"]
        )

        # One message per detection event, delivered; the receiver accepted each once.
        assert len(deliveries) == len(sources)
        assert {d["status"] for d in deliveries} == {"delivered"}
        assert sorted(d["detection_id"] for d in deliveries) == sorted(sources)
        message_ids = {d["message_id"] for d in deliveries}
        assert len(message_ids) == len(deliveries)
        accepted = receiver.accepted_ids()
        assert sorted(accepted) == sorted(message_ids)
        # Every attempt of a message: same id, same bytes, a valid signature; each message
        # failed its scripted attempts (the killed one included) and was then accepted.
        for message_id in message_ids:
            attempts = [r for r in receiver.requests if r["headers"]["webhook-id"] == message_id]
            assert len(attempts) == FAILURES + 1, message_id
            assert len({r["body"] for r in attempts}) == 1
            for request in attempts:
                verify(request["body"], request["headers"], secret)
        assert {r["headers"]["webhook-id"] for r in receiver.requests} == message_ids
        events = [verify(r["body"], r["headers"], secret) for r in receiver.accepted]
        assert {e["type"] for e in events} == {"detection.created"}
        assert sorted(e["data"]["id"] for e in events) == sorted(sources)
        for event in events:
            assert event["data"]["seq"] == pulled[event["data"]["id"]]["seq"]

    def test_each_stage_announces_the_next_without_waiting_for_a_sweep(
        self,
        postgres_url: str,
        redis_url: str,
        tmp_path: Path,
        model_artifacts_dir: Path,
        offline_env: dict[str, str],
        session_factory: sessionmaker[Session],
    ) -> None:
        """Analysis -> detection -> delivery on announcements alone (the sweeper is for crashes)."""
        settings = make_settings(
            database_url=postgres_url,
            data_dir=tmp_path / "data",
            artifacts_dir=model_artifacts_dir,
            backend="celery",
            broker_url=redis_url,
            # One sweep when the worker starts, then none for the rest of the test.
            sweep_seconds=3600.0,
        ).model_copy(update={"webhooks": WEBHOOKS})
        log = tmp_path / "worker.log"
        app = create_app(settings, CeleryDispatcher(settings), session_factory)
        with (
            webhook_receiver(Receiver()) as receiver,
            TestClient(app) as client,
            running(_worker(_worker_env(offline_env, settings), log)),
        ):
            created = client.post("/v1/webhooks", json={"url": receiver.url})
            assert created.status_code == 201, created.text
            secret = created.json()["secret"]
            _wait_until_answering(client, log)
            [item_id] = post_items(client, _items({"refund": COMPLAINTS["refund"]}))
            poller = CursorPoller(client)
            [detection] = wait_for(poller.poll, "the detection, pulled", log_path=log)
            wait_for(receiver.accepted_ids, "the detection, pushed", log_path=log)
            wait_for(
                lambda: {status for _, _, status in _jobs(session_factory)} == {"done"},
                "every job done",
                log_path=log,
            )
        assert detection["sources"] == [{"type": "feedback", "id": item_id}]
        [accepted] = receiver.accepted
        event = verify(accepted["body"], accepted["headers"], secret)
        assert (event["type"], event["data"]["id"]) == ("detection.created", detection["id"])


class TestDeliveryScheduling:
    def test_a_failed_delivery_is_retried_at_its_due_time_without_a_sweep(
        self,
        postgres_url: str,
        redis_url: str,
        tmp_path: Path,
        model_artifacts_dir: Path,
        offline_env: dict[str, str],
        session_factory: sessionmaker[Session],
    ) -> None:
        """Each failed attempt is announced for its due time and runs then, logged as such."""
        backoff = 1.0
        settings = make_settings(
            database_url=postgres_url,
            data_dir=tmp_path / "data",
            artifacts_dir=model_artifacts_dir,
            backend="celery",
            broker_url=redis_url,
            # One sweep when the worker starts, then none for the rest of the test.
            sweep_seconds=3600.0,
        ).model_copy(
            update={
                "webhooks": WEBHOOKS.model_copy(
                    update={
                        "backoff_base_seconds": backoff,
                        "backoff_max_seconds": 10.0,
                        "jitter": 0.0,
                    }
                )
            }
        )
        log = tmp_path / "worker.log"
        app = create_app(settings, CeleryDispatcher(settings), session_factory)
        with (
            webhook_receiver(Receiver(failures_per_message=2)) as receiver,
            TestClient(app) as client,
            # The default worker: every queue, deliveries included.
            running(_worker(_worker_env(offline_env, settings), log)),
        ):
            created = client.post("/v1/webhooks", json={"url": receiver.url})
            assert created.status_code == 201, created.text
            _wait_until_answering(client, log)
            post_items(client, _items({"refund": COMPLAINTS["refund"]}))
            [accepted] = wait_for(receiver.accepted_ids, "the third attempt", log_path=log)
            wait_for(
                lambda: {status for _, _, status in _jobs(session_factory)} == {"done"},
                "every job done",
                log_path=log,
            )
        arrivals = [r["at"] for r in receiver.requests]
        assert receiver.attempts_of(accepted) == 3
        # Each retry waited for its due time (backoff 1 s, then 2 s), none ran early.
        assert arrivals[1] - arrivals[0] >= backoff
        assert arrivals[2] - arrivals[1] >= 2 * backoff
        # Two attempts put back, one done: the log says so.
        assert _log_events(log, "job_rescheduled", "webhook.deliver") == 2
        assert _log_events(log, "job_done", "webhook.deliver") == 1

    def test_a_stalled_receiver_does_not_hold_up_analysis(
        self,
        postgres_url: str,
        redis_url: str,
        tmp_path: Path,
        model_artifacts_dir: Path,
        offline_env: dict[str, str],
        session_factory: sessionmaker[Session],
    ) -> None:
        """A delivery worker waits on stalled receivers; new feedback is analysed meanwhile."""
        settings = make_settings(
            database_url=postgres_url,
            data_dir=tmp_path / "data",
            artifacts_dir=model_artifacts_dir,
            backend="celery",
            broker_url=redis_url,
            sweep_seconds=3600.0,
        ).model_copy(update={"webhooks": WEBHOOKS.model_copy(update={"timeout_seconds": 60.0})})
        env = _worker_env(offline_env, settings)
        model_log, delivery_log = tmp_path / "worker.log", tmp_path / "delivery.log"
        app = create_app(settings, CeleryDispatcher(settings), session_factory)
        # Each message's first request is held longer than the sender waits, until released.
        stalling = Receiver(failures_per_message=1, hang_on_request=1, hang_seconds=300.0)
        with (
            webhook_receiver(stalling) as receiver,
            TestClient(app) as client,
            running(_worker(env, model_log, "--queues", ",".join(MODEL_QUEUES))),
            running(
                start_cli(
                    [
                        "worker",
                        "--queues",
                        DELIVERY_QUEUE,
                        "--pool",
                        "threads",
                        "--concurrency",
                        "2",
                        "--loglevel",
                        "INFO",
                    ],
                    env,
                    delivery_log,
                )
            ),
        ):
            created = client.post("/v1/webhooks", json={"url": receiver.url})
            assert created.status_code == 201, created.text
            hook = created.json()["id"]
            _wait_until_answering(client, model_log)
            post_items(client, _items({"refund": COMPLAINTS["refund"]}))
            [stalled] = wait_for(
                receiver.hanging_ids, "a delivery in flight", log_path=delivery_log
            )
            [late] = post_items(client, _items(LATE))
            poller = CursorPoller(client)

            def late_detected() -> bool:
                poller.poll()
                return any(s["id"] == late for d in poller.seen for s in d["sources"])

            wait_for(late_detected, "the new item analysed and detected", log_path=model_log)
            # Meanwhile the first delivery is still in flight: its sender still waits.
            assert stalled in receiver.hanging_ids()
            deliveries = client.get(f"/v1/webhooks/{hook}/deliveries").json()["items"]
            [stalled_delivery] = [d["id"] for d in deliveries if d["message_id"] == stalled]
            assert ("webhook.deliver", stalled_delivery, "running") in _jobs(session_factory)
            receiver.released.set()

            def messages() -> list[str]:
                items = client.get(f"/v1/webhooks/{hook}/deliveries").json()["items"]
                return sorted(d["message_id"] for d in items)

            # One message per detection: the late text may name two case types (a double
            # charge and a rude agent), so count the deliveries instead of assuming two.
            wait_for(
                lambda: len(messages()) >= 2 and sorted(receiver.accepted_ids()) == messages(),
                "every message accepted",
                log_path=delivery_log,
            )
            assert sorted(receiver.accepted_ids()) == messages()
