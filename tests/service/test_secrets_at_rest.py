"""Webhook signing secrets at rest: the setting, the cipher, and the stored rows on SQLite and
a real PostgreSQL (real Fernet keys, real databases)."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings, WebhookSettings
from service.db.repositories import webhooks
from service.errors import SecretUndecryptable
from service.secrets_at_rest import ENCRYPTED_PREFIX, SecretCipher, generate_key
from service.webhooks import generate_secret

OLD, NEW, STRANGER = generate_key(), generate_key(), generate_key()


def _stored(factory: sessionmaker[Session], subscription_id: str) -> str:
    """The raw column, read with plain SQL."""
    with factory() as session:
        return str(
            session.execute(
                text("SELECT secret FROM webhook_subscriptions WHERE id = :id"),
                {"id": subscription_id},
            ).scalar_one()
        )


def _subscribe(factory: sessionmaker[Session], cipher: SecretCipher) -> tuple[str, str]:
    secret = generate_secret()
    with factory() as session:
        row = webhooks.create_subscription(
            session, "https://example.com/hook", ["detection.created"], secret, cipher=cipher
        )
        session.commit()
        return row.id, secret


class TestSetting:
    """`webhooks.secret_keys` (UNDERTONE_WEBHOOKS__SECRET_KEYS)."""

    def test_comma_separated_keys_from_the_environment_stay_out_of_repr(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Keys are read in order, blanks dropped, and never shown by repr or a JSON dump."""
        monkeypatch.setenv("UNDERTONE_WEBHOOKS__SECRET_KEYS", f" {NEW} ,{OLD},")
        settings = Settings()
        assert settings.webhooks.fernet_keys == [NEW, OLD]
        for shown in (repr(settings), str(settings.webhooks), settings.model_dump_json()):
            assert NEW not in shown
            assert OLD not in shown

    def test_unset_or_empty_means_no_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An empty variable (compose's default) is the same as none: plaintext storage."""
        monkeypatch.setenv("UNDERTONE_WEBHOOKS__SECRET_KEYS", "")
        assert Settings().webhooks.fernet_keys == []
        assert not SecretCipher.from_settings(WebhookSettings()).encrypts

    def test_a_bad_key_fails_naming_it_without_echoing_the_value(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The error says which key is wrong and how to make one; no key text in it."""
        bad = "not-a-fernet-key-but-maybe-a-password"
        monkeypatch.setenv("UNDERTONE_WEBHOOKS__SECRET_KEYS", f"{NEW},{bad}")
        with pytest.raises(ValidationError) as caught:
            Settings()
        message = str(caught.value)
        assert "key 2 of 2 is not a Fernet key" in message
        assert "undertone webhooks generate-key" in message
        assert bad not in message
        assert NEW not in message


class TestCipher:
    """`SecretCipher`: seal, unseal, reseal."""

    def test_sealed_secret_hides_the_plaintext_and_round_trips(self) -> None:
        """Stored as fernet:<token>, no trace of the secret, and read back exactly."""
        cipher = SecretCipher([NEW])
        secret = generate_secret()
        stored = cipher.seal(secret)
        assert stored.startswith(ENCRYPTED_PREFIX)
        assert secret not in stored
        assert secret[len("whsec_") :] not in stored
        assert cipher.unseal(stored) == secret

    def test_without_keys_secrets_pass_through(self) -> None:
        """No key: stored as given; legacy plaintext is read as it is, with or without keys."""
        secret = generate_secret()
        assert SecretCipher().seal(secret) == secret
        assert SecretCipher().unseal(secret) == secret
        assert SecretCipher([NEW]).unseal(secret) == secret

    def test_any_key_of_the_list_decrypts(self) -> None:
        """Rotation: a secret sealed with the old key opens with [new, old]."""
        secret = generate_secret()
        stored = SecretCipher([OLD]).seal(secret)
        assert SecretCipher([NEW, OLD]).unseal(stored) == secret

    def test_wrong_key_is_a_clear_error(self) -> None:
        """No configured key decrypts it: the error says so and what to do."""
        stored = SecretCipher([OLD]).seal(generate_secret())
        with pytest.raises(SecretUndecryptable, match="none of the 1 key") as caught:
            SecretCipher([STRANGER]).unseal(stored)
        assert "UNDERTONE_WEBHOOKS__SECRET_KEYS" in caught.value.message
        with pytest.raises(SecretUndecryptable, match="no key is configured"):
            SecretCipher().unseal(stored)

    def test_reseal_moves_to_the_first_key_once(self) -> None:
        """Old-key and plaintext values move to the first key; a value already there is left."""
        secret = generate_secret()
        cipher = SecretCipher([NEW, OLD])
        moved = cipher.reseal(SecretCipher([OLD]).seal(secret))
        assert moved is not None
        assert SecretCipher([NEW]).unseal(moved) == secret
        assert cipher.reseal(moved) is None
        encrypted = cipher.reseal(secret)
        assert encrypted is not None
        assert SecretCipher([NEW]).unseal(encrypted) == secret
        with pytest.raises(SecretUndecryptable):
            cipher.reseal(SecretCipher([STRANGER]).seal(secret))

    def test_generated_keys_are_fernet_keys(self) -> None:
        """`generate_key` makes distinct keys that the setting and Fernet accept."""
        key = generate_key()
        assert key != generate_key()
        Fernet(key)
        assert WebhookSettings(secret_keys=key).fernet_keys == [key]  # type: ignore[arg-type]


class TestStoredSubscriptions:
    """The repository stores sealed secrets and hands out plaintext only to sign."""

    def test_column_never_holds_the_plaintext_when_a_key_is_set(
        self, session_factory: sessionmaker[Session]
    ) -> None:
        """The raw column is a fernet token that fits it; `signing_secret` gives it back."""
        cipher = SecretCipher([NEW])
        hook, secret = _subscribe(session_factory, cipher)
        stored = _stored(session_factory, hook)
        assert stored.startswith(ENCRYPTED_PREFIX)
        assert secret not in stored
        with session_factory() as session:
            row = webhooks.get_subscription(session, hook)
            assert row is not None
            assert webhooks.signing_secret(row, cipher) == secret

    def test_without_a_key_the_secret_is_stored_as_before(
        self, session_factory: sessionmaker[Session]
    ) -> None:
        """No key configured: the column holds the whsec_ secret itself."""
        hook, secret = _subscribe(session_factory, SecretCipher())
        assert _stored(session_factory, hook) == secret

    def test_reencrypt_moves_every_row_to_the_first_key_idempotently(
        self, session_factory: sessionmaker[Session]
    ) -> None:
        """Legacy plaintext and old-key rows move; a second run changes nothing; a row no key
        opens is reported and left as it was."""
        legacy, legacy_secret = _subscribe(session_factory, SecretCipher())
        old, old_secret = _subscribe(session_factory, SecretCipher([OLD]))
        new, _ = _subscribe(session_factory, SecretCipher([NEW]))
        lost, _ = _subscribe(session_factory, SecretCipher([STRANGER]))
        lost_before = _stored(session_factory, lost)
        new_before = _stored(session_factory, new)
        rotated = SecretCipher([NEW, OLD])
        with session_factory() as session:
            first = webhooks.reencrypt_secrets(session, rotated)
            session.commit()
        assert (first.changed, first.unchanged, first.undecryptable) == (2, 1, [lost])
        assert _stored(session_factory, lost) == lost_before
        assert _stored(session_factory, new) == new_before
        only_new = SecretCipher([NEW])
        assert only_new.unseal(_stored(session_factory, legacy)) == legacy_secret
        assert only_new.unseal(_stored(session_factory, old)) == old_secret
        with session_factory() as session:
            second = webhooks.reencrypt_secrets(session, rotated)
            session.commit()
        assert (second.changed, second.unchanged) == (0, 3)
