"""Routing storage: model versions (chunked bytes) with an ``_id``-addressed active pointer,
training datasets, staff-labelled examples, and the triage and dispute views.

Every read on a hot path is by ``_id``; the triage queue and the dispute list are small
projections kept beside the decisions, so listing them never scans all decisions."""

import asyncio
import contextlib
import json
import logging
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.events import new_id, utcnow
from shared.store import (
    Document,
    GroupCommit,
    Repository,
    VersionConflict,
    retry_on_conflict,
    upsert_by_id,
)

from .classifier import LabelledText, ModelFormatError, OpinionClassifier
from .domain import Decision
from .topics.domain import DAY_PART, Topic, TopicDay, TopicIndex, board_row

log = logging.getLogger("minyi.routing")

# Documents stay far below MongoDB's 16 MB limit.
CHUNK_BYTES = 4_000_000
# How often the live topic index asks whether staff moved opinions in another process.
MOVES_CHECKED_EVERY = timedelta(seconds=10)
ACTIVE_MODEL = "active_model"
MODEL_NUMBER = "model-number"
RETRAIN_CLAIM = "retrain_claim"


@dataclass(frozen=True)
class ActiveModel:
    version: str
    classifier: OpinionClassifier


def _chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]


class ModelStore:
    """Model versions and training datasets in the routing database.

    The running service keeps the active model in memory and looks at the active pointer at
    most every ``refresh_seconds``, so a newly activated model is picked up without restart."""

    def __init__(self, db: AsyncDatabase[Document], refresh_seconds: float = 3.0) -> None:
        self.db = db
        self.refresh_seconds = refresh_seconds
        self._cached: ActiveModel | None = None
        self._refused: str | None = None
        self._checked = float("-inf")
        self._lock = asyncio.Lock()

    async def _write_chunks(self, prefix: str, data: bytes) -> int:
        parts = _chunks(data)
        for i, part in enumerate(parts):
            await self.db.chunks.replace_one(
                {"_id": f"{prefix}:{i}"}, {"_id": f"{prefix}:{i}", "data": part}, upsert=True
            )
        return len(parts)

    async def _read_chunks(self, prefix: str, count: int) -> bytes:
        parts = []
        for i in range(count):
            doc = await self.db.chunks.find_one({"_id": f"{prefix}:{i}"})
            if doc is None:
                raise LookupError(f"{prefix} is missing chunk {i}")
            parts.append(bytes(doc["data"]))
        return b"".join(parts)

    async def save_dataset(self, rows: list[LabelledText]) -> str:
        """Keep the training rows so retraining can add staff corrections to them."""
        dataset_id = f"dataset-{utcnow():%Y%m%d%H%M%S%f}"
        data = zlib.compress(
            json.dumps(
                [[r.title, r.content, r.category] for r in rows], ensure_ascii=False
            ).encode()
        )
        chunks = await self._write_chunks(dataset_id, data)
        await self.db.datasets.insert_one({"_id": dataset_id, "rows": len(rows), "chunks": chunks})
        return dataset_id

    async def load_dataset(self, dataset_id: str) -> list[LabelledText]:
        meta = await self.db.datasets.find_one({"_id": dataset_id})
        if meta is None:
            raise LookupError(f"dataset {dataset_id} not found")
        rows = json.loads(zlib.decompress(await self._read_chunks(dataset_id, meta["chunks"])))
        return [LabelledText(title, content, category) for title, content, category in rows]

    async def save(self, classifier: OpinionClassifier, info: dict[str, Any]) -> str:
        """Store a new model version (not yet active); returns its name, e.g. ``v3``."""
        number = await self._claim_number()
        version = f"v{number}"
        data = await asyncio.to_thread(classifier.to_bytes)
        chunks = await self._write_chunks(f"model-{version}", data)
        await self.db.models.insert_one(
            {
                "_id": version,
                "number": number,
                "labels": classifier.labels,
                "bytes": len(data),
                "chunks": chunks,
                "created_at": utcnow(),
                **info,
            }
        )
        return version

    async def _claim_number(self) -> int:
        """The next model number, taken by inserting it: a unique ``_id`` is atomic on
        FerretDB 1.24 and ``$inc`` is not (two trainings finishing together could both get
        the same number). Numbers claimed by a save that failed are skipped."""
        versions = await self.versions()
        number = versions[0]["number"] if versions else 0
        while True:
            number += 1
            try:
                await self.db.state.insert_one({"_id": f"{MODEL_NUMBER}-{number}"})
                return number
            except DuplicateKeyError:
                continue

    async def activate(self, version: str) -> None:
        """Point every replica at ``version``; raises LookupError if it is not stored and
        ModelFormatError if its bytes are not a model (it is never activated)."""
        await self.load(version)
        await upsert_by_id(
            self.db.state.replace_one,
            {"_id": ACTIVE_MODEL},
            {"_id": ACTIVE_MODEL, "version": version, "since": utcnow()},
        )
        self._checked = float("-inf")

    async def active_version(self) -> str | None:
        pointer = await self.db.state.find_one({"_id": ACTIVE_MODEL})
        return None if pointer is None else str(pointer["version"])

    async def info(self, version: str) -> Document | None:
        return await self.db.models.find_one({"_id": version})

    async def versions(self) -> list[Document]:
        """Every stored model version, newest first (a handful of small documents)."""
        found = [doc async for doc in self.db.models.find({})]
        return sorted(found, key=lambda doc: doc["number"], reverse=True)

    async def load(self, version: str) -> OpinionClassifier:
        """The stored version; raises LookupError if it is missing and ModelFormatError if its
        bytes are anything but a model's arrays (nothing in them is run)."""
        meta = await self.info(version)
        if meta is None:
            raise LookupError(f"model {version} not found")
        data = await self._read_chunks(f"model-{version}", meta["chunks"])
        return await asyncio.to_thread(OpinionClassifier.from_bytes, data)

    async def active(self) -> ActiveModel | None:
        """The active model, reloaded when the pointer has moved since the last look.

        A pointer to a version that cannot be loaded is refused once and logged; routing goes
        on with the model it had (or none)."""
        if time.monotonic() - self._checked < self.refresh_seconds:
            return self._cached
        async with self._lock:
            if time.monotonic() - self._checked < self.refresh_seconds:
                return self._cached
            version = await self.active_version()
            if version is None:
                self._cached = None
            elif version != self._refused and (
                self._cached is None or self._cached.version != version
            ):
                try:
                    self._cached = ActiveModel(version, await self.load(version))
                except (LookupError, ModelFormatError) as exc:
                    self._refused = version
                    log.error("active model %s refused, keeping the one in use: %s", version, exc)
            self._checked = time.monotonic()
        return self._cached

    async def claim_retraining(self, owner: str, hold: timedelta) -> bool:
        """Atomically claim the scheduled retraining for ``hold``, so N replicas retrain once."""
        now = utcnow()
        with contextlib.suppress(DuplicateKeyError):
            await self.db.state.insert_one({"_id": RETRAIN_CLAIM, "until": now - hold})
        claimed = await self.db.state.find_one_and_update(
            {"_id": RETRAIN_CLAIM, "until": {"$lt": now}},
            {"$set": {"owner": owner, "until": now + hold}},
        )
        return claimed is not None

    async def release_retraining(self, owner: str) -> None:
        await self.db.state.update_one(
            {"_id": RETRAIN_CLAIM, "owner": owner}, {"$set": {"until": utcnow()}}
        )


