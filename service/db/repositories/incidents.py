"""Trends and incidents: counts of detections per key over time windows, and spikes.

A spike: the count of detections for one key (a case type, team, employee or location) in
one window is at least ``min_count`` and its Poisson tail P(X >= count) under the mean of the
previous windows (smoothed by one event, so a key with no history is not infinitely
surprising) is below ``p_value``. A spike becomes an incident (unique per dimension, key and
window, so a re-run finds it) and every detection of that key in the window not yet in an
incident gets its ``incident_id`` and is re-emitted.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.models import utcnow
from service.db.models_detections import Detection, DetectionSource, Incident
from service.db.repositories.detections import bump

EVALUATE_KIND = "incidents.evaluate"
DIMENSIONS: dict[str, Any] = {
    "case_type": Detection.case_type_id,
    "team": Detection.team,
    "employee": Detection.employee_id,
    "location": Detection.location,
}
NO_CASE_TYPE = "none"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SpikeRule:
    """When a window's count is a spike."""

    window: timedelta
    baseline_windows: int
    min_count: int
    p_value: float
    dimensions: tuple[str, ...]

    @classmethod
    def from_settings(cls, options: Any) -> SpikeRule:
        """From `service.config.DetectionSettings`."""
        return cls(
            timedelta(minutes=options.incident_window_minutes),
            options.incident_baseline_windows,
            options.incident_min_count,
            options.incident_p_value,
            tuple(options.incident_dimensions),
        )


def poisson_tail(count: int, mean: float) -> float:
    """P(X >= count) for X ~ Poisson(mean), summed from the tail (no 1 - x cancellation)."""
    if count <= 0:
        return 1.0
    log_term = -mean + count * math.log(mean) - math.lgamma(count + 1)
    total, k = 0.0, count
    while True:
        term = math.exp(log_term)
        total += term
        k += 1
        log_term += math.log(mean) - math.log(k)
        if term < 1e-300 or (k > mean and term < total * 1e-12):
            return min(1.0, total)


def window_start(at: datetime, window: timedelta) -> datetime:
    """The start of the fixed window (aligned on the Unix epoch) that holds ``at``."""
    size = window.total_seconds()
    offset = (at - _EPOCH).total_seconds()
    return _EPOCH + timedelta(seconds=math.floor(offset / size) * size)


def _key_of(row: Detection, dimension: str) -> str | None:
    value = getattr(row, DIMENSIONS[dimension].key)
    if dimension == "case_type" and value is None:
        return NO_CASE_TYPE
    return str(value) if value is not None else None


def _key_filter(dimension: str, key: str) -> Any:
    column = DIMENSIONS[dimension]
    if dimension == "case_type" and key == NO_CASE_TYPE:
        return column.is_(None)
    return column == key


def evaluate_for_source(session: Session, source_id: str, rule: SpikeRule) -> list[Detection]:
    """Check the windows of one item's detections for spikes; call under the detections lock.

    Returns the detections that joined an incident (already re-sequenced). No commit.
    """
    rows = list(
        session.scalars(
            select(Detection)
            .join(DetectionSource, DetectionSource.detection_id == Detection.id)
            .where(DetectionSource.source_id == source_id)
        )
    )
    changed: dict[str, Detection] = {}
    seen: set[tuple[str, str, datetime]] = set()
    for row in rows:
        start = window_start(row.occurred_at, rule.window)
        for dimension in rule.dimensions:
            key = _key_of(row, dimension)
            if key is None or (dimension, key, start) in seen:
                continue
            seen.add((dimension, key, start))
            for joined in _evaluate_window(session, dimension, key, start, rule, row):
                changed[joined.id] = joined
    return list(changed.values())


def _evaluate_window(
    session: Session,
    dimension: str,
    key: str,
    start: datetime,
    rule: SpikeRule,
    example: Detection,
) -> list[Detection]:
    end = start + rule.window
    history_start = start - rule.window * rule.baseline_windows
    # Counts, not rows: a busy window holds thousands of detections and this runs for every
    # item that adds one; only the rows that join an incident are loaded.
    history = session.scalar(
        select(func.count())
        .select_from(Detection)
        .where(
            _key_filter(dimension, key),
            Detection.occurred_at >= history_start,
            Detection.occurred_at < start,
        )
    )
    in_window = (
        _key_filter(dimension, key),
        Detection.occurred_at >= start,
        Detection.occurred_at < end,
    )
    count = int(session.scalar(select(func.count()).select_from(Detection).where(*in_window)) or 0)
    expected = (int(history or 0) + 1) / rule.baseline_windows
    p = poisson_tail(count, expected)
    if count < rule.min_count or p >= rule.p_value:
        return []
    incident = session.scalar(
        select(Incident).where(
            Incident.dimension == dimension,
            Incident.key == key,
            Incident.window_start == start,
        )
    )
    if incident is None:
        name = example.case_type_name if dimension == "case_type" else None
        incident = Incident(
            dimension=dimension,
            key=key,
            key_name=name,
            window_start=start,
            window_end=end,
            status="open",
        )
        session.add(incident)
    incident.count = count
    incident.expected = expected
    incident.p_value = p
    incident.updated_at = utcnow()
    session.flush()
    joined = list(
        session.scalars(
            select(Detection)
            .where(*in_window, Detection.incident_id.is_(None))
            .order_by(Detection.seq)
        )
    )
    for row in joined:
        row.incident_id = incident.id
        bump(session, row)
    return joined


def list_incidents(
    session: Session, since: datetime | None = None, limit: int = 100
) -> list[Incident]:
    """Incidents, newest window first."""
    query = select(Incident)
    if since is not None:
        query = query.where(Incident.window_start >= since)
    return list(
        session.scalars(query.order_by(Incident.window_start.desc(), Incident.id).limit(limit))
    )


def get(session: Session, incident_id: str) -> Incident | None:
    """One incident."""
    return session.get(Incident, incident_id)


def detections_of(session: Session, incident_id: str) -> list[Detection]:
    """The detections grouped in an incident, in seq order."""
    return list(
        session.scalars(
            select(Detection).where(Detection.incident_id == incident_id).order_by(Detection.seq)
        )
    )


def trend_counts(
    session: Session,
    bucket: timedelta,
    since: datetime,
    until: datetime,
    dimensions: Sequence[str],
) -> list[dict[str, Any]]:
    """Detections counted per bucket and key of each dimension, by when they occurred.

    Bucketed in Python (portable across SQLite and PostgreSQL); bounded by the time range.
    """
    rows = session.execute(
        select(Detection.occurred_at, *[DIMENSIONS[d] for d in dimensions]).where(
            Detection.occurred_at >= since, Detection.occurred_at < until
        )
    ).all()
    counts: Counter[tuple[str, str, datetime]] = Counter()
    for row in rows:
        start = window_start(row[0], bucket)
        for index, dimension in enumerate(dimensions, start=1):
            value = row[index]
            if value is None and dimension != "case_type":
                continue
            counts[(dimension, value if value is not None else NO_CASE_TYPE, start)] += 1
    return [
        {"dimension": d, "key": k, "bucket_start": s.isoformat(), "count": n}
        for (d, k, s), n in sorted(counts.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1]))
    ]
