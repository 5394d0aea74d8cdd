"""The recordings repository on SQLite and PostgreSQL: each stage's result is stored once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.db.models import Job, RecordingAnalysis
from service.db.repositories import jobs, recordings
from workers.stages_recording import ProgressWriter


def _values(external_id: str = "r-1") -> dict[str, Any]:
    return {"id": f"id-{external_id}", "external_id": external_id, "layout": "mono",
            "audio_file": f"id-{external_id}.wav", "sha256": "0" * 64, "size_bytes": 10,
            "duration": 600.0}


def _accept(factory: sessionmaker[Session], external_id: str = "r-1") -> str:
    with factory() as session:
        outcome = recordings.accept(session, _values(external_id))
        session.commit()
        assert outcome.job_id is not None
        return outcome.job_id


class TestRecordingsRepository:
    def test_accept_is_idempotent_on_external_id(
        self, session_factory: sessionmaker[Session]
    ) -> None:
        """A second accept returns the stored recording and makes no second job."""
        _accept(session_factory)
        with session_factory() as session:
            again = recordings.accept(session, {**_values(), "id": "other"})
            session.commit()
            assert not again.created
            assert again.recording.id == "id-r-1"
            assert session.scalar(select(func.count()).select_from(Job)) == 1

    def test_transcript_and_analysis_are_stored_once(
        self, session_factory: sessionmaker[Session]
    ) -> None:
        """A re-run keeps the first transcript and the first analysis; one analyze job."""
        job_id = _accept(session_factory)
        with session_factory() as session:
            first = recordings.complete_transcription(session, job_id, "id-r-1", {"text": "a"})
        with session_factory() as session:
            second = recordings.complete_transcription(session, job_id, "id-r-1", {"text": "b"})
            rec = recordings.get_recording(session, "id-r-1")
            assert rec is not None
            assert rec.transcript == {"text": "a"}
            assert (rec.status, rec.progress) == ("analysing", 100.0)
        assert first == second
        with session_factory() as session:
            assert recordings.complete_analysis(session, first, "id-r-1", {"n": 1}, {})
        with session_factory() as session:
            assert not recordings.complete_analysis(session, first, "id-r-1", {"n": 2}, {})
            stored = session.scalars(select(RecordingAnalysis)).all()
            assert [a.result for a in stored] == [{"n": 1}]
            analyze = jobs.get(session, first)
            assert analyze is not None
            assert analyze.status == "done"
            view = recordings.get(session, "id-r-1")
            assert view is not None
            assert view.recording.status == "done"
            assert [e.status for e in view.events] == ["queued", "analysing", "done"]

    def test_progress_writes_are_throttled_by_audio_time(
        self, session_factory: sessionmaker[Session]
    ) -> None:
        """Ten minutes of audio reported in 1000 steps: about one write per 15 s of audio."""
        _accept(session_factory)
        writer = ProgressWriter(session_factory, "id-r-1", 600.0)
        for step in range(1, 1001):
            writer(step / 1000)
        assert 30 <= writer.writes <= 41
        with session_factory() as session:
            rec = recordings.get_recording(session, "id-r-1")
            assert rec is not None
            assert rec.progress >= 97.5
