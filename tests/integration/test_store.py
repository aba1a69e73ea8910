"""Aggregates on the real document store: optimistic concurrency, the outbox and its sweeper,
and idempotent handling of a redelivered event."""

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from services.routing.domain import DEMO_DIRECTORY, Decision, decide
from services.routing.handlers import route_opinion
from services.routing.main import routing_ports
from shared.events import CloudEvent, EventData, OpinionReceived, utcnow
from shared.messaging import EventBus
from shared.settings import Settings
from shared.store import (
    Aggregate,
    Document,
    GroupCommit,
    KeptRepository,
    Repository,
    VersionConflict,
    retry_on_conflict,
    upsert_by_id,
)
from tools.demo import wait_for

from .test_messaging import received


async def collecting(make_bus: Callable[[str], EventBus]) -> list[CloudEvent]:
    """Start a followup bus that records the assignment events it receives."""
    got: list[CloudEvent] = []

    async def record(event: CloudEvent) -> None:
        got.append(event)

    followup = make_bus("followup")
    followup.consume(record)
    await followup.start()
    return got


async def test_second_writer_with_a_stale_version_gets_a_conflict(
    isolated: Settings, mongo: AsyncMongoClient[Document], make_bus: Callable[[str], EventBus]
) -> None:
    bus = make_bus("routing")
    await bus.start()
    repo = Repository(mongo[isolated.database("routing")].decisions, Decision, bus)
    opinion = OpinionReceived.model_validate(received("并发").data)
    decision, _ = decide(opinion, DEMO_DIRECTORY, None, "—", utcnow())
    assert await repo.add(decision, [])
    assert not await repo.add(decision, [])
    first, second = await repo.get(decision.id), await repo.get(decision.id)
    assert first is not None and second is not None
    first.lead = "ecology"
    await repo.save(first, [])
    second.lead = "transport"
    with pytest.raises(VersionConflict):
        await repo.save(second, [])
    stored = await repo.get(decision.id)
    assert stored is not None and stored.lead == "ecology"


async def test_sweeper_publishes_events_a_crash_left_in_the_outbox(
    isolated: Settings, mongo: AsyncMongoClient[Document], make_bus: Callable[[str], EventBus]
) -> None:
    got = await collecting(make_bus)
    routing = make_bus("routing")
    await routing.start()
    collection = mongo[isolated.database("routing")].decisions
    repo = Repository(collection, Decision, routing)
    opinion = OpinionReceived.model_validate(received("遗留").data)
    opinion = opinion.model_copy(update={"category_hint": "交通运输"})

    decision, events = decide(opinion, DEMO_DIRECTORY, None, "—", utcnow())
    event = CloudEvent.wrap("/test", events[0])
    event.time = utcnow() - timedelta(minutes=1)
    # The broker is unreachable right after the state is stored: publishing fails, but the
    # change stands and its event waits in the outbox.
    unconnected = Repository(collection, Decision, make_bus("routing"))
    assert await unconnected.add(decision, [event])
    await asyncio.sleep(0.5)
    assert got == []

    assert await repo.sweep(timedelta(seconds=5)) == 1
    await wait_for(lambda: [e.id for e in got] == [event.id], "the swept event")
    stored = await collection.find_one({"_id": decision.id})
    assert stored is not None and stored["outbox"] == {}
    assert await repo.sweep(timedelta(seconds=5)) == 0
    assert await repo.pending.count_documents({}) == 0


async def two_writers(
    collection: AsyncCollection[Document], make_bus: Callable[[str], EventBus], text: str
) -> tuple[Repository[Decision], Repository[Decision], Decision, list[EventData]]:
    """A routing decision stored by ``live``; ``stranded`` writes it too, but cannot publish."""
    routing = make_bus("routing")
    await routing.start()
    live = Repository(collection, Decision, routing)
    stranded = Repository(collection, Decision, make_bus("routing"))
    opinion = OpinionReceived.model_validate(received(text).data)
    opinion = opinion.model_copy(update={"category_hint": "交通运输"})
    decision, events = decide(opinion, DEMO_DIRECTORY, None, "—", utcnow())
    assert await live.add(decision, [])
    return live, stranded, decision, events


