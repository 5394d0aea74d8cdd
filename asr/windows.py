"""Cutting a decoded stream into long windows at silences, so that no word is cut in two.

faster-whisper takes a whole array; feeding it ~10-minute windows keeps memory flat for
recordings of any length, and cutting inside a pause (found by Silero VAD, which
faster-whisper ships) keeps words and sentences whole across window boundaries.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from asr.audio import SAMPLE_RATE, FloatArray


@dataclass(frozen=True)
class Window:
    """A stretch of audio, ``(channels, n)`` at 16 kHz, starting ``offset`` seconds in."""

    offset: float
    audio: FloatArray

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return float(self.audio.shape[1]) / SAMPLE_RATE


def _cut_point(region: FloatArray) -> int:
    """The sample index (within ``region``) in the middle of its longest pause."""
    mono = region.mean(axis=0) if region.shape[0] > 1 else region[0]
    speech = get_speech_timestamps(
        np.ascontiguousarray(mono), VadOptions(min_silence_duration_ms=200, speech_pad_ms=0)
    )
    if not speech:
        return int(mono.shape[0])
    gaps = [(0, speech[0]["start"])]
    gaps += [(a["end"], b["start"]) for a, b in itertools.pairwise(speech)]
    gaps.append((speech[-1]["end"], int(mono.shape[0])))
    start, end = max(gaps, key=lambda g: g[1] - g[0])
    if end - start < SAMPLE_RATE // 20:
        # No real pause: fall back to the quietest 50 ms, which still avoids a loud syllable.
        frame = SAMPLE_RATE // 20
        usable = mono[: mono.shape[0] // frame * frame].reshape(-1, frame)
        return int(np.argmin((usable**2).mean(axis=1)) * frame + frame // 2)
    return int((start + end) // 2)


def windows(
    chunks: Iterable[FloatArray], window_seconds: float, search_seconds: float = 30.0
) -> Iterator[Window]:
    """Group decoded chunks into windows of about ``window_seconds``, cut inside a pause.

    The cut is sought in the last ``search_seconds`` of each full window; the audio after
    the cut starts the next window.
    """
    window = int(window_seconds * SAMPLE_RATE)
    search = min(int(search_seconds * SAMPLE_RATE), window // 2)
    buffer: list[FloatArray] = []
    buffered = 0
    offset = 0
    for chunk in chunks:
        buffer.append(chunk)
        buffered += chunk.shape[1]
        while buffered >= window:
            audio = np.concatenate(buffer, axis=1)
            cut = window - search + _cut_point(audio[:, window - search : window])
            yield Window(offset / SAMPLE_RATE, audio[:, :cut].copy())
            rest = audio[:, cut:]
            offset += cut
            buffer, buffered = [rest], rest.shape[1]
    if buffered:
        yield Window(offset / SAMPLE_RATE, np.concatenate(buffer, axis=1))
