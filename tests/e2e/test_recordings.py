"""Recordings end to end in embedded mode: upload -> transcribing (progress) -> analysing ->
done, on real espeak-ng speech, real Whisper (tiny.en) and the real text analyzer, SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from service.api.app import create_app
from service.config import AsrSettings, Settings
from service.db.engine import create_db_engine, create_session_factory
from tests.e2e.support import make_settings, wait_for
from tests.recordings_audio import SAY_RATE, require_espeak, resample, say, stereo_call
from workers.audio import probe_upload
from workers.embedded import EmbeddedDispatcher

pytestmark = pytest.mark.slow

CALL = [
    ("agent", "Thank you for calling Acme. How can I help you today?"),
    ("customer", "My order never arrived. I have waited three weeks and nobody answers. "
                 "This is terrible."),
    ("agent", "I am sorry about that. Let me send a new one today."),
    ("customer", "Thank you, that is great. I really appreciate your help."),
]


def recording_settings(base: Settings) -> Settings:
    """The test settings with the fast English Whisper model."""
    return base.model_copy(update={"asr": AsrSettings(model="tiny.en", language="en")})


def upload(client: TestClient, path: Path, external_id: str, **fields: str) -> str:
    """POST a recording; its id."""
    response = client.post(
        "/v1/recordings", data={"external_id": external_id, **fields},
        files={"file": (path.name, path.read_bytes(), "audio/wav")},
    )
    assert response.status_code == 202, response.text
    rec_id: str = response.json()["id"]
    return rec_id


def poll_until_settled(client: TestClient, rec_id: str) -> tuple[dict[str, Any], list[str]]:
    """GET until done or failed; the final body and every status seen on the way."""
    seen: list[str] = []

    def settled() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/v1/recordings/{rec_id}").json()
        if not seen or seen[-1] != body["status"]:
            seen.append(body["status"])
        return body if body["status"] in ("done", "failed") else None

    return wait_for(settled, f"recording {rec_id} to settle"), seen


def check_call(body: dict[str, Any]) -> None:
    """The stereo call came back with the right turns, speakers and a peak-end analysis."""
    assert body["status"] == "done", body["error"]
    segments = body["transcript"]["segments"]
    speakers = [s["speaker"] for s in segments]
    assert speakers == ["agent", "customer", "agent", "customer"], segments
    text = [s["text"].lower() for s in segments]
    assert "calling" in text[0]
    assert "help" in text[0]
    assert "order" in text[1]
    assert "arrived" in text[1]
    assert "appreciate" in text[3]
    for segment in segments:
        assert segment["words"]
        assert segment["end"] > segment["start"]
    assert segments == sorted(segments, key=lambda s: s["start"])

    analysis = body["analysis"]
    turns = analysis["turns"]
    assert [t["speaker"] for t in turns] == speakers
    for turn in turns:
        assert turn["sentiment"]["label"] in ("negative", "neutral", "positive")
        assert turn["sentences"]
    assert len(analysis["trajectory"]) == 4
    # The peak is the customer's complaint, the end is their thanks: the call ends better.
    assert analysis["peak"]["turn"] == 1
    assert analysis["peak"]["speaker"] == "customer"
    assert analysis["peak"]["label"] == "negative"
    assert analysis["customer"]["start"]["turns"] == [1, 3]
    assert analysis["end"]["turns"] == [1, 3]
    assert turns[3]["valence"] > turns[1]["valence"]
    assert analysis["model_versions"]["asr"] == "whisper-tiny.en"
    assert body["model_versions"]["asr"] == "whisper-tiny.en"


@pytest.fixture
def session_factory(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test's own SQLite file."""
    engine = create_db_engine(sqlite_url)
    try:
        yield create_session_factory(engine)
    finally:
        engine.dispose()


@pytest.fixture
def client(
    sqlite_url: str, tmp_path: Path, model_artifacts_dir: Path,
    session_factory: sessionmaker[Session],
) -> Iterator[TestClient]:
    """An embedded-mode API with real models and the real audio probe."""
    settings = recording_settings(make_settings(
        database_url=sqlite_url, data_dir=tmp_path / "data", artifacts_dir=model_artifacts_dir))
    app = create_app(settings, EmbeddedDispatcher(settings, session_factory), session_factory,
                     audio_probe=probe_upload)
    with TestClient(app) as test_client:
        yield test_client


class TestEmbeddedRecordings:
    @pytest.mark.parametrize("agent_left", [True, False], ids=["agent-left", "agent-right"])
    def test_stereo_telephone_call_is_transcribed_per_speaker_and_scored(
        self, client: TestClient, tmp_path: Path, agent_left: bool
    ) -> None:
        """8 kHz stereo call: turns in order, each with its speaker, scored; peak and end."""
        require_espeak()
        path = stereo_call(tmp_path / "call.wav", CALL, agent_left=agent_left, rate=8000)
        layout = "stereo_agent_left" if agent_left else "stereo_agent_right"
        rec_id = upload(client, path, f"call-{layout}", layout=layout)
        body, seen = poll_until_settled(client, rec_id)
        check_call(body)
        history = [e["status"] for e in body["history"]]
        assert history[0] == "queued"
        assert history[-1] == "done"
        assert "transcribing" in history
        assert "analysing" in history
        assert history.index("transcribing") < history.index("analysing")
        assert set(seen) <= {"queued", "transcribing", "analysing", "done"}
        assert body["progress"] == 100.0

    def test_a_file_the_probe_passes_but_cannot_be_decoded_ends_failed(
        self, client: TestClient, tmp_path: Path
    ) -> None:
        """A long AAC file damaged after its first seconds: accepted, then failed with why."""
        require_espeak()
        path = damaged_m4a(tmp_path / "damaged.m4a")
        rec_id = upload(client, path, "damaged")
        body, _ = poll_until_settled(client, rec_id)
        assert body["status"] == "failed"
        assert body["error"].startswith("PermanentStageError: corrupt_audio")
        assert body["transcript"] is None
        assert body["analysis"] is None
        assert [e["status"] for e in body["history"]][-1] == "failed"


def damaged_m4a(path: Path, seconds: float = 150.0) -> Path:
    """Speech then quiet tone in AAC (longer than the upload-time full decode), its audio
    data overwritten with noise after the first quarter; the container stays intact."""
    import av

    rate = 16_000
    speech = resample(say("Hello, I am calling about my bill."), SAY_RATE, rate)
    t = np.arange(int(seconds * rate) - speech.size) / rate
    tone = (800 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    samples = np.concatenate([speech, tone])
    with av.open(str(path), mode="w", format="ipod") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate,
                                      frame_size=stream.codec_context.frame_size)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for out in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(out):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    raw = bytearray(path.read_bytes())
    mdat, moov = raw.find(b"mdat"), raw.find(b"moov")
    end = moov if moov > mdat else len(raw)
    start = mdat + 8 + (end - mdat) // 4
    noise = np.random.default_rng(7).integers(0, 256, end - 8 - start, dtype=np.uint8)
    raw[start : end - 8] = noise.tobytes()
    path.write_bytes(bytes(raw))
    return path
