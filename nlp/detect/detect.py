"""Detections from one analysed contact: explicit and unexpressed complaints, with priority.

Pure functions: everything comes in as arguments (the analysis, the feedback item and a
`DetectionContext` holding the taxonomy, the customer's baseline and recent contacts) and
goes out as plain dicts; storage, ids and delivery are the service's job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nlp.detect import cues
from nlp.detect import signals as sig
from nlp.detect.context import CustomerBaseline, DetectionContext, DetectOptions
from nlp.detect.priority import as_utc, first_contact_sla, iso, priority
from nlp.detect.scores import below_baseline, contradiction, normalise_score, valence
from nlp.detect.signals import Evidence, Signal, Unit
from nlp.taxonomy.schema import SEVERITY_NAMES

EXPLICIT, UNEXPRESSED = "explicit", "unexpressed"
_IMPLICIT = (sig.IRONY, sig.RESIGNATION, sig.CHURN)


@dataclass(frozen=True)
class DetectionOutcome:
    """What one contact yields: the analysis-level summary, detections, the updated baseline."""

    complaint: dict[str, Any]
    detections: list[dict[str, Any]]
    baseline: CustomerBaseline | None


@dataclass(frozen=True)
class Contact:
    """One contact reduced to what the detectors read (a text item or a call)."""

    units: Sequence[Unit]
    sentiment: Mapping[str, float]  # the whole contact's (or the customer side's)
    complaint: float | None  # P(complaint) of the whole contact from the complaint head
    intensity: float | None
    case_types: Sequence[Mapping[str, Any]]
    fits_no_case_type: bool | None
    whole: Evidence  # evidence pointing at the whole contact
    taxonomy: Mapping[str, Any] | None
    model_versions: Mapping[str, str]
    extra_signals: Sequence[Signal] = ()


def _head_score(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, Mapping) and isinstance(value.get("head_score"), int | float):
        return float(value["head_score"])
    return None


def text_units(analysis: Mapping[str, Any], text: str, item_id: str) -> list[Unit]:
    """A text's sentences as units, each locating spans in the whole text."""
    units: list[Unit] = []
    sentences = analysis.get("sentences") or [
        {"start": 0, "end": len(text), "text": text, "sentiment": analysis["sentiment"]}
    ]
    for sentence in sentences:
        offset = int(sentence["start"])
        sentence_text = str(sentence.get("text", text[offset : sentence["end"]]))

        def locate(
            start: int, end: int, offset: int = offset, body: str = sentence_text
        ) -> Evidence:
            return {
                "item_id": item_id,
                "start": offset + start,
                "end": offset + end,
                "text": body[start:end],
            }

        units.append(
            Unit(
                text=sentence_text,
                sentiment=sentence["sentiment"]["scores"],
                complaint=_head_score(sentence.get("complaint")),
                irony=sentence.get("irony"),
                evidence=locate,
                resolved=bool(cues.resolved(sentence_text, sentence.get("emotions"))),
            )
        )
    return units


def text_contact(analysis: Mapping[str, Any], item: Mapping[str, Any]) -> Contact:
    """A text item's analysis as a contact."""
    text = str(item.get("text", ""))
    item_id = str(item.get("id", analysis.get("id", "")))
    return Contact(
        units=text_units(analysis, text, item_id),
        sentiment=analysis["sentiment"]["scores"],
        complaint=_head_score(analysis.get("complaint")),
        intensity=analysis.get("intensity"),
        case_types=analysis.get("case_types") or [],
        fits_no_case_type=analysis.get("fits_no_case_type"),
        whole={"item_id": item_id, "start": 0, "end": len(text), "text": text},
        taxonomy=analysis.get("taxonomy"),
        model_versions=analysis.get("model_versions") or {},
    )


