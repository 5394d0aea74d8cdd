"""Hallucination guards: text Whisper invents on silence, music or noise is dropped.

Whisper, given non-speech, tends to emit low-confidence stock phrases ("Thank you for
watching"), loops ("I'm sorry. I'm sorry. I'm sorry.") or highly compressible text. Each
finished segment passes these checks before it reaches the transcript.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from asr.options import TranscribeOptions
from asr.types import Word

# Stock phrases of Whisper's training subtitles; dropped only when the segment is also
# unsure of itself, so a caller who really says "thanks for watching" is kept.
_STOCK_PHRASES = (
    "thank you for watching",
    "thanks for watching",
    "please subscribe",
    "like and subscribe",
    "subtitles by",
    "transcribed by",
    "amara.org",
    "www.",
)
_TOKEN = re.compile(r"[^\w']+")


@dataclass(frozen=True)
class RawSegment:
    """A segment as Whisper produced it, times already in recording seconds."""

    start: float
    end: float
    text: str
    words: list[Word]
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


def compression_ratio(text: str) -> float:
    """Whisper's measure: text bytes over their zlib-compressed size (loops compress well)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _norm(token: str) -> str:
    return _TOKEN.sub("", token.lower())


def collapse_repeats(tokens: list[str], max_repeats: int) -> list[int]:
    """Indices of the tokens to keep so no phrase (1-8 tokens) repeats more than ``max_repeats``.

    A phrase said twice is normal speech ("no, no"); the same phrase five times in a row is
    a decoding loop.
    """
    norm = [_norm(t) for t in tokens]
    keep = [True] * len(tokens)
    i = 0
    while i < len(norm):
        best_n, best_count = 0, 1
        for n in range(1, 9):
            phrase = norm[i : i + n]
            if len(phrase) < n or not any(phrase):
                break
            count = 1
            while norm[i + count * n : i + (count + 1) * n] == phrase:
                count += 1
            if count > max_repeats and count * n > best_count * best_n:
                best_n, best_count = n, count
        if best_n:
            for j in range(i + max_repeats * best_n, i + best_count * best_n):
                keep[j] = False
            i += best_count * best_n
        else:
            i += 1
    return [i for i, k in enumerate(keep) if k]


def _is_hallucination(seg: RawSegment, options: TranscribeOptions, short: bool) -> bool:
    if (
        not short
        and seg.no_speech_prob > options.drop_no_speech_prob
        and seg.avg_logprob < options.drop_avg_logprob
    ):
        return True
    if seg.avg_logprob < options.min_avg_logprob:
        return True
    # Whisper's ratio covers its whole 30 s window (every segment of the window carries
    # it), so a window of repetitive but real speech ("the next complaint is about ...")
    # would lose all its segments; the segment's own text is what a loop shows in.
    if compression_ratio(seg.text) > options.compression_ratio_threshold:
        return True
    lowered = seg.text.lower()
    unsure = seg.no_speech_prob > 0.3 or seg.avg_logprob < -0.6
    return unsure and any(p in lowered for p in _STOCK_PHRASES)


def clean_segments(
    segments: list[RawSegment],
    options: TranscribeOptions,
    short: bool = False,
) -> list[RawSegment]:
    """Drop hallucinated segments and collapse looped phrases inside and across segments.

    ``short`` marks a clip of a few seconds: the no-speech guard is off there, since a lone
    spoken word scores a high no-speech probability and would otherwise vanish.
    """
    kept: list[RawSegment] = []
    for seg in segments:
        if not seg.text.strip() or _is_hallucination(seg, options, short):
            continue
        if seg.words:
            idx = collapse_repeats([w.word for w in seg.words], options.max_phrase_repeats)
            words = [seg.words[i] for i in idx]
            text = "".join(w.word for w in words).strip()
        else:
            tokens = seg.text.split()
            idx = collapse_repeats(tokens, options.max_phrase_repeats)
            words = []
            text = " ".join(tokens[i] for i in idx)
        if not text:
            continue
        # A loop across segments: the same sentence (3+ words) again and again.
        if (
            len(kept) >= options.max_phrase_repeats
            and len(text.split()) >= 3
            and all(_norm(k.text) == _norm(text) for k in kept[-options.max_phrase_repeats :])
        ):
            continue
        kept.append(
            RawSegment(
                start=words[0].start if words else seg.start,
                end=words[-1].end if words else seg.end,
                text=text,
                words=words,
                avg_logprob=seg.avg_logprob,
                no_speech_prob=seg.no_speech_prob,
                compression_ratio=seg.compression_ratio,
            )
        )
    return kept
