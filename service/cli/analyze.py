"""`undertone analyze --input IN.jsonl --output OUT.jsonl`: batch analysis of a JSON-lines file."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from service.api.schemas import Channel, Scale

MAX_REPORTED_ERRORS = 20


class InputLine(BaseModel):
    """One input line: ``id``, ``text`` and optionally the fields of POST /v1/feedback."""

    # Extra columns of a user's export (labels, notes) are carried along, not analysed.
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1)
    channel: Channel | None = None
    score: float | None = None
    scale: Scale | None = None
    customer_id: str | None = None
    occurred_at: datetime | None = None
    employee_id: str | None = None
    team: str | None = None
    location: str | None = None
    journey: str | None = None
    segment: str | None = None
    language: str | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("text")
    @classmethod
    def _non_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is empty")
        return value

    def analyzer_input(self) -> dict[str, Any]:
        """The dict handed to the analyzer (the same shape the workers use)."""
        return self.model_dump(mode="json", exclude_none=True)


def read_lines(path: Path) -> Iterator[tuple[int, InputLine | str]]:
    """Each non-empty line as (line number, parsed line or the reason it is bad)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                yield number, f"not valid UTF-8 (byte {e.start})"
                continue
            except json.JSONDecodeError as e:
                yield number, f"not valid JSON: {e.msg} at column {e.colno}"
                continue
            if not isinstance(data, dict):
                yield number, f"expected a JSON object, got {type(data).__name__}"
                continue
            try:
                yield number, InputLine.model_validate(data)
            except ValidationError as e:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc']) or 'line'}: {err['msg']}"
                    for err in e.errors()
                )
                yield number, problems


def register(root: typer.Typer) -> None:
    """Add the `analyze` command."""
    root.command("analyze")(analyze)


def analyze(
    input_path: Path = typer.Option(
        ...,
        "--input",
        "-i",
        exists=True,
        dir_okay=False,
        readable=True,
        help="JSON lines: one object per line with id, text and optional feedback fields.",
    ),
    output_path: Path = typer.Option(
        ..., "--output", "-o", dir_okay=False, help="JSON lines: one analysis per input line."
    ),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Texts per analyzer call."),
    skip_invalid: bool = typer.Option(
        False, "--skip-invalid", help="Report bad lines and analyse the rest (default: stop)."
    ),
    taxonomy: Path | None = typer.Option(
        None,
        "--taxonomy",
        exists=True,
        dir_okay=False,
        readable=True,
        help="Map onto this taxonomy YAML file (default: the database's active version).",
    ),
) -> None:
    """Analyse every text of a JSON-lines file, writing results in input order."""
    from service.cli.common import load_settings

    settings = load_settings()
    items: list[InputLine] = []
    bad: list[tuple[int, str]] = []
    for number, parsed in read_lines(input_path):
        if isinstance(parsed, str):
            bad.append((number, parsed))
        else:
            items.append(parsed)
    for number, reason in bad[:MAX_REPORTED_ERRORS]:
        typer.echo(f"{input_path}:{number}: {reason}", err=True)
    if len(bad) > MAX_REPORTED_ERRORS:
        typer.echo(f"... and {len(bad) - MAX_REPORTED_ERRORS} more bad lines", err=True)
    if bad and not skip_invalid:
        typer.echo(f"error: {len(bad)} bad lines; fix them or pass --skip-invalid", err=True)
        raise typer.Exit(2)

    # The CLI is a composition root: the analysis libraries load only for this command.
    from workers.pipeline import build_text_analyzer

    if taxonomy is not None:
        from workers.taxonomy import problems_of_file

        problems = problems_of_file(taxonomy)
        for problem in problems:
            typer.echo(f"error: {problem}", err=True)
        if problems:
            raise typer.Exit(2)

    try:
        analyzer = build_text_analyzer(settings, taxonomy_file=taxonomy)
    except Exception as e:  # any loading failure: say what and how to fix, no traceback
        typer.echo(
            f"error: the analysis models could not be loaded: {e}\n"
            "run `undertone models setup` (or `make models`) and check UNDERTONE_MODELS__*",
            err=True,
        )
        raise typer.Exit(1) from e
    written = _analyze_to_file(analyzer, items, output_path, batch_size)
    typer.echo(
        f"{written} analyses written to {output_path}"
        + (f" ({len(bad)} bad lines skipped)" if bad else ""),
        err=True,
    )


def _analyze_to_file(analyzer: Any, items: list[InputLine], output: Path, batch_size: int) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from service.contract import validate_analysis

    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    written = 0
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not sys.stderr.isatty(),
        transient=False,
    )
    # Complaint detection with each row's score, customer and time; baselines and repeat
    # contacts build up per customer_id across the file's rows, in file order.
    from workers.detection import FileDetection

    detection = FileDetection.for_analyzer(analyzer)
    with progress, partial.open("w", encoding="utf-8") as handle:
        task = progress.add_task("analysing", total=len(items))
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            inputs = [item.analyzer_input() for item in batch]
            results = analyzer.analyze(inputs)
            if detection is not None:
                detection.run(results, inputs)
            for result in results:
                line = validate_analysis(result).model_dump(mode="json", exclude_none=True)
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")
                written += 1
            progress.advance(task, len(batch))
    # Only a complete file takes the output's name.
    os.replace(partial, output)
    return written
