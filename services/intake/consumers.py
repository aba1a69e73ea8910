"""Intake's work queue: message → use case; and this process's follow queue, which keeps its
duplicate index in step with the other replicas."""

from shared.events import (
    AssignmentReplied,
    AssignmentReturned,
    AssignmentSigned,
    CaseClosed,
    CloudEvent,
    FeedbackReceived,
    FeedbackRequested,
    OpinionAssigned,
    OpinionMerged,
    OpinionReceived,
    OpinionSupported,
    OpinionWithdrawn,
)
from shared.messaging import EventBus

from . import handlers
from .handlers import Intake

# Events that change who holds an opinion or what its submitter's lookup shows.
FOLLOWED_CASE_EVENTS = (
    OpinionAssigned
    | OpinionWithdrawn
    | AssignmentReturned
    | AssignmentSigned
    | AssignmentReplied
    | FeedbackRequested
    | FeedbackReceived
    | CaseClosed
)


def subscribe(bus: EventBus, intake: Intake) -> None:
    async def on_event(event: CloudEvent) -> None:
        payload = event.payload()
        if isinstance(payload, FOLLOWED_CASE_EVENTS):
            await handlers.follow_case(intake, event)
        elif isinstance(payload, OpinionSupported):
            await handlers.on_supported(
                intake, payload.opinion_id, payload.supporter_id, payload.similarity
            )

    bus.consume(on_event)

    async def on_followed(event: CloudEvent) -> None:
        payload = event.payload()
        if isinstance(payload, OpinionReceived):
            handlers.index_received(intake, payload)
        elif isinstance(payload, CaseClosed | OpinionMerged):
            intake.index.remove(payload.opinion_id)

    bus.follow(on_followed)
