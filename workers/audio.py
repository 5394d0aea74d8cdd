"""Audio for the recording stages and the upload API: probing uploads, the process's Whisper.

`probe_upload` fills the API's `service.audio.AudioProbe` seam (it needs only PyAV, no
model); `WhisperRuntime` loads the configured faster-whisper model once per process, on the
first recording, and runs one transcription at a time.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from service.audio import AudioRejected, ProbedAudio
from service.config import Settings

if TYPE_CHECKING:
    from asr import Layout, ProgressCallback, Transcriber, Transcript

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


def whisper_model_dir(settings: Settings) -> Path:
    """The CTranslate2 directory of ``settings.asr.model`` (base is assembled if missing)."""
    from models.registry import resolve

    paths = resolve(settings.models, settings.artifacts_dir)
    if settings.asr.model == "tiny.en":
        return paths.whisper_tiny_en_dir
    directory = paths.whisper_base_dir
    if "whisper-base" not in paths.custom and not (directory / "model.bin").is_file():
        # `undertone models setup` normally did it; joining here keeps a worker working.
        from models.assemble import assemble_whisper_base
        from models.manifest import load_manifest

        assemble_whisper_base(load_manifest(), directory)
    return directory


class WhisperRuntime:
    """The process's transcriber, loaded on first use and used by one call at a time.

    One lock serialises transcriptions: CTranslate2 already uses the threads it is given,
    so two recordings at once would only contend for the same cores.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._transcriber: Transcriber | None = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    @property
    def model_name(self) -> str:
        """The Whisper model this runtime uses (for the stored versions)."""
        return f"whisper-{self._settings.asr.model}"

    def load(self) -> Transcriber:
        """Load the model once; later calls return the same transcriber."""
        if self._transcriber is None:
            with self._load_lock:
                if self._transcriber is None:
                    from faster_whisper import WhisperModel

                    from asr import TranscribeOptions, Transcriber

                    asr = self._settings.asr
                    model = WhisperModel(
                        str(whisper_model_dir(self._settings)),
                        device=asr.device,
                        compute_type=asr.compute_type,
                        cpu_threads=asr.cpu_threads,
                    )
                    options = TranscribeOptions(
                        language=asr.language,
                        max_duration=self._settings.api.max_recording_seconds,
                    )
                    self._transcriber = Transcriber(model, options)
        return self._transcriber

    def transcribe(
        self,
        path: Path,
        layout: Layout,
        language: str | None,
        progress: ProgressCallback | None = None,
    ) -> Transcript:
        """Transcribe one recording; raises ``asr.AsrError`` subclasses for unusable audio."""
        transcriber = self.load()
        with self._run_lock:
            return transcriber.transcribe(path, layout=layout, language=language, progress=progress)
