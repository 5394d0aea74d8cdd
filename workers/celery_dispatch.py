"""`CeleryDispatcher`: the API side of the Celery mode; sends tasks by name, loads no model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError
from kombu.exceptions import KombuError, OperationalError

from service.config import Settings
from service.dispatch import DispatchUnavailable
from workers.celery_config import BROKER_CONNECT_TIMEOUT, SYNC_TASK, celery_config

log = structlog.get_logger(__name__)

# The API never knows a job's kind from its id alone, so notify() is given the kind along
# with the ids by whoever enqueued them; this is the kind of every job the API creates today.
DEFAULT_KIND = "feedback.analyze"


def sending_app(settings: Settings) -> Celery:
    """A Celery app that only sends: same broker, queues and routes as the workers, no tasks."""
    app = Celery("undertone", set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


class CeleryDispatcher:
    """Announces jobs to Celery workers over the broker; the workers' sweepers cover failures."""

    def __init__(self, settings: Settings, kind: str = DEFAULT_KIND) -> None:
        self._settings = settings
        self._kind = kind
        self._app = sending_app(settings)

    def start(self) -> None:
        """Nothing runs in the API process in this mode."""

    def stop(self) -> None:
        """Release the broker connections."""
        self._app.close()

    def notify(self, job_ids: Sequence[str]) -> None:
        """Send one task per job; a broker failure is logged, the workers' sweeper re-sends."""
        for job_id in job_ids:
            try:
                self._app.send_task(
                    self._kind,
                    args=[job_id],
                    retry=False,
                    ignore_result=True,
                )
            except (KombuError, OSError) as error:
                log.warning("notify_failed", job_id=job_id, kind=self._kind, error=str(error))
                # The broker is down: the rest would fail the same way, each after a timeout.
                return

    def analyze_now(
        self, items: Sequence[dict[str, Any]], timeout: float
    ) -> list[dict[str, Any]]:
        """Run `analyze.sync` on a worker and wait for it; `DispatchUnavailable` if it can't."""
        try:
            result = self._app.send_task(
                SYNC_TASK, args=[list(items)], retry=False, ignore_result=False, expires=timeout
            )
        except (KombuError, OSError) as error:
            raise DispatchUnavailable(f"the broker is unreachable: {error}") from error
        try:
            value = result.get(timeout=timeout, propagate=True, disable_sync_subtasks=False)
        except CeleryTimeoutError as error:
            raise DispatchUnavailable(
                f"no worker answered within {timeout:g} s (are `undertone worker`s running?)"
            ) from error
        except (KombuError, OSError) as error:
            raise DispatchUnavailable(f"lost the broker while waiting: {error}") from error
        finally:
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
        except (OperationalError, KombuError, OSError) as error:
            log.warning("broker_unreachable", error=str(error))
            return False
