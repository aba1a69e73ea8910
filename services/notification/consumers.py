"""Notification's work queue: every event → deliveries."""

from shared.events import CloudEvent
from shared.messaging import EventBus

from . import handlers


def subscribe(bus: EventBus, ports: handlers.NotificationPorts) -> None:
    async def on_event(event: CloudEvent) -> None:
        await handlers.deliver_event(event, ports)

    bus.consume(on_event)
