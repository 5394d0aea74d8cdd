"""A cheap English-or-not guess, used only when the caller did not give a language.

This is not a language identifier: the encoder and heads are English-only, so the one
question that matters is whether a text looks English. It answers "en" when English
function words make up a fair share of the words and the letters are mostly Latin, else
"und" (ISO 639-2 "undetermined"). Short texts without function words ("Great app!!") come
out "en" when all their letters are ASCII, because that is what our callers send.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_ENGLISH = frozenset(
    [
        "a",
        "about",
        "after",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "don't",
        "for",
        "from",
        "had",
        "has",
        "have",
        "he",
        "her",
        "him",
        "his",
        "how",
        "i",
        "i'm",
        "if",
        "in",
        "into",
        "is",
        "it",
        "it's",
        "its",
        "just",
        "me",
        "my",
        "no",
        "not",
        "now",
        "of",
        "on",
        "or",
        "our",
        "out",
        "she",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "they",
        "this",
        "to",
        "too",
        "up",
        "us",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
    ]
)
_FOREIGN = frozenset(
    [
        "der",
        "die",
        "das",
        "und",
        "ist",
        "nicht",
        "ein",
        "eine",
        "ich",
        "sie",
        "es",
        "le",
        "la",
        "les",
        "et",
        "est",
        "un",
        "une",
        "je",
        "pas",
        "des",
        "el",
        "los",
        "las",
        "y",
        "es",
        "que",
        "por",
        "una",
        "para",
        "con",
        "muy",
        "il",
        "di",
        "che",
        "non",
        "per",
        "sono",
        "het",
        "een",
        "niet",
        "ik",
        "op",
    ]
)


def guess_language(text: str) -> str:
    """Return "en" when the text looks English, else "und" (undetermined)."""
    words = [w.lower() for w in _WORD.findall(text)]
    if not words:
        return "und"
    letters = [c for w in words for c in w]
    latin = sum(1 for c in letters if c.isascii()) / len(letters)
    if latin < 0.8:
        return "und"
    english = sum(1 for w in words if w in _ENGLISH)
    foreign = sum(1 for w in words if w in _FOREIGN)
    if english > foreign and english / len(words) >= 0.1:
        return "en"
    if english == 0 and foreign == 0 and len(words) <= 6 and latin == 1.0:
        return "en"
    return "und"
