"""The process's Whisper: one faster-whisper model per process, for the CLI and the stages.

`undertone transcribe` and the `recording.transcribe` stage (embedded threads or a Celery
worker) both go through `TranscriptionRuntime`; the model behind it is loaded on the first
recording and cached per process by its settings (model, device, compute type, threads), so
two runtimes built from the same settings share one model and one run lock. A job calls::

    runtime = TranscriptionRuntime(settings)            # cheap: nothing loads yet
    transcript = runtime.transcribe(path, layout="stereo_agent_left", language=None,
                                    progress=lambda f: lease.report(percent=round(100 * f)))

and maps ``asr.AsrError`` subclasses (``error.code``, ``str(error)``) to a ``failed`` status.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from asr.errors import AsrError as TranscriptionError
from service.config import Settings

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from asr import Layout, ProgressCallback, Transcriber, Transcript

__all__ = [
    "TranscriptionError",
    "TranscriptionRuntime",
    "build_transcriber",
    "whisper_model_dir",
]

ModelName = Literal["base", "tiny.en"]


def whisper_model_dir(settings: Settings, model: ModelName | None = None) -> Path:
    """The CTranslate2 directory of ``model``; the base model is assembled on first use."""
    from models.registry import resolve

    paths = resolve(settings.models, settings.artifacts_dir)
    if (model or settings.asr.model) == "tiny.en":
        return paths.whisper_tiny_en_dir
    directory = paths.whisper_base_dir
    if "whisper-base" not in paths.custom and not (directory / "model.bin").is_file():
        # `undertone models setup` normally did this; joining here keeps a first
        # `undertone transcribe` (or a fresh worker) working without that step.
        from models.assemble import assemble_whisper_base
        from models.manifest import load_manifest

        assemble_whisper_base(load_manifest(), directory)
    return directory


def load_whisper(settings: Settings, model: ModelName | None = None) -> WhisperModel:
    """One faster-whisper model with the configured device, compute type and threads."""
    from faster_whisper import WhisperModel

    return WhisperModel(
        str(whisper_model_dir(settings, model)),
        device=settings.asr.device,
        compute_type=settings.asr.compute_type,
        cpu_threads=settings.asr.cpu_threads,
    )


def second_opinion(
    settings: Settings, model: ModelName | None = None
) -> Callable[[], WhisperModel] | None:
    """What loads the short-clip second opinion (tiny.en) for ``model``, or None when off or
    when ``model`` is tiny.en already."""
    if settings.asr.short_clip_second_model != "tiny.en":
        return None
    if (model or settings.asr.model) == "tiny.en":
        return None
    return lambda: load_whisper(settings, "tiny.en")


def build_transcriber(settings: Settings, model: ModelName | None = None) -> Transcriber:
    """A new Transcriber with the configured model, device, compute type and language hint.

    Loads a model every call: processes use `TranscriptionRuntime`, which caches it.
    """
    from asr import TranscribeOptions, Transcriber

    options = TranscribeOptions(
        language=settings.asr.language,
        max_duration=settings.api.max_recording_seconds,
        batch_size=settings.asr.batch_size,
    )
    return Transcriber(load_whisper(settings, model), options, second_opinion(settings, model))


@dataclass
class _Loaded:
    transcriber: Transcriber
    # CTranslate2 already uses every thread it is given: two recordings at once on one
    # model would only contend for the same cores, so calls take turns.
    run_lock: threading.Lock


_CACHE: dict[tuple[object, ...], _Loaded] = {}
_CACHE_LOCK = threading.Lock()


class TranscriptionRuntime:
    """The process's transcriber, loaded on first use and used by one call at a time."""

    def __init__(self, settings: Settings, model: ModelName | None = None) -> None:
        self._settings = settings
        self._model: ModelName = model or settings.asr.model

    @property
    def model_name(self) -> str:
        """The Whisper model this runtime uses (stored with each transcript)."""
        return f"whisper-{self._model}"

    def _key(self) -> tuple[object, ...]:
        s = self._settings
        return (
            str(whisper_model_dir(s, self._model)),
            s.asr.device,
            s.asr.compute_type,
            s.asr.cpu_threads,
            s.asr.language,
            s.asr.batch_size,
            s.asr.short_clip_second_model,
            s.api.max_recording_seconds,
        )

    def _loaded(self) -> _Loaded:
        with _CACHE_LOCK:  # held while loading: a second caller waits, it does not load twice
            loaded = _CACHE.get(self._key())
            if loaded is None:
                loaded = _Loaded(build_transcriber(self._settings, self._model), threading.Lock())
                _CACHE[self._key()] = loaded
        return loaded

    def load(self) -> Transcriber:
        """Load the model (once per process and settings); later calls return the same one."""
        return self._loaded().transcriber

    def transcribe(
        self,
        path: Path | str,
        layout: Layout = "mono",
        language: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> Transcript:
        """Transcribe one recording; raises ``asr.AsrError`` subclasses for bad files."""
        loaded = self._loaded()
        with loaded.run_lock:
            return loaded.transcriber.transcribe(
                path, layout=layout, language=language, progress=progress
            )
