"""Transcription library: recordings in, speaker-labelled transcripts out (faster-whisper).

Public API: ``Transcriber``, ``TranscribeOptions``, ``probe``, the data types and errors.
Imports nothing of the project's and reads no environment.
"""

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
from asr.transcriber import ProgressCallback, Transcriber
from asr.types import LAYOUTS, Layout, Segment, Transcript, Word

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
