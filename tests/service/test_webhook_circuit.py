"""The webhook circuit breaker's arithmetic and states (the behaviour end to end is in
tests/e2e/test_detections.py::TestPush)."""

from __future__ import annotations

from datetime import timedelta

from service.db.models import utcnow
from service.db.models_detections import WebhookSubscription
from service.db.repositories.webhooks import Circuit, circuit_state


def test_cooldown_doubles_per_failed_probe_up_to_the_maximum() -> None:
    circuit = Circuit(failures=5, cooldown_seconds=60.0, max_cooldown_seconds=600.0)
    assert [circuit.cooldown(n) for n in (5, 6, 7, 8, 9, 500)] == [60, 120, 240, 480, 600, 600]


def test_states_follow_the_reopen_time() -> None:
    now = utcnow()
    row = WebhookSubscription(url="https://example.com", circuit_open_until=None)
    assert circuit_state(row, now) == "closed"
    row.circuit_open_until = now + timedelta(seconds=1)
    assert circuit_state(row, now) == "open"
    row.circuit_open_until = now - timedelta(seconds=1)
    assert circuit_state(row, now) == "half-open"
