"""`undertone webhooks generate-key|reencrypt|check`: keys that encrypt signing secrets at rest."""

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


@webhooks_app.command("check")
def check_command() -> None:
    """Check that the configured keys open every stored signing secret (read-only).

    Exit 0 when every secret can sign (plaintext ones count, with a note), 1 naming the
    subscriptions no configured key decrypts: their deliveries would fail.
    """
    from service.db.repositories import webhooks
    from service.secrets_at_rest import ENCRYPTED_PREFIX, KEYS_ENV, SecretCipher

    settings = load_settings()
    cipher = SecretCipher.from_settings(settings.webhooks)
    with session_factory(settings) as factory, factory() as session:
        stored = [(row.id, row.secret) for row in webhooks.list_subscriptions(session)]
    unreadable = webhooks.undecryptable_ids(stored, cipher)
    plaintext = sum(1 for _, secret in stored if not secret.startswith(ENCRYPTED_PREFIX))
    typer.echo(
        f"{len(stored) - len(unreadable)} of {len(stored)} signing secret(s) readable"
        + (f", {plaintext} stored unencrypted" if plaintext else "")
    )
    if unreadable:
        typer.echo(
            f"error: no configured key decrypts the secret of {len(unreadable)} "
            f"subscription(s): {', '.join(unreadable)}; their deliveries fail until the key "
            f"they were encrypted with is in {KEYS_ENV}",
            err=True,
        )
        raise typer.Exit(1)


def register(root: typer.Typer) -> None:
    """Add the `webhooks` command group."""
    root.add_typer(webhooks_app, name="webhooks")
