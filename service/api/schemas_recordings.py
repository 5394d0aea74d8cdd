"""Bodies of the recording endpoints: the upload's form fields, the 202, and GET's answer."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.api.schemas import Channel, FeedbackContext, ShortStr, StatusEventOut


class Layout(StrEnum):
    """Which voice is on which channel."""

    mono = "mono"
    stereo_agent_left = "stereo_agent_left"
    stereo_agent_right = "stereo_agent_right"


class RecordingForm(FeedbackContext):
    """The form fields sent with the file (multipart/form-data); all are strings on the wire.

    The feedback fields and their checks (score on its scale, metadata size, aware times) are
    `FeedbackContext`'s; only `metadata` differs on the wire: a JSON string in a form field.
    """

    external_id: ShortStr
    channel: Channel = Channel.call
    layout: Layout = Layout.mono

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
