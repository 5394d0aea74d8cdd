"""Webhook subscriptions and deliveries; each delivery is driven by one `webhook.deliver` job.

A delivery is created with the event (in the transaction that stores the detection), so
nothing is lost between storing and sending; its body and message id are fixed then, so
every retry sends the same bytes under the same ``webhook-id``. Attempts are counted on the
delivery: a failed attempt puts its job back in the queue with ``run_after`` = the backoff
(the job's own attempt counter, which guards against workers dying, starts again), and
after the last attempt the delivery is ``dead`` until replayed.

A circuit breaker per subscription keeps an outage from spending every delivery's attempts:
`record_failure` counts failed attempts in a row on the subscription and, at
``Circuit.failures``, opens its circuit until a cooldown has passed; meanwhile
`circuit_wait` holds the subscriber's deliveries back (`hold`: same attempts, later
``run_after``). After the cooldown one delivery claims the probe; its failure reopens the
circuit for twice the cooldown (up to the maximum), its success (`record_success`) closes
it. `resume` closes it by hand and makes the held deliveries due now.

Signing secrets are stored sealed by a `SecretCipher` (encrypted when keys are configured);
`signing_secret` is the one reader of the plaintext, for the sender.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.db.models import Job, utcnow
from service.db.models_detections import Detection, WebhookDelivery, WebhookSubscription
from service.db.repositories import jobs
from service.errors import SecretUndecryptable
from service.secrets_at_rest import SecretCipher

DELIVER_KIND = "webhook.deliver"
PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
TEST_EVENT = "webhook.test"
EVENT_TYPES = ("detection.created", "detection.updated")


def create_subscription(
    session: Session,
    url: str,
    event_types: Sequence[str],
    secret: str,
    description: str | None = None,
    *,
    cipher: SecretCipher,
) -> WebhookSubscription:
    """Add a subscription, its secret sealed by ``cipher`` (no commit)."""
    row = WebhookSubscription(
        url=url,
        event_types=list(event_types),
        secret=cipher.seal(secret),
        description=description,
        active=True,
    )
    session.add(row)
    session.flush()
    return row


def get_subscription(session: Session, subscription_id: str) -> WebhookSubscription | None:
    """One subscription by id."""
    return session.get(WebhookSubscription, subscription_id)


def signing_secret(subscription: WebhookSubscription, cipher: SecretCipher) -> str:
    """The subscription's plaintext secret, to sign with.

    Raises:
        SecretUndecryptable: it is stored encrypted and no key of ``cipher`` decrypts it.
    """
    return cipher.unseal(subscription.secret)


@dataclass
class Reencrypted:
    """What `reencrypt_secrets` did: rows changed, rows already under the first key, and the
    ids of rows no configured key decrypts (left as they were)."""

    changed: int = 0
    unchanged: int = 0
    undecryptable: list[str] = field(default_factory=list)


def reencrypt_secrets(session: Session, cipher: SecretCipher) -> Reencrypted:
    """Store every secret encrypted with the first key of ``cipher`` (no commit).

    Plaintext secrets are encrypted, secrets under another configured key re-encrypted, those
    already under the first key left alone, so a second run changes nothing. Each row is
    updated only if its secret is still the one read (a concurrent change wins).
    """
    result = Reencrypted()
    rows = session.execute(
        select(WebhookSubscription.id, WebhookSubscription.secret).order_by(
            WebhookSubscription.created_at, WebhookSubscription.id
        )
    ).all()
    for subscription_id, stored in rows:
        try:
            sealed = cipher.reseal(stored)
        except SecretUndecryptable:
            result.undecryptable.append(subscription_id)
            continue
        if sealed is None:
            result.unchanged += 1
            continue
        updated = session.execute(
            update(WebhookSubscription)
            .where(WebhookSubscription.id == subscription_id, WebhookSubscription.secret == stored)
            .values(secret=sealed)
            .execution_options(synchronize_session=False)
        )
        result.changed += updated.rowcount  # type: ignore[attr-defined]
    return result


def undecryptable_ids(stored: Sequence[tuple[str, str]], cipher: SecretCipher) -> list[str]:
    """Of (subscription id, stored secret) pairs, the ids no key of ``cipher`` decrypts."""
    unreadable: list[str] = []
    for subscription_id, secret in stored:
        try:
            cipher.unseal(secret)
        except SecretUndecryptable:
            unreadable.append(subscription_id)
    return unreadable


def undecryptable_secrets(session: Session, cipher: SecretCipher) -> list[str]:
    """Ids of the subscriptions whose stored secret no key of ``cipher`` decrypts, oldest first.

    Their deliveries would fail at signing time ("not sent: ..."); the API and the workers
    check this at start, and `undertone webhooks check` on demand.
    """
    rows = session.execute(
        select(WebhookSubscription.id, WebhookSubscription.secret).order_by(
            WebhookSubscription.created_at, WebhookSubscription.id
        )
    ).all()
    return undecryptable_ids([(row[0], row[1]) for row in rows], cipher)


def list_subscriptions(session: Session) -> list[WebhookSubscription]:
    """Every subscription, oldest first."""
    return list(
        session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.created_at))
    )


def delete_subscription(session: Session, subscription_id: str) -> bool:
    """Remove a subscription and its deliveries; their queued jobs find nothing to send."""
    row = session.get(WebhookSubscription, subscription_id)
    if row is None:
        return False
    session.delete(row)
    return True


def _envelope(event_type: str, data: dict[str, Any], at: datetime) -> str:
    # Standard Webhooks' recommended shape: type, timestamp, data.
    return json.dumps(
        {"type": event_type, "timestamp": at.isoformat(), "data": data},
        separators=(",", ":"),
        sort_keys=True,
    )


def _add_delivery(
    session: Session,
    subscription: WebhookSubscription,
    message_id: str,
    event_type: str,
    body: str,
    detection: Detection | None,
) -> WebhookDelivery:
    delivery = WebhookDelivery(
        subscription_id=subscription.id,
        message_id=message_id,
        event_type=event_type,
        detection_id=detection.id if detection else None,
        detection_seq=detection.seq if detection else None,
        body=body,
        status=PENDING,
        attempts=0,
        next_attempt_at=utcnow(),
    )
    session.add(delivery)
    session.flush()
    return delivery


def enqueue_for_events(
    session: Session,
    events: Sequence[tuple[Detection, str, dict[str, Any]]],
    new_message_id: Any,
) -> list[str]:
    """One delivery (and its job) per active subscription and event it subscribes to.

    ``events`` holds (detection, event type, public detection dict). Joins the caller's
    transaction; returns the new jobs' ids to announce after commit.
    """
    if not events:
        return []
    subscriptions = list(
        session.scalars(select(WebhookSubscription).where(WebhookSubscription.active.is_(True)))
    )
    job_ids: list[str] = []
    now = utcnow()
    for detection, event_type, data in events:
        body = _envelope(event_type, data, now)
        for sub in subscriptions:
            if sub.event_types and event_type not in sub.event_types:
                continue
            delivery = _add_delivery(session, sub, new_message_id(), event_type, body, detection)
            job = jobs.enqueue(session, DELIVER_KIND, delivery.id)
            job_ids.append(job.id)
    return job_ids


def enqueue_test(
    session: Session, subscription: WebhookSubscription, message_id: str
) -> tuple[WebhookDelivery, str]:
    """A ``webhook.test`` ping to one subscription; returns the delivery and its job id."""
    now = utcnow()
    body = _envelope(
        TEST_EVENT, {"subscription_id": subscription.id, "message": "test ping from Undertone"}, now
    )
    delivery = _add_delivery(session, subscription, message_id, TEST_EVENT, body, None)
    job = jobs.enqueue(session, DELIVER_KIND, delivery.id)
    return delivery, job.id


def get_delivery(session: Session, delivery_id: str) -> WebhookDelivery | None:
    """One delivery by id."""
    return session.get(WebhookDelivery, delivery_id)


def list_deliveries(
    session: Session, subscription_id: str, status: str | None = None, limit: int = 100
) -> list[WebhookDelivery]:
    """A subscription's deliveries, newest first."""
    query = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    return list(
        session.scalars(
            query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id).limit(limit)
        )
    )


