"""Two Whisper models' joint verdict on a short clip: every reading scored by every model.

For a short English clip the transcriber has two readings, base's and tiny.en's. Comparing
each model's confidence in its own reading (mean log-probability) asks each model alone.
Here each reading is force-decoded by both models (CTranslate2's ``align`` gives the
probability of every token of a given text) and the reading with the higher summed
log-probability over the two models wins: a product of the two experts. The sum over a
reading's tokens is its whole probability, so a reading that needs more (or stranger) tokens
to say the same sound pays for them.

Measured on Debian's Asterisk prompts (258 real 8 kHz clips): the joint verdict makes fewer
errors than the own-confidence comparison on plain PCM and GSM audio alike
(benchmarks/results/asr_wer.json).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer

from asr.audio import FloatArray

# A token Whisper gives no chance at all still costs a finite amount, so sums stay ordered.
_FLOOR = 1e-12


def log_probabilities(
    model: WhisperModel, samples: FloatArray, texts: Sequence[str], language: str = "en"
) -> list[float]:
    """log P(text | audio) under ``model`` for each text (text tokens only, no timestamps).

    ``samples`` is 16 kHz mono audio of at most one 30 s window. An empty text scores -inf.
    """
    features = model.feature_extractor(samples)
    frames = int(features.shape[-1])
    encoded = model.encode(pad_or_trim(features))
    tokenizer = Tokenizer(
        model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language
    )
    start = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    scores: list[float] = []
    for text in texts:
        tokens = tokenizer.encode(" " + text.strip()) if text.strip() else []
        if not tokens:
            scores.append(float("-inf"))
            continue
        result = model.model.align(encoded, start, [tokens], frames)[0]
        probabilities = np.asarray(result.text_token_probs, dtype=np.float64)
        scores.append(float(np.log(np.maximum(probabilities, _FLOOR)).sum()))
    return scores


def joint_log_probabilities(
    models: Sequence[WhisperModel], samples: FloatArray, texts: Sequence[str], language: str = "en"
) -> npt.NDArray[np.float64]:
    """Each text's log-probability summed over ``models`` (float64, -inf for an empty text)."""
    totals = np.zeros(len(texts), dtype=np.float64)
    for model in models:
        totals += np.asarray(log_probabilities(model, samples, texts, language))
    return totals


def likeliest(
    models: Sequence[WhisperModel], samples: FloatArray, texts: Sequence[str], language: str = "en"
) -> int:
    """Index of the text with the highest log-probability summed over ``models``.

    Ties keep the earlier text (the caller lists its primary model's reading first).
    """
    return int(np.argmax(joint_log_probabilities(models, samples, texts, language)))
