"""`undertone models setup|verify`: build the model artifacts and check every model file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from service.config import Settings

models_app = typer.Typer(
    help="Model files: build the artifacts and verify every file.", no_args_is_help=True
)
_err = Console(stderr=True)


def _settings() -> Settings:
    try:  # the shared loader, where the service engineer has provided it
        from service.cli.common import load_settings
    except ImportError:
        return Settings()
    settings: Settings = load_settings()
    return settings


class _RichReporter:
    """Draws assembly and verification progress as a bar on stderr."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task: TaskID | None = None
        self._name = ""

    def begin(self, task: str, total_bytes: int | None) -> None:
        self._name = task
        self._task = self._progress.add_task(task, total=total_bytes)

    def advance(self, nbytes: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, nbytes)

    def end(self, outcome: str) -> None:
        if self._task is not None:
            task = self._task
            total = self._progress.tasks[task].total
            self._progress.update(task, completed=total, description=f"{self._name}: {outcome}")
            self._task = None


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """Hide INFO chatter that the ONNX quantizer logs on the root logger (one line per layer)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=_err,
        transient=False,
    )


def _verify(settings: Settings, progress: Progress) -> list[str]:
    from models.verify import total_bytes, verify_models

    reporter = _RichReporter(progress)
    reporter.begin("verifying model files", total_bytes(settings.models, settings.artifacts_dir))
    problems = verify_models(settings.models, settings.artifacts_dir, reporter=reporter)
    reporter.end("verified" if not problems else "verification failed")
    return problems


def _report(problems: list[str]) -> None:
    if problems:
        _err.print("[bold red]Model verification failed:[/]", highlight=False)
        for line in problems:
            _err.print(f"  - {line}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1)
    typer.echo("All model files verified.")


@models_app.command("setup")
def setup(
    skip_verify: bool = typer.Option(False, help="Build only; do not hash-check afterwards."),
) -> None:
    """Build the model artifacts (join Whisper base, export the ONNX encoder), then verify."""
    from models.assemble import setup_models
    from models.errors import ModelError

    settings = _settings()
    artifacts: Path = settings.artifacts_dir
    with _progress() as progress, _quiet_root_logger():
        try:
            results = setup_models(settings.models, artifacts, reporter=_RichReporter(progress))
        except ModelError as e:
            _err.print(f"[bold red]Model setup failed:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=1) from e
        for result in results:
            where = f" ({result.directory})" if result.directory else ""
            progress.console.print(f"{result.role}: {result.outcome}{where}", highlight=False)
        problems = [] if skip_verify else _verify(settings, progress)
    _report(problems)


@models_app.command("verify")
def verify() -> None:
    """Check every model file against models/manifest.yaml; exit 1 naming what is wrong."""
    from models.errors import ModelError

    settings = _settings()
    try:
        with _progress() as progress:
            problems = _verify(settings, progress)
    except ModelError as e:
        _err.print(f"[bold red]Model verification failed:[/] {e}", highlight=False)
        raise typer.Exit(code=1) from e
    _report(problems)


def register(root: typer.Typer) -> None:
    """Add the `models` command group."""
    root.add_typer(models_app, name="models")
