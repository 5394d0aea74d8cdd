"""Composition root of transcription: builds the faster-whisper model and ``asr.Transcriber``
from Settings, once per process, for the CLI and the recording jobs.

A job calls::

    runtime = TranscriptionRuntime(settings)            # once per worker process
    transcript = runtime.transcribe(path, layout="stereo_agent_left", language=None,
                                    progress=lambda f: lease.report(percent=round(100 * f)))
    stored = transcript.to_dict()

and maps ``asr.AsrError`` subclasses (``error.code``, ``str(error)``) to a ``failed`` status.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from asr.errors import AsrError as TranscriptionError
from service.config import Settings

if TYPE_CHECKING:
    from asr import Layout, ProgressCallback, Transcriber, Transcript

__all__ = ["TranscriptionError", "TranscriptionRuntime", "build_transcriber"]

ModelName = Literal["base", "tiny.en"]


def whisper_model_dir(settings: Settings, model: ModelName) -> Path:
    """The CTranslate2 directory of ``model``; the base model is assembled on first use."""
    from models.assemble import assemble_whisper_base
    from models.manifest import load_manifest
    from models.registry import resolve

    paths = resolve(settings.models, settings.artifacts_dir)
    if model == "tiny.en":
        return paths.whisper_tiny_en_dir
    directory = paths.whisper_base_dir
    if "whisper-base" not in paths.custom and not (directory / "model.bin").is_file():
        # `undertone models setup` normally did this; joining here keeps a first
        # `undertone transcribe` working without that step.
        assemble_whisper_base(load_manifest(), directory)
    return directory


def build_transcriber(settings: Settings, model: ModelName | None = None) -> Transcriber:
    """A Transcriber with the configured model, device, compute type and language hint."""
    from faster_whisper import WhisperModel

    from asr import TranscribeOptions, Transcriber

    name = model or settings.asr.model
    whisper = WhisperModel(
        str(whisper_model_dir(settings, name)),
        device=settings.asr.device,
        compute_type=settings.asr.compute_type,
        cpu_threads=settings.asr.cpu_threads,
    )
    options = TranscribeOptions(
        language=settings.asr.language,
        max_duration=settings.api.max_recording_seconds,
    )
    return Transcriber(whisper, options)


class TranscriptionRuntime:
    """The process's transcriber, built lazily and used by one call at a time.

    One lock serialises calls: CTranslate2 already uses every thread it is given, so two
    recordings at once would only contend for the same cores.
    """

    def __init__(self, settings: Settings, model: ModelName | None = None) -> None:
        self._settings = settings
        self._model = model
        self._transcriber: Transcriber | None = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    def load(self) -> Transcriber:
        """Load the model (once); later calls return the same transcriber."""
        if self._transcriber is None:
            with self._load_lock:
                if self._transcriber is None:
                    self._transcriber = build_transcriber(self._settings, self._model)
        return self._transcriber

    def transcribe(
        self,
        path: Path | str,
        layout: Layout = "mono",
        language: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> Transcript:
        """Transcribe one recording; raises ``asr.AsrError`` subclasses for bad files."""
        transcriber = self.load()
        with self._run_lock:
            return transcriber.transcribe(path, layout=layout, language=language, progress=progress)
