"""Sentence splitting with spaCy's senter."""

from __future__ import annotations

import pytest

from nlp.sentences import SentenceSplitter

TEXTS = [
    "I waited two hours on the phone. Nobody answered!  Is this how you treat customers?",
    "  Leading and trailing spaces.   Then a second sentence.  ",
    "no punctuation at all just one run on thought",
    "Ünïcödé ☕ works too. Émojis 😡 as well.",
]


class TestSentenceSplitter:
    @pytest.mark.parametrize("text", TEXTS)
    def test_offsets_slice_the_input_exactly(self, splitter: SentenceSplitter, text: str) -> None:
        """Every span slices a trimmed, non-empty sentence, in order, without overlap."""
        (spans,) = splitter.split([text])
        assert spans
        previous_end = 0
        for start, end in spans:
            piece = text[start:end]
            assert piece == piece.strip()
            assert piece
            assert start >= previous_end
            previous_end = end
        covered = "".join(text[s:e] for s, e in spans)
        assert covered.replace(" ", "") == text.replace(" ", "")

    def test_splits_sentences(self, splitter: SentenceSplitter) -> None:
        """A three-sentence text gives three sentences."""
        (spans,) = splitter.split([TEXTS[0]])
        assert [TEXTS[0][s:e] for s, e in spans] == [
            "I waited two hours on the phone.",
            "Nobody answered!",
            "Is this how you treat customers?",
        ]

    def test_blank_text_has_no_sentences(self, splitter: SentenceSplitter) -> None:
        """Whitespace only gives no sentence, and the batch keeps its order."""
        assert splitter.split(["   ", "One."]) == [[], [(0, 4)]]