@dataclass(frozen=True)
class Circuit:
    """The circuit breaker's settings (`service.config.WebhookSettings`)."""

    failures: int = 5  # failed attempts in a row that open it; 0: never opens
    cooldown_seconds: float = 60.0
    max_cooldown_seconds: float = 3600.0

    def cooldown(self, consecutive_failures: int) -> float:
        """How long the circuit stays open after this many failures in a row."""
        doublings = max(0, consecutive_failures - self.failures)
        return min(self.max_cooldown_seconds, self.cooldown_seconds * 2.0 ** min(doublings, 30))


CircuitState = Literal["closed", "open", "half-open"]


def circuit_state(subscription: WebhookSubscription, now: datetime | None = None) -> CircuitState:
    """``closed``, ``open`` (deliveries wait) or ``half-open`` (the next attempt probes)."""
    if subscription.circuit_open_until is None:
        return "closed"
    return "open" if subscription.circuit_open_until > (now or utcnow()) else "half-open"


def circuit_wait(
    session: Session, subscription: WebhookSubscription, probe_seconds: float
) -> datetime | None:
    """None when a delivery to ``subscription`` may be attempted now, else when to try again.

    Closed: go. Open: wait until it reopens. Past the cooldown: the first caller claims the
    probe (the reopen time moves ``probe_seconds`` on, a compare-and-set, so two workers never
    both probe) and goes; the others wait. Commits a claim; the caller commits otherwise.
    """
    opened = subscription.circuit_open_until
    if opened is None:
        return None
    now = utcnow()
    if opened > now:
        return opened
    claim_until = now + timedelta(seconds=probe_seconds)
    claimed = session.execute(
        update(WebhookSubscription)
        .where(
            WebhookSubscription.id == subscription.id,
            WebhookSubscription.circuit_open_until == opened,
        )
        .values(circuit_open_until=claim_until)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if getattr(claimed, "rowcount", 0) == 1:
        return None
    session.refresh(subscription)
    return subscription.circuit_open_until


def hold(session: Session, delivery: WebhookDelivery, job_id: str, until: datetime) -> None:
    """Put a delivery back until ``until`` without spending an attempt (circuit open). Commits."""
    delivery.next_attempt_at = until
    _requeue(session, job_id, until, "held: the subscriber's circuit is open")
    session.commit()


def record_success(session: Session, delivery_id: str, job_id: str, status_code: int) -> None:
    """The receiver accepted: delivered, job done, the subscriber's circuit closed. Commits."""
    now = utcnow()
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is not None:
        delivery.status = DELIVERED
        delivery.attempts += 1
        delivery.last_status_code = status_code
        delivery.last_error = None
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        subscription = session.get(WebhookSubscription, delivery.subscription_id)
        if subscription is not None and (
            subscription.consecutive_failures or subscription.circuit_open_until is not None
        ):
            # The receiver is back: what waited on it (held, or backing off) goes now; the
            # sweeper announces the jobs.
            _release(session, subscription, now, exclude=delivery.id)
    jobs.mark_done(session, job_id)
    session.commit()


def record_failure(
    session: Session,
    delivery_id: str,
    job_id: str,
    error: str,
    status_code: int | None,
    max_attempts: int,
    delay_for: Any,
    circuit: Circuit | None = None,
) -> WebhookDelivery | None:
    """A failed attempt: retry after ``delay_for(attempts)`` seconds, or dead. Commits.

    With ``circuit`` (the request reached out to the receiver), the subscriber's failures in a
    row go up by one (in the database, so concurrent workers all count) and at
    ``circuit.failures`` its circuit opens; the retry then waits at least until it reopens.
    """
    now = utcnow()
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        jobs.mark_done(session, job_id)
        session.commit()
        return None
    delivery.attempts += 1
    delivery.last_status_code = status_code
    delivery.last_error = error[:2000]
    open_until = (
        _count_failure(session, delivery.subscription_id, now, circuit)
        if circuit is not None
        else None
    )
    if delivery.attempts >= max_attempts:
        delivery.status = DEAD
        delivery.next_attempt_at = None
        jobs.mark_done(session, job_id)
    else:
        run_after = now + timedelta(seconds=float(delay_for(delivery.attempts)))
        if open_until is not None:
            run_after = max(run_after, open_until)
        delivery.next_attempt_at = run_after
        _requeue(session, job_id, run_after, error)
    session.commit()
    return delivery


def _count_failure(
    session: Session, subscription_id: str, now: datetime, circuit: Circuit
) -> datetime | None:
    """One more failure in a row; opens (or reopens) the circuit at the threshold."""
    session.execute(
        update(WebhookSubscription)
        .where(WebhookSubscription.id == subscription_id)
        .values(consecutive_failures=WebhookSubscription.consecutive_failures + 1)
        .execution_options(synchronize_session=False)
    )
    if circuit.failures <= 0:
        return None
    failures = session.scalar(
        select(WebhookSubscription.consecutive_failures).where(
            WebhookSubscription.id == subscription_id
        )
    )
    if failures is None or failures < circuit.failures:
        return None
    open_until = now + timedelta(seconds=circuit.cooldown(failures))
    session.execute(
        update(WebhookSubscription)
        .where(WebhookSubscription.id == subscription_id)
        .values(circuit_open_until=open_until)
        .execution_options(synchronize_session=False)
    )
    return open_until


def resume(session: Session, subscription: WebhookSubscription) -> list[str]:
    """Close the circuit by hand and make every pending delivery due now; their job ids.

    Joins the caller's transaction (no commit).
    """
    return _release(session, subscription, utcnow())


def _release(
    session: Session, subscription: WebhookSubscription, now: datetime, exclude: str = ""
) -> list[str]:
    """Circuit closed, failures forgotten, pending deliveries due now; their job ids."""
    subscription.consecutive_failures = 0
    subscription.circuit_open_until = None
    pending = session.scalars(
        select(WebhookDelivery).where(
            WebhookDelivery.subscription_id == subscription.id,
            WebhookDelivery.status == PENDING,
            WebhookDelivery.id != exclude,
        )
    ).all()
    job_ids = []
    for delivery in pending:
        delivery.next_attempt_at = now
        job_ids += jobs.make_due(session, DELIVER_KIND, delivery.id, now)
    return job_ids


def _requeue(session: Session, job_id: str, run_after: datetime, error: str | None) -> None:
    # attempts back to 0: the job's counter guards against dying workers, the delivery
    # counts the receiver's failures.
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            status=jobs.QUEUED,
            attempts=0,
            lease_until=None,
            worker_id=None,
            run_after=run_after,
            last_error=error,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )


def replay(session: Session, delivery: WebhookDelivery) -> str:
    """Send a dead (or delivered) message again, same id and body; returns its job id.

    Joins the caller's transaction (no commit).
    """
    now = utcnow()
    delivery.status = PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = now
    job = jobs.enqueue(session, DELIVER_KIND, delivery.id)
    _requeue(session, job.id, now, None)
    return job.id