async def test_a_writer_that_could_not_publish_keeps_its_events_for_the_sweeper(
    isolated: Settings, mongo: AsyncMongoClient[Document], make_bus: Callable[[str], EventBus]
) -> None:
    """Two writers of one aggregate: the second one's flush must not take away what the sweeper
    needs to find the first one's unpublished events."""
    got = await collecting(make_bus)
    collection = mongo[isolated.database("routing")].decisions
    live, stranded, decision, events = await two_writers(collection, make_bus, "两次写入")

    first = CloudEvent.wrap("/test", events[0])
    first.time = utcnow() - timedelta(minutes=1)
    await stranded.save(decision, [first])
    second = CloudEvent.wrap("/test", events[0])
    await live.save(decision, [second])
    await wait_for(lambda: [e.id for e in got] == [second.id], "the second writer's event")

    async def only_first_left() -> bool:
        stored = await collection.find_one({"_id": decision.id})
        return stored is not None and list(stored["outbox"]) == [first.id]

    # The live writer's cleanup rides with a later write or goes within later_within.
    await wait_for(only_first_left, "the second writer's cleanup")
    assert await live.sweep(timedelta(seconds=5)) == 1
    await wait_for(lambda: [e.id for e in got] == [second.id, first.id], "the stranded event")
    stored = await collection.find_one({"_id": decision.id})
    assert stored is not None and stored["outbox"] == {}
    assert await live.pending.count_documents({}) == 0


async def test_a_held_message_stands_for_the_outbox_marker(
    isolated: Settings, mongo: AsyncMongoClient[Document], make_bus: Callable[[str], EventBus]
) -> None:
    """A consumer's save (held_message) writes no marker: its redelivery republishes what a
    crash left in the outbox; if publishing fails, the marker is written for the sweeper."""
    got = await collecting(make_bus)
    collection = mongo[isolated.database("routing")].decisions
    live, stranded, decision, events = await two_writers(collection, make_bus, "消费者保存")

    sent = CloudEvent.wrap("/test", events[0])
    await live.save(decision, [sent], held_message=True)
    assert await live.pending.count_documents({}) == 0  # no marker, not even for a while
    await wait_for(lambda: [e.id for e in got] == [sent.id], "the saved event")

    async def outbox_empty() -> bool:
        stored = await collection.find_one({"_id": decision.id})
        return stored is not None and stored["outbox"] == {}

    await wait_for(outbox_empty, "the cleanup")
    # A crash after storing, before publishing: the redelivered message's handler republishes.
    left = CloudEvent.wrap("/test", events[0])
    await collection.update_one(
        {"_id": decision.id}, {"$set": {f"outbox.{left.id}": left.model_dump(mode="json")}}
    )
    await live.republish(decision.id)
    await wait_for(lambda: [e.id for e in got] == [sent.id, left.id], "the republished event")
    await wait_for(outbox_empty, "the republished event's cleanup")
    # Publishing fails: marked after all, and the sweeper sends it.
    failed = CloudEvent.wrap("/test", events[0])
    failed.time = utcnow() - timedelta(minutes=1)
    current = await stranded.get(decision.id)
    assert current is not None
    await stranded.save(current, [failed], held_message=True)
    assert await live.pending.count_documents({}) == 1
    assert await live.sweep(timedelta(seconds=5)) == 1
    await wait_for(lambda: [e.id for e in got][-1:] == [failed.id], "the swept event")
    assert len(got) == 3
    assert await live.pending.count_documents({}) == 0


