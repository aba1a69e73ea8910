"""Routing's work queue: message → use case."""

from shared.events import AssignmentReturned, CloudEvent, OpinionReceived
from shared.messaging import EventBus

from . import handlers
from .handlers import RoutingPorts


def subscribe(bus: EventBus, ports: RoutingPorts) -> None:
    async def on_event(event: CloudEvent) -> None:
        payload = event.payload()
        if isinstance(payload, OpinionReceived):
            await handlers.route_opinion(payload, ports)
        elif isinstance(payload, AssignmentReturned):
            await handlers.assignment_returned(payload, event.id, ports)
        # case.reopened: followup hands the case to the same lead again; nothing to decide.

    bus.consume(on_event)
