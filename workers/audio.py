"""Upload checks for the API: `probe_upload` fills the `service.audio.AudioProbe` seam.

It needs only PyAV (``asr.audio``), never a model: the API process imports no
faster-whisper or CTranslate2 (tests/asr/test_imports.py holds it to that). The process's
Whisper, for the CLI and the recording stages alike, is `workers.transcribe.TranscriptionRuntime`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from service.audio import AudioRejected, ProbedAudio

# Uploads up to this long are decoded whole at upload time to refuse digital silence with
# a 4xx (cheap: about a second of CPU per minute of audio); longer ones are checked by the
# transcription, which fails them with the reason.
SILENCE_CHECK_MAX_SECONDS = 120.0
# Peak amplitude below which a recording holds no sound at all (-60 dBFS), as in asr.
SILENCE_PEAK = 1e-3
_ACCEPTED = "accepted: WAV, FLAC, MP3, OGG/Opus, M4A/AAC, WebM, MP4/MOV"


def probe_upload(path: Path, max_seconds: float) -> ProbedAudio:
    """Validate an uploaded file cheaply; `AudioRejected` names the problem (never a 500).

    Args:
        path: The uploaded file (its extension, if any, helps tell corrupt from unsupported).
        max_seconds: The longest recording accepted.

    Returns:
        Container, codec, duration, channels and sample rate of the first audio track.
    """
    from asr import errors
    from asr.audio import probe

    name = path.name
    try:
        info = probe(path, max_duration=max_seconds)
        if info.duration is not None and info.duration <= SILENCE_CHECK_MAX_SECONDS:
            _refuse_digital_silence(path)
    except errors.UnsupportedFormatError as e:
        raise AudioRejected(_clean(e, name), code=e.code, status_code=415) from e
    except errors.AsrError as e:
        raise AudioRejected(_clean(e, name), code=e.code) from e
    except Exception as e:  # whatever FFmpeg throws at a hostile file is still a bad upload
        raise AudioRejected(
            f"the file cannot be read as audio ({type(e).__name__}: {e}); {_ACCEPTED}",
            code="corrupt_audio",
        ) from e
    return ProbedAudio(
        container=info.container,
        codec=info.codec,
        duration=info.duration,
        channels=info.channels,
        sample_rate=info.sample_rate,
    )


def _refuse_digital_silence(path: Path) -> None:
    from asr.audio import stream_audio
    from asr.errors import SilentAudioError

    peak = 0.0
    for chunk in stream_audio(path, channels=1):
        peak = max(peak, float(np.abs(chunk).max(initial=0.0)))
        if peak >= SILENCE_PEAK:
            return
    raise SilentAudioError(f"{path.name}: the recording has no sound (digital silence)")


def _clean(error: Exception, temp_name: str) -> str:
    # The library names the file; the caller knows it by their own name, not our temp name.
    message = str(error)
    prefix = f"{temp_name}: "
    return message[len(prefix) :] if message.startswith(prefix) else message