async def test_a_save_that_publishes_claims_the_cleanup_version_with_its_own(
    isolated: Settings, mongo: AsyncMongoClient[Document], make_bus: Callable[[str], EventBus]
) -> None:
    """A save with events claims its version and its outbox cleanup's in one command; writers
    that publish at once lose no update and leave nothing in the outbox; a writer whose
    publishing failed frees the cleanup's version at once, not after the claim's lease."""
    got = await collecting(make_bus)
    collection = mongo[isolated.database("routing")].decisions
    live, stranded, decision, events = await two_writers(collection, make_bus, "预先认领")

    before = _round_trips("insert", "version_claims")
    await live.save(decision, [CloudEvent.wrap("/test", events[0])])
    assert _round_trips("insert", "version_claims") == before + 1
    stored = await collection.find_one({"_id": decision.id})
    assert stored is not None and (stored["version"], stored["outbox"]) == (3, {})

    async def relabel(n: int) -> None:
        current = await live.get(decision.id)
        assert current is not None
        current.explanation = f"第{n}次"
        await live.save(current, [CloudEvent.wrap("/test", events[0])])

    await asyncio.gather(*(retry_on_conflict(partial(relabel, n), 30) for n in range(8)))
    await wait_for(lambda: len(got) == 9, "every writer's event")
    stored = await collection.find_one({"_id": decision.id})
    assert stored is not None and (stored["version"], stored["outbox"]) == (3 + 2 * 8, {})
    assert len({e.id for e in got}) == 9

    failed = CloudEvent.wrap("/test", events[0])
    current = await stranded.get(decision.id)
    assert current is not None
    await stranded.save(current, [failed])  # stored, not published
    stored = await collection.find_one({"_id": decision.id})
    assert stored is not None and (stored["version"], list(stored["outbox"])) == (20, [failed.id])
    after = await live.get(decision.id)
    assert after is not None
    after.explanation = "发布失败之后"
    await live.save(after, [])  # no VersionConflict: the cleanup's version 21 is free
    assert (await live.get(decision.id) or after).version == 21


async def test_redelivered_opinion_is_routed_once(
    isolated: Settings, mongo: AsyncMongoClient[Document], make_bus: Callable[[str], EventBus]
) -> None:
    got = await collecting(make_bus)
    routing = make_bus("routing")
    await routing.start()
    ports = routing_ports(mongo[isolated.database("routing")], routing, 3.0)
    repo = ports.decisions
    opinion = OpinionReceived.model_validate(received("重复投递").data)
    # The office's category hint makes the router assign without a trained model.
    opinion = opinion.model_copy(update={"category_hint": "交通运输"})

    await asyncio.gather(route_opinion(opinion, ports), route_opinion(opinion, ports))
    await route_opinion(opinion, ports)
    routed = await repo.get(opinion.opinion_id)
    assert routed is not None and routed.lead == "transport"

    await wait_for(lambda: got, "the assignment")
    await asyncio.sleep(0.5)
    assert len(got) == 1
    assert await mongo[isolated.database("routing")].decisions.count_documents({}) == 1

    async def outbox_empty() -> bool:
        stored = await repo.collection.find_one({"_id": opinion.opinion_id})
        return stored is not None and stored["outbox"] == {}

    await wait_for(outbox_empty, "the outbox cleared after publishing")


class Tally(Aggregate):
    count: int = 0


async def test_concurrent_writers_lose_no_update(
    isolated: Settings, mongo: AsyncMongoClient[Document], make_bus: Callable[[str], EventBus]
) -> None:
    repo = Repository(mongo[isolated.database("routing")].tallies, Tally, make_bus("routing"))
    assert await repo.add(Tally(id="t1"), [])

    async def increment() -> None:
        tally = await repo.get("t1")
        assert tally is not None
        tally.count += 1
        await repo.save(tally, [])

    await asyncio.gather(*(retry_on_conflict(increment, attempts=30) for _ in range(20)))
    stored = await repo.get("t1")
    assert stored is not None and stored.count == 20 and stored.version == 21


