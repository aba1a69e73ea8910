"""Tracking numbers stay unique when many offices register at the same moment."""

import asyncio

from pymongo import AsyncMongoClient

from services.intake.adapters import HINT_EVERY, TrackingNumbers
from services.intake.domain import tracking_number
from shared.settings import Settings
from shared.store import Document


async def test_concurrent_registrations_get_distinct_consecutive_numbers(
    isolated: Settings, mongo: AsyncMongoClient[Document]
) -> None:
    numbers = TrackingNumbers(mongo[isolated.database("intake")])
    taken = await asyncio.gather(*(numbers.next(2026, f"o{i}") for i in range(30)))
    assert sorted(taken) == list(range(1, 31))
    # Each number leads to the opinion it was taken for.
    for i, number in enumerate(taken):
        assert await numbers.opinion_of(tracking_number(2026, number)) == f"o{i}"
    assert await numbers.next(2026, "o30") == 31
    assert await numbers.next(2027, "o31") == 1


async def test_a_restarted_process_continues_after_the_last_number_taken(
    isolated: Settings, mongo: AsyncMongoClient[Document]
) -> None:
    db = mongo[isolated.database("intake")]
    before_restart = TrackingNumbers(db)
    for i in range(HINT_EVERY + 5):  # the stored hint lags behind the last five
        await before_restart.next(2026, f"o{i}")
    assert await TrackingNumbers(db).next(2026, "later") == HINT_EVERY + 6
