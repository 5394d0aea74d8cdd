"""Celery mode end to end: the API in-process with `CeleryDispatcher`, real `undertone worker`
subprocesses, real Redis and PostgreSQL, real models; including crashes and a dead broker."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from service.api.app import create_app
from service.config import Settings
from service.db.engine import create_db_engine, create_session_factory
from tests.conftest import _free_port, _redis_answers, _wait_for
from tests.e2e.support import (
    NEGATIVE_TEXT,
    all_done,
    analyses_per_item,
    feedback_item,
    job_rows,
    kill_group,
    make_settings,
    post_items,
    process_env,
    running,
    start_cli,
    wait_for,
)
from workers.celery_dispatch import CeleryDispatcher

pytestmark = [pytest.mark.slow, pytest.mark.celery]

# Long enough that a job is still running when the test looks, then kills its worker.
LONG_TEXT = " ".join(
    f"Order {n} was late again, the courier left it in the rain and support never called back."
    for n in range(120)
)


@pytest.fixture
def session_factory(postgres_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test's own PostgreSQL database."""
    engine = create_db_engine(postgres_url)
    try:
        yield create_session_factory(engine)
    finally:
        engine.dispose()


def _settings(postgres_url: str, redis_url: str, tmp_path: Path, artifacts: Path,
              **queue: Any) -> Settings:
    return make_settings(
        database_url=postgres_url, data_dir=tmp_path / "data", artifacts_dir=artifacts,
        backend="celery", broker_url=redis_url, **queue,
    )


def _worker(settings: Settings, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return start_cli(["worker", "--concurrency", "1", "--loglevel", "INFO"],
                     process_env(env, settings), log)


class TestCeleryMode:
    def test_feedback_is_analysed_by_a_worker_and_stored(
        self, postgres_url: str, redis_url: str, tmp_path: Path, model_artifacts_dir: Path,
        offline_env: dict[str, str], session_factory: sessionmaker[Session],
    ) -> None:
        """POST /v1/feedback, a real worker analyses it, GET returns the stored analysis."""
        settings = _settings(postgres_url, redis_url, tmp_path, model_artifacts_dir)
        log = tmp_path / "worker.log"
        app = create_app(settings, CeleryDispatcher(settings), session_factory)
        with running(_worker(settings, offline_env, log)), TestClient(app) as client:
            ids = post_items(client, [feedback_item(f"c-{n}") for n in range(3)])
            wait_for(lambda: all_done(session_factory, ids), "3 items done", log_path=log)
            body = client.get(f"/v1/feedback/{ids[0]}").json()
            assert body["status"] == "done"
            assert body["analysis"]["sentiment"]["label"] == "negative"
            assert body["analysis"]["sentences"]
            # Synchronous analysis goes through the same worker.
            answer = client.post(
                "/v1/analyze", json={"items": [{"id": "s1", "text": NEGATIVE_TEXT}]}
            )
            assert answer.status_code == 200, answer.text
        assert analyses_per_item(session_factory) == dict.fromkeys(ids, 1)

    def test_a_worker_killed_mid_task_loses_and_duplicates_nothing(
        self, postgres_url: str, redis_url: str, tmp_path: Path, model_artifacts_dir: Path,
        offline_env: dict[str, str], session_factory: sessionmaker[Session],
    ) -> None:
        """SIGKILL the worker while a batch of jobs runs; a new worker finishes every item
        exactly once, and the killed batch's jobs each on their own (second attempt, alone)."""
        settings = _settings(postgres_url, redis_url, tmp_path, model_artifacts_dir,
                             lease_seconds=6.0, analyze_batch_size=4)
        app = create_app(settings, CeleryDispatcher(settings), session_factory)
        first_log, second_log = tmp_path / "worker-1.log", tmp_path / "worker-2.log"
        with TestClient(app) as client:
            ids = post_items(client, [feedback_item(f"k-{n}", LONG_TEXT) for n in range(12)])
            first = _worker(settings, offline_env, first_log)
            with running(first):
                # A batch is running and one finished before it: the models are loaded and work.
                def mid_task() -> list[str] | None:
                    rows = job_rows(session_factory)
                    done = sum(status == "done" for _, status, _ in rows)
                    busy = [subject for subject, status, _ in rows if status == "running"]
                    # (its first job is claimed a moment before the other three)
                    return busy if len(busy) == 4 and done >= 1 else None

                victims = wait_for(mid_task, "a batch running after one finished",
                                   log_path=first_log)
                kill_group(first)
            states = {s: (status, attempts) for s, status, attempts in job_rows(session_factory)}
            assert all(states[v][0] == "running" for v in victims), "left mid-task"
            assert not all_done(session_factory, ids)

            with running(_worker(settings, offline_env, second_log)):
                wait_for(lambda: all_done(session_factory, ids), "every item done after restart",
                         log_path=second_log)
        assert analyses_per_item(session_factory) == dict.fromkeys(ids, 1)
        final = {s: (status, attempts) for s, status, attempts in job_rows(session_factory)}
        assert all(final[v] == ("done", 2) for v in victims)
        assert all(status == "done" for status, _ in final.values())


class TestBrokerDown:
    def test_feedback_accepted_while_the_broker_is_down_is_processed_later(
        self, postgres_url: str, tmp_path: Path, model_artifacts_dir: Path,
        offline_env: dict[str, str], session_factory: sessionmaker[Session],
    ) -> None:
        """The API accepts with no broker; once Redis is back, a worker's sweeper announces it."""
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed: cannot take a broker down and up")
        port = _free_port()
        url = f"redis://127.0.0.1:{port}/0"
        settings = _settings(postgres_url, url, tmp_path, model_artifacts_dir)
        app = create_app(settings, CeleryDispatcher(settings), session_factory)
        with TestClient(app) as client:
            ids = post_items(client, [feedback_item(f"d-{n}") for n in range(2)])
            assert client.get("/readyz").status_code == 503
        assert not all_done(session_factory, ids)

        redis = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            assert _wait_for(lambda: _redis_answers(f"redis://127.0.0.1:{port}"), 60)
            log = tmp_path / "worker.log"
            with running(_worker(settings, offline_env, log)):
                wait_for(lambda: all_done(session_factory, ids), "items done after broker return",
                         log_path=log)
        finally:
            redis.terminate()
            redis.wait(timeout=30)
        assert analyses_per_item(session_factory) == dict.fromkeys(ids, 1)
