"""Intake use cases."""

from shared.events import CloudEvent, new_id, utcnow
from shared.store import Repository

from .adapters import TrackingNumbers
from .domain import Opinion, OpinionSubmission, tracking_number

SOURCE = "/minyi/intake"


async def register_opinion(
    submission: OpinionSubmission,
    office_id: str,
    opinions: Repository[Opinion],
    numbers: TrackingNumbers,
) -> Opinion:
    """登记: store the opinion with its tracking number and announce opinion.received."""
    now = utcnow()
    opinion = Opinion(
        id=new_id(),
        tracking_no=tracking_number(now.year, await numbers.next(now.year)),
        office_id=office_id,
        received_at=now,
        submission=submission,
    )
    await opinions.add(opinion, [CloudEvent.wrap(SOURCE, opinion.received_event())])
    return opinion
