"""Word error rate of the transcription pipeline on real speech, beside bare faster-whisper.

    python -m benchmarks.asr_wer --data-dir ../shared/data [--model base|tiny.en]
        [--sets ljspeech short_8khz_asterisk ...] [--cache-dir var/bench-cache/asterisk]

Sets (the LJ ones and the stereo file from ../shared/data/asr_audio):
- ``ljspeech``: LJ Speech clips LJ001-0001..0025 (reference: metadata column 3), target WER
  <= 5% (base); run by our pipeline sequentially (batch 1) and batched (batch 8), and bare;
- ``stereo_diarization``: stereo_diarization.wav, left channel = agent, right = customer:
  both right and attributed;
- short 8 kHz utterances, target <= 10% with the deployment's language hint ("en"), each
  beside bare faster-whisper (default options, and with language="en") on the same clips:
  ``short_8khz_lj``: spans of 1-3 words cut from the LJ clips at word timestamps (see
  ``lj_phrases``); ``short_8khz_lj_pauses``: pause-bounded spans; ``short_8khz_espeak``:
  words, digits and short phrases spoken by espeak-ng in 3 voices, resampled to 8 kHz;
  ``short_8khz_asterisk``: real recorded isolated words at their native 8 kHz, Debian's
  Asterisk prompts (digits 0-9, letters a-z, and every other prompt of 1-3 words: see
  ``benchmarks.asterisk_prompts``; fetched with apt-get into --cache-dir, skipped with the
  reason when apt-get is unavailable). ONE professional speaker reading carefully, so a
  proxy for callers, not a sample of them. ``short_8khz_asterisk_gsm``: the same prompts
  through the GSM 06.10 phone codec.
WER uses Whisper's EnglishTextNormalizer from the pinned PyPI package `whisper-normalizer`
(a copy of openai-whisper's normalizers). Results: benchmarks/results/asr_wer.json; a run of
some sets (--sets) replaces only those sets' entries there.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import shutil
import subprocess
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
from benchmarks import asterisk_prompts
from nlp.training.common import machine_description
from service.config import Settings
from workers.transcribe import second_opinion, whisper_model_dir

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "asr_wer.json"
STEREO_REFS = {
    "agent": "He began a confused complaint against the wizard, who had vanished behind the "
    "curtain on the left.",
    "customer": "The horizon seems extremely distant.",
}
_whisper_normalise = EnglishTextNormalizer()


def _normalise(text: str) -> str:
    """Whisper's English normalisation, less the lone "." it leaves of an ellipsis ("And...")."""
    return " ".join(t for t in _whisper_normalise(text).split() if any(c.isalnum() for c in t))


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


