"""Complaint detection on a call's turns, scored by the real analyzer."""

from __future__ import annotations

from typing import Any

from nlp.analyzer import TextAnalyzer
from nlp.detect import DetectionContext, detect_call

AT = "2025-03-04T10:00:00Z"


def _call(analyzer: TextAnalyzer, turns: list[tuple[str, str]]) -> dict[str, Any]:
    """Turns as the recording stage builds them (times 5 s apart), with the customer's end."""
    results = analyzer.analyze([{"id": str(i), "text": t} for i, (_, t) in enumerate(turns)])
    entries = []
    for i, ((speaker, text), result) in enumerate(zip(turns, results, strict=True)):
        scores = result["sentiment"]["scores"]
        entries.append(
            {
                "index": i,
                "start": 5.0 * i,
                "end": 5.0 * i + 4.5,
                "speaker": speaker,
                "text": text,
                **{k: v for k, v in result.items() if k not in ("id",)},
                "valence": scores["positive"] - scores["negative"],
            }
        )
    last = [t for t in entries if t["speaker"] == "customer"][-1]
    end = {
        "turns": [last["index"]],
        "label": last["sentiment"]["label"],
        "scores": last["sentiment"]["scores"],
        "valence": last["valence"],
    }
    return {"turns": entries, "customer": {"end": end}}


class TestCalls:
    def test_angry_caller_who_rated_five(self, analyzer: TextAnalyzer) -> None:
        """A 5 after an angry call contradicts it; the evidence points at customer turns."""
        call = _call(
            analyzer,
            [
                ("agent", "Thank you for calling, how can I help?"),
                ("customer", "You cut off my internet again and nobody told me why."),
                ("agent", "I am sorry, let me check that for you."),
                (
                    "customer",
                    "This is useless, I have been on hold for an hour and it is still broken.",
                ),
            ],
        )
        item = {"id": "r1", "score": 5, "scale": "csat_1_5", "occurred_at": AT, "customer_id": "c1"}
        out = detect_call(call, item, DetectionContext())
        names = {s["name"] for s in out.complaint["signals"] if s["confidence"] >= 0.5}
        assert "score_contradiction" in names
        assert out.detections
        evidence = out.detections[0]["evidence"]
        assert evidence
        assert all(e["speaker"] == "customer" for e in evidence if "turn" in e)
        assert {"turn", "start_time", "end_time", "speaker", "text"} <= set(evidence[0])

    def test_pleasant_call_rated_five(self, analyzer: TextAnalyzer) -> None:
        """A friendly call with a top score yields nothing."""
        call = _call(
            analyzer,
            [
                ("agent", "Thank you for calling, how can I help?"),
                ("customer", "Hi, I just wanted to say the new plan works great."),
                ("agent", "Lovely to hear, anything else?"),
                ("customer", "No, that's all, thank you so much, have a nice day!"),
            ],
        )
        item = {"id": "r2", "score": 5, "scale": "csat_1_5", "occurred_at": AT}
        out = detect_call(call, item, DetectionContext())
        assert out.detections == []
