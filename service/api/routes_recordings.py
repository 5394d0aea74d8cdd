"""POST /v1/recordings (multipart upload) and GET /v1/recordings/{id}."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.orm import Session

from service.api.deps import get_session, require_scope
from service.api.schemas import StatusEventOut
from service.api.schemas_recordings import (
    Layout,
    RecordingAccepted,
    RecordingForm,
    RecordingOut,
    TranscriptOut,
)
from service.api.upload import FILE_FIELD, ReceivedForm, discard, receive_upload, safe_suffix
from service.audio import AudioProbe, AudioRejected, ProbedAudio
from service.db.models import Recording, new_id
from service.db.repositories import recordings
from service.errors import NotFound, ServiceUnavailable, ValidationFailed
from service.logging import get_logger

log = get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["recordings"])

_FORM_FIELDS: dict[str, dict[str, Any]] = {
    FILE_FIELD: {
        "type": "string",
        "format": "binary",
        "description": "The recording: WAV, FLAC, MP3, OGG/Opus, M4A/AAC, WebM, MP4/MOV.",
    },
    "external_id": {"type": "string", "description": "Your id; resending it never duplicates."},
    "layout": {"type": "string", "enum": [v.value for v in Layout], "default": "mono"},
    "language": {"type": "string", "description": "ISO 639-1 hint, e.g. en (else detected)."},
    "channel": {"type": "string", "default": "call"},
    "score": {"type": "number"},
    "scale": {"type": "string"},
    "customer_id": {"type": "string"},
    "occurred_at": {"type": "string", "format": "date-time"},
    "employee_id": {"type": "string"},
    "team": {"type": "string"},
    "location": {"type": "string"},
    "journey": {"type": "string"},
    "segment": {"type": "string"},
    "metadata": {"type": "string", "description": "A JSON object, as a string (16 KiB max)."},
}
_OPENAPI_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD, "external_id"],
                    "properties": _FORM_FIELDS,
                }
            }
        },
    }
}


@router.post(
    "/recordings",
    status_code=202,
    response_model=RecordingAccepted,
    dependencies=[Depends(require_scope("ingest"))],
    openapi_extra=_OPENAPI_BODY,
    summary="Upload a call recording for transcription and scoring",
    description=(
        "multipart/form-data with the audio in `file` and the same metadata as feedback "
        "(`external_id` required, `channel` default `call`), the channel `layout` (`mono`, "
        "`stereo_agent_left`, `stereo_agent_right`) and an optional `language` hint; "
        "`metadata` is a JSON object sent as a string. Limits: `api.max_recording_bytes` "
        "(default 512 MiB, else 413) and `api.max_recording_seconds` (default 4 h). An empty, "
        "corrupt, silent or unsupported file is refused with a 4xx naming the problem. "
        "An `external_id` (or `Idempotency-Key`) already stored returns that recording."
    ),
)
async def upload_recording(
    request: Request, idempotency_key: str | None = Header(default=None, max_length=200)
) -> RecordingAccepted:
    """Accept a recording: stored, probed, queued for transcription."""
    app: FastAPI = request.app
    if app.state.audio_probe is None:
        raise ServiceUnavailable(
            "this API process was started without audio support (no audio probe configured)",
            code="audio_unavailable",
        )
    settings = app.state.settings
    form = await receive_upload(request, settings.audio_dir, settings.api.max_recording_bytes)
    try:
        accepted = await run_in_threadpool(_accept, app, form, idempotency_key)
    finally:
        discard(form)  # the accepted file was renamed away; anything left is not wanted
    return accepted


def _accept(app: FastAPI, form: ReceivedForm, idempotency_key: str | None) -> RecordingAccepted:
    settings = app.state.settings
    fields = _validated(form)
    upload = form.file
    if upload is None:
        raise ValidationFailed(
            f"{FILE_FIELD}: a recording is required (send it as the form part '{FILE_FIELD}')",
            code="missing_file",
        )
    if upload.size == 0:
        raise AudioRejected("the uploaded file is empty (0 bytes)", code="empty_audio")
    with app.state.session_factory() as session:
        existing = recordings.find_existing(session, fields.external_id, idempotency_key)
        if existing is not None:
            return _accepted(existing, created=False)
        session.commit()
    probe: AudioProbe = app.state.audio_probe
    info = probe(upload.path, settings.api.max_recording_seconds)
    if fields.layout != Layout.mono and info.channels < 2:
        raise AudioRejected(
            f"layout {fields.layout.value} needs a stereo recording, the file has one channel "
            "(send layout=mono)",
            code="layout_mismatch",
        )
    recording_id = new_id()
    name = f"{recording_id}{safe_suffix(upload.filename)}"
    final = settings.audio_dir / name
    os.replace(upload.path, final)  # atomic: workers never see a half-written file
    try:
        with app.state.session_factory() as session:
            outcome = recordings.accept(
                session, _columns(recording_id, fields, form, info, name), idempotency_key
            )
            session.commit()
    except BaseException:
        final.unlink(missing_ok=True)
        raise
    if not outcome.created:  # a concurrent upload of the same external id won
        final.unlink(missing_ok=True)
        return _accepted(outcome.recording, created=False)
    _announce(app, outcome.job_id)
    return _accepted(outcome.recording, created=True)


def _validated(form: ReceivedForm) -> RecordingForm:
    try:
        return RecordingForm.model_validate(form.fields)
    except ValidationError as e:
        raise RequestValidationError(e.errors(include_url=False, include_context=False)) from e


def _columns(
    recording_id: str, fields: RecordingForm, form: ReceivedForm, info: ProbedAudio, name: str
) -> dict[str, Any]:
    assert form.file is not None
    values = fields.model_dump(exclude={"metadata"})
    values.update(
        id=recording_id,
        extra=fields.metadata,
        channel=fields.channel.value,
        layout=fields.layout.value,
        scale=fields.scale.value if fields.scale is not None else None,
        filename=form.file.filename,
        audio_file=name,
        sha256=form.file.sha256,
        size_bytes=form.file.size,
        container=info.container,
        codec=info.codec,
        duration=info.duration,
        channels=info.channels,
        sample_rate=info.sample_rate,
    )
    return values


def _announce(app: FastAPI, job_id: str | None) -> None:
    if job_id is None:
        return
    try:
        app.state.dispatcher.notify([job_id], kind=recordings.TRANSCRIBE_KIND)
    except Exception as e:  # stored and committed: the sweeper will announce it
        log.warning("notify_failed", error=repr(e), job_id=job_id)


def _accepted(recording: Recording, *, created: bool) -> RecordingAccepted:
    return RecordingAccepted(
        id=recording.id,
        external_id=recording.external_id,
        status=recording.status,
        outcome="created" if created else "duplicate",
        duration=recording.duration,
        channels=recording.channels,
        sample_rate=recording.sample_rate,
        size_bytes=recording.size_bytes,
        sha256=recording.sha256,
    )


@router.get(
    "/recordings/{recording_id}",
    response_model=RecordingOut,
    dependencies=[Depends(require_scope("read"))],
    summary="Read a recording: status and progress, transcript, analysis",
)
def read_recording(recording_id: str, session: Session = Depends(get_session)) -> RecordingOut:
    """Status, transcript and analysis of one recording."""
    view = recordings.get(session, recording_id)
    if view is None:
        raise NotFound(f"no recording with id {recording_id}")
    rec = view.recording
    return RecordingOut(
        id=rec.id,
        external_id=rec.external_id,
        status=_public_status(rec),
        progress=rec.progress,
        error=rec.error,
        channel=rec.channel,
        layout=rec.layout,
        language=rec.language,
        score=rec.score,
        scale=rec.scale,
        customer_id=rec.customer_id,
        occurred_at=rec.occurred_at,
        employee_id=rec.employee_id,
        team=rec.team,
        location=rec.location,
        journey=rec.journey,
        segment=rec.segment,
        metadata=rec.extra,
        filename=rec.filename,
        size_bytes=rec.size_bytes,
        sha256=rec.sha256,
        container=rec.container,
        codec=rec.codec,
        duration=rec.duration,
        channels=rec.channels,
        sample_rate=rec.sample_rate,
        created_at=rec.created_at,
        updated_at=rec.updated_at,
        history=[
            StatusEventOut(status=e.status, detail=e.detail, at=e.created_at) for e in view.events
        ],
        transcript=TranscriptOut.model_validate(rec.transcript) if rec.transcript else None,
        analysis=view.analysis.result if view.analysis else None,
        model_versions=view.analysis.model_versions if view.analysis else None,
    )


def _public_status(rec: Recording) -> str:
    # A claimed job marks its subject "running" before the stage says which step it is in.
    if rec.status == "running":
        return recordings.TRANSCRIBING if rec.transcript is None else recordings.ANALYSING
    return rec.status
