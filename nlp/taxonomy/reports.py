"""Reports for taxonomy owners: evaluate on a labelled set, diff two versions, suggest new types.

Every function works on vectors the caller computed once with the shared encoder (and on
mappers built by `TaxonomyStore`), so a report never runs the encoder twice over a text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nlp.taxonomy.mapper import CaseTypeMapper, MapInput

NONE = "none"  # the label of a text that fits no case type
Matrix = NDArray[np.float32]


@dataclass(frozen=True)
class EncodedText:
    """A text with the vectors of one encoder pass (L2-normalised), sentence spans optional."""

    text: str
    text_vector: Matrix
    sentences: Sequence[tuple[int, int]] = ()
    sentence_vectors: Matrix | None = None

    def as_input(self) -> MapInput:
        return MapInput(self.text, self.text_vector, self.sentences, self.sentence_vectors)


def top_label(mapped: dict[str, Any]) -> str:
    """The most confident case type id of a mapping, or "none"."""
    found = mapped.get("case_types") or []
    return str(found[0]["id"]) if found else NONE


def evaluate(
    mapper: CaseTypeMapper,
    texts: Sequence[EncodedText],
    gold: Sequence[str],
    *,
    max_pairs: int = 10,
    examples_per_pair: int = 3,
) -> dict[str, Any]:
    """Precision, recall and F1 per case type, the most confused pairs and overlap warnings.

    Args:
        mapper: the taxonomy version under test.
        texts: the labelled texts with their vectors.
        gold: per text, its case-type id, or "none" (also "" or an unknown id is reported).
        max_pairs: how many confused pairs to list.
        examples_per_pair: texts shown per confused pair.

    Returns:
        {"accuracy", "n", "per_case_type": {id: {precision, recall, f1, support, predicted}},
        "macro_f1", "confused_pairs": [{gold, predicted, count, examples}],
        "unknown_labels", "warnings": [...]} (see `overlap_warnings`).
    """
    predicted = [top_label(m) for m in mapper.map_batch([t.as_input() for t in texts])]
    gold = [g.strip() or NONE for g in gold]
    known = set(mapper.case_type_ids) | {NONE}
    labels = [*mapper.case_type_ids, NONE]
    per_type: dict[str, dict[str, float | int]] = {}
    for label in labels:
        tp = sum(1 for g, p in zip(gold, predicted, strict=True) if g == p == label)
        n_pred = sum(1 for p in predicted if p == label)
        n_gold = sum(1 for g in gold if g == label)
        if n_pred == 0 and n_gold == 0:
            continue
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_type[label] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": n_gold,
            "predicted": n_pred,
        }
    pairs = Counter((g, p) for g, p in zip(gold, predicted, strict=True) if g != p)
    confused = [
        {
            "gold": g,
            "predicted": p,
            "count": count,
            "examples": [
                t.text
                for t, gg, pp in zip(texts, gold, predicted, strict=True)
                if (gg, pp) == (g, p)
            ][:examples_per_pair],
        }
        for (g, p), count in pairs.most_common(max_pairs)
    ]
    with_support = [v["f1"] for k, v in per_type.items() if v["support"]]
    correct = sum(1 for g, p in zip(gold, predicted, strict=True) if g == p)
    return {
        "n": len(gold),
        "accuracy": round(correct / len(gold), 4) if gold else 0.0,
        "macro_f1": round(float(np.mean(with_support)), 4) if with_support else 0.0,
        "per_case_type": per_type,
        "confused_pairs": confused,
        "unknown_labels": sorted({g for g in gold if g not in known}),
        "warnings": overlap_warnings(mapper),
    }


def overlap_warnings(
    mapper: CaseTypeMapper, prototype_similarity: float = 0.85
) -> list[dict[str, Any]]:
    """Pairs of case types whose definitions overlap, judged on their own examples.

    A warning names the pair when an example of one type is closer to the other type's
    prototype (mean of its examples) than to its own (leave-one-out), or when the two
    prototypes are nearly the same direction.
    """
    examples, owner = mapper.example_vectors, mapper.example_types
    ids = mapper.case_type_ids
    n_types = len(ids)
    sums = np.zeros((n_types, examples.shape[1]), dtype=np.float64)
    np.add.at(sums, owner, examples)
    counts = np.bincount(owner, minlength=n_types).astype(np.float64)
    prototypes = sums / np.maximum(counts, 1)[:, None]
    unit = prototypes / np.maximum(np.linalg.norm(prototypes, axis=1, keepdims=True), 1e-12)
    similarity = examples @ unit.T  # (n_examples, n_types)
    # leave-one-out own prototype: remove the example from its own type's mean
    own_sum = sums[owner] - examples
    own = own_sum / np.maximum(counts[owner] - 1, 1)[:, None]
    own_unit = own / np.maximum(np.linalg.norm(own, axis=1, keepdims=True), 1e-12)
    own_sim = np.einsum("ij,ij->i", examples, own_unit)
    similarity[np.arange(len(owner)), owner] = -np.inf
    closest = similarity.argmax(axis=1)
    closer = similarity[np.arange(len(owner)), closest] > own_sim
    out: list[dict[str, Any]] = []
    texts = mapper.example_texts
    for a in range(n_types):
        for b in range(n_types):
            rows = np.flatnonzero((owner == a) & closer & (closest == b))
            if len(rows) == 0:
                continue
            out.append(
                {
                    "kind": "examples_closer_to_other_type",
                    "case_type": ids[a],
                    "other": ids[b],
                    "count": len(rows),
                    "of": int(counts[a]),
                    "examples": [texts[int(i)] for i in rows[:3]],
                    "message": f"{len(rows)} of {int(counts[a])} examples of {ids[a]} are closer "
                    f"to {ids[b]}'s prototype than to their own: tighten the definitions or "
                    "move the examples",
                }
            )
    proto_sim = unit @ unit.T
    for a in range(n_types):
        for b in range(a + 1, n_types):
            if proto_sim[a, b] >= prototype_similarity:
                out.append(
                    {
                        "kind": "prototypes_close",
                        "case_type": ids[a],
                        "other": ids[b],
                        "similarity": round(float(proto_sim[a, b]), 4),
                        "message": f"{ids[a]} and {ids[b]} have nearly the same examples "
                        f"on average (cosine {proto_sim[a, b]:.2f}): consider merging them",
                    }
                )
    out.sort(key=lambda w: -float(w.get("count", 0)))
    return out


def diff(
    active: CaseTypeMapper,
    draft: CaseTypeMapper,
    texts: Sequence[EncodedText],
    ids: Sequence[str],
    *,
    examples_per_move: int = 3,
) -> dict[str, Any]:
    """What changes when `draft` replaces `active` on the same texts.

    Returns:
        {"n", "changed", "moves": [{from, to, count, examples: [{id, text}]}], "counts":
        {case type id: {"active", "draft"}}}: a move is a change of the top case type
        ("none" included); `changed` also counts changes in the set of reported types.
    """
    inputs = [t.as_input() for t in texts]
    before = active.map_batch(inputs)
    after = draft.map_batch(inputs)
    moves: dict[tuple[str, str], list[int]] = {}
    changed = 0
    for i, (old, new) in enumerate(zip(before, after, strict=True)):
        old_set = {c["id"] for c in old["case_types"]}
        new_set = {c["id"] for c in new["case_types"]}
        changed += old_set != new_set
        a, b = top_label(old), top_label(new)
        if a != b:
            moves.setdefault((a, b), []).append(i)
    counts: dict[str, dict[str, int]] = {}
    for side, mapped in (("active", before), ("draft", after)):
        for label, count in Counter(top_label(m) for m in mapped).items():
            counts.setdefault(label, {"active": 0, "draft": 0})[side] = count
    return {
        "n": len(texts),
        "changed": changed,
        "moved": sum(len(v) for v in moves.values()),
        "moves": [
            {
                "from": a,
                "to": b,
                "count": len(rows),
                "examples": [
                    {"id": ids[i], "text": texts[i].text} for i in rows[:examples_per_move]
                ],
            }
            for (a, b), rows in sorted(moves.items(), key=lambda kv: -len(kv[1]))
        ],
        "counts": dict(sorted(counts.items())),
    }


def suggest(
    texts: Sequence[str],
    vectors: Matrix,
    times: Sequence[datetime],
    now: datetime,
    *,
    window: timedelta = timedelta(days=7),
    distance_threshold: float = 0.55,
    min_size: int = 3,
    max_suggestions: int = 10,
    examples_per_cluster: int = 3,
) -> list[dict[str, Any]]:
    """Cluster texts that fit no case type into proposed new case types.

    Args:
        texts: texts that fit no case type (the caller filters, e.g. negative ones).
        vectors: their L2-normalised text vectors.
        times: when each was received (for growth).
        now: the end of the last window.
        window: growth compares [now - window, now) with the window before it.
        distance_threshold: cosine distance at which clusters stop merging (average link).
        min_size: smaller clusters are not proposed.

    Returns:
        Proposals, largest first: {"name", "key_phrases", "size", "last_window",
        "previous_window", "growth", "examples", "suggested_id"}.
    """
    if len(texts) < min_size:
        return []
    from sklearn.cluster import AgglomerativeClustering

    x = np.asarray(vectors, dtype=np.float32)
    labels = AgglomerativeClustering(
        n_clusters=None,
        metric="cosine",
        linkage="average",
        distance_threshold=distance_threshold,
    ).fit_predict(x)
    clusters = [np.flatnonzero(labels == k) for k in np.unique(labels)]
    clusters = [c for c in clusters if len(c) >= min_size]
    clusters.sort(key=lambda c: -len(c))
    phrases = _key_phrases(list(texts), clusters)
    out: list[dict[str, Any]] = []
    for members, keys in zip(clusters[:max_suggestions], phrases, strict=False):
        centroid = x[members].mean(axis=0)
        order = members[np.argsort(-(x[members] @ centroid))]
        when = [times[int(i)] for i in members]
        last = sum(1 for t in when if now - window <= t < now)
        previous = sum(1 for t in when if now - 2 * window <= t < now - window)
        name = " / ".join(keys[:2]) if keys else "unnamed"
        out.append(
            {
                "name": name[:1].upper() + name[1:],
                "suggested_id": "_".join(name.replace("/", " ").split())[:60] or "new_type",
                "key_phrases": keys,
                "size": len(members),
                "last_window": last,
                "previous_window": previous,
                "growth": round((last - previous) / previous, 3) if previous else None,
                "examples": [texts[int(i)] for i in order[:examples_per_cluster]],
            }
        )
    return out


def _key_phrases(
    texts: list[str], clusters: list[NDArray[np.intp]], top: int = 5
) -> list[list[str]]:
    """Terms (1-3 words) that set each cluster apart, by tf-idf over all the given texts."""
    if not clusters:
        return []
    from sklearn.feature_extraction.text import TfidfVectorizer

    try:
        tfidf = TfidfVectorizer(ngram_range=(1, 3), stop_words="english", sublinear_tf=True)
        matrix = tfidf.fit_transform(texts)
    except ValueError:  # only stop words
        return [[] for _ in clusters]
    vocabulary = tfidf.get_feature_names_out()
    overall = np.asarray(matrix.mean(axis=0)).ravel()
    out: list[list[str]] = []
    for members in clusters:
        inside = np.asarray(matrix[members].mean(axis=0)).ravel()
        # share of texts of the cluster using the term: a name should fit most of them
        used = np.asarray((matrix[members] > 0).mean(axis=0)).ravel()
        # a name must fit most of the cluster (coverage) and set it apart (tf-idf ratio)
        score = used * inside / (overall + 1e-9)
        terms: list[str] = []
        for j in np.argsort(-score):
            if score[j] <= 0 or len(terms) >= top:
                break
            term = str(vocabulary[j])
            # skip a term contained in one already chosen ("refund" after "refund card")
            if any(term in chosen or chosen in term for chosen in terms):
                continue
            terms.append(term)
        out.append(terms)
    return out
