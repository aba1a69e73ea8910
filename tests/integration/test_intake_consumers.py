"""Intake's consumers on the real broker and store: a crash between storing a 附议 item and
counting it on the case is repaired by intake's own opinion.supported event, once however often
it is delivered; case.closed takes the opinion out of the duplicate index; a brief a crash kept
from going out is sent by the redelivered assignment."""

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest
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
from shared import store
from shared.events import CaseClosed, CloudEvent, OpinionAssigned, utcnow
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


class Crash(BaseException):
    """The process dying right where it was (not an error that any handler catches)."""


class DyingBus(EventBus):
    """A bus whose process dies as it publishes."""

    async def publish(self, event: CloudEvent) -> None:
        raise Crash


async def test_a_redelivered_assignment_sends_the_brief_a_crash_kept_from_going_out(
    isolated: Settings,
    mongo: AsyncMongoClient[Document],
    make_bus: Callable[[str], EventBus],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The brief (交办材料) is stored without an outbox marker (the unacknowledged
    opinion.assigned stands for it): after a crash between storing and publishing it, the
    redelivered event publishes it, and changes nothing twice. The dead writer's claim of the
    outbox cleanup's version holds for its lease: the brief stays in the outbox, marked, and
    the sweeper clears it once the lease is over."""
    briefs: list[CloudEvent] = []

    async def record(event: CloudEvent) -> None:
        if event.type == "minyi.opinion.briefed.v1":
            briefs.append(event)

    followup = make_bus("followup")  # routes opinion.briefed.<department>
    followup.consume(record)
    await followup.start()
    intake = await intake_of(isolated, mongo, make_bus)
    opinion = (await handlers.register_opinion(intake, SUBMISSION, "office-a")).opinion
    s = opinion.submission
    assigned = CloudEvent.wrap(
        "/test",
        OpinionAssigned(
            opinion_id=opinion.id,
            department="water",
            tracking_no=opinion.tracking_no,
            office_id=opinion.office_id,
            title=s.title,
            department_name="水务局",
            role="lead",
            category="供水",
            urgency="timeliness",
            explanation="测试",
            received_at=opinion.received_at,
        ),
    )
    dying = replace(
        intake,
        opinions=Repository(intake.opinions.collection, Opinion, DyingBus("intake", isolated)),
    )
    with pytest.raises(Crash):
        await handlers.follow_case(dying, assigned)
    stored = await intake.opinions.collection.find_one({"_id": opinion.id})
    assert stored is not None and assigned.id in stored["handled"]
    [left] = [e for e in stored["outbox"].values() if e["type"] == "minyi.opinion.briefed.v1"]
    marker = f"opinions:{opinion.id}:{left['id']}"
    assert await intake.opinions.pending.find_one({"_id": marker}) is None

    await handlers.follow_case(intake, assigned)  # the redelivery
    await wait_for(lambda: [b.id for b in briefs] == [left["id"]], "the brief")
    again = await intake.opinions.collection.find_one({"_id": opinion.id})
    assert again is not None and again == stored  # nothing applied twice
    assert await intake.opinions.pending.find_one({"_id": marker}) is not None

    monkeypatch.setattr(store, "CLAIM_LEASE", timedelta(0))
    # A sweep frees the lapsed claims, the next look clears it (publishing it again: the same
    # event id, which consumers drop).
    swept = [await intake.opinions.sweep(timedelta(0)) for _ in range(2)]
    assert sum(swept) == 1
    cleared = await intake.opinions.collection.find_one({"_id": opinion.id})
    assert cleared is not None and left["id"] not in cleared["outbox"]
    assert cleared["version"] == stored["version"] + 1
    assert await intake.opinions.pending.find_one({"_id": marker}) is None