async def test_kept_reads_see_own_writes_at_once_and_others_within_the_keeping_time(
    isolated: Settings, mongo: AsyncMongoClient[Document], make_bus: Callable[[str], EventBus]
) -> None:
    collection = mongo[isolated.database("notification")].tallies
    bus = make_bus("notification")
    here = KeptRepository(collection, Tally, bus, kept_for=timedelta(seconds=0.5))
    elsewhere = Repository(collection, Tally, bus)  # another replica
    assert await here.get("t1") is None
    assert await elsewhere.add(Tally(id="t1", count=1), [])
    assert await here.get("t1") is None  # kept: not seen yet
    await asyncio.sleep(0.5)
    seen = await here.get("t1")
    assert seen is not None and seen.count == 1
    seen.count = 99  # changing what was read does not change what is kept
    assert (await here.get("t1") or Tally(id="?")).count == 1

    stale = await elsewhere.get("t1")
    assert stale is not None
    stale.count = 2
    await elsewhere.save(stale, [])  # version 2, while version 1 is kept here

    async def increment() -> None:
        tally = await here.get("t1")
        assert tally is not None
        tally.count += 10
        await here.save(tally, [])

    # The first try writes on the kept version and conflicts; the retry reads the stored one.
    await retry_on_conflict(increment)
    assert (await here.get("t1") or Tally(id="?")).count == 12  # its own write, at once
    stored = await elsewhere.get("t1")
    assert stored is not None and (stored.count, stored.version) == (12, 3)


async def test_lookups_by_id_use_an_index_on_the_local_ferretdb(
    isolated: Settings, mongo: AsyncMongoClient[Document]
) -> None:
    """FerretDB 1.24 filters by ``_ferretdb_sjson->'$._id'`` but indexes ``->"_id"``; the
    local stack's index keeper adds the index its lookups can use (ADR 0005)."""
    name = isolated.database("intake")
    await mongo[name].opinions.insert_one({"_id": "SQ-1", "title": "路灯不亮"})
    path = Path(__file__).parents[2] / "var" / "ferretdb" / f"{name}.sqlite"
    if not path.exists():
        pytest.skip("the document store is not the local FerretDB on SQLite")

    def plan() -> str | None:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            (table,) = db.execute(
                "SELECT table_name FROM _ferretdb_collections WHERE name = 'opinions'"
            ).fetchone()
            # The statement FerretDB's SQLite backend runs for find/update/delete by _id.
            (*_, detail) = db.execute(
                f'EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM "{table}" '
                "WHERE _ferretdb_sjson->'$._id' = ?",
                ('"SQ-1"',),
            ).fetchone()
        return detail if "USING INDEX" in detail else None

    assert "SCAN" not in await wait_for(plan, "the _id lookup index", within=15)
    assert (await mongo[name].opinions.find_one({"_id": "SQ-1"}) or {})["title"] == "路灯不亮"


def _round_trips(command: str, collection: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "minyi_store_command_seconds_count", {"command": command, "collection": collection}
        )
        or 0.0
    )


async def test_concurrent_writes_go_out_together_and_each_gets_its_own_outcome(
    isolated: Settings, mongo: AsyncMongoClient[Document]
) -> None:
    collection = mongo[isolated.database("intake")][f"grouped_{uuid.uuid4().hex[:6]}"]
    grouped = GroupCommit(collection)
    await grouped.insert({"_id": "taken", "n": 0})
    before = _round_trips("insert", collection.name)
    outcomes = await asyncio.gather(
        *(grouped.insert({"_id": name, "n": 1}) for name in ("a", "taken", "b", "a")),
        return_exceptions=True,
    )
    assert _round_trips("insert", collection.name) == before + 1
    assert [type(o).__name__ for o in outcomes] == [
        "NoneType",
        "DuplicateKeyError",
        "NoneType",
        "DuplicateKeyError",
    ]
    before = _round_trips("update", collection.name)
    await asyncio.gather(
        grouped.update("a", {"$set": {"n": 2}}),
        grouped.update("b", {"$set": {"n": 3}}),
        grouped.update("new", {"$set": {"n": 4}}, upsert=True),
        grouped.delete("taken"),
    )
    # The upsert goes in an update command of its own (GroupCommit._command says why).
    assert _round_trips("update", collection.name) == before + 2
    stored = {doc["_id"]: doc["n"] async for doc in collection.find()}
    assert stored == {"a": 2, "b": 3, "new": 4}


