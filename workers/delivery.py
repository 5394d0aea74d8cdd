"""`webhook.deliver`: one attempt to POST one stored message to its subscriber.

The message (body, ``webhook-id``) was fixed when the event was stored; each attempt signs
it with a fresh ``webhook-timestamp``. A 2xx marks it delivered; anything else (a status,
a timeout, a refused connection) counts an attempt and puts the job back with exponential
backoff and jitter, answering `Rescheduled` so that the runner announces it for that time;
after ``max_attempts`` the delivery is dead (visible, replayable). No database session is
open while the request is in flight. A worker dying mid-request leaves the job to the
sweeper, which sends the same message again: receivers deduplicate on ``webhook-id``.

The subscription's secret is unsealed with ``webhooks.secret_keys`` (`service.secrets_at_rest`)
just before signing. A secret that no configured key decrypts is not sent: the attempt fails
with that reason on the delivery (and its job), and is retried with the same backoff, so a
process started with the missing key can still deliver it; after the last attempt it is dead.

A circuit breaker per subscriber (`service.db.repositories.webhooks`): after
``webhooks.circuit_failures`` failed attempts in a row, that subscriber's deliveries are held
(put back for when the circuit reopens, no attempt spent) so a long outage does not drive
every pending message to dead; then one delivery probes, and its success releases the rest.

Deliveries have their own Celery queue (`workers.celery_config.DELIVERY_QUEUE`) and their
own embedded threads: a receiver that stalls until the timeout holds up other deliveries at
most, never analysis.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx
import structlog

from service.config import WebhookSettings
from service.db.models_detections import WebhookSubscription
from service.db.repositories import jobs, webhooks
from service.errors import SecretUndecryptable
from service.secrets_at_rest import SecretCipher
from service.webhooks import headers_for, private_address
from workers.errors import LeaseLost
from workers.stages import ClaimedJob, Rescheduled, SessionFactory, StageHandler

log = structlog.get_logger(__name__)

WEBHOOK_DELIVER = webhooks.DELIVER_KIND
_PRIVATE_REFUSED = "private address refused (webhooks.allow_private_urls is off)"


@dataclass(frozen=True)
class Backoff:
    """Seconds before attempt n+1 after n failed ones: base * 2^(n-1), capped, plus jitter."""

    base_seconds: float
    max_seconds: float
    jitter: float

    def delay(self, attempts: int) -> float:
        """The wait after ``attempts`` failed attempts."""
        plain = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempts - 1))
        # Jitter spreads the retries of many deliveries that failed together.
        return float(plain * (1.0 + self.jitter * random.random()))


class WebhookDeliverHandler:
    """Sends one delivery per job run (see the module docstring)."""

    def __init__(self, options: WebhookSettings, client: httpx.Client | None = None) -> None:
        self._options = options
        self._backoff = Backoff(
            options.backoff_base_seconds, options.backoff_max_seconds, options.jitter
        )
        self._client = client
        self._cipher = SecretCipher.from_settings(options)
        self._circuit = webhooks.Circuit(
            options.circuit_failures,
            options.circuit_cooldown_seconds,
            options.circuit_max_cooldown_seconds,
        )
        # A claimed probe keeps the others waiting for longer than one attempt can take.
        self._probe_seconds = options.timeout_seconds + 5.0

    def __call__(self, session_factory: SessionFactory, job: ClaimedJob) -> Rescheduled | None:
        with session_factory() as session:
            delivery = webhooks.get_delivery(session, job.subject_id)
            subscription = (
                webhooks.get_subscription(session, delivery.subscription_id)
                if delivery is not None
                else None
            )
            if delivery is None or subscription is None or delivery.status != webhooks.PENDING:
                # Deleted, or already delivered / dead (a stale announcement): nothing to send.
                jobs.finish(session, job.id)
                return None
            url, message_id, body = subscription.url, delivery.message_id, delivery.body
            if self._circuit.failures > 0:
                wait_until = webhooks.circuit_wait(session, subscription, self._probe_seconds)
                if wait_until is not None:
                    webhooks.hold(session, delivery, job.id, wait_until)
                    log.info(
                        "webhook_held_circuit_open",
                        delivery_id=job.subject_id,
                        subscription_id=subscription.id,
                        until=wait_until.isoformat(),
                    )
                    return Rescheduled(wait_until, delivery.attempts, "circuit open")
            secret, refused = self._signing_secret(subscription)
            session.commit()
        # Only a request that left counts towards the receiver's circuit (a missing key or a
        # refused address says nothing about the receiver).
        sent = False
        if secret is None:
            status_code, error = None, refused
        elif not self._options.allow_private_urls and private_address(url):
            status_code, error = None, _PRIVATE_REFUSED
        else:
            sent = True
            status_code, error = self._send(url, message_id, body, secret)
        bound = log.bind(delivery_id=job.subject_id, message_id=message_id, url=url)
        with session_factory() as session:
            if not jobs.still_owned(session, job.id, job.worker_id):
                # Our lease ran out during the request and another worker has the delivery
                # (it may even have delivered it): its outcome stands, ours is not recorded.
                # The receiver may see this message id twice, which the spec tells it to drop.
                session.commit()
                raise LeaseLost(
                    f"delivery {job.subject_id}: lease lost during the request "
                    f"(status {status_code}, error {error}); result not recorded"
                )
            if error is None and status_code is not None:
                webhooks.record_success(session, job.subject_id, job.id, status_code)
                bound.info("webhook_delivered", status=status_code)
                return None
            error = error or "no response"
            result = webhooks.record_failure(
                session,
                job.subject_id,
                job.id,
                error,
                status_code,
                self._options.max_attempts,
                self._backoff.delay,
                self._circuit if sent else None,
            )
        if result is None:  # the delivery was deleted meanwhile; its job is done
            return None
        if result.status == webhooks.DEAD:
            bound.error("webhook_dead", attempts=result.attempts, error=error)
            return None
        bound.warning("webhook_attempt_failed", attempts=result.attempts, error=error)
        assert result.next_attempt_at is not None  # set with the job's run_after
        return Rescheduled(result.next_attempt_at, result.attempts, error)

    def _signing_secret(self, subscription: WebhookSubscription) -> tuple[str | None, str | None]:
        """The plaintext secret, or None and why it cannot be had (a key is missing)."""
        try:
            return webhooks.signing_secret(subscription, self._cipher), None
        except SecretUndecryptable as error:
            return None, f"not sent: {error.message}"

    def _send(
        self, url: str, message_id: str, body: str, secret: str
    ) -> tuple[int | None, str | None]:
        headers = headers_for(message_id, body, secret)
        try:
            if self._client is not None:
                response = self._client.post(
                    url,
                    content=body.encode(),
                    headers=headers,
                    timeout=self._options.timeout_seconds,
                )
            else:
                response = httpx.post(
                    url,
                    content=body.encode(),
                    headers=headers,
                    timeout=self._options.timeout_seconds,
                    follow_redirects=False,
                )
        except httpx.HTTPError as error:
            return None, f"{type(error).__name__}: {error}"
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}: {response.text[:200]}"


def build_delivery_handlers(options: WebhookSettings) -> dict[str, StageHandler]:
    """The webhook delivery handler, keyed by job kind (= Celery task name)."""
    return {WEBHOOK_DELIVER: WebhookDeliverHandler(options)}
