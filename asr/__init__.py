"""Transcription library: recordings in, speaker-labelled transcripts out (faster-whisper).

Public API: ``Transcriber``, ``TranscribeOptions``, ``probe``, the data types and errors.
Imports nothing of the project's and reads no environment.

``Transcriber`` (faster-whisper, CTranslate2, onnxruntime: hundreds of MB) is imported on
first access only, so a process that only probes uploads (the API) needs nothing but PyAV.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asr.audio import AudioInfo, probe
from asr.errors import (
    AsrError,
    AudioTooLongError,
    CorruptAudioError,
    EmptyAudioError,
    LayoutMismatchError,
    SilentAudioError,
    UnsupportedFormatError,
)
from asr.options import TranscribeOptions
from asr.types import LAYOUTS, Layout, Segment, Transcript, Word

if TYPE_CHECKING:
    from asr.transcriber import ProgressCallback, Transcriber

_LAZY = {"Transcriber", "ProgressCallback"}

__all__ = [
    "LAYOUTS",
    "AsrError",
    "AudioInfo",
    "AudioTooLongError",
    "CorruptAudioError",
    "EmptyAudioError",
    "Layout",
    "LayoutMismatchError",
    "ProgressCallback",
    "Segment",
    "SilentAudioError",
    "TranscribeOptions",
    "Transcriber",
    "Transcript",
    "UnsupportedFormatError",
    "Word",
    "probe",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from asr import transcriber

        return getattr(transcriber, name)
    raise AttributeError(f"module 'asr' has no attribute {name!r}")
