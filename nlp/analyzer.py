"""The text analyzer: sentences, one encoder pass per text, every head on the same vectors.

``TextAnalyzer.analyze`` returns plain dicts shaped like ``service.contract.AnalysisResult``
(this library does not import the service; the composition roots validate). Stages that need
the vectors (the taxonomy mapping) run through ``analyze_full`` or as ``stages`` given to the
constructor, so they never cause a second encoder run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Required, TypedDict

import numpy as np

from nlp.detect import cues
from nlp.encoder import Encoder, EncoderOptions, Encoding, FloatArray, Span
from nlp.errors import InputError, ModelLoadError
from nlp.heads import Head, load_heads
from nlp.language import guess_language
from nlp.sentences import SentenceSplitter, SplitterOptions


class TextInput(TypedDict, total=False):
    """One text to analyse; other feedback fields may ride along and are ignored."""

    id: Required[str]
    text: Required[str]
    language: str | None


@dataclass
class Analysis:
    """One analysed text: the contract dict plus what later stages may need."""

    result: dict[str, Any]
    text: str
    spans: list[Span]
    encoding: Encoding


Stage = Callable[[Sequence[Analysis]], None]


@dataclass(frozen=True)
class AnalyzerOptions:
    """Analyzer options.

    ``chunk_texts``: texts per encoder call (the encoder batches windows inside it).
    ``ironic_sentiment``: read a sarcastic text's (or sentence's) sentiment as meant, not as
    worded (see ``_ironic_sentiment``); the head's own reading stays in ``sentiment.literal``.
    """

    chunk_texts: int = 512
    ironic_sentiment: bool = True


@dataclass
class TextAnalyzer:
    """Splits, encodes once and scores texts with every loaded head."""

    encoder: Encoder
    splitter: SentenceSplitter
    heads: Mapping[str, Head]
    options: AnalyzerOptions = field(default_factory=AnalyzerOptions)
    stages: Sequence[Stage] = ()

    def __post_init__(self) -> None:
        if "sentiment" not in self.heads:
            raise InputError("the analyzer needs a 'sentiment' head (the contract requires it)")
        for head in self.heads.values():
            wanted = head.meta.extra.get("requires_adapter_sha256")
            if wanted != self.encoder.adapter_sha256:
                raise ModelLoadError(
                    f"head {head.meta.version} was trained on the encoder with adapter "
                    f"{str(wanted)[:12]}, but the loaded encoder has "
                    f"{str(self.encoder.adapter_sha256)[:12]}: re-export the encoder with "
                    "models/heads/encoder-adapter (`undertone models setup`)"
                )
            if head.input_dim != self.encoder.dim:
                raise InputError(
                    f"head {head.name} reads {head.input_dim}-d vectors, "
                    f"the encoder gives {self.encoder.dim}"
                )

    @classmethod
    def from_paths(
        cls,
        encoder_dir: Path,
        spacy_model: str | Path,
        heads_dir: Path,
        *,
        encoder_options: EncoderOptions | None = None,
        encoder_name: str = "",
        adapter: Path | None = None,
        head_names: Sequence[str] | None = None,
        options: AnalyzerOptions | None = None,
    ) -> TextAnalyzer:
        """Load every model from explicit paths.

        Args:
            encoder_dir: the exported ONNX directory, or a Hugging Face directory for torch.
            spacy_model: spaCy package name or directory (only `senter` is used).
            heads_dir: directory of head directories (models/heads).
            encoder_options: runtime, threads, max length, batch size.
            encoder_name: name and version reported in `model_versions`.
            adapter: torch runtime only: the encoder adapter to merge at load.
            head_names: heads to load (default: all under heads_dir).
            options: analyzer options.
        """
        return cls(
            encoder=Encoder(encoder_dir, encoder_options, name=encoder_name, adapter=adapter),
            splitter=SentenceSplitter(spacy_model, SplitterOptions()),
            heads=load_heads(heads_dir, head_names),
            options=options or AnalyzerOptions(),
        )

    @property
    def model_versions(self) -> dict[str, str]:
        """Versions of everything that shaped a result."""
        adapter = self.encoder.adapter_sha256
        suffix = f"+adapter.{adapter[:12]}" if adapter else ""
        versions = {
            "encoder": f"{self.encoder.name}{suffix}/{self.encoder.runtime}",
            "sentences": self.splitter.name,
        }
        versions.update({name: head.meta.version for name, head in self.heads.items()})
        return versions

    def analyze(self, items: Sequence[TextInput]) -> list[dict[str, Any]]:
        """Analyse texts in batches, returning contract-shaped dicts in input order.

        Args:
            items: mappings with ``id`` and ``text`` (and optionally ``language``).

        Returns:
            One dict per item, shaped like ``service.contract.AnalysisResult``.
        """
        return [analysis.result for analysis in self.analyze_full(items)]

    def analyze_full(self, items: Sequence[TextInput]) -> list[Analysis]:
        """Like `analyze`, keeping each text's sentence spans and pooled vectors.

        Chunks are pipelined: while the encoder runs chunk k (ONNX Runtime releases the GIL
        and keeps about one of two cores busy), one helper thread splits chunk k+1 into
        sentences and then scores chunk k-1 (heads, contract dicts, stages), so the work
        around the encoder mostly hides behind it. Stages see one chunk at a time; every
        stage works text by text, so the result is the same as one call over all texts.
        """
        texts = [_checked_text(item) for item in items]
        step = self.options.chunk_texts
        if len(texts) > step:
            # Chunks of similar lengths pad little in the encoder's batches; input order is
            # restored at the end.
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            by_length = self._analyze_sorted([items[i] for i in order], [texts[i] for i in order])
            analyses: list[Analysis] = [by_length[0]] * len(texts)
            for position, i in enumerate(order):
                analyses[i] = by_length[position]
            return analyses
        return self._analyze_sorted(items, texts)

    def _analyze_sorted(self, items: Sequence[TextInput], texts: list[str]) -> list[Analysis]:
        step = self.options.chunk_texts
        chunks = [(items[i : i + step], texts[i : i + step]) for i in range(0, len(texts), step)]
        if len(chunks) <= 1:
            analyses: list[Analysis] = []
            for chunk_items, chunk_texts in chunks:
                spans = self.splitter.split(chunk_texts)
                encodings = self.encoder.encode(chunk_texts, spans)
                analyses += self._finish(chunk_items, chunk_texts, spans, encodings)
            return analyses
        return self._pipelined(chunks)

    def _pipelined(self, chunks: list[tuple[Sequence[TextInput], list[str]]]) -> list[Analysis]:
        from concurrent.futures import Future, ThreadPoolExecutor

        analyses: list[Analysis] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="analyzer") as helper:
            split_next = helper.submit(self.splitter.split, chunks[0][1])
            finishing: Future[list[Analysis]] | None = None
            for k, (chunk_items, chunk_texts) in enumerate(chunks):
                spans = split_next.result()
                if k + 1 < len(chunks):
                    split_next = helper.submit(self.splitter.split, chunks[k + 1][1])
                encodings = self.encoder.encode(chunk_texts, spans)
                if finishing is not None:
                    analyses += finishing.result()
                finishing = helper.submit(self._finish, chunk_items, chunk_texts, spans, encodings)
            if finishing is not None:
                analyses += finishing.result()
        return analyses

    def _finish(
        self,
        items: Sequence[TextInput],
        texts: list[str],
        spans: list[list[Span]],
        encodings: list[Encoding],
    ) -> list[Analysis]:
        """Heads, contract dicts and stages for one encoded chunk."""
        text_rows = _stack([e.text_vector for e in encodings])
        span_rows = _stack([e.span_vectors for e in encodings], self.encoder.dim)
        scored_texts = {n: _score(h, text_rows) for n, h in self.heads.items()}
        scored_spans = {n: _score(h, span_rows) for n, h in self.heads.items()}
        versions = self.model_versions
        analyses: list[Analysis] = []
        offset = 0
        for i, (item, text) in enumerate(zip(items, texts, strict=True)):
            sentences: list[dict[str, Any]] = []
            for j, (s_start, s_end) in enumerate(spans[i]):
                sentence: dict[str, Any] = {"start": s_start, "end": s_end}
                sentence["text"] = text[s_start:s_end]
                sentence.update({n: rows[offset + j] for n, rows in scored_spans.items()})
                _merge_intensity(sentence)
                self._read_irony(sentence, sentence["text"])
                sentences.append(sentence)
            offset += len(spans[i])
            result: dict[str, Any] = {
                "id": str(item["id"]),
                "language": item.get("language") or guess_language(text),
            }
            result.update({n: rows[i] for n, rows in scored_texts.items()})
            _merge_intensity(result)
            self._read_irony(result, text)
            result["sentences"] = sentences
            result["model_versions"] = dict(versions)
            analyses.append(Analysis(result, text, spans[i], encodings[i]))
        for stage in self.stages:
            stage(analyses)
        return analyses

    def _read_irony(self, scored: dict[str, Any], text: str) -> None:
        irony = self.heads.get("irony")
        if self.options.ironic_sentiment and irony is not None:
            _ironic_sentiment(scored, text, irony.meta.thresholds.get("irony", 0.5))


def _ironic_sentiment(scored: dict[str, Any], text: str, irony_threshold: float) -> None:
    """Read a sarcastic unit's sentiment as meant, not as worded.

    The sentiment head reads the words: "Great, another hour on hold. Just perfect." is
    positive to it. Sarcasm is praise wrapped around a bad situation, so when the irony head
    says the unit is ironic (at or above its threshold) and its words name a negative
    situation ("on hold", "delayed again", "charged twice", "nobody answered":
    ``cues.NEGATIVE_SITUATION``), the ironic share of the positive probability moves to
    negative: ``positive' = positive x (1 - irony)``. The head's own scores stay in
    ``sentiment["literal"]``.

    Irony alone moves nothing: the irony head also fires on sincere superlatives ("Delivery
    arrived a day early, brilliant." 0.92). Gating on the complaint head instead was measured
    and dropped: it scores thanks that mention a problem ("Best service ever, they fixed my
    laptop in an hour!") above 0.5, so it flipped sincere praise (models/heads/AFFECT.md).
    Nor does a unit that reports its problem put right with thanks (``cues.resolved``: "My
    refund arrived today, thanks for sorting it out."): the bad situation in it is over.
    """
    irony, sentiment = scored.get("irony"), scored.get("sentiment")
    if not isinstance(irony, float) or irony < irony_threshold or not isinstance(sentiment, dict):
        return
    if not cues.find(cues.NEGATIVE_SITUATION, text):
        return
    if cues.resolved(text, scored.get("emotions")):
        return  # a problem put right, with thanks: sincere, not sarcasm
    literal: dict[str, float] = sentiment["scores"]
    moved = literal.get("positive", 0.0) * irony
    if moved <= 0.0:
        return
    scores = dict(literal)
    scores["positive"] = round(literal["positive"] - moved, 4)
    scores["negative"] = round(literal["negative"] + moved, 4)
    scored["sentiment"] = {
        "label": max(scores, key=lambda label: scores[label]),
        "scores": scores,
        "literal": literal,
    }


def _checked_text(item: Mapping[str, Any]) -> str:
    if "id" not in item or item["id"] is None:
        raise InputError("every item needs an 'id'")
    text = item.get("text")
    if not isinstance(text, str):
        raise InputError(f"item {item['id']!r}: 'text' must be a string")
    return text


def _merge_intensity(scored: dict[str, Any]) -> None:
    """Fold the intensity head's per-emotion values into ``emotions`` (contract shape).

    The intensity regressors (SemEval EI-reg) rate how intense an emotion is in texts that
    express it, so a value only counts as much as the emotion is there:
    ``emotions[e].intensity = value(e) * emotions[e].score``; the text's (or sentence's)
    overall ``intensity`` is the highest of these (without an emotions head: of the values).
    """
    values = scored.get("intensity")
    if not isinstance(values, dict):
        return
    emotions = scored.get("emotions")
    gated: list[float] = []
    for label, value in values.items():
        if isinstance(emotions, dict) and label in emotions:
            emotions[label]["intensity"] = round(value * emotions[label]["score"], 4)
            gated.append(emotions[label]["intensity"])
        else:
            gated.append(value)
    scored["intensity"] = round(max(gated), 4) if gated else 0.0


def _stack(parts: Sequence[FloatArray], dim: int | None = None) -> FloatArray:
    arrays = [np.atleast_2d(p) for p in parts if p.size]
    if not arrays:
        return np.zeros((0, dim or 0), dtype=np.float32)
    return np.concatenate(arrays, axis=0)


def _score(head: Head, vectors: FloatArray) -> list[Any]:
    """Head outputs rendered in the contract's shapes, one entry per row."""
    if len(vectors) == 0:
        return []
    if head.meta.input == "unit":
        vectors = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    scores = head.predict(vectors)
    labels = head.meta.labels
    kind = head.meta.kind
    # Rounded and converted in bulk: per-element float()/round() over thousands of rows and
    # 31 labels cost as much as the heads themselves.
    rounded: list[list[float]] = np.round(scores.astype(np.float64), 4).tolist()
    if kind == "softmax":
        best = scores.argmax(axis=1).tolist()
        return [
            {"label": labels[b], "scores": dict(zip(labels, row, strict=True))}
            for b, row in zip(best, rounded, strict=True)
        ]
    if len(labels) == 1:  # irony: one number
        return [row[0] for row in rounded]
    if kind == "sigmoid":
        cut = np.array([head.meta.thresholds.get(label, 0.5) for label in labels], np.float32)
        present: list[list[bool]] = (scores >= cut).tolist()
        return [
            {
                label: {"score": p, "present": yes}
                for label, p, yes in zip(labels, row, flags, strict=True)
            }
            for row, flags in zip(rounded, present, strict=True)
        ]
    return [dict(zip(labels, row, strict=True)) for row in rounded]
