"""The Celery app of `undertone worker`: thin tasks named by stage, models loaded per process.

Started as ``undertone worker`` (or ``celery -A workers.celery_app worker``). Settings are
read here, once, because this module is a composition root. Each task receives only a job
id and hands it to `workers.stages.run_job`; the database decides whether there is anything
to do, so duplicate, early or stale messages are harmless. A job put back for a later
attempt is sent again at once with its due time as the ETA, so it runs then.

A pool process loads the models only when its worker consumes a queue that needs them: a
worker started with ``--queues undertone.delivery`` (webhook deliveries) loads none.

The worker's main process runs a sweeper thread that re-sends jobs that are due but were
never announced (the broker was down when the API accepted them, or a message was lost) or
whose lease expired (their worker died mid-task); their unacknowledged messages would
otherwise only come back after the broker's visibility timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import structlog
from celery import Celery, signals
from kombu.exceptions import ChannelError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from service.config import Settings
from service.db.engine import create_db_engine, create_session_factory
from service.db.repositories import jobs
from service.secrets_at_rest import UNENCRYPTED_HINT, SecretCipher, check_stored_secrets
from workers.celery_config import (
    AUDIO_QUEUE,
    DELIVERY_QUEUE,
    JOBS_QUEUE,
    MODEL_FREE_QUEUES,
    SYNC_TASK,
    celery_config,
    queue_for,
)
from workers.celery_dispatch import send_job
from workers.delivery import WEBHOOK_DELIVER, build_delivery_handlers
from workers.runtime import AnalysisRuntime, worker_id
from workers.stages import FEEDBACK_ANALYZE, RetryPolicy, build_handlers, run_job
from workers.stages_detect import (
    DETECTIONS_EVALUATE,
    INCIDENTS_EVALUATE,
    build_detection_handlers,
)
from workers.stages_recording import (
    RECORDING_ANALYZE,
    RECORDING_TRANSCRIBE,
    build_recording_handlers,
)
from workers.transcribe import TranscriptionRuntime

log = structlog.get_logger(__name__)

STAGE_KINDS = (
    FEEDBACK_ANALYZE,
    RECORDING_TRANSCRIBE,
    RECORDING_ANALYZE,
    DETECTIONS_EVALUATE,
    INCIDENTS_EVALUATE,
    WEBHOOK_DELIVER,
)


def _send_all(celery: Celery, kind: str, job_ids: Sequence[str]) -> None:
    for job_id in job_ids:
        send_job(celery, kind, job_id)


class WorkerState:
    """What one worker process holds: its database engine and its models."""

    def __init__(self, settings: Settings, celery: Celery) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._session_factory: sessionmaker[Session] | None = None
        self.runtime = AnalysisRuntime(settings)

        def announce(kind: str, job_id: str) -> None:
            send_job(celery, kind, job_id)

        def announce_at(kind: str, job_id: str, due: datetime) -> None:
            send_job(celery, kind, job_id, due)

        self.announce_at = announce_at

        # Whisper loads on the first recording this process takes, not at start.
        self.handlers = build_handlers(self.runtime, announce) | build_recording_handlers(
            settings.audio_dir,
            TranscriptionRuntime(settings),
            self.runtime,
            announce=announce,
        )
        self.handlers |= build_detection_handlers(
            settings.detections,
            announce=lambda kind, job_ids: _send_all(celery, kind, job_ids),
            runtime=self.runtime,
        ) | build_delivery_handlers(settings.webhooks)
        self.retry = RetryPolicy(max_attempts=settings.queue.max_attempts)

    @property
    def session_factory(self) -> sessionmaker[Session]:
        """Built on first use in the process that uses it (never inherited across a fork)."""
        if self._session_factory is None:
            with self._lock:
                if self._session_factory is None:
                    engine = create_db_engine(self.settings.resolved_database_url)
                    self._session_factory = create_session_factory(engine)
        return self._session_factory

    def reset_after_fork(self) -> None:
        """A forked child starts with no engine and no models of its parent."""
        self._session_factory = None


def create_celery_app(settings: Settings) -> Celery:
    """The worker-side Celery app with its stage tasks."""
    celery = Celery("undertone", set_as_current=True)
    celery.conf.update(celery_config(settings))
    state = WorkerState(settings, celery)
    celery.undertone_state = state  # type: ignore[attr-defined]

    def run_stage(job_id: str) -> str:
        outcome = run_job(
            state.session_factory,
            job_id,
            worker_id("celery"),
            settings.queue.lease_seconds,
            state.handlers,
            state.retry,
            announce_at=state.announce_at,
            batch_size=settings.queue.analyze_batch_size,
        )
        return outcome.value

    for kind in state.handlers:
        # Thin tasks, one per stage name; the message carries the job id only.
        celery.task(name=kind, ignore_result=True)(run_stage)

    @celery.task(name=SYNC_TASK, ignore_result=False)
    def analyze_sync(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Analyse texts for `POST /v1/analyze`, storing nothing."""
        state.runtime.load()
        return state.runtime.analyze_now(items, timeout=settings.api.analyze_timeout_seconds)

    return celery


