"""Hallucination guards on finished segments."""

from __future__ import annotations

from asr.guards import RawSegment, clean_segments, collapse_repeats
from asr.options import TranscribeOptions


def _seg(
    text: str, logprob: float = -0.2, no_speech: float = 0.05, ratio: float = 1.2
) -> RawSegment:
    return RawSegment(0.0, 2.0, text, [], logprob, no_speech, ratio)


class TestCollapseRepeats:
    def test_loop_is_cut_to_two(self) -> None:
        """A phrase looping five times keeps two occurrences."""
        tokens = [
            "I'm",
            "sorry.",
            "I'm",
            "sorry.",
            "I'm",
            "sorry.",
            "I'm",
            "sorry.",
            "I'm",
            "sorry.",
        ]
        kept = [tokens[i] for i in collapse_repeats(tokens, 2)]
        assert " ".join(kept) == "I'm sorry. I'm sorry."

    def test_normal_speech_untouched(self) -> None:
        """A natural "no, no" and distinct words are kept as they are."""
        tokens = ["no,", "no,", "that", "is", "not", "what", "I", "ordered"]
        assert collapse_repeats(tokens, 2) == list(range(len(tokens)))


class TestCleanSegments:
    def test_stock_phrase_on_unsure_segment_dropped(self) -> None:
        """'Thanks for watching' with a high no-speech probability is dropped."""
        out = clean_segments([_seg("Thanks for watching!", no_speech=0.5)], TranscribeOptions())
        assert out == []

    def test_confident_speech_kept(self) -> None:
        """A confident segment passes unchanged."""
        out = clean_segments([_seg("Thank you for calling.")], TranscribeOptions())
        assert [s.text for s in out] == ["Thank you for calling."]

    def test_silence_hallucination_dropped(self) -> None:
        """High no-speech probability with low log-probability is dropped."""
        out = clean_segments([_seg("you", logprob=-1.2, no_speech=0.9)], TranscribeOptions())
        assert out == []

    def test_compressible_text_dropped(self) -> None:
        """A segment whose own text compresses like a loop (gzip ratio > 2.4) is dropped."""
        text = "na " * 60
        out = clean_segments([_seg(text.strip(), ratio=1.0)], TranscribeOptions())
        assert out == []

    def test_window_ratio_does_not_drop_a_plain_sentence(self) -> None:
        """Whisper's ratio covers its whole 30 s window; a plain sentence in a repetitive
        window (a list read out) is kept."""
        out = clean_segments(
            [_seg("The next complaint is about the slow support.", ratio=3.0)],
            TranscribeOptions(),
        )
        assert [s.text for s in out] == ["The next complaint is about the slow support."]

    def test_repeated_sentence_across_segments(self) -> None:
        """The same sentence as three segments in a row keeps two."""
        segs = [_seg("I will check that for you.") for _ in range(3)]
        assert len(clean_segments(segs, TranscribeOptions())) == 2
