"""Webhook signing secrets encrypted at rest (Fernet), with key rotation.

With keys configured (``webhooks.secret_keys``) a secret is stored as ``fernet:<token>``,
encrypted with the first key and readable with any of them (`MultiFernet`): to rotate, put a
new key first, keep the old one after it until `undertone webhooks reencrypt` has moved every
row, then drop it. Anything stored without the prefix is a plaintext secret (rows from before
encryption, or no key configured) and is read as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from service.config import WebhookSettings
from service.errors import SecretUndecryptable

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = structlog.get_logger(__name__)

ENCRYPTED_PREFIX = "fernet:"
KEYS_ENV = "UNDERTONE_WEBHOOKS__SECRET_KEYS"
UNENCRYPTED_HINT = (
    f"webhook signing secrets are stored unencrypted in the database: set {KEYS_ENV} to a key "
    "from `undertone webhooks generate-key` (the same keys in every API and worker process), "
    "then run `undertone webhooks reencrypt` to encrypt the existing ones"
)


UNDECRYPTABLE_HINT = (
    f"no key in {KEYS_ENV} decrypts these subscriptions' signing secrets, so their deliveries "
    "fail (and go dead after the last attempt): give this process the key they were "
    "encrypted with (the same keys in every API and worker process)"
)


def check_stored_secrets(session_factory: Callable[[], Session], cipher: SecretCipher) -> list[str]:
    """At start: log an error naming every subscription whose secret no configured key opens.

    A wrong but valid key (or one missing from this process) would otherwise show only when
    a delivery fails. Returns the ids; a database that cannot be read is logged, not raised
    (the process still starts, and `undertone webhooks check` asks again).
    """
    from service.db.repositories import webhooks  # the repository imports this module

    try:
        with session_factory() as session:
            unreadable = webhooks.undecryptable_secrets(session, cipher)
    except Exception as e:  # a start-up check must not stop the start
        log.warning("webhook_secrets_check_failed", error=repr(e))
        return []
    if unreadable:
        log.error(
            "webhook_secrets_undecryptable", subscriptions=unreadable, hint=UNDECRYPTABLE_HINT
        )
    return unreadable


def generate_key() -> str:
    """A new random Fernet key (url-safe base64 of 32 bytes)."""
    return Fernet.generate_key().decode("ascii")


class SecretCipher:
    """Seals secrets for storage and unseals them to sign; without keys it stores plaintext."""

    def __init__(self, keys: Sequence[str] = ()) -> None:
        self._first = Fernet(keys[0]) if keys else None
        self._any = MultiFernet([Fernet(key) for key in keys]) if keys else None
        self._key_count = len(keys)

    @classmethod
    def from_settings(cls, options: WebhookSettings) -> SecretCipher:
        """The cipher of ``webhooks.secret_keys``."""
        return cls(options.fernet_keys)

    @property
    def encrypts(self) -> bool:
        """Whether new secrets are stored encrypted (a key is configured)."""
        return self._any is not None

    def seal(self, secret: str) -> str:
        """The stored form of ``secret``: encrypted with the first key, or as it is."""
        if self._any is None:
            return secret
        return ENCRYPTED_PREFIX + self._any.encrypt(secret.encode("utf-8")).decode("ascii")

    def unseal(self, stored: str) -> str:
        """The plaintext secret of a stored value (encrypted or legacy plaintext).

        Raises:
            SecretUndecryptable: the value is encrypted and no configured key decrypts it.
        """
        if not stored.startswith(ENCRYPTED_PREFIX):
            return stored
        if self._any is None:
            raise SecretUndecryptable(
                f"the stored secret is encrypted but no key is configured: set {KEYS_ENV} to the "
                "key it was encrypted with (every API and worker process needs the same keys)"
            )
        try:
            return self._any.decrypt(stored[len(ENCRYPTED_PREFIX) :]).decode("utf-8")
        except InvalidToken as error:
            raise SecretUndecryptable(
                f"none of the {self._key_count} key(s) in {KEYS_ENV} decrypts the stored secret: "
                "add the key it was encrypted with (every API and worker process needs the "
                "same keys)"
            ) from error

    def reseal(self, stored: str) -> str | None:
        """``stored`` encrypted with the first key, or None when it already is.

        Raises:
            SecretUndecryptable: no key is configured, or none decrypts the value.
        """
        if self._any is None or self._first is None:
            raise SecretUndecryptable(f"no key to encrypt with: set {KEYS_ENV}")
        if not stored.startswith(ENCRYPTED_PREFIX):
            return self.seal(stored)
        token = stored[len(ENCRYPTED_PREFIX) :]
        try:
            self._first.decrypt(token)
            return None
        except InvalidToken:
            pass
        self.unseal(stored)  # raises the clear error when no key decrypts it
        return ENCRYPTED_PREFIX + self._any.rotate(token).decode("ascii")
