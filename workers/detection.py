"""Complaint detection wired into the analysis: a text-only stage, and the item-aware pass.

The analyzer stage sees only the text (no score, customer or time), so it gives every
analysis its `complaint` summary and text-only detections; callers that hold the feedback
item (the CLI, the feedback stage) re-run `detect_items` with the item's fields, the
customer's baseline and recent contacts, which replaces both fields.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any, Protocol

from nlp.analyzer import Analysis
from nlp.detect import CustomerBaseline, DetectionContext, RecentContact, analyze_complaint
from nlp.detect.priority import as_utc
from nlp.taxonomy import Taxonomy


class _Source(Protocol):
    def current(self) -> Taxonomy: ...


class DetectionStage:
    """Analyzer stage: `complaint` and `detections` from the text alone."""

    def __init__(self, source: _Source | None) -> None:
        self.source = source

    def taxonomy(self) -> Taxonomy | None:
        """The taxonomy the case types came from (for SLA, routing, ...)."""
        return self.source.current() if self.source is not None else None

    def __call__(self, analyses: Sequence[Analysis]) -> None:
        context = DetectionContext(taxonomy=self.taxonomy())
        for analysis in analyses:
            item = {"id": analysis.result["id"], "text": analysis.text}
            outcome = analyze_complaint(analysis.result, item, context)
            analysis.result["complaint"] = outcome.complaint
            analysis.result["detections"] = outcome.detections


def detect_items(
    results: Sequence[MutableMapping[str, Any]],
    items: Sequence[Mapping[str, Any]],
    taxonomy: Taxonomy | None,
    baselines: MutableMapping[str, CustomerBaseline],
    recent: MutableMapping[str, list[RecentContact]],
) -> None:
    """Re-run detection with each item's fields, in order, updating baselines and contacts.

    Args:
        results: analyses (changed in place: `complaint`, `detections`).
        items: the feedback items, same order (text, score, scale, customer_id, ...).
        taxonomy: the taxonomy that mapped the case types.
        baselines: per customer id, updated with each contact.
        recent: per customer id, the earlier contacts (appended to).
    """
    for result, item in zip(results, items, strict=True):
        customer = item.get("customer_id")
        context = DetectionContext(
            taxonomy=taxonomy,
            baseline=baselines.get(customer) if customer else None,
            recent_contacts=tuple(recent.get(customer, ())) if customer else (),
        )
        outcome = analyze_complaint(result, item, context)
        result["complaint"] = outcome.complaint
        result["detections"] = outcome.detections
        if customer and outcome.baseline is not None:
            baselines[customer] = outcome.baseline
            at = as_utc(item.get("occurred_at")) or outcome.baseline.updated_at
            ids = [c["id"] for c in result.get("case_types") or []]
            if at is not None:
                recent.setdefault(customer, []).append(
                    RecentContact(str(item.get("id", "")), at, ids, item.get("channel"))
                )


class FileDetection:
    """Item-aware detection across one input file: baselines and contacts per customer."""

    def __init__(self, taxonomy: Taxonomy | None) -> None:
        self.taxonomy = taxonomy
        self.baselines: dict[str, CustomerBaseline] = {}
        self.recent: dict[str, list[RecentContact]] = {}

    @classmethod
    def for_analyzer(cls, analyzer: Any) -> FileDetection | None:
        """One for an analyzer with a detection stage (None without one)."""
        stage = next(
            (s for s in getattr(analyzer, "stages", ()) if isinstance(s, DetectionStage)), None
        )
        return cls(stage.taxonomy()) if stage is not None else None

    def run(
        self, results: Sequence[MutableMapping[str, Any]], items: Sequence[Mapping[str, Any]]
    ) -> None:
        """Detections of a batch, after the earlier batches (rows in file order)."""
        detect_items(results, items, self.taxonomy, self.baselines, self.recent)
