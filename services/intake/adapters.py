"""Intake storage: opinions and the tracking-number counter."""

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from shared.store import Document


class TrackingNumbers:
    """Per-year sequence, one atomic $inc on a counter document."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.counters = db.counters

    async def next(self, year: int) -> int:
        doc = await self.counters.find_one_and_update(
            {"_id": f"tracking-{year}"},
            {"$inc": {"seq": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None  # upsert with ReturnDocument.AFTER always returns one
        return int(doc["seq"])
