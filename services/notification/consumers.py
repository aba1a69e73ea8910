"""Notification's work queue: every event → deliveries."""

from shared.events import CloudEvent
from shared.messaging import EventBus
from shared.store import Repository

from . import handlers
from .adapters import WebhookChannel
from .domain import Delivery, Recipient


def subscribe(
    bus: EventBus,
    recipients: Repository[Recipient],
    deliveries: Repository[Delivery],
    webhook: WebhookChannel,
) -> None:
    async def on_event(event: CloudEvent) -> None:
        await handlers.deliver_event(event, recipients, deliveries, webhook)

    bus.consume(on_event)
