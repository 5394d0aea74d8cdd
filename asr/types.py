"""The transcript data types: words, speaker-labelled segments, and the whole transcript."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Layout = Literal["mono", "stereo_agent_left", "stereo_agent_right"]
LAYOUTS: tuple[Layout, ...] = ("mono", "stereo_agent_left", "stereo_agent_right")
Speaker = Literal["agent", "customer"]


@dataclass(frozen=True)
class Word:
    """One word with its time span in seconds from the start of the recording."""

    start: float
    end: float
    word: str
    probability: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "word": self.word,
            "probability": round(self.probability, 4),
        }


@dataclass(frozen=True)
class Segment:
    """A stretch of one speaker's speech (a turn or part of one).

    ``role_confidence`` is 1.0 when the speaker comes from the channel layout (stereo); for
    mono recordings the role is a best-effort guess and this says how sure the guess is.
    """

    start: float
    end: float
    speaker: Speaker
    text: str
    words: list[Word] = field(default_factory=list)
    role_confidence: float = 1.0
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "speaker": self.speaker,
            "text": self.text,
            "words": [w.to_dict() for w in self.words],
            "role_confidence": round(self.role_confidence, 3),
        }


@dataclass(frozen=True)
class Transcript:
    """A recording's transcript: time-ordered segments labelled agent or customer."""

    language: str
    language_probability: float
    duration: float
    segments: list[Segment]
    layout: Layout = "mono"
    # How the speaker roles were obtained: "channel" (stereo layout) or "heuristic" (mono).
    role_method: Literal["channel", "heuristic"] = "channel"

    @property
    def text(self) -> str:
        """The whole transcript as one text, segments joined in time order."""
        return " ".join(s.text for s in self.segments if s.text).strip()

    def speaker_text(self, speaker: Speaker) -> str:
        """Everything one speaker said, in time order."""
        return " ".join(s.text for s in self.segments if s.speaker == speaker).strip()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"language", "duration", "text", "segments", ...}``."""
        return {
            "language": self.language,
            "language_probability": round(self.language_probability, 4),
            "duration": round(self.duration, 3),
            "text": self.text,
            "layout": self.layout,
            "role_method": self.role_method,
            "segments": [s.to_dict() for s in self.segments],
        }
