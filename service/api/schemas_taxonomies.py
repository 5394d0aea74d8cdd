"""Bodies of /v1/taxonomies (the taxonomy itself is YAML, validated by the taxonomy library)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from service.db.models import TaxonomyVersion


class CaseTypeRef(BaseModel):
    """A case type's id and name."""

    id: str
    name: str


class TaxonomySummary(BaseModel):
    """A valid taxonomy: name, version, its case types; `created` after an upload."""

    valid: bool = True
    name: str
    version: str
    case_types: list[CaseTypeRef]
    created: bool | None = None
    active: bool | None = None


class TaxonomyVersionOut(BaseModel):
    """A stored version; `content` (the YAML as uploaded) when one version is asked for."""

    name: str
    version: str
    case_types: int
    created_at: datetime
    active: bool
    content: str | None = None

    @classmethod
    def of(
        cls, row: TaxonomyVersion, active: bool, with_content: bool = False
    ) -> TaxonomyVersionOut:
        """From a stored row."""
        return cls(
            name=row.name,
            version=row.version,
            case_types=row.case_type_count,
            created_at=row.created_at,
            active=active,
            content=row.content if with_content else None,
        )


class LabelledText(BaseModel):
    """A text and its case-type id ("" or "none" when it fits no case type)."""

    text: str = Field(min_length=1, max_length=20_000)
    label: str | None = None


class EvaluateRequest(BaseModel):
    """Labelled texts; `taxonomy_yaml` evaluates a draft instead of the active version."""

    items: list[LabelledText] = Field(min_length=1, max_length=5000)
    taxonomy_yaml: str | None = None


class DiffRequest(BaseModel):
    """A draft to compare with the active version on the recent stored feedback."""

    taxonomy_yaml: str = Field(min_length=1)
    days: float = Field(default=30.0, gt=0)
    limit: int = Field(default=2000, ge=1, le=20_000)


class SuggestRequest(BaseModel):
    """Which recent feedback to cluster."""

    days: float = Field(default=28.0, gt=0)
    window_days: float = Field(default=7.0, gt=0)
    limit: int = Field(default=5000, ge=1, le=50_000)
    min_size: int = Field(default=3, ge=2)
