"""POST /v1/analyze: synchronous analysis of a few short texts; nothing is stored."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from service.api.body import JsonBodyRoute
from service.api.deps import require_scope
from service.api.schemas import AnalyzeRequest, AnalyzeResponse
from service.contract import validate_analysis
from service.dispatch import DispatchUnavailable
from service.errors import PayloadTooLarge, ServiceUnavailable, ValidationFailed

router = APIRouter(prefix="/v1", tags=["analysis"], route_class=JsonBodyRoute)


@router.post(
    "/analyze",
    response_model=AnalyzeResponse,
    dependencies=[Depends(require_scope("read"))],
    summary="Analyse up to api.analyze_max_texts short texts now",
    description=(
        "Returns one analysis contract object per text, in order. At most "
        "`api.analyze_max_texts` texts (default 64) of `api.analyze_max_chars` characters "
        "(default 2,000). Nothing is stored. 503 when the analysis backend is unavailable."
    ),
)
def analyze(payload: AnalyzeRequest, request: Request) -> AnalyzeResponse:
    """Analyse texts synchronously."""
    limits = request.app.state.settings.api
    if len(payload.items) > limits.analyze_max_texts:
        raise PayloadTooLarge(
            f"{len(payload.items)} texts sent, the maximum is {limits.analyze_max_texts}",
            code="too_many_items",
        )
    too_long = [
        {
            "field": f"items.{i}.text",
            "message": f"text is {len(item.text)} characters, "
            f"the maximum is {limits.analyze_max_chars}",
            "type": "text_too_long",
        }
        for i, item in enumerate(payload.items)
        if len(item.text) > limits.analyze_max_chars
    ]
    if too_long:
        raise ValidationFailed(
            f"{too_long[0]['field']}: {too_long[0]['message']}",
            details=too_long,
            code="text_too_long",
        )
    items = [
        {
            **item.model_dump(mode="json", exclude_none=True, exclude_defaults=True),
            "id": item.id if item.id is not None else str(i),
            "text": item.text,
        }
        for i, item in enumerate(payload.items)
    ]
    try:
        raw = request.app.state.dispatcher.analyze_now(items, limits.analyze_timeout_seconds)
    except DispatchUnavailable as e:
        raise ServiceUnavailable(
            f"analysis is unavailable right now: {e}", code="analysis_unavailable"
        ) from e
    return AnalyzeResponse(results=[validate_analysis(r) for r in raw])
