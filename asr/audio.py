"""Audio input: cheap validation of an upload (``probe``) and streamed decoding to 16 kHz.

Decoding goes through PyAV (FFmpeg's libraries, shipped in the ``av`` wheel), so every
accepted container decodes the same way and nothing shells out to an ``ffmpeg`` binary.
Audio is yielded in chunks: an hour-long call never sits in memory whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from asr.errors import (
    AudioTooLongError,
    CorruptAudioError,
    EmptyAudioError,
    UnsupportedFormatError,
)

SAMPLE_RATE = 16_000
FloatArray = npt.NDArray[np.float32]

# FFmpeg demuxer names (``container.format.name`` is a comma list such as
# "mov,mp4,m4a,3gp,3g2,mj2") of the containers the product accepts.
_ACCEPTED_DEMUXERS = frozenset(
    {"wav", "flac", "mp3", "ogg", "mov", "mp4", "m4a", "matroska", "webm", "aac"}
)
ACCEPTED_EXTENSIONS = frozenset(
    {".wav", ".flac", ".mp3", ".ogg", ".opus", ".oga", ".m4a", ".aac", ".mp4", ".mov", ".webm"}
)
# How many packets may fail to decode before a file counts as corrupt: real uploads often
# end in a truncated frame, and rejecting the whole call for it would lose the recording.
_MAX_BAD_PACKETS = 8


@dataclass(frozen=True)
class AudioInfo:
    """What ``probe`` learnt about a file without decoding it all."""

    container: str
    codec: str
    duration: float | None
    channels: int
    sample_rate: int


def _looks_like_audio(path: Path) -> bool:
    """Whether the file claims to be an accepted format (extension or magic bytes).

    Used to tell a damaged file of an accepted kind (corrupt) from something else (unsupported).
    """
    if path.suffix.lower() in ACCEPTED_EXTENSIONS:
        return True
    with path.open("rb") as f:
        head = f.read(12)
    return (
        head.startswith((b"RIFF", b"fLaC", b"ID3", b"OggS", b"\x1a\x45\xdf\xa3"))
        or head[4:8] == b"ftyp"
        or (len(head) > 1 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0)
    )


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise FileNotFoundError(path)
    if path.stat().st_size == 0:
        raise EmptyAudioError(f"{path.name}: the file is empty (0 bytes)")
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        if _looks_like_audio(path):
            raise CorruptAudioError(f"{path.name}: the file cannot be read ({e})") from e
        raise UnsupportedFormatError(
            f"{path.name}: not a supported audio or video file "
            "(accepted: WAV, FLAC, MP3, OGG/Opus, M4A/AAC, WebM, MP4/MOV)"
        ) from e
    demuxers = set(container.format.name.split(","))
    if not demuxers & _ACCEPTED_DEMUXERS:
        container.close()
        raise UnsupportedFormatError(
            f"{path.name}: container '{container.format.long_name}' is not accepted "
            "(accepted: WAV, FLAC, MP3, OGG/Opus, M4A/AAC, WebM, MP4/MOV)"
        )
    if not container.streams.audio:
        container.close()
        raise UnsupportedFormatError(f"{path.name}: the file has no audio track")
    return container


def _duration(container: av.container.InputContainer) -> float | None:
    stream = container.streams.audio[0]
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def probe(path: Path | str, max_duration: float | None = None) -> AudioInfo:
    """Validate a recording cheaply: container, audio track, duration, and a first decode.

    Reads the header and decodes the first few packets only, so an API can reject a bad
    upload at once without transcribing it.

    Args:
        path: The recording.
        max_duration: Reject recordings longer than this many seconds.

    Returns:
        The container, codec, duration (None when the container does not say), channel
        count and sample rate of the first audio track.

    Raises:
        EmptyAudioError, UnsupportedFormatError, CorruptAudioError, AudioTooLongError.
    """
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        info = AudioInfo(
            container=container.format.name,
            codec=ctx.name,
            duration=_duration(container),
            channels=ctx.layout.nb_channels,
            sample_rate=ctx.sample_rate,
        )
        if max_duration is not None and info.duration is not None and info.duration > max_duration:
            raise AudioTooLongError(
                f"{path.name}: {info.duration:.0f} s is longer than the limit of "
                f"{max_duration:.0f} s"
            )
        decoded = 0
        try:
            for frame in container.decode(stream):
                decoded += frame.samples
                if decoded >= info.sample_rate:  # one second decodes: the codec works
                    break
        except av.error.FFmpegError as e:
            raise CorruptAudioError(f"{path.name}: the audio cannot be decoded ({e})") from e
        if decoded == 0:
            if info.duration:
                raise CorruptAudioError(f"{path.name}: no audio frame could be decoded")
            raise EmptyAudioError(f"{path.name}: the file holds no audio")
        return info
    finally:
        container.close()


def stream_audio(
    path: Path | str, channels: int, chunk_seconds: float = 30.0
) -> Iterator[FloatArray]:
    """Decode a recording to 16 kHz float32, yielding ``(channels, n)`` chunks.

    Args:
        path: The recording.
        channels: 1 downmixes to mono; 2 keeps (or makes) left and right.
        chunk_seconds: About how much audio each chunk holds.

    Raises:
        EmptyAudioError, UnsupportedFormatError, CorruptAudioError.
    """
    path = Path(path)
    container = _open(path)
    resampler = av.AudioResampler(
        format="fltp", layout="mono" if channels == 1 else "stereo", rate=SAMPLE_RATE
    )
    chunk_samples = int(chunk_seconds * SAMPLE_RATE)
    pending: list[FloatArray] = []
    pending_samples = 0
    total = 0
    bad_packets = 0
    try:
        stream = container.streams.audio[0]
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError as e:
                bad_packets += 1
                if bad_packets > _MAX_BAD_PACKETS:
                    raise CorruptAudioError(f"{path.name}: the audio data is damaged ({e})") from e
                continue
            for frame in frames:
                for out in resampler.resample(frame):
                    pending.append(out.to_ndarray().astype(np.float32, copy=False))
                    pending_samples += out.samples
            if pending_samples >= chunk_samples:
                total += pending_samples
                yield np.concatenate(pending, axis=1)
                pending, pending_samples = [], 0
        for out in resampler.resample(None):
            pending.append(out.to_ndarray().astype(np.float32, copy=False))
            pending_samples += out.samples
        if pending_samples:
            total += pending_samples
            yield np.concatenate(pending, axis=1)
    except av.error.FFmpegError as e:
        raise CorruptAudioError(f"{path.name}: the audio data is damaged ({e})") from e
    finally:
        container.close()
    if total == 0:
        if bad_packets:
            raise CorruptAudioError(f"{path.name}: no audio frame could be decoded")
        raise EmptyAudioError(f"{path.name}: the file holds no audio")
