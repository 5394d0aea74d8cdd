"""Turn building: a channel's segment that spans the other speaker's turn is split there."""

from __future__ import annotations

from asr.guards import RawSegment
from asr.options import TranscribeOptions
from asr.speakers import merge_turns, split_turns, to_segment
from asr.types import Word


def _raw(words: list[tuple[float, float, str]]) -> RawSegment:
    return RawSegment(
        start=words[0][0],
        end=words[-1][1],
        text="".join(w for _, _, w in words).strip(),
        words=[Word(a, b, w, 0.9) for a, b, w in words],
        avg_logprob=-0.2,
        no_speech_prob=0.01,
        compression_ratio=1.2,
    )


def test_turns_interleave_when_one_segment_spans_the_other_speaker() -> None:
    """Agent says two things with the customer's answer between: three turns, in order."""
    opts = TranscribeOptions()
    agent = _raw(
        [(0.0, 0.4, " How"), (0.4, 0.8, " can"), (0.8, 1.2, " I help?"),
         (5.0, 5.4, " Let"), (5.4, 5.8, " me"), (5.8, 6.2, " check.")]
    )  # fmt: skip
    customer = _raw([(2.0, 2.5, " My"), (2.5, 3.0, " bill"), (3.0, 3.5, " is wrong.")])
    segments = [to_segment(r, "agent", 1.0) for r in split_turns([agent], opts)]
    segments += [to_segment(r, "customer", 1.0) for r in split_turns([customer], opts)]
    turns = merge_turns(segments, opts)
    assert [(t.speaker, t.text) for t in turns] == [
        ("agent", "How can I help?"),
        ("customer", "My bill is wrong."),
        ("agent", "Let me check."),
    ]


def test_close_words_stay_one_turn() -> None:
    """Pauses shorter than the turn gap do not split a speaker's sentence."""
    seg = _raw([(0.0, 0.4, " Yes,"), (1.0, 1.4, " that"), (1.5, 1.9, " is right.")])
    assert len(split_turns([seg], TranscribeOptions())) == 1
