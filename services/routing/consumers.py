"""Routing's work queue: message → use case."""

from shared.events import AssignmentReturned, CloudEvent, OpinionReceived, OpinionSupported
from shared.messaging import EventBus

from . import handlers
from .handlers import RoutingPorts
from .topics import handlers as topics
from .topics.handlers import TopicIntake


def subscribe(bus: EventBus, ports: RoutingPorts, topic_intake: TopicIntake) -> None:
    async def on_event(event: CloudEvent) -> None:
        payload = event.payload()
        if isinstance(payload, OpinionReceived):
            await handlers.route_opinion(payload, ports)
            await topic_intake.take(payload)
        elif isinstance(payload, OpinionSupported):
            await topics.take_support(payload, topic_intake.ports)
        elif isinstance(payload, AssignmentReturned):
            await handlers.assignment_returned(payload, event.id, ports)
        # case.reopened: followup hands the case to the same lead again; nothing to decide.

    bus.consume(on_event)
