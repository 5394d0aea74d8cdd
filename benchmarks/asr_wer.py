"""Word error rate of the transcription pipeline on real speech, beside bare faster-whisper.

    python -m benchmarks.asr_wer --data-dir ../shared/data [--model base|tiny.en]

Sets (all from ../shared/data/asr_audio):
- LJ Speech clips LJ001-0001..0025 (reference: metadata column 3), target WER <= 5% (base);
- stereo_diarization.wav, left channel = agent, right = customer: both right and attributed;
- short 8 kHz utterances: single words cut from the LJ clips at word timestamps (with 60 ms
  margins), resampled to 8 kHz; the reference is the LJ transcript's own word. Target <= 10%
  with the deployment's language hint ("en"); bare faster-whisper (defaults) beside it.
WER uses Whisper's EnglishTextNormalizer from the pinned PyPI package `whisper-normalizer`
(a copy of openai-whisper's normalizers). Results: benchmarks/results/asr_wer.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import platform
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
from faster_whisper import WhisperModel
from whisper_normalizer.english import EnglishTextNormalizer

from asr import AsrError, TranscribeOptions, Transcriber
from asr.audio import SAMPLE_RATE, stream_audio
from service.config import Settings
from workers.transcribe import whisper_model_dir

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "asr_wer.json"
STEREO_REFS = {
    "agent": "He began a confused complaint against the wizard, who had vanished behind the "
    "curtain on the left.",
    "customer": "The horizon seems extremely distant.",
}
_normalise = EnglishTextNormalizer()


def wer(refs: list[str], hyps: list[str]) -> float:
    """Corpus WER after Whisper's English normalisation (empty references skipped)."""
    pairs = [(_normalise(r), _normalise(h)) for r, h in zip(refs, hyps, strict=True)]
    pairs = [(r, h) for r, h in pairs if r.strip()]
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))


def lj_clips(data_dir: Path) -> list[tuple[Path, str]]:
    root = data_dir / "asr_audio" / "ljspeech_subset" / "LJSpeech-1.1"
    with (root / "metadata.csv").open(newline="") as f:
        rows = list(csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE))
    # The normaliser drops text in brackets (Whisper writes non-speech as "(music)"); in
    # LJ Speech's references a parenthesis is spoken text, so only the marks go.
    return [(root / "wavs" / f"{r[0]}.wav", r[2].replace("(", "").replace(")", "")) for r in rows]


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def to_8k(audio: np.ndarray) -> np.ndarray:
    """16 kHz -> 8 kHz with an FFT low-pass (what a narrowband phone line keeps)."""
    spectrum = np.fft.rfft(audio)
    spectrum[int(len(spectrum) * 3400 / 8000) :] = 0
    return np.fft.irfft(spectrum, n=len(audio))[::2]


