"""Celery configuration shared by the worker app and the API's dispatcher.

Kept apart from `workers.celery_app` so that the API process can build a sending-only Celery
app (task names, queues, broker) without importing the tasks or anything that loads a model.
"""

from __future__ import annotations

from typing import Any

from kombu import Queue

from service.config import Settings
from service.db.repositories.webhooks import DELIVER_KIND

# Stage work and synchronous analysis go to different queues, so that `POST /v1/analyze`
# is not stuck behind a backlog of stored feedback on the same queue.
JOBS_QUEUE = "undertone.jobs"
SYNC_QUEUE = "undertone.sync"
SYNC_TASK = "analyze.sync"
# Transcription takes minutes per call: on its own queue, a worker started with
# `undertone worker --queues undertone.audio` takes it, so text feedback never waits behind it.
AUDIO_QUEUE = "undertone.audio"
AUDIO_TASKS = ("recording.transcribe",)
# Webhook deliveries wait on other people's servers (up to `webhooks.timeout_seconds` each) and
# need no model: on their own queue they never sit in front of analysis, and a worker started
# with `undertone worker --queues undertone.delivery --pool threads` sends many at once.
DELIVERY_QUEUE = "undertone.delivery"
DELIVERY_TASKS = (DELIVER_KIND,)
# Queues whose tasks need no model: a worker consuming only these loads none.
MODEL_FREE_QUEUES = frozenset({DELIVERY_QUEUE})
ALL_QUEUES = (JOBS_QUEUE, SYNC_QUEUE, AUDIO_QUEUE, DELIVERY_QUEUE)
# Seconds the broker connection may take before a send gives up (the sweeper re-sends).
BROKER_CONNECT_TIMEOUT = 3.0
# Redis hands an unacknowledged message to another worker after this long. A task with an ETA
# sits unacknowledged in a worker until then, so ETAs are kept well below it (a job due later
# is announced for this horizon and put back for its due time when it arrives early).
VISIBILITY_TIMEOUT_SECONDS = 3600
MAX_ETA_SECONDS = VISIBILITY_TIMEOUT_SECONDS / 2


def queue_for(kind: str) -> str:
    """The queue a job kind's task goes to (the same routes as `celery_config`)."""
    if kind in AUDIO_TASKS:
        return AUDIO_QUEUE
    if kind in DELIVERY_TASKS:
        return DELIVERY_QUEUE
    if kind == SYNC_TASK:
        return SYNC_QUEUE
    return JOBS_QUEUE


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
        # A worker started without --queues consumes every one of these.
        "task_queues": [Queue(name) for name in ALL_QUEUES],
        "task_routes": {
            task: {"queue": queue_for(task)} for task in (SYNC_TASK, *AUDIO_TASKS, *DELIVERY_TASKS)
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
        "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS},
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": BROKER_CONNECT_TIMEOUT,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "enable_utc": True,
    }
