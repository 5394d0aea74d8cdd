"""Recordings through Celery: the API in-process with `CeleryDispatcher`, a real `undertone
worker` subprocess on the audio and jobs queues, real Redis and PostgreSQL, real models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.api.app import create_app
from service.db.engine import create_db_engine, create_session_factory
from service.db.models import RecordingAnalysis
from tests.e2e.support import make_settings, process_env, running, start_cli, wait_for
from tests.e2e.test_recordings import (
    CALL,
    check_call,
    poll_until_settled,
    recording_settings,
    upload,
)
from tests.recordings_audio import require_espeak, stereo_call
from workers.audio import probe_upload
from workers.celery_config import AUDIO_QUEUE, JOBS_QUEUE
from workers.celery_dispatch import CeleryDispatcher

pytestmark = [pytest.mark.slow, pytest.mark.celery]


@pytest.fixture
def session_factory(postgres_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test's own PostgreSQL database."""
    engine = create_db_engine(postgres_url)
    try:
        yield create_session_factory(engine)
    finally:
        engine.dispose()


class TestCeleryRecordings:
    def test_a_stereo_call_is_transcribed_on_the_audio_queue_and_scored(
        self, postgres_url: str, redis_url: str, tmp_path: Path, model_artifacts_dir: Path,
        offline_env: dict[str, str], session_factory: sessionmaker[Session],
    ) -> None:
        """The transcription task waits on undertone.audio; a worker takes it, then the
        analysis; GET returns speakers and scores, stored once."""
        require_espeak()
        settings = recording_settings(make_settings(
            database_url=postgres_url, data_dir=tmp_path / "data",
            artifacts_dir=model_artifacts_dir, backend="celery", broker_url=redis_url))
        env = process_env(offline_env, settings)
        env.update({"UNDERTONE_ASR__MODEL": "tiny.en", "UNDERTONE_ASR__LANGUAGE": "en"})
        path = stereo_call(tmp_path / "call.wav", CALL, agent_left=True, rate=8000)
        app = create_app(settings, CeleryDispatcher(settings), session_factory,
                         audio_probe=probe_upload)
        broker = redis.Redis.from_url(redis_url)
        log = tmp_path / "worker.log"
        try:
            with TestClient(app) as client:
                rec_id = upload(client, path, "celery-call", layout="stereo_agent_left")
                # Routed by kind: the long task waits on its own queue, not the text one.
                wait_for(lambda: broker.llen(AUDIO_QUEUE) == 1, "the task on the audio queue")
                assert broker.llen(JOBS_QUEUE) == 0
                worker = start_cli(
                    ["worker", "--concurrency", "1", "--queues", f"{AUDIO_QUEUE},{JOBS_QUEUE}"],
                    env, log,
                )
                with running(worker):
                    body, _ = poll_until_settled(client, rec_id)
                assert body["status"] == "done", log.read_text(errors="replace")[-3000:]
                check_call(body)
        finally:
            broker.close()
        with session_factory() as session:
            count = session.scalar(select(func.count()).select_from(RecordingAnalysis))
        assert count == 1
