"""Shared helpers of the CLI commands: settings, logging and the database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings


def load_settings() -> Settings:
    """Read the settings from the environment, exiting with a readable message when invalid."""
    try:
        settings = Settings()
    except ValidationError as e:
        typer.echo(f"error: invalid UNDERTONE_* settings:\n{e}", err=True)
        raise typer.Exit(2) from e
    from service.logging import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    return settings


@contextmanager
def session_factory(settings: Settings, migrate: bool = True) -> Iterator[sessionmaker[Session]]:
    """A session factory on the configured database (upgraded first), disposed afterwards."""
    from service.db.engine import create_db_engine, create_session_factory
    from service.db.migrate import upgrade

    url = settings.resolved_database_url
    if migrate:
        upgrade(url)
    engine = create_db_engine(url)
    try:
        yield create_session_factory(engine)
    finally:
        engine.dispose()
