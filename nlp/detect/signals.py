"""Signal detectors: each looks at the analysed units of one contact and returns signals.

A unit is a sentence of a text or a customer turn of a call; its evidence builder turns a
span of its text into the evidence shape of its kind (text span, or call turn). A signal is
``{"name", "value", "confidence", "evidence": [...]}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nlp.detect import cues

Evidence = dict[str, Any]
Signal = dict[str, Any]

# Signal names (stable: stored, filtered on and reported per signal by the service).
IRONY = "irony"
RESIGNATION = "resignation"
CHURN = "churn_intent"
FRICTION = "effort_friction"
SCORE_CONTRADICTION = "score_contradiction"
BELOW_BASELINE = "below_baseline"
REPEAT_CONTACT = "repeat_contact"
EMERGING = "emerging_issue"
NEGATIVE_END = "negative_end"
COMPLAINT_HEAD = "complaint_head"
UNEXPRESSED_SIGNALS = (
    IRONY,
    RESIGNATION,
    CHURN,
    FRICTION,
    SCORE_CONTRADICTION,
    BELOW_BASELINE,
    REPEAT_CONTACT,
    EMERGING,
    NEGATIVE_END,
)


@dataclass(frozen=True)
class Unit:
    """One scored piece of a contact: a sentence, or a call turn."""

    text: str
    sentiment: Mapping[str, float]  # P(negative|neutral|positive)
    complaint: float | None
    irony: float | None
    evidence: Callable[[int, int], Evidence]  # (start, end) within `text` -> evidence
    # The unit reports a problem put right, with thanks (``cues.resolved``): its problem words
    # are no negative situation now, and irony heard in its thanks is not sarcasm.
    resolved: bool = False

    @property
    def negative(self) -> float:
        """P(negative) of the unit."""
        return float(self.sentiment.get("negative", 0.0))

    @property
    def positive(self) -> float:
        """P(positive) of the unit."""
        return float(self.sentiment.get("positive", 0.0))


def signal(name: str, value: Any, confidence: float, evidence: Sequence[Evidence]) -> Signal:
    """A signal dict with a rounded confidence."""
    return {
        "name": name,
        "value": value,
        "confidence": round(min(max(confidence, 0.0), 1.0), 4),
        "evidence": list(evidence),
    }


def _spans(unit: Unit, matches: Sequence[cues.Match]) -> list[Evidence]:
    return [unit.evidence(start, end) for start, end, _ in matches]


def irony(units: Sequence[Unit], irony_threshold: float) -> Signal | None:
    """Irony or sarcasm carrying a negative meaning.

    With an irony head the probability counts when the unit has negative context: negative
    sentiment (the analyzer's ironic reading included) or a negative situation in its words.
    A complaint score alone is not enough: irony heads trained on tweets fire on sincere
    service praise ("Great service, the agent fixed it in five minutes." irony 0.99,
    complaint 0.53), and on 3,000 airline tweets dropping that path cut the signal on
    positive tweets from 10.1% to 6.6% (negative tweets 42.3% -> 39.7%). Without an irony
    head, the lexical cue (a positive word beside a negative situation, or a sarcastic set
    phrase). A unit that reports its problem put right, with thanks (``Unit.resolved``), is
    skipped: "The support agent fixed my problem quickly, thank you." is not sarcasm.
    """
    best: Signal | None = None
    for unit in units:
        if unit.resolved:
            continue
        situations = cues.find(cues.NEGATIVE_SITUATION, unit.text)
        found: Signal | None = None
        ironic = unit.irony is not None and unit.irony >= irony_threshold
        if ironic and (unit.negative >= 0.3 or situations):
            # The head says the unit is ironic; the cue's words, when they match, show a
            # handler where (the praise and the bad situation), else the whole unit.
            cue_matches = cues.sarcasm(unit.text)
            evidence = _spans(unit, cue_matches) or [unit.evidence(0, len(unit.text))]
            irony = unit.irony or 0.0
            found = signal(IRONY, round(irony, 4), irony, evidence)
        if found is None:
            matches = cues.sarcasm(unit.text)
            has_positive_word = bool(cues.find(cues.POSITIVE_WORD, unit.text))
            if matches and situations and has_positive_word:
                found = signal(IRONY, "lexical", 0.75, _spans(unit, matches))
            elif matches and unit.negative >= 0.4:
                found = signal(IRONY, "lexical", 0.6, _spans(unit, matches))
        if found is not None and (best is None or found["confidence"] > best["confidence"]):
            best = found
    return best


def _phrase_signal(
    name: str, units: Sequence[Unit], pattern: Any, base: float, per_extra: float, cap: float
) -> Signal | None:
    evidence: list[Evidence] = []
    phrases: list[str] = []
    damp = 1.0
    for unit in units:
        matches = cues.find(pattern, unit.text)
        if matches:
            evidence += _spans(unit, matches)
            phrases += [text.lower() for _, _, text in matches]
            # A clearly happy unit ("never mind, found it, thanks!") is not giving up.
            if unit.positive >= 0.6:
                damp = min(damp, 0.5)
    if not evidence:
        return None
    confidence = min(cap, base + per_extra * (len(evidence) - 1)) * damp
    return signal(name, phrases, confidence, evidence)


def resignation(units: Sequence[Unit]) -> Signal | None:
    """Resignation or giving up ("never mind", "forget it", "I give up", "don't bother")."""
    return _phrase_signal(RESIGNATION, units, cues.RESIGNATION, 0.7, 0.1, 0.9)


def churn(units: Sequence[Unit]) -> Signal | None:
    """Intent to cancel, switch or leave."""
    return _phrase_signal(CHURN, units, cues.CHURN, 0.85, 0.05, 0.95)


def friction(units: Sequence[Unit]) -> Signal | None:
    """Effort and friction: repeating, being transferred, calling again, "third time"."""
    return _phrase_signal(FRICTION, units, cues.FRICTION, 0.65, 0.1, 0.9)
