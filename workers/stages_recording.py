"""The recording stages: `recording.transcribe`, then `recording.analyze`.

`recording.transcribe` decodes and transcribes the stored upload per its layout (progress
written to the row a few times per minute of audio), stores the transcript and enqueues
`recording.analyze` in one transaction. `recording.analyze` scores every turn like a text in
one batched analyzer call and stores the call's analysis (unique per recording). A file
the transcriber cannot use fails the job at once (`PermanentStageError`) with its reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

import structlog
from pydantic import ValidationError

from service.contract import validate_analysis
from service.db.repositories import detections, jobs, recordings, status
from workers.call_analysis import summarise_call, turn_entry
from workers.errors import PermanentStageError, WorkerError
from workers.stages import (
    Analyzer,
    Announce,
    ClaimedJob,
    SessionFactory,
    StageHandler,
    announce_committed,
)

log = structlog.get_logger(__name__)

RECORDING_TRANSCRIBE = recordings.TRANSCRIBE_KIND
RECORDING_ANALYZE = recordings.ANALYZE_KIND
# At most one progress write per this many seconds of audio (and per 1% of it).
AUDIO_SECONDS_PER_PROGRESS_WRITE = 15.0


class Transcribing(Protocol):
    """What the stage needs of `workers.transcribe.TranscriptionRuntime`."""

    @property
    def model_name(self) -> str: ...

    def transcribe(
        self,
        path: Path,
        layout: Any,
        language: str | None,
        progress: Callable[[float], None] | None = None,
    ) -> Any: ...


class AudioMissing(WorkerError):
    """The stored audio file is not where the worker looks (retried: storage may be back)."""


class ProgressWriter:
    """Stores the percent transcribed, throttled by audio time so long calls write rarely."""

    def __init__(
        self, session_factory: SessionFactory, recording_id: str, duration: float | None
    ) -> None:
        self._session_factory = session_factory
        self._recording_id = recording_id
        seconds = duration or 0.0
        self._step = max(0.01, AUDIO_SECONDS_PER_PROGRESS_WRITE / seconds) if seconds else 0.1
        self._last = 0.0
        self.writes = 0

    def __call__(self, fraction: float) -> None:
        if fraction - self._last < self._step:
            return
        self._last = fraction
        try:
            with self._session_factory() as session:
                recordings.set_progress(session, self._recording_id, 100.0 * fraction)
            self.writes += 1
        except Exception as error:  # progress is informative: never fail a transcription on it
            log.warning("progress_write_failed", recording_id=self._recording_id, error=repr(error))


class RecordingTranscribeHandler:
    """`recording.transcribe`: audio file -> transcript stored -> `recording.analyze` queued."""

    def __init__(
        self, audio_dir: Path, whisper: Transcribing, announce: Announce | None = None
    ) -> None:
        self._audio_dir = audio_dir
        self._whisper = whisper
        self._announce = announce

    def __call__(self, session_factory: SessionFactory, job: ClaimedJob) -> None:
        with session_factory() as session:
            rec = recordings.get_recording(session, job.subject_id)
            if rec is None:
                raise PermanentStageError(f"recording {job.subject_id} does not exist")
            transcribed = rec.transcript is not None
            path = self._audio_dir / rec.audio_file
            layout, language, duration = rec.layout, rec.language, rec.duration
            if transcribed:
                session.commit()
            else:
                recordings.start_transcribing(session, rec.id, f"attempt {job.attempts}")
        transcript: dict[str, Any] = {}
        if not transcribed:
            transcript = self._transcribe(session_factory, job, path, layout, language, duration)
        with session_factory() as session:
            analyze_job = recordings.complete_transcription(
                session, job.id, job.subject_id, transcript
            )
        announce_committed(self._announce, RECORDING_ANALYZE, analyze_job)

    def _transcribe(
        self,
        session_factory: SessionFactory,
        job: ClaimedJob,
        path: Path,
        layout: str,
        language: str | None,
        duration: float | None,
    ) -> dict[str, Any]:
        from asr.errors import AsrError

        if not path.is_file():
            raise AudioMissing(
                f"the audio file {path.name} is not in {self._audio_dir} (API and workers "
                "must share the same UNDERTONE_DATA_DIR storage)"
            )
        progress = ProgressWriter(session_factory, job.subject_id, duration)
        try:
            result = self._whisper.transcribe(path, layout, language, progress=progress)
        except AsrError as error:
            raise PermanentStageError(f"{error.code}: {_without_name(error, path)}") from error
        payload: dict[str, Any] = result.to_dict()
        payload["model"] = self._whisper.model_name
        log.info(
            "recording_transcribed",
            recording_id=job.subject_id,
            segments=len(payload["segments"]),
            progress_writes=progress.writes,
        )
        return payload


def _without_name(error: Exception, path: Path) -> str:
    message = str(error)
    prefix = f"{path.name}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


class RecordingAnalyzeHandler:
    """`recording.analyze`: every turn scored in one analyzer call, the call summarised."""

    def __init__(
        self, analyzer: Callable[[], Analyzer] | Analyzer, announce: Announce | None = None
    ) -> None:
        self._analyzer = analyzer
        self._announce = announce

    def _get_analyzer(self) -> Analyzer:
        # A factory lets a process load its models lazily, on its first job.
        if hasattr(self._analyzer, "analyze"):
            return cast(Analyzer, self._analyzer)
        return self._analyzer()

    def __call__(self, session_factory: SessionFactory, job: ClaimedJob) -> None:
        with session_factory() as session:
            rec = recordings.get_recording(session, job.subject_id)
            if rec is None:
                raise PermanentStageError(f"recording {job.subject_id} does not exist")
            if rec.transcript is None:
                raise PermanentStageError(f"recording {rec.id} has no transcript to analyse")
            already = recordings.get_analysis(session, rec.id) is not None
            transcript = dict(rec.transcript)
            if not already:
                status.set_subject_status(
                    session,
                    recordings.SUBJECT_TYPE,
                    rec.id,
                    recordings.ANALYSING,
                    f"attempt {job.attempts}",
                )
            session.commit()
        if already:
            with session_factory() as session:
                status.set_subject_status(
                    session,
                    recordings.SUBJECT_TYPE,
                    job.subject_id,
                    recordings.DONE,
                    "already analysed",
                )
                jobs.finish(session, job.id)
            return
        analysis = self._score(transcript)
        versions = dict(analysis.get("model_versions", {}))
        with session_factory() as session:
            # Joins the transaction that stores the analysis: detections follow every one.
            detect_job = jobs.enqueue(session, detections.EVALUATE_KIND, job.subject_id).id
            stored = recordings.complete_analysis(
                session, job.id, job.subject_id, analysis, versions
            )
        if stored:
            announce_committed(self._announce, detections.EVALUATE_KIND, detect_job)

    def _score(self, transcript: dict[str, Any]) -> dict[str, Any]:
        segments = [s for s in transcript.get("segments", []) if s.get("text", "").strip()]
        language = transcript.get("language")
        items = [
            {
                "id": f"turn-{i}",
                "text": s["text"],
                "channel": "call",
                **({"language": language} if language else {}),
            }
            for i, s in enumerate(segments)
        ]
        results = self._get_analyzer().analyze(items) if items else []
        if len(results) != len(items):
            raise PermanentStageError(
                f"the analyzer returned {len(results)} results for {len(items)} turns"
            )
        turns = []
        versions: dict[str, str] = {}
        for index, (segment, raw) in enumerate(zip(segments, results, strict=True)):
            try:
                checked = validate_analysis(raw).model_dump(mode="json", exclude_none=True)
            except ValidationError as error:
                raise PermanentStageError(
                    f"a turn's analysis breaks the contract: {error}"
                ) from error
            versions.update(checked.get("model_versions", {}))
            turns.append(turn_entry(index, segment, checked))
        analysis = summarise_call(turns, transcript)
        if transcript.get("model"):
            versions["asr"] = str(transcript["model"])
        analysis["model_versions"] = versions
        return analysis


def build_recording_handlers(
    audio_dir: Path,
    whisper: Transcribing,
    analyzer: Callable[[], Analyzer] | Analyzer,
    announce: Announce | None = None,
) -> dict[str, StageHandler]:
    """The recording stage handlers, keyed by job kind (= Celery task name)."""
    return {
        RECORDING_TRANSCRIBE: RecordingTranscribeHandler(audio_dir, whisper, announce),
        RECORDING_ANALYZE: RecordingAnalyzeHandler(analyzer, announce),
    }