def analyze_complaint(
    analysis: Mapping[str, Any], item: Mapping[str, Any], context: DetectionContext
) -> DetectionOutcome:
    """Detect complaints in one analysed text item.

    Args:
        analysis: the analyzer's contract dict (sentiment, sentences; optionally the complaint
            head's score, irony, intensity, case_types, fits_no_case_type, taxonomy).
        item: the feedback item (text, score, scale, customer_id, employee_id, occurred_at or
            received_at, segment, journey, channel).
        context: taxonomy, the customer's baseline and recent contacts, options.

    Returns:
        The `complaint` summary, the detections, and the customer's updated baseline.
    """
    return evaluate(text_contact(analysis, item), item, context)


def detect(
    analysis: Mapping[str, Any], item: Mapping[str, Any], context: DetectionContext
) -> list[dict[str, Any]]:
    """Zero or more detections for one analysed text item (see `analyze_complaint`)."""
    return analyze_complaint(analysis, item, context).detections


def _case_types(contact: Contact, options: DetectOptions) -> list[dict[str, Any]]:
    found = [
        {
            "id": str(c["id"]),
            "name": str(c.get("name", c["id"])),
            "confidence": round(float(c.get("confidence", 0.0)), 4),
            "evidence": list(c.get("evidence") or []),
        }
        for c in contact.case_types
        if float(c.get("confidence", 0.0)) >= options.min_case_type_confidence
    ]
    return sorted(found, key=lambda c: -c["confidence"])


def _repeat(
    case_type_ids: Sequence[str], at: datetime, context: DetectionContext, whole: Evidence
) -> Signal | None:
    window = context.options.repeat_window
    earlier = [
        c
        for c in context.recent_contacts
        if timedelta_ok(at - as_utc_required(c.occurred_at), window)
        and set(c.case_type_ids) & set(case_type_ids)
    ]
    if not earlier:
        return None
    value = {
        "contacts": len(earlier),
        "case_types": sorted({t for c in earlier for t in c.case_type_ids} & set(case_type_ids)),
        "item_ids": [c.item_id for c in earlier],
        "window_hours": round(window.total_seconds() / 3600, 1),
    }
    return sig.signal(sig.REPEAT_CONTACT, value, min(0.9, 0.6 + 0.1 * (len(earlier) - 1)), [whole])


def timedelta_ok(delta: Any, window: Any) -> bool:
    """An earlier contact (delta >= 0) no older than the window."""
    return bool(delta.total_seconds() >= 0 and delta <= window)


def as_utc_required(value: Any) -> datetime:
    """`as_utc` for a value that must be present."""
    moment = as_utc(value)
    if moment is None:
        raise ValueError("a recent contact needs occurred_at")
    return moment


def collect_signals(
    contact: Contact, item: Mapping[str, Any], context: DetectionContext, at: datetime
) -> list[Signal]:
    """Every unexpressed-complaint signal that fires on this contact."""
    options = context.options
    units = contact.units
    found: list[Signal | None] = [
        sig.irony(units, options.irony_threshold),
        sig.resignation(units),
        sig.churn(units),
        sig.friction(units),
        contradiction(
            item.get("score"),
            item.get("scale"),
            contact.sentiment,
            contact.complaint,
            [contact.whole],
        ),
        below_baseline(
            context.baseline,
            valence(contact.sentiment),
            normalise_score(item.get("score"), item.get("scale")),
            options,
            [contact.whole],
        ),
    ]
    case_ids = [c["id"] for c in _case_types(contact, options)]
    if case_ids:
        found.append(_repeat(case_ids, at, context, contact.whole))
    # Negative words about a problem put right, with thanks, are no emerging issue: the
    # sentiment head reads "fixed my problem" as negative; the complaint head still counts.
    negative_units = [u for u in units if u.negative >= options.complaint_threshold]
    thanks_only = bool(negative_units) and all(u.resolved for u in negative_units)
    negative = 0.0 if thanks_only else float(contact.sentiment.get("negative", 0.0))
    head = contact.complaint or 0.0
    if contact.fits_no_case_type and max(head, negative) >= options.complaint_threshold:
        found.append(sig.signal(sig.EMERGING, True, max(head, negative), [contact.whole]))
    found += list(contact.extra_signals)
    return [s for s in found if s is not None]


