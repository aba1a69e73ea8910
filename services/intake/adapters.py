"""Intake storage: tracking numbers, idempotency claims, import jobs, and the
reads that rebuild the duplicate index and export an office's opinions."""

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.paging import before_filter
from shared.store import Document, GroupCommit, upsert_by_id

from .domain import Opinion, OpinionStatus, tracking_number

HINT_EVERY = 20


class TrackingNumbers:
    """Per-year sequence of tracking numbers, each taken with the opinion it belongs to: the
    map from tracking number to opinion id for the public status lookup (read by ``_id``)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.counters = db.counters
        self.taken = GroupCommit(db.tracking_numbers)
        self.lookups = db.tracking_numbers
        # Where to start looking, per year: concurrent requests each take the next one in
        # memory (so their inserts go out together) instead of all racing for the same number.
        self.lock = asyncio.Lock()
        self.last: dict[int, int] = {}

    async def next(self, year: int, opinion_id: str) -> int:
        """The next free number of the year, taken for ``opinion_id``. Each number is taken
        by inserting it, because a unique ``_id`` is atomic on FerretDB 1.24 and ``$inc`` is
        not (concurrent increments are lost there). The counter document is only a hint where
        to start looking. A number taken for an opinion that is then not stored (a concurrent
        request with the same Idempotency-Key won) leads the lookup to no opinion."""
        counter = f"tracking-{year}"
        if year not in self.last:
            async with self.lock:
                if year not in self.last:
                    hint = await self.counters.find_one({"_id": counter})
                    self.last[year] = int(hint["seq"]) if hint else 0
        while True:
            self.last[year] = number = self.last[year] + 1
            try:
                tracking_no = tracking_number(year, number)
                await self.taken.insert({"_id": tracking_no, "opinion_id": opinion_id})
                break
            except DuplicateKeyError:  # another replica took it
                continue
        # The hint is moved on every HINT_EVERY numbers (not each: one round trip less per
        # opinion); a restarted process walks past at most that many taken numbers.
        if number % HINT_EVERY == 0:
            await upsert_by_id(
                self.counters.update_one, {"_id": counter}, {"$max": {"seq": number}}
            )
        return number

    async def opinion_of(self, tracking_no: str) -> str | None:
        doc = await self.lookups.find_one({"_id": tracking_no})
        return None if doc is None else str(doc["opinion_id"])


class Claim(BaseModel):
    """The first request with an Idempotency-Key claims an opinion id and tracking number;
    a retry finds the claim and answers with the same opinion."""

    opinion_id: str
    tracking_no: str
    fingerprint: str


class RequestClaims:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.claims = db.request_claims
        self.writes = GroupCommit(db.request_claims)

    async def claim(self, office_id: str, key: str, wanted: Claim) -> Claim:
        """Store ``wanted`` under the office's key, or return the claim stored first."""
        _id = f"{office_id}:{key}"
        try:
            await self.writes.insert({"_id": _id, **wanted.model_dump()})
            return wanted
        except DuplicateKeyError:
            doc = await self.claims.find_one({"_id": _id})
            assert doc is not None  # claims are never deleted
            return Claim.model_validate(doc)

    async def find(self, office_id: str, key: str) -> Claim | None:
        doc = await self.claims.find_one({"_id": f"{office_id}:{key}"})
        return None if doc is None else Claim.model_validate(doc)


# What the duplicate index needs of a stored opinion.
INDEXED_FIELDS = ("received_at", "submission.title", "submission.content", "submission.location")


async def open_opinions(db: AsyncDatabase[Document], since: datetime) -> AsyncIterator[Document]:
    """Open opinions received since ``since``, only their INDEXED_FIELDS (a store whose
    duplicate entries were never built)."""
    query = {"status": OpinionStatus.OPEN.value, "received_at": {"$gte": since}}
    projection = dict.fromkeys(INDEXED_FIELDS, 1)
    async for doc in db.opinions.find(query, projection).batch_size(2000):
        yield doc


