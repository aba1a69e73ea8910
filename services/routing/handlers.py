"""Routing use cases."""

from shared.events import CloudEvent, OpinionReceived, utcnow
from shared.store import Repository

from .domain import Decision, decide

SOURCE = "/minyi/routing"


async def route_opinion(opinion: OpinionReceived, decisions: Repository[Decision]) -> None:
    """交办: decide once per opinion; a redelivered opinion.received changes nothing."""
    if await decisions.get(opinion.opinion_id) is not None:
        return
    decision, assigned = decide(opinion, utcnow())
    await decisions.add(decision, [CloudEvent.wrap(SOURCE, assigned)])
