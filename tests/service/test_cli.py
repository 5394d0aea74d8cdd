"""The service's CLI commands: db, keys, analyze (input validation and a real run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from service import auth
from service.cli import app
from service.db.engine import create_db_engine, create_session_factory
from service.db.migrate import current, heads

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _env(tmp_path: Path, database_url: str | None = None) -> dict[str, Any]:
    env: dict[str, Any] = {"UNDERTONE_DATA_DIR": str(tmp_path), "UNDERTONE_LOG_FORMAT": "console"}
    env["UNDERTONE_DATABASE_URL"] = database_url
    return env


class TestDbCommand:
    """`undertone db upgrade`."""

    def test_upgrade_creates_the_embedded_database(self, tmp_path: Path) -> None:
        """With no URL configured, the SQLite file appears under the data dir, at head."""
        result = runner.invoke(app, ["db", "upgrade"], env=_env(tmp_path))
        assert result.exit_code == 0, result.output
        assert (tmp_path / "undertone.db").exists()
        assert current(f"sqlite:///{tmp_path / 'undertone.db'}") == heads()[0]

    def test_upgrade_on_postgres_is_idempotent(self, tmp_path: Path, postgres_url: str) -> None:
        """Upgrading an already migrated PostgreSQL database is a no-op that succeeds."""
        result = runner.invoke(app, ["db", "upgrade"], env=_env(tmp_path, postgres_url))
        assert result.exit_code == 0, result.output
        assert current(postgres_url) == heads()[0]


class TestKeysCommand:
    """`undertone keys create|list|revoke`."""

    def test_created_key_authenticates_until_revoked(self, tmp_path: Path) -> None:
        """The printed key works, is listed by prefix only, and stops working when revoked."""
        env = _env(tmp_path)
        created = runner.invoke(
            app, ["keys", "create", "--name", "crm", "--scopes", "ingest"], env=env
        )
        assert created.exit_code == 0, created.output
        token = created.stdout.strip().splitlines()[0]
        prefix, secret = token.split("_", 2)[1:]
        engine = create_db_engine(f"sqlite:///{tmp_path / 'undertone.db'}")
        factory = create_session_factory(engine)
        with factory() as session:
            key = auth.authenticate(session, token)
            assert key is not None
            assert key.scopes == ["ingest"]
        listed = runner.invoke(app, ["keys", "list"], env=env)
        assert prefix in listed.output
        assert secret not in listed.output
        assert runner.invoke(app, ["keys", "revoke", prefix], env=env).exit_code == 0
        with factory() as session:
            assert auth.authenticate(session, token) is None
        engine.dispose()

    def test_unknown_scope_is_refused(self, tmp_path: Path) -> None:
        """A typo in a scope exits 2 naming the valid scopes."""
        result = runner.invoke(
            app, ["keys", "create", "--name", "x", "--scopes", "ingset"], env=_env(tmp_path)
        )
        assert result.exit_code == 2
        assert "taxonomy-admin" in result.output

    def test_revoking_an_unknown_key_fails(self, tmp_path: Path) -> None:
        """Revoking a prefix that does not exist exits 1."""
        assert runner.invoke(app, ["keys", "revoke", "nope"], env=_env(tmp_path)).exit_code == 1


class TestAnalyzeCommand:
    """`undertone analyze`."""

    def test_bad_lines_are_reported_by_number(self, tmp_path: Path) -> None:
        """Every bad line is named with its number and no output is written."""
        source = tmp_path / "in.jsonl"
        source.write_bytes(
            b'{"id": 1, "text": "fine"}\n'
            b'{"id": 2, "text": "  "}\n'
            b"\n"
            b"not json\n"
            b'{"id": 5, "text": "x", "channel": "fax"}\n'
            b'{"text": "no id"}\n'
            b'{"id": 7, "text": "caf\xe9"}\n'
        )
        output = tmp_path / "out.jsonl"
        result = runner.invoke(
            app, ["analyze", "-i", str(source), "-o", str(output)], env=_env(tmp_path)
        )
        assert result.exit_code == 2
        for number in (2, 4, 5, 6, 7):
            assert f"in.jsonl:{number}:" in result.output
        assert "in.jsonl:1:" not in result.output
        assert not output.exists()

    @pytest.mark.slow
    def test_real_analysis_in_input_order(self, tmp_path: Path) -> None:
        """Real models: one validated contract object per line, in input order."""
        heads = REPO / "models" / "heads" / "sentiment"
        artifacts = REPO / "var" / "models"
        if not heads.exists() or not artifacts.exists():
            pytest.skip("needs the trained sentiment head and `undertone models setup` artifacts")
        source = tmp_path / "in.jsonl"
        texts = ["I was charged twice and nobody answers.", "Lovely staff.", "Okay I guess."]
        source.write_text(
            "".join(json.dumps({"id": f"t{i}", "text": t}) + "\n" for i, t in enumerate(texts))
        )
        output = tmp_path / "out.jsonl"
        env = {**_env(tmp_path), "UNDERTONE_MODELS__ARTIFACTS_DIR": str(artifacts)}
        result = runner.invoke(
            app, ["analyze", "-i", str(source), "-o", str(output), "--batch-size", "2"], env=env
        )
        assert result.exit_code == 0, result.output
        lines = [json.loads(line) for line in output.read_text().splitlines()]
        assert [line["id"] for line in lines] == ["t0", "t1", "t2"]
        assert lines[0]["sentiment"]["label"] == "negative"
        assert lines[1]["sentiment"]["label"] == "positive"
