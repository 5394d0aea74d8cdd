"""The taxonomy schema: what a case type is, validated field by field (see taxonomies/README.md)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
)

SEVERITY_NAMES: tuple[str, ...] = ("low", "medium", "high", "critical")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")


def parse_duration(value: Any) -> timedelta:
    """ "24h", "4h", "30m", "2d", "1h30m" -> timedelta (a unit is required, zero is not allowed)."""
    if isinstance(value, timedelta):
        return value
    text = str(value).strip().lower() if isinstance(value, str | int) else None
    match = _DURATION.match(text) if text else None
    if not match or not any(match.groups()):
        raise ValueError(f"{value!r} is not a duration like 24h, 4h or 30m".replace("'", '"'))
    days, hours, minutes = (int(g) if g else 0 for g in match.groups())
    out = timedelta(days=days, hours=hours, minutes=minutes)
    if out <= timedelta(0):
        raise ValueError(f'"{value}" must be longer than zero')
    return out


def format_duration(value: timedelta) -> str:
    """timedelta -> "24h", "1h30m", "30m": text that parses back to it."""
    # Hours read best in SLAs ("48h", not "2d"), as owners write them.
    hours, minutes = divmod(int(value.total_seconds() // 60), 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") or "0m"


def parse_severity(value: Any) -> int:
    """low|medium|high|critical or 1..4 -> 1..4."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a severity (low, medium, high, critical or 1-4)")
    if isinstance(value, int) and 1 <= value <= 4:
        return value
    if isinstance(value, str):
        name = value.strip().lower()
        if name in SEVERITY_NAMES:
            return SEVERITY_NAMES.index(name) + 1
        if name.isdigit() and 1 <= int(name) <= 4:
            return int(name)
    raise ValueError(f'"{value}" is not a severity (low, medium, high, critical or 1-4)')


def _check_id(value: Any) -> Any:
    if isinstance(value, str) and not _ID.match(value):
        raise ValueError(
            f'"{value}" is not an id: letters, digits, "_", "-", "." or ":", no spaces'
        )
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration)]
Severity = Annotated[
    int, BeforeValidator(parse_severity), PlainSerializer(lambda v: SEVERITY_NAMES[v - 1])
]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
CaseTypeId = Annotated[str, BeforeValidator(_check_id)]
# A rule term is a phrase (matched on word boundaries, case-insensitive) or a spaCy Matcher
# token pattern (a list of token dicts such as [{"LOWER": "charged"}, {"LOWER": "twice"}]).
RuleTerm = Text | list[dict[str, Any]]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Routing(_Frozen):
    """Where a case of this type goes: a team and optionally its queue."""

    team: Text
    queue: Text | None = None


class Rules(_Frozen):
    """Deterministic rules that sit beside the learned mapping."""

    require_any: list[RuleTerm] = Field(default_factory=list)
    exclude: list[RuleTerm] = Field(default_factory=list)
    patterns: list[RuleTerm] = Field(default_factory=list)
    pattern_confidence: float = Field(default=0.9, ge=0.0, le=1.0)


class SlaOverrides(_Frozen):
    """First-contact SLAs that replace the case type's for a customer segment or a journey."""

    segment: dict[str, Duration] = Field(default_factory=dict)
    journey: dict[str, Duration] = Field(default_factory=dict)


class Defaults(_Frozen):
    """Values a case type inherits when it does not set its own."""

    first_contact_sla: Duration = timedelta(hours=24)
    severity: Severity = 2
    routing: Routing | None = None


class CaseType(_Frozen):
    """One case type: what it is, what it is not, and how a case of it is handled."""

    id: CaseTypeId
    name: Text
    definition: Text
    parent: str | None = None
    examples: list[Text] = Field(min_length=1)
    counter_examples: list[Text] = Field(default_factory=list)
    rules: Rules | None = None
    severity: Severity | None = None
    first_contact_sla: Duration | None = None
    sla_overrides: SlaOverrides = Field(default_factory=SlaOverrides)
    routing: Routing | None = None
    recovery_options: list[Text] = Field(default_factory=list)
    checklist: list[Text] = Field(default_factory=list)


class Taxonomy(_Frozen):
    """A validated taxonomy. Build it with `nlp.taxonomy.load_taxonomy` or `validate_taxonomy`."""

    name: Text
    version: Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int | float) else v)]
    description: str = ""
    defaults: Defaults = Field(default_factory=Defaults)
    case_types: list[CaseType] = Field(min_length=1)

    def get(self, case_type_id: str) -> CaseType:
        """The case type with this id (KeyError when absent)."""
        for case_type in self.case_types:
            if case_type.id == case_type_id:
                return case_type
        raise KeyError(case_type_id)

    def severity_of(self, case_type: CaseType) -> Literal["low", "medium", "high", "critical"]:
        """The case type's severity name, falling back to the taxonomy default."""
        level = case_type.severity if case_type.severity is not None else self.defaults.severity
        return SEVERITY_NAMES[level - 1]  # type: ignore[return-value]

    def routing_of(self, case_type: CaseType) -> Routing | None:
        """The case type's routing, falling back to the taxonomy default."""
        return case_type.routing or self.defaults.routing

    def sla_of(
        self, case_type: CaseType, *, segment: str | None = None, journey: str | None = None
    ) -> timedelta:
        """The first-contact SLA for this case; the strictest applicable override wins."""
        base = case_type.first_contact_sla or self.defaults.first_contact_sla
        overrides = [
            o.get(key)
            for o, key in (
                (case_type.sla_overrides.segment, segment),
                (case_type.sla_overrides.journey, journey),
            )
            if key is not None
        ]
        found = [o for o in overrides if o is not None]
        return min(found) if found else base

    def ancestors(self, case_type_id: str) -> list[str]:
        """Parent, grandparent, ... of a case type (the loader guarantees no cycles)."""
        out: list[str] = []
        current = self.get(case_type_id).parent
        while current is not None:
            out.append(current)
            current = self.get(current).parent
        return out

    def handling(self, case_type_id: str) -> dict[str, Any]:
        """What a detection needs from its case type: severity, SLA, routing, options, checklist."""
        case_type = self.get(case_type_id)
        routing = self.routing_of(case_type)
        return {
            "id": case_type.id,
            "name": case_type.name,
            "parent": case_type.parent,
            "severity": self.severity_of(case_type),
            "first_contact_sla": format_duration(self.sla_of(case_type)),
            "routing": routing.model_dump() if routing else None,
            "recovery_options": list(case_type.recovery_options),
            "checklist": list(case_type.checklist),
        }
