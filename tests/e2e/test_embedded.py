"""Embedded mode end to end: the API and the stage threads in one process, SQLite, real models;
including a crash of that process (SIGKILL of `undertone serve`) and its restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from service.api.app import create_app
from service.db.engine import create_db_engine, create_session_factory
from tests.conftest import _free_port
from tests.e2e.support import (
    NEGATIVE_TEXT,
    all_done,
    analyses_per_item,
    feedback_item,
    job_rows,
    kill_group,
    make_settings,
    process_env,
    running,
    start_cli,
    wait_for,
)
from workers.embedded import EmbeddedDispatcher

pytestmark = pytest.mark.slow

LONG_TEXT = " ".join(
    f"Ticket {n}: the app logged me out again and my basket was empty, third time this week."
    for n in range(120)
)


@pytest.fixture
def session_factory(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test's own SQLite file."""
    engine = create_db_engine(sqlite_url)
    try:
        yield create_session_factory(engine)
    finally:
        engine.dispose()


class TestEmbeddedMode:
    def test_feedback_is_analysed_in_process_and_stored(
        self, sqlite_url: str, tmp_path: Path, model_artifacts_dir: Path,
        session_factory: sessionmaker[Session],
    ) -> None:
        """POST /v1/feedback, then GET /v1/feedback/{id} until it holds the real analysis."""
        settings = make_settings(database_url=sqlite_url, data_dir=tmp_path,
                                 artifacts_dir=model_artifacts_dir)
        app = create_app(settings, EmbeddedDispatcher(settings, session_factory),
                         session_factory)
        with TestClient(app) as client:
            assert client.get("/readyz").status_code == 200
            response = client.post("/v1/feedback", json=feedback_item("e-1"))
            assert response.status_code == 202, response.text
            item_id = response.json()["items"][0]["id"]

            def done() -> dict[str, object] | None:
                body: dict[str, object] = client.get(f"/v1/feedback/{item_id}").json()
                return body if body["status"] in ("done", "failed") else None

            body = wait_for(done, "the item to be analysed")
        assert body["status"] == "done"
        analysis = body["analysis"]
        assert isinstance(analysis, dict)
        assert analysis["sentiment"]["label"] == "negative"
        assert len(analysis["sentences"]) == 2
        assert analysis["model_versions"]
        statuses = [event["status"] for event in body["history"]]  # type: ignore[union-attr]
        assert statuses == ["queued", "running", "done"]

    def test_analyze_now_runs_in_process(
        self, sqlite_url: str, tmp_path: Path, model_artifacts_dir: Path,
        session_factory: sessionmaker[Session],
    ) -> None:
        """POST /v1/analyze answers with contract objects and stores nothing."""
        settings = make_settings(database_url=sqlite_url, data_dir=tmp_path,
                                 artifacts_dir=model_artifacts_dir)
        app = create_app(settings, EmbeddedDispatcher(settings, session_factory),
                         session_factory)
        with TestClient(app) as client:
            response = client.post(
                "/v1/analyze", json={"items": [{"id": "a", "text": NEGATIVE_TEXT},
                                               {"id": "b", "text": "Lovely staff, thank you!"}]}
            )
        assert response.status_code == 200, response.text
        assert job_rows(session_factory) == []


class TestEmbeddedCrash:
    def test_a_killed_server_finishes_its_items_after_restart(
        self, sqlite_url: str, tmp_path: Path, model_artifacts_dir: Path,
        offline_env: dict[str, str], session_factory: sessionmaker[Session],
    ) -> None:
        """SIGKILL `undertone serve` mid-task with items queued; a restart finishes each once."""
        settings = make_settings(database_url=sqlite_url, data_dir=tmp_path,
                                 artifacts_dir=model_artifacts_dir, lease_seconds=6.0)
        env = process_env(offline_env, settings)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        args = ["serve", "--host", "127.0.0.1", "--port", str(port)]

        def healthy() -> bool:
            try:
                return httpx.get(f"{base}/readyz", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        first_log, second_log = tmp_path / "serve-1.log", tmp_path / "serve-2.log"
        first = start_cli(args, env, first_log)
        with running(first):
            wait_for(healthy, "the server to be ready", log_path=first_log)
            items = [feedback_item(f"x-{n}", LONG_TEXT) for n in range(10)]
            response = httpx.post(f"{base}/v1/feedback", json={"items": items}, timeout=60)
            assert response.status_code == 202, response.text
            ids = [entry["id"] for entry in response.json()["items"]]

            def mid_task() -> str | None:
                busy = [s for s, status, _ in job_rows(session_factory) if status == "running"]
                return busy[0] if busy else None

            victim = wait_for(mid_task, "a job running", log_path=first_log)
            kill_group(first)
        states = {s: status for s, status, _ in job_rows(session_factory)}
        assert states[victim] == "running", "the killed server's job was left mid-task"
        assert not all_done(session_factory, ids)

        with running(start_cli(args, env, second_log)):
            wait_for(lambda: all_done(session_factory, ids), "every item done after restart",
                     log_path=second_log)
        assert analyses_per_item(session_factory) == dict.fromkeys(ids, 1)
        final = {s: (status, attempts) for s, status, attempts in job_rows(session_factory)}
        assert final[victim] == ("done", 2)
