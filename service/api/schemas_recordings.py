"""Bodies of the recording endpoints: the upload's form fields, the 202, and GET's answer."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from service.api.schemas import (
    MAX_METADATA_CHARS,
    SCALE_RANGES,
    Channel,
    Scale,
    ShortStr,
    StatusEventOut,
)


class Layout(StrEnum):
    """Which voice is on which channel."""

    mono = "mono"
    stereo_agent_left = "stereo_agent_left"
    stereo_agent_right = "stereo_agent_right"


class RecordingForm(BaseModel):
    """The form fields sent with the file (multipart/form-data); all are strings on the wire."""

    model_config = ConfigDict(extra="forbid")

    external_id: ShortStr
    channel: Channel = Channel.call
    layout: Layout = Layout.mono
    language: Annotated[str, Field(min_length=2, max_length=20)] | None = None
    score: float | None = None
    scale: Scale | None = None
    customer_id: ShortStr | None = None
    occurred_at: datetime | None = None
    employee_id: ShortStr | None = None
    team: ShortStr | None = None
    location: ShortStr | None = None
    journey: ShortStr | None = None
    segment: ShortStr | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return {}
            try:
                value = json.loads(value)
            except json.JSONDecodeError as e:
                raise ValueError(f"metadata is not valid JSON: {e.msg} at {e.pos}") from e
            if not isinstance(value, dict):
                raise ValueError("metadata must be a JSON object")
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

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _score_on_scale(self) -> RecordingForm:
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


class RecordingAccepted(BaseModel):
    """The answer to POST /v1/recordings."""

    id: str
    external_id: str
    status: str
    outcome: Literal["created", "duplicate"]
    duration: float | None
    channels: int | None
    sample_rate: int | None
    size_bytes: int
    sha256: str


class WordOut(BaseModel):
    """One word with its time span (seconds from the start of the recording)."""

    start: float
    end: float
    word: str
    probability: float | None = None


class SegmentOut(BaseModel):
    """One speaker turn."""

    model_config = ConfigDict(extra="allow")

    start: float
    end: float
    speaker: str
    text: str
    words: list[WordOut]
    role_confidence: float | None = Field(
        default=None, description="1 from a stereo layout; a best-effort guess for mono."
    )


class TranscriptOut(BaseModel):
    """The transcript: time-ordered turns labelled agent or customer."""

    model_config = ConfigDict(extra="allow")

    language: str
    duration: float
    text: str
    segments: list[SegmentOut]


class RecordingOut(BaseModel):
    """A stored recording: status (with progress while transcribing), transcript, analysis."""

    id: str
    external_id: str
    status: str = Field(description="queued, transcribing, analysing, done or failed")
    progress: float | None = Field(description="Percent transcribed while transcribing.")
    error: str | None
    channel: str
    layout: str
    language: str | None
    score: float | None
    scale: str | None
    customer_id: str | None
    occurred_at: datetime | None
    employee_id: str | None
    team: str | None
    location: str | None
    journey: str | None
    segment: str | None
    metadata: dict[str, Any]
    filename: str | None
    size_bytes: int
    sha256: str
    container: str | None
    codec: str | None
    duration: float | None
    channels: int | None
    sample_rate: int | None
    created_at: datetime
    updated_at: datetime
    history: list[StatusEventOut]
    transcript: TranscriptOut | None
    analysis: dict[str, Any] | None = Field(
        description="Per-turn scores, the trajectory, its peak and end, customer start/end."
    )
    model_versions: dict[str, Any] | None
