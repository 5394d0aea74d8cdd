"""Build a starting taxonomy from labelled rows (the `taxonomy from-examples` tool wraps this)."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from typing import Any

from nlp.taxonomy.errors import TaxonomyError


def case_type_id(label: str) -> str:
    """The case-type id a label becomes: id-safe, spaces and other characters turned to '_'."""
    slug = re.sub(r"[^A-Za-z0-9_.:-]+", "_", label.strip()).strip("_")
    return slug or "unlabelled"


def from_examples(
    rows: Iterable[Mapping[str, Any]],
    text_column: str,
    label_column: str,
    shots: int | None = None,
    *,
    name: str = "from_examples",
    version: str = "0.1.0",
    seed: int = 0,
) -> dict[str, Any]:
    """A taxonomy dict (ready for `validate_taxonomy` or YAML) with one case type per label.

    Args:
        rows: labelled rows, e.g. from `csv.DictReader`.
        text_column: the column holding the text.
        label_column: the column holding the label; its values become the case-type ids
            (made id-safe: spaces and other characters become "_").
        shots: examples per label, drawn at random with `seed`; None keeps all of them.
        name, version: of the new taxonomy.
        seed: for the draw of examples.

    Raises:
        TaxonomyError: a column is missing or no row has both a text and a label.
    """
    by_label: dict[str, list[str]] = {}
    for number, row in enumerate(rows, start=1):
        if text_column not in row or label_column not in row:
            raise TaxonomyError(f"row {number} has no column {text_column!r} or {label_column!r}")
        text, label = row[text_column], row[label_column]
        if not isinstance(text, str) or not isinstance(label, str):
            continue
        if text.strip() and label.strip():
            by_label.setdefault(label.strip(), []).append(text.strip())
    if not by_label:
        raise TaxonomyError("no row has both a text and a label")
    rng = random.Random(seed)
    case_types: list[dict[str, Any]] = []
    for label in sorted(by_label):
        texts = list(dict.fromkeys(by_label[label]))  # duplicates add nothing
        if shots is not None and len(texts) > shots:
            texts = rng.sample(texts, shots)
        readable = label.replace("_", " ").strip()
        case_types.append(
            {
                "id": case_type_id(label),
                "name": readable[:1].upper() + readable[1:],
                "definition": f"Texts labelled {label!r} in the source data.",
                "examples": texts,
            }
        )
    return {
        "name": name,
        "version": version,
        "description": f"Built from labelled examples ({len(case_types)} labels).",
        "case_types": case_types,
    }
