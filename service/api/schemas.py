"""Request and response bodies of the API (the analysis itself is `service.contract`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from service.contract import AnalysisResult

MAX_METADATA_CHARS = 16_384
ShortStr = Annotated[str, Field(min_length=1, max_length=200)]


class Channel(StrEnum):
    """Where the feedback came from."""

    survey = "survey"
    social = "social"
    review = "review"
    chat = "chat"
    email = "email"
    call = "call"
    other = "other"


class Scale(StrEnum):
    """The scale a numeric score is on."""

    csat_1_5 = "csat_1_5"
    nps_0_10 = "nps_0_10"
    stars_1_5 = "stars_1_5"
    ces_1_7 = "ces_1_7"
    other = "other"


# Inclusive bounds and whether only whole numbers are allowed.
SCALE_RANGES: dict[Scale, tuple[float, float, bool]] = {
    Scale.csat_1_5: (1, 5, True),
    Scale.nps_0_10: (0, 10, True),
    Scale.stars_1_5: (1, 5, False),
    Scale.ces_1_7: (1, 7, True),
}


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("text is empty")
    return value


class FeedbackContext(BaseModel):
    """The optional fields that travel with a text: they feed the detections (score, history)."""

    model_config = ConfigDict(extra="forbid")

    score: float | None = Field(default=None, description="A rating, validated against `scale`.")
    scale: Scale | None = None
    customer_id: ShortStr | None = None
    occurred_at: datetime | None = Field(default=None, description="ISO 8601; naive means UTC.")
    employee_id: ShortStr | None = None
    team: ShortStr | None = None
    location: ShortStr | None = None
    journey: ShortStr | None = None
    segment: ShortStr | None = None
    language: Annotated[str, Field(min_length=2, max_length=20)] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free JSON (16 KiB max).")

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_size(cls, value: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(value, ensure_ascii=False))
        if size > MAX_METADATA_CHARS:
            raise ValueError(
                f"metadata is {size} characters of JSON, the maximum is {MAX_METADATA_CHARS}"
            )
        return value

    @model_validator(mode="after")
    def _score_on_scale(self) -> Self:
        if self.score is None and self.scale is None:
            return self
        if self.score is None or self.scale is None:
            raise ValueError("score and scale go together: give both or neither")
        bounds = SCALE_RANGES.get(self.scale)
        if bounds is not None:
            low, high, whole = bounds
            if not low <= self.score <= high or (whole and not self.score.is_integer()):
                kind = "a whole number" if whole else "a number"
                raise ValueError(
                    f"score {self.score:g} is not valid on {self.scale.value}: "
                    f"expected {kind} from {low:g} to {high:g}"
                )
        return self


class FeedbackIn(FeedbackContext):
    """One feedback item."""

    external_id: ShortStr = Field(description="Your id of the item; resending it never duplicates.")
    text: str = Field(min_length=1, description="The feedback text (limit: api.max_text_chars).")
    channel: Channel

    _check_text = field_validator("text")(_non_blank)


class FeedbackBatchIn(BaseModel):
    """Several feedback items in one request (limit: api.max_batch_items)."""

    model_config = ConfigDict(extra="forbid")

    items: list[FeedbackIn] = Field(min_length=1)


def _feedback_shape(value: Any) -> str:
    return "batch" if isinstance(value, dict) and "items" in value else "single"


FeedbackRequest = Annotated[
    Annotated[FeedbackBatchIn, Tag("batch")] | Annotated[FeedbackIn, Tag("single")],
    Discriminator(_feedback_shape),
]


class AcceptedItem(BaseModel):
    """What happened to one submitted item."""

    id: str
    external_id: str
    status: str
    outcome: Literal["created", "duplicate"]


class AcceptedResponse(BaseModel):
    """The answer to POST /v1/feedback."""

    items: list[AcceptedItem]
    created: int
    duplicates: int


class StatusEventOut(BaseModel):
    """One status change."""

    status: str
    detail: str | None
    at: datetime


class FeedbackOut(BaseModel):
    """A stored item, its status history and its analysis once done."""

    id: str
    external_id: str
    status: str
    error: str | None
    text: str
    channel: str
    score: float | None
    scale: str | None
    customer_id: str | None
    occurred_at: datetime | None
    employee_id: str | None
    team: str | None
    location: str | None
    journey: str | None
    segment: str | None
    language: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    history: list[StatusEventOut]
    analysis: AnalysisResult | None
    model_versions: dict[str, Any] | None


class AnalyzeItem(FeedbackContext):
    """One short text to analyse now, with the same optional fields as feedback."""

    id: ShortStr | None = Field(default=None, description="Echoed back; default: the position.")
    text: str = Field(min_length=1, description="Limit: api.analyze_max_chars characters.")
    channel: Channel | None = None

    _check_text = field_validator("text")(_non_blank)


class AnalyzeRequest(BaseModel):
    """Texts to analyse synchronously (limit: api.analyze_max_texts); nothing is stored."""

    model_config = ConfigDict(extra="forbid")

    items: list[AnalyzeItem] = Field(min_length=1)


class AnalyzeResponse(BaseModel):
    """One contract object per submitted text, in order."""

    results: list[AnalysisResult]
