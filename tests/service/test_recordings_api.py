"""POST/GET /v1/recordings: uploads streamed, probed with the real probe, refused with a 4xx
naming the problem, stored once per external id; a fake dispatcher only records announcements."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.api.app import create_app
from service.config import ApiSettings, Settings
from service.db.engine import create_db_engine, create_session_factory
from service.db.models import Job, Recording, StatusEvent
from tests.recordings_audio import (
    SAY_RATE,
    mono_speech,
    require_espeak,
    resample,
    say,
    stereo_call,
    write_wav,
)
from workers.audio import probe_upload


class RecordingDispatcher:
    """Records the announced jobs and their kinds; runs nothing."""

    def __init__(self) -> None:
        self.notified: list[tuple[str, str | None]] = []

    def notify(self, job_ids: Sequence[str], kind: str | None = None) -> None:
        self.notified.extend((job_id, kind) for job_id in job_ids)

    def analyze_now(self, items: Sequence[dict[str, Any]], timeout: float) -> list[dict[str, Any]]:
        raise NotImplementedError

    def readiness(self) -> dict[str, bool]:
        return {}

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


@pytest.fixture
def session_factory(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a fresh SQLite file."""
    engine = create_db_engine(sqlite_url)
    yield create_session_factory(engine)
    engine.dispose()


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    """A fresh recording dispatcher."""
    return RecordingDispatcher()


@pytest.fixture
def make_client(
    tmp_path: Path, session_factory: sessionmaker[Session], dispatcher: RecordingDispatcher
) -> Iterator[Any]:
    """A started client whose audio lives under the test's directory."""
    clients: list[TestClient] = []

    def make(**api: Any) -> TestClient:
        settings = Settings(data_dir=tmp_path / "data", api=ApiSettings(auth_enabled=False, **api))
        app = create_app(settings, dispatcher, session_factory, audio_probe=probe_upload)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Any) -> TestClient:
    """A client with the default limits."""
    return make_client()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few seconds of one voice, mono, 16 kHz."""
    require_espeak()
    return mono_speech(tmp_path_factory.mktemp("audio") / "speech.wav",
                       "Hello, I am calling about my order.")


@pytest.fixture(scope="module")
def stereo_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short two-voice stereo call at 8 kHz."""
    require_espeak()
    return stereo_call(tmp_path_factory.mktemp("audio") / "call.wav",
                       [("agent", "Good morning."), ("customer", "Hi, my parcel is late.")])


def _upload(client: TestClient, content: bytes, filename: str = "call.wav",
            **fields: str) -> Any:
    data = {"external_id": "rec-1", **fields}
    return client.post("/v1/recordings", data=data,
                       files={"file": (filename, content, "application/octet-stream")})


def _audio_files(tmp_path: Path) -> list[str]:
    directory = tmp_path / "data" / "audio"
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def _error(response: Any) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


