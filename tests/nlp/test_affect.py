"""The affect heads (emotions, intensity, irony) on texts written for the purpose.

Real encoder, real senter, the committed heads; no data set needed.
"""

from __future__ import annotations

from typing import Any

import pytest

from nlp.analyzer import TextAnalyzer, _ironic_sentiment
from nlp.heads import load_heads
from service.contract import validate_analysis
from tests.nlp.conftest import HEADS_DIR

AFFECT_HEADS = ("emotions", "intensity", "irony")
if not all((HEADS_DIR / h / "meta.json").is_file() for h in AFFECT_HEADS):
    pytest.skip("the affect heads are not in models/heads", allow_module_level=True)

SARCASM = "Great, another hour on hold. Just perfect."
CLEAR = {
    "anger": "I am so angry right now, you people are infuriating and I am furious!",
    "joy": "This is the happiest day of my life, I'm so happy and delighted!",
    "sadness": "I'm so sad, my dog died this morning and I can't stop crying.",
    "fear": "I'm terrified, someone is trying to break into my house right now. So scared.",
    "gratitude": "Thank you so much for your help, I really appreciate it!",
    "confusion": "I don't understand, what does this charge mean? I'm confused.",
    "disappointment": "I was really hoping for better, such a disappointing and let down.",
    "love": "I love you so much, you mean the world to me.",
    "surprise": "Wow, I did not expect that at all! What a shock!",
    "curiosity": "I wonder how this works, can you tell me more about it?",
}


def _analyse(analyzer: TextAnalyzer, texts: list[str]) -> list[dict[str, Any]]:
    return analyzer.analyze([{"id": str(i), "text": t} for i, t in enumerate(texts)])


class TestEmotions:
    @pytest.mark.parametrize("label", sorted(CLEAR))
    def test_clear_text_has_its_emotion_present_and_among_the_top(
        self, analyzer: TextAnalyzer, label: str
    ) -> None:
        """A text written to show one emotion has it present, among its three highest scores."""
        emotions = _analyse(analyzer, [CLEAR[label]])[0]["emotions"]
        assert emotions[label]["present"], (label, emotions[label])
        ranked = sorted(emotions, key=lambda e: -emotions[e]["score"])
        assert label in ranked[:3], (label, ranked[:5])

    def test_neutral_fact_has_neutral_and_no_strong_emotion(self, analyzer: TextAnalyzer) -> None:
        """A plain statement of fact is neutral and shows none of the basic emotions."""
        emotions = _analyse(analyzer, ["The store opens at 9am on Monday."])[0]["emotions"]
        assert emotions["neutral"]["present"]
        for label in ("anger", "joy", "sadness", "fear", "disgust"):
            assert not emotions[label]["present"], label

    def test_every_label_is_scored_for_text_and_sentences(self, analyzer: TextAnalyzer) -> None:
        """GoEmotions' 28 labels and E-c's anticipation, pessimism, trust, per text and sentence."""
        result = _analyse(analyzer, ["Thanks a lot. But the app crashed again, I am furious."])[0]
        parsed = validate_analysis(result)
        assert parsed.emotions is not None
        wanted = {"neutral", "annoyance", "gratitude", "relief", "anticipation", "trust"}
        assert wanted <= set(parsed.emotions)
        assert len(parsed.emotions) == 31
        assert len(parsed.sentences) == 2
        first, second = parsed.sentences
        assert first.emotions is not None
        assert second.emotions is not None
        assert first.emotions["gratitude"].score > second.emotions["gratitude"].score
        assert second.emotions["anger"].score > first.emotions["anger"].score


class TestIntensity:
    def test_furious_is_more_intense_than_a_bit_annoyed(self, analyzer: TextAnalyzer) -> None:
        """Anger intensity and the overall intensity rank the strong wording higher."""
        strong, mild = _analyse(analyzer, ["I am absolutely furious!", "I'm a bit annoyed."])
        assert strong["emotions"]["anger"]["intensity"] > mild["emotions"]["anger"]["intensity"]
        assert strong["intensity"] > mild["intensity"]

    def test_intensity_is_in_range_for_the_four_emotions(self, analyzer: TextAnalyzer) -> None:
        """anger, fear, joy, sadness carry an intensity in [0, 1]; the overall one is their max."""
        result = _analyse(analyzer, [CLEAR["sadness"]])[0]
        values = [result["emotions"][e]["intensity"] for e in ("anger", "fear", "joy", "sadness")]
        assert all(0.0 <= v <= 1.0 for v in values)
        assert result["intensity"] == max(values)
        assert values[3] == max(values)  # the sad text is most intensely sad
        assert result["emotions"]["gratitude"].get("intensity") is None


