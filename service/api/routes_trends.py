"""The outer loop: detection counts over time (trends) and the spikes among them (incidents)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from service.api.deps import get_session, require_scope
from service.api.schemas_detections import IncidentOut, TrendPoint, TrendsOut
from service.db.models import utcnow
from service.db.models_detections import Incident
from service.db.repositories import incidents
from service.errors import NotFound, ValidationFailed

router = APIRouter(prefix="/v1", tags=["trends"])
READ = [Depends(require_scope("read"))]
BUCKETS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
# At most this many buckets per answer (e.g. 90 days by hour).
MAX_BUCKETS = 24 * 90


@router.get(
    "/trends",
    response_model=TrendsOut,
    dependencies=READ,
    summary="Detections per case type, team, employee and location over time",
)
def trends(
    bucket: Literal["hour", "day"] = Query(default="day"),
    since: datetime | None = Query(default=None, description="Default: 30 buckets ago."),
    until: datetime | None = Query(default=None, description="Default: now."),
    dimension: list[str] = Query(
        default=["case_type", "team", "employee", "location"],
        description="Repeat to choose: case_type, team, employee, location.",
    ),
    session: Session = Depends(get_session),
) -> TrendsOut:
    """Counts by when the feedback occurred."""
    size = BUCKETS[bucket]
    end = _aware(until) or utcnow()
    start = _aware(since) or end - 30 * size
    if start >= end:
        raise ValidationFailed("since must be before until", code="invalid_range")
    if (end - start) / size > MAX_BUCKETS:
        raise ValidationFailed(f"at most {MAX_BUCKETS} buckets per request", code="range_too_long")
    unknown = [d for d in dimension if d not in incidents.DIMENSIONS]
    if unknown:
        raise ValidationFailed(
            f"unknown dimensions {unknown}; choose from {', '.join(incidents.DIMENSIONS)}",
            code="invalid_dimension",
        )
    points = incidents.trend_counts(session, size, start, end, dimension)
    return TrendsOut(
        bucket=bucket,
        since=start,
        until=end,
        points=[TrendPoint(**p) for p in points],
    )


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    from datetime import UTC

    return value.replace(tzinfo=UTC)


def _incident_out(row: Incident, detection_ids: list[str] | None = None) -> IncidentOut:
    return IncidentOut(
        id=row.id,
        dimension=row.dimension,
        key=row.key,
        key_name=row.key_name,
        window_start=row.window_start,
        window_end=row.window_end,
        count=row.count,
        expected=row.expected,
        p_value=row.p_value,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
        detection_ids=detection_ids,
    )


@router.get(
    "/incidents",
    response_model=list[IncidentOut],
    dependencies=READ,
    summary="Spikes of detections far above their own baseline",
)
def list_incidents(
    since: datetime | None = Query(default=None, description="Windows starting at or after."),
    limit: int = Query(default=100, ge=1, le=1000),
    session: Session = Depends(get_session),
) -> list[IncidentOut]:
    """Newest window first."""
    return [_incident_out(r) for r in incidents.list_incidents(session, _aware(since), limit)]


@router.get(
    "/incidents/{incident_id}",
    response_model=IncidentOut,
    dependencies=READ,
    summary="One incident with its detections",
)
def read_incident(incident_id: str, session: Session = Depends(get_session)) -> IncidentOut:
    """The incident and the ids of the detections it groups."""
    row = incidents.get(session, incident_id)
    if row is None:
        raise NotFound(f"no incident with id {incident_id}")
    return _incident_out(row, [d.id for d in incidents.detections_of(session, incident_id)])
