"""Follow-up's entrypoints besides HTTP: the work queue (assignments and their withdrawal
(改派), the whole opinion and 并案 from intake, the outcome of 信息专报 for its sources, its
own events for the KPI projections) and the timer ticker that every replica runs."""

import asyncio
import logging

from shared.events import (
    CloudEvent,
    OpinionAssigned,
    OpinionBriefed,
    OpinionMerged,
    OpinionSplit,
    OpinionWithdrawn,
    ReportAdopted,
    ReportInstructed,
)
from shared.messaging import EventBus

from . import handlers
from .handlers import FollowupPorts

log = logging.getLogger("minyi.followup.timers")


def subscribe(bus: EventBus, ports: FollowupPorts) -> None:
    async def on_event(event: CloudEvent) -> None:
        payload = event.payload()
        if isinstance(payload, OpinionAssigned):
            await handlers.open_case(event.id, payload, ports)
        elif isinstance(payload, OpinionWithdrawn):
            await handlers.withdraw(event.id, payload, ports)
        elif isinstance(payload, OpinionBriefed):
            await handlers.take_brief(payload, ports)
        elif isinstance(payload, OpinionMerged):
            await handlers.merge(event.id, payload, ports)
        elif isinstance(payload, OpinionSplit):
            await handlers.split_off(event.id, payload, ports)
        elif isinstance(payload, ReportAdopted | ReportInstructed):
            await handlers.credit_sources(event.id, payload, ports)
        await handlers.project(event, ports)

    bus.consume(on_event)


async def run_ticker(ports: FollowupPorts, replica: str, interval: float, batch: int) -> None:
    """Forever: fire the timers that are due (催办/督办 and friends)."""
    while True:
        try:
            await handlers.fire_due_timers(ports, replica, batch)
        except Exception:
            log.exception("timer tick failed; will try again")
        await asyncio.sleep(interval)
