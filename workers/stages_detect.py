"""The detection stages: `detections.evaluate` after every stored analysis, then
`incidents.evaluate`.

`detections.evaluate` runs the detector (`nlp.detect`, pure functions) on the stored
analysis with the customer's baseline and recent contacts, and stores the detections (merged
per customer and case type), the new baseline, one webhook delivery per subscriber and event,
the incident job and its own job's done in ONE transaction that holds the detections' lock
(see `service.db.repositories.detections`): the detector is arithmetic on stored scores, so
it runs under the lock, and a baseline read and written by two items of one customer at once
cannot lose an update. The evaluation marker makes a re-run a no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from service.config import DetectionSettings
from service.db.repositories import detections, incidents, jobs, webhooks
from service.webhooks import new_message_id
from workers.errors import PermanentStageError
from workers.stages import ClaimedJob, SessionFactory, StageHandler

log = structlog.get_logger(__name__)

DETECTIONS_EVALUATE = detections.EVALUATE_KIND
INCIDENTS_EVALUATE = incidents.EVALUATE_KIND

Announce = Callable[[str, Sequence[str]], None]
"""Announces committed jobs: ``announce(kind, job_ids)`` (Celery: send the tasks)."""


@dataclass(frozen=True)
class DetectorOutput:
    """What the detector made of one analysed item."""

    detections: list[dict[str, Any]]
    baseline: dict[str, Any] | None


class Detector(Protocol):
    """What the stage needs of `nlp.detect`."""

    def prepare(self) -> Any:
        """What `evaluate` needs that may read the database (the active taxonomy), fetched
        before the stage opens its transaction: on SQLite a second connection cannot even
        read while the stage holds the write lock, it would wait for the busy timeout."""
        ...

    def evaluate(
        self,
        analysis: Mapping[str, Any],
        item: Mapping[str, Any],
        baseline: dict[str, Any] | None,
        recent: Sequence[Mapping[str, Any]],
        prepared: Any = None,
    ) -> DetectorOutput: ...

    def merge(self, existing: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]: ...


class NlpDetector:
    """`nlp.detect` behind the `Detector` protocol (imported on first use).

    ``taxonomy`` returns the taxonomy the analyses were mapped with (case-type SLA, routing,
    recovery options); without it detections carry no due time or routing.
    """

    def __init__(self, taxonomy: Callable[[], Any] | None = None) -> None:
        self._taxonomy = taxonomy

    def prepare(self) -> Any:
        """The taxonomy (its source may read the database to see a newly activated one)."""
        return self._taxonomy() if self._taxonomy is not None else None

    def evaluate(
        self,
        analysis: Mapping[str, Any],
        item: Mapping[str, Any],
        baseline: dict[str, Any] | None,
        recent: Sequence[Mapping[str, Any]],
        prepared: Any = None,
    ) -> DetectorOutput:
        from nlp.detect import DetectionContext, analyze_complaint, detect_call

        customer = item.get("customer_id")
        context = DetectionContext(
            taxonomy=prepared,
            baseline=baseline_from_dict(baseline, str(customer)) if customer else None,
            recent_contacts=tuple(_recent_contact(c) for c in recent),
        )
        if "turns" in analysis:
            outcome = detect_call(analysis, item, context)
        else:
            outcome = analyze_complaint(analysis, item, context)
        state = baseline_to_dict(outcome.baseline) if outcome.baseline is not None else None
        return DetectorOutput([dict(d) for d in outcome.detections], state)

    def merge(self, existing: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        from nlp.detect import merge

        return dict(merge(existing, new))


def baseline_to_dict(baseline: Any) -> dict[str, Any]:
    """`nlp.detect.CustomerBaseline` as JSON for the customer_baselines table."""
    return {
        "customer_id": baseline.customer_id,
        "sentiment": [baseline.sentiment.n, baseline.sentiment.mean, baseline.sentiment.m2],
        "score": [baseline.score.n, baseline.score.mean, baseline.score.m2],
        "updated_at": baseline.updated_at.isoformat() if baseline.updated_at else None,
    }


def baseline_from_dict(state: dict[str, Any] | None, customer_id: str) -> Any:
    """The stored JSON back as a `CustomerBaseline` (None when there is no history)."""
    if not state:
        return None
    from nlp.detect import CustomerBaseline, RunningStat

    updated = state.get("updated_at")
    return CustomerBaseline(
        customer_id=str(state.get("customer_id") or customer_id),
        sentiment=RunningStat(*state.get("sentiment", (0, 0.0, 0.0))),
        score=RunningStat(*state.get("score", (0, 0.0, 0.0))),
        updated_at=datetime.fromisoformat(updated) if updated else None,
    )


def _recent_contact(contact: Mapping[str, Any]) -> Any:
    from nlp.detect import RecentContact

    analysis = contact.get("analysis") or {}
    return RecentContact(
        str(contact["id"]),
        datetime.fromisoformat(str(contact["occurred_at"])),
        [str(c["id"]) for c in analysis.get("case_types") or [] if "id" in c],
        contact.get("channel"),
    )


def runtime_taxonomy(runtime: Any) -> Callable[[], Any]:
    """The taxonomy of the analyzer's detection stage (loads the analyzer on first use)."""

    def current() -> Any:
        from workers.detection import FileDetection

        found = FileDetection.for_analyzer(runtime.load())
        return found.taxonomy if found is not None else None

    return current