def _cut(audio: np.ndarray, a: float, b: float) -> np.ndarray:
    cut = audio[max(0, int(a * SAMPLE_RATE)) : min(len(audio), int(b * SAMPLE_RATE))].copy()
    fade = min(len(cut) // 4, SAMPLE_RATE // 50)  # 20 ms ramps: no clicks at the cuts
    ramp = np.linspace(0.0, 1.0, fade)
    cut[:fade] *= ramp
    cut[len(cut) - fade :] *= ramp[::-1]
    return cut


def lj_phrases(
    transcriber: Transcriber, clips: list[tuple[Path, str]], out_dir: Path
) -> list[tuple[Path, str]]:
    """Spans of 1, 2 and 3 words cut from the LJ clips between pauses, resampled to 8 kHz.

    Word times come from a pass over the whole clip with the language given. One span of
    each length per clip, not overlapping, each of its words a word of the reference heard
    surely (p >= 0.8; a lone word has 4+ letters: a cut-out "the" is no utterance). Where
    the span stands next to a pause (a gap in the word times, or the clip's edge) the cut
    takes half the pause (at most 0.3 s); inside running speech it is cut at the word's
    own edge, since any margin there is a piece of the neighbouring word. Then 20 ms fades.
    Read speech runs words together, so an edge cut can still clip or keep a sliver: each
    item says whether both its sides were pauses (``isolated``), and the result is
    reported for those alone too. The reference is the span's words.
    """
    items: list[tuple[Path, str]] = []
    for path, ref in clips:
        audio = np.concatenate(list(stream_audio(path, channels=1)), axis=1)[0]
        total = len(audio) / SAMPLE_RATE
        ref_words = {_normalise(w) for w in ref.split()}
        words = [w for s in transcriber.transcribe(path, language="en").segments for w in s.words]
        k = 0
        for n in (1, 2, 3):
            while k + n <= len(words):
                span = words[k : k + n]
                if any(
                    _normalise(w.word) not in ref_words
                    or w.probability < 0.8
                    or (n == 1 and len(_normalise(w.word)) < 4)
                    for w in span
                ):
                    k += 1
                    continue
                left = words[k - 1].end if k > 0 else 0.0
                right = words[k + n].start if k + n < len(words) else total
                gap_l = span[0].start - left if k > 0 else span[0].start + 1.0
                gap_r = right - span[-1].end if k + n < len(words) else total - span[-1].end + 1.0
                a = span[0].start - min(0.3, gap_l / 2) if gap_l >= 0.1 else span[0].start
                b = span[-1].end + min(0.3, gap_r / 2) if gap_r >= 0.1 else span[-1].end
                kind = "isolated" if gap_l >= 0.1 and gap_r >= 0.1 else "edge-cut"
                target = out_dir / f"{path.stem}-{n}w-{kind}.wav"
                write_wav(target, to_8k(_cut(audio, max(0.0, a), min(total, b))), 8_000)
                text = "".join(w.word for w in span).strip(" .,;:!?\"'")
                items.append((target, text))
                k += n + 1  # no overlap, and not the very next word: new audio each time
                break
    return items


def lj_pause_phrases(
    transcriber: Transcriber, clips: list[tuple[Path, str]], out_dir: Path, gap: float = 0.1
) -> list[tuple[Path, str]]:
    """Short utterances as people make them: 1-5 words with a pause on both sides, at 8 kHz.

    Read speech pauses at commas and phrase ends; every span of 1 to 5 words (each a word of
    the reference heard surely, p >= 0.8) bounded by pauses of at least ``gap`` seconds (or
    the clip's edge) is cut with half of each pause (at most 0.3 s), so no neighbouring word
    leaks in, unlike ``lj_phrases``' edge cuts. Spans do not overlap; shortest first.
    """
    items: list[tuple[Path, str]] = []
    for path, ref in clips:
        audio = np.concatenate(list(stream_audio(path, channels=1)), axis=1)[0]
        total = len(audio) / SAMPLE_RATE
        ref_words = {_normalise(w) for w in ref.split()}
        words = [w for s in transcriber.transcribe(path, language="en").segments for w in s.words]
        starts = [w.start for w in words] + [total + 1.0]
        ends = [-1.0] + [w.end for w in words]
        before = [starts[i] - ends[i] for i in range(len(words))]  # pause before word i
        after = [starts[i + 1] - ends[i + 1] for i in range(len(words))]  # and after it
        used: set[int] = set()
        for n in (1, 2, 3, 4, 5):
            for k in range(len(words) - n + 1):
                span = range(k, k + n)
                if used & set(span) or before[k] < gap or after[k + n - 1] < gap:
                    continue
                heard = (_normalise(words[i].word) in ref_words for i in span)
                if not all(heard) or min(words[i].probability for i in span) < 0.8:
                    continue
                a = words[k].start - min(0.3, before[k] / 2)
                b = words[k + n - 1].end + min(0.3, after[k + n - 1] / 2)
                target = out_dir / f"{path.stem}-{k}-{n}w-pauses.wav"
                write_wav(target, to_8k(_cut(audio, max(0.0, a), min(total, b))), 8_000)
                text = "".join(words[i].word for i in span).strip(" .,;:!?\"'")
                items.append((target, text))
                used |= set(span)
    return items


# What callers say to a phone menu or an agent in a word or three.
SPOKEN = [
    "yes", "no", "zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
    "nine", "cancel", "refund", "billing", "agent", "operator", "account", "hello",
    "thank you", "yes please", "speak to an agent", "my account", "cancel my order",
]  # fmt: skip
VOICES = [("en-us", 50), ("en-us+f3", 70), ("en-gb", 40)]


def espeak_utterances(out_dir: Path) -> list[tuple[Path, str]]:
    """Words, digits and short phrases spoken by espeak-ng (3 voices), at 8 kHz."""
    items: list[tuple[Path, str]] = []
    for v, (voice, pitch) in enumerate(VOICES):
        for i, text in enumerate(SPOKEN):
            wav = subprocess.run(
                ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", "150", "--stdout", text],
                capture_output=True,
                check=True,
            ).stdout
            with wave.open(io.BytesIO(wav)) as w:
                rate = w.getframerate()
                pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
            audio = pcm.astype(np.float32) / 32768
            # espeak-ng speaks at 22.05 kHz: to 16 kHz, then the phone line's 8 kHz.
            audio16 = np.interp(
                np.arange(0, len(audio) * SAMPLE_RATE // rate) * rate / SAMPLE_RATE,
                np.arange(len(audio)),
                audio,
            )
            target = out_dir / f"espeak-{v}-{i}.wav"
            write_wav(target, to_8k(audio16), 8_000)
            items.append((target, text))
    return items


def text_or_empty(transcriber: Transcriber, path: Path) -> str:
    """The transcript's text; a clip judged silent counts as an empty hypothesis."""
    try:
        return transcriber.transcribe(path).text
    except AsrError:
        return ""


def bare_text(model: WhisperModel, path: Path, language: str | None = None) -> str:
    segments, _ = model.transcribe(str(path), language=language)
    return " ".join(s.text for s in segments)


def errors(items: list[tuple[str, str, str]]) -> list[dict[str, str]]:
    """The (name, reference, hypothesis) triples whose normalised texts differ, normalised
    and as written (``benchmarks.asr_ceiling`` scores the written forms)."""
    return [
        {
            "clip": name,
            "ref": _normalise(r),
            "hyp": _normalise(h),
            "ref_written": r.strip(),
            "hyp_written": h.strip(),
        }
        for name, r, h in items
        if _normalise(r) != _normalise(h)
    ]


def closest(accepted: tuple[str, ...], hyp: str) -> str:
    """The accepted reference nearest the hypothesis (all spell the same spoken words).

    Scoring against the nearest of several equally right references is how a test set with
    spelling variants is fairly scored ("B" or "bee" for a spoken letter, "AM" or "A.M.").
    """

    return min(accepted, key=lambda ref: word_errors(ref, hyp))


def word_errors(ref: str, hyp: str) -> int:
    """Substitutions, deletions and insertions between the normalised texts."""
    out = jiwer.process_words(_normalise(ref), _normalise(hyp))
    return int(out.substitutions + out.deletions + out.insertions)


SYSTEMS = ("ours_language_hint", "bare_defaults", "bare_language_en")


def short_set(
    name: str,
    items: list[tuple[Path, str]],
    hinted: Transcriber,
    model: WhisperModel,
    accepted: list[tuple[str, ...]] | None = None,
    categories: list[str] | None = None,
) -> dict[str, Any]:
    """Our pipeline with the language hint beside bare faster-whisper, on short clips.

    ``accepted`` gives each clip's equally right references (the first is ``items``'); the
    result then also holds the strict WER against the first alone. ``categories`` adds a
    WER per category.
    """
    accepted = accepted or [(r,) for _, r in items]
    hyps = {
        "ours_language_hint": [text_or_empty(hinted, p) for p, _ in items],
        "bare_defaults": [bare_text(model, p) for p, _ in items],
        "bare_language_en": [bare_text(model, p, "en") for p, _ in items],
    }
    refs = {k: [closest(a, h) for a, h in zip(accepted, v, strict=True)] for k, v in hyps.items()}
    strict = [r for _, r in items]
    isolated = [i for i, (p, _) in enumerate(items) if "isolated" in p.stem]
    entry: dict[str, Any] = {
        "utterances": len(items),
        "words": sum(len(_normalise(r).split()) for r in strict),
        **{f"wer_{k}": wer(refs[k], hyps[k]) for k in SYSTEMS},
        "target": "<= 0.10",
    }
    if any(len(a) > 1 for a in accepted):
        entry.update({f"wer_{k}_first_reference_only": wer(strict, hyps[k]) for k in SYSTEMS})
    entry["isolated_utterances"] = len(isolated)
    for short, k in (("ours", "ours_language_hint"), ("bare", "bare_defaults")):
        entry[f"wer_{short}_isolated_only"] = (
            wer([refs[k][i] for i in isolated], [hyps[k][i] for i in isolated])
            if isolated
            else None
        )
    if categories:
        entry["by_category"] = {}
        for cat in sorted(set(categories)):
            idx = [i for i, c in enumerate(categories) if c == cat]
            scores: dict[str, Any] = {"utterances": len(idx)}
            for k in SYSTEMS:
                scores[f"wer_{k}"] = wer([refs[k][i] for i in idx], [hyps[k][i] for i in idx])
                if any(len(accepted[i]) > 1 for i in idx):
                    scores[f"wer_{k}_first_reference_only"] = wer(
                        [strict[i] for i in idx], [hyps[k][i] for i in idx]
                    )
            entry["by_category"][cat] = scores
    for k in SYSTEMS:
        entry[f"errors_{k}"] = errors(
            [(p.stem, r, h) for (p, _), r, h in zip(items, refs[k], hyps[k], strict=True)]
        )
    print(
        f"{name} ({len(items)}): ours {entry['wer_ours_language_hint']:.3%}, bare "
        f"{entry['wer_bare_defaults']:.3%}, bare+en {entry['wer_bare_language_en']:.3%}",
        flush=True,
    )
    for cat, scores in entry.get("by_category", {}).items():
        print(
            f"  {cat} ({scores['utterances']}): ours {scores['wer_ours_language_hint']:.3%}, "
            f"bare {scores['wer_bare_defaults']:.3%}, bare+en {scores['wer_bare_language_en']:.3%}",
            flush=True,
        )
    return entry


def asterisk_sets(
    cache: Path, wanted: set[str], hinted: Transcriber, model: WhisperModel, out_dir: Path
) -> dict[str, Any]:
    """``short_8khz_asterisk`` (and its GSM copy): real isolated words from Debian's prompts."""
    root = asterisk_prompts.fetch(cache)
    if root is None:
        return {}
    found = asterisk_prompts.prompts(root)
    sets: dict[str, Any] = {}
    variants = [("short_8khz_asterisk", found)] if "short_8khz_asterisk" in wanted else []
    if "short_8khz_asterisk_gsm" in wanted:
        variants.append(
            ("short_8khz_asterisk_gsm", [asterisk_prompts.gsm_copy(p, out_dir) for p in found])
        )
    for name, clips in variants:
        entry = short_set(
            name,
            [(p.path, p.refs[0]) for p in clips],
            hinted,
            model,
            accepted=[p.refs for p in clips],
            categories=[p.category for p in clips],
        )
        sets[name] = {
            "source": "Debian " + ", ".join(asterisk_prompts.versions(cache)),
            "speakers": "1 (professional female US-English voice, read prompts)",
            "audio": "GSM 06.10 decoded to 8 kHz PCM" if "gsm" in name else "8 kHz 16-bit PCM",
            "letters_accepted": "the letter, or its name spelled / a homophone (LETTER_NAMES)",
            **entry,
        }
    return sets


SETS = (
    "ljspeech",
    "stereo_diarization",
    "short_8khz_lj",
    "short_8khz_lj_pauses",
    "short_8khz_espeak",
    "short_8khz_asterisk",
    "short_8khz_asterisk_gsm",
)
_NEED_DATA = {"ljspeech", "stereo_diarization", "short_8khz_lj", "short_8khz_lj_pauses"}


def ljspeech_set(
    clips: list[tuple[Path, str]],
    sequential: Transcriber,
    batched: Transcriber,
    model: WhisperModel,
    batch_size: int,
) -> dict[str, Any]:
    refs_lj = [r for _, r in clips]
    lj: dict[str, Any] = {"clips": len(clips), "target": "<= 0.05 (base)"}
    for label, transcriber in (("sequential", sequential), ("batched", batched)):
        t0 = time.perf_counter()
        hyps = [text_or_empty(transcriber, p) for p, _ in clips]
        lj[f"seconds_{label}"] = time.perf_counter() - t0
        lj[f"wer_ours_{label}"] = wer(refs_lj, hyps)
        lj[f"errors_ours_{label}"] = errors(
            [(p.stem, r, h) for (p, r), h in zip(clips, hyps, strict=True)]
        )
    bare_hyps_lj = [bare_text(model, p) for p, _ in clips]
    lj["wer_bare_defaults"] = wer(refs_lj, bare_hyps_lj)
    lj["errors_bare_defaults"] = errors(
        [(p.stem, r, h) for (p, r), h in zip(clips, bare_hyps_lj, strict=True)]
    )
    lj["wer"] = lj[f"wer_ours_{'batched' if batch_size > 1 else 'sequential'}"]
    print(
        f"LJ Speech ({len(clips)} clips): sequential {lj['wer_ours_sequential']:.3%}, batched "
        f"{lj['wer_ours_batched']:.3%}, bare {lj['wer_bare_defaults']:.3%}",
        flush=True,
    )
    return lj


def stereo_set(stereo: Path, ours: Transcriber) -> dict[str, Any]:
    transcript = ours.transcribe(stereo, layout="stereo_agent_left")
    per_speaker = {
        s: {"wer": wer([ref], [transcript.speaker_text(s)]), "text": transcript.speaker_text(s)}  # type: ignore[arg-type]
        for s, ref in STEREO_REFS.items()
    }
    for s, v in per_speaker.items():
        print(f"stereo {s}: WER {v['wer']:.3%}  {v['text']!r}")
    return per_speaker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--model", choices=["base", "tiny.en"], default="base")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="Default: the product's (AsrSettings)."
    )
    parser.add_argument(
        "--sets",
        nargs="+",
        choices=SETS,
        default=list(SETS),
        help="Run only these sets; their entries replace those in the results file.",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=REPO / "var" / "bench-cache" / "asterisk",
        help="Where the Asterisk prompt packages are downloaded and unpacked (untracked).",
    )
    args = parser.parse_args()
    chosen = set(args.sets)
    if args.batch_size is None:
        args.batch_size = Settings().asr.batch_size
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    if chosen & _NEED_DATA and not (args.data_dir / "asr_audio").is_dir():
        raise SystemExit(f"no {args.data_dir / 'asr_audio'}: pass --data-dir")
    model = WhisperModel(
        str(whisper_model_dir(Settings(), args.model)),
        device="cpu",
        compute_type="int8",
        cpu_threads=2,
    )
    sequential = Transcriber(model, TranscribeOptions(batch_size=1))
    batched = Transcriber(model, TranscribeOptions(batch_size=8))
    ours = batched if args.batch_size > 1 else sequential
    # The product's short-clip second opinion (tiny.en), as `build_transcriber` sets it up.
    second = second_opinion(Settings(), args.model)
    hinted = Transcriber(
        model, TranscribeOptions(language="en", batch_size=args.batch_size), second
    )
    run = {
        "date": time.strftime("%Y-%m-%d"),
        "model": args.model,
        # int8 decoding varies by CPU: the same code and models read 10.95% on one EPYC and
        # 11.8% on another (Asterisk PCM).
        "machine": machine_description(),
        "batch_size": args.batch_size,
        "short_clip_second_model": "tiny.en" if second is not None else None,
        "load_average_before": os.getloadavg(),
    }
    sets: dict[str, Any] = {}

    clips = lj_clips(args.data_dir) if chosen & _NEED_DATA else []
    if "ljspeech" in chosen:
        sets["ljspeech"] = ljspeech_set(clips, sequential, batched, model, args.batch_size)
    if "stereo_diarization" in chosen:
        stereo = args.data_dir / "asr_audio" / "faster_whisper_testdata" / "stereo_diarization.wav"
        sets["stereo_diarization"] = stereo_set(stereo, ours)

    with tempfile.TemporaryDirectory() as tmp:
        if "short_8khz_lj" in chosen:
            lj_items = lj_phrases(hinted, clips, Path(tmp))
            sets["short_8khz_lj"] = short_set("LJ phrases 8 kHz", lj_items, hinted, model)
        if "short_8khz_lj_pauses" in chosen:
            paused = lj_pause_phrases(hinted, clips, Path(tmp))
            sets["short_8khz_lj_pauses"] = short_set(
                "LJ pause-bounded phrases 8 kHz", paused, hinted, model
            )
        if "short_8khz_espeak" in chosen:
            if shutil.which("espeak-ng"):
                es_items = espeak_utterances(Path(tmp))
                sets["short_8khz_espeak"] = short_set("espeak-ng 8 kHz", es_items, hinted, model)
            else:
                print("short_8khz_espeak skipped: espeak-ng not found (apt-get install espeak-ng)")
        if chosen & {"short_8khz_asterisk", "short_8khz_asterisk_gsm"}:
            sets.update(asterisk_sets(args.cache_dir, chosen, hinted, model, Path(tmp)))
    run["load_average_after"] = os.getloadavg()
    write_results(sets, run, full=chosen == set(SETS))


def write_results(sets: dict[str, Any], run: dict[str, Any], full: bool) -> None:
    """Write the sets run; a partial run replaces only its sets' entries in the file.

    Each set carries the run it came from (model, batch size, load), since a merged file
    holds sets measured at different times.
    """
    stamped = {name: {**entry, "run": run} for name, entry in sets.items()}
    results: dict[str, Any] = {**run, "sets": {}}
    if not full and RESULTS.is_file():
        results = json.loads(RESULTS.read_text())
    results["sets"].update(stamped)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {RESULTS} ({', '.join(stamped) or 'no set'})")


if __name__ == "__main__":
    main()
