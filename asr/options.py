"""Transcription options, a frozen dataclass the caller builds (the library reads no env)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TranscribeOptions:
    """How recordings are transcribed. Defaults are the product's tested settings."""

    # ISO 639-1 code a deployment knows its callers speak; None detects the language.
    language: str | None = None
    beam_size: int = 5
    word_timestamps: bool = True
    # Long audio is fed to Whisper in windows of about this length, cut inside a pause.
    window_seconds: float = 600.0
    # Silero VAD: skip silence and hold music before Whisper sees them (speed, and no text
    # hallucinated on silence).
    vad_filter: bool = True
    vad_min_silence_ms: int = 1000
    vad_speech_pad_ms: int = 400
    # VAD speech chunks (up to 30 s each) decoded this many at a time (faster-whisper's
    # batched pipeline); 1 decodes sequentially. Batched skips silence and hold music
    # outright and decodes chunks side by side: the call-like speed target needs it
    # (benchmarks/results/asr_speed.json); LJ WER batched vs sequential in asr_wer.json.
    batch_size: int = 8
    # Whisper's own fallbacks (temperature retries) and silence skip.
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    # Hallucination guards applied to every finished segment.
    drop_no_speech_prob: float = 0.6
    drop_avg_logprob: float = -1.0
    min_avg_logprob: float = -1.5
    max_phrase_repeats: int = 2
    # Clips shorter than this (isolated words on a phone line) skip the VAD cut, which can
    # clip a lone word's onset, and are padded with silence on both sides.
    short_clip_seconds: float = 4.0
    short_clip_pad_seconds: float = 0.5
    initial_prompt: str | None = None
    # Reject recordings longer than this many seconds (None: no limit).
    max_duration: float | None = None
    # Consecutive segments of one speaker closer than this are merged into one turn.
    turn_gap_seconds: float = 1.0
    max_turn_seconds: float = 30.0
