"""YAML parsing that remembers the line of every value, so errors can point at it."""

from __future__ import annotations

from typing import Any

import yaml

from nlp.taxonomy.errors import Problem, TaxonomyValidationError

Path = tuple[str | int, ...]


class LineIndex:
    """Maps a value's path in the parsed document (("case_types", 3, "severity")) to its line."""

    def __init__(self, source: str, lines: dict[Path, int] | None = None) -> None:
        self.source = source
        self._lines: dict[Path, int] = lines or {}

    def record(self, path: Path, line: int) -> None:
        self._lines.setdefault(path, line)

    def line(self, path: Path) -> int | None:
        """The line of `path`, or of its nearest recorded ancestor (a missing field: its parent)."""
        for cut in range(len(path), -1, -1):
            found = self._lines.get(path[:cut])
            if found is not None:
                return found
        return None

    def problem(self, path: Path, message: str) -> Problem:
        return Problem(self.source, self.line(path), format_path(path), message)


def format_path(path: Path) -> str:
    """("case_types", 3, "severity") -> "case_types[3].severity"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _Constructor(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no type hints
    """A SafeLoader only used for its scalar construction (timestamps, ints, bools...)."""


def parse_yaml(text: str, source: str) -> tuple[Any, LineIndex]:
    """Parse YAML text into plain Python values and the line index of every node.

    Raises:
        TaxonomyValidationError: the text is not valid YAML, or a mapping repeats a key.
    """
    index = LineIndex(source)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(e, "problem", None) or str(e)
        raise TaxonomyValidationError(
            [Problem(source, line, "", f"not valid YAML: {reason}")]
        ) from e
    if node is None:
        return None, index
    loader = _Constructor("")
    problems: list[Problem] = []
    value = _build(node, (), index, loader, problems)
    if problems:
        raise TaxonomyValidationError(problems)
    return value, index


def _build(
    node: yaml.Node, path: Path, index: LineIndex, loader: _Constructor, problems: list[Problem]
) -> Any:
    index.record(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int):
                key = str(key)
            if key in out:
                line = key_node.start_mark.line + 1
                problems.append(
                    Problem(index.source, line, format_path((*path, key)), "key appears twice")
                )
                continue
            index.record((*path, key), key_node.start_mark.line + 1)
            out[key] = _build(value_node, (*path, key), index, loader, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(item, (*path, i), index, loader, problems) for i, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)
