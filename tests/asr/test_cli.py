"""`undertone transcribe`: files in, one JSON transcript per file out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from tests.asr.conftest import SAY_RATE, Say, encode

pytestmark = pytest.mark.slow


def test_transcribe_writes_json_per_file(say: Say, tmp_path: Path) -> None:
    """Each good file gets DIR/<stem>.json; a bad one is reported and the exit code is 1."""
    good = encode(say("I would like to cancel my contract."), SAY_RATE, tmp_path / "call1", "mp3")
    bad = tmp_path / "notes.txt"
    bad.write_text("not audio")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["transcribe", str(good), str(bad), "--output-dir", str(out), "--model", "tiny.en"],
        env={"UNDERTONE_DATA_DIR": str(tmp_path / "var")},
    )
    assert result.exit_code == 1, result.output
    assert "unsupported_format" in result.output
    data = json.loads((out / "call1.json").read_text())
    assert {"language", "duration", "text", "segments"} <= set(data)
    assert "cancel my contract" in data["text"].lower()
    assert not (out / "notes.json").exists()
