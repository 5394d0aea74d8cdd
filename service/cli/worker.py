"""`undertone worker`: a Celery worker running the stages (the scaled-out mode)."""

from __future__ import annotations

import enum

import typer


class Pool(enum.StrEnum):
    """Celery execution pools `undertone worker` offers."""

    PREFORK = "prefork"
    THREADS = "threads"


def register(root: typer.Typer) -> None:
    """Add the `worker` command."""
    root.command("worker")(worker)


def worker(
    concurrency: int = typer.Option(
        1,
        "--concurrency",
        "-c",
        min=1,
        help="Worker processes, each with its own models (or threads, with --pool threads).",
    ),
    loglevel: str = typer.Option("INFO", "--loglevel", "-l", help="Celery log level."),
    queues: str | None = typer.Option(
        None,
        "--queues",
        "-Q",
        help=(
            "Comma-separated queues to take work from (default: all). Transcriptions go to "
            "undertone.audio, webhook deliveries to undertone.delivery; e.g. workers with "
            "`-Q undertone.jobs,undertone.sync`, `-Q undertone.audio` and "
            "`-Q undertone.delivery --pool threads -c 8` keep long calls and slow receivers "
            "from delaying text feedback. A worker taking only undertone.delivery loads no model."
        ),
    ),
    pool: Pool = typer.Option(
        Pool.PREFORK,
        "--pool",
        "-P",
        help=(
            "prefork (analysis: one process per --concurrency, each with its models) or "
            "threads (for undertone.delivery: many deliveries waiting on receivers at once)."
        ),
    ),
) -> None:
    """Run a Celery worker that takes stage jobs from the broker (UNDERTONE_QUEUE__BROKER_URL)."""
    # Imported here: the worker's composition root loads the analysis libraries, which the
    # rest of the CLI (and `undertone --help`) must not pay for.
    from workers.celery_app import app

    argv = [
        "worker",
        f"--concurrency={concurrency}",
        f"--loglevel={loglevel}",
        f"--pool={pool.value}",
        "--without-gossip",
        "--without-mingle",
    ]
    if queues:
        argv.append(f"--queues={queues}")
    app.worker_main(argv=argv)
