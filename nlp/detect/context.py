"""Inputs of the detectors besides the analysis: the customer's history, recent contacts, options.

Storage is the caller's job: the library takes a `CustomerBaseline` and returns the updated
one; it takes the customer's recent contacts and never looks them up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from nlp.taxonomy.schema import Taxonomy


@dataclass(frozen=True)
class RunningStat:
    """Count, mean and sum of squared deviations (Welford), so the std updates in O(1)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @property
    def std(self) -> float:
        """Sample standard deviation (0 below two observations)."""
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0

    def add(self, value: float) -> RunningStat:
        """This stat with one more observation."""
        n = self.n + 1
        delta = value - self.mean
        mean = self.mean + delta / n
        return RunningStat(n, mean, self.m2 + delta * (value - mean))


@dataclass(frozen=True)
class CustomerBaseline:
    """One customer's history across channels, on [-1, 1] (negative .. positive).

    ``sentiment`` tracks the text valence P(positive) - P(negative) of every contact;
    ``score`` tracks the scale-normalised score of contacts that carried one.
    """

    customer_id: str
    sentiment: RunningStat = field(default_factory=RunningStat)
    score: RunningStat = field(default_factory=RunningStat)
    updated_at: datetime | None = None

    def observe(
        self, valence: float, score: float | None, at: datetime | None = None
    ) -> CustomerBaseline:
        """The baseline after one more contact."""
        return replace(
            self,
            sentiment=self.sentiment.add(valence),
            score=self.score.add(score) if score is not None else self.score,
            updated_at=at or self.updated_at,
        )


@dataclass(frozen=True)
class RecentContact:
    """An earlier contact of the same customer (any channel) and the case types it mapped to."""

    item_id: str
    occurred_at: datetime
    case_type_ids: Sequence[str] = ()
    channel: str | None = None


@dataclass(frozen=True)
class DetectOptions:
    """Thresholds and weights of the detectors (defaults documented in nlp/detect/README.md)."""

    complaint_threshold: float = 0.5  # P(complaint) from the head for an explicit complaint
    # With irony, resignation or churn cues a text is explicit only above this head score.
    stated_threshold: float = 0.95
    signal_threshold: float = 0.5  # a signal at or above it makes an unexpressed complaint
    irony_threshold: float = 0.5  # irony head probability that counts as ironic
    min_case_type_confidence: float = 0.4
    max_detections: int = 3
    repeat_window: timedelta = timedelta(days=7)
    baseline_min_history: int = 3
    baseline_min_drop: float = 0.4  # on the [-1, 1] scale
    baseline_z: float = 2.0
    baseline_std_floor: float = 0.15
    default_sla: timedelta = timedelta(hours=24)
    churn_case_type: str = "intent_to_cancel_or_switch"
    repeat_case_type: str = "unresolved_after_contact"
    # Priority: each factor's weight; they sum to 100 so the score is on 0..100.
    weights: Mapping[str, float] = field(
        default_factory=lambda: {
            "severity": 35.0,
            "intensity": 20.0,
            "churn": 20.0,
            "segment_value": 10.0,
            "sla_time_left": 15.0,
        }
    )
    # Value of a customer segment on 0..1; unknown segments get `default_segment_value`.
    segment_values: Mapping[str, float] = field(
        default_factory=lambda: {"vip": 1.0, "business": 0.8, "premium": 0.8}
    )
    default_segment_value: float = 0.3
    # SLA urgency: time left on the SLA as a share of this horizon (0 left -> urgency 1).
    urgency_horizon: timedelta = timedelta(hours=48)


@dataclass(frozen=True)
class DetectionContext:
    """What the detectors need besides the analysis and the item.

    Attributes:
        taxonomy: the taxonomy that mapped the analysis (severity, SLA, routing, ...).
        baseline: the customer's baseline before this contact (None: no history yet).
        recent_contacts: the customer's earlier contacts (the caller picks the window).
        now: the time priorities are computed at (SLA time left); default: the item's time.
        options: thresholds and weights.
    """

    taxonomy: Taxonomy | None = None
    baseline: CustomerBaseline | None = None
    recent_contacts: Sequence[RecentContact] = ()
    now: datetime | None = None
    options: DetectOptions = field(default_factory=DetectOptions)
