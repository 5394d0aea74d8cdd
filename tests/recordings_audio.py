"""Speech for the recording tests, made here with espeak-ng (no ../shared, no network).

A "call" is a list of (speaker, text) turns: the agent and the customer get different
voices, each on its own channel of a stereo file (or mixed into one for mono), with pauses
between turns, resampled with PyAV (e.g. to 8 kHz, as telephone audio is).
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import av
import numpy as np
import pytest

SAY_RATE = 22_050  # espeak-ng's native output rate
VOICES = {"agent": ("en-us", 35), "customer": ("en-gb", 75)}  # voice, pitch


def require_espeak() -> None:
    """Skip the test when espeak-ng is missing."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")


def say(text: str, voice: str = "en-us", pitch: int = 50, speed: int = 150) -> np.ndarray:
    """int16 samples at 22.05 kHz of espeak-ng speaking ``text``."""
    out = subprocess.run(
        ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "--stdout", text],
        check=True, capture_output=True,
    ).stdout
    return np.frombuffer(out[44:], dtype=np.int16).copy()  # 44-byte WAV header


def resample(samples: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Resample int16 mono samples with PyAV."""
    if src == dst:
        return samples
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = src
    resampler = av.AudioResampler(format="s16", layout="mono", rate=dst)
    out = [f.to_ndarray() for f in resampler.resample(frame)]
    out += [f.to_ndarray() for f in resampler.resample(None)]
    return np.concatenate(out, axis=1).reshape(-1)


def call_channels(turns: list[tuple[str, str]], gap: float = 0.7) -> dict[str, np.ndarray]:
    """Per speaker, a track at 22.05 kHz holding their turns and silence elsewhere."""
    tracks: dict[str, list[np.ndarray]] = {"agent": [], "customer": []}
    pause = np.zeros(int(gap * SAY_RATE), dtype=np.int16)
    for speaker, text in turns:
        voice, pitch = VOICES[speaker]
        speech = say(text, voice, pitch)
        for name, parts in tracks.items():
            parts.append(speech if name == speaker else np.zeros_like(speech))
            parts.append(pause)
    return {name: np.concatenate(parts) for name, parts in tracks.items()}


def write_wav(path: Path, channels: list[np.ndarray], rate: int) -> Path:
    """A 16-bit PCM WAV of one or two int16 channels."""
    data = np.stack(channels, axis=1) if len(channels) > 1 else channels[0].reshape(-1, 1)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(len(channels))
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.ascontiguousarray(data, dtype="<i2").tobytes())
    return path


def stereo_call(
    path: Path, turns: list[tuple[str, str]], *, agent_left: bool = True, rate: int = 8000
) -> Path:
    """A stereo call, agent on the left (or right) channel, at ``rate`` Hz."""
    tracks = {k: resample(v, SAY_RATE, rate) for k, v in call_channels(turns).items()}
    order = ["agent", "customer"] if agent_left else ["customer", "agent"]
    return write_wav(path, [tracks[k] for k in order], rate)


def mono_speech(path: Path, text: str, rate: int = 16_000) -> Path:
    """One voice speaking ``text``, mono, at ``rate`` Hz."""
    return write_wav(path, [resample(say(text), SAY_RATE, rate)], rate)


def encode_flac(path: Path, samples: np.ndarray, rate: int) -> Path:
    """Mono int16 samples as FLAC (PyAV)."""
    with av.open(str(path), mode="w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