class TestUpload:
    def test_accepts_a_stereo_call_and_queues_its_transcription(
        self, client: TestClient, stereo_wav: Path, dispatcher: RecordingDispatcher,
        session_factory: sessionmaker[Session], tmp_path: Path,
    ) -> None:
        """202 with the id; file, row, "queued" event and one transcribe job stored, announced."""
        content = stereo_wav.read_bytes()
        response = _upload(client, content, layout="stereo_agent_left", language="en",
                           customer_id="c-9", score="2", scale="csat_1_5",
                           metadata='{"queue": "billing"}')
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["outcome"] == "created"
        assert body["status"] == "queued"
        assert body["channels"] == 2
        assert body["sample_rate"] == 8000
        assert body["size_bytes"] == len(content)
        import hashlib

        assert body["sha256"] == hashlib.sha256(content).hexdigest()
        assert _audio_files(tmp_path) == [f"{body['id']}.wav"]
        assert (tmp_path / "data" / "audio" / f"{body['id']}.wav").read_bytes() == content
        with session_factory() as session:
            rec = session.get(Recording, body["id"])
            assert rec is not None
            assert (rec.layout, rec.channel, rec.customer_id, rec.extra) == (
                "stereo_agent_left", "call", "c-9", {"queue": "billing"})
            job_list = list(session.scalars(select(Job)))
            assert [(j.kind, j.subject_id) for j in job_list] == [
                ("recording.transcribe", body["id"])]
            events = list(session.scalars(select(StatusEvent.status)))
            assert events == ["queued"]
        assert dispatcher.notified == [(job_list[0].id, "recording.transcribe")]

    def test_get_returns_the_queued_recording(
        self, client: TestClient, speech_wav: Path
    ) -> None:
        """GET answers the status, the probed facts and no transcript yet."""
        rec_id = _upload(client, speech_wav.read_bytes()).json()["id"]
        body = client.get(f"/v1/recordings/{rec_id}").json()
        assert body["status"] == "queued"
        assert body["layout"] == "mono"
        assert body["channel"] == "call"
        assert body["duration"] > 1.0
        assert body["channels"] == 1
        assert body["transcript"] is None
        assert body["analysis"] is None
        assert [e["status"] for e in body["history"]] == ["queued"]

    def test_same_external_id_is_not_stored_twice(
        self, client: TestClient, speech_wav: Path, tmp_path: Path,
        dispatcher: RecordingDispatcher,
    ) -> None:
        """A resend returns the first recording as a duplicate and keeps no second file."""
        first = _upload(client, speech_wav.read_bytes()).json()
        again = _upload(client, speech_wav.read_bytes())
        assert again.status_code == 202
        assert again.json()["id"] == first["id"]
        assert again.json()["outcome"] == "duplicate"
        assert _audio_files(tmp_path) == [f"{first['id']}.wav"]
        assert len(dispatcher.notified) == 1

    def test_unknown_recording_is_404(self, client: TestClient) -> None:
        """GET of an unknown id names it."""
        response = client.get("/v1/recordings/nope")
        assert response.status_code == 404
        assert "nope" in _error(response)["message"]


