"""A call's analysis from its turns' text analyses: trajectory, peak and end, start and end.

The SPACE model's peak-end rule: how a customer remembers a call is driven by its most
intense moment (here: the most negative customer turn) and by how it ended (the last
customer turns). Valence is P(positive) - P(negative) of a turn's text, in [-1, 1].
"""

from __future__ import annotations

from typing import Any

# How many customer turns make "the start" and "the end" of a call.
EDGE_TURNS = 2
_LABELS = ("negative", "neutral", "positive")


def valence(sentiment: dict[str, Any]) -> float:
    """P(positive) - P(negative)."""
    scores = sentiment.get("scores", {})
    return round(float(scores.get("positive", 0.0)) - float(scores.get("negative", 0.0)), 4)


def _pooled(turns: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Mean sentiment of some turns: label, scores, valence and which turns."""
    if not turns:
        return None
    scores = {
        label: round(sum(t["sentiment"]["scores"].get(label, 0.0) for t in turns) / len(turns), 4)
        for label in _LABELS
    }
    return {
        "turns": [t["index"] for t in turns],
        "label": max(scores, key=lambda k: scores[k]),
        "scores": scores,
        "valence": round(scores["positive"] - scores["negative"], 4),
    }


def _top_emotion(turn: dict[str, Any]) -> str | None:
    emotions = turn.get("emotions") or {}
    present = {k: v["score"] for k, v in emotions.items() if v.get("present") and k != "neutral"}
    return max(present, key=lambda k: present[k]) if present else None


def _point(turn: dict[str, Any]) -> dict[str, Any]:
    point: dict[str, Any] = {
        "turn": turn["index"],
        "t": round((turn["start"] + turn["end"]) / 2, 3),
        "speaker": turn["speaker"],
        "valence": turn["valence"],
        "label": turn["sentiment"]["label"],
    }
    if turn.get("intensity") is not None:
        point["intensity"] = turn["intensity"]
    if turn.get("emotions"):
        point["emotions"] = {k: v["score"] for k, v in turn["emotions"].items()}
    return point


def _moment(turn: dict[str, Any]) -> dict[str, Any]:
    return {
        "turn": turn["index"],
        "start": turn["start"],
        "end": turn["end"],
        "speaker": turn["speaker"],
        "text": turn["text"],
        "valence": turn["valence"],
        "label": turn["sentiment"]["label"],
        "emotion": _top_emotion(turn),
        "intensity": turn.get("intensity"),
    }


def _emotion_peaks(turns: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    peaks: dict[str, dict[str, Any]] = {}
    for turn in turns:
        for name, emotion in (turn.get("emotions") or {}).items():
            if name not in peaks or emotion["score"] > peaks[name]["score"]:
                peaks[name] = {
                    "turn": turn["index"],
                    "t": round((turn["start"] + turn["end"]) / 2, 3),
                    "score": emotion["score"],
                }
    return peaks


def turn_entry(index: int, segment: dict[str, Any], analysis: dict[str, Any]) -> dict[str, Any]:
    """One scored turn: its place in the call and its text analysis (contract fields)."""
    entry: dict[str, Any] = {
        "index": index,
        "start": segment["start"],
        "end": segment["end"],
        "speaker": segment["speaker"],
        "role_confidence": segment.get("role_confidence"),
        "text": segment["text"],
    }
    for key, value in analysis.items():
        if key not in ("id", "model_versions"):
            entry[key] = value
    entry["valence"] = valence(analysis["sentiment"])
    return entry


def summarise_call(turns: list[dict[str, Any]], transcript: dict[str, Any]) -> dict[str, Any]:
    """The call-level analysis from its scored turns (time-ordered)."""
    customer = [t for t in turns if t["speaker"] == "customer"]
    agent = [t for t in turns if t["speaker"] == "agent"]
    # The peak-end rule is about the customer; with no customer turn found (a mono file
    # judged to be one agent voice) the whole call stands in, and `basis` says so.
    basis_name, basis = ("customer", customer) if customer else ("all", turns)
    peak = min(basis, key=lambda t: (t["valence"], -(t.get("intensity") or 0.0)), default=None)
    end = _pooled(basis[-EDGE_TURNS:])
    peak_end = None
    if peak is not None and end is not None:
        score = round((peak["valence"] + end["valence"]) / 2, 4)
        peak_end = {"valence": score, "basis": basis_name}
    start_c, end_c = _pooled(customer[:EDGE_TURNS]), _pooled(customer[-EDGE_TURNS:])
    return {
        "language": transcript.get("language"),
        "duration": transcript.get("duration"),
        "role_method": transcript.get("role_method"),
        "turns": turns,
        "trajectory": [_point(t) for t in turns],
        "peak": _moment(peak) if peak is not None else None,
        "end": end,
        "peak_end": peak_end,
        "basis": basis_name,
        "customer": {
            "turns": len(customer),
            "overall": _pooled(customer),
            "start": start_c,
            "end": end_c,
            "change": round(end_c["valence"] - start_c["valence"], 4)
            if start_c and end_c
            else None,
        },
        "agent": {"turns": len(agent), "overall": _pooled(agent)},
        "emotion_peaks": _emotion_peaks(turns),
    }
