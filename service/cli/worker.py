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
    queues: str | None = typer.Option(
        None,
        "--queues",
        "-Q",
        help=(
            "Comma-separated queues to take work from (default: all). Transcriptions go to "
            "undertone.audio; e.g. one worker with `-Q undertone.audio` and another with "
            "`-Q undertone.jobs,undertone.sync` keep long calls from delaying text feedback."
        ),
    ),
) -> None:
    """Run a Celery worker that takes stage jobs from the broker (UNDERTONE_QUEUE__BROKER_URL)."""
    # Imported here: the worker's composition root loads the analysis libraries, which the
    # rest of the CLI (and `undertone --help`) must not pay for.
    from workers.celery_app import app

    argv = ["worker", f"--concurrency={concurrency}", f"--loglevel={loglevel}",
            "--without-gossip", "--without-mingle"]
    if queues:
        argv.append(f"--queues={queues}")
    app.worker_main(argv=argv)
