"""Transcription of real (synthesised) speech with real Whisper models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jiwer
import numpy as np
import pytest
from faster_whisper import WhisperModel

from asr import (
    LayoutMismatchError,
    SilentAudioError,
    TranscribeOptions,
    Transcriber,
)
from asr.audio import SAMPLE_RATE, stream_audio
from asr.guards import RawSegment
from asr.joint import likeliest, log_probabilities
from tests.asr.conftest import FORMATS, SAY_RATE, Say, encode, resample, silence

pytestmark = pytest.mark.slow

AGENT_VOICE = "en-us"
CUSTOMER_VOICE = "en-us+f3"


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9' ]", " ", text.lower())).strip()


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(_norm(reference), _norm(hypothesis)))


@pytest.fixture(scope="module")
def tiny(tiny_model: WhisperModel) -> Transcriber:
    return Transcriber(tiny_model, TranscribeOptions(beam_size=1))


@pytest.fixture(scope="module")
def call_parts(say: Say) -> list[tuple[str, str]]:
    """(speaker, text) turns of a short support call."""
    return [
        ("agent", "Thank you for calling, my name is John. How can I help you today?"),
        ("customer", "My package never arrived and nobody answers my emails."),
        ("agent", "I am sorry to hear that. Let me check your order."),
        ("customer", "I want a refund for the missing package."),
    ]


def _stereo_call(say: Say, turns: list[tuple[str, str]], agent_left: bool) -> np.ndarray:
    left: list[np.ndarray] = []
    right: list[np.ndarray] = []
    for speaker, text in turns:
        voice = AGENT_VOICE if speaker == "agent" else CUSTOMER_VOICE
        speech = say(text, voice=voice)
        gap = silence(0.6)
        on_left = (speaker == "agent") == agent_left
        left += [speech if on_left else np.zeros_like(speech), gap]
        right += [np.zeros_like(speech) if on_left else speech, gap]
    return np.stack([np.concatenate(left), np.concatenate(right)])


class TestAccuracy:
    def test_sentence_with_base(self, base_model: WhisperModel, say: Say, tmp_path: Path) -> None:
        """A clear sentence comes out within 10% WER with the base model, language detected."""
        text = (
            "The delivery was late again, and the driver left the parcel in the rain. "
            "I would like to speak to a manager about a refund."
        )
        path = encode(say(text), SAY_RATE, tmp_path / "sentence", "wav")
        result = Transcriber(base_model).transcribe(path)
        assert result.language == "en"
        assert wer(text, result.text) <= 0.10, result.text

    def test_short_telephone_utterances_8khz(
        self, base_model: WhisperModel, say: Say, tmp_path: Path
    ) -> None:
        """Short requests on an 8 kHz line (the short-clip path) are recognised, each word
        timed inside the clip and in order."""
        phrases = ["I want a refund", "cancel my account", "speak to a manager"]
        transcriber = Transcriber(base_model, TranscribeOptions(language="en"))
        got = []
        for i, phrase in enumerate(phrases):
            narrow = resample(say(phrase), SAY_RATE, 8_000)
            path = encode(narrow, 8_000, tmp_path / f"utterance{i}", "wav")
            result = transcriber.transcribe(path)
            got.append(result.text)
            words = [w for s in result.segments for w in s.words]
            assert len(words) == len(result.text.split()), result.segments
            times = [t for w in words for t in (w.start, w.end)]
            assert times == sorted(times), words
            assert times[0] >= 0.0, words
            assert times[-1] <= result.duration, (words, result.duration)
            assert times[-1] - times[0] >= 0.3, words  # spread over the speech, not a point
        assert wer(" ".join(phrases), " ".join(got)) <= 0.10, got

    def test_short_english_clips_keep_the_reading_both_models_find_likelier(
        self, base_model: WhisperModel, tiny_model: WhisperModel, say: Say, tmp_path: Path
    ) -> None:
        """With a second opinion, a short English clip comes back as whichever of base's and
        tiny.en's readings has the higher log-probability summed over both models
        (``asr.joint``, on the padded clip the transcriber decodes; readings with the same
        words keep base's); the second model is loaded once, on the first short English
        clip, and not used for other languages or long clips."""
        loads: list[int] = []

        def second() -> WhisperModel:
            loads.append(1)
            return tiny_model

        english = TranscribeOptions(language="en")
        both = Transcriber(base_model, english, second_opinion=second)
        base_only, tiny_only = Transcriber(base_model, english), Transcriber(tiny_model, english)
        pad = int(english.short_clip_pad_seconds * SAMPLE_RATE)

        phrases = ["seven", "cancel my order", "yes please", "billing"]
        for i, phrase in enumerate(phrases):
            narrow = resample(say(phrase), SAY_RATE, 8_000)
            path = encode(narrow, 8_000, tmp_path / f"word{i}", "wav")
            kept = both.transcribe(path)
            readings = [base_only.transcribe(path).text, tiny_only.transcribe(path).text]
            clip = np.pad(np.concatenate(list(stream_audio(path, 1)), axis=1)[0], (pad, pad))
            if _norm(readings[0]) == _norm(readings[1]):
                expected = readings[0]  # the same words: base's reading, nothing scored
            else:
                expected = readings[likeliest([base_model, tiny_model], clip, readings)]
            assert kept.text == expected, (phrase, kept.text, readings)
        assert len(loads) == 1

        french = Transcriber(base_model, TranscribeOptions(language="fr"), second_opinion=second)
        french.transcribe(encode(resample(say("bonjour"), SAY_RATE, 8_000), 8_000, tmp_path / "fr"))
        assert len(loads) == 1  # French: no second opinion
        long_text = "I have been waiting for my refund for three weeks and nobody calls me back."
        long_clip = encode(say(long_text, speed=130), SAY_RATE, tmp_path / "long")
        calls: list[int] = []
        counted = Transcriber(
            base_model, english, second_opinion=lambda: calls.append(1) or tiny_model
        )
        counted.transcribe(long_clip)
        assert not calls

    def test_joint_verdict_prefers_what_was_said(
        self, base_model: WhisperModel, tiny_model: WhisperModel, say: Say
    ) -> None:
        """Force-decoded by each model, what an 8 kHz clip says scores above a reading that
        sounds alike and above an unrelated one; an empty reading scores -inf; the joint
        verdict picks what was said wherever it is listed."""
        narrow = resample(say("cancel my order"), SAY_RATE, 8_000)
        wide = resample(narrow, 8_000, SAMPLE_RATE).astype(np.float32) / 32768.0
        clip = np.pad(wide, (SAMPLE_RATE // 2, SAMPLE_RATE // 2))
        texts = ["Cancel my order.", "Cancel my border.", "The weather is lovely today.", ""]
        for model in (base_model, tiny_model):
            scores = log_probabilities(model, clip, texts)
            assert scores[0] > max(scores[1], scores[2]), scores
            assert scores[3] == float("-inf")
        models = [base_model, tiny_model]
        assert likeliest(models, clip, texts[:3]) == 0
        assert likeliest(models, clip, [texts[2], texts[1], texts[0]]) == 2

    def test_sentences_8khz(self, base_model: WhisperModel, say: Say, tmp_path: Path) -> None:
        """Sentences on an 8 kHz telephone line (PCM, as G.711 decodes) stay within 15% WER."""
        texts = [
            "I have been waiting for my refund for three weeks now.",
            "The engineer never came to fix the broken heating.",
        ]
        transcriber = Transcriber(base_model, TranscribeOptions(language="en"))
        got = []
        for i, text in enumerate(texts):
            narrow = resample(say(text, speed=130), SAY_RATE, 8_000)
            got.append(transcriber.transcribe(encode(narrow, 8_000, tmp_path / f"s{i}")).text)
        assert wer(" ".join(texts), " ".join(got)) <= 0.15, got


class TestFormats:
    @pytest.mark.parametrize("kind", sorted(FORMATS))
    def test_each_format(self, kind: str, tiny: Transcriber, say: Say, tmp_path: Path) -> None:
        """Every accepted container transcribes to the spoken words."""
        text = "Hello, I am calling about my broken phone."
        path = encode(say(text), SAY_RATE, tmp_path / "clip", kind)
        result = tiny.transcribe(path)
        assert wer(text, result.text) <= 0.25, result.text


class TestSpeakers:
    @pytest.mark.parametrize("agent_left", [True, False])
    def test_stereo_roles(
        self,
        agent_left: bool,
        tiny: Transcriber,
        say: Say,
        call_parts: list[tuple[str, str]],
        tmp_path: Path,
    ) -> None:
        """Each channel's words are attributed to its speaker, turns in time order."""
        audio = _stereo_call(say, call_parts, agent_left)
        path = encode(audio, SAY_RATE, tmp_path / "call", "flac", channels=2)
        layout = "stereo_agent_left" if agent_left else "stereo_agent_right"
        result = tiny.transcribe(path, layout=layout)
        for speaker in ("agent", "customer"):
            said = " ".join(t for s, t in call_parts if s == speaker)
            assert wer(said, result.speaker_text(speaker)) <= 0.25, result.speaker_text(speaker)
        assert [s.speaker for s in result.segments] == [s for s, _ in call_parts]
        starts = [s.start for s in result.segments]
        assert starts == sorted(starts)
        assert all(s.role_confidence == 1.0 for s in result.segments)

    def test_stereo_layout_on_mono_file(self, tiny: Transcriber, say: Say, tmp_path: Path) -> None:
        """A stereo layout for a one-channel file is refused with a clear error."""
        path = encode(say("hello"), SAY_RATE, tmp_path / "mono", "wav")
        with pytest.raises(LayoutMismatchError):
            tiny.transcribe(path, layout="stereo_agent_left")

    def test_mono_roles_are_a_stated_guess(
        self, tiny: Transcriber, say: Say, call_parts: list[tuple[str, str]], tmp_path: Path
    ) -> None:
        """Mono: the greeting voice is the agent, the other voice the customer, confidence < 1."""
        audio = _stereo_call(say, call_parts, agent_left=True).max(axis=0)
        path = encode(audio, SAY_RATE, tmp_path / "mono-call", "wav")
        result = tiny.transcribe(path)
        assert result.role_method == "heuristic"
        assert all(0.0 < s.role_confidence < 1.0 for s in result.segments)
        assert [s.speaker for s in result.segments] == [s for s, _ in call_parts]

    def test_mono_single_voice_is_the_customer(
        self, tiny: Transcriber, say: Say, tmp_path: Path
    ) -> None:
        """A one-voice message without agent phrases is the customer's, stated as a guess."""
        texts = [
            "I bought this blender last month.",
            "It stopped working after two days.",
            "The store refused to take it back.",
            "I am very disappointed with your company.",
        ]
        parts: list[np.ndarray] = []
        for text in texts:
            parts += [say(text, voice=CUSTOMER_VOICE), silence(1.2)]
        path = encode(np.concatenate(parts), SAY_RATE, tmp_path / "message", "mp3")
        result = tiny.transcribe(path)
        assert {s.speaker for s in result.segments} == {"customer"}
        assert all(s.role_confidence < 1.0 for s in result.segments)


class TestLongAudio:
    def test_windows_progress_and_offsets(
        self, tiny_model: WhisperModel, say: Say, tmp_path: Path
    ) -> None:
        """Audio longer than a window is transcribed whole, with rising progress to 1."""
        sentences = [
            "The first complaint is about the billing error.",
            "The second complaint is about the rude driver.",
            "The third complaint is about the broken screen.",
            "The fourth complaint is about the late refund.",
        ]
        parts: list[np.ndarray] = []
        for text in sentences:
            parts += [say(text), silence(1.5)]
        path = encode(np.concatenate(parts), SAY_RATE, tmp_path / "long", "ogg-opus")
        seen: list[float] = []
        options = TranscribeOptions(window_seconds=6.0, beam_size=1)
        result = Transcriber(tiny_model, options).transcribe(path, progress=seen.append)
        assert wer(" ".join(sentences), result.text) <= 0.15, result.text
        assert seen == sorted(seen)
        assert seen[-1] == 1.0
        assert len(seen) >= 4
        ends = [w.end for s in result.segments for w in s.words]
        assert ends == sorted(ends)
        assert 0 < ends[-1] <= result.duration + 0.01

    def test_batched_speech_longer_than_a_whisper_window(
        self, tiny_model: WhisperModel, say: Say, tmp_path: Path
    ) -> None:
        """Over 30 s of speech without a 1 s pause, batched: nothing past 30 s is lost.

        (A VAD chunk longer than Whisper's 30 s window once crashed CTranslate2's word
        alignment, and would otherwise have dropped everything after 30 s.)
        """
        things = [
            "billing error", "broken screen", "lost parcel", "wrong size", "cold food",
            "missing receipt", "double charge", "slow support", "noisy line", "closed store",
            "late refund", "rude driver",
        ]  # fmt: skip
        parts: list[np.ndarray] = []
        for thing in things:
            parts += [say(f"The next complaint is about the {thing}.", speed=140), silence(0.4)]
        audio = np.concatenate(parts)
        assert len(audio) / SAY_RATE > 34
        path = encode(audio, SAY_RATE, tmp_path / "dense", "wav")
        options = TranscribeOptions(beam_size=1, batch_size=8, language="en")
        result = Transcriber(tiny_model, options).transcribe(path)
        # Every sentence came back (tiny.en mishears a few of espeak's nouns: not the point).
        assert _norm(result.text).count("complaint is about") == len(things), result.text
        heard = [t for t in things if t in _norm(result.text)]
        assert len(heard) >= 8, result.text
        assert {"late refund", "rude driver"} & set(heard), result.text  # the last 5 s
        ends = [w.end for s in result.segments for w in s.words]
        assert ends[-1] > 30

    def test_to_dict_is_the_cli_shape(self, tiny: Transcriber, say: Say, tmp_path: Path) -> None:
        """to_dict gives JSON with language, duration, text and word-timed segments."""
        path = encode(say("Please cancel my subscription."), SAY_RATE, tmp_path / "c", "wav")
        data = json.loads(json.dumps(tiny.transcribe(path).to_dict()))
        assert {"language", "duration", "text", "segments"} <= set(data)
        seg = data["segments"][0]
        assert {"start", "end", "speaker", "text", "words"} <= set(seg)
        assert seg["words"][0]["word"].strip()


class TestNoSpeech:
    @pytest.mark.parametrize(
        ("start", "end"),
        [(1.3, 1.5), (1.0, 1.0), (0.98, 1.2), (-0.2, 0.0)],
        ids=["past-the-end", "at-the-end", "straddling-the-end", "before-the-start"],
    )
    def test_voice_print_of_a_segment_timed_outside_its_window(
        self, tiny: Transcriber, start: float, end: float
    ) -> None:
        """A segment timed outside its window's audio reads the nearest 0.1 s, never nothing.

        Whisper can time a short clip's last word inside the silence padded after it, so the
        segment starts after the clip ends (a crash before: "can't extend empty axis").
        """
        t = np.arange(SAMPLE_RATE) / SAMPLE_RATE  # exactly 1 s
        audio = (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
        inside = tiny._voice_print(audio, 0.0, RawSegment(0.2, 0.6, "two", [], -0.2, 0.1, 1.0))
        signature = tiny._voice_print(audio, 0.0, RawSegment(start, end, "two", [], -0.2, 0.1, 1.0))
        assert signature.shape == inside.shape
        assert np.isfinite(signature).all()

    def test_digital_silence(self, tiny: Transcriber, tmp_path: Path) -> None:
        """A file of silence is a silent-audio error, not an empty transcript."""
        path = encode(silence(5.0), SAY_RATE, tmp_path / "quiet", "wav")
        with pytest.raises(SilentAudioError, match="no sound"):
            tiny.transcribe(path)

    def test_noise_only(self, tiny: Transcriber, tmp_path: Path) -> None:
        """Low hiss without speech yields no invented text: a silent-audio error."""
        rng = np.random.default_rng(1)
        hiss = (rng.normal(0, 150, int(8 * SAY_RATE))).astype(np.int16)
        path = encode(hiss, SAY_RATE, tmp_path / "hiss", "wav")
        with pytest.raises(SilentAudioError):
            tiny.transcribe(path)