def short_utterances(
    transcriber: Transcriber, clips: list[tuple[Path, str]], out_dir: Path, per_clip: int
) -> list[tuple[Path, str]]:
    """Single words cut from the clips where the recognised word matches the reference."""
    items: list[tuple[Path, str]] = []
    for path, ref in clips:
        audio = np.concatenate(list(stream_audio(path, channels=1)), axis=1)[0]
        ref_words = {_normalise(w) for w in ref.split()}
        transcript = transcriber.transcribe(path, language="en")
        words = [w for s in transcript.segments for w in s.words]
        taken = 0
        for w in words:
            norm = _normalise(w.word)
            # Content words the model heard surely: function words ("the") are swallowed by
            # their neighbours in read speech and are no isolated utterance once cut out.
            if len(norm) < 5 or norm not in ref_words or w.probability < 0.8:
                continue
            if taken >= per_clip:
                break
            a = max(0, int((w.start - 0.03) * SAMPLE_RATE))
            b = min(len(audio), int((w.end + 0.03) * SAMPLE_RATE))
            cut = audio[a:b].copy()
            fade = min(len(cut) // 4, SAMPLE_RATE // 50)  # 20 ms ramps: no clicks at the cuts
            ramp = np.linspace(0.0, 1.0, fade)
            cut[:fade] *= ramp
            cut[len(cut) - fade :] *= ramp[::-1]
            target = out_dir / f"{path.stem}-{taken}.wav"
            write_wav(target, to_8k(cut), 8_000)
            items.append((target, w.word.strip(" .,;:!?\"'")))
            taken += 1
    return items


def text_or_empty(transcriber: Transcriber, path: Path) -> str:
    """The transcript's text; a clip judged silent counts as an empty hypothesis."""
    try:
        return transcriber.transcribe(path).text
    except AsrError:
        return ""


def bare_text(model: WhisperModel, path: Path) -> str:
    segments, _ = model.transcribe(str(path))
    return " ".join(s.text for s in segments)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--model", choices=["base", "tiny.en"], default="base")
    parser.add_argument("--words-per-clip", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    if not (args.data_dir / "asr_audio").is_dir():
        raise SystemExit(f"no {args.data_dir / 'asr_audio'}: pass --data-dir")
    model = WhisperModel(
        str(whisper_model_dir(Settings(), args.model)),
        device="cpu",
        compute_type="int8",
        cpu_threads=2,
    )
    ours = Transcriber(model)
    hinted = Transcriber(model, TranscribeOptions(language="en"))
    results: dict[str, Any] = {"model": args.model, "machine": platform.machine(), "sets": {}}

    clips = lj_clips(args.data_dir)
    t0 = time.perf_counter()
    hyps = [text_or_empty(ours, p) for p, _ in clips]
    seconds = time.perf_counter() - t0
    bare_hyps_lj = [bare_text(model, p) for p, _ in clips]
    refs_lj = [r for _, r in clips]
    lj = {
        "clips": len(clips),
        "wer": wer(refs_lj, hyps),
        "wer_bare_defaults": wer(refs_lj, bare_hyps_lj),
        "seconds": seconds,
        "target": "<= 0.05 (base)",
        "errors_ours": [
            {"clip": p.stem, "ref": _normalise(r), "hyp": _normalise(h)}
            for (p, r), h in zip(clips, hyps, strict=True)
            if _normalise(r) != _normalise(h)
        ],
    }
    results["sets"]["ljspeech"] = lj
    print(
        f"LJ Speech ({len(clips)} clips): WER {lj['wer']:.3%}, bare {lj['wer_bare_defaults']:.3%}"
    )

    stereo = args.data_dir / "asr_audio" / "faster_whisper_testdata" / "stereo_diarization.wav"
    transcript = ours.transcribe(stereo, layout="stereo_agent_left")
    per_speaker = {
        s: {"wer": wer([ref], [transcript.speaker_text(s)]), "text": transcript.speaker_text(s)}  # type: ignore[arg-type]
        for s, ref in STEREO_REFS.items()
    }
    results["sets"]["stereo_diarization"] = per_speaker
    for s, v in per_speaker.items():
        print(f"stereo {s}: WER {v['wer']:.3%}  {v['text']!r}")

    with tempfile.TemporaryDirectory() as tmp:
        items = short_utterances(hinted, clips, Path(tmp), args.words_per_clip)
        refs = [r for _, r in items]
        ours_hyps = [text_or_empty(hinted, p) for p, _ in items]
        bare_hyps = [bare_text(model, p) for p, _ in items]
    short = {
        "utterances": len(items),
        "wer_ours_language_hint": wer(refs, ours_hyps),
        "wer_bare_defaults": wer(refs, bare_hyps),
        "target": "<= 0.10",
        "errors_ours": [
            {"ref": r, "hyp": h}
            for r, h in zip(refs, ours_hyps, strict=True)
            if _normalise(r) != _normalise(h)
        ],
    }
    results["sets"]["short_8khz"] = short
    print(
        f"short 8 kHz words ({len(items)}): ours {short['wer_ours_language_hint']:.3%}, "
        f"bare {short['wer_bare_defaults']:.3%}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
