"""Validation of spaCy Matcher token patterns without importing spaCy.

The API validates every uploaded taxonomy; importing spaCy there would pull thinc and torch
into the web process (seconds of start-up and hundreds of MB) for one check. This mirrors
spaCy's own ``spacy.schemas.TokenPattern`` (the schema ``Matcher(validate=True)`` applies):
attribute names, value types, predicate dictionaries and operators. A test holds it to
spaCy's verdict on valid and invalid patterns; the worker builds the real Matcher.
"""

from __future__ import annotations

import re
from typing import Any

_STRING_ATTRS = frozenset(
    {"ORTH", "TEXT", "LOWER", "POS", "TAG", "MORPH", "DEP", "LEMMA", "SHAPE", "ENT_TYPE",
     "ENT_ID", "ENT_KB_ID", "NORM"}
)  # fmt: skip
_BOOL_ATTRS = frozenset(
    {"SPACY", "IS_ALPHA", "IS_ASCII", "IS_DIGIT", "IS_LOWER", "IS_UPPER", "IS_TITLE",
     "IS_PUNCT", "IS_SPACE", "IS_BRACKET", "IS_QUOTE", "IS_LEFT_PUNCT", "IS_RIGHT_PUNCT",
     "IS_CURRENCY", "IS_STOP", "IS_SENT_START", "SENT_START", "LIKE_NUM", "LIKE_URL",
     "LIKE_EMAIL"}
)  # fmt: skip
_NUMBER_ATTRS = frozenset({"LENGTH", "ENT_IOB"})
_LIST_PREDICATES = frozenset({"IN", "NOT_IN", "IS_SUBSET", "IS_SUPERSET", "INTERSECTS"})
_FUZZY = frozenset({"FUZZY", *(f"FUZZY{n}" for n in range(1, 10))})
_COMPARISONS = frozenset({"==", "!=", ">=", "<=", ">", "<"})
_OP = re.compile(r"^(\+|\*|\?|!|\{\d+\}|\{\d+,\d*\}|\{,\d+\})$")


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _regex_error(value: Any) -> str | None:
    if not _is_str(value):
        return "REGEX takes a string"
    try:
        re.compile(value)
    except re.error as e:
        return f"REGEX {value!r} does not compile: {e}"
    return None


def _string_value_error(attr: str, value: Any) -> str | None:
    if _is_str(value):
        return None
    if not isinstance(value, dict) or not value:
        return f"{attr} takes a string or a dict of predicates, not {value!r}"
    for key, arg in value.items():
        name = str(key).upper()
        if name == "REGEX":
            nested = isinstance(arg, dict)
            problem = _string_value_error(attr, arg) if nested else _regex_error(arg)
        elif name in _FUZZY:
            problem = None if _is_str(arg) else _string_value_error(attr, arg)
        elif name in _LIST_PREDICATES:
            ok = isinstance(arg, list) and all(_is_str(x) for x in arg)
            problem = None if ok else f"{attr} {name} takes a list of strings"
        else:
            problem = f"{attr} has no predicate {key!r}"
        if problem:
            return problem
    return None


def _number_value_error(attr: str, value: Any) -> str | None:
    if _is_int(value):
        return None
    if attr == "ENT_IOB" and _is_str(value) and value in {"B", "I", "O", ""}:
        return None
    if not isinstance(value, dict) or not value:
        return f"{attr} takes an integer or a dict of predicates, not {value!r}"
    for key, arg in value.items():
        name = str(key).upper()
        if name == "REGEX":
            problem = _regex_error(arg)
        elif name in _LIST_PREDICATES:
            ok = isinstance(arg, list) and all(_is_int(x) for x in arg)
            problem = None if ok else f"{attr} {name} takes a list of integers"
        elif key in _COMPARISONS:
            ok = isinstance(arg, int | float) and not isinstance(arg, bool)
            problem = None if ok else f"{attr} {key} takes a number"
        else:
            problem = f"{attr} has no predicate {key!r}"
        if problem:
            return problem
    return None


def token_error(token: Any) -> str | None:
    """Why one token dict is not valid in a spaCy Matcher pattern, or None."""
    if not isinstance(token, dict):
        return f"each token is a dict of attributes, not {token!r}"
    for key, value in token.items():
        if not isinstance(key, str):
            return f"attribute names are strings, not {key!r}"
        attr = key.upper()
        if value is None:
            return f"{key}: null is not allowed"
        if attr == "OP":
            if not (_is_str(value) and _OP.match(value)):
                return f"OP {value!r} is not one of +, *, ?, !, {{n}}, {{n,m}}, {{n,}}, {{,m}}"
            continue
        if key == "_":
            if not isinstance(value, dict):
                return "_ takes a dict of custom attributes"
            continue
        if attr in _STRING_ATTRS:
            problem = _string_value_error(attr, value)
        elif attr in _BOOL_ATTRS:
            problem = None if isinstance(value, bool) else f"{attr} takes true or false"
        elif attr in _NUMBER_ATTRS:
            problem = _number_value_error(attr, value)
        else:
            problem = f"unknown token attribute {key!r}"
        if problem:
            return problem
    return None


def check_token_pattern(pattern: Any) -> str | None:
    """Why a spaCy Matcher token pattern is invalid, or None when it is valid."""
    if not isinstance(pattern, list) or not pattern:
        return "a token pattern needs at least one token"
    for position, token in enumerate(pattern):
        problem = token_error(token)
        if problem:
            return f"not a valid spaCy token pattern: token {position}: {problem}"
    return None
