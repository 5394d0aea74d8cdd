"""Map texts and their sentences onto a taxonomy's case types.

The mapper never runs the encoder on a text it is given vectors for: the analyzer passes the
text vector and the sentence vectors it already pooled from its single encoder pass. The
`embed` callable is only used for the taxonomy's own examples (once per taxonomy version) and
for callers that bring no vectors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nlp.taxonomy.background import BACKGROUND_TEXTS
from nlp.taxonomy.errors import TaxonomyMappingError
from nlp.taxonomy.head import FittedHead, HeadOptions, Matrix, fit_head, nearest_by_type
from nlp.taxonomy.loader import content_hash
from nlp.taxonomy.rules import RuleEngine, RuleHit
from nlp.taxonomy.schema import Taxonomy

Embed = Callable[[list[str]], NDArray[np.float32]]
Span = tuple[int, int]


@dataclass(frozen=True)
class MapperOptions:
    """Decision settings of the mapper."""

    min_confidence: float = 0.4  # below it a case type is not reported
    max_case_types: int = 5
    use_background: bool = True  # False for closed-set benchmarks: every text has a type
    # Sentence vectors pooled from one pass over the whole text carry the other sentences'
    # context (a rude-agent sentence after a billing one looks like billing). Removing this
    # share of their common mean brings them back towards stand-alone sentence vectors,
    # which is what the examples are. Applied only to sentence vectors the caller passes.
    context_removal: float = 0.5
    head: HeadOptions = field(default_factory=HeadOptions)


@dataclass(frozen=True)
class MapInput:
    """One text; vectors are L2-normalised rows from the shared encoder, spans index `text`."""

    text: str
    text_vector: NDArray[np.float32] | None = None
    sentences: Sequence[Span] = ()
    sentence_vectors: NDArray[np.float32] | None = None


def _normalise(vectors: NDArray[np.float32]) -> Matrix:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors.reshape(1, -1)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: Matrix = vectors / np.maximum(norms, 1e-12)
    return out


class CaseTypeMapper:
    """A taxonomy's examples fitted into a head; built once per taxonomy version.

    Use `TaxonomyStore` to get one: it caches mappers by the taxonomy's content hash.
    """

    def __init__(
        self,
        taxonomy: Taxonomy,
        embed: Embed,
        options: MapperOptions | None = None,
        example_vectors: Matrix | None = None,
    ) -> None:
        """Fit the head from the taxonomy's examples.

        Args:
            taxonomy: a validated taxonomy.
            embed: texts -> L2-normalised sentence vectors of the shared encoder.
            options: decision settings.
            example_vectors: vectors of `self.texts_to_embed(taxonomy)`, when the caller has
                them cached (the store does); otherwise `embed` computes them.
        """
        self.taxonomy = taxonomy
        self.options = options or MapperOptions()
        self.content_hash = content_hash(taxonomy)
        self._embed = embed
        self._ids = [c.id for c in taxonomy.case_types]
        self._index = {type_id: k for k, type_id in enumerate(self._ids)}
        self._names = [c.name for c in taxonomy.case_types]
        self._parents = [c.parent for c in taxonomy.case_types]
        n_types = len(self._ids)
        self._example_text = [e for c in taxonomy.case_types for e in c.examples]
        self._example_type = np.array(
            [k for k, c in enumerate(taxonomy.case_types) for _ in c.examples], dtype=np.int64
        )
        self._counter_type = np.array(
            [k for k, c in enumerate(taxonomy.case_types) for _ in c.counter_examples],
            dtype=np.int64,
        )
        texts = self.texts_to_embed(taxonomy, self.options)
        vectors = _normalise(embed(texts) if example_vectors is None else example_vectors)
        if len(vectors) != len(texts):
            raise TaxonomyMappingError(f"embed returned {len(vectors)} vectors for {len(texts)}")
        n_ex, n_ce = len(self._example_text), len(self._counter_type)
        self._examples = vectors[:n_ex]
        self._counters = vectors[n_ex : n_ex + n_ce]
        background = vectors[n_ex + n_ce :]
        self.head: FittedHead = fit_head(
            self._examples, self._example_type, n_types, background, self.options.head
        )
        self._rules = RuleEngine(taxonomy)

    @staticmethod
    def texts_to_embed(taxonomy: Taxonomy, options: MapperOptions | None = None) -> list[str]:
        """Examples, counter-examples and background texts, in the order the mapper expects."""
        options = options or MapperOptions()
        texts = [e for c in taxonomy.case_types for e in c.examples]
        texts += [e for c in taxonomy.case_types for e in c.counter_examples]
        return texts + (list(BACKGROUND_TEXTS) if options.use_background else [])

    @property
    def case_type_ids(self) -> list[str]:
        return list(self._ids)

    @property
    def example_vectors(self) -> Matrix:
        """The examples' L2-normalised vectors, in taxonomy order."""
        return self._examples

    @property
    def example_types(self) -> NDArray[np.int64]:
        """Per example, the index of its case type in `case_type_ids`."""
        return self._example_type

    @property
    def example_texts(self) -> list[str]:
        """The examples' texts, in the order of `example_vectors`."""
        return list(self._example_text)

    def scores(self, vectors: NDArray[np.float32]) -> tuple[Matrix, Matrix, NDArray[np.int64]]:
        """Confidence per case type (n, K) from vectors alone, before rules.

        Returns:
            (confidence, log P(type) over the types and "none", index of the nearest example).
        """
        x = _normalise(vectors)
        n_types = len(self._ids)
        log_p = self.head.type_log_proba(x)
        near, which = nearest_by_type(x @ self._examples.T, self._example_type, n_types)
        confidence = np.exp(log_p[:, :n_types]) * self.head.gate(near)
        if len(self._counters):
            near_counter, _ = nearest_by_type(x @ self._counters.T, self._counter_type, n_types)
            closer = near_counter > near
            # nearer a counter-example than to any example: fade out, continuously
            fade = 2.0 / (1.0 + np.exp(-self.options.head.counter_slope * (near - near_counter)))
            confidence = np.where(closer, confidence * fade, confidence)
        return confidence.astype(np.float32), log_p, which

    def predict(self, vectors: NDArray[np.float32]) -> list[str]:
        """Forced choice: the most likely case type id per vector (for evaluation)."""
        _, log_p, _ = self.scores(vectors)
        return [self._ids[k] for k in log_p[:, : len(self._ids)].argmax(axis=1)]

    def map(
        self,
        text: str,
        *,
        text_vector: NDArray[np.float32] | None = None,
        sentences: Sequence[Span] = (),
        sentence_vectors: NDArray[np.float32] | None = None,
    ) -> dict[str, Any]:
        """Map one text; see `map_batch`."""
        return self.map_batch([MapInput(text, text_vector, sentences, sentence_vectors)])[0]

    def map_batch(self, items: Sequence[MapInput]) -> list[dict[str, Any]]:
        """Map texts and their sentences onto case types (multi-label).

        Missing vectors are computed with `embed` in one call; sentences without vectors are
        embedded from their span text.

        Returns:
            One dict per item: `case_types` (a list of {"id", "name", "confidence",
            "evidence": [{"start", "end", "text", "source": "example"|"rule", "matched"}],
            "parent"}, most confident first), `fits_no_case_type` and
            `taxonomy` {"name", "version"}.
        """
        units, unit_vectors, missing = self._units(items)
        if missing:
            vectors = _normalise(self._embed([units[i][2] for i in missing]))
            for i, vector in zip(missing, vectors, strict=True):
                unit_vectors[i] = vector
        stacked = np.vstack(unit_vectors) if unit_vectors else np.zeros((0, 1), np.float32)
        confidence, _, which = self.scores(stacked) if units else (None, None, None)
        out: list[dict[str, Any]] = []
        rows_of: list[list[int]] = [[] for _ in items]
        for i, unit in enumerate(units):
            rows_of[unit[0]].append(i)
        for item_index, item in enumerate(items):
            rows = rows_of[item_index]
            assert confidence is not None
            assert which is not None
            out.append(
                self._decide(item.text, [units[i][1] for i in rows], confidence[rows], which[rows])
            )
        return out

    def _units(
        self, items: Sequence[MapInput]
    ) -> tuple[list[tuple[int, Span, str]], list[Matrix], list[int]]:
        """(item index, span, text) for each text and each of its sentences, with vectors."""
        units: list[tuple[int, Span, str]] = []
        vectors: list[Matrix] = []
        missing: list[int] = []
        for index, item in enumerate(items):
            spans = list(item.sentences)
            if item.sentence_vectors is not None and len(item.sentence_vectors) != len(spans):
                raise TaxonomyMappingError(
                    f"{len(spans)} sentence spans but {len(item.sentence_vectors)} vectors"
                )
            units.append((index, (0, len(item.text)), item.text))
            if item.text_vector is None:
                missing.append(len(units) - 1)
                vectors.append(np.zeros((1, 1), np.float32))
            else:
                vectors.append(_normalise(item.text_vector))
            if len(spans) < 2:
                continue  # one sentence is the text itself
            if item.sentence_vectors is not None:
                given = _normalise(item.sentence_vectors)
                given = _normalise(given - self.options.context_removal * given.mean(axis=0))
            for j, (start, end) in enumerate(spans):
                if not 0 <= start < end <= len(item.text):
                    raise TaxonomyMappingError(f"sentence span {(start, end)} is outside the text")
                units.append((index, (start, end), item.text[start:end]))
                if item.sentence_vectors is None:
                    missing.append(len(units) - 1)
                    vectors.append(np.zeros((1, 1), np.float32))
                else:
                    vectors.append(given[j : j + 1])
        return units, vectors, missing

    def _decide(
        self, text: str, spans: list[Span], confidence: Matrix, which: NDArray[np.int64]
    ) -> dict[str, Any]:
        hits = self._rules.find(text) if not self._rules.empty else {}
        found: list[dict[str, Any]] = []
        # Only a type the learned part finds close enough, or one a pattern names, can be
        # reported; rules can only add to (patterns) or remove (require_any, exclude) those.
        close = confidence.max(axis=0) >= self.options.min_confidence if len(confidence) else []
        named = {self._index[t] for t, field in hits if field == "patterns" and hits[(t, field)]}
        for k in sorted({int(k) for k in np.flatnonzero(close)} | named):
            type_id = self._ids[k]
            best, evidence = self._learned(text, spans, confidence[:, k], which[:, k])
            rules = self.taxonomy.case_types[k].rules
            if rules is not None:
                if hits.get((type_id, "exclude")):
                    continue
                if rules.require_any and not hits.get((type_id, "require_any")):
                    continue
                rule_hits = hits.get((type_id, "patterns"), [])
                if rule_hits:
                    best = max(best, rules.pattern_confidence)
                    evidence = [_rule_evidence(h) for h in rule_hits] + evidence
            if best >= self.options.min_confidence:
                found.append(
                    {
                        "id": type_id,
                        "name": self._names[k],
                        "confidence": round(float(best), 4),
                        "evidence": evidence,
                        "parent": self._parents[k],
                    }
                )
        reported = {f["id"] for f in found}
        # a parent and its own child both fitting: the child is the more precise answer
        found = [
            f
            for f in found
            if not any(self._parents[self._ids.index(o)] == f["id"] for o in reported)
        ]
        found.sort(key=lambda f: -f["confidence"])
        found = found[: self.options.max_case_types]
        return {
            "case_types": found,
            "fits_no_case_type": not found,
            "taxonomy": {"name": self.taxonomy.name, "version": self.taxonomy.version},
        }

    def _learned(
        self, text: str, spans: list[Span], confidence: Matrix, which: NDArray[np.int64]
    ) -> tuple[float, list[dict[str, Any]]]:
        """Best confidence over the text and its sentences, with the sentences as evidence."""
        threshold = self.options.min_confidence
        best = float(confidence.max()) if len(confidence) else 0.0
        # sentences are more precise evidence than the whole text; the text when none fits
        order = [i for i in range(1, len(spans)) if confidence[i] >= threshold]
        if not order and best >= threshold:
            order = [int(confidence.argmax())]
        order.sort(key=lambda i: -confidence[i])
        return best, [
            {
                "start": spans[i][0],
                "end": spans[i][1],
                "text": text[spans[i][0] : spans[i][1]],
                "source": "example",
                "matched": self._example_text[int(which[i])],
                "confidence": round(float(confidence[i]), 4),
            }
            for i in order
        ]


def _rule_evidence(hit: RuleHit) -> dict[str, Any]:
    return {
        "start": hit.start,
        "end": hit.end,
        "text": hit.text,
        "source": "rule",
        "matched": hit.rule,
    }
