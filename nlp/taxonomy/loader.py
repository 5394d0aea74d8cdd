"""Load and validate taxonomy files; every problem names the file, the line and the field."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path as FsPath
from typing import Any

from pydantic import ValidationError

from nlp.taxonomy.errors import Problem, TaxonomyValidationError
from nlp.taxonomy.patterns import check_token_pattern
from nlp.taxonomy.schema import Taxonomy
from nlp.taxonomy.yaml_lines import LineIndex, Path, parse_yaml


def load_taxonomy(path: str | FsPath) -> Taxonomy:
    """Read and validate a taxonomy YAML file.

    Raises:
        TaxonomyValidationError: with one `Problem` (file, line, field, message) per finding.
    """
    path = FsPath(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise TaxonomyValidationError([Problem(str(path), None, "", f"cannot read: {e}")]) from e
    return loads_taxonomy(text, source=str(path))


def loads_taxonomy(text: str, source: str = "<string>") -> Taxonomy:
    """Validate taxonomy YAML given as text (an upload); `source` names it in errors."""
    data, index = parse_yaml(text, source)
    return validate_taxonomy(data, source=source, index=index)


def validate_taxonomy(
    data: Any, source: str = "<dict>", index: LineIndex | None = None
) -> Taxonomy:
    """Validate a taxonomy given as plain data (e.g. built by `from_examples`)."""
    index = index or LineIndex(source)
    if not isinstance(data, dict):
        raise TaxonomyValidationError([index.problem((), "a taxonomy is a mapping (name, ...)")])
    # Id and parent checks run on the raw data too, so one round shows every problem.
    problems = _check_ids(data.get("case_types"), index)
    try:
        taxonomy = Taxonomy.model_validate(data)
    except ValidationError as e:
        problems = _problems(e, index) + problems
        raise TaxonomyValidationError(_by_line(problems)) from e
    problems += _check_contents(taxonomy, index)
    if problems:
        raise TaxonomyValidationError(_by_line(problems))
    return taxonomy


def _by_line(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: p.line or 0)


def content_hash(taxonomy: Taxonomy) -> str:
    """A hash of the taxonomy's meaning: comments and layout do not change it."""
    canonical = json.dumps(taxonomy.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _problems(error: ValidationError, index: LineIndex) -> list[Problem]:
    out: list[Problem] = []
    seen: set[tuple[Path, str]] = set()
    for item in error.errors():
        # pydantic puts union member names ("str", "list[dict[str,any]]") in the location.
        path: Path = tuple(
            p for p in item["loc"] if isinstance(p, int) or not _is_type_name(str(p))
        )
        message = _message(item)
        if (path, message) in seen:
            continue
        seen.add((path, message))
        out.append(index.problem(path, message))
    return out


def _is_type_name(part: str) -> bool:
    return part in {"str", "int", "float"} or "[" in part or part.startswith("function-")


def _message(item: Any) -> str:
    kind, message = item["type"], str(item["msg"])
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a field of this schema (see taxonomies/README.md)"
    if kind == "too_short":
        return "must not be empty"
    return message.removeprefix("Value error, ")


def _check_ids(raw: Any, index: LineIndex) -> list[Problem]:
    """Duplicate ids, unknown parents and parent cycles, on the raw (unvalidated) case types."""
    if not isinstance(raw, list):
        return []
    problems: list[Problem] = []
    first: dict[str, int] = {}
    parents: dict[str, str | None] = {}
    for i, item in enumerate(raw):
        type_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(type_id, str):
            continue
        if type_id in first:
            problems.append(
                index.problem(
                    ("case_types", i, "id"),
                    f'"{type_id}" is already the id of case_types[{first[type_id]}]',
                )
            )
            continue
        first[type_id] = i
        parent = item.get("parent")
        parents[type_id] = parent if isinstance(parent, str) else None
    for type_id, i in first.items():
        parent = parents[type_id]
        where: Path = ("case_types", i, "parent")
        if parent is not None and parent not in parents:
            problems.append(index.problem(where, f'"{parent}" is not a case type id'))
        elif _in_cycle(type_id, parents):
            problems.append(index.problem(where, f'"{type_id}" is its own ancestor'))
    return problems


def _check_contents(taxonomy: Taxonomy, index: LineIndex) -> list[Problem]:
    problems: list[Problem] = []
    for i, case_type in enumerate(taxonomy.case_types):
        where: Path = ("case_types", i)
        own = {e.casefold() for e in case_type.examples}
        for j, counter in enumerate(case_type.counter_examples):
            if counter.casefold() in own:
                problems.append(
                    index.problem(
                        (*where, "counter_examples", j), "is also one of this type's examples"
                    )
                )
        if case_type.rules is not None:
            for field in ("require_any", "exclude", "patterns"):
                for j, term in enumerate(getattr(case_type.rules, field)):
                    if isinstance(term, list):
                        reason = check_token_pattern(term)
                        if reason:
                            problems.append(index.problem((*where, "rules", field, j), reason))
    return problems


def _in_cycle(start: str, parents: dict[str, str | None]) -> bool:
    seen = {start}
    current = parents.get(start)
    while current is not None:
        if current in seen:
            return True
        seen.add(current)
        current = parents.get(current)
    return False
