"""Taxonomy files: the default taxonomy validates, and every error names file, line and field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from nlp.taxonomy import (
    TaxonomyValidationError,
    from_examples,
    load_taxonomy,
    loads_taxonomy,
    validate_taxonomy,
)

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "taxonomies" / "service_recovery.yaml"

GOOD = """\
name: tiny
version: "1.0"
case_types:
  - id: billing
    name: Billing
    definition: Money taken wrongly.
    examples: ["you charged me twice"]
  - id: refund
    name: Refund
    parent: billing
    definition: Refund missing.
    examples: ["where is my refund"]
    first_contact_sla: 4h
    sla_overrides: {segment: {vip: 30m}, journey: {checkout: 2h}}
"""


def _errors(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(TaxonomyValidationError) as info:
        load_taxonomy(path)
    return [str(p) for p in info.value.problems]


class TestDefaultTaxonomy:
    def test_it_validates_with_complete_case_types(self) -> None:
        """Each default type: definition, 10+ examples, 5+ counter-examples, handling."""
        taxonomy = load_taxonomy(DEFAULT)
        assert taxonomy.version
        assert len(taxonomy.case_types) >= 13
        for case_type in taxonomy.case_types:
            assert len(case_type.examples) >= 10, case_type.id
            assert len(case_type.counter_examples) >= 5, case_type.id
            assert case_type.definition
            assert case_type.recovery_options
            assert case_type.checklist
            handling = taxonomy.handling(case_type.id)
            assert handling["routing"]
            assert handling["severity"] in {
                "low",
                "medium",
                "high",
                "critical",
            }

    def test_it_covers_the_issue_case_types(self) -> None:
        """The case types the issue names are all there."""
        ids = {c.id for c in load_taxonomy(DEFAULT).case_types}
        for wanted in (
            "billing_error",
            "refund_not_received",
            "delivery_late_or_missing",
            "damaged_or_defective_product",
            "service_outage",
            "long_wait_or_hold",
            "staff_rude_or_unhelpful",
            "unresolved_after_contact",
            "intent_to_cancel_or_switch",
            "account_access",
            "price_or_fee_dispute",
            "website_or_app_confusing",
            "privacy_or_security_concern",
        ):
            assert wanted in ids


class TestValues:
    def test_sla_defaults_and_overrides(self) -> None:
        """A type without an SLA gets 24h; the strictest matching override wins."""
        taxonomy = loads_taxonomy(GOOD)
        billing, refund = taxonomy.case_types
        assert taxonomy.sla_of(billing) == timedelta(hours=24)
        assert taxonomy.sla_of(refund) == timedelta(hours=4)
        assert taxonomy.sla_of(refund, segment="vip", journey="checkout") == timedelta(minutes=30)
        assert taxonomy.sla_of(refund, journey="checkout") == timedelta(hours=2)
        assert taxonomy.ancestors("refund") == ["billing"]

    def test_severity_accepts_names_and_numbers(self) -> None:
        """severity: 3 and severity: high mean the same."""
        a = loads_taxonomy(GOOD.replace("    first_contact_sla: 4h", "    severity: 3"))
        b = loads_taxonomy(GOOD.replace("    first_contact_sla: 4h", "    severity: high"))
        assert a.severity_of(a.case_types[1]) == b.severity_of(b.case_types[1]) == "high"


class TestErrors:
    def test_bad_duration_names_file_line_field(self, tmp_path: Path) -> None:
        """The message names file, line and field, and says what a duration looks like."""
        errors = _errors(
            GOOD.replace("first_contact_sla: 4h", 'first_contact_sla: "24 hours"'), tmp_path
        )
        assert errors == [
            f'{tmp_path / "x.yaml"}:13: case_types[1].first_contact_sla: "24 hours" is not a '
            "duration like 24h, 4h or 30m"
        ]

    def test_several_problems_are_reported_together(self, tmp_path: Path) -> None:
        """Duplicate id, unknown parent, empty examples and bad severity come in one report."""
        text = (
            GOOD
            + """\
  - id: billing
    name: Again
    definition: d
    examples: ["x"]
  - id: other
    name: Other
    definition: d
    parent: nowhere
    examples: []
    severity: huge
