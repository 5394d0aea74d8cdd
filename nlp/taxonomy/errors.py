"""Errors of the taxonomy library: each names the file, line and field a taxonomy owner must fix."""

from __future__ import annotations

from dataclasses import dataclass


class TaxonomyError(Exception):
    """Base class of every error this package raises."""


@dataclass(frozen=True)
class Problem:
    """One validation problem, located in the source file."""

    source: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class TaxonomyValidationError(TaxonomyError):
    """A taxonomy file or dict does not follow the schema; `problems` lists every finding."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class TaxonomyMappingError(TaxonomyError):
    """The mapper was called with inputs that do not fit together (e.g. spans vs vectors)."""
