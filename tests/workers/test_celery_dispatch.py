"""`CeleryDispatcher` against a real Redis, and against a broker that is down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kombu import Connection

from service.config import QueueSettings, Settings
from service.dispatch import DispatchUnavailable
from tests.conftest import _free_port
from workers.celery_config import DELIVERY_QUEUE, JOBS_QUEUE, MAX_ETA_SECONDS
from workers.celery_dispatch import CeleryDispatcher, send_job, sending_app


def _settings(broker_url: str) -> Settings:
    return Settings(queue=QueueSettings(backend="celery", broker_url=broker_url))


def _dead_broker() -> str:
    return f"redis://127.0.0.1:{_free_port()}/0"


def _take(redis_url: str, queue_name: str, count: int) -> list[Any]:
    """Take `count` messages off a queue (acknowledged)."""
    with Connection(redis_url) as connection:
        queue = connection.SimpleQueue(queue_name)
        messages = [queue.get(timeout=10) for _ in range(count)]
        for message in messages:
            message.ack()
        queue.close()
    return messages


def _waiting(redis_url: str, queue_name: str) -> int:
    with Connection(redis_url) as connection:
        return int(connection.default_channel.client.llen(queue_name))


class TestCeleryDispatcher:
    def test_notify_puts_one_message_per_job_on_the_jobs_queue(self, redis_url: str) -> None:
        """Each announced job id becomes a task message named by its kind."""
        dispatcher = CeleryDispatcher(_settings(redis_url))
        dispatcher.notify(["job-1", "job-2"])
        dispatcher.stop()  # drains the sender thread
        with Connection(redis_url) as connection:
            queue = connection.SimpleQueue(JOBS_QUEUE)
            messages = [queue.get(timeout=10) for _ in range(2)]
            for message in messages:
                message.ack()
            queue.close()
        assert sorted(m.headers["task"] for m in messages) == ["feedback.analyze"] * 2
        assert sorted(m.headers["argsrepr"] for m in messages) == ["['job-1']", "['job-2']"]

    def test_notify_never_raises_when_the_broker_is_down(self) -> None:
        """A dead broker is logged, not raised: the job is committed and a sweeper re-sends it."""
        dispatcher = CeleryDispatcher(_settings(_dead_broker()))
        dispatcher.notify(["job-1"])
        dispatcher.stop()

    def test_readiness_follows_the_broker(self, redis_url: str) -> None:
        """/readyz sees a live broker as ready and a dead one as not."""
        assert CeleryDispatcher(_settings(redis_url)).readiness() == {"broker": True}
        assert CeleryDispatcher(_settings(_dead_broker())).readiness() == {"broker": False}

    def test_analyze_now_without_broker_is_unavailable(self) -> None:
        """Synchronous analysis with the broker down is a 503, not a hang or a 500."""
        dispatcher = CeleryDispatcher(_settings(_dead_broker()))
        with pytest.raises(DispatchUnavailable, match="broker"):
            dispatcher.analyze_now([{"id": "1", "text": "Late again."}], timeout=5)

    def test_analyze_now_without_workers_times_out_as_unavailable(self, redis_url: str) -> None:
        """With no worker to answer, the caller gets DispatchUnavailable after the timeout."""
        dispatcher = CeleryDispatcher(_settings(redis_url))
        with pytest.raises(DispatchUnavailable, match="no worker"):
            dispatcher.analyze_now([{"id": "1", "text": "Late again."}], timeout=2)
        dispatcher.stop()


class TestDeliveryQueue:
    def test_deliveries_go_to_their_own_queue(self, redis_url: str) -> None:
        """A webhook.deliver announcement waits on undertone.delivery, not behind analysis."""
        dispatcher = CeleryDispatcher(_settings(redis_url))
        dispatcher.notify(["job-1"], kind="webhook.deliver")
        dispatcher.stop()
        [message] = _take(redis_url, DELIVERY_QUEUE, 1)
        assert message.headers["task"] == "webhook.deliver"
        assert message.headers["eta"] is None
        assert _waiting(redis_url, JOBS_QUEUE) == 0

    def test_a_job_due_later_is_sent_with_its_due_time_as_eta(self, redis_url: str) -> None:
        """A retry's task carries its due time; one due past the horizon, the horizon."""
        app = sending_app(_settings(redis_url))
        soon = datetime.now(UTC) + timedelta(seconds=30)
        send_job(app, "webhook.deliver", "job-1", soon)
        before = datetime.now(UTC)
        send_job(app, "webhook.deliver", "job-2", before + timedelta(hours=6))
        after = datetime.now(UTC)
        app.close()
        messages = {m.headers["argsrepr"]: m for m in _take(redis_url, DELIVERY_QUEUE, 2)}
        assert datetime.fromisoformat(messages["['job-1']"].headers["eta"]) == soon
        capped = datetime.fromisoformat(messages["['job-2']"].headers["eta"])
        horizon = timedelta(seconds=MAX_ETA_SECONDS)
        assert before + horizon <= capped <= after + horizon
