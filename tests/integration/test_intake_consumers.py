"""Intake's consumers on the real broker and store: a crash between storing a 附议 item and
counting it on the case is repaired by intake's own opinion.supported event, once however often
it is delivered; case.closed takes the opinion out of the duplicate index."""

from collections.abc import Callable
from datetime import timedelta

from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient

from services.intake import consumers, handlers
from services.intake.adapters import (
    DuplicateEntries,
    ImportJobs,
    RequestClaims,
    TrackingNumbers,
)
from services.intake.domain import Member, Opinion, OpinionStatus, OpinionSubmission
from services.intake.duplicates import DuplicateIndex
from shared.events import CaseClosed, CloudEvent, utcnow
from shared.files import ChunkStore
from shared.keys import KeyRing
from shared.messaging import EventBus
from shared.settings import Settings
from shared.store import Document, Repository
from tools.demo import wait_for

SUBMISSION = OpinionSubmission.model_validate(
    {
        "title": "东湖路积水",
        "content": "东湖路与北环路交叉口一下雨就积水半米深，车辆熄火，请尽快改造排水管网。",
        "channel": "热线",
        "submitter": {"kind": "群众", "name": "孙八"},
        "location": {"district": "示范区", "street": "东湖街道"},
    }
)


def handled(event_type: str) -> float:
    """How many events of the type intake's consumers finished in this process."""
    labels = {"service": "intake", "type": event_type, "outcome": "ok"}
    return REGISTRY.get_sample_value("minyi_events_handled_total", labels) or 0.0


async def intake_of(
    isolated: Settings, mongo: AsyncMongoClient[Document], make_bus: Callable[[str], EventBus]
) -> handlers.Intake:
    # Routing's queue makes opinion.received routable in this vhost.
    await make_bus("routing").start()
    bus = make_bus("intake")
    db = mongo[isolated.database("intake")]
    intake = handlers.Intake(
        opinions=Repository(db.opinions, Opinion, bus),
        members=Repository(db.members, Member, bus),
        numbers=TrackingNumbers(db),
        claims=RequestClaims(db),
        jobs=ImportJobs(db),
        attachments=ChunkStore(db.attachment_chunks),
        index=DuplicateIndex(0.4, timedelta(days=30)),
        entries=DuplicateEntries(db),
        tracking_keys=KeyRing("tracking", "test"),
    )
    consumers.subscribe(bus, intake)
    await bus.start()
    return intake


async def test_a_half_made_link_is_repaired_once(
    isolated: Settings, mongo: AsyncMongoClient[Document], make_bus: Callable[[str], EventBus]
) -> None:
    intake = await intake_of(isolated, mongo, make_bus)
    case = (await handlers.register_opinion(intake, SUBMISSION, "office-a")).opinion
    # As if the process died after storing the supporting item, before counting it.
    item = Opinion(
        id="item-1",
        tracking_no="SQ-2026-900001",
        office_id="office-b",
        received_at=utcnow(),
        submission=SUBMISSION,
    )
    [supported] = [CloudEvent.wrap("/test", e) for e in item.support(case, 0.9, utcnow())]
    assert await intake.opinions.add(item, [supported])

    async def counted() -> Opinion | None:
        found = await intake.opinions.get(case.id)
        return found if found and "item-1" in found.supporters else None

    repaired = await wait_for(counted, "the supporter to be counted")
    assert repaired.supporters["item-1"].office_id == "office-b"

    before = handled(supported.type)
    await intake.opinions.bus.publish(supported)  # delivered again
    await wait_for(lambda: handled(supported.type) > before, "the second delivery")
    again = await intake.opinions.get(case.id)
    assert again is not None and list(again.supporters) == ["item-1"]


async def test_a_closed_case_leaves_the_duplicate_index(
    isolated: Settings, mongo: AsyncMongoClient[Document], make_bus: Callable[[str], EventBus]
) -> None:
    intake = await intake_of(isolated, mongo, make_bus)
    case = (await handlers.register_opinion(intake, SUBMISSION, "office-a")).opinion
    assert case.id in intake.index
    closed = CaseClosed(
        opinion_id=case.id,
        office_id="office-a",
        tracking_no=case.tracking_no,
        outcome="满意",
        closed_at=utcnow(),
    )
    followup = make_bus("followup")
    await followup.start()
    event = CloudEvent.wrap("/test", closed)
    await followup.publish(event)
    await followup.publish(event)

    async def is_closed() -> bool:
        found = await intake.opinions.get(case.id)
        return found is not None and found.status == OpinionStatus.CLOSED

    await wait_for(is_closed, "the opinion to close")
    assert case.id not in intake.index
    later = await handlers.register_opinion(intake, SUBMISSION, "office-a")
    assert later.joined is None and later.opinion.status == OpinionStatus.OPEN
    restarted = await intake_of(isolated, mongo, make_bus)
    assert await handlers.load_index(restarted, timedelta(days=30)) == 1
    assert later.opinion.id in restarted.index and case.id not in restarted.index


async def test_a_restart_reads_the_duplicate_entries_made_once_from_a_store_without_them(
    isolated: Settings, mongo: AsyncMongoClient[Document], make_bus: Callable[[str], EventBus]
) -> None:
    intake = await intake_of(isolated, mongo, make_bus)
    case = (await handlers.register_opinion(intake, SUBMISSION, "office-a")).opinion
    db = mongo[isolated.database("intake")]
    await db.duplicate_entries.drop()  # as a store from before the entries

    first = await intake_of(isolated, mongo, make_bus)
    assert await handlers.load_index(first, timedelta(days=30)) == 1
    assert await db.duplicate_entries.count_documents({}) == 1
    await db.opinions.drop()  # a start after that reads the entries alone
    second = await intake_of(isolated, mongo, make_bus)
    assert await handlers.load_index(second, timedelta(days=30)) == 1
    match = second.index.find(SUBMISSION.text(), "示范区", "东湖街道", utcnow())
    assert match is not None and match.opinion_id == case.id and match.similarity == 1.0
