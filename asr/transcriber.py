"""Recording -> Transcript with faster-whisper: streamed windows, guards, speakers, progress.

The caller owns the ``WhisperModel`` (built once per worker process) and passes it in; this
module holds no global state, reads no environment, and is safe to call from a job that
reports progress through a callback.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.feature_extractor import FeatureExtractor
from faster_whisper.vad import VadOptions

from asr.audio import SAMPLE_RATE, FloatArray, probe, stream_audio
from asr.errors import LayoutMismatchError, SilentAudioError
from asr.guards import RawSegment, clean_segments
from asr.joint import likeliest
from asr.options import TranscribeOptions
from asr.speakers import assign_mono_roles, merge_turns, split_turns, to_segment, voice_print
from asr.types import LAYOUTS, Layout, Segment, Transcript, Word
from asr.windows import windows

ProgressCallback = Callable[[float], None]
"""Called with the fraction (0..1) of the recording transcribed so far."""

# Peak amplitude below which a recording counts as having no sound at all (-60 dBFS).
_SILENCE_PEAK = 1e-3


@dataclass
class _Run:
    """State of one transcription: language once known, progress bookkeeping."""

    language: str | None
    language_probability: float
    total_units: float
    report: ProgressCallback | None
    mono: bool = False
    done_units: float = 0.0
    peak: float = 0.0
    raws: dict[int, list[RawSegment]] = field(default_factory=dict)
    prints: list[npt.NDArray[np.float64]] = field(default_factory=list)

    def progress(self, units: float) -> None:
        if self.report is not None and self.total_units > 0:
            self.report(min(0.999, (self.done_units + units) / self.total_units))


SecondOpinion = Callable[[], WhisperModel]
"""Returns the English model that re-decodes short English clips (loaded on first use)."""


class Transcriber:
    """Transcribes recordings with a faster-whisper model the caller owns."""

    def __init__(
        self,
        model: WhisperModel,
        options: TranscribeOptions | None = None,
        second_opinion: SecondOpinion | None = None,
    ) -> None:
        """Args:
        model: A loaded ``faster_whisper.WhisperModel`` (shared across calls).
        options: How to transcribe; the defaults are the product's tested settings.
        second_opinion: For short clips in English (isolated words on a phone line), a
            second, English-only model (tiny.en) decodes the clip too, and of the two readings
            the one both models together find likelier is kept (``asr.joint``): the two
            models err on different words (benchmarks/results/asr_wer.json). Called once,
            on the first such clip.
        """
        self.model = model
        self.options = options or TranscribeOptions()
        self._features = FeatureExtractor(feature_size=80)
        self._batched = BatchedInferencePipeline(model)
        self._chunk_seconds: int = model.feature_extractor.chunk_length
        self._second_opinion = second_opinion
        self._second_model: WhisperModel | None = None

    def transcribe(
        self,
        path: Path | str,
        layout: Layout = "mono",
        language: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> Transcript:
        """Transcribe one recording.

        Args:
            path: The recording (any accepted container; decoded in a stream).
            layout: ``mono``, or which stereo channel is the agent.
            language: ISO 639-1 hint from the upload; overrides ``options.language``.
            progress: Called with the fraction done, often enough for a progress bar.

        Returns:
            The transcript: time-ordered turns labelled agent/customer.

        Raises:
            asr.errors.AsrError subclasses for files that cannot be transcribed.
        """
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
        opts = self.options
        info = probe(path, opts.max_duration)
        stereo = layout != "mono"
        if stereo and info.channels < 2:
            raise LayoutMismatchError(
                f"{Path(path).name}: layout {layout} needs two channels, the file has one"
            )
        channels = 2 if stereo else 1
        hint = language or opts.language
        run = _Run(
            language=hint,
            language_probability=1.0,
            total_units=(info.duration or 0.0) * channels,
            report=progress,
            raws={c: [] for c in range(channels)},
            mono=not stereo,
        )
        short = info.duration is not None and info.duration < opts.short_clip_seconds
        duration = 0.0
        for window in windows(stream_audio(path, channels), opts.window_seconds):
            duration = window.offset + window.duration
            run.peak = max(run.peak, float(np.abs(window.audio).max(initial=0.0)))
            for c in range(channels):
                raws = self._run_window(window.audio[c], window.offset, short, run)
                run.raws[c].extend(raws)
                if not stereo:
                    run.prints.extend(
                        self._voice_print(window.audio[0], window.offset, r) for r in raws
                    )
                run.done_units += window.duration
                run.progress(0.0)
        segments = self._label(run, layout)
        if not segments:
            if run.peak < _SILENCE_PEAK:
                raise SilentAudioError(f"{Path(path).name}: the recording has no sound")
            raise SilentAudioError(f"{Path(path).name}: no speech was found in the recording")
        if progress is not None:
            progress(1.0)
        return Transcript(
            language=run.language or "en",
            language_probability=run.language_probability,
            duration=info.duration if info.duration is not None else duration,
            segments=merge_turns(segments, opts),
            layout=layout,
            role_method="channel" if stereo else "heuristic",
        )

    def _run_window(
        self, audio: FloatArray, offset: float, short: bool, run: _Run
    ) -> list[RawSegment]:
        """Transcribe one channel of one window; times come back in recording seconds."""
        opts = self.options
        pad = opts.short_clip_pad_seconds if short else 0.0
        if pad:
            # A lone word flush against the clip's edges is often dropped or misheard; a
            # little silence around it gives Whisper the context it was trained on.
            n = int(pad * SAMPLE_RATE)
            audio = np.pad(audio, (n, n))
        # A very short clip is (nearly) all speech: the VAD cut only risks clipping it.
        vad = opts.vad_filter and not short
        batched = vad and opts.batch_size > 1
        common: dict[str, Any] = {
            "language": run.language,
            "beam_size": opts.beam_size,
            "word_timestamps": opts.word_timestamps,
            "vad_parameters": VadOptions(
                min_silence_duration_ms=opts.vad_min_silence_ms,
                speech_pad_ms=opts.vad_speech_pad_ms,
                # The batched pipeline decodes each VAD chunk as one 30 s Whisper window.
                # It caps chunks at 30 s itself only when given no VadOptions or a dict;
                # given VadOptions (inf by default), a chunk of dense speech ran past 30 s,
                # the words past 30 s were lost and the word alignment read beyond the
                # encoder output: a segfault in CTranslate2 on 3 minutes of dense speech.
                max_speech_duration_s=float(self._chunk_seconds) if batched else float("inf"),
            ),
            "log_prob_threshold": opts.log_prob_threshold,
            "compression_ratio_threshold": opts.compression_ratio_threshold,
            "initial_prompt": opts.initial_prompt,
        }
        samples = np.ascontiguousarray(audio, dtype=np.float32)
        cleaned, info = self._decode(self.model, samples, offset, pad, short, batched, common, run)
        language = run.language or info.language
        if short and language == "en" and self._second_opinion is not None:
            if self._second_model is None:
                self._second_model = self._second_opinion()
            english = common | {"language": "en"}
            other, _ = self._decode(
                self._second_model, samples, offset, pad, short, False, english, run
            )
            cleaned = self._likelier(self._second_model, samples, cleaned, other)
        if run.language is None and cleaned:
            # Fix the language on the first audio that held speech, so that every later
            # window and channel is decoded in the same language.
            run.language = info.language
            run.language_probability = info.language_probability
        return cleaned

    def _likelier(
        self,
        second_model: WhisperModel,
        samples: FloatArray,
        first: list[RawSegment],
        second: list[RawSegment],
    ) -> list[RawSegment]:
        """Of the main model's and the second opinion's readings of a short English clip,
        the one the two models together find likelier (``asr.joint``)."""
        texts = [" ".join(s.text for s in segments) for segments in (first, second)]
        if not second or _words(texts[0]) == _words(texts[1]):
            return first  # the same words (punctuation and case aside): nothing to decide
        if not first:
            return second
        pick = likeliest([self.model, second_model], samples, texts)
        return second if pick == 1 else first

    def _decode(
        self,
        model: WhisperModel,
        samples: FloatArray,
        offset: float,
        pad: float,
        short: bool,
        batched: bool,
        common: dict[str, Any],
        run: _Run,
    ) -> tuple[list[RawSegment], Any]:
        """One model's cleaned segments of one window (times in recording seconds), and its
        transcription info."""
        opts = self.options
        window_seconds = samples.shape[0] / SAMPLE_RATE
        vad = opts.vad_filter and not short
        if batched:
            # The batched pipeline decodes each VAD chunk on its own (never conditioned on
            # the previous text), several chunks at once.
            segments, info = self._batched.transcribe(
                samples,
                batch_size=opts.batch_size,
                # Text only (the default): with timestamp tokens, a chunk's last sentence
                # is dropped when Whisper stops at a timestamp expecting a next window that
                # the batched pipeline never decodes (lost in our tests). A chunk comes back
                # as one segment; split_turns cuts it at sentences and pauses (word times).
                no_speech_threshold=opts.no_speech_threshold,
                **common,
            )
        else:
            segments, info = model.transcribe(
                samples,
                vad_filter=vad,
                # With conditioning on, base and tiny.en skipped ~20 s of speech at a window
                # boundary in our tests; it also lets one hallucination seed the next.
                condition_on_previous_text=False,
                # A short clip exists because someone spoke: a lone word often scores a high
                # no-speech probability, and skipping it would return nothing.
                no_speech_threshold=None if short else opts.no_speech_threshold,
                **common,
            )
        shift = offset - pad
        end_limit = offset + window_seconds - 2 * pad
        raws: list[RawSegment] = []
        for seg in segments:  # the generator does the work: materialise it here
            raws.append(
                RawSegment(
                    # Clamped at both ends: a word timed inside the trailing pad of a short
                    # clip would otherwise start after the clip ends.
                    start=float(min(end_limit, max(offset, seg.start + shift))),
                    end=float(min(end_limit, seg.end + shift)),
                    text=seg.text.strip(),
                    words=[
                        Word(
                            start=float(min(end_limit, max(offset, w.start + shift))),
                            end=float(min(end_limit, w.end + shift)),
                            word=w.word,
                            probability=w.probability,
                        )
                        for w in (seg.words or [])
                    ],
                    avg_logprob=seg.avg_logprob,
                    no_speech_prob=seg.no_speech_prob,
                    compression_ratio=seg.compression_ratio,
                )
            )
            run.progress(min(seg.end, window_seconds) - pad)
        # One segment per sentence: each gets its own guards and (mono) voice print.
        return clean_segments(split_turns(raws, opts), opts, short=short), info

    def _voice_print(
        self, audio: FloatArray, offset: float, raw: RawSegment
    ) -> npt.NDArray[np.float64]:
        """A cheap voice signature of a segment: its pitch and its broad spectral shape.

        At least 0.1 s of the window's audio, kept inside it: a segment timed at or past the
        window's end (Whisper can time a last word inside a short clip's padding) reads the
        window's last 0.1 s instead of an empty slice.
        """
        width = SAMPLE_RATE // 10
        a = min(max(0, int((raw.start - offset) * SAMPLE_RATE)), max(0, audio.shape[0] - width))
        b = min(audio.shape[0], max(a + width, int((raw.end - offset) * SAMPLE_RATE)))
        return voice_print(audio[a:b], self._features)

    def _label(self, run: _Run, layout: Layout) -> list[Segment]:
        if layout == "mono":
            return assign_mono_roles(run.raws[0], run.prints)
        agent = 0 if layout == "stereo_agent_left" else 1
        return [
            to_segment(raw, "agent" if c == agent else "customer", 1.0)
            for c, raws in run.raws.items()
            for raw in raws
        ]


def _words(text: str) -> list[str]:
    """The words of a reading, case and punctuation aside ("Activated." = "activated")."""
    return re.sub(r"[^\w\s']", " ", text).casefold().split()