def summary(contact: Contact, signals: Sequence[Signal], options: DetectOptions) -> dict[str, Any]:
    """The analysis-level `complaint`: score, explicit, unexpressed and the signals."""
    head = contact.complaint
    # Irony, resignation and churn talk around the problem: a text carried by them is an
    # unexpressed complaint unless the head finds the problem stated outright.
    implicit = any(
        s["name"] in _IMPLICIT and s["confidence"] >= options.signal_threshold for s in signals
    )
    stated = head is not None and head >= options.complaint_threshold
    explicit = stated and not (implicit and (head or 0.0) < options.stated_threshold)
    strong = [s for s in signals if s["confidence"] >= options.signal_threshold]
    unexpressed = bool(strong) and not explicit
    score = max([head or 0.0] + [s["confidence"] for s in strong])
    listed = list(signals)
    if head is not None:
        listed = [sig.signal(sig.COMPLAINT_HEAD, round(head, 4), head, []), *listed]
    return {
        "score": round(score, 4),
        "explicit": explicit,
        "unexpressed": unexpressed,
        "signals": listed,
        "head_score": None if head is None else round(head, 4),
    }


def _noisy_or(values: Sequence[float]) -> float:
    remaining = 1.0
    for value in values:
        remaining *= 1.0 - min(max(value, 0.0), 1.0)
    return min(0.99, 1.0 - remaining)


def _evidence(
    contact: Contact,
    signals: Sequence[Signal],
    case_type: Mapping[str, Any] | None,
    explicit: bool,
    options: DetectOptions,
) -> list[Evidence]:
    out: list[Evidence] = []
    if explicit:
        ranked = sorted(contact.units, key=lambda u: -max(u.complaint or 0.0, u.negative))
        for unit in ranked[:3]:
            if max(unit.complaint or 0.0, unit.negative) >= options.complaint_threshold:
                out.append({**unit.evidence(0, len(unit.text)), "source": sig.COMPLAINT_HEAD})
    if case_type is not None:
        out += [
            {**contact.whole, **e, "source": e.get("source", "case_type")}
            for e in case_type["evidence"]
            if "start" in e and "turn" not in contact.whole
        ]
    for s in signals:
        out += [{**e, "source": s["name"]} for e in s["evidence"]]
    return dedupe_evidence(out)


def dedupe_evidence(evidence: Sequence[Evidence]) -> list[Evidence]:
    """Evidence without repeats (same item and span, or same turn), first source kept."""
    seen: set[tuple[Any, ...]] = set()
    out: list[Evidence] = []
    for e in evidence:
        key = (e.get("item_id"), e.get("turn"), e.get("start"), e.get("end"))
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def evaluate(
    contact: Contact, item: Mapping[str, Any], context: DetectionContext
) -> DetectionOutcome:
    """Signals, summary, detections and the updated baseline of one contact."""
    options = context.options
    at = (
        as_utc(item.get("occurred_at"))
        or as_utc(item.get("received_at"))
        or context.now
        or datetime.now(UTC)
    )
    signals = collect_signals(contact, item, context, at)
    complaint = summary(contact, signals, options)
    customer_id = item.get("customer_id")
    baseline = None
    if customer_id is not None:
        start = context.baseline or CustomerBaseline(str(customer_id))
        baseline = start.observe(
            valence(contact.sentiment), normalise_score(item.get("score"), item.get("scale")), at
        )
    detections: list[dict[str, Any]] = []
    if complaint["explicit"] or complaint["unexpressed"]:
        case_types: list[dict[str, Any] | None] = list(_case_types(contact, options))
        names = {s["name"] for s in signals}
        if not case_types and sig.CHURN in names:
            case_types = [_known(context, options.churn_case_type, 0.0)]
        case_types = case_types[: options.max_detections] or [None]
        for case_type in case_types:
            detections.append(_detection(contact, item, context, signals, complaint, case_type, at))
    return DetectionOutcome(complaint, detections, baseline)