settings = Settings()
app = create_celery_app(settings)
_state: WorkerState = app.undertone_state  # type: ignore[attr-defined]


def needs_models(queue_names: Iterable[str]) -> bool:
    """Whether a worker consuming these queues runs tasks that need the models."""
    return not set(queue_names) <= MODEL_FREE_QUEUES


@signals.worker_process_init.connect
def _load_models_in_child(**_: Any) -> None:
    """Each pool process loads its own models before taking a task (when it will need them)."""
    _state.reset_after_fork()
    consumed = sorted(app.amqp.queues.consume_from)
    if needs_models(consumed):
        _state.runtime.load()
    else:
        log.info("models_not_loaded", queues=consumed, reason="no queue of this worker needs them")


# ----------------------------------------------------------------------------------- sweeper


class Sweeper:
    """Re-sends jobs that are due but unannounced, or whose worker died; rate-limited per job."""

    def __init__(self, celery: Celery, settings: Settings) -> None:
        self._celery = celery
        self._interval = settings.queue.sweep_interval_seconds
        # A job is re-sent at most once per lease: a duplicate is harmless, but not free.
        self._resend_after = max(settings.queue.lease_seconds, self._interval)
        # NullPool: nothing pooled in the parent that a forked pool child could inherit.
        engine = create_db_engine(settings.resolved_database_url, poolclass=NullPool)
        self._session_factory = create_session_factory(engine)
        self._sent: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="undertone-sweeper", daemon=True)

    def start(self) -> None:
        """Sweep now and then every interval, in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current pass."""
        self._stop.set()

    def _run(self) -> None:
        while True:
            try:
                self.sweep()
            except Exception as error:  # the database or broker is down: try again later
                log.warning("sweep_failed", error=repr(error))
            if self._stop.wait(self._interval):
                return

    def sweep(self) -> int:
        """One pass; returns how many tasks were sent."""
        now = time.monotonic()
        with self._session_factory() as session:
            due = [(job.id, job.kind, job.status) for job in jobs.due_jobs(session, limit=500)]
            session.commit()
        due_ids = {job_id for job_id, _, _ in due}
        self._sent = {k: v for k, v in self._sent.items() if k in due_ids}
        waiting = {
            name: self._messages_waiting(name) for name in (JOBS_QUEUE, AUDIO_QUEUE, DELIVERY_QUEUE)
        }
        sent = 0
        for job_id, kind, status in due:
            if now - self._sent.get(job_id, -self._resend_after) < self._resend_after:
                continue
            # A queued job while messages still wait in line was most likely announced and
            # is behind them (a retry was announced for its due time when it was put back);
            # a running job with an expired lease lost its worker for sure.
            if status == jobs.QUEUED and waiting.get(queue_for(kind)):
                continue
            send_job(self._celery, kind, job_id)
            self._sent[job_id] = now
            sent += 1
        if sent:
            log.info("sweeper_resent", jobs=sent)
        return sent

    def _messages_waiting(self, queue_name: str) -> int:
        with self._celery.connection_for_read() as connection:
            try:
                declared = connection.default_channel.queue_declare(queue_name, passive=True)
            except ChannelError:
                return 0  # the queue was never declared on this broker: nothing waits in it
            return int(declared.message_count)


_sweeper: Sweeper | None = None


@signals.worker_ready.connect
def _start_sweeper(sender: Any = None, **_: Any) -> None:
    global _sweeper
    _sweeper = Sweeper(app, settings)
    _sweeper.start()


@signals.worker_ready.connect
def _warn_unencrypted_secrets(**_: Any) -> None:
    """Once per worker (its main process): without a key, webhook secrets are plaintext;
    with keys, any stored secret none of them opens is named (its deliveries would fail)."""
    if not settings.webhooks.fernet_keys:
        log.warning("webhook_secrets_unencrypted", hint=UNENCRYPTED_HINT)
        return
    engine = create_db_engine(settings.resolved_database_url, poolclass=NullPool)
    try:
        check_stored_secrets(
            create_session_factory(engine), SecretCipher.from_settings(settings.webhooks)
        )
    finally:
        engine.dispose()


@signals.worker_shutdown.connect
def _stop_sweeper(**_: Any) -> None:
    if _sweeper is not None:
        _sweeper.stop()
