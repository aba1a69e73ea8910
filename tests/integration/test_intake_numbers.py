"""Tracking numbers stay unique when many offices register at the same moment."""

import asyncio

from pymongo import AsyncMongoClient

from services.intake.adapters import TrackingNumbers
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
