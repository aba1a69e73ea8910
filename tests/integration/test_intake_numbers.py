"""Tracking numbers stay unique when many offices register at the same moment."""

import asyncio

from pymongo import AsyncMongoClient

from services.intake.adapters import HINT_EVERY, TrackingNumbers
from shared.settings import Settings
from shared.store import Document


async def test_concurrent_registrations_get_distinct_consecutive_numbers(
    isolated: Settings, mongo: AsyncMongoClient[Document]
) -> None:
    numbers = TrackingNumbers(mongo[isolated.database("intake")])
    taken = await asyncio.gather(*(numbers.next(2026) for _ in range(30)))
    assert sorted(taken) == list(range(1, 31))
    assert await numbers.next(2026) == 31
    assert await numbers.next(2027) == 1


async def test_a_restarted_process_continues_after_the_last_number_taken(
    isolated: Settings, mongo: AsyncMongoClient[Document]
) -> None:
    db = mongo[isolated.database("intake")]
    before_restart = TrackingNumbers(db)
    for _ in range(HINT_EVERY + 5):  # the stored hint lags behind the last five
        await before_restart.next(2026)
    assert await TrackingNumbers(db).next(2026) == HINT_EVERY + 6
