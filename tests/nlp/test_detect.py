"""Complaint detection on texts written for the purpose, with the real encoder and heads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import numpy as np
import pytest

from nlp.analyzer import Analysis, TextAnalyzer
from nlp.detect import (
    CustomerBaseline,
    DetectionContext,
    RecentContact,
    RunningStat,
    analyze_complaint,
    cues,
    detect,
)
from nlp.encoder import Encoder
from nlp.heads import load_heads
from nlp.sentences import SentenceSplitter
from nlp.taxonomy import MapInput, Taxonomy, TaxonomyStore, load_taxonomy
from tests.nlp.conftest import HEADS_DIR, REPO

DEFAULT = REPO / "taxonomies" / "service_recovery.yaml"
AT = "2025-03-04T10:00:00Z"


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy(DEFAULT)


@pytest.fixture(scope="module")
def mapped_analyzer(
    encoder: Encoder, splitter: SentenceSplitter, taxonomy: Taxonomy
) -> TextAnalyzer:
    """The committed heads plus the default taxonomy's mapping, as the workers wire them."""
    store = TaxonomyStore(lambda texts: np.stack([e.text_unit for e in encoder.encode(texts)]))
    mapper = store.mapper_for(taxonomy)

    def map_stage(analyses: Sequence[Analysis]) -> None:
        found = mapper.map_batch(
            [
                MapInput(
                    a.text,
                    a.encoding.text_unit,
                    list(a.spans),
                    a.encoding.span_units if len(a.spans) else None,
                )
                for a in analyses
            ]
        )
        for analysis, result in zip(analyses, found, strict=True):
            analysis.result.update(result)

    return TextAnalyzer(
        encoder=encoder, splitter=splitter, heads=load_heads(HEADS_DIR), stages=(map_stage,)
    )


@pytest.fixture(scope="module")
def analyse(mapped_analyzer: TextAnalyzer) -> Any:
    cache: dict[str, dict[str, Any]] = {}

    def run(text: str) -> dict[str, Any]:
        if text not in cache:
            cache[text] = mapped_analyzer.analyze([{"id": "t", "text": text}])[0]
        return cache[text]

    return run


def _outcome(analyse: Any, taxonomy: Taxonomy, text: str, **fields: Any) -> Any:
    context_fields = {
        k: fields.pop(k) for k in ("baseline", "recent_contacts", "now") if k in fields
    }
    item = {"id": "t", "text": text, "occurred_at": AT, "customer_id": "c1", **fields}
    return analyze_complaint(
        analyse(text), item, DetectionContext(taxonomy=taxonomy, **context_fields)
    )


def _signal_names(outcome: Any) -> set[str]:
    return {s["name"] for s in outcome.complaint["signals"] if s["confidence"] >= 0.5}


