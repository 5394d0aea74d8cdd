"""Errors of the transcription library, each with a stable code a caller can map to a status.

An API turns these into a 4xx at upload (``probe``) or into a job's ``failed`` reason
(``Transcriber.transcribe``); the message is written for the person who sent the file.
"""

from __future__ import annotations


class AsrError(Exception):
    """Base class: a recording that cannot be transcribed, and why."""

    code = "asr_error"


class UnsupportedFormatError(AsrError):
    """The file is not one of the accepted audio/video containers, or has no audio track."""

    code = "unsupported_format"


class CorruptAudioError(AsrError):
    """The container is recognised but its data cannot be decoded."""

    code = "corrupt_audio"


class EmptyAudioError(AsrError):
    """The file holds no audio samples (zero bytes, or a container without frames)."""

    code = "empty_audio"


class SilentAudioError(AsrError):
    """The audio decodes but holds no sound (or no speech) to transcribe."""

    code = "silent_audio"


class AudioTooLongError(AsrError):
    """The recording is longer than the configured limit."""

    code = "audio_too_long"


class LayoutMismatchError(AsrError):
    """A stereo layout was given for a recording that has a single channel."""

    code = "layout_mismatch"
