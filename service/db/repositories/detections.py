"""Detections: stored once per analysed item, merged per customer and case type, pulled by seq.

The pull cursor. Every write that creates or changes a detection first takes one lock
held until commit (`lock`: a transaction-level advisory lock on PostgreSQL; on SQLite every
write transaction already holds the database's write lock, BEGIN IMMEDIATE), then gives the
row ``seq = max(seq) + 1``. So seq order is commit order: when a reader sees seq N, every
seq below N committed before it, and a poller asking for ``seq > cursor`` never skips a row
that commits later with a smaller number (the problem of sequence-assigned ids, which are
taken at insert and may commit out of order). The price is that detection writes are
serialised; they are small (no model runs under the lock: the detector is pure arithmetic
on a stored analysis). A merged detection gets a new seq, so pollers see it again as an
update.

Exactly once in effect: the `DetectionEvaluation` row of an item is written in the same
transaction as its detections, its baseline and its job's done, so a re-run finds it and
stores nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.models import Analysis, FeedbackItem, Recording, RecordingAnalysis, utcnow
from service.db.models_detections import (
    CustomerBaseline,
    Detection,
    DetectionEvaluation,
    DetectionSource,
)

EVALUATE_KIND = "detections.evaluate"
OPEN, ACKED, CLOSED = "open", "acked", "closed"
CREATED_EVENT, UPDATED_EVENT = "detection.created", "detection.updated"
KINDS = ("explicit", "unexpressed")
OUTCOMES = ("recovered", "not_recovered", "not_a_complaint", "duplicate")
# One arbitrary 64-bit key for pg_advisory_xact_lock: "detections' seq".
_SEQ_LOCK_KEY = 0x756E64657274_01

Merge = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Source:
    """An analysed item (feedback or call) with the attributes detections copy."""

    type: str
    id: str
    item: dict[str, Any]
    analysis: dict[str, Any]
    customer_id: str | None
    employee_id: str | None
    team: str | None
    location: str | None
    occurred_at: datetime


@dataclass
class Stored:
    """What one evaluation wrote: (detection, event type) per created or merged detection."""

    events: list[tuple[Detection, str]] = field(default_factory=list)


def lock(session: Session) -> None:
    """Serialise detection writes until this transaction ends (see the module docstring)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_SEQ_LOCK_KEY)))


def next_seq(session: Session) -> int:
    """The next cursor value; call only while holding `lock`."""
    current = session.scalar(select(func.max(Detection.seq)))
    return int(current or 0) + 1


def visible_max_seq(session: Session) -> int:
    """The highest committed seq; every smaller one is committed too."""
    return int(session.scalar(select(func.max(Detection.seq))) or 0)


def already_evaluated(session: Session, subject_id: str) -> bool:
    """Whether this item's detections are already stored."""
    return session.get(DetectionEvaluation, subject_id) is not None


def load_source(session: Session, subject_id: str) -> Source | None:
    """A feedback item or a recording with its stored analysis (None when neither exists)."""
    item = session.get(FeedbackItem, subject_id)
    if item is not None:
        analysis = session.scalar(select(Analysis).where(Analysis.feedback_id == item.id))
        if analysis is None:
            return None
        return Source(
            "feedback",
            item.id,
            _item_dict(item, text=item.text),
            dict(analysis.result),
            item.customer_id,
            item.employee_id,
            item.team,
            item.location,
            item.occurred_at or item.created_at,
        )
    rec = session.get(Recording, subject_id)
    if rec is not None:
        analysis_row = session.scalar(
            select(RecordingAnalysis).where(RecordingAnalysis.recording_id == rec.id)
        )
        if analysis_row is None:
            return None
        return Source(
            "recording",
            rec.id,
            _item_dict(rec),
            dict(analysis_row.result),
            rec.customer_id,
            rec.employee_id,
            rec.team,
            rec.location,
            rec.occurred_at or rec.created_at,
        )
    return None


_ITEM_FIELDS = (
    "external_id",
    "channel",
    "score",
    "scale",
    "customer_id",
    "employee_id",
    "team",
    "location",
    "journey",
    "segment",
    "language",
)


