"""How far re-ranking can take the short-clip transcripts: each wrong reading against its
reference, scored by both pinned models.

    python -m benchmarks.asr_ceiling [--sets short_8khz_asterisk short_8khz_asterisk_gsm]

Reads the wrong clips that ``benchmarks.asr_wer`` recorded for Debian's Asterisk prompts
(run that first). For each, base and tiny.en force-decode the reading the pipeline gave and
the reference, with ``asr.joint.joint_log_probabilities``, the scorer the transcriber
chooses between readings with, on the same padded 16 kHz audio the transcriber decodes. Each text is
tried in a few spellings (as written, normalised, capitalised, with a full stop) and its
best kept, so that neither side loses on casing or digits.

A clip whose reference scores higher could be fixed by a better candidate list; one whose
reading scores higher cannot be fixed by any re-ranking under these two models: both find the
wrong words likelier given the audio. The ceiling WER counts every clip of the first kind as
fixed.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from asr import TranscribeOptions
from asr.audio import SAMPLE_RATE, stream_audio
from asr.joint import joint_log_probabilities
from benchmarks import asterisk_prompts
from benchmarks.asr_wer import RESULTS as WER_RESULTS
from benchmarks.asr_wer import _normalise, word_errors
from nlp.training.common import machine_description
from service.config import Settings
from workers.transcribe import load_whisper

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "asr_ceiling.json"
SETS = ("short_8khz_asterisk", "short_8khz_asterisk_gsm")


def spellings(text: str) -> list[str]:
    """The text as written and normalised (Whisper's English normaliser: digits, no
    punctuation), each also capitalised, with and without a full stop."""
    forms: list[str] = []
    for base in (text.strip(), _normalise(text)):
        for form in (base, base[:1].upper() + base[1:], base[:1].upper() + base[1:] + "."):
            if form and form not in forms:
                forms.append(form)
    return forms


def padded_audio(path: Path) -> np.ndarray:
    """The clip as the transcriber decodes a short clip: 16 kHz mono, silence both sides."""
    audio = np.concatenate([chunk[0] for chunk in stream_audio(path, 1)])
    n = int(TranscribeOptions().short_clip_pad_seconds * SAMPLE_RATE)
    return np.pad(audio, (n, n)).astype(np.float32)


def ceiling(
    name: str,
    entry: dict[str, Any],
    paths: dict[str, Path],
    ordinals: set[str],
    models: list[Any],
) -> dict[str, Any]:
    """The reading-vs-reference verdict for every wrong clip of one set.

    ``ordinals`` names the clips of spoken ordinals ("fourth"), whose final "th" lies above
    the 4 kHz a phone line keeps; the WER without the wrong ones is reported too.
    """
    clips: list[dict[str, Any]] = []
    for error in entry["errors_ours_language_hint"]:
        audio = padded_audio(paths[error["clip"]])
        readings = spellings(error["hyp_written"])
        references = spellings(error["ref_written"])
        # One scoring call per clip: each model encodes the audio once for both sides.
        totals = joint_log_probabilities(models, audio, readings + references)
        best: dict[str, tuple[float, str]] = {}
        for side, forms, scores in (
            ("reading", readings, totals[: len(readings)]),
            ("reference", references, totals[len(readings) :]),
        ):
            i = int(np.argmax(scores))
            best[side] = (float(scores[i]), forms[i])
        clips.append(
            {
                "clip": error["clip"],
                "reference": best["reference"][1],
                "reading": best["reading"][1],
                "log_probability_reference": round(best["reference"][0], 3),
                "log_probability_reading": round(best["reading"][0], 3),
                "reference_likelier": best["reference"][0] > best["reading"][0],
                "word_errors": word_errors(error["ref"], error["hyp"]),
            }
        )
    errors = sum(c["word_errors"] for c in clips)
    fixable = [c for c in clips if c["reference_likelier"]]
    fixable_errors = sum(c["word_errors"] for c in fixable)
    words = int(entry["words"])
    wrong_ordinals = [c for c in clips if c["clip"] in ordinals]
    result = {
        "wrong_clips": len(clips),
        "reference_likelier": len(fixable),
        "word_errors": errors,
        "word_errors_on_reference_likelier_clips": fixable_errors,
        "words": words,
        "wer_recorded": entry["wer_ours_language_hint"],
        "wer_ceiling_by_re_ranking": (errors - fixable_errors) / words,
        "wrong_ordinal_clips": len(wrong_ordinals),
        # Each ordinal clip is one word.
        "wer_without_the_wrong_ordinal_clips": (
            (errors - sum(c["word_errors"] for c in wrong_ordinals)) / (words - len(wrong_ordinals))
        ),
        "recorded_run": entry.get("run", {}).get("date"),
        "clips": clips,
    }
    print(
        f"{name}: {len(fixable)} of {len(clips)} wrong clips have a likelier reference; "
        f"re-ranking ceiling {result['wer_ceiling_by_re_ranking']:.1%} "
        f"(recorded {entry['wer_ours_language_hint']:.1%})",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    parser.add_argument(
        "--data-dir", type=Path, help="Unused (the prompts come from Debian); run_all passes it."
    )
    parser.add_argument("--cache-dir", type=Path, default=REPO / "var" / "bench-cache" / "asterisk")
    args = parser.parse_args()
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    recorded = json.loads(WER_RESULTS.read_text())["sets"]
    missing = [s for s in args.sets if s not in recorded]
    if missing:
        raise SystemExit(f"no {', '.join(missing)} in {WER_RESULTS}: run benchmarks.asr_wer first")
    root = asterisk_prompts.fetch(args.cache_dir)
    if root is None:
        raise SystemExit("the Asterisk prompts could not be fetched")
    found = asterisk_prompts.prompts(root)
    settings = Settings()
    models = [load_whisper(settings, "base"), load_whisper(settings, "tiny.en")]
    results: dict[str, Any] = {"machine": machine_description(), "sets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets:
            prompts = (
                [asterisk_prompts.gsm_copy(p, Path(tmp)) for p in found] if "gsm" in name else found
            )
            paths = {p.path.stem: p.path for p in prompts}
            if len(paths) != len(prompts):
                raise SystemExit("two prompts share a file name: the recorded errors are ambiguous")
            ordinals = {p.path.stem for p in prompts if p.name.startswith("digits/h-")}
            results["sets"][name] = ceiling(name, recorded[name], paths, ordinals, models)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