def _known(
    context: DetectionContext, case_type_id: str, confidence: float
) -> dict[str, Any] | None:
    if context.taxonomy is None:
        return None
    try:
        found = context.taxonomy.get(case_type_id)
    except KeyError:
        return None
    return {"id": found.id, "name": found.name, "confidence": confidence, "evidence": []}


def _detection(
    contact: Contact,
    item: Mapping[str, Any],
    context: DetectionContext,
    signals: Sequence[Signal],
    complaint: Mapping[str, Any],
    case_type: Mapping[str, Any] | None,
    at: datetime,
) -> dict[str, Any]:
    options = context.options
    taxonomy = context.taxonomy
    handling: dict[str, Any] = {}
    if taxonomy is not None and case_type is not None:
        try:
            handling = taxonomy.handling(case_type["id"])
        except KeyError:
            handling = {}
    explicit = bool(complaint["explicit"])
    strong = [s for s in signals if s["confidence"] >= options.signal_threshold]
    head = complaint.get("head_score") or 0.0
    confidence = _noisy_or(([head] if explicit else []) + [s["confidence"] for s in strong])
    sla = first_contact_sla(
        taxonomy,
        case_type["id"] if case_type else None,
        segment=item.get("segment"),
        journey=item.get("journey"),
        default=options.default_sla,
    )
    due_by = at + sla
    now = context.now or at
    churn = max([s["confidence"] for s in signals if s["name"] == sig.CHURN], default=0.0)
    negative = max(
        [u.negative for u in contact.units] + [float(contact.sentiment.get("negative", 0.0))]
    )
    intensity = contact.intensity if contact.intensity is not None else negative
    severity = handling.get("severity") or (
        SEVERITY_NAMES[taxonomy.defaults.severity - 1] if taxonomy is not None else "medium"
    )
    routing = handling.get("routing")
    if routing is None and taxonomy is not None and taxonomy.defaults.routing is not None:
        routing = taxonomy.defaults.routing.model_dump()
    listed = (
        list(complaint["signals"])
        if explicit
        else [s for s in complaint["signals"] if s["name"] != sig.COMPLAINT_HEAD]
    )
    taxonomy_ref = (
        dict(contact.taxonomy)
        if contact.taxonomy
        else ({"name": taxonomy.name, "version": taxonomy.version} if taxonomy else None)
    )
    return {
        "case_type": None
        if case_type is None
        else {
            "id": case_type["id"],
            "name": case_type["name"],
            "confidence": case_type["confidence"],
        },
        "kind": EXPLICIT if explicit else UNEXPRESSED,
        "signals": listed,
        "confidence": round(confidence, 4),
        "evidence": _evidence(contact, signals, case_type, explicit, options),
        "priority": priority(
            severity=str(severity),
            intensity=float(intensity),
            churn=churn,
            segment=item.get("segment"),
            due_by=due_by,
            now=now,
            options=options,
        ),
        "severity": severity,
        "occurred_at": iso(at),
        "last_occurred_at": iso(at),
        "due_by": iso(due_by),
        "first_contact_sla_hours": round(sla.total_seconds() / 3600, 2),
        "routing": routing,
        "recovery_options": list(handling.get("recovery_options") or []),
        "checklist": list(handling.get("checklist") or []),
        "customer_id": item.get("customer_id"),
        "employee_id": item.get("employee_id"),
        "channel": item.get("channel"),
        "item_ids": [str(item.get("id", contact.whole.get("item_id", "")))],
        "model_versions": dict(contact.model_versions),
        "taxonomy": taxonomy_ref,
    }