class TestIrony:
    def test_sarcastic_complaint_is_ironic(self, analyzer: TextAnalyzer) -> None:
        """The issue's example: polite words, ironic meaning."""
        threshold = load_heads(HEADS_DIR, ["irony"])["irony"].meta.thresholds["irony"]
        result = _analyse(analyzer, [SARCASM])[0]
        assert result["irony"] >= threshold

    def test_sarcastic_complaint_is_negative(self, analyzer: TextAnalyzer) -> None:
        """The issue's example comes out negative, the head's literal reading kept beside it."""
        sentiment = _analyse(analyzer, [SARCASM])[0]["sentiment"]
        assert sentiment["label"] == "negative"
        assert sentiment["literal"]["positive"] > sentiment["scores"]["positive"]
        assert abs(sum(sentiment["scores"].values()) - 1.0) < 1e-3

    def test_sincere_praise_keeps_its_sentiment(self, analyzer: TextAnalyzer) -> None:
        """Praise with no bad situation in it is not re-read as sarcasm, whatever its irony."""
        texts = [
            "The staff at the front desk were lovely and helpful.",
            "Your team went above and beyond, really appreciate it.",
            "Delivery arrived a day early, brilliant.",
        ]
        for text, result in zip(texts, _analyse(analyzer, texts), strict=True):
            assert result["sentiment"]["label"] == "positive", (text, result["sentiment"])
            assert "literal" not in result["sentiment"], text

    @pytest.mark.parametrize(
        "text",
        [
            "I have been on hold for an hour and nobody has answered my call.",
            "My package arrived damaged and I would like a refund.",
            "The staff at the front desk were lovely and helpful.",
            pytest.param(
                "The support agent fixed my problem quickly, thank you.",
                marks=pytest.mark.xfail(
                    strict=True,
                    reason="known miss of the irony head on the multi-task encoder: irony "
                    "0.49-0.55 (threshold 0.46; 0.31 on the frozen encoder). sentiment.v3 reads "
                    "it positive (0.85; v2: negative 0.97), but the complaint head's 0.52 still "
                    "raises it as a complaint: thanks that mention a problem look like "
                    "complaints to heads trained on tweets (models/heads/AFFECT.md, known misses).",
                ),
            ),
        ],
    )
    def test_plain_complaint_and_plain_praise_are_not_ironic(
        self, analyzer: TextAnalyzer, text: str
    ) -> None:
        """Complaints and praise said straight are not ironic."""
        threshold = load_heads(HEADS_DIR, ["irony"])["irony"].meta.thresholds["irony"]
        assert _analyse(analyzer, [text])[0]["irony"] < threshold


class TestIronicSentiment:
    """The rule that moves an ironic share of "positive" to "negative" (pure function)."""

    @staticmethod
    def _scored(irony: float, complaint: float) -> dict[str, Any]:
        scores = {"negative": 0.05, "neutral": 0.05, "positive": 0.9}
        return {
            "sentiment": {"label": "positive", "scores": scores},
            "irony": irony,
            "complaint": complaint,
        }

    def test_irony_with_a_negative_situation_moves_positive_to_negative(self) -> None:
        """irony 0.8 + "on hold": positive 0.9 -> 0.18, negative 0.05 -> 0.77."""
        scored = self._scored(0.8, 0.1)
        _ironic_sentiment(scored, "Lovely, on hold again.", 0.4)
        sentiment = scored["sentiment"]
        assert sentiment["label"] == "negative"
        assert sentiment["scores"] == {"negative": 0.77, "neutral": 0.05, "positive": 0.18}
        assert sentiment["literal"]["positive"] == 0.9

    def test_a_complaint_score_alone_is_not_a_negative_situation(self) -> None:
        """Thanks that mention a problem score as complaints; without cue words nothing moves."""
        scored = self._scored(0.9, 0.7)
        _ironic_sentiment(scored, "Best service ever, they fixed my laptop in an hour!", 0.4)
        assert scored["sentiment"]["label"] == "positive"
        assert "literal" not in scored["sentiment"]

    def test_nothing_moves_below_the_irony_threshold(self) -> None:
        """A negative situation said straight, with low irony, keeps the head's reading."""
        scored = self._scored(0.3, 0.9)
        _ironic_sentiment(scored, "Lovely, on hold again.", 0.4)
        assert scored["sentiment"]["label"] == "positive"
        assert "literal" not in scored["sentiment"]

    @pytest.mark.parametrize(
        ("emotions", "label"),
        [
            ({"gratitude": {"score": 0.95}, "annoyance": {"score": 0.03}}, "positive"),
            ({"gratitude": {"score": 0.6}, "disappointment": {"score": 0.7}}, "negative"),
        ],
        ids=["gratitude-heard-not-sarcasm", "upset-emotions-still-move"],
    )
    def test_a_problem_put_right_with_thanks(
        self, emotions: dict[str, dict[str, float]], label: str
    ) -> None:
        """A delayed parcel delivered, with gratitude heard, is sincere; the same words with
        upset emotions are still read as sarcasm (the resolution word shields nothing)."""
        scored = self._scored(0.9, 0.2)
        scored["emotions"] = emotions
        _ironic_sentiment(scored, "My delayed parcel arrived today, thanks for sorting it.", 0.4)
        assert scored["sentiment"]["label"] == label
        assert ("literal" in scored["sentiment"]) == (label == "negative")


def test_one_encoder_pass_feeds_every_head(analyzer: TextAnalyzer) -> None:
    """With all heads loaded, analysing a batch runs the encoder forward exactly once."""
    assert set(AFFECT_HEADS) | {"sentiment"} <= set(analyzer.heads)
    before = analyzer.encoder.forward_calls
    results = _analyse(analyzer, list(CLEAR.values()))
    assert analyzer.encoder.forward_calls - before == 1
    for result in results:
        assert {"sentiment", "emotions", "intensity", "irony"} <= set(result)
        assert all(set(s) >= {"emotions", "intensity", "irony"} for s in result["sentences"])
