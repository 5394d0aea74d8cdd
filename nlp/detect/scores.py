"""Scores beside the text: a rating that contradicts the words, and a drop below the baseline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nlp.detect.context import CustomerBaseline, DetectOptions
from nlp.detect.signals import BELOW_BASELINE, SCORE_CONTRADICTION, Evidence, Signal, signal

# Scale -> (low end, high end, "high" from, "low" up to). CES 1-7 is read as "the company
# made it easy" (7 = least effort, the common wording); NPS detractors are 0-6.
SCALES: Mapping[str, tuple[float, float, float, float]] = {
    "csat_1_5": (1, 5, 4, 2),
    "stars_1_5": (1, 5, 4, 2),
    "nps_0_10": (0, 10, 9, 6),
    "ces_1_7": (1, 7, 6, 2),
}


def normalise_score(score: float | None, scale: str | None) -> float | None:
    """A score on its scale -> [-1, 1] (None for unknown scales or no score)."""
    if score is None or scale is None or scale not in SCALES:
        return None
    low, high, _, _ = SCALES[scale]
    middle, half = (low + high) / 2, (high - low) / 2
    return max(-1.0, min(1.0, (float(score) - middle) / half))


def score_band(score: float | None, scale: str | None) -> str | None:
    """ "high", "low" or "middle" on the scale's own terms (None when unknown)."""
    if score is None or scale is None or scale not in SCALES:
        return None
    _, _, high_from, low_to = SCALES[scale]
    return "high" if score >= high_from else "low" if score <= low_to else "middle"


def valence(sentiment: Mapping[str, float]) -> float:
    """P(positive) - P(negative)."""
    return float(sentiment.get("positive", 0.0)) - float(sentiment.get("negative", 0.0))


def contradiction(
    score: float | None,
    scale: str | None,
    sentiment: Mapping[str, float],
    complaint: float | None,
    evidence: list[Evidence],
) -> Signal | None:
    """A high score with negative content, or a low score with positive content."""
    band = score_band(score, scale)
    negative = float(sentiment.get("negative", 0.0))
    positive = float(sentiment.get("positive", 0.0))
    value: dict[str, Any] = {"score": score, "scale": scale, "band": band}
    if band == "high" and (negative >= 0.55 or ((complaint or 0.0) >= 0.7 and positive < 0.3)):
        value["direction"] = "high_score_negative_text"
        return signal(
            SCORE_CONTRADICTION, value, 0.45 + 0.5 * max(negative, complaint or 0.0), evidence
        )
    if band == "low" and positive >= 0.6 and (complaint is None or complaint < 0.5):
        value["direction"] = "low_score_positive_text"
        return signal(SCORE_CONTRADICTION, value, 0.35 + 0.5 * positive, evidence)
    return None


def below_baseline(
    baseline: CustomerBaseline | None,
    text_valence: float,
    normalised_score: float | None,
    options: DetectOptions,
    evidence: list[Evidence],
) -> Signal | None:
    """This contact's sentiment or score far below the customer's own history."""
    if baseline is None:
        return None
    best: Signal | None = None
    for what, stat, current in (
        ("sentiment", baseline.sentiment, text_valence),
        ("score", baseline.score, normalised_score),
    ):
        if current is None or stat.n < options.baseline_min_history:
            continue
        drop = stat.mean - current
        z = drop / max(stat.std, options.baseline_std_floor)
        if drop >= options.baseline_min_drop and z >= options.baseline_z:
            value = {
                "of": what,
                "current": round(current, 4),
                "mean": round(stat.mean, 4),
                "std": round(stat.std, 4),
                "n": stat.n,
                "z": round(-z, 2),
            }
            found = signal(BELOW_BASELINE, value, min(0.95, 0.55 + 0.05 * z + 0.2 * drop), evidence)
            if best is None or found["confidence"] > best["confidence"]:
                best = found
    return best
