"""/v1/taxonomies: versions of the case-type taxonomy and the owners' reports (taxonomy-admin).

Uploads are YAML bodies. Validation and the reports need `nlp`, which this process may not
import: a composition root puts a `TaxonomyTools` (workers.taxonomy) on
``app.state.taxonomy_tools``. Reports (evaluate, diff, suggest) run synchronously where the
encoder is loaded (the embedded mode): they are interactive, owner-driven calls on small
inputs that take seconds, so a job table and polling would add more than they give. A
scaled-out API (Celery) has no encoder and answers them 503, pointing to the CLI
(`undertone taxonomy evaluate|diff|suggest` on a worker host).
"""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from service.api.body import read_limited_body
from service.api.deps import get_session, require_scope
from service.api.schemas_taxonomies import (
    DiffRequest,
    EvaluateRequest,
    SuggestRequest,
    TaxonomySummary,
    TaxonomyVersionOut,
)
from service.db.repositories import taxonomies as repo
from service.errors import BadRequest, NotFound, ServiceUnavailable

router = APIRouter(
    prefix="/v1/taxonomies",
    tags=["taxonomies"],
    dependencies=[Depends(require_scope("taxonomy-admin"))],
)


class TaxonomyTools(Protocol):
    """What the routes need of `workers.taxonomy.TaxonomyTools` (typed loosely: no nlp here)."""

    def upload(self, content: str, activate: bool = False) -> dict[str, Any]: ...
    def activate(self, name: str, version: str) -> dict[str, Any]: ...
    def rollback(self) -> dict[str, Any]: ...
    def stored(self, name: str | None, version: str | None) -> Any: ...
    def evaluate(
        self, taxonomy: Any, rows: Any, text_column: str = ..., label_column: str = ...
    ) -> dict[str, Any]: ...
    def diff(self, draft: Any, days: float = ..., limit: int = ...) -> dict[str, Any]: ...
    def suggest(
        self, days: float = ..., window_days: float = ..., limit: int = ..., min_size: int = ...
    ) -> dict[str, Any]: ...
    def validate(self, content: str, source: str = ...) -> Any: ...
    def summary(self, taxonomy: Any) -> dict[str, Any]: ...


def _tools(request: Request) -> TaxonomyTools:
    tools: TaxonomyTools | None = getattr(request.app.state, "taxonomy_tools", None)
    if tools is None:
        raise ServiceUnavailable(
            "taxonomy tools are not configured in this process", code="taxonomy_tools_missing"
        )
    return tools


async def _yaml_body(request: Request) -> str:
    body = await read_limited_body(request, request.app.state.max_request_bytes)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRequest(
            f"the body is not valid UTF-8 (byte {e.start})", code="invalid_encoding"
        ) from e
    if not text.strip():
        raise BadRequest("send the taxonomy YAML as the request body", code="empty_body")
    return text


@router.post("/validate", response_model=TaxonomySummary, summary="Validate a taxonomy (YAML body)")
async def validate(request: Request) -> TaxonomySummary:
    """Validate without storing: 422 lists every problem with its line and field."""
    text = await _yaml_body(request)
    tools = _tools(request)
    return TaxonomySummary(**tools.summary(tools.validate(text, source="upload")), valid=True)


@router.post("", summary="Upload a new taxonomy version (YAML body)")
async def upload(
    request: Request, activate: bool = Query(False, description="Activate it at once.")
) -> JSONResponse:
    """Store a version: 201 when new, 200 when the same content is stored, 409 when changed."""
    text = await _yaml_body(request)
    result = _tools(request).upload(text, activate=activate)
    body = TaxonomySummary(**result, valid=True).model_dump(mode="json")
    return JSONResponse(body, status_code=201 if result["created"] else 200)


@router.get("", response_model=list[TaxonomyVersionOut], summary="List stored versions")
def list_versions(session: Session = Depends(get_session)) -> list[TaxonomyVersionOut]:
    """Every stored version, newest first, with the active one marked."""
    current = repo.active_ref(session)
    return [
        TaxonomyVersionOut.of(row, current is not None and current.version_id == row.id)
        for row in repo.list_versions(session)
    ]


@router.get("/active", response_model=TaxonomyVersionOut, summary="The active version")
def show_active(session: Session = Depends(get_session)) -> TaxonomyVersionOut:
    """The active version with its YAML."""
    row = repo.active(session)
    if row is None:
        raise NotFound("no taxonomy is active", code="no_active_taxonomy")
    return TaxonomyVersionOut.of(row, True, with_content=True)


@router.get("/{name}/{version}", response_model=TaxonomyVersionOut, summary="One version")
def show(name: str, version: str, session: Session = Depends(get_session)) -> TaxonomyVersionOut:
    """A stored version with its YAML."""
    row = repo.require(session, name, version)
    current = repo.active_ref(session)
    active = current is not None and current.version_id == row.id
    return TaxonomyVersionOut.of(row, active, with_content=True)


@router.post("/{name}/{version}/activate", summary="Activate a stored version")
def activate(name: str, version: str, request: Request) -> dict[str, Any]:
    """Make it the active version; workers switch within seconds, no restart."""
    return _tools(request).activate(name, version)


@router.post("/rollback", summary="Re-activate the previously active version")
def rollback(request: Request) -> dict[str, Any]:
    """Roll back to the version active before the current one (409 if there is none)."""
    return _tools(request).rollback()


def _target(tools: TaxonomyTools, yaml_text: str | None) -> Any:
    if yaml_text is None:
        return tools.stored(None, None)
    return tools.validate(yaml_text, source="draft")


@router.post("/evaluate", summary="Precision, recall and F1 per case type on labelled texts")
def evaluate(payload: EvaluateRequest, request: Request) -> dict[str, Any]:
    """Evaluate the active version (or `taxonomy_yaml`) on labelled texts."""
    tools = _tools(request)
    rows = [{"text": item.text, "label": item.label or ""} for item in payload.items]
    return tools.evaluate(_target(tools, payload.taxonomy_yaml), rows)


@router.post("/diff", summary="Re-score recent feedback with a draft beside the active version")
def diff(payload: DiffRequest, request: Request) -> dict[str, Any]:
    """Which stored items would move between which case types under the draft."""
    tools = _tools(request)
    draft = tools.validate(payload.taxonomy_yaml, source="draft")
    return tools.diff(draft, payload.days, payload.limit)


@router.post("/suggest", summary="Propose new case types from feedback that fits none")
def suggest(payload: SuggestRequest, request: Request) -> dict[str, Any]:
    """Clusters of recent negative feedback that fits no case type."""
    return _tools(request).suggest(
        payload.days, payload.window_days, payload.limit, payload.min_size
    )


def install(app: Any, tools: TaxonomyTools | None) -> None:
    """Serve /v1/taxonomies on `app` with the tools a composition root built."""
    app.state.taxonomy_tools = tools
    app.include_router(router)
