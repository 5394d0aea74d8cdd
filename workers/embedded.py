"""`EmbeddedDispatcher`: stage work on threads inside the API process (the default mode).

The threads take due jobs straight from the database (`claim_next`), so the database is
the only queue: `notify` merely wakes them, and their polling doubles as the sweeper (a
queued job whose announcement was lost, a job retried later, a job whose lease expired
because the process died while running it: all are found by the next poll, also after a
restart).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.db.repositories import jobs
from workers.delivery import build_delivery_handlers
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


class EmbeddedDispatcher:
    """Runs stages on `settings.queue.embedded_threads` threads of this process."""

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
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Load the models (so /readyz tells the truth), then start the job threads."""
        self._runtime.load()
        self._stopping.clear()
        for index in range(self._settings.queue.embedded_threads):
            thread = threading.Thread(
                target=self._loop, name=f"undertone-stage-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        log.info("embedded_runner_started", threads=len(self._threads))

    def stop(self) -> None:
        """Stop taking jobs; a job still running after the timeout lapses to the next start."""
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=STOP_TIMEOUT_SECONDS)
        self._threads = [t for t in self._threads if t.is_alive()]

    def notify(self, job_ids: Sequence[str], kind: str | None = None) -> None:
        """Wake the job threads; the jobs themselves are already in the database."""
        if job_ids:
            self._wake.set()

    def analyze_now(
        self, items: Sequence[dict[str, Any]], timeout: float
    ) -> list[dict[str, Any]]:
        """Analyse in this process, storing nothing."""
        return self._runtime.analyze_now(list(items), timeout)

    def readiness(self) -> dict[str, bool]:
        """Models loaded, and the job threads alive."""
        alive = bool(self._threads) and all(t.is_alive() for t in self._threads)
        return {"models": self._runtime.loaded, "workers": alive}

    def _loop(self) -> None:
        me = worker_id("embedded")
        kinds = list(self._handlers)
        lease = self._settings.queue.lease_seconds
        poll = self._settings.queue.sweep_interval_seconds
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                claimed = self._claim_next(kinds, me, lease)
            except Exception as error:  # the database is down: keep polling, never die
                log.warning("claim_failed", error=repr(error))
                claimed = None
            if claimed is None:
                self._wake.wait(poll)
                continue
            try:
                run_claimed(self._session_factory, claimed, lease, self._handlers, self._retry)
            except Exception as error:  # recording the failure failed: the lease will lapse
                log.error("job_crashed", job_id=claimed.id, error=repr(error))

    def _claim_next(self, kinds: list[str], me: str, lease: float) -> ClaimedJob | None:
        with self._session_factory() as session:
            job = jobs.claim_next(
                session, kinds, me, lease, max_attempts=self._retry.max_attempts
            )
            if job is None:
                return None
            return ClaimedJob(job.id, job.kind, job.subject_id, job.attempts, me)
