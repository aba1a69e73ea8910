"""``minyi bench followup``: the cost of the timer machinery and of working-day arithmetic,
as ratios to a baseline measured in the same run on the same store."""

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.followup.adapters import SystemClock, Timers
from services.followup.domain import Timer, TimerKind
from services.followup.workdays import Span, WorkCalendar
from shared.settings import get_settings
from shared.store import mongo_client

TIMERS = 300
DEADLINES = 5000


def run(output: Path) -> dict[str, Any]:
    """Claim-and-finish of due timers vs reads by ``_id``; deadlines vs plain additions."""
    return {**asyncio.run(_timers()), **_deadlines()}


async def _timers() -> dict[str, Any]:
    settings = get_settings()
    mongo = mongo_client(settings)
    db = mongo[f"{settings.db_prefix}bench{uuid.uuid4().hex[:6]}_followup"]
    store = Timers(
        db.timers, db.timer_claims, timedelta(seconds=60), db.timer_agenda, SystemClock()
    )
    start = datetime(2026, 10, 1, tzinfo=UTC)
    timers = [
        Timer(
            case_id=f"c{n}", department="housing", kind=TimerKind.URGE, generation=1, fire_at=start
        )
        for n in range(TIMERS)
    ]
    try:
        await store.schedule(timers)
        began = time.perf_counter()
        for t in timers:
            await db.timers.find_one({"_id": t.id})
        baseline = time.perf_counter() - began
        began = time.perf_counter()
        fired = 0
        while due := await store.due(start, 100):
            for t in due:
                attempt = await store.claim(t, "bench")
                if attempt is not None:
                    await store.done(t, attempt)
                    fired += 1
        claimed = time.perf_counter() - began
    finally:
        await mongo.drop_database(db.name)
        await mongo.close()
    return {
        "timers": fired,
        "read_by_id_ms": round(baseline / TIMERS * 1000, 3),
        "claim_and_finish_ms": round(claimed / TIMERS * 1000, 3),
        "claim_vs_read_ratio": round(claimed / baseline, 2),
    }


def _deadlines() -> dict[str, Any]:
    calendar = WorkCalendar()
    start = datetime(2026, 9, 29, 2, tzinfo=UTC)
    span = Span(amount=15, unit="working_days")
    began = time.perf_counter()
    for n in range(DEADLINES):
        start + timedelta(days=15 + n % 3)
    baseline = time.perf_counter() - began
    began = time.perf_counter()
    for n in range(DEADLINES):
        calendar.due(start + timedelta(days=n % 3), span)
    working = time.perf_counter() - began
    return {
        "deadlines": DEADLINES,
        "working_day_deadline_us": round(working / DEADLINES * 1e6, 2),
        "deadline_vs_timedelta_ratio": round(working / baseline, 1),
    }
