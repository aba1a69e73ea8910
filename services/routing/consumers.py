"""Routing's work queue: message → use case."""

from shared.events import CloudEvent, OpinionReceived
from shared.messaging import EventBus
from shared.store import Repository

from . import handlers
from .domain import Decision


def subscribe(bus: EventBus, decisions: Repository[Decision]) -> None:
    async def on_event(event: CloudEvent) -> None:
        payload = event.payload()
        if isinstance(payload, OpinionReceived):
            await handlers.route_opinion(payload, decisions)

    bus.consume(on_event)
