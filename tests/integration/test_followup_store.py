"""Followup's storage adapters on the real document store: timers stored once however often
they are scheduled, and loaded holiday years that the next read sees."""

from datetime import date, time, timedelta

from pymongo import AsyncMongoClient

from services.followup.adapters import HOT_WINDOW, Calendars, SystemClock, Timers
from services.followup.domain import Timer, TimerKind
from services.followup.workdays import YearCalendar
from shared.events import utcnow
from shared.settings import Settings
from shared.store import Document


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