class DuplicateEntries:
    """附议 detection's entries, one small document per indexed opinion (``_id`` = its id:
    district, street, time received and signature, ~0.6 kB), written beside the index in
    memory, so that a start reads these instead of every open opinion whole (FerretDB parses
    each stored document in full: reading opinions took 1.3 ms each here, 100,000 in 2 min)."""

    BUILT = "duplicate-entries-built"

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db.duplicate_entries
        self.writes = GroupCommit(db.duplicate_entries)
        self.counters = db.counters

    async def put(
        self, opinion_id: str, district: str, street: str | None, at: datetime, sig: bytes
    ) -> None:
        entry = {"district": district, "street": street, "received_at": at, "signature": sig}
        await self.writes.update(opinion_id, {"$set": entry}, upsert=True)

    async def forget(self, opinion_id: str) -> None:
        await self.writes.delete(opinion_id)

    async def since(self, since: datetime) -> AsyncIterator[Document]:
        async for doc in self.collection.find({"received_at": {"$gte": since}}).batch_size(5000):
            yield doc

    async def built(self) -> bool:
        """Whether the entries were made for every open opinion (a store from before they
        existed has none: they are made once from the opinions)."""
        return await self.counters.find_one({"_id": self.BUILT}) is not None

    async def mark_built(self) -> None:
        with contextlib.suppress(DuplicateKeyError):  # two replicas made them at once
            await self.counters.insert_one({"_id": self.BUILT})


async def opinion_batches(
    db: AsyncDatabase[Document], office_id: str | None, size: int
) -> AsyncIterator[list[Document]]:
    """An office's opinions (all offices' for ``None``) in batches of ``size`` stored
    documents, in id order (the order they were registered in), for a streamed export."""
    query: Document = {} if office_id is None else {"office_id": office_id}
    batch: list[Document] = []
    async for doc in db.opinions.find(query, {"outbox": 0}).sort("_id", 1).batch_size(size):
        batch.append(doc)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def opinion_page(
    db: AsyncDatabase[Document],
    office_id: str | None,
    status: OpinionStatus | None,
    text: str | None,
    limit: int,
    before: str | None,
) -> list[Opinion]:
    """我的意见: an office's opinions (all offices' for ``None``), newest first, at most
    ``limit`` older than the ``before`` id; ``text`` in the title or the tracking number."""
    query: Document = {} if office_id is None else {"office_id": office_id}
    if status is not None:
        query["status"] = status.value
    query.update(before_filter(before))
    if text:
        words = re.escape(text)
        query["$or"] = [{"submission.title": {"$regex": words}}, {"tracking_no": text}]
    cursor = db.opinions.find(query, {"outbox": 0}).sort("_id", -1).limit(limit)
    return [Opinion.model_validate(doc) async for doc in cursor]


class ImportJobs:
    """Import jobs (one document each, progress and per-row report inside) and their rows,
    kept in chunks beside the job so a restarted process can finish it."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.jobs = db.import_jobs
        self.chunks = db.import_chunks

    async def create(self, job: Document, chunks: list[list[Document]]) -> None:
        # Rows first: a job document always has all its rows stored.
        for n, rows in enumerate(chunks):
            await self.chunks.replace_one({"_id": f"{job['_id']}:{n}"}, {"rows": rows}, upsert=True)
        await self.jobs.insert_one(job)

    async def get(self, job_id: str) -> Document | None:
        return await self.jobs.find_one({"_id": job_id})

    async def rows(self, job_id: str, chunk: int) -> list[Document]:
        doc = await self.chunks.find_one({"_id": f"{job_id}:{chunk}"})
        return [] if doc is None else list(doc["rows"])

    async def progress(self, job_id: str, fields: dict[str, Any]) -> None:
        await self.jobs.update_one({"_id": job_id}, {"$set": fields})

    async def unfinished(self) -> list[str]:
        return [doc["_id"] async for doc in self.jobs.find({"status": "running"}, {"_id": 1})]
