"""Recordings: idempotent acceptance, transcription progress, and the two stage results.

A recording goes ``queued -> transcribing (progress %) -> analysing -> done`` (or ``failed``
with the reason). Each stage stores its result, the status change, the next job and its own
job's done in one transaction; the transcript is written only while it is still NULL and
the analysis row is unique per recording, so a re-run after a crash stores nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db.models import Recording, RecordingAnalysis, StatusEvent, utcnow
from service.db.repositories import intake, jobs, status

SUBJECT_TYPE = "recording"
TRANSCRIBE_KIND = "recording.transcribe"
ANALYZE_KIND = "recording.analyze"
QUEUED, TRANSCRIBING, ANALYSING, DONE, FAILED = (
    "queued",
    "transcribing",
    "analysing",
    "done",
    "failed",
)


@dataclass(frozen=True)
class Accepted:
    """The outcome of one upload."""

    recording: Recording
    created: bool
    job_id: str | None


@dataclass(frozen=True)
class RecordingView:
    """One recording with its status history and its analysis."""

    recording: Recording
    events: list[StatusEvent]
    analysis: RecordingAnalysis | None


def find_existing(
    session: Session, external_id: str, idempotency_key: str | None = None
) -> Recording | None:
    """The recording already stored under this idempotency key or external id."""
    return intake.find_existing(session, Recording, external_id, idempotency_key)


def accept(
    session: Session, values: dict[str, Any], idempotency_key: str | None = None
) -> Accepted:
    """Store a recording with its "queued" event and transcription job; no commit.

    ``values`` holds the Recording columns (``id`` included, so the audio file can be named
    after it). A recording already stored under the same external id (or idempotency key)
    is returned with ``created=False``; the UNIQUE constraints settle concurrent uploads.
    """
    existing = find_existing(session, values["external_id"], idempotency_key)
    if existing is not None:
        return Accepted(existing, False, None)
    return Accepted(
        *intake.insert_queued(
            session, Recording, values, idempotency_key, SUBJECT_TYPE, TRANSCRIBE_KIND
        )
    )


def get(session: Session, recording_id: str) -> RecordingView | None:
    """A recording with its history and analysis, or None."""
    recording = session.get(Recording, recording_id)
    if recording is None:
        return None
    return RecordingView(
        recording=recording,
        events=status.history(session, SUBJECT_TYPE, recording_id),
        analysis=get_analysis(session, recording_id),
    )


def get_recording(session: Session, recording_id: str) -> Recording | None:
    """Just the recording row."""
    return session.get(Recording, recording_id)


def get_analysis(session: Session, recording_id: str) -> RecordingAnalysis | None:
    """The stored analysis of a recording, if any."""
    return session.scalar(
        select(RecordingAnalysis).where(RecordingAnalysis.recording_id == recording_id)
    )


def start_transcribing(session: Session, recording_id: str, detail: str | None = None) -> None:
    """Mark a recording as being transcribed (progress back to 0). Commits."""
    status.set_subject_status(session, SUBJECT_TYPE, recording_id, TRANSCRIBING, detail)
    set_progress(session, recording_id, 0.0)


def set_progress(session: Session, recording_id: str, percent: float) -> None:
    """Store how much of the audio is transcribed, in percent. Commits."""
    session.execute(
        update(Recording)
        .where(Recording.id == recording_id)
        .values(progress=round(max(0.0, min(100.0, percent)), 1), updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()


def complete_transcription(
    session: Session, job_id: str, recording_id: str, transcript: dict[str, Any]
) -> str:
    """Store the transcript, "analysing", the analysis job and this job's done. Commits.

    Returns the id of the analysis job (to announce). When a transcript is already stored
    (a re-run, or another worker that took over a lapsed lease), it is kept, not replaced.
    """
    stored = session.execute(
        update(Recording)
        .where(Recording.id == recording_id, Recording.transcript.is_(None))
        .values(transcript=transcript, progress=100.0, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if stored.rowcount == 1:  # type: ignore[attr-defined]
        status.set_subject_status(session, SUBJECT_TYPE, recording_id, ANALYSING, "transcribed")
    job = jobs.enqueue(session, ANALYZE_KIND, recording_id)
    jobs.mark_done(session, job_id)
    session.commit()
    return job.id


def complete_analysis(
    session: Session,
    job_id: str,
    recording_id: str,
    result: dict[str, Any],
    versions: dict[str, Any],
) -> bool:
    """Store the analysis, "done" and the job's done in one transaction. Commits.

    Returns False (storing nothing new, still closing the job) when an analysis exists.
    """
    if get_analysis(session, recording_id) is not None:
        jobs.mark_done(session, job_id)
        session.commit()
        return False
    try:
        session.add(
            RecordingAnalysis(recording_id=recording_id, result=result, model_versions=versions)
        )
        status.set_subject_status(session, SUBJECT_TYPE, recording_id, DONE)
        jobs.mark_done(session, job_id)
        session.commit()
    except IntegrityError:
        # Another worker stored it between our check and our insert; the UNIQUE keeps theirs.
        session.rollback()
        jobs.mark_done(session, job_id)
        session.commit()
        return False
    return True
