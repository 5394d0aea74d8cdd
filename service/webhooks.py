"""Standard Webhooks (https://www.standardwebhooks.com): signing, and verification for receivers.

Every message carries three headers:

- ``webhook-id``: the message id (``msg_...``), the same on every retry: deduplicate on it;
- ``webhook-timestamp``: Unix seconds of this attempt;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` keyed with
  the base64-decoded part of the subscription secret after ``whsec_``.

Receivers can use `verify` (this module needs only the standard library)::

    from service.webhooks import verify, WebhookVerificationError
    try:
        event = verify(request_body_bytes, request_headers, "whsec_...")
    except WebhookVerificationError:
        return 400
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

SECRET_PREFIX = "whsec_"  # noqa: S105 - the public prefix of every secret, not a secret
# Messages older or newer than this are refused (replay protection).
DEFAULT_TOLERANCE_SECONDS = 5 * 60


class WebhookVerificationError(ValueError):
    """The message is not signed by this secret, or its timestamp is out of tolerance."""


def generate_secret() -> str:
    """A new subscription secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def new_message_id() -> str:
    """A fresh message id, ``msg_`` + 32 hex characters."""
    return "msg_" + secrets.token_hex(16)


def _key(secret: str) -> bytes:
    raw = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError as error:
        raise WebhookVerificationError("the secret is not base64 after 'whsec_'") from error


def sign(message_id: str, timestamp: int, body: str | bytes, secret: str) -> str:
    """The ``webhook-signature`` value for one message: ``v1,<base64 signature>``."""
    payload = body.decode("utf-8") if isinstance(body, bytes) else body
    content = f"{message_id}.{timestamp}.{payload}".encode()
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers_for(
    message_id: str, body: str, secret: str, timestamp: int | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers (and the content type) for one attempt."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(message_id, ts, body, secret),
        "content-type": "application/json",
    }


def verify(
    payload: str | bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> Any:
    """Check a received message and return its parsed JSON body.

    Args:
        payload: the raw request body, exactly as received (do not re-serialise it).
        headers: the request headers (any case).
        secret: the subscription's ``whsec_...`` secret.
        tolerance_seconds: how far the timestamp may be from now.
        now: the current Unix time (for tests).

    Returns:
        The decoded JSON body.

    Raises:
        WebhookVerificationError: a header is missing, the timestamp is out of tolerance, or
        no signature matches.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        message_id = lowered["webhook-id"]
        timestamp_text = lowered["webhook-timestamp"]
        signatures = lowered["webhook-signature"]
    except KeyError as error:
        raise WebhookVerificationError(f"missing header {error.args[0]}") from error
    try:
        timestamp = int(timestamp_text)
    except ValueError as error:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from error
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise WebhookVerificationError("webhook-timestamp is too old or too new")
    expected = sign(message_id, timestamp, payload, secret).split(",", 1)[1]
    # The header may hold several space-separated signatures (e.g. during secret rotation).
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return json.loads(payload)
    raise WebhookVerificationError("no signature matches")


def private_address(url: str) -> bool:
    """Whether the URL's host is localhost or a loopback, private or link-local address literal.

    Names are not resolved here: a public name pointing at a private address is not caught.
    """
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local
