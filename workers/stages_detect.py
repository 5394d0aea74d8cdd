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
from datetime import timedelta
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

    def evaluate(
        self,
        analysis: Mapping[str, Any],
        item: Mapping[str, Any],
        baseline: dict[str, Any] | None,
        recent: Sequence[Mapping[str, Any]],
    ) -> DetectorOutput: ...

    def merge(self, existing: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]: ...


class NlpDetector:
    """`nlp.detect` behind the `Detector` protocol (imported on first use)."""

    def evaluate(
        self,
        analysis: Mapping[str, Any],
        item: Mapping[str, Any],
        baseline: dict[str, Any] | None,
        recent: Sequence[Mapping[str, Any]],
    ) -> DetectorOutput:
        from nlp import detect as lib

        state = lib.CustomerBaseline.from_dict(baseline) if baseline else None
        context = lib.DetectContext(baseline=state, recent_contacts=list(recent))
        found = lib.detect(dict(analysis), dict(item), context)
        updated = lib.update_baseline(state, dict(analysis), dict(item))
        return DetectorOutput([dict(d) for d in found], updated.to_dict() if updated else None)

    def merge(self, existing: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        from nlp import detect as lib

        return dict(lib.merge(existing, new))


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
                    session, source.customer_id, source, self._options.recent_contacts_days,
                    self._options.recent_contacts_limit,
                )
            output = self._detector.evaluate(source.analysis, source.item, baseline, recent)
            stored = detections.store_evaluation(
                session, source, output.detections, self._detector.merge,
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
        log.info("detections_stored", subject_id=job.subject_id, events=len(stored.events),
                 deliveries=len(delivery_jobs))
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
                    [(d, detections.UPDATED_EVENT, detections.to_public(d, sources[d.id]))
                     for d in changed],
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
) -> dict[str, StageHandler]:
    """The detection stage handlers, keyed by job kind (= Celery task name)."""
    return {
        DETECTIONS_EVALUATE: DetectionsEvaluateHandler(detector or NlpDetector(), options,
                                                       announce),
        INCIDENTS_EVALUATE: IncidentsEvaluateHandler(options, announce),
    }
