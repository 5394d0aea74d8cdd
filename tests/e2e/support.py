"""Helpers of the end-to-end tests: settings, worker and server subprocesses, polling."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.config import ApiSettings, QueueSettings, Settings
from service.db.models import Analysis, FeedbackItem, Job

# Generous: two shared cores, models loading in every new process.
DEADLINE_SECONDS = 300.0
T = TypeVar("T")

NEGATIVE_TEXT = "The parcel arrived two weeks late and nobody answered my emails. Terrible."


def make_settings(
    *,
    database_url: str,
    data_dir: Path,
    artifacts_dir: Path,
    backend: str = "embedded",
    broker_url: str = "redis://127.0.0.1:6379/0",
    lease_seconds: float = 60.0,
    sweep_seconds: float = 1.0,
    analyze_batch_size: int = 32,
) -> Settings:
    """Settings for an in-process API, auth off (auth has its own tests)."""
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        api=ApiSettings(auth_enabled=False),
        queue=QueueSettings(
            backend=backend,  # type: ignore[arg-type]
            broker_url=broker_url,
            lease_seconds=lease_seconds,
            sweep_interval_seconds=sweep_seconds,
            analyze_batch_size=analyze_batch_size,
        ),
        models={"artifacts_dir": artifacts_dir},  # type: ignore[arg-type]
    )


def process_env(base: dict[str, str], settings: Settings) -> dict[str, str]:
    """The environment that gives a subprocess the same settings."""
    env = dict(base)
    env.update(
        {
            "UNDERTONE_DATA_DIR": str(settings.data_dir),
            "UNDERTONE_DATABASE_URL": settings.resolved_database_url,
            "UNDERTONE_API__AUTH_ENABLED": "false",
            "UNDERTONE_QUEUE__BACKEND": settings.queue.backend,
            "UNDERTONE_QUEUE__BROKER_URL": settings.queue.broker_url,
            "UNDERTONE_QUEUE__LEASE_SECONDS": str(settings.queue.lease_seconds),
            "UNDERTONE_QUEUE__SWEEP_INTERVAL_SECONDS": str(settings.queue.sweep_interval_seconds),
            "UNDERTONE_QUEUE__ANALYZE_BATCH_SIZE": str(settings.queue.analyze_batch_size),
            "UNDERTONE_MODELS__ARTIFACTS_DIR": str(settings.artifacts_dir),
            "UNDERTONE_LOG_FORMAT": "console",
        }
    )
    return env


def start_cli(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start `undertone ARGS` in its own process group (so a kill reaches its children)."""
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-c", "from service.cli import main; main()", *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=Path(__file__).resolve().parents[2],
    )


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and everything it started: a crash, no clean-up at all."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop politely, then firmly."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        kill_group(process)


@contextlib.contextmanager
def running(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """Make sure a subprocess is gone when the test ends, whatever happened."""
    try:
        yield process
    finally:
        stop_group(process)


def wait_for(
    check: Callable[[], T | None],
    what: str,
    timeout: float = DEADLINE_SECONDS,
    log_path: Path | None = None,
) -> T:
    """Poll until `check` returns something truthy; fail with `what` (and a log tail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    tail = ""
    if log_path is not None and log_path.exists():
        tail = "\n--- process log ---\n" + log_path.read_text(errors="replace")[-4000:]
    raise AssertionError(f"timed out waiting for {what}{tail}")


def post_items(client: TestClient, items: list[dict[str, Any]]) -> list[str]:
    """POST a batch; return the new items' ids in order."""
    response = client.post("/v1/feedback", json={"items": items})
    assert response.status_code == 202, response.text
    return [entry["id"] for entry in response.json()["items"]]


def feedback_item(external_id: str, text: str = NEGATIVE_TEXT) -> dict[str, Any]:
    """A valid feedback item."""
    return {"external_id": external_id, "text": text, "channel": "review"}


def statuses(factory: sessionmaker[Session]) -> dict[str, str]:
    """Item id -> status, for every item."""
    with factory() as session:
        return dict(session.execute(select(FeedbackItem.id, FeedbackItem.status)).all())


def job_rows(
    factory: sessionmaker[Session], kind: str = "feedback.analyze"
) -> list[tuple[str, str, int]]:
    """(subject id, status, attempts) of every job of one kind (later stages share subjects)."""
    with factory() as session:
        return [tuple(r) for r in session.execute(  # type: ignore[misc]
            select(Job.subject_id, Job.status, Job.attempts).where(Job.kind == kind)
        ).all()]


def analyses_per_item(factory: sessionmaker[Session]) -> dict[str, int]:
    """Item id -> number of stored analyses."""
    with factory() as session:
        rows = session.execute(
            select(Analysis.feedback_id, func.count()).group_by(Analysis.feedback_id)
        ).all()
        return {feedback_id: count for feedback_id, count in rows}


def all_done(factory: sessionmaker[Session], ids: list[str]) -> bool:
    """Whether every one of these items is done."""
    current = statuses(factory)
    return all(current.get(i) == "done" for i in ids)