class RoutingViews:
    """Triage queue (人工分拣), disputes (退回) and staff-labelled examples."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db

    async def sync(self, decision: Decision) -> None:
        """Bring the views in line with a stored decision (idempotent)."""
        if decision.status == "triage":
            await upsert_by_id(
                self.db.triage.replace_one,
                {"_id": decision.id},
                {
                    "_id": decision.id,
                    "tracking_no": decision.tracking_no,
                    "office_id": decision.office_id,
                    "title": decision.title,
                    "reason": decision.triage_reason,
                    "candidates": [c.model_dump() for c in decision.candidates],
                    "since": decision.decided_at,
                },
            )
        else:
            await self.db.triage.delete_one({"_id": decision.id})
        if decision.returns:
            await upsert_by_id(
                self.db.disputes.replace_one,
                {"_id": decision.id},
                {
                    "_id": decision.id,
                    "tracking_no": decision.tracking_no,
                    "title": decision.title,
                    "status": decision.status,
                    "lead": decision.lead,
                    "returns": decision.returns,
                    "updated_at": decision.decided_at,
                },
            )

    async def triage_queue(self, limit: int) -> list[Document]:
        return [doc async for doc in self.db.triage.find({}).sort("since", 1).limit(limit)]

    async def disputes(self, limit: int) -> list[Document]:
        return [doc async for doc in self.db.disputes.find({}).sort("updated_at", -1).limit(limit)]

    async def add_example(
        self, example_id: str, example: LabelledText, staff: str, at: datetime
    ) -> None:
        """A person's decision is a labelled example (keyed by the opinion: a later correction
        replaces it); a return (退回) is one against its category, keyed by opinion and
        department."""
        await upsert_by_id(
            self.db.examples.replace_one,
            {"_id": example_id},
            {
                "_id": example_id,
                "title": example.title,
                "content": example.content,
                "category": example.category,
                "rejected": example.rejected,
                "by": staff,
                "at": at,
            },
        )

    async def examples(self) -> list[LabelledText]:
        return [
            LabelledText(
                doc["title"], doc["content"], doc["category"], rejected=doc.get("rejected", False)
            )
            async for doc in self.db.examples.find({})
        ]

    async def drop_examples(self, example_ids: list[str], category: str) -> None:
        """Remove those of ``example_ids`` that are about ``category``."""
        if example_ids:
            await self.db.examples.delete_many({"_id": {"$in": example_ids}, "category": category})

    async def count_examples(self) -> int:
        return await self.db.examples.count_documents({})


class TopicWindow:
    """专题 storage besides the topics themselves: the opinions of each day as grouping sees
    them, in parts of ``DAY_PART`` (``topic_days``, read by ``_id``), which part each opinion is
    on (``topic_entries``), the board (``topic_board``, one small row per topic, listed hottest
    first) and a mark that every staff move changes (``topic_moves``).

    Grouping works on a live index of the window kept in this process: built from the stored
    parts once, then grown by each batch, which writes only its day's last part. Another
    writer's opinions of that day make the save a VersionConflict, and the retry reads that part
    (and any after it) into the index first. A staff move by another process changes the mark,
    seen within ``MOVES_CHECKED_EVERY``: the index is built again."""

    def __init__(self, db: AsyncDatabase[Document], days: Repository[TopicDay]) -> None:
        self.days = days
        self.entries = GroupCommit(db.topic_entries)
        self.lookups = db.topic_entries
        self.board = db.topic_board
        self.moves = db.topic_moves
        self.index: TopicIndex | None = None
        # The last stored part of each day in the index, as this process knows it.
        self.tails: dict[str, TopicDay] = {}
        # Days whose last part another writer may have changed: read again before use.
        self.stale: set[str] = set()
        self.mark: str | None = None
        self.checked: datetime | None = None

    @staticmethod
    def day_of(at: datetime) -> str:
        return at.astimezone(UTC).date().isoformat()

    @staticmethod
    def _day_of_part(part_id: str) -> str:
        return part_id.partition(":")[0]

    @staticmethod
    def _next_part(part_id: str) -> str:
        day, _, n = part_id.partition(":")
        return f"{day}:{int(n or 0) + 1}"

    async def _parts_from(self, part_id: str) -> list[TopicDay]:
        """The stored parts of a day from ``part_id`` up to the first missing one."""
        parts = []
        while (part := await self.days.get(part_id)) is not None:
            parts.append(part)
            part_id = self._next_part(part_id)
        return parts

    @staticmethod
    def _absorb(index: TopicIndex, parts: list[TopicDay]) -> None:
        """Put the stored opinions the index does not hold (or holds in another group) into it,
        in time order."""
        new = [
            (d.counted(), d.topic)
            for part in parts
            for d in part.entries.values()
            if index.group_of.get(d.entry.opinion_id) != d.topic
        ]
        for entry, group in sorted(new, key=lambda pair: (pair[0].at, pair[0].opinion_id)):
            index.remove(entry.opinion_id)
            index.add(entry, group)

    async def _build(self, at: datetime, span: timedelta, threshold: float) -> TopicIndex:
        """The index of the stored opinions of the days from ``at - span`` to ``at``'s."""
        first, last = (at - span).astimezone(UTC).date(), at.astimezone(UTC).date()
        days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
        found = await asyncio.gather(*(self._parts_from(day) for day in days))
        index = TopicIndex(window=span, threshold=threshold)
        self.tails, self.stale = {}, set()
        for day, parts in zip(days, found, strict=True):
            self._absorb(index, parts)
            if parts:
                self.tails[day] = parts[-1]
        self.index = index
        return index

    async def open(
        self, at: datetime, span: timedelta, threshold: float
    ) -> tuple[TopicIndex, TopicDay]:
        """The live index (built first if there is none or staff moved opinions elsewhere) and
        the part of ``at``'s day that new opinions go to."""
        now = utcnow()
        if self.index is None or self.checked is None or now - self.checked >= MOVES_CHECKED_EVERY:
            found = await self.moves.find_one({"_id": "moves"})
            mark = None if found is None else found["mark"]
            self.checked = now
            if self.index is None or mark != self.mark:
                self.mark = mark
                await self._build(at, span, threshold)
        assert self.index is not None
        day = self.day_of(at)
        tail = self.tails.get(day)
        if tail is None or day in self.stale:
            parts = await self._parts_from(day if tail is None else tail.id)
            self._absorb(self.index, parts)
            self.stale.discard(day)
            tail = parts[-1] if parts else TopicDay(id=day if tail is None else tail.id)
        if len(tail.entries) >= DAY_PART:
            tail = TopicDay(id=self._next_part(tail.id))
        self.tails[day] = tail
        # Days that left the window are not kept.
        first = self.day_of(at - span)
        for gone in [d for d in self.tails if d < first]:
            del self.tails[gone]
        return self.index, tail

    def undo(self, part: TopicDay, opinion_ids: list[str]) -> None:
        """A batch that could not be saved: its opinions leave the index, and the part is read
        again before its day takes the next batch."""
        if self.index is not None:
            for opinion_id in opinion_ids:
                self.index.remove(opinion_id)
        self.stale.add(self._day_of_part(part.id))

    async def save(self, part: TopicDay, opinion_ids: list[str]) -> None:
        """Note that these opinions are on the part, then store it (VersionConflict if another
        writer stored it since it was read). Only the entries of ``opinion_ids`` are sent. The
        notes go first: a part stored without them would leave its opinions unfound by 附议
        and staff moves, since a redelivery finds them stored and changes nothing."""
        await asyncio.gather(
            *(self.entries.update(o, {"$set": {"day": part.id}}, upsert=True) for o in opinion_ids)
        )
        if part.version == 0:
            if not await self.days.add(part, []):
                raise VersionConflict(f"topic day part {part.id} was made concurrently")
        else:
            added = {f"entries.{o}": part.entries[o].model_dump() for o in opinion_ids}
            await self.days.save(part, [], added if opinion_ids else None)
        day = self._day_of_part(part.id)
        if day in self.tails and self.tails[day].id == part.id:
            self.tails[day] = part

    async def day_holding(self, opinion_id: str) -> TopicDay | None:
        """The part of a day an opinion is stored on."""
        pointer = await self.lookups.find_one({"_id": opinion_id})
        return None if pointer is None else await self.days.get(pointer["day"])

    async def move(self, opinion_ids: list[str], topic_id: str) -> None:
        """Staff moved these opinions to ``topic_id`` (merge, split): in the stored parts, in
        this process's index at once, and in the other processes' once they see the new mark."""
        for opinion_id in opinion_ids:

            async def change(opinion_id: str = opinion_id) -> None:
                part = await self.day_holding(opinion_id)
                if part is not None and opinion_id in part.entries:
                    part.entries[opinion_id].topic = topic_id
                    await self.save(part, [])

            await retry_on_conflict(change)
            if self.index is not None:
                self.index.regroup(opinion_id, topic_id)
        await upsert_by_id(self.moves.replace_one, {"_id": "moves"}, {"mark": new_id()})

    async def show(self, topic: Topic) -> None:
        """Bring the topic's board row in line with it (a merged-away topic leaves)."""
        if topic.merged_into is not None or not topic.members:
            await self.board.delete_one({"_id": topic.id})
            return
        await upsert_by_id(
            self.board.replace_one, {"_id": topic.id}, {"_id": topic.id, **board_row(topic)}
        )

    async def hottest(self, limit: int) -> list[Document]:
        """The board: pinned first, then hottest."""
        rows = self.board.find({}).sort([("pinned", -1), ("heat", -1), ("_id", 1)]).limit(limit)
        return [doc async for doc in rows]
