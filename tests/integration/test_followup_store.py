"""Followup's storage on the real document store: timers stored once however often they are
scheduled, loaded holiday years that the next read sees, a case opened once however
often its assignment comes, and KPI tables read while their facts are counted."""

import asyncio
from datetime import date, datetime, time, timedelta
from typing import Literal

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from services.followup.adapters import HOT_WINDOW, Calendars, Kpis, SystemClock, Timers
from services.followup.domain import Timer, TimerKind
from services.followup.handlers import FollowupPorts, open_case
from services.followup.main import create_app
from services.followup.workdays import YearCalendar
from shared.events import OpinionAssigned, utcnow
from shared.settings import Settings
from shared.store import Document

from .test_store import _round_trips


async def test_timers_scheduled_twice_are_stored_once_in_the_hot_set_or_the_agenda(
    isolated: Settings, mongo: AsyncMongoClient[Document]
) -> None:
    db = mongo[isolated.database("followup")]
    timers = Timers(
        db.timers, db.timer_claims, timedelta(seconds=30), db.timer_agenda, SystemClock()
    )
    now = utcnow()
    soon = Timer(
        case_id="c1", department="housing", kind=TimerKind.SIGN_DUE, generation=1, fire_at=now
    )
    later = soon.model_copy(update={"kind": TimerKind.REPLY_DUE, "fire_at": now + 2 * HOT_WINDOW})
    await timers.schedule([soon])
    await timers.schedule([soon, later])  # a redelivered assignment schedules them again

    assert [d["_id"] async for d in db.timers.find({})] == [soon.id]
    assert [d["_id"] async for d in db.timer_agenda.find({})] == [later.id]
    assert [t.id for t in await timers.due(now + timedelta(seconds=1), 10)] == [soon.id]


async def test_a_loaded_year_is_read_back_at_once_by_the_replica_that_loaded_it(
    isolated: Settings, mongo: AsyncMongoClient[Document]
) -> None:
    calendars = Calendars(mongo[isolated.database("followup")].calendars, time(9))
    assert await calendars.get(2099) is None  # remembered as unknown for a while
    year = YearCalendar(year=2099, holidays=[date(2099, 1, 1)], workdays=[date(2099, 1, 3)])
    await calendars.put(year)
    assert await calendars.get(2099) == year


def _assigned(department: str, role: Literal["lead", "co"]) -> OpinionAssigned:
    return OpinionAssigned(
        opinion_id="op-open",
        department=department,
        tracking_no="SQ-2026-000001",
        office_id="office-a",
        title="小区供水压力不足",
        department_name=department,
        role=role,
        category="供水",
        urgency="timeliness",
        explanation="测试",
        received_at=utcnow(),
    )


async def _timers(db: AsyncDatabase[Document]) -> dict[str, datetime]:
    """Every stored timer (hot set and agenda): id → fire time."""
    found: dict[str, datetime] = {}
    for collection in (db.timers, db.timer_agenda):
        found |= {d["_id"]: d["fire_at"] async for d in collection.find({})}
    return found


async def test_an_assignment_opens_its_case_once_however_often_it_comes(
    isolated: Settings, mongo: AsyncMongoClient[Document]
) -> None:
    """open_case inserts a new case without reading first; a redelivered 交办 changes nothing
    twice, and stores again the timers a crash between the case and its timers lost."""
    db = mongo[isolated.database("followup")]
    p: FollowupPorts = create_app(isolated).state.ports
    lead = _assigned("water", "lead")
    await open_case("ev-1", lead, p)
    stored = await db.cases.find_one({"_id": "op-open"})
    assert stored is not None and stored["version"] == 1
    timers = await _timers(db)
    assert timers and all(t.startswith("op-open:water:") for t in timers)

    await open_case("ev-1", lead, p)  # redelivered
    again = await db.cases.find_one({"_id": "op-open"})
    assert again is not None and again["version"] == 1
    assert again["timeline"] == stored["timeline"]
    assert await _timers(db) == timers

    # A crash after the insert lost the timers, and one of them had acted: the redelivery
    # stores the others again, with the fire times the case's assignment has.
    acted = sorted(timers)[0]
    await db.cases.update_one({"_id": "op-open"}, {"$set": {f"handled.{acted}": True}})
    await db.timers.delete_many({})
    await db.timer_agenda.delete_many({})
    p = create_app(isolated).state.ports  # the restarted process
    await open_case("ev-1", lead, p)
    assert await _timers(db) == {t: at for t, at in timers.items() if t != acted}

    # A co-handler's 交办 on the existing case: read, assigned once, its own timers.
    co = _assigned("housing", "co")
    await open_case("ev-2", co, p)
    await open_case("ev-2", co, p)
    case = await db.cases.find_one({"_id": "op-open"})
    assert case is not None and case["version"] == 2
    assert set(case["assignments"]) == {"water", "housing"}
    assert any(t.startswith("op-open:housing:") for t in await _timers(db))


async def test_kpi_tables_read_while_facts_are_counted_count_every_fact(
    isolated: Settings, mongo: AsyncMongoClient[Document]
) -> None:
    """Supervisors' screens asking for a new month's table at once while two replicas count
    its facts: no read fails (each makes the month's sums, first ones at the same moment),
    and once counting stops the table holds every fact. Several tables asked for at once in
    one replica cost one scan of the facts; a month with nothing counted costs none."""
    db = mongo[isolated.database("followup")]
    replicas = [Kpis(db.kpis, db.kpi_totals, refresh=timedelta(0)) for _ in range(2)]
    values = {"department": "housing", "office": "o1", "category": "城乡建设"}
    counting = True

    async def count(replica: Kpis, worker: int) -> None:
        for i in range(20):
            await replica.add(f"w{worker}-{i}", "2026-05", values, {"sign_due": 1})

    async def read(replica: Kpis) -> int:
        reads = 0
        while counting or not reads:
            await replica.table("department", "2026-05")
            reads += 1
        return reads

    # The first sums of a month, made by six replicas' reads at once.
    screens = [Kpis(db.kpis, db.kpi_totals, refresh=timedelta(0)) for _ in range(6)]
    for month in range(1, 13):
        await screens[0].add(f"m{month}", f"2025-{month:02}", values, {"sign_due": 1})
        await asyncio.gather(*(screen.table("all", f"2025-{month:02}") for screen in screens))
    readers = [asyncio.create_task(read(replicas[n % 2])) for n in range(6)]
    await asyncio.gather(*(count(replicas[w % 2], w) for w in range(6)))
    counting = False
    assert all(await asyncio.gather(*readers))
    [row] = await replicas[0].table("department", "2026-05")
    assert row["counters"] == {"sign_due": 120}

    # A screen asking for four tables at once after a change: one scan of the facts.
    await replicas[0].add("late", "2026-05", values, {"sign_due": 1})
    scans = _round_trips("find", "kpis")
    tables = await asyncio.gather(
        *(replicas[0].table(d, "2026-05") for d in ("all", "department", "office", "category"))
    )
    assert _round_trips("find", "kpis") == scans + 1
    assert [t[0]["counters"]["sign_due"] for t in tables] == [121] * 4
    # A month with nothing counted: no table, no scan, nothing stored.
    assert await replicas[0].table("all", "2024-02") == []
    assert _round_trips("find", "kpis") == scans + 1
    assert await db.kpi_totals.find_one({"_id": "month:2024-02"}) is None
