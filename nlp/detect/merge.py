"""Several signals about the same customer and case type within a window: one detection."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from nlp.detect.detect import EXPLICIT, UNEXPRESSED, dedupe_evidence
from nlp.detect.priority import as_utc

DEFAULT_WINDOW = timedelta(days=7)


def merge_key(detection: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(customer_id, case type id): detections with equal keys may merge."""
    case_type = detection.get("case_type") or {}
    return detection.get("customer_id"), case_type.get("id")


def same_case(
    existing: Mapping[str, Any], new: Mapping[str, Any], window: timedelta = DEFAULT_WINDOW
) -> bool:
    """True when `new` should merge into `existing`: same known customer and case type, and
    `new` happened within `window` of the existing detection's latest contact."""
    customer, _ = merge_key(existing)
    if customer is None or merge_key(existing) != merge_key(new):
        return False
    last = as_utc(existing.get("last_occurred_at") or existing.get("occurred_at"))
    at = as_utc(new.get("occurred_at"))
    if last is None or at is None:
        return False
    return abs(at - last) <= window


def _signals(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_name: dict[str, dict[str, Any]] = {}
    for s in a + b:
        seen = by_name.get(s["name"])
        if seen is None:
            by_name[s["name"]] = {**s, "count": s.get("count", 1), "evidence": list(s["evidence"])}
            continue
        stronger = s if s["confidence"] > seen["confidence"] else seen
        by_name[s["name"]] = {
            **stronger,
            "count": seen.get("count", 1) + s.get("count", 1),
            "evidence": dedupe_evidence(seen["evidence"] + list(s["evidence"])),
        }
    return list(by_name.values())


def _priority(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    # The merged case is as urgent as its most urgent part, factor by factor.
    factors: dict[str, dict[str, Any]] = {}
    for name, fa in a["factors"].items():
        fb = b["factors"].get(name, fa)
        pick = fb if fb["value"] > fa["value"] else fa
        factors[name] = {**pick, "contribution": round(pick["value"] * pick["weight"], 1)}
    return {
        "score": min(100.0, round(sum(f["contribution"] for f in factors.values()), 1)),
        "factors": factors,
    }


def merge(existing: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """One detection from an existing one and a new one about the same customer and case type.

    Evidence and item ids are united, signals are united by name (the stronger kept, with a
    count and all evidence), confidence combines as a noisy-or, the kind is explicit when
    either is, the earliest due time and the most urgent priority factors win. Identity
    fields (case type, customer, routing, ...) stay the existing detection's.

    Args:
        existing: the stored detection.
        new: a detection from a later contact (check `same_case` first).

    Returns:
        The merged detection (a new dict; the inputs are not changed).
    """
    merged = dict(existing)
    merged["kind"] = EXPLICIT if EXPLICIT in (existing["kind"], new["kind"]) else UNEXPRESSED
    merged["signals"] = _signals(list(existing["signals"]), list(new["signals"]))
    merged["evidence"] = dedupe_evidence(list(existing["evidence"]) + list(new["evidence"]))
    merged["confidence"] = round(
        min(0.99, 1 - (1 - existing["confidence"]) * (1 - new["confidence"])), 4
    )
    merged["item_ids"] = list(dict.fromkeys(list(existing["item_ids"]) + list(new["item_ids"])))
    times = [as_utc(d.get(k)) for d in (existing, new) for k in ("occurred_at", "last_occurred_at")]
    known = [t for t in times if t is not None]
    if known:
        merged["occurred_at"] = min(known).isoformat().replace("+00:00", "Z")
        merged["last_occurred_at"] = max(known).isoformat().replace("+00:00", "Z")
    dues = [as_utc(d.get("due_by")) for d in (existing, new)]
    due = [d for d in dues if d is not None]
    if due:
        merged["due_by"] = min(due).isoformat().replace("+00:00", "Z")
    merged["priority"] = _priority(existing["priority"], new["priority"])
    merged["model_versions"] = dict(
        new.get("model_versions") or existing.get("model_versions") or {}
    )
    return merged
