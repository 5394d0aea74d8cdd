"""/healthz (the process answers), /readyz (it can do its work) and /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from service.logging import get_logger

log = get_logger(__name__)
router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    """Liveness."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: database, broker and models")
def readyz(request: Request) -> JSONResponse:
    """Readiness: 200 when every check passes, else 503 naming the failing ones."""
    checks: dict[str, bool] = {"database": _database_answers(request)}
    try:
        checks.update(request.app.state.dispatcher.readiness())
    except Exception as e:  # a failing probe means "not ready", not a 500
        log.warning("readiness_failed", error=repr(e))
        checks["dispatcher"] = False
    ready = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )


def _database_answers(request: Request) -> bool:
    try:
        with request.app.state.session_factory() as session:
            session.execute(text("SELECT 1"))
            session.rollback()
        return True
    except Exception as e:  # any failure means the database is not usable
        log.warning("database_unready", error=repr(e))
        return False


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus exposition."""
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
