"""Lexical cues for unexpressed complaints: phrase patterns found with their character spans.

These are phrase lists compiled to regular expressions (word boundaries, case-insensitive),
not learned: they state what the signal means and are easy to extend. The sarcasm cue stands
in until an irony head ships (issue 3): a positive evaluation next to a negative situation
("Great, another hour on hold. Just perfect.").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Match = tuple[int, int, str]  # start, end, matched text


def _compile(phrases: list[str]) -> re.Pattern[str]:
    return re.compile(r"(?<![\w'])(?:" + "|".join(phrases) + r")(?![\w'])", re.IGNORECASE)


_APOS = "['’]"

RESIGNATION = _compile(
    [
        r"never\s*mind",
        r"nevermind",
        r"forget\s+(?:about\s+)?it",
        r"(?:^|(?<=[.!?,]\s)|(?:ok(?:ay)?|fine|yeah|meh),?\s+)whatever(?=\s*(?:[.!,]|$))",
        r"i\s+give\s+up",
        r"i" + _APOS + r"?ve\s+given\s+up",
        r"i\s+have\s+given\s+up",
        r"(?:don" + _APOS + r"?t|do\s+not)\s+bother",
        r"not\s+worth\s+(?:it|the\s+(?:hassle|effort|trouble)|my\s+time)",
        r"why\s+do\s+i\s+(?:even\s+)?bother",
        r"what" + _APOS + r"?s\s+the\s+point",
        r"no\s+point\s+(?:in\s+)?(?:complaining|calling|trying|asking|writing)",
        r"(?:doesn" + _APOS + r"?t|does\s+not)\s+matter\s+any\s?more",
        r"i" + _APOS + r"?m\s+done(?:\s+with\s+(?:this|it|you(?:\s+people)?))?(?=\s*[.!,]|$)",
        r"i\s+(?:will|" + _APOS + r"ll)\s+(?:just\s+)?(?:live|deal)\s+with\s+it",
        r"(?:so\s+)?tired\s+of\s+(?:this|asking|chasing|calling)",
    ]
)

CHURN = _compile(
    [
        r"(?:switch|switching|switched|move|moving|go|going|change|changing)\s+(?:over\s+)?to\s+"
        r"(?:another|a\s+different|a\s+new|your\s+competitor|the\s+competition|a\s+competitor)",
        r"(?:switch|switching|change|changing)\s+(?:banks?|providers?|airlines?|carriers?|"
        r"suppliers?|companies|networks?)",
        r"(?:cancel|cancell?ing|terminate|terminating|end|ending|close|closing)\s+my\s+"
        r"(?:account|subscription|membership|contract|plan|policy|service)",
        r"(?:want|going|need)\s+to\s+cancel",
        r"taking\s+my\s+(?:business|money|custom)\s+elsewhere",
        r"(?:find|finding|look\s+for|looking\s+for)\s+(?:another|a\s+(?:new|different|better))\s+"
        r"(?:bank|provider|airline|company|supplier|carrier|service)",
        r"looking\s+(?:at|for)\s+(?:other|alternative)\s+(?:options|providers|companies)",
        r"never\s+(?:fly(?:ing)?|shop(?:ping)?|buy(?:ing)?|order(?:ing)?|us(?:e|ing)|book(?:ing)?)"
        r"\s+(?:with\s+|from\s+)?(?:you|them|here)\s+again",
        r"(?:won" + _APOS + r"?t|will\s+not)\s+be\s+(?:back|renewing|returning|coming\s+back)",
        r"(?:last|final)\s+time\s+i\s+(?:fly|use|order|buy|book|shop)",
        r"port(?:ing)?\s+my\s+number",
        r"(?:i" + _APOS + r"?m|i\s+am|we" + _APOS + r"?re|we\s+are)\s+(?:leaving|switching)",
        r"(?:leave|leaving)\s+(?:you|your\s+(?:bank|company|service))",
    ]
)

FRICTION = _compile(
    [
        r"(?:second|third|fourth|fifth|2nd|3rd|4th|5th|umpteenth|nth)\s+time",
        r"(?:called|rang|phoned|emailed|written|wrote|contacted\s+you|asked|chased)\s+"
        r"(?:\w+\s+)?(?:twice|again|(?:\d+|two|three|four|five|six|several|multiple|many)\s+times)",
        r"(?:\d+|two|three|four|five|several|multiple)\s+(?:calls|emails|phone\s+calls|times)",
        r"(?:been|was|got|being|get)\s+(?:transferred|passed\s+around|bounced\s+around|"
        r"passed\s+from|put\s+through\s+to)",
        r"transferred\s+(?:again|twice|(?:\d+|two|three|four|five|multiple)\s+times)",
        r"repeat(?:ing|ed)?\s+(?:myself|my\s+(?:story|details|account\s+number)|the\s+same)",
        r"explain(?:ed|ing)?\s+(?:it|this|my\s+(?:issue|problem|situation))?\s*"
        r"(?:again|twice|over\s+and\s+over|(?:three|four|\d+)\s+times)",
        r"(?:keep|kept)\s+(?:calling|asking|chasing|getting\s+(?:cut\s+off|transferred))",
        r"(?:no\s+one|nobody)\s+(?:ever\s+)?(?:calls?|called|gets?|got|rings?|rang)\s+(?:me\s+)?back",
        r"(?:calling|writing|emailing|contacting\s+you)\s+again",
        r"(?:yet|once)\s+again",
        r"still\s+(?:waiting|not\s+(?:fixed|resolved|sorted|working)|no\s+(?:answer|reply|refund|"
        r"response))",
        r"(?:hours|days|weeks)\s+(?:on\s+the\s+phone|of\s+(?:calls|chasing|back\s+and\s+forth))",
    ]
)

POSITIVE_WORD = _compile(
    [
        r"great",
        r"perfect",
        r"fantastic",
        r"wonderful",
        r"brilliant",
        r"awesome",
        r"amazing",
        r"lovely",
        r"excellent",
        r"superb",
        r"fabulous",
        r"splendid",
        r"nice",
        r"love(?:\s+(?:it|that|how|when))?",
        r"thanks(?:\s+(?:a\s+lot|so\s+much|for\s+nothing))?",
        r"thank\s+you(?:\s+so\s+much)?",
        r"(?:so|very|really)\s+helpful",
        r"just\s+what\s+i\s+needed",
        r"oh\s+(?:good|joy)",
        r"yay",
    ]
)

NEGATIVE_SITUATION = _compile(
    [
        r"on\s+hold",
        r"another\s+(?:hour|day|week|delay|charge|fee|excuse|email|call|cancellation|"
        r"\d+\s+(?:minutes|hours|days))",
        r"(?:hours?|days?|weeks?)\s+(?:late|wait(?:ing)?|delay(?:ed)?|on\s+hold|in\s+a\s+queue)",
        r"delay(?:ed|s)?",
        r"cancell?ed",
        r"lost",
        r"broken?",
        r"damaged",
        r"stuck",
        r"stranded",
        r"missed",
        r"late",
        r"(?:no|without)\s+(?:refund|answer|reply|response|wifi|power|signal|service|one)",
        r"nobody",
        r"still\s+(?:waiting|not|no)",
        r"charged\s+(?:twice|again|me)",
        r"overcharged",
        r"(?:waiting|waited)\s+(?:for\s+)?(?:\d+|an?|two|three)\s+(?:minutes|hours?|days?|weeks?)",
        r"queue",
        r"outage",
        r"down\s+again",
        r"doesn" + _APOS + r"?t\s+work",
        r"not\s+working",
        r"for\s+nothing",
        r"#not",
    ]
)
# A problem reported as put right ("they fixed it", "sorted it out", "my refund arrived"):
# the bad situation named beside it is over, so thanks around it are sincere, not sarcasm.
# Only counts with the emotions the text shows (see ``resolved``).
RESOLUTION = _compile(
    [
        r"(?:fix|resolv|solv|repair|replac|refund|reimburs|rebook|reinstat|restor|unlock|"
        r"reactivat|reconnect)(?:ed|ing)",
        r"sort(?:ed|ing)\s+(?:(?:it|this|that|things|everything|me|my\s+\w+(?:\s+\w+)?)\s+)?out",
        r"sorted",
        r"(?:took|taken|taking)\s+care\s+of",
        r"(?:working|back\s+(?:up|online|on))\s+(?:again|now)",
        r"got\s+(?:it|this|that|everything|me)\s+(?:fixed|sorted|working|back|through)",
        r"handled",
        r"arrived",
    ]
)
# Emotions (labels of the emotions head) that show a resolution was welcome, or was not.
GLAD_EMOTIONS = ("gratitude", "relief", "joy", "admiration", "approval", "love", "optimism")
UPSET_EMOTIONS = (
    "anger",
    "annoyance",
    "disappointment",
    "disapproval",
    "disgust",
    "sadness",
    "pessimism",
    "fear",
)

# Stand-alone sarcastic set phrases that need no separate negative situation.
SARCASTIC_PHRASE = _compile(
    [
        r"thanks\s+for\s+nothing",
        r"yeah\s+right",
        r"just\s+(?:perfect|great|brilliant|wonderful)(?=\s*[.!]|$)",
        r"what\s+a\s+(?:joke|surprise)",
        r"love\s+that\s+for\s+me",
        r"#not",
        r"nothing\s+like\s+(?:a|an)\s+\w+",
    ]
)


@dataclass(frozen=True)
class Cue:
    """A lexical cue found in a text."""

    name: str
    matches: tuple[Match, ...]


def find(pattern: re.Pattern[str], text: str) -> list[Match]:
    """Every match of a cue pattern: (start, end, text)."""
    return [(m.start(), m.end(), m.group(0)) for m in pattern.finditer(text)]


def sarcasm(text: str) -> list[Match]:
    """Spans showing sarcasm: a set phrase, or a positive word with a negative situation.

    Returns no span when the text has no negative situation and no set phrase, so plain
    praise ("Great service, just perfect!") does not count.
    """
    phrases = find(SARCASTIC_PHRASE, text)
    situations = find(NEGATIVE_SITUATION, text)
    positives = find(POSITIVE_WORD, text)
    if situations and positives:
        return sorted({*phrases, *positives, *situations})
    if phrases and situations:
        return sorted({*phrases, *situations})
    # A set phrase alone is weak evidence; the caller weighs it with the sentiment.
    return phrases


def _emotion(emotions: Mapping[str, Any], label: str) -> float:
    value = emotions.get(label)
    if isinstance(value, Mapping):
        value = value.get("score")
    return float(value) if isinstance(value, int | float) else 0.0


def resolved(text: str, emotions: Mapping[str, Any] | None) -> list[Match]:
    """Spans reporting a problem put right, in a unit whose emotions welcome it.

    "The support agent fixed my problem quickly, thank you." names a problem, and irony
    heads trained on tweets read thanks beside a problem as sarcasm; what sets it apart is
    that the problem is over (``RESOLUTION``) and the emotions head hears gratitude, relief or
    joy (>= 0.5) with no anger, annoyance, disappointment or sadness (< 0.3). "My package
    arrived damaged." names a resolution word too, but the upset emotions keep it a
    complaint. Without emotion scores nothing counts as resolved.

    Args:
        text: the unit's text.
        emotions: the unit's emotions (label -> {"score", ...} or label -> score), or None.

    Returns:
        The resolution phrases, or an empty list when the unit is not a resolved problem.
    """
    if not emotions:
        return []
    matches = find(RESOLUTION, text)
    if not matches:
        return []
    glad = max(_emotion(emotions, label) for label in GLAD_EMOTIONS)
    upset = max(_emotion(emotions, label) for label in UPSET_EMOTIONS)
    return matches if glad >= 0.5 and upset < 0.3 else []
