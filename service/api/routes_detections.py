"""Detections for the case system: pull with a stable cursor, ack, outcome, false positives."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from service.api.body import JsonBodyRoute
from service.api.deps import get_session, require_scope
from service.api.schemas_detections import (
    DetectionOut,
    DetectionPage,
    FalsePositiveReport,
    OutcomeIn,
)
from service.db.repositories import detections
from service.errors import Conflict, NotFound, ValidationFailed

# Bodyless POSTs (ack) need no JSON content type; the outcome's body is read strictly.
router = APIRouter(prefix="/v1", tags=["detections"])
json_router = APIRouter(tags=["detections"], route_class=JsonBodyRoute)


def _parse_cursor(cursor: str | None) -> int:
    if cursor is None or cursor == "":
        return 0
    try:
        value = int(cursor)
    except ValueError as error:
        raise ValidationFailed(
            f"cursor {cursor!r} is not one this API returned (send back next_cursor as is)",
            code="invalid_cursor",
        ) from error
    if value < 0:
        raise ValidationFailed("cursor must not be negative", code="invalid_cursor")
    return value


@router.get(
    "/detections",
    response_model=DetectionPage,
    dependencies=[Depends(require_scope("read"))],
    summary="Pull detections in order, each new or changed detection once",
    description=(
        "Start without `cursor` (or `cursor=0`), then send back `next_cursor` each time. "
        "Detections come in the order they were committed; a detection that Undertone "
        "changes later (merged evidence, joined to an incident) comes again with a higher "
        "`seq` and `version`. Filters narrow a page without losing the cursor's place."
    ),
)
def list_detections(
    cursor: str | None = Query(default=None, max_length=40),
    limit: int = Query(default=100, ge=1, le=1000),
    status: str | None = Query(default=None, pattern="^(open|acked|closed)$"),
    kind: str | None = Query(default=None, pattern="^(explicit|unexpressed)$"),
    case_type: str | None = Query(default=None, max_length=200),
    since: datetime | None = Query(default=None, description="Changed at or after (ISO 8601)."),
    session: Session = Depends(get_session),
) -> DetectionPage:
    """A page of detections after the cursor."""
    page = detections.list_after(
        session,
        _parse_cursor(cursor),
        limit,
        status=status,
        kind=kind,
        case_type=case_type,
        since=since,
    )
    sources = detections.sources_of(session, [d.id for d in page.items])
    return DetectionPage(
        items=[
            DetectionOut.model_validate(detections.to_public(d, sources[d.id])) for d in page.items
        ],
        next_cursor=str(page.next_cursor),
        has_more=page.has_more,
    )


def _one(session: Session, detection_id: str) -> DetectionOut:
    row = detections.get(session, detection_id)
    if row is None:
        raise NotFound(f"no detection with id {detection_id}")
    sources = detections.sources_of(session, [row.id])
    return DetectionOut.model_validate(detections.to_public(row, sources[row.id]))


@router.get(
    "/detections/{detection_id}",
    response_model=DetectionOut,
    dependencies=[Depends(require_scope("read"))],
    summary="Read one detection",
)
def read_detection(detection_id: str, session: Session = Depends(get_session)) -> DetectionOut:
    """One detection with its sources."""
    return _one(session, detection_id)


@router.post(
    "/detections/{detection_id}/ack",
    response_model=DetectionOut,
    dependencies=[Depends(require_scope("ingest"))],
    summary="Acknowledge a detection (a case was opened for it)",
    description="open -> acked; acking again is harmless; a closed detection answers 409.",
)
def ack_detection(detection_id: str, session: Session = Depends(get_session)) -> DetectionOut:
    """Mark a detection acknowledged."""
    try:
        row = detections.ack(session, detection_id)
    except detections.TransitionRefused as error:
        session.rollback()
        raise Conflict(
            str(error), code="invalid_transition", details={"status": error.status}
        ) from error
    if row is None:
        raise NotFound(f"no detection with id {detection_id}")
    session.commit()
    return _one(session, detection_id)


@json_router.post(
    "/detections/{detection_id}/outcome",
    response_model=DetectionOut,
    dependencies=[Depends(require_scope("ingest"))],
    summary="Close a detection with its outcome",
    description=(
        "`recovered`, `not_recovered`, `not_a_complaint` (a false positive) or `duplicate`, "
        "with free `notes`. Sending the same outcome again is harmless; a different outcome "
        "for a closed detection answers 409."
    ),
)
def record_outcome(
    detection_id: str, body: OutcomeIn, session: Session = Depends(get_session)
) -> DetectionOut:
    """Close a detection."""
    try:
        row = detections.record_outcome(session, detection_id, body.outcome, body.notes)
    except detections.TransitionRefused as error:
        session.rollback()
        raise Conflict(
            str(error), code="invalid_transition", details={"status": error.status}
        ) from error
    if row is None:
        raise NotFound(f"no detection with id {detection_id}")
    session.commit()
    return _one(session, detection_id)


router.include_router(json_router)


@router.get(
    "/reports/false-positives",
    response_model=FalsePositiveReport,
    dependencies=[Depends(require_scope("read"))],
    summary="Confirmed false-positive rate per case type and per signal",
)
def false_positives(
    since: datetime | None = Query(default=None, description="Closed at or after (ISO 8601)."),
    session: Session = Depends(get_session),
) -> FalsePositiveReport:
    """Rates from the outcomes the case system sent back."""
    return FalsePositiveReport.model_validate(detections.false_positive_report(session, since))
