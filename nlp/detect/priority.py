"""Priority (a 0-100 score with each factor's contribution) and the first-contact due time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from nlp.detect.context import DetectOptions
from nlp.taxonomy.schema import SEVERITY_NAMES, Taxonomy

SEVERITY_VALUE = {name: (i + 1) / len(SEVERITY_NAMES) for i, name in enumerate(SEVERITY_NAMES)}


def as_utc(value: Any) -> datetime | None:
    """An ISO string or datetime -> an aware UTC datetime (naive means UTC); None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """UTC ISO 8601 with a Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def first_contact_sla(
    taxonomy: Taxonomy | None,
    case_type_id: str | None,
    *,
    segment: str | None,
    journey: str | None,
    default: timedelta,
) -> timedelta:
    """The case type's SLA with segment/journey overrides; the taxonomy default; else `default`."""
    if taxonomy is None:
        return default
    if case_type_id is None:
        return taxonomy.defaults.first_contact_sla
    try:
        case_type = taxonomy.get(case_type_id)
    except KeyError:
        return taxonomy.defaults.first_contact_sla
    return taxonomy.sla_of(case_type, segment=segment, journey=journey)


def priority(
    *,
    severity: str,
    intensity: float,
    churn: float,
    segment: str | None,
    due_by: datetime,
    now: datetime,
    options: DetectOptions,
) -> dict[str, Any]:
    """The priority score and its factors; the contributions add up to the score exactly.

    Each factor has a value on 0..1 and a weight (options.weights, summing to 100);
    contribution = value x weight, rounded to 0.1, and the score is their sum.
    """
    time_left = (due_by - now).total_seconds()
    horizon = options.urgency_horizon.total_seconds()
    values = {
        "severity": SEVERITY_VALUE.get(severity, SEVERITY_VALUE["medium"]),
        "intensity": intensity,
        "churn": churn,
        "segment_value": options.segment_values.get(segment or "", options.default_segment_value),
        "sla_time_left": 1.0 - min(max(time_left / horizon, 0.0), 1.0),
    }
    factors: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        value = min(max(float(value), 0.0), 1.0)
        weight = float(options.weights.get(name, 0.0))
        factors[name] = {
            "value": round(value, 4),
            "weight": weight,
            "contribution": round(value * weight, 1),
        }
    factors["sla_time_left"]["hours_left"] = round(time_left / 3600, 2)
    factors["severity"]["level"] = severity
    if segment:
        factors["segment_value"]["segment"] = segment
    score = round(sum(f["contribution"] for f in factors.values()), 1)
    return {"score": min(score, 100.0), "factors": factors}


def rescore(
    existing: Mapping[str, Any], now: datetime, due_by: datetime, options: DetectOptions
) -> dict[str, Any]:
    """A priority recomputed from stored factor values (after a merge)."""
    factors = existing["factors"]
    return priority(
        severity=str(factors["severity"].get("level", "medium")),
        intensity=float(factors["intensity"]["value"]),
        churn=float(factors["churn"]["value"]),
        segment=factors["segment_value"].get("segment"),
        due_by=due_by,
        now=now,
        options=options,
    )
