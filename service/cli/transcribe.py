"""`undertone transcribe FILE... --output-dir DIR`: recordings to transcript JSON files."""

from __future__ import annotations

import json
import logging
from enum import StrEnum
from pathlib import Path

import typer


class LayoutChoice(StrEnum):
    """Channel layouts, as in POST /v1/recordings."""

    mono = "mono"
    stereo_agent_left = "stereo_agent_left"
    stereo_agent_right = "stereo_agent_right"


class ModelChoice(StrEnum):
    """Whisper models shipped with Undertone."""

    base = "base"
    tiny_en = "tiny.en"


def transcribe(
    files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    output_dir: Path = typer.Option(..., "--output-dir", "-o", file_okay=False),
    layout: LayoutChoice = typer.Option(LayoutChoice.mono, help="Which channel is the agent."),
    language: str | None = typer.Option(None, help="ISO 639-1 hint, e.g. en (default: detect)."),
    model: ModelChoice | None = typer.Option(None, help="Default: UNDERTONE_ASR__MODEL (base)."),
) -> None:
    """Transcribe recordings; writes DIR/<file name without extension>.json for each."""
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    from service.cli.common import load_settings

    settings = load_settings()
    # faster-whisper logs every window at INFO; the progress bar already says it all.
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    # Imported here: the CLI is a composition root and `undertone --help` stays light.
    from workers.transcribe import TranscriptionError, TranscriptionRuntime

    output_dir.mkdir(parents=True, exist_ok=True)
    runtime = TranscriptionRuntime(settings, model.value if model else None)
    failed = 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
    ) as bar:
        for path in files:
            task = bar.add_task(path.name, total=1.0)

            def report(fraction: float, task: TaskID = task) -> None:
                bar.update(task, completed=fraction)

            try:
                transcript = runtime.transcribe(
                    path,
                    layout=layout.value,
                    language=language,
                    progress=report,
                )
            except TranscriptionError as e:
                failed += 1
                bar.update(task, description=f"{path.name}: failed")
                bar.console.print(f"[red]error[/red] {e} ({e.code})")
                continue
            out = output_dir / f"{path.stem}.json"
            out.write_text(json.dumps(transcript.to_dict(), ensure_ascii=False, indent=2) + "\n")
            bar.update(task, completed=1.0, description=f"{path.name} -> {out}")
    if failed:
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    """Add the ``transcribe`` command."""
    root.command(name="transcribe")(transcribe)
