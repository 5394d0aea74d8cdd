"""`undertone worker`: a Celery worker running the stages (the scaled-out mode)."""

from __future__ import annotations

import typer


def register(root: typer.Typer) -> None:
    """Add the `worker` command."""
    root.command("worker")(worker)


def worker(
    concurrency: int = typer.Option(
        1, "--concurrency", "-c", min=1, help="Worker processes, each with its own models."
    ),
    loglevel: str = typer.Option("INFO", "--loglevel", "-l", help="Celery log level."),
) -> None:
    """Run a Celery worker that takes stage jobs from the broker (UNDERTONE_QUEUE__BROKER_URL)."""
    # Imported here: the worker's composition root loads the analysis libraries, which the
    # rest of the CLI (and `undertone --help`) must not pay for.
    from workers.celery_app import app

    app.worker_main(
        argv=["worker", f"--concurrency={concurrency}", f"--loglevel={loglevel}",
              "--without-gossip", "--without-mingle"]
    )
