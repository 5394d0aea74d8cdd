"""POST /v1/feedback and GET /v1/feedback/{id}."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from sqlalchemy.orm import Session

from service.api.body import JsonBodyRoute
from service.api.deps import get_session, require_scope
from service.api.schemas import (
    AcceptedItem,
    AcceptedResponse,
    FeedbackBatchIn,
    FeedbackIn,
    FeedbackOut,
    FeedbackRequest,
    StatusEventOut,
)
from service.contract import AnalysisResult
from service.db.repositories import feedback
from service.errors import BadRequest, NotFound, PayloadTooLarge, ValidationFailed
from service.logging import get_logger

log = get_logger(__name__)
router = APIRouter(prefix="/v1", tags=["feedback"], route_class=JsonBodyRoute)


@router.post(
    "/feedback",
    status_code=202,
    response_model=AcceptedResponse,
    dependencies=[Depends(require_scope("ingest"))],
    summary="Submit one feedback item or a batch",
    description=(
        'Send one item, or `{"items": [...]}` with at most `api.max_batch_items` items '
        "(default 500). Items are stored and queued for analysis; the answer (202) gives their "
        "ids. An `external_id` already stored (or, for a single item, an `Idempotency-Key` "
        "already used) returns the existing item as a `duplicate`, never a second copy."
    ),
)
def submit_feedback(
    payload: FeedbackRequest,
    request: Request,
    session: Session = Depends(get_session),
    idempotency_key: str | None = Header(default=None, max_length=200),
) -> AcceptedResponse:
    """Accept feedback for analysis."""
    settings = request.app.state.settings
    items = payload.items if isinstance(payload, FeedbackBatchIn) else [payload]
    if isinstance(payload, FeedbackBatchIn):
        if idempotency_key is not None:
            raise BadRequest(
                "Idempotency-Key applies to single items; a batch is idempotent per external_id",
                code="idempotency_key_with_batch",
            )
        if len(items) > settings.api.max_batch_items:
            raise PayloadTooLarge(
                f"the batch holds {len(items)} items, "
                f"the maximum is {settings.api.max_batch_items}",
                code="too_many_items",
            )
    _check_text_lengths(
        items, settings.api.max_text_chars, batch=isinstance(payload, FeedbackBatchIn)
    )
    outcomes = feedback.accept(session, [_columns(i) for i in items], idempotency_key)
    session.commit()
    job_ids = [o.job_id for o in outcomes if o.job_id is not None]
    if job_ids:
        try:
            request.app.state.dispatcher.notify(job_ids)
        except Exception as e:  # stored and committed: the sweeper will announce it
            log.warning("notify_failed", error=repr(e), jobs=len(job_ids))
    metrics = request.app.state.metrics
    created = sum(o.created for o in outcomes)
    metrics.items_accepted.labels("created").inc(created)
    metrics.items_accepted.labels("duplicate").inc(len(outcomes) - created)
    return AcceptedResponse(
        items=[
            AcceptedItem(
                id=o.item.id,
                external_id=o.item.external_id,
                status=o.item.status,
                outcome="created" if o.created else "duplicate",
            )
            for o in outcomes
        ],
        created=created,
        duplicates=len(outcomes) - created,
    )


def _check_text_lengths(items: list[FeedbackIn], limit: int, *, batch: bool) -> None:
    details = [
        {
            "field": f"items.{i}.text" if batch else "text",
            "message": f"text is {len(item.text)} characters, the maximum is {limit}",
            "type": "text_too_long",
        }
        for i, item in enumerate(items)
        if len(item.text) > limit
    ]
    if details:
        raise ValidationFailed(
            f"{details[0]['field']}: {details[0]['message']}", details=details, code="text_too_long"
        )


def _columns(item: FeedbackIn) -> dict[str, Any]:
    values = item.model_dump(exclude={"metadata"})
    values["extra"] = item.metadata
    values["channel"] = item.channel.value
    values["scale"] = item.scale.value if item.scale is not None else None
    return values


@router.get(
    "/feedback/{feedback_id}",
    response_model=FeedbackOut,
    dependencies=[Depends(require_scope("read"))],
    summary="Read an item: status, status history and the stored analysis",
)
def read_feedback(feedback_id: str, session: Session = Depends(get_session)) -> FeedbackOut:
    """Status, history and analysis of one item."""
    view = feedback.get(session, feedback_id)
    if view is None:
        raise NotFound(f"no feedback item with id {feedback_id}")
    item = view.item
    return FeedbackOut(
        id=item.id,
        external_id=item.external_id,
        status=item.status,
        error=item.error,
        text=item.text,
        channel=item.channel,
        score=item.score,
        scale=item.scale,
        customer_id=item.customer_id,
        occurred_at=item.occurred_at,
        employee_id=item.employee_id,
        team=item.team,
        location=item.location,
        journey=item.journey,
        segment=item.segment,
        language=item.language,
        metadata=item.extra,
        created_at=item.created_at,
        updated_at=item.updated_at,
        history=[
            StatusEventOut(status=e.status, detail=e.detail, at=e.created_at) for e in view.events
        ],
        analysis=AnalysisResult.model_validate(view.analysis.result) if view.analysis else None,
        model_versions=view.analysis.model_versions if view.analysis else None,
    )