class DetectionsEvaluateHandler:
    """`detections.evaluate`: an analysed item's detections stored once, merged, pushed."""

    def __init__(
        self,
        detector: Detector,
        options: DetectionSettings,
        announce: Announce | None = None,
    ) -> None:
        self._detector = detector
        self._options = options
        self._announce = announce

    def __call__(self, session_factory: SessionFactory, job: ClaimedJob) -> None:
        delivery_jobs: list[str] = []
        incident_job: str | None = None
        prepared = self._detector.prepare()  # before the transaction (see Detector.prepare)
        with session_factory() as session:
            if detections.already_evaluated(session, job.subject_id):
                jobs.finish(session, job.id)
                return
            detections.lock(session)
            # Checked again under the lock: a concurrent run may have committed meanwhile.
            if detections.already_evaluated(session, job.subject_id):
                jobs.finish(session, job.id)
                return
            source = detections.load_source(session, job.subject_id)
            if source is None:
                raise PermanentStageError(f"no analysed item or call with id {job.subject_id}")
            baseline = None
            recent: list[dict[str, Any]] = []
            if source.customer_id is not None:
                baseline = detections.get_baseline(session, source.customer_id)
                recent = detections.recent_contacts(
                    session,
                    source.customer_id,
                    source,
                    self._options.recent_contacts_days,
                    self._options.recent_contacts_limit,
                )
            output = self._detector.evaluate(
                source.analysis, source.item, baseline, recent, prepared
            )
            stored = detections.store_evaluation(
                session,
                source,
                output.detections,
                self._detector.merge,
                timedelta(hours=self._options.merge_window_hours),
            )
            if source.customer_id is not None and output.baseline is not None:
                detections.save_baseline(session, source.customer_id, output.baseline)
            if stored.events:
                sources = detections.sources_of(session, [d.id for d, _ in stored.events])
                delivery_jobs = webhooks.enqueue_for_events(
                    session,
                    [(d, e, detections.to_public(d, sources[d.id])) for d, e in stored.events],
                    new_message_id,
                )
                incident_job = jobs.enqueue(session, INCIDENTS_EVALUATE, job.subject_id).id
            jobs.mark_done(session, job.id)
            session.commit()
        log.info(
            "detections_stored",
            subject_id=job.subject_id,
            events=len(stored.events),
            deliveries=len(delivery_jobs),
        )
        self._notify(webhooks.DELIVER_KIND, delivery_jobs)
        if incident_job is not None:
            self._notify(INCIDENTS_EVALUATE, [incident_job])

    def _notify(self, kind: str, job_ids: list[str]) -> None:
        if self._announce is None or not job_ids:
            return
        try:
            self._announce(kind, job_ids)
        except Exception as error:  # committed: the sweeper announces them later
            log.warning("announce_failed", kind=kind, error=repr(error))


class IncidentsEvaluateHandler:
    """`incidents.evaluate`: spikes in the windows of an item's detections become incidents."""

    def __init__(self, options: DetectionSettings, announce: Announce | None = None) -> None:
        self._options = options
        self._announce = announce

    def __call__(self, session_factory: SessionFactory, job: ClaimedJob) -> None:
        with session_factory() as session:
            detections.lock(session)
            changed = incidents.evaluate_for_source(
                session, job.subject_id, incidents.SpikeRule.from_settings(self._options)
            )
            delivery_jobs: list[str] = []
            if changed:
                sources = detections.sources_of(session, [d.id for d in changed])
                delivery_jobs = webhooks.enqueue_for_events(
                    session,
                    [
                        (d, detections.UPDATED_EVENT, detections.to_public(d, sources[d.id]))
                        for d in changed
                    ],
                    new_message_id,
                )
            jobs.mark_done(session, job.id)
            session.commit()
        if changed:
            log.info("incident_detections", subject_id=job.subject_id, detections=len(changed))
        if self._announce is not None and delivery_jobs:
            try:
                self._announce(webhooks.DELIVER_KIND, delivery_jobs)
            except Exception as error:  # committed: the sweeper announces them later
                log.warning("announce_failed", error=repr(error))


def build_detection_handlers(
    options: DetectionSettings,
    detector: Detector | None = None,
    announce: Announce | None = None,
    runtime: Any = None,
) -> dict[str, StageHandler]:
    """The detection stage handlers, keyed by job kind (= Celery task name).

    ``runtime`` (an `AnalysisRuntime`) lends its taxonomy to the default `NlpDetector`.
    """
    if detector is None:
        detector = NlpDetector(runtime_taxonomy(runtime) if runtime is not None else None)
    return {
        DETECTIONS_EVALUATE: DetectionsEvaluateHandler(detector, options, announce),
        INCIDENTS_EVALUATE: IncidentsEvaluateHandler(options, announce),
    }