def _item_dict(row: FeedbackItem | Recording, text: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": row.id}
    if text is not None:
        out["text"] = text
    for name in _ITEM_FIELDS:
        value = getattr(row, name)
        if value is not None:
            out[name] = value
    when = row.occurred_at or row.created_at
    out["occurred_at"] = when.isoformat()
    if row.extra:
        out["metadata"] = row.extra
    return out


def recent_contacts(
    session: Session, customer_id: str, before: Source, days: float, limit: int
) -> list[dict[str, Any]]:
    """The customer's earlier feedback and calls (newest first) with their analyses."""
    if limit <= 0:
        return []
    since = before.occurred_at - timedelta(days=days)
    out: list[dict[str, Any]] = []
    rows = session.execute(
        select(FeedbackItem, Analysis)
        .join(Analysis, Analysis.feedback_id == FeedbackItem.id)
        .where(
            FeedbackItem.customer_id == customer_id,
            FeedbackItem.id != before.id,
            func.coalesce(FeedbackItem.occurred_at, FeedbackItem.created_at) >= since,
        )
        .order_by(FeedbackItem.created_at.desc())
        .limit(limit)
    ).all()
    for item, analysis in rows:
        out.append({**_item_dict(item, text=item.text), "analysis": analysis.result})
    calls = session.execute(
        select(Recording, RecordingAnalysis)
        .join(RecordingAnalysis, RecordingAnalysis.recording_id == Recording.id)
        .where(
            Recording.customer_id == customer_id,
            Recording.id != before.id,
            func.coalesce(Recording.occurred_at, Recording.created_at) >= since,
        )
        .order_by(Recording.created_at.desc())
        .limit(limit)
    ).all()
    for rec, call in calls:
        out.append({**_item_dict(rec), "analysis": call.result})
    out.sort(key=lambda c: str(c["occurred_at"]), reverse=True)
    return out[:limit]


def get_baseline(session: Session, customer_id: str) -> dict[str, Any] | None:
    """The customer's baseline state, if any."""
    row = session.get(CustomerBaseline, customer_id)
    return dict(row.state) if row is not None else None


def save_baseline(session: Session, customer_id: str, state: dict[str, Any]) -> None:
    """Replace the customer's baseline (inside the locked transaction; no commit)."""
    row = session.get(CustomerBaseline, customer_id)
    if row is None:
        session.add(CustomerBaseline(customer_id=customer_id, state=state))
    else:
        row.state = state
        row.updated_at = utcnow()


def _case_type(payload: dict[str, Any]) -> tuple[str | None, str | None]:
    case_type = payload.get("case_type")
    if isinstance(case_type, dict):
        cid = case_type.get("id")
        return (str(cid) if cid is not None else None, case_type.get("name"))
    return None, None


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else None
    return None


def _apply(row: Detection, payload: dict[str, Any]) -> None:
    """Copy the payload's indexed fields onto the row's columns."""
    row.payload = payload
    row.kind = str(payload.get("kind", "explicit"))
    row.case_type_id, row.case_type_name = _case_type(payload)
    row.confidence = float(payload.get("confidence") or 0.0)
    priority = payload.get("priority")
    row.priority_score = (
        float(priority["score"]) if isinstance(priority, dict) and "score" in priority else None
    )
    row.due_by = _parse_time(payload.get("due_by"))


def find_mergeable(
    session: Session, customer_id: str, case_type_id: str | None, since: datetime
) -> Detection | None:
    """The customer's still-open detection of this case type changed since ``since``."""
    query = (
        select(Detection)
        .where(
            Detection.customer_id == customer_id,
            Detection.case_type_id.is_(None)
            if case_type_id is None
            else Detection.case_type_id == case_type_id,
            Detection.status.in_((OPEN, ACKED)),
            Detection.updated_at >= since,
        )
        .order_by(Detection.seq.desc())
        .limit(1)
        .with_for_update()
    )
    return session.scalar(query)


def store_evaluation(
    session: Session,
    source: Source,
    new: Sequence[dict[str, Any]],
    merge: Merge,
    merge_window: timedelta,
    now: datetime | None = None,
) -> Stored:
    """Store an item's detections, merged into open ones of the same customer and case type.

    Call while holding `lock`; adds the item's evaluation marker. No commit.
    """
    now = now or utcnow()
    stored = Stored()
    merged_here: dict[str, Detection] = {}
    for payload in new:
        payload = dict(payload)
        payload.setdefault("customer_id", source.customer_id)
        payload.setdefault("employee_id", source.employee_id)
        case_id, _ = _case_type(payload)
        existing = None
        if source.customer_id is not None:
            existing = find_mergeable(session, source.customer_id, case_id, now - merge_window)
        if existing is not None:
            _apply(existing, merge(dict(existing.payload), payload))
            existing.kind = _merged_kind(existing.kind, str(payload.get("kind", "")))
            existing.seq = next_seq(session)
            existing.version += 1
            existing.updated_at = now
            session.flush()
            if existing.id not in merged_here:
                stored.events.append((existing, UPDATED_EVENT))
            merged_here[existing.id] = existing
            target = existing
        else:
            target = Detection(
                seq=next_seq(session),
                status=OPEN,
                customer_id=source.customer_id,
                employee_id=source.employee_id,
                team=source.team,
                location=source.location,
                occurred_at=source.occurred_at,
                created_at=now,
                updated_at=now,
            )
            _apply(target, payload)
            session.add(target)
            session.flush()
            merged_here[target.id] = target
            stored.events.append((target, CREATED_EVENT))
        if (
            session.scalar(
                select(DetectionSource.id).where(
                    DetectionSource.detection_id == target.id,
                    DetectionSource.source_id == source.id,
                )
            )
            is None
        ):
            session.add(
                DetectionSource(
                    detection_id=target.id, source_type=source.type, source_id=source.id
                )
            )
    # An updated detection's event must carry the final seq of this transaction.
    stored.events = [(merged_here[d.id], e) for d, e in stored.events]
    session.add(
        DetectionEvaluation(
            subject_id=source.id,
            source_type=source.type,
            detection_ids=[d.id for d, _ in stored.events],
        )
    )
    session.flush()
    return stored


def _merged_kind(current: str, new: str) -> str:
    # A complaint stated once is explicit, whatever else was signalled about it.
    return "explicit" if "explicit" in (current, new) else current or new


def bump(session: Session, detection: Detection, now: datetime | None = None) -> None:
    """Re-emit a detection changed by Undertone (e.g. joined to an incident); under `lock`."""
    detection.seq = next_seq(session)
    detection.version += 1
    detection.updated_at = now or utcnow()
    session.flush()


# ------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class Page:
    """One page of the pull: detections in seq order and the cursor to continue from."""

    items: list[Detection]
    next_cursor: int
    has_more: bool


def list_after(
    session: Session,
    cursor: int,
    limit: int,
    *,
    status: str | None = None,
    kind: str | None = None,
    case_type: str | None = None,
    since: datetime | None = None,
) -> Page:
    """Detections with seq above ``cursor`` matching the filters, oldest change first."""
    # The bound first: rows up to it are all committed, so advancing the cursor to it when
    # the page is not full skips nothing (filtered-out rows are not re-scanned next time).
    bound = visible_max_seq(session)
    query = select(Detection).where(Detection.seq > cursor, Detection.seq <= bound)
    if status is not None:
        query = query.where(Detection.status == status)
    if kind is not None:
        query = query.where(Detection.kind == kind)
    if case_type is not None:
        query = query.where(Detection.case_type_id == case_type)
    if since is not None:
        query = query.where(Detection.updated_at >= since)
    rows = list(session.scalars(query.order_by(Detection.seq).limit(limit + 1)))
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = rows[-1].seq if has_more else max(bound, cursor)
    return Page(rows, next_cursor, has_more)


def get(session: Session, detection_id: str) -> Detection | None:
    """One detection by id."""
    return session.get(Detection, detection_id)


def sources_of(session: Session, detection_ids: Sequence[str]) -> dict[str, list[dict[str, str]]]:
    """Detection id -> its sources [{type, id}], oldest first."""
    out: dict[str, list[dict[str, str]]] = {i: [] for i in detection_ids}
    if not detection_ids:
        return out
    rows = session.scalars(
        select(DetectionSource)
        .where(DetectionSource.detection_id.in_(list(detection_ids)))
        .order_by(DetectionSource.created_at, DetectionSource.id)
    )
    for row in rows:
        out[row.detection_id].append({"type": row.source_type, "id": row.source_id})
    return out


def to_public(row: Detection, sources: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The API and webhook form of a detection: the detector's object plus delivery state."""
    out = dict(row.payload)
    out.update(
        {
            "id": row.id,
            "seq": row.seq,
            "version": row.version,
            "status": row.status,
            "kind": row.kind,
            "customer_id": row.customer_id,
            "employee_id": row.employee_id,
            "team": row.team,
            "location": row.location,
            "occurred_at": row.occurred_at.isoformat(),
            "incident_id": row.incident_id,
            "outcome": row.outcome,
            "outcome_notes": row.outcome_notes,
            "acked_at": row.acked_at.isoformat() if row.acked_at else None,
            "closed_at": row.closed_at.isoformat() if row.closed_at else None,
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
        }
    )
    if sources is not None:
        out["sources"] = sources
    return out


# ----------------------------------------------------------------------------- outcomes


class TransitionRefused(Exception):
    """The detection's status does not allow this change (the API answers 409)."""

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


def ack(session: Session, detection_id: str, now: datetime | None = None) -> Detection | None:
    """open -> acked (acking an acked detection again changes nothing). No commit."""
    row = session.get(Detection, detection_id, with_for_update=True)
    if row is None:
        return None
    if row.status == CLOSED:
        raise TransitionRefused(
            f"detection {row.id} is closed (outcome {row.outcome}); it cannot be acknowledged",
            row.status,
        )
    if row.status == OPEN:
        row.status = ACKED
        row.acked_at = now or utcnow()
    return row


def record_outcome(
    session: Session,
    detection_id: str,
    outcome: str,
    notes: str | None,
    now: datetime | None = None,
) -> Detection | None:
    """open|acked -> closed with an outcome; the same outcome again is a no-op. No commit."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    row = session.get(Detection, detection_id, with_for_update=True)
    if row is None:
        return None
    if row.status == CLOSED:
        if row.outcome == outcome:
            return row
        raise TransitionRefused(
            f"detection {row.id} is already closed with outcome {row.outcome}", row.status
        )
    now = now or utcnow()
    row.status = CLOSED
    row.outcome = outcome
    row.outcome_notes = notes
    row.closed_at = now
    if row.acked_at is None:
        row.acked_at = now
    return row


def false_positive_report(session: Session, since: datetime | None = None) -> dict[str, Any]:
    """Confirmed false-positive rate per case type and per signal.

    Counted over detections closed with a verdict: ``not_a_complaint`` is a false positive,
    ``recovered``/``not_recovered`` are true ones; ``duplicate`` says nothing about the
    detector and is left out.
    """
    query = select(Detection).where(
        Detection.status == CLOSED,
        Detection.outcome.in_(("recovered", "not_recovered", "not_a_complaint")),
    )
    if since is not None:
        query = query.where(Detection.closed_at >= since)
    by_case: dict[str, list[int]] = {}
    by_signal: dict[str, list[int]] = {}
    names: dict[str, str | None] = {}
    for row in session.scalars(query):
        false_positive = int(row.outcome == "not_a_complaint")
        key = row.case_type_id or "none"
        names[key] = row.case_type_name
        by_case.setdefault(key, [0, 0])
        by_case[key][0] += false_positive
        by_case[key][1] += 1
        signals = {
            str(s.get("name"))
            for s in row.payload.get("signals", []) or []
            if isinstance(s, dict) and s.get("name")
        }
        for name in signals:
            by_signal.setdefault(name, [0, 0])
            by_signal[name][0] += false_positive
            by_signal[name][1] += 1

    def rows(counts: dict[str, list[int]], label: str) -> list[dict[str, Any]]:
        return [
            {
                label: key,
                **({"case_type_name": names.get(key)} if label == "case_type" else {}),
                "confirmed": total,
                "false_positives": fp,
                "false_positive_rate": round(fp / total, 4) if total else None,
            }
            for key, (fp, total) in sorted(counts.items())
        ]

    return {"by_case_type": rows(by_case, "case_type"), "by_signal": rows(by_signal, "signal")}
