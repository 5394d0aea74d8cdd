"""Webhook subscriptions (Standard Webhooks), their deliveries, dead letters and replay.

All under the ``admin`` scope: a subscription decides where detections (customer data) go.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from service.api.body import JsonBodyRoute
from service.api.deps import get_session, require_scope
from service.api.schemas_detections import (
    DeliveryList,
    DeliveryOut,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
)
from service.db.models_detections import WebhookDelivery, WebhookSubscription
from service.db.repositories import webhooks
from service.errors import NotFound, ValidationFailed
from service.logging import get_logger
from service.webhooks import generate_secret, new_message_id, private_address

log = get_logger(__name__)
ADMIN = [Depends(require_scope("admin"))]
router = APIRouter(prefix="/v1", tags=["webhooks"])
json_router = APIRouter(tags=["webhooks"], route_class=JsonBodyRoute)


def _out(row: WebhookSubscription) -> WebhookOut:
    return WebhookOut(
        id=row.id,
        url=row.url,
        event_types=row.event_types,
        description=row.description,
        active=row.active,
        created_at=row.created_at,
        circuit=webhooks.circuit_state(row),
        consecutive_failures=row.consecutive_failures or 0,
        circuit_open_until=row.circuit_open_until,
    )


def _delivery_out(row: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut.model_validate(row, from_attributes=True)


def _notify(request: Request, job_ids: list[str]) -> None:
    try:
        request.app.state.dispatcher.notify(job_ids, webhooks.DELIVER_KIND)
    except Exception as error:  # committed: the sweeper announces it
        log.warning("notify_failed", error=repr(error))


@json_router.post(
    "/webhooks",
    status_code=201,
    response_model=WebhookCreated,
    dependencies=ADMIN,
    summary="Subscribe a URL to detection events",
    description=(
        "The answer holds the signing `secret` (`whsec_...`), shown only this once. Every "
        "message is signed per the Standard Webhooks spec (headers `webhook-id`, "
        "`webhook-timestamp`, `webhook-signature`)."
    ),
)
def create_webhook(
    body: WebhookIn, request: Request, session: Session = Depends(get_session)
) -> WebhookCreated:
    """Create a subscription."""
    url = str(body.url)
    if not request.app.state.settings.webhooks.allow_private_urls and private_address(url):
        raise ValidationFailed(
            f"{url} is a private or loopback address; set UNDERTONE_WEBHOOKS__ALLOW_PRIVATE_URLS"
            "=true to allow it",
            code="private_url",
        )
    secret = generate_secret()
    row = webhooks.create_subscription(
        session,
        url,
        body.event_types,
        secret,
        body.description,
        cipher=request.app.state.secret_cipher,
    )
    session.commit()
    return WebhookCreated(**_out(row).model_dump(), secret=secret)


router.include_router(json_router)


@router.get(
    "/webhooks", response_model=list[WebhookOut], dependencies=ADMIN, summary="List subscriptions"
)
def list_webhooks(session: Session = Depends(get_session)) -> list[WebhookOut]:
    """Every subscription (without secrets)."""
    return [_out(r) for r in webhooks.list_subscriptions(session)]


def _subscription(session: Session, webhook_id: str) -> WebhookSubscription:
    row = webhooks.get_subscription(session, webhook_id)
    if row is None:
        raise NotFound(f"no webhook subscription with id {webhook_id}")
    return row


@router.get(
    "/webhooks/{webhook_id}",
    response_model=WebhookOut,
    dependencies=ADMIN,
    summary="Read a subscription",
)
def read_webhook(webhook_id: str, session: Session = Depends(get_session)) -> WebhookOut:
    """One subscription (without its secret)."""
    return _out(_subscription(session, webhook_id))


@router.delete(
    "/webhooks/{webhook_id}",
    status_code=204,
    dependencies=ADMIN,
    summary="Delete a subscription and its deliveries",
)
def delete_webhook(webhook_id: str, session: Session = Depends(get_session)) -> Response:
    """Unsubscribe; pending deliveries are dropped."""
    if not webhooks.delete_subscription(session, webhook_id):
        raise NotFound(f"no webhook subscription with id {webhook_id}")
    session.commit()
    return Response(status_code=204)


@router.post(
    "/webhooks/{webhook_id}/test",
    status_code=202,
    response_model=DeliveryOut,
    dependencies=ADMIN,
    summary="Send a signed `webhook.test` message",
)
def send_test_message(
    webhook_id: str, request: Request, session: Session = Depends(get_session)
) -> DeliveryOut:
    """Queue a test ping; follow it under /deliveries."""
    delivery, job_id = webhooks.enqueue_test(
        session, _subscription(session, webhook_id), new_message_id()
    )
    session.commit()
    _notify(request, [job_id])
    return _delivery_out(delivery)


@router.post(
    "/webhooks/{webhook_id}/resume",
    response_model=WebhookOut,
    dependencies=ADMIN,
    summary="Close the subscription's circuit and send its held deliveries now",
)
def resume_webhook(
    webhook_id: str, request: Request, session: Session = Depends(get_session)
) -> WebhookOut:
    """For when the receiver is known to be back: no need to wait for the next probe."""
    subscription = _subscription(session, webhook_id)
    job_ids = webhooks.resume(session, subscription)
    session.commit()
    log.info("webhook_resumed", subscription_id=webhook_id, deliveries=len(job_ids))
    _notify(request, job_ids)
    return _out(subscription)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=DeliveryList,
    dependencies=ADMIN,
    summary="Deliveries of a subscription (dead letters: status=dead)",
)
def list_deliveries(
    webhook_id: str,
    status: str | None = Query(default=None, pattern="^(pending|delivered|dead)$"),
    limit: int = Query(default=100, ge=1, le=1000),
    session: Session = Depends(get_session),
) -> DeliveryList:
    """Newest first."""
    _subscription(session, webhook_id)
    rows = webhooks.list_deliveries(session, webhook_id, status, limit)
    return DeliveryList(items=[_delivery_out(r) for r in rows])


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/replay",
    status_code=202,
    response_model=DeliveryOut,
    dependencies=ADMIN,
    summary="Send a dead (or delivered) message again, with the same webhook-id and body",
)
def replay_delivery(
    webhook_id: str, delivery_id: str, request: Request, session: Session = Depends(get_session)
) -> DeliveryOut:
    """Requeue one delivery with a fresh attempt budget."""
    delivery = webhooks.get_delivery(session, delivery_id)
    if delivery is None or delivery.subscription_id != webhook_id:
        raise NotFound(f"no delivery {delivery_id} for webhook {webhook_id}")
    if delivery.status == webhooks.PENDING:
        return _delivery_out(delivery)
    job_id = webhooks.replay(session, delivery)
    session.commit()
    _notify(request, [job_id])
    return _delivery_out(delivery)
