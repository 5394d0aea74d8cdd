"""`CeleryDispatcher`: the API side of the Celery mode; sends tasks by name, loads no model."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from service.config import Settings
from service.dispatch import DispatchUnavailable
from workers.celery_config import (
    BROKER_CONNECT_TIMEOUT,
    MAX_ETA_SECONDS,
    SYNC_TASK,
    celery_config,
)

log = structlog.get_logger(__name__)

# The kind of the jobs the API creates when notify() is not told another one.
DEFAULT_KIND = "feedback.analyze"
STOP_TIMEOUT_SECONDS = 5.0


def sending_app(settings: Settings) -> Celery:
    """A Celery app that only sends: same broker, queues and routes as the workers, no tasks."""
    app = Celery("undertone", set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


def send_job(
    app: Celery, kind: str, job_id: str, due: datetime | None = None, **options: Any
) -> None:
    """Send a job's task (named and routed by its kind, carrying only the job id).

    With ``due`` in the future, the task waits in a worker until then (an ETA), at most
    `MAX_ETA_SECONDS` ahead: a job due later is claimed by nobody when its task comes early,
    and `workers.stages.run_job` sends it again for its due time.
    """
    now = datetime.now(UTC)
    if due is not None and due > now:
        options["eta"] = min(due, now + timedelta(seconds=MAX_ETA_SECONDS))
    app.send_task(kind, args=[job_id], **options)


class CeleryDispatcher:
    """Announces jobs to Celery workers over the broker; the workers' sweepers cover failures.

    `notify` hands the ids to a sender thread, so that a request never waits on a slow or
    dead broker: the jobs are committed already, and a lost announcement only delays them
    until a worker's sweeper finds them.
    """

    def __init__(self, settings: Settings, kind: str = DEFAULT_KIND) -> None:
        self._settings = settings
        self._kind = kind
        self._app = sending_app(settings)
        self._pending: queue.SimpleQueue[tuple[str, str] | None] = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the sender thread."""
        with self._lock:
            if self._sender is None or not self._sender.is_alive():
                self._sender = threading.Thread(
                    target=self._send_loop, name="undertone-notify", daemon=True
                )
                self._sender.start()

    def stop(self) -> None:
        """Send what is pending (briefly), then release the broker connections."""
        sender = self._sender
        if sender is not None:
            self._pending.put(None)
            sender.join(timeout=STOP_TIMEOUT_SECONDS)
            self._sender = None
        self._app.close()

    def notify(self, job_ids: Sequence[str], kind: str | None = None) -> None:
        """Queue the announcements for the sender thread; never blocks, never raises."""
        if self._sender is None:
            self.start()
        for job_id in job_ids:
            self._pending.put((kind or self._kind, job_id))

    def _send_loop(self) -> None:
        while True:
            entry = self._pending.get()
            if entry is None:
                return
            kind, job_id = entry
            try:
                send_job(self._app, kind, job_id, retry=False, ignore_result=True)
            except Exception as error:  # any broker failure: the sweeper re-sends the job
                log.warning("notify_failed", job_id=job_id, kind=kind, error=str(error))

    def analyze_now(self, items: Sequence[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
        """Run `analyze.sync` on a worker and wait for it; `DispatchUnavailable` if it can't."""
        if not self._broker_answers():
            raise DispatchUnavailable("the broker is unreachable")
        try:
            result = self._app.send_task(
                SYNC_TASK, args=[list(items)], retry=False, ignore_result=False, expires=timeout
            )
        except Exception as error:  # kombu, redis-py and socket errors alike
            raise DispatchUnavailable(f"the broker is unreachable: {error}") from error
        try:
            value = result.get(timeout=timeout, propagate=True, disable_sync_subtasks=False)
        except CeleryTimeoutError as error:
            raise DispatchUnavailable(
                f"no worker answered within {timeout:g} s (are `undertone worker`s running?)"
            ) from error
        except (KombuError, OSError, RedisError) as error:
            raise DispatchUnavailable(f"lost the broker while waiting: {error}") from error
        finally:
            with contextlib.suppress(Exception):
                result.forget()
        return list(value)

    def readiness(self) -> dict[str, bool]:
        """The broker answers."""
        return {"broker": self._broker_answers()}

    def _broker_answers(self) -> bool:
        try:
            with self._app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=BROKER_CONNECT_TIMEOUT)
            return True
        except Exception as error:  # kombu, redis-py and socket errors alike
            log.warning("broker_unreachable", error=str(error))
            return False
