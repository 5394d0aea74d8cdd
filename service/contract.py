"""The analysis contract: one pydantic schema shared by the CLI (`undertone analyze`) and the API.

The analysis libraries (``nlp``, ``asr``) know nothing of this module: they return plain
dicts of this shape, and the composition roots validate them here before storing or
returning. Later stages add optional fields (``emotions``, ``irony``, ``complaint``,
``case_types``, ``detections``) to the same object.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

SentimentLabel = Literal["negative", "neutral", "positive"]


class Sentiment(BaseModel):
    """A three-way sentiment decision with its probabilities."""

    label: SentimentLabel
    scores: dict[SentimentLabel, float]
    # The sentiment head's own scores when the text was read as sarcastic (irony plus a
    # negative situation moved the ironic share of "positive" to "negative"); else absent.
    literal: dict[SentimentLabel, float] | None = None


class EmotionScore(BaseModel):
    """One emotion: probability, the thresholded decision, and its intensity when known."""

    score: float
    present: bool
    intensity: float | None = None


class SentenceResult(BaseModel):
    """Scores for one sentence (or one call turn's sentence), with character offsets."""

    model_config = ConfigDict(extra="allow")

    start: int
    end: int
    text: str
    sentiment: Sentiment
    emotions: dict[str, EmotionScore] | None = None
    intensity: float | None = None
    irony: float | None = None


class CaseTypeEvidence(BaseModel):
    """Why a case type was chosen: a sentence near its examples, or a rule's match."""

    model_config = ConfigDict(extra="allow")  # e.g. "matched": the example or rule

    start: int
    end: int
    text: str
    source: Literal["example", "rule"]


class CaseTypeMatch(BaseModel):
    """One case type of the taxonomy the text maps onto, with its confidence."""

    model_config = ConfigDict(extra="allow")

    id: str
    name: str
    confidence: float
    evidence: list[CaseTypeEvidence] = Field(default_factory=list)


class TaxonomyRef(BaseModel):
    """The taxonomy version that produced the case types."""

    name: str
    version: str


class ComplaintSignal(BaseModel):
    """One signal that a text is a complaint (nlp/detect/README.md lists the names)."""

    model_config = ConfigDict(extra="allow")

    name: str
    value: Any = None
    confidence: float
    evidence: list[dict[str, Any]] = Field(default_factory=list)


class ComplaintSummary(BaseModel):
    """Is this text a complaint, stated (explicit) or not (unexpressed), and why."""

    model_config = ConfigDict(extra="allow")

    score: float
    explicit: bool
    unexpressed: bool
    signals: list[ComplaintSignal] = Field(default_factory=list)
    head_score: float | None = None


def _complaint_from_head(value: Any) -> Any:
    # Without the detection stage the complaint head's bare probability lands here.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"score": value, "explicit": value >= 0.5, "unexpressed": False, "head_score": value}
    return value


class PriorityFactor(BaseModel):
    """One factor of a detection's priority: its value on 0..1, weight and contribution."""

    model_config = ConfigDict(extra="allow")

    value: float
    weight: float
    contribution: float


class Priority(BaseModel):
    """A 0-100 priority; the factors' contributions add up to the score."""

    score: float
    factors: dict[str, PriorityFactor]


class CaseTypeRef(BaseModel):
    """The case type a detection is about."""

    id: str
    name: str
    confidence: float | None = None


class Detection(BaseModel):
    """An explicit or unexpressed complaint a case system can act on (nlp/detect/README.md)."""

    model_config = ConfigDict(extra="allow")

    case_type: CaseTypeRef | None
    kind: Literal["explicit", "unexpressed"]
    signals: list[ComplaintSignal]
    confidence: float
    evidence: list[dict[str, Any]]
    priority: Priority
    due_by: str
    routing: dict[str, Any] | None = None
    recovery_options: list[str] = Field(default_factory=list)
    checklist: list[str] = Field(default_factory=list)
    customer_id: str | None = None
    employee_id: str | None = None
    model_versions: dict[str, str] = Field(default_factory=dict)
    taxonomy: TaxonomyRef | None = None


class AnalysisResult(BaseModel):
    """One analysed text: the line `undertone analyze` writes and the API returns."""

    model_config = ConfigDict(extra="allow")

    id: str
    language: str
    sentiment: Sentiment
    sentences: list[SentenceResult]
    emotions: dict[str, EmotionScore] | None = None
    intensity: float | None = None
    irony: float | None = None
    case_types: list[CaseTypeMatch] | None = None
    taxonomy: TaxonomyRef | None = None
    fits_no_case_type: bool | None = None
    complaint: Annotated[ComplaintSummary | None, BeforeValidator(_complaint_from_head)] = None
    detections: list[Detection] | None = None
    model_versions: dict[str, str] = Field(default_factory=dict)


def validate_analysis(payload: dict[str, Any]) -> AnalysisResult:
    """Validate a library's result dict against the contract."""
    return AnalysisResult.model_validate(payload)
