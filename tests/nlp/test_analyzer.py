"""The text analyzer end to end on the real encoder, senter and committed heads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nlp.analyzer import TextAnalyzer
from nlp.errors import InputError, ModelLoadError
from nlp.heads import load_heads
from service.contract import validate_analysis
from tests.nlp.conftest import HEADS_DIR

CLEAR = {
    "negative": [
        "This is the worst service I have ever had. I am furious.",
        "Terrible app, it crashes constantly and support never answers.",
        "I hate waiting two hours for a refund that never comes.",
    ],
    "positive": [
        "Thank you so much, the support team was wonderful!",
        "I love this phone, best purchase I made all year.",
        "Amazing food and really friendly staff, we had a great time.",
    ],
    "neutral": [
        "The store opens at 9am on Monday.",
        "My order number is 4471 and it was placed on Tuesday.",
        "The meeting has been moved to room 12.",
    ],
}


class TestAnalyze:
    @pytest.mark.parametrize("label", ["negative", "neutral", "positive"])
    def test_clear_texts_get_the_right_label(self, analyzer: TextAnalyzer, label: str) -> None:
        """Texts written to be clearly negative, neutral or positive are labelled so."""
        items = [{"id": str(i), "text": t} for i, t in enumerate(CLEAR[label])]
        results = analyzer.analyze(items)
        assert [r["sentiment"]["label"] for r in results] == [label] * len(items)

    def test_results_follow_the_contract_in_input_order(self, analyzer: TextAnalyzer) -> None:
        """Every result validates against service.contract, in input order, with versions."""
        texts = [t for group in CLEAR.values() for t in group] + ["   "]
        items = [{"id": f"item-{i}", "text": t, "channel": "survey"} for i, t in enumerate(texts)]
        results = analyzer.analyze(items)
        assert [r["id"] for r in results] == [i["id"] for i in items]
        for item, result in zip(items, results, strict=True):
            parsed = validate_analysis(result)
            assert abs(sum(parsed.sentiment.scores.values()) - 1.0) < 1e-3
            for sentence in parsed.sentences:
                assert item["text"][sentence.start : sentence.end] == sentence.text
        assert results[-1]["sentences"] == []
        versions = results[0]["model_versions"]
        adapter = analyzer.encoder.adapter_sha256
        # The shipped heads name the adapter their encoder was fine-tuned with (or none).
        suffix = f"+adapter.{adapter[:12]}" if adapter else ""
        assert versions["encoder"] == f"minilm-test{suffix}/onnx-int8"
        assert versions["sentiment"].startswith("sentiment.v")

    def test_per_sentence_sentiment(self, analyzer: TextAnalyzer) -> None:
        """A mixed text gets a positive and a negative sentence."""
        text = (
            "The staff at the front desk were lovely and helpful. "
            "The room was filthy and smelled awful."
        )
        (result,) = analyzer.analyze([{"id": "mixed", "text": text}])
        labels = [s["sentiment"]["label"] for s in result["sentences"]]
        assert labels == ["positive", "negative"]

    def test_one_encoder_forward_per_batch(self, analyzer: TextAnalyzer) -> None:
        """Analysing a batch of texts with several sentences runs the encoder forward once."""
        texts = [f"{a} {b}" for a, b in zip(CLEAR["negative"], CLEAR["positive"], strict=True)]
        before = analyzer.encoder.forward_calls
        analyzer.analyze([{"id": str(i), "text": t} for i, t in enumerate(texts)])
        assert analyzer.encoder.forward_calls - before == 1

    def test_language_given_or_guessed(self, analyzer: TextAnalyzer) -> None:
        """The item's language is kept; without one, English text is detected as en."""
        given, guessed = analyzer.analyze(
            [
                {"id": "a", "text": "Das Paket ist nicht angekommen.", "language": "de"},
                {"id": "b", "text": "The parcel did not arrive and I want my money back."},
            ]
        )
        assert given["language"] == "de"
        assert guessed["language"] == "en"

    def test_missing_text_is_an_input_error(self, analyzer: TextAnalyzer) -> None:
        """An item without a text string is refused with a clear error."""
        with pytest.raises(InputError, match="'text' must be a string"):
            analyzer.analyze([{"id": "x", "text": None}])  # type: ignore[typeddict-item]


class TestChunks:
    def test_many_chunks_give_the_same_results_in_input_order(self, analyzer: TextAnalyzer) -> None:
        """Length-sorted, pipelined chunks (stages included) equal one chunk, in input order."""
        from dataclasses import replace

        texts = [t for group in CLEAR.values() for t in group] + ["Ok.", "   ", "No. " * 30]
        items = [{"id": f"item-{i}", "text": t} for i, t in enumerate(texts)]
        seen: list[str] = []
        whole = analyzer.analyze(items)
        chunked = TextAnalyzer(
            analyzer.encoder,
            analyzer.splitter,
            analyzer.heads,
            options=replace(analyzer.options, chunk_texts=2),
            stages=[lambda analyses: seen.extend(a.result["id"] for a in analyses)],
        ).analyze(items)
        assert [r["id"] for r in chunked] == [i["id"] for i in items]
        assert sorted(seen) == sorted(i["id"] for i in items)
        for a, b in zip(whole, chunked, strict=True):
            validate_analysis(b)
            assert [(s["start"], s["end"]) for s in a["sentences"]] == [
                (s["start"], s["end"]) for s in b["sentences"]
            ]
        # Scores move a little with batch-mates (int8 ONNX quantises activations per batch,
        # and padding takes part), so only the clear texts' labels are compared.
        clear = sum(len(group) for group in CLEAR.values())
        assert [r["sentiment"]["label"] for r in whole[:clear]] == [
            r["sentiment"]["label"] for r in chunked[:clear]
        ]


class TestAdapterGuard:
    def test_head_for_another_encoder_is_refused(
        self, analyzer: TextAnalyzer, tmp_path: Path
    ) -> None:
        """A head trained on an adapted encoder does not load beside the base encoder."""
        source = HEADS_DIR / "sentiment"
        meta = json.loads((source / "meta.json").read_text())
        meta["requires_adapter_sha256"] = "0" * 64
        target = tmp_path / "sentiment"
        target.mkdir()
        (target / "meta.json").write_text(json.dumps(meta))
        shutil.copyfile(source / "weights.npz", target / "weights.npz")
        with pytest.raises(ModelLoadError, match="re-export the encoder"):
            TextAnalyzer(analyzer.encoder, analyzer.splitter, load_heads(tmp_path))
