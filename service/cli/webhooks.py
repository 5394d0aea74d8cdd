"""`undertone webhooks generate-key|reencrypt`: the keys that encrypt signing secrets at rest."""

from __future__ import annotations

import typer

from service.cli.common import load_settings, session_factory

webhooks_app = typer.Typer(
    help="Webhook signing secrets: encryption keys (UNDERTONE_WEBHOOKS__SECRET_KEYS).",
    no_args_is_help=True,
)


@webhooks_app.command("generate-key")
def generate_key_command() -> None:
    """Print a new Fernet key for UNDERTONE_WEBHOOKS__SECRET_KEYS."""
    from service.secrets_at_rest import generate_key

    typer.echo(generate_key())


@webhooks_app.command("reencrypt")
def reencrypt_command() -> None:
    """Encrypt every stored secret with the first configured key (plaintext ones too).

    Idempotent: secrets already under the first key are left alone. Run it after putting a
    new key first; drop the old key only once this reports no undecryptable secret.
    """
    from service.db.repositories import webhooks
    from service.secrets_at_rest import KEYS_ENV, SecretCipher

    settings = load_settings()
    cipher = SecretCipher.from_settings(settings.webhooks)
    if not cipher.encrypts:
        typer.echo(
            f"error: no key configured: set {KEYS_ENV} (make one with "
            "`undertone webhooks generate-key`)",
            err=True,
        )
        raise typer.Exit(2)
    with session_factory(settings) as factory, factory() as session:
        result = webhooks.reencrypt_secrets(session, cipher)
        session.commit()
    typer.echo(
        f"{result.changed} secret(s) re-encrypted with the first key, "
        f"{result.unchanged} already were"
    )
    if result.undecryptable:
        typer.echo(
            f"error: no configured key decrypts the secret of {len(result.undecryptable)} "
            f"subscription(s), left as they were: {', '.join(result.undecryptable)}; add the "
            f"key they were encrypted with to {KEYS_ENV} and run this again",
            err=True,
        )
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    """Add the `webhooks` command group."""
    root.add_typer(webhooks_app, name="webhooks")