class TestSignals:
    def test_sarcasm_is_an_unexpressed_ironic_complaint(
        self, analyse: Any, taxonomy: Taxonomy
    ) -> None:
        """Polite words over a bad situation: irony, unexpressed, with the cue as evidence."""
        out = _outcome(analyse, taxonomy, "Great, another hour on hold. Just perfect.")
        assert "irony" in _signal_names(out)
        assert out.complaint["unexpressed"]
        assert not out.complaint["explicit"]
        assert out.detections
        assert out.detections[0]["kind"] == "unexpressed"
        texts = {e["text"].lower() for e in out.detections[0]["evidence"]}
        assert "on hold" in texts

    def test_sincere_praise_is_not_ironic(self, analyse: Any, taxonomy: Taxonomy) -> None:
        """The same words of praise without a bad situation raise nothing."""
        out = _outcome(
            analyse, taxonomy, "Great service, the agent fixed it in five minutes. Just perfect."
        )
        assert "irony" not in _signal_names(out)
        assert out.detections == []

    @pytest.mark.parametrize(
        "text",
        [
            "Thanks for fixing my issue so fast!",
            "My refund arrived today, thanks for sorting it out.",
        ],
    )
    def test_problem_put_right_with_thanks_raises_nothing(
        self, analyse: Any, taxonomy: Taxonomy, text: str
    ) -> None:
        """Thanks for a problem put right is no sarcasm and no emerging issue.

        The irony head reads both as ironic (0.93, 0.77) and the sentiment head reads the
        first as negative; the resolution phrase with gratitude heard marks them sincere.
        """
        out = _outcome(analyse, taxonomy, text)
        assert "irony" not in _signal_names(out)
        assert "emerging_issue" not in _signal_names(out)
        assert out.detections == []

    def test_problem_claimed_fixed_but_not_is_still_a_complaint(
        self, analyse: Any, taxonomy: Taxonomy
    ) -> None:
        """A resolution word in an upset text does not hide the complaint."""
        for text in (
            "They said it was fixed but it still doesn't work.",
            "My replacement arrived broken as well, this is ridiculous.",
        ):
            out = _outcome(analyse, taxonomy, text)
            assert out.detections, text

    def test_resignation(self, analyse: Any, taxonomy: Taxonomy) -> None:
        """Giving up is an unexpressed complaint."""
        out = _outcome(analyse, taxonomy, "Never mind, forget it.")
        assert "resignation" in _signal_names(out)
        assert out.detections
        assert out.detections[0]["kind"] == "unexpressed"

    def test_no_resignation_in_a_neutral_request(self, analyse: Any, taxonomy: Taxonomy) -> None:
        """A plain request has no resignation and no detection."""
        out = _outcome(analyse, taxonomy, "Could you send me a copy of my last invoice please?")
        assert "resignation" not in _signal_names(out)
        assert out.detections == []

    def test_churn_intent(self, analyse: Any, taxonomy: Taxonomy) -> None:
        """Switching away is churn, weighed in the priority."""
        out = _outcome(analyse, taxonomy, "I'm switching to another bank.")
        assert "churn_intent" in _signal_names(out)
        detection = out.detections[0]
        assert detection["priority"]["factors"]["churn"]["contribution"] > 0

    def test_no_churn_when_staying(self, analyse: Any, taxonomy: Taxonomy) -> None:
        """A happy customer renewing is no churn."""
        out = _outcome(analyse, taxonomy, "Happy to renew my plan for another year, thanks!")
        assert "churn_intent" not in _signal_names(out)
        assert out.detections == []

    def test_effort_and_friction(self, analyse: Any, taxonomy: Taxonomy) -> None:
        """Calling again and being transferred is friction."""
        text = "This is the third time I'm calling and I keep being transferred."
        assert "effort_friction" in _signal_names(_outcome(analyse, taxonomy, text))
        calm = "I called once and the agent sorted it out."
        assert "effort_friction" not in _signal_names(_outcome(analyse, taxonomy, calm))

    def test_top_score_with_negative_text_contradicts(
        self, analyse: Any, taxonomy: Taxonomy
    ) -> None:
        """CSAT 5 beside a rude agent and nothing fixed; not beside praise."""
        text = "The agent was rude and nothing got fixed."
        out = _outcome(analyse, taxonomy, text, score=5, scale="csat_1_5")
        assert "score_contradiction" in _signal_names(out)
        praise = "The agent was kind and fixed everything, thank you."
        assert "score_contradiction" not in _signal_names(
            _outcome(analyse, taxonomy, praise, score=5, scale="csat_1_5")
        )

    def test_low_nps_with_praise_contradicts(self, analyse: Any, taxonomy: Taxonomy) -> None:
        """The reverse direction, on the NPS scale: 2 out of 10 with warm words."""
        out = _outcome(
            analyse, taxonomy, "Lovely staff, thank you so much!", score=2, scale="nps_0_10"
        )
        signal = next(s for s in out.complaint["signals"] if s["name"] == "score_contradiction")
        assert signal["value"]["direction"] == "low_score_positive_text"
        # 8 of 10 is no detractor: no contradiction there
        out = _outcome(
            analyse, taxonomy, "Lovely staff, thank you so much!", score=8, scale="nps_0_10"
        )
        assert "score_contradiction" not in _signal_names(out)

    def test_far_below_own_baseline(self, analyse: Any, taxonomy: Taxonomy) -> None:
        """A lukewarm note from a customer who is always glowing is below their baseline."""
        glowing = CustomerBaseline("c1")
        for value in (0.9, 0.95, 0.85, 0.9):
            glowing = glowing.observe(value, None)
        text = "It was okay I guess, the delivery was slow."
        out = _outcome(analyse, taxonomy, text, baseline=glowing)
        assert "below_baseline" in _signal_names(out)
        assert out.baseline is not None
        assert out.baseline.sentiment.n == 5
        moody = CustomerBaseline("c1", RunningStat(4, -0.3, 0.5))
        assert "below_baseline" not in _signal_names(
            _outcome(analyse, taxonomy, text, baseline=moody)
        )

    def test_repeat_contact_about_the_same_case_type(
        self, analyse: Any, taxonomy: Taxonomy
    ) -> None:
        """An earlier contact on the same case type within the window is a repeat."""
        text = "I returned the shoes a month ago and I still have not received my refund."
        case_ids = [c["id"] for c in analyse(text)["case_types"]]
        assert "refund_not_received" in case_ids
        earlier = RecentContact("e1", datetime(2025, 3, 1, tzinfo=UTC), ["refund_not_received"])
        out = _outcome(analyse, taxonomy, text, recent_contacts=[earlier])
        assert "repeat_contact" in _signal_names(out)
        old = RecentContact("e0", datetime(2025, 1, 1, tzinfo=UTC), ["refund_not_received"])
        other = RecentContact("e2", datetime(2025, 3, 1, tzinfo=UTC), ["account_access"])
        out = _outcome(analyse, taxonomy, text, recent_contacts=[old, other])
        assert "repeat_contact" not in _signal_names(out)

    def test_negative_feedback_fitting_no_case_type_is_emerging(
        self, analyse: Any, taxonomy: Taxonomy
    ) -> None:
        """A new kind of problem is reported as an emerging issue, with no case type."""
        text = "The music you play in the lobby is awful and far too loud."
        analysis = analyse(text)
        assert analysis["fits_no_case_type"] is True
        out = _outcome(analyse, taxonomy, text)
        assert "emerging_issue" in _signal_names(out)
        assert out.detections[0]["case_type"] is None
        calm = "We adopted a puppy yesterday."
        assert "emerging_issue" not in _signal_names(_outcome(analyse, taxonomy, calm))


