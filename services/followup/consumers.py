"""Follow-up's work queue: message → use case."""

from shared.events import CloudEvent, OpinionAssigned
from shared.messaging import EventBus
from shared.store import Repository

from . import handlers
from .domain import Case


def subscribe(bus: EventBus, cases: Repository[Case]) -> None:
    async def on_event(event: CloudEvent) -> None:
        payload = event.payload()
        if isinstance(payload, OpinionAssigned):
            await handlers.open_case(event.id, payload, cases)

    bus.consume(on_event)