class TestBrokenUploads:
    @pytest.mark.parametrize(
        ("content", "filename", "status", "code"),
        [
            (b"", "call.wav", 422, "empty_audio"),
            (bytes(range(256)) * 64, "call.mp3", 422, "corrupt_audio"),
            (b"Dear support, this is a text file, not audio.\n" * 50, "call.wav", 422,
             "corrupt_audio"),
            (b"Dear support, this is a text file, not audio.\n" * 50, "notes.txt", 415,
             "unsupported_format"),
        ],
        ids=["empty", "corrupt-bytes", "text-named-wav", "text-file"],
    )
    def test_unusable_files_are_refused_and_not_kept(
        self, client: TestClient, tmp_path: Path, dispatcher: RecordingDispatcher,
        session_factory: sessionmaker[Session], content: bytes, filename: str, status: int,
        code: str,
    ) -> None:
        """Each gets its own 4xx and code; nothing is stored, no file is left behind."""
        response = _upload(client, content, filename)
        assert response.status_code == status, response.text
        assert _error(response)["code"] == code
        assert _audio_files(tmp_path) == []
        assert dispatcher.notified == []
        with session_factory() as session:
            assert session.scalars(select(Recording)).all() == []

    def test_digital_silence_is_refused(self, client: TestClient, tmp_path: Path) -> None:
        """A short file with no sound at all is a 422 saying so."""
        path = write_wav(tmp_path / "silence.wav", [np.zeros(16_000 * 3, dtype=np.int16)], 16_000)
        response = _upload(client, path.read_bytes())
        assert response.status_code == 422
        assert _error(response)["code"] == "silent_audio"
        assert "no sound" in _error(response)["message"]

    def test_too_large_is_413_while_streaming(
        self, make_client: Any, speech_wav: Path, tmp_path: Path
    ) -> None:
        """A file over api.max_recording_bytes is refused and its partial copy deleted."""
        client = make_client(max_recording_bytes=4096)
        response = _upload(client, speech_wav.read_bytes())
        assert response.status_code == 413
        assert _error(response)["code"] == "recording_too_large"
        assert "4096" in _error(response)["message"]
        assert _audio_files(tmp_path) == []

    def test_too_long_is_refused(self, make_client: Any, speech_wav: Path) -> None:
        """A recording over api.max_recording_seconds gets a 422 naming both durations."""
        client = make_client(max_recording_seconds=1.0)
        response = _upload(client, speech_wav.read_bytes())
        assert response.status_code == 422
        assert _error(response)["code"] == "audio_too_long"

    def test_stereo_layout_on_a_mono_file(self, client: TestClient, speech_wav: Path) -> None:
        """A stereo layout needs two channels: 422 layout_mismatch."""
        response = _upload(client, speech_wav.read_bytes(), layout="stereo_agent_right")
        assert response.status_code == 422
        assert _error(response)["code"] == "layout_mismatch"

    @pytest.mark.parametrize(
        ("fields", "field"),
        [
            ({"layout": "quadraphonic"}, "layout"),
            ({"metadata": "{not json"}, "metadata"),
            ({"score": "7", "scale": "csat_1_5"}, "body"),
            ({"colour": "blue"}, "colour"),
        ],
        ids=["bad-layout", "bad-metadata", "score-off-scale", "unknown-field"],
    )
    def test_bad_fields_are_422_naming_the_field(
        self, client: TestClient, speech_wav: Path, tmp_path: Path, fields: dict[str, str],
        field: str,
    ) -> None:
        """Form fields are validated like feedback fields, before anything is stored."""
        response = _upload(client, speech_wav.read_bytes(), **fields)
        assert response.status_code == 422, response.text
        assert _error(response)["message"].startswith(field)
        assert _audio_files(tmp_path) == []

    def test_missing_file_and_missing_external_id(
        self, client: TestClient, speech_wav: Path
    ) -> None:
        """Both required parts are named when absent."""
        no_file = client.post("/v1/recordings", files={"external_id": (None, "x")})
        assert no_file.status_code == 422
        assert _error(no_file)["code"] == "missing_file"
        no_id = client.post("/v1/recordings",
                            files={"file": ("a.wav", speech_wav.read_bytes(), "audio/wav")})
        assert no_id.status_code == 422
        assert _error(no_id)["message"].startswith("external_id")

    def test_not_multipart_is_415(self, client: TestClient) -> None:
        """A JSON body (e.g. a URL to fetch) is refused: uploads only."""
        response = client.post("/v1/recordings", json={"url": "https://example.com/a.wav"})
        assert response.status_code == 415
        assert "multipart/form-data" in _error(response)["message"]

    def test_without_an_audio_probe_uploads_are_503(
        self, tmp_path: Path, session_factory: sessionmaker[Session],
        dispatcher: RecordingDispatcher, speech_wav: Path,
    ) -> None:
        """An API built without audio support says so instead of storing unchecked files."""
        settings = Settings(data_dir=tmp_path / "data", api=ApiSettings(auth_enabled=False))
        with TestClient(create_app(settings, dispatcher, session_factory)) as client:
            response = _upload(client, speech_wav.read_bytes())
        assert response.status_code == 503
        assert _error(response)["code"] == "audio_unavailable"


def test_telephone_rate_speech_is_probed(tmp_path: Path, client: TestClient) -> None:
    """8 kHz mono speech is accepted with its real rate."""
    require_espeak()
    path = write_wav(tmp_path / "phone.wav",
                     [resample(say("Yes, that is right."), SAY_RATE, 8000)], 8000)
    body = _upload(client, path.read_bytes(), external_id="phone").json()
    assert body["sample_rate"] == 8000
    assert body["channels"] == 1
