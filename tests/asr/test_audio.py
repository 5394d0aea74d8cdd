"""Decoding and validation of uploads: every accepted format, and the broken ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asr import (
    AudioTooLongError,
    CorruptAudioError,
    EmptyAudioError,
    UnsupportedFormatError,
    probe,
)
from asr.audio import SAMPLE_RATE, stream_audio
from tests.asr.conftest import FORMATS, SAY_RATE, Say, encode, resample


@pytest.fixture(scope="module")
def hello(say: Say) -> np.ndarray:
    return say("Hello, I am calling about my order.")


class TestProbe:
    @pytest.mark.parametrize("kind", sorted(FORMATS))
    def test_accepts_every_format(self, kind: str, hello: np.ndarray, tmp_path: Path) -> None:
        """Each accepted container is recognised with its duration and channel count."""
        path = encode(hello, SAY_RATE, tmp_path / "clip", kind)
        info = probe(path)
        assert info.channels == 1
        assert info.duration is not None
        assert info.duration == pytest.approx(len(hello) / SAY_RATE, abs=0.15)

    def test_stereo_file_reports_two_channels(self, hello: np.ndarray, tmp_path: Path) -> None:
        """A stereo recording reports two channels."""
        path = encode(np.stack([hello, hello]), SAY_RATE, tmp_path / "st", "flac", channels=2)
        assert probe(path).channels == 2

    def test_empty_file(self, tmp_path: Path) -> None:
        """A zero-byte upload is an empty-audio error."""
        path = tmp_path / "empty.wav"
        path.write_bytes(b"")
        with pytest.raises(EmptyAudioError):
            probe(path)

    def test_wav_without_samples(self, tmp_path: Path) -> None:
        """A valid container with no samples is an empty-audio error."""
        import wave

        path = tmp_path / "none.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8_000)
        with pytest.raises(EmptyAudioError):
            probe(path)

    def test_text_file_is_unsupported(self, tmp_path: Path) -> None:
        """A text file is not a recording."""
        path = tmp_path / "notes.txt"
        path.write_text("this is not audio\n" * 50)
        with pytest.raises(UnsupportedFormatError):
            probe(path)

    def test_image_is_unsupported(self, tmp_path: Path) -> None:
        """An image container that FFmpeg can open is still rejected: it holds no audio."""
        import av

        path = tmp_path / "picture.png"
        with av.open(str(path), mode="w", format="image2") as c:
            stream = c.add_stream("png", rate=1)
            stream.width, stream.height, stream.pix_fmt = 8, 8, "rgb24"
            frame = av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24")
            for packet in [*stream.encode(frame), *stream.encode(None)]:
                c.mux(packet)
        with pytest.raises(UnsupportedFormatError):
            probe(path)

    def test_garbage_with_audio_extension_is_corrupt(self, tmp_path: Path) -> None:
        """Random bytes named .mp3 are a corrupt recording, not an unsupported one."""
        path = tmp_path / "call.mp3"
        path.write_bytes(np.random.default_rng(0).bytes(20_000))
        with pytest.raises((CorruptAudioError, EmptyAudioError)):
            probe(path)

    def test_truncated_header_is_corrupt(self, hello: np.ndarray, tmp_path: Path) -> None:
        """An M4A cut short inside its header cannot be read: corrupt."""
        path = encode(hello, SAY_RATE, tmp_path / "cut", "m4a-aac")
        path.write_bytes(path.read_bytes()[:40])
        with pytest.raises(CorruptAudioError):
            probe(path)

    def test_too_long(self, hello: np.ndarray, tmp_path: Path) -> None:
        """A recording over the limit is rejected at probe time."""
        path = encode(hello, SAY_RATE, tmp_path / "clip", "wav")
        with pytest.raises(AudioTooLongError):
            probe(path, max_duration=1.0)


class TestStream:
    def test_telephone_audio_resampled_to_16k(self, hello: np.ndarray, tmp_path: Path) -> None:
        """8 kHz audio comes out at 16 kHz float32, same duration, in several chunks."""
        narrow = resample(hello, SAY_RATE, 8_000)
        path = encode(np.tile(narrow, 4), 8_000, tmp_path / "phone", "wav")
        chunks = list(stream_audio(path, channels=1, chunk_seconds=2.0))
        assert len(chunks) > 1
        assert all(c.dtype == np.float32 and c.shape[0] == 1 for c in chunks)
        total = sum(c.shape[1] for c in chunks)
        assert total / SAMPLE_RATE == pytest.approx(4 * len(narrow) / 8_000, abs=0.05)

    def test_stereo_channels_stay_apart(self, hello: np.ndarray, tmp_path: Path) -> None:
        """Left-only speech stays in channel 0; the right channel stays silent."""
        stereo = np.stack([hello, np.zeros_like(hello)])
        path = encode(stereo, SAY_RATE, tmp_path / "left", "wav", channels=2)
        audio = np.concatenate(list(stream_audio(path, channels=2)), axis=1)
        assert audio.shape[0] == 2
        assert np.abs(audio[0]).max() > 0.1
        assert np.abs(audio[1]).max() < 1e-3
