"""Rule terms of a taxonomy: phrases (word-boundary, case-insensitive) and spaCy token patterns.

Token patterns need only spaCy's blank English tokenizer (no model): spaCy is imported lazily,
so a taxonomy without token patterns never loads it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from nlp.taxonomy.schema import Taxonomy

RULE_FIELDS: tuple[str, ...] = ("require_any", "exclude", "patterns")


@dataclass(frozen=True)
class RuleHit:
    """One rule term found in a text, with character offsets into that text."""

    start: int
    end: int
    text: str
    rule: str  # how the owner wrote it: the phrase, or the token pattern as JSON-ish text


@lru_cache(maxsize=1)
def _blank_nlp() -> Any:
    import spacy

    return spacy.blank("en")


def _phrase_regex(phrase: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in phrase.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


class RuleEngine:
    """Finds every rule term of a taxonomy in a text, in one pass per text."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self._phrases: list[tuple[str, str, re.Pattern[str], str]] = []
        self._patterns: dict[str, tuple[str, str, str]] = {}
        self._matcher: Any = None
        for case_type in taxonomy.case_types:
            if case_type.rules is None:
                continue
            for field in RULE_FIELDS:
                for j, term in enumerate(getattr(case_type.rules, field)):
                    if isinstance(term, str):
                        self._phrases.append((case_type.id, field, _phrase_regex(term), term))
                    else:
                        key = f"{case_type.id}|{field}|{j}"
                        self._patterns[key] = (case_type.id, field, json.dumps(term))
        if self._patterns:
            from spacy.matcher import Matcher

            self._matcher = Matcher(_blank_nlp().vocab)
            for key in self._patterns:
                type_id, field, position = key.rsplit("|", 2)
                rules = taxonomy.get(type_id).rules
                assert rules is not None
                self._matcher.add(key, [getattr(rules, field)[int(position)]])

    @property
    def empty(self) -> bool:
        return not self._phrases and not self._patterns

    def find(self, text: str) -> dict[tuple[str, str], list[RuleHit]]:
        """(case type id, rule field) -> hits in `text`."""
        out: dict[tuple[str, str], list[RuleHit]] = {}
        for type_id, field, regex, phrase in self._phrases:
            for m in regex.finditer(text):
                out.setdefault((type_id, field), []).append(
                    RuleHit(m.start(), m.end(), m.group(0), phrase)
                )
        if self._matcher is not None:
            doc = _blank_nlp()(text)
            for match_id, start, end in self._matcher(doc):
                key = doc.vocab.strings[match_id]
                type_id, field, rule = self._patterns[key]
                span = doc[start:end]
                out.setdefault((type_id, field), []).append(
                    RuleHit(span.start_char, span.end_char, span.text, rule)
                )
        return out
