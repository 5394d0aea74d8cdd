"""Detections from a call recording's analysis: customer turns as units, turns as evidence.

The recording analysis is the one `workers.call_analysis.summarise_call` builds: ``turns``
(index, start, end, speaker, text and the turn's text analysis), ``customer`` (start/end/
overall pooled sentiment). The peak-end rule adds one call-only signal: the customer's
sentiment at the end of the call is negative.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nlp.detect import cues
from nlp.detect import signals as sig
from nlp.detect.context import DetectionContext
from nlp.detect.detect import Contact, DetectionOutcome, _head_score, evaluate
from nlp.detect.signals import Evidence, Signal, Unit

_LABELS = ("negative", "neutral", "positive")


def turn_evidence(turn: Mapping[str, Any]) -> Evidence:
    """A call turn as evidence: turn index, times, speaker, text."""
    return {
        "turn": int(turn["index"]),
        "start_time": float(turn["start"]),
        "end_time": float(turn["end"]),
        "speaker": str(turn["speaker"]),
        "text": str(turn["text"]),
    }


def _unit(turn: Mapping[str, Any]) -> Unit:
    def locate(start: int, end: int) -> Evidence:
        return {**turn_evidence(turn), "span": [start, end], "match": str(turn["text"])[start:end]}

    return Unit(
        text=str(turn["text"]),
        sentiment=turn["sentiment"]["scores"],
        complaint=_head_score(turn.get("complaint")),
        irony=turn.get("irony"),
        evidence=locate,
        resolved=bool(cues.resolved(str(turn["text"]), turn.get("emotions"))),
    )


def _mean_scores(turns: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    if not turns:
        return {label: 0.0 for label in _LABELS}
    return {
        label: sum(float(t["sentiment"]["scores"].get(label, 0.0)) for t in turns) / len(turns)
        for label in _LABELS
    }


def _case_types(turns: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    best: dict[str, dict[str, Any]] = {}
    for turn in turns:
        for case_type in turn.get("case_types") or []:
            seen = best.get(case_type["id"])
            if seen is None or case_type["confidence"] > seen["confidence"]:
                best[case_type["id"]] = {**case_type, "evidence": []}
    return list(best.values())


def _negative_end(call: Mapping[str, Any], turns: Sequence[Mapping[str, Any]]) -> Signal | None:
    end = (call.get("customer") or {}).get("end")
    if not end or end.get("label") != "negative" or float(end.get("valence", 0.0)) > -0.2:
        return None
    by_index = {int(t["index"]): t for t in turns}
    evidence = [turn_evidence(by_index[i]) for i in end.get("turns", []) if i in by_index]
    value = {"valence": end["valence"], "turns": end.get("turns", [])}
    return sig.signal(sig.NEGATIVE_END, value, 0.5 + 0.4 * abs(float(end["valence"])), evidence)


def detect_call(
    call: Mapping[str, Any], item: Mapping[str, Any], context: DetectionContext
) -> DetectionOutcome:
    """Detect complaints in an analysed call recording.

    Args:
        call: the recording analysis (turns with speaker, start, end, text and scores).
        item: the recording's feedback fields (id, score, scale, customer_id, employee_id,
            occurred_at, segment, journey).
        context: taxonomy, the customer's baseline and recent contacts, options.

    Returns:
        The `complaint` summary, detections with turn evidence, and the updated baseline.
    """
    turns = list(call.get("turns") or [])
    customer = [t for t in turns if t.get("speaker") == "customer"] or turns
    if not customer:
        return evaluate(_empty(call, item), item, context)
    units = [_unit(t) for t in customer]
    scores = ((call.get("customer") or {}).get("overall") or {}).get("scores") or _mean_scores(
        customer
    )
    heads = [u.complaint for u in units if u.complaint is not None]
    peak = max(customer, key=lambda t: float(t["sentiment"]["scores"].get("negative", 0.0)))
    intensities = [float(t["intensity"]) for t in customer if t.get("intensity") is not None]
    mapped = [t for t in customer if "fits_no_case_type" in t]
    case_types = _case_types(customer)
    contact = Contact(
        units=units,
        sentiment=scores,
        complaint=max(heads) if heads else None,
        intensity=max(intensities) if intensities else None,
        case_types=case_types,
        fits_no_case_type=(not case_types) if mapped else None,
        whole=turn_evidence(peak),
        taxonomy=call.get("taxonomy")
        or next((t["taxonomy"] for t in turns if t.get("taxonomy")), None),
        model_versions=call.get("model_versions") or {},
        extra_signals=[s for s in (_negative_end(call, turns),) if s is not None],
    )
    return evaluate(contact, item, context)


def _empty(call: Mapping[str, Any], item: Mapping[str, Any]) -> Contact:
    return Contact(
        units=[],
        sentiment=_mean_scores([]),
        complaint=None,
        intensity=None,
        case_types=[],
        fits_no_case_type=None,
        whole={"item_id": str(item.get("id", ""))},
        taxonomy=call.get("taxonomy"),
        model_versions=call.get("model_versions") or {},
    )