class TestDetection:
    def test_explicit_complaint_carries_handling_priority_and_due_by(
        self, analyse: Any, taxonomy: Taxonomy
    ) -> None:
        """Stated billing error: explicit, routed, SLA from the case type with the VIP override."""
        text = "You charged me twice for the same order, fix it."
        item = {
            "id": "b1",
            "text": text,
            "occurred_at": AT,
            "customer_id": "c9",
            "employee_id": "e7",
            "segment": "vip",
        }
        now = datetime(2025, 3, 4, 11, tzinfo=UTC)
        found = detect(analyse(text), item, DetectionContext(taxonomy=taxonomy, now=now))
        detection = next(d for d in found if d["case_type"]["id"] == "billing_error")
        assert detection["kind"] == "explicit"
        assert detection["due_by"] == "2025-03-04T14:00:00Z"  # vip: 4h instead of 24h
        assert detection["routing"] == {"team": "billing", "queue": "billing-errors"}
        assert detection["recovery_options"]
        assert detection["checklist"]
        assert detection["customer_id"] == "c9"
        assert detection["employee_id"] == "e7"
        assert "complaint" in detection["model_versions"]
        factors = detection["priority"]["factors"]
        total = round(sum(f["contribution"] for f in factors.values()), 1)
        assert detection["priority"]["score"] == total
        assert 0 < total <= 100
        assert factors["sla_time_left"]["hours_left"] == 3.0
        plain = detect(
            analyse(text), {**item, "segment": None}, DetectionContext(taxonomy=taxonomy)
        )
        billing = next(d for d in plain if d["case_type"]["id"] == "billing_error")
        assert billing["due_by"] == "2025-03-05T10:00:00Z"

    def test_journey_override_and_default_sla(self, analyse: Any, taxonomy: Taxonomy) -> None:
        """A journey override shortens the SLA; no taxonomy means the 24 h default."""
        text = "My flight was cancelled and nobody told me, I'm stuck at the airport."
        item = {"id": "f1", "text": text, "occurred_at": AT, "journey": "in_travel"}
        found = detect(analyse(text), item, DetectionContext(taxonomy=taxonomy))
        travel = next(d for d in found if d["case_type"]["id"] == "travel_delayed_or_cancelled")
        assert travel["due_by"] == "2025-03-04T11:00:00Z"
        bare = detect(analyse(text), item, DetectionContext())
        assert bare[0]["due_by"] == "2025-03-05T10:00:00Z"
        assert bare[0]["taxonomy"] is not None

    def test_happy_text_yields_no_detection(self, analyse: Any, taxonomy: Taxonomy) -> None:
        """Praise is not a complaint."""
        out = _outcome(analyse, taxonomy, "Thank you, the new app is brilliant and so easy to use.")
        assert out.detections == []
        assert out.complaint["score"] < 0.5


