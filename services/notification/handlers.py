"""Notification use cases."""

from shared.events import CloudEvent, new_id, utcnow
from shared.store import Repository, VersionConflict, retry_on_conflict

from .adapters import DeliveryError, WebhookChannel
from .domain import Delivery, DeliveryStatus, Recipient, WebhookSubscription, recipients_of


async def deliver_event(
    event: CloudEvent,
    recipients: Repository[Recipient],
    deliveries: Repository[Delivery],
    webhook: WebhookChannel,
) -> None:
    """Deliver an event to every subscription that wants it, each at most once; raise if any
    failed, so the bus retries later (delivered ones are skipped then)."""
    payload = event.payload()
    body = event.model_dump_json().encode()
    failed = []
    for rid in recipients_of(payload):
        recipient = await recipients.get(rid)
        for subscription in recipient.wants(payload.name) if recipient else []:
            delivery_id = f"{event.id}:{subscription.id}"
            delivery = await deliveries.get(delivery_id)
            if delivery is not None and delivery.status == DeliveryStatus.DELIVERED:
                continue
            error = None
            try:
                await webhook.send(subscription, delivery_id, body)
            except DeliveryError as exc:
                error = str(exc)
                failed.append(f"{rid} {subscription.url}: {error}")
            await _record(deliveries, delivery, event, rid, subscription, error)
    if failed:
        raise DeliveryError("; ".join(failed))


async def _record(
    deliveries: Repository[Delivery],
    delivery: Delivery | None,
    event: CloudEvent,
    recipient: str,
    subscription: WebhookSubscription,
    error: str | None,
) -> None:
    status = DeliveryStatus.FAILING if error else DeliveryStatus.DELIVERED
    if delivery is None:
        delivery = Delivery(
            id=f"{event.id}:{subscription.id}",
            event_id=event.id,
            event_type=event.type,
            opinion_id=event.subject,
            recipient=recipient,
            subscription_id=subscription.id,
            status=status,
            attempts=1,
            last_error=error,
            delivered_at=None if error else utcnow(),
        )
        if await deliveries.add(delivery, []):
            return
        delivery = await deliveries.get(delivery.id)
        assert delivery is not None
    delivery.status = status
    delivery.attempts += 1
    delivery.last_error = error
    delivery.delivered_at = None if error else utcnow()
    await deliveries.save(delivery, [])


async def subscribe_webhook(
    recipients: Repository[Recipient], rid: str, url: str, event_names: list[str], secret: str
) -> WebhookSubscription:
    subscription = WebhookSubscription(
        id=new_id(), url=url, event_names=event_names, secret=secret, created_at=utcnow()
    )

    async def change() -> None:
        recipient = await recipients.get(rid)
        if recipient is None:
            recipient = Recipient(id=rid, subscriptions={subscription.id: subscription})
            if not await recipients.add(recipient, []):
                raise VersionConflict(f"recipient {rid} was created concurrently")
            return
        recipient.subscriptions[subscription.id] = subscription
        await recipients.save(recipient, [])

    await retry_on_conflict(change)
    return subscription


async def unsubscribe_webhook(
    recipients: Repository[Recipient], rid: str, subscription_id: str
) -> bool:
    async def change() -> bool:
        recipient = await recipients.get(rid)
        if recipient is None or subscription_id not in recipient.subscriptions:
            return False
        recipient.subscriptions[subscription_id].active = False
        await recipients.save(recipient, [])
        return True

    return await retry_on_conflict(change)