"""
        )
        errors = "\n".join(_errors(text, tmp_path))
        assert ':15: case_types[2].id: "billing" is already the id of case_types[0]' in errors
        assert ":23: case_types[3].examples: must not be empty" in errors
        assert ':24: case_types[3].severity: "huge" is not a severity' in errors
        assert ':22: case_types[3].parent: "nowhere" is not a case type id' in errors

    def test_parent_cycle(self, tmp_path: Path) -> None:
        """A type that is its own ancestor is refused."""
        text = GOOD.replace(
            '    examples: ["you charged me twice"]',
            '    parent: refund\n    examples: ["you charged me twice"]',
        )
        assert any("is its own ancestor" in e for e in _errors(text, tmp_path))

    def test_unknown_field_and_missing_definition(self, tmp_path: Path) -> None:
        """A misspelt field and a missing required one point at their lines."""
        text = GOOD.replace("    definition: Refund missing.\n", "    colour: red\n")
        errors = _errors(text, tmp_path)
        assert any(":11: case_types[1].colour: is not a field" in e for e in errors)
        assert any("case_types[1].definition: is required" in e for e in errors)

    def test_bad_token_pattern_and_duplicate_key(self, tmp_path: Path) -> None:
        """spaCy rejects the pattern at load time; a repeated YAML key is not silently dropped."""
        text = GOOD + '    rules:\n      patterns:\n        - [{"LOWERCASE": "refund"}]\n'
        assert any(
            ":17: case_types[1].rules.patterns[0]: not a valid spaCy token pattern" in e
            for e in _errors(text, tmp_path)
        )
        text = GOOD.replace('version: "1.0"\n', 'version: "1.0"\nname: again\n')
        assert any(":3: name: key appears twice" in e for e in _errors(text, tmp_path))

    def test_invalid_yaml(self, tmp_path: Path) -> None:
        """Broken YAML names its line."""
        errors = _errors("name: x\ncase_types: [\n", tmp_path)
        assert len(errors) == 1
        assert "not valid YAML" in errors[0]


class TestFromExamples:
    def test_labels_become_ids_and_shots_are_honoured(self) -> None:
        """Label values become case-type ids; N examples per label; the result validates."""
        rows = [
            {"text": f"text {i} about {label}", "label": label}
            for label in ("card_arrival", "Late Flight")
            for i in range(20)
        ]
        data = from_examples(rows, "text", "label", shots=5)
        taxonomy = validate_taxonomy(data)
        assert {c.id for c in taxonomy.case_types} == {"card_arrival", "Late_Flight"}
        assert all(len(c.examples) == 5 for c in taxonomy.case_types)
        assert all(
            len(c.examples) == 20
            for c in validate_taxonomy(from_examples(rows, "text", "label")).case_types
        )


VALID_PATTERNS = [
    [{"LOWER": "refund"}],
    [{"LOWER": "charged"}, {"LOWER": "twice"}],
    [{"LEMMA": {"IN": ["cancel", "close"]}}, {"POS": "DET", "OP": "?"}, {"LOWER": "account"}],
    [{"TEXT": {"REGEX": "^[Rr]efund(s|ed)?$"}}],
    [{"LOWER": {"FUZZY": "delivery"}}],
    [{"LENGTH": {">=": 3}}, {"IS_DIGIT": True, "OP": "{2,4}"}],
    [{"lower": "hold"}, {"OP": "*"}, {"LIKE_NUM": True}],
    [{"ORTH": "!", "OP": "+"}],
    [{"ENT_TYPE": {"NOT_IN": ["PERSON"]}}],
]
INVALID_PATTERNS = [
    [],
    [{"LOWERCASE": "refund"}],
    [{"LOWER": 5}],
    [{"LOWER": "a", "OP": "++"}],
    [{"IS_DIGIT": "yes"}],
    [{"LOWER": {"IN": "refund"}}],
    [{"LOWER": {"STARTSWITH": "ref"}}],
    [{"LENGTH": {">=": "3"}}],
    [{"LOWER": None}],
    ["refund"],
]


class TestTokenPatternCheck:
    """The spaCy-free check the API runs agrees with spaCy's own Matcher validation."""

    @pytest.mark.parametrize("pattern", VALID_PATTERNS + INVALID_PATTERNS)
    def test_same_verdict_as_spacy(self, pattern: list[object]) -> None:
        """Valid for us exactly when spaCy's Matcher(validate=True) accepts it."""
        import spacy
        from spacy.matcher import Matcher

        from nlp.taxonomy.patterns import check_token_pattern

        matcher = Matcher(spacy.blank("en").vocab, validate=True)
        try:
            matcher.add("check", [pattern])
            spacy_ok = bool(pattern)
        except Exception:  # spaCy raises MatchPatternError, ValueError or KeyError
            spacy_ok = False
        assert (check_token_pattern(pattern) is None) == spacy_ok
        assert spacy_ok == (pattern in VALID_PATTERNS)

    def test_loading_a_taxonomy_does_not_import_spacy(self, tmp_path: Path) -> None:
        """Validation in the API process stays light: no spaCy (hence no thinc or torch)."""
        import subprocess
        import sys

        text = GOOD + '    rules:\n      patterns:\n        - [{"LOWER": "refund"}]\n'
        path = tmp_path / "t.yaml"
        path.write_text(text)
        code = (
            "import sys; from nlp.taxonomy import load_taxonomy; "
            f"load_taxonomy({str(path)!r}); print('spacy' in sys.modules, 'torch' in sys.modules)"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["False", "False"]