class TestMerge:
    def test_same_customer_and_case_type_merge_into_one(
        self, analyse: Any, taxonomy: Taxonomy
    ) -> None:
        """Two contacts about the same refund make one detection with both items' evidence."""
        from nlp.detect import merge, same_case

        first_text = "Still no refund for my returned shoes."
        second_text = "This is the third time I'm asking where my refund is. Forget it."
        first = detect(
            analyse(first_text),
            {"id": "m1", "text": first_text, "occurred_at": AT, "customer_id": "c5"},
            DetectionContext(taxonomy=taxonomy),
        )
        later = (datetime(2025, 3, 4, 10, tzinfo=UTC) + timedelta(days=2)).isoformat()
        second = detect(
            analyse(second_text),
            {"id": "m2", "text": second_text, "occurred_at": later, "customer_id": "c5"},
            DetectionContext(taxonomy=taxonomy),
        )
        a = next(
            d for d in first if d["case_type"] and d["case_type"]["id"] == "refund_not_received"
        )
        b = next(
            d for d in second if d["case_type"] and d["case_type"]["id"] == "refund_not_received"
        )
        assert same_case(a, b)
        merged = merge(a, b)
        assert merged["item_ids"] == ["m1", "m2"]
        assert {e["item_id"] for e in merged["evidence"]} == {"m1", "m2"}
        assert merged["confidence"] >= max(a["confidence"], b["confidence"])
        assert {s["name"] for s in merged["signals"]} >= {s["name"] for s in b["signals"]}
        assert merged["due_by"] == min(a["due_by"], b["due_by"])
        factors = merged["priority"]["factors"]
        assert merged["priority"]["score"] == round(
            sum(f["contribution"] for f in factors.values()), 1
        )
        far = {**b, "occurred_at": "2025-04-30T10:00:00Z"}
        assert not same_case(a, far)
        assert not same_case(a, {**b, "customer_id": "someone-else"})


class TestResolvedCue:
    """``cues.resolved``: a problem put right counts only with the emotions that welcome it."""

    GLAD: ClassVar[dict[str, Any]] = {"gratitude": {"score": 0.97}, "annoyance": {"score": 0.02}}
    UPSET: ClassVar[dict[str, Any]] = {
        "gratitude": {"score": 0.6},
        "disappointment": {"score": 0.8},
    }

    def test_resolution_with_gratitude(self) -> None:
        found = cues.resolved("The agent sorted it out and refunded me, thanks!", self.GLAD)
        assert [text for _, _, text in found] == ["sorted it out", "refunded"]

    def test_resolution_with_upset_emotions_is_not_resolved(self) -> None:
        assert cues.resolved("My replacement arrived broken.", self.UPSET) == []

    def test_no_resolution_phrase(self) -> None:
        assert cues.resolved("Thanks for nothing.", self.GLAD) == []

    def test_without_emotion_scores_nothing_is_resolved(self) -> None:
        assert cues.resolved("They fixed it, thanks.", None) == []
        assert cues.resolved("They fixed it, thanks.", {}) == []

    def test_plain_scores_are_read_too(self) -> None:
        assert cues.resolved("They fixed it, thanks.", {"relief": 0.9, "anger": 0.1})
