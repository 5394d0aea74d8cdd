"""The seam between the upload API and audio decoding: the API depends only on this protocol.

Probing a file needs FFmpeg's libraries (PyAV), which live with the transcription library;
the composition roots fill ``create_app(audio_probe=...)`` with
``workers.audio.probe_upload``, so the API package itself imports no audio code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from service.errors import UndertoneError


@dataclass(frozen=True)
class ProbedAudio:
    """What a cheap look at an uploaded file found."""

    container: str
    codec: str
    duration: float | None
    channels: int
    sample_rate: int


class AudioProbe(Protocol):
    """Validates an uploaded recording without transcribing it."""

    def __call__(self, path: Path, max_seconds: float) -> ProbedAudio:
        """Probe ``path``; raise `AudioRejected` naming the problem of an unusable file."""


class AudioRejected(UndertoneError):
    """An upload that is not usable audio: empty, corrupt, silent, unsupported or too long."""

    status_code = 422
    code = "invalid_audio"

    def __init__(self, message: str, *, code: str, status_code: int = 422) -> None:
        super().__init__(message, code=code)
        self.status_code = status_code
