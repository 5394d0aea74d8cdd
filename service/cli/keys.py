"""`undertone keys create|list|revoke`: API keys (only their hashes are stored)."""

from __future__ import annotations

import typer

from service.cli.common import load_settings, session_factory

keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)


@keys_app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="Who or what the key is for."),
    scopes: str = typer.Option(
        "ingest,read", "--scopes", help="Comma-separated: ingest, read, taxonomy-admin, admin."
    ),
) -> None:
    """Create a key and print it; it is shown this once and cannot be recovered."""
    from service import auth
    from service.errors import ValidationFailed

    try:
        scope_list = auth.parse_scopes(scopes)
    except ValidationFailed as e:
        typer.echo(f"error: {e.message}", err=True)
        raise typer.Exit(2) from e
    with session_factory(load_settings()) as factory, factory() as session:
        issued = auth.create_key(session, name, scope_list)
        session.commit()
        typer.echo(issued.token)
        typer.echo(
            f"key {issued.key.prefix} ({', '.join(issued.key.scopes)}) created; store it now, "
            "it is not shown again. Send it as 'Authorization: Bearer <key>' or 'X-API-Key'.",
            err=True,
        )


@keys_app.command("list")
def list_keys() -> None:
    """List keys (prefix, name, scopes, dates); secrets are never shown."""
    from service.db.repositories import api_keys

    with session_factory(load_settings()) as factory, factory() as session:
        rows = api_keys.list_all(session)
    if not rows:
        typer.echo("no API keys; create one with `undertone keys create --name NAME`")
        return
    for key in rows:
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
        typer.echo(
            f"{key.prefix}  {key.name}  [{','.join(key.scopes)}]  "
            f"created {key.created_at:%Y-%m-%d}  last used {used}  {state}"
        )


@keys_app.command("revoke")
def revoke(
    key: str = typer.Argument(..., help="The key's prefix (from `keys list`) or id."),
) -> None:
    """Revoke a key; requests with it get 401 from now on."""
    from service.db.repositories import api_keys

    with session_factory(load_settings()) as factory, factory() as session:
        row = api_keys.revoke(session, key)
        if row is None:
            typer.echo(f"error: no key with prefix or id {key}", err=True)
            raise typer.Exit(1)
        session.commit()
    typer.echo(f"key {row.prefix} revoked")


def register(root: typer.Typer) -> None:
    """Add the `keys` command group."""
    root.add_typer(keys_app, name="keys")