async def test_concurrent_first_upserts_of_one_document_all_land(
    isolated: Settings, mongo: AsyncMongoClient[Document]
) -> None:
    """Writers creating the same new document at once (two replicas upserting a month's KPI
    sums, say): FerretDB 1.24 answers some of them with a DuplicateKeyError, which MongoDB
    would have retried itself; through ``upsert_by_id`` and group commits every one lands."""
    collection = mongo[isolated.database("intake")][f"upserts_{uuid.uuid4().hex[:6]}"]
    replicas = [GroupCommit(collection), GroupCommit(collection)]
    for round_ in range(15):
        key = f"doc-{round_}"
        await asyncio.gather(
            *(
                upsert_by_id(collection.update_one, {"_id": key}, {"$set": {"u": i}})
                for i in range(3)
            ),
            *(upsert_by_id(collection.replace_one, {"_id": f"{key}r"}, {"r": i}) for i in range(3)),
            *(r.update(f"{key}g", {"$set": {"g": 1}}, upsert=True) for r in replicas),
        )
    stored = {doc["_id"] async for doc in collection.find()}
    assert stored == {f"doc-{r}{s}" for r in range(15) for s in ("", "r", "g")}


async def test_hundreds_of_concurrent_updates_of_stored_documents_do_not_wedge_the_store(
    isolated: Settings, mongo: AsyncMongoClient[Document]
) -> None:
    """FerretDB 1.24 hangs a database on one command updating 101 stored documents, or three
    commands of 60 at once (shared.store.UPDATES_PER_COMMAND says why): group commits of that
    many updates, on three collections of one database at once, all land."""
    db = mongo[isolated.database("intake")]
    groups = [GroupCommit(db[f"wedge_{n}_{uuid.uuid4().hex[:6]}"]) for n in range(3)]
    for group in groups:
        await group.collection.insert_many([{"_id": f"d{i}", "n": 0} for i in range(150)])
    before = [_round_trips("update", group.collection.name) for group in groups]
    await asyncio.wait_for(
        asyncio.gather(
            *(group.update(f"d{i}", {"$set": {"n": i}}) for group in groups for i in range(150))
        ),
        timeout=120,
    )
    for group, sent in zip(groups, before, strict=True):
        stored = {doc["_id"]: doc["n"] async for doc in group.collection.find()}
        assert stored == {f"d{i}": i for i in range(150)}
        # Still group commits: ten commands of 15-16 updates, not 150 round trips.
        assert _round_trips("update", group.collection.name) - sent <= 150 // 16 + 2


async def test_a_change_starts_from_what_this_process_stored_and_a_stale_copy_conflicts(
    isolated: Settings, mongo: AsyncMongoClient[Document], make_bus: Callable[[str], EventBus]
) -> None:
    collection = mongo[isolated.database("followup")].tallies
    bus = make_bus("followup")
    here, elsewhere = Repository(collection, Tally, bus), Repository(collection, Tally, bus)
    assert await here.add(Tally(id="t1", count=1), [])
    other = await elsewhere.get("t1")
    assert other is not None
    other.count = 5
    await elsewhere.save(other, [])  # another replica's write: not known here

    async def increment() -> int:
        tally = await here.get_to_change("t1")
        assert tally is not None
        tally.count += 1
        await here.save(tally, [])
        return tally.count

    stale = await here.get_to_change("t1")
    assert stale is not None and (stale.count, stale.version) == (1, 1)  # no read
    # The stale copy's save conflicts; the retry reads the store and counts on from 5.
    assert await retry_on_conflict(increment) == 6
    stored = await here.get("t1")
    assert stored is not None and (stored.count, stored.version) == (6, 3)
    # What it stored last is what the next change starts from.
    kept = await here.get_to_change("t1")
    assert kept is not None and (kept.count, kept.version) == (6, 3)
