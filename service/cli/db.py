"""`undertone db upgrade|current`: database migrations."""

from __future__ import annotations

import typer

from service.cli.common import load_settings

db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade_command(
    revision: str = typer.Argument("head", help="Target revision (default: the newest)."),
) -> None:
    """Create or upgrade the database schema."""
    from service.db.engine import normalize_url
    from service.db.migrate import current, upgrade

    settings = load_settings()
    url = settings.resolved_database_url
    upgrade(url, revision)
    from sqlalchemy.engine import make_url

    shown = make_url(normalize_url(url)).render_as_string(hide_password=True)
    typer.echo(f"database {shown} is at revision {current(url)}")


@db_app.command("current")
def current_command() -> None:
    """Print the database's revision (none when never migrated)."""
    from service.db.migrate import current

    settings = load_settings()
    typer.echo(current(settings.resolved_database_url) or "none")


def register(root: typer.Typer) -> None:
    """Add the `db` command group."""
    root.add_typer(db_app, name="db")
