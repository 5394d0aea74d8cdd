"""Celery configuration shared by the worker app and the API's dispatcher.

Kept apart from `workers.celery_app` so that the API process can build a sending-only Celery
app (task names, queues, broker) without importing the tasks or anything that loads a model.
"""

from __future__ import annotations

from typing import Any

from kombu import Queue

from service.config import Settings

# Stage work and synchronous analysis go to different queues, so that `POST /v1/analyze`
# is not stuck behind a backlog of stored feedback on the same queue.
JOBS_QUEUE = "undertone.jobs"
SYNC_QUEUE = "undertone.sync"
SYNC_TASK = "analyze.sync"
# Transcription takes minutes per call: on its own queue, a worker started with
# `undertone worker --queues undertone.audio` takes it, so text feedback never waits behind it.
AUDIO_QUEUE = "undertone.audio"
AUDIO_TASKS = ("recording.transcribe",)
# Seconds the broker connection may take before a send gives up (the sweeper re-sends).
BROKER_CONNECT_TIMEOUT = 3.0


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings for `settings` (the same in the API and in the workers)."""
    broker = settings.queue.broker_url
    # Only `analyze.sync` needs a result; it lives in the broker's own Redis database.
    backend = broker if broker.startswith(("redis://", "rediss://")) else "rpc://"
    return {
        "broker_url": broker,
        "result_backend": backend,
        "result_expires": 600,
        "task_ignore_result": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": JOBS_QUEUE,
        "task_queues": [Queue(JOBS_QUEUE), Queue(SYNC_QUEUE), Queue(AUDIO_QUEUE)],
        "task_routes": {
            SYNC_TASK: {"queue": SYNC_QUEUE},
            **{task: {"queue": AUDIO_QUEUE} for task in AUDIO_TASKS},
        },
        # A stage is idempotent (claim + unique result), so a message may be redelivered:
        # acknowledge only after the work, and give it back when the worker process dies.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Loading the encoder and spaCy in worker_process_init takes longer than the default 4 s.
        "worker_proc_alive_timeout": 180.0,
        # The database, not Redis, is the source of truth; a redelivery after a long job is a
        # cheap no-op, so the visibility timeout only has to outlive ordinary queueing.
        "broker_transport_options": {"visibility_timeout": 3600},
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": BROKER_CONNECT_TIMEOUT,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "enable_utc": True,
    }
