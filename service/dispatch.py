"""The seam between the API and the analysis: the API process depends only on this protocol.

The composition roots fill it: `workers.embedded.EmbeddedDispatcher` runs stages on threads
inside the API process (the embedded default), `workers.celery_dispatch.CeleryDispatcher`
sends Celery tasks by name, so a scaled-out API never loads a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class Dispatcher(Protocol):
    """How the API hands work to the stages."""

    def notify(self, job_ids: Sequence[str], kind: str | None = None) -> None:
        """Announce committed jobs; must not raise when the queue is down (the sweeper retries).

        ``kind`` is the job kind of all of ``job_ids`` (default ``feedback.analyze``): Celery
        routes by it, e.g. recordings to their own queue.
        """

    def analyze_now(self, items: Sequence[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
        """Analyse texts synchronously, storing nothing; raise `DispatchUnavailable` if it can't."""

    def readiness(self) -> dict[str, bool]:
        """Component checks for /readyz, e.g. {"models": True, "broker": True}."""

    def start(self) -> None:
        """Start background work (embedded threads, sweeper)."""

    def stop(self) -> None:
        """Stop background work, letting running jobs finish or lapse to the sweeper."""


class DispatchUnavailable(RuntimeError):
    """The analysis backend cannot take synchronous work right now (503 to the caller)."""
