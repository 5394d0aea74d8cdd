"""`EmbeddedDispatcher`: stage work on threads inside the API process (the default mode).

The threads take due jobs straight from the database (`claim_next`), so the database is
the only queue: `notify` merely wakes them, and their polling doubles as the sweeper (a
queued job whose announcement was lost, a job whose lease expired because the process died
while running it: all are found by the next poll, also after a restart). An idle thread
sleeps until the next job of its kinds is due (a retry's backoff) or the poll interval,
whichever comes first, so a retry runs on time.

Webhook deliveries run on threads of their own (`queue.embedded_delivery_threads`), never on
the stage threads: a receiver that stalls until the timeout holds up other deliveries at
most, never the analysis of new feedback. A thread that finished a job wakes the others, so
a job it created (a delivery after a detection) is taken at once.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.db.models import utcnow
from service.db.repositories import jobs
from workers.delivery import WEBHOOK_DELIVER, build_delivery_handlers
from workers.runtime import AnalysisRuntime, worker_id
from workers.stages import (
    ClaimedJob,
    RetryPolicy,
    StageHandler,
    build_handlers,
    run_claimed,
)
from workers.stages_detect import build_detection_handlers
from workers.stages_recording import build_recording_handlers
from workers.transcribe import TranscriptionRuntime

log = structlog.get_logger(__name__)

# How long stop() waits for a running job before leaving it to lapse (its lease expires and
# the next start picks it up).
STOP_TIMEOUT_SECONDS = 30.0
# The shortest sleep of an idle thread: a job due "now" that another thread is claiming
# must not make it spin.
MIN_WAIT_SECONDS = 0.05


class EmbeddedDispatcher:
    """Runs stages on `settings.queue.embedded_threads` threads of this process, and webhook
    deliveries on `settings.queue.embedded_delivery_threads` others."""

    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        *,
        runtime: AnalysisRuntime | None = None,
        handlers: dict[str, StageHandler] | None = None,
    ) -> None:
        self._settings = settings
        self._session_factory = session_factory
        self._runtime = runtime or AnalysisRuntime(settings)
        if handlers is None:
            # Recordings: Whisper loads on the first one, not at start (text-only users
            # never pay for it); the next stage is found by the threads' own polling.
            handlers = (
                build_handlers(self._runtime)
                | build_recording_handlers(
                    settings.audio_dir, TranscriptionRuntime(settings), self._runtime
                )
                | build_detection_handlers(settings.detections, runtime=self._runtime)
                | build_delivery_handlers(settings.webhooks)
            )
        self._handlers = handlers
        self._retry = RetryPolicy(max_attempts=settings.queue.max_attempts)
        self._stopping = threading.Event()
        # One event per thread, so that one thread's wake-up is never cleared by another.
        self._wakes: list[threading.Event] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Load the models (so /readyz tells the truth), then start the job threads."""
        self._runtime.load()
        self._stopping.clear()
        stage_kinds = [kind for kind in self._handlers if kind != WEBHOOK_DELIVER]
        groups = [("stage", stage_kinds, self._settings.queue.embedded_threads)]
        if WEBHOOK_DELIVER in self._handlers:
            groups.append(
                ("delivery", [WEBHOOK_DELIVER], self._settings.queue.embedded_delivery_threads)
            )
        for role, kinds, count in groups:
            for index in range(count if kinds else 0):
                wake = threading.Event()
                thread = threading.Thread(
                    target=self._loop,
                    args=(kinds, wake),
                    name=f"undertone-{role}-{index}",
                    daemon=True,
                )
                self._wakes.append(wake)
                self._threads.append(thread)
                thread.start()
        log.info("embedded_runner_started", threads=len(self._threads))

    def stop(self) -> None:
        """Stop taking jobs; a job still running after the timeout lapses to the next start."""
        self._stopping.set()
        self._wake_all()
        for thread in self._threads:
            thread.join(timeout=STOP_TIMEOUT_SECONDS)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._wakes = []

    def notify(self, job_ids: Sequence[str], kind: str | None = None) -> None:
        """Wake the job threads; the jobs themselves are already in the database."""
        if job_ids:
            self._wake_all()

    def analyze_now(self, items: Sequence[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
        """Analyse in this process, storing nothing."""
        return self._runtime.analyze_now(list(items), timeout)

    def readiness(self) -> dict[str, bool]:
        """Models loaded, and the job threads alive."""
        alive = bool(self._threads) and all(t.is_alive() for t in self._threads)
        return {"models": self._runtime.loaded, "workers": alive}

    def _wake_all(self) -> None:
        for wake in list(self._wakes):
            wake.set()

    def _loop(self, kinds: list[str], wake: threading.Event) -> None:
        me = worker_id("embedded")
        lease = self._settings.queue.lease_seconds
        while not self._stopping.is_set():
            wake.clear()
            try:
                claimed = self._claim_next(kinds, me, lease)
            except Exception as error:  # the database is down: keep polling, never die
                log.warning("claim_failed", error=repr(error))
                claimed = None
            if claimed is None:
                wake.wait(self._idle_seconds(kinds))
                continue
            try:
                run_claimed(
                    self._session_factory,
                    claimed,
                    lease,
                    self._handlers,
                    self._retry,
                    batch_size=self._settings.queue.analyze_batch_size,
                )
            except Exception as error:  # recording the failure failed: the lease will lapse
                log.error("job_crashed", job_id=claimed.id, error=repr(error))
            # The job may have created work for the other threads (a delivery, say).
            self._wake_all()

    def _idle_seconds(self, kinds: list[str]) -> float:
        """Until the next job of these kinds is due, at most the poll interval."""
        poll = self._settings.queue.sweep_interval_seconds
        try:
            with self._session_factory() as session:
                due = jobs.next_due(session, kinds)
                session.commit()
        except Exception as error:  # the database is down: poll again later
            log.warning("next_due_failed", error=repr(error))
            return poll
        if due is None:
            return poll
        return min(poll, max(MIN_WAIT_SECONDS, (due - utcnow()).total_seconds()))

    def _claim_next(self, kinds: list[str], me: str, lease: float) -> ClaimedJob | None:
        with self._session_factory() as session:
            job = jobs.claim_next(session, kinds, me, lease, max_attempts=self._retry.max_attempts)
            if job is None:
                return None
            return ClaimedJob(job.id, job.kind, job.subject_id, job.attempts, me)
