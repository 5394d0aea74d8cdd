"""A call recording in, a detection out: real espeak-ng speech on a stereo call, real Whisper
(tiny.en), the real analyzer and detector, embedded mode on SQLite; pulled by cursor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from service.api.app import create_app
from service.db.engine import create_db_engine, create_session_factory
from tests.e2e.detections_support import CursorPoller
from tests.e2e.support import make_settings, wait_for
from tests.e2e.test_recordings import poll_until_settled, recording_settings, upload
from tests.recordings_audio import require_espeak, stereo_call
from workers.audio import probe_upload
from workers.embedded import EmbeddedDispatcher

pytestmark = pytest.mark.slow

# The customer states the complaint in turn 1 and is still unhappy at the end.
CALL = [
    ("agent", "Thank you for calling Acme. How can I help you today?"),
    (
        "customer",
        "My refund still has not arrived after three weeks and nobody answers "
        "my emails. This is terrible.",
    ),
    ("agent", "I am sorry to hear that. Let me check your account."),
    ("customer", "Please do. I am very disappointed with your service."),
]
COMPLAINT_TURN = 1


@pytest.fixture
def session_factory(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test's own SQLite file."""
    engine = create_db_engine(sqlite_url)
    try:
        yield create_session_factory(engine)
    finally:
        engine.dispose()


class TestRecordingDetections:
    def test_a_complaint_in_a_call_is_pulled_with_its_turn_as_evidence(
        self,
        sqlite_url: str,
        tmp_path: Path,
        model_artifacts_dir: Path,
        session_factory: sessionmaker[Session],
    ) -> None:
        """Stereo call, customer complains: one detection, evidence names the customer's turn."""
        require_espeak()
        settings = recording_settings(
            make_settings(
                database_url=sqlite_url,
                data_dir=tmp_path / "data",
                artifacts_dir=model_artifacts_dir,
            )
        )
        app = create_app(
            settings,
            EmbeddedDispatcher(settings, session_factory),
            session_factory,
            audio_probe=probe_upload,
        )
        path = stereo_call(tmp_path / "call.wav", CALL, agent_left=True, rate=8000)
        with TestClient(app) as client:
            rec_id = upload(
                client,
                path,
                "call-refund",
                layout="stereo_agent_left",
                customer_id="cust-9",
                channel="call",
            )
            body, _ = poll_until_settled(client, rec_id)
            assert body["status"] == "done", body["error"]
            poller = CursorPoller(client)
            found = wait_for(poller.poll, "a detection from the call")
            # The evaluation is one transaction: nothing more comes for this call.
            poller.poll()

        segments = body["transcript"]["segments"]
        assert [s["speaker"] for s in segments] == [speaker for speaker, _ in CALL]
        complaint = segments[COMPLAINT_TURN]
        assert "refund" in complaint["text"].lower()

        assert poller.seen == found
        [detection] = found
        assert detection["sources"] == [{"type": "recording", "id": rec_id}]
        assert detection["customer_id"] == "cust-9"
        assert detection["kind"] == "explicit"
        assert detection["case_type"]["id"] == "refund_not_received"
        assert detection["due_by"]
        turns: list[dict[str, Any]] = [e for e in detection["evidence"] if "turn" in e]
        assert turns, detection["evidence"]
        assert {e["speaker"] for e in turns} == {"customer"}
        named = [e for e in turns if e["turn"] == COMPLAINT_TURN]
        assert named, turns
        for evidence in named:
            assert evidence["start_time"] == pytest.approx(complaint["start"])
            assert evidence["end_time"] == pytest.approx(complaint["end"])
            assert evidence["text"] == complaint["text"]
