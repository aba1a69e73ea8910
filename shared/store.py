"""Document storage on MongoDB or FerretDB: aggregates with optimistic concurrency and an
outbox kept inside the aggregate document (no multi-document transactions).

Saving writes the state change and the events it produced in one document update; the events
are then published with confirms and removed from the outbox. A sweeper republishes whatever a
crash left behind, so nothing is lost between "stored" and "published"."""

import asyncio
import contextlib
import logging
import random
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pymongo import AsyncMongoClient, DeleteOne, InsertOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from shared.events import CloudEvent, utcnow
from shared.messaging import Busy, EventBus
from shared.observability import StoreCommandTimer
from shared.settings import Settings

log = logging.getLogger("minyi.store")

# A version claimed this long ago but never stored was claimed by a writer that died.
CLAIM_LEASE = timedelta(seconds=30)
# How long a repository remembers what it stored, for a change that follows (get_to_change).
RECENT_FOR = timedelta(seconds=5)

Document = dict[str, Any]


class VersionConflict(Busy):
    """Someone else changed the aggregate since it was read, or holds the claim of its next
    version. A consumer looks at its message again later without using up an attempt: a claim
    that a killed process left holds for CLAIM_LEASE, and a message that failed on it each
    time was parked (seen for a 专题 day after a SIGKILL of routing)."""


class Aggregate(BaseModel):
    """Base of stored aggregates: string id, version for optimistic concurrency, and the ids of
    the upstream events already applied (so a redelivered event changes nothing twice)."""

    model_config = ConfigDict(populate_by_name=True, use_enum_values=True)
    # Fields kept out of $set so that concurrent outbox flushes are never overwritten.
    stored_apart: ClassVar[set[str]] = {"id", "version"}

    id: str = Field(alias="_id")
    version: int = 0
    handled: dict[str, bool] = Field(default_factory=dict)

    def has_handled(self, event_id: str) -> bool:
        return event_id in self.handled

    def mark_handled(self, event_id: str) -> None:
        self.handled[event_id] = True


A = TypeVar("A", bound=Aggregate)


def mongo_client(settings: Settings) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(
        settings.mongo_url,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        event_listeners=[StoreCommandTimer()],
    )


async def drop_databases(settings: Settings) -> None:
    """Drop every database of ``settings.db_prefix`` (a test run's or a drill's own)."""
    client = mongo_client(settings)
    try:
        for name in await client.list_database_names():
            if name.startswith(settings.db_prefix + "_"):
                await client.drop_database(name)
    finally:
        await client.close()


T = TypeVar("T")
R = TypeVar("R")


async def upsert_by_id(write: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """``write(*args, upsert=True, **kwargs)`` (an update or replace by ``_id``), once more if it
    raced another writer creating the same document: MongoDB retries such an upsert itself,
    FerretDB 1.24 reports a DuplicateKeyError (measured: 51 of 240 concurrent first upserts of
    one ``_id``). The second time the document exists, so it is an update."""
    try:
        return await write(*args, upsert=True, **kwargs)
    except DuplicateKeyError:
        return await write(*args, upsert=True, **kwargs)


class Batched(Generic[T, R]):
    """Calls made by concurrent tasks, served together by one call of ``send`` (a group
    commit): while one batch is on its way, the next gathers. An idle one goes out at once, so
    nobody waits for company; under load one round trip serves many. ``send`` returns each
    item's result or exception, in order; a failure of the whole batch fails every item."""

    def __init__(self, send: Callable[[list[T]], Awaitable[list[R | Exception]]]) -> None:
        self.send = send
        self.waiting: list[tuple[T, asyncio.Future[R]]] = []
        self.sender: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self.waiting.append((item, done))
        if self.sender is None:
            # Started on the next turn of the loop, so that calls made in this one go along.
            self.sender = asyncio.create_task(self._send())
        return await done

    @property
    def idle(self) -> bool:
        return self.sender is None

    async def _send(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting, []
                try:
                    results = await self.send([item for item, _ in batch])
                except Exception as exc:
                    results = [exc] * len(batch)
                for (_, done), result in zip(batch, results, strict=True):
                    if done.cancelled():
                        continue
                    if isinstance(result, Exception):
                        done.set_exception(result)
                    else:
                        done.set_result(result)
        finally:
            self.sender = None


Write = InsertOne[Document] | UpdateOne | DeleteOne
DUPLICATE_KEY = 11000
# FerretDB 1.24 on SQLite keeps the row each update statement matched open until its command
# ends, and has 100 connections per database: updates of 100 stored documents in one command,
# or in commands sent at the same moment, wait for a connection forever and wedge that database
# (measured: 99 in one command pass, 101 hang; three commands of 60 at once hang too). So a
# command carries at most UPDATES_PER_COMMAND updates, and a process has at most UPDATE_COMMANDS
# of them on their way to one database: 3 × 16 leaves room for a second replica's.
UPDATES_PER_COMMAND = 16
UPDATE_COMMANDS = 3
_update_slots: weakref.WeakKeyDictionary[Any, dict[str, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def _update_slot(collection: AsyncCollection[Document]) -> asyncio.Semaphore:
    """This process's slots for update commands to the collection's database."""
    per_database = _update_slots.setdefault(collection.database.client, {})
    return per_database.setdefault(collection.database.name, asyncio.Semaphore(UPDATE_COMMANDS))


def _is_upsert(write: Write) -> bool:
    return isinstance(write, UpdateOne) and bool(write._upsert)


def _commands(writes: list[Write]) -> list[list[int]]:
    """The writes (by index) split into commands of at most UPDATES_PER_COMMAND updates, the
    upserts in commands of their own; the inserts and deletes go with the first."""
    updates = [i for i, w in enumerate(writes) if isinstance(w, UpdateOne) and not _is_upsert(w)]
    upserts = [i for i, w in enumerate(writes) if _is_upsert(w)]
    first = [i for i, w in enumerate(writes) if not isinstance(w, UpdateOne)]
    first += updates[:UPDATES_PER_COMMAND]
    rest = updates[UPDATES_PER_COMMAND:]
    commands = [first] + [
        part[n : n + UPDATES_PER_COMMAND]
        for part in (rest, upserts)
        for n in range(0, len(part), UPDATES_PER_COMMAND)
    ]
    return [c for c in commands if c]


# The longest a deferred write (GroupCommit.later) waits for a batch to ride with, unless the
# outbox sweeper sets it (a fifth of its interval: 1 s of 5 s, 0.2 s in the tests), so that
# the sweeper seldom finds a cleanup still on its way.
LATER_WITHIN = 0.2


class GroupCommit:
    """Single-document writes by ``_id`` of concurrent tasks to one collection, sent as one
    unordered ``Collection.bulk_write`` (client-level bulk_write needs MongoDB 8 and does not
    work on FerretDB). Each caller gets its own outcome: DuplicateKeyError for its own insert.

    Writes that nobody waits for (``later``: an outbox marker's delete after publishing) ride
    along with the next batch of writes of their kind to the collection, or go together within
    ``later_within`` s."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection
        self.later_within = LATER_WITHIN
        self.batched: Batched[Write, None] = Batched(self._send)
        self.deferred: list[Write] = []
        self.timer: asyncio.TimerHandle | None = None
        self.flushing: set[asyncio.Task[list[Exception | None]]] = set()
        # One command of this group at a time: FerretDB 1.24 runs an update as a read, then a
        # write of the whole document, so two commands changing one document at once lose one
        # change (measured: 267 of 300 pairs). Deferred writes sent by their timer (or settle)
        # wait for the batch on its way.
        self.sending = asyncio.Lock()

    async def insert(self, doc: Document) -> None:
        """Insert ``doc``; DuplicateKeyError if its ``_id`` is taken."""
        await self.batched(InsertOne(doc))

    async def update(self, aggregate_id: str, update: Document, upsert: bool = False) -> None:
        """Apply ``update`` to the document ``aggregate_id``; with ``upsert``, create it if
        missing (``upsert_by_id``: an upsert may be sent twice, so it must be one that can)."""
        if upsert:
            await upsert_by_id(self._update_one, {"_id": aggregate_id}, update)
        else:
            await self._update_one({"_id": aggregate_id}, update)

    async def _update_one(self, where: Document, update: Document, upsert: bool = False) -> None:
        await self.batched(UpdateOne(where, update, upsert=upsert))

    async def delete(self, aggregate_id: str) -> None:
        await self.batched(DeleteOne({"_id": aggregate_id}))

    def later(self, write: Write) -> None:
        """Send ``write`` with the next batch, or alone within ``later_within``. Nobody
        awaits it: a failure is logged, and what it was to clean up is left for the sweeper."""
        self.deferred.append(write)
        if self.timer is None:
            loop = asyncio.get_running_loop()
            self.timer = loop.call_later(self.later_within, self._flush_later)

    def _flush_later(self) -> None:
        self.timer = None
        if self.deferred:
            task = asyncio.create_task(self._send([]))
            self.flushing.add(task)
            task.add_done_callback(self.flushing.discard)

    async def settle(self) -> None:
        """Send what waits for a ride now (a process stopping)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        await self._send([])
        await asyncio.gather(*self.flushing, return_exceptions=True)

    async def _send(self, writes: list[Write]) -> list[Exception | None]:
        # A bulk write sends one command per kind of write: deferred ones ride only with
        # writes of their kind (an $unset with updates), the rest wait for their timer.
        kinds = {type(w) for w in writes}
        riders = [w for w in self.deferred if not writes or type(w) in kinds]
        self.deferred = [w for w in self.deferred if writes and type(w) not in kinds]
        results: list[Exception | None] = [None] * len(writes)
        if not writes and not riders:
            return results
        everything = [*writes, *riders]
        async with self.sending:
            for command in _commands(everything):
                await self._command(everything, command, results)
        return results

    async def _command(
        self, everything: list[Write], command: list[int], results: list[Exception | None]
    ) -> None:
        """Send the writes of ``command`` (indexes into ``everything``) as one bulk write; each
        failure goes to its caller's result (a deferred write's is logged)."""
        ops = [everything[i] for i in command]
        updates = any(isinstance(op, UpdateOne) for op in ops)
        try:
            async with _update_slot(self.collection) if updates else contextlib.nullcontext():
                await self.collection.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                kind = DuplicateKeyError if error.get("code") == DUPLICATE_KEY else OperationFailure
                failure = kind(error.get("errmsg", ""), error.get("code"), error)
                index = command[error["index"]]
                if index < len(results):
                    results[index] = failure
                else:
                    log.warning("a deferred write failed: %s", failure)
        except Exception as exc:
            if isinstance(exc, KeyError) and all(_is_upsert(op) for op in ops):
                # FerretDB 1.24 answers an update command with a write error without the counts
                # PyMongo reads. Of upserts by _id, that is one racing another writer's creation
                # of its document: each caller's upsert_by_id sends its own again.
                exc = DuplicateKeyError(f"an upsert of the command raced another: {exc!r}")
            deferred = sum(1 for i in command if i >= len(results))
            if deferred:
                log.warning("%d deferred writes failed", deferred, exc_info=True)
            for i in command:
                if i < len(results):
                    results[i] = exc


class Repository(Generic[A]):
    """Loads and saves one kind of aggregate; publishes the events saved with it."""

    def __init__(self, collection: AsyncCollection[Document], model: type[A], bus: EventBus):
        self.collection = collection
        self.model = model
        self.bus = bus
        # Markers of aggregates that may hold unpublished events. FerretDB on SQLite can only
        # look documents up by _id, so the sweeper reads this small collection instead of
        # scanning every aggregate for a non-empty outbox.
        self.pending = collection.database["outbox_pending"]
        self.versions = collection.database["version_claims"]
        # Writes by _id go through group commits: one round trip for many concurrent ones.
        self.writes = GroupCommit(collection)
        self.markers = GroupCommit(self.pending)
        self.claims = GroupCommit(self.versions)
        # What this process stored in the last RECENT_FOR, by id: (when, document).
        self.recent: dict[str, tuple[datetime, Document]] = {}

    async def _mark(self, aggregate_id: str, events: list[CloudEvent]) -> str | None:
        """Note, before storing them, that the aggregate's outbox will hold ``events``. One
        marker per write, so each writer removes only its own."""
        if not events:
            return None
        marker = f"{self.collection.name}:{aggregate_id}:{events[0].id}"
        with contextlib.suppress(DuplicateKeyError):  # the same events written again
            await self.markers.insert(
                {
                    "_id": marker,
                    "collection": self.collection.name,
                    "aggregate_id": aggregate_id,
                    "at": utcnow(),
                }
            )
        return marker

    async def get(self, aggregate_id: str) -> A | None:
        doc = await self._find(aggregate_id)
        return None if doc is None else self.model.model_validate(doc)

    async def _find(self, aggregate_id: str) -> Document | None:
        return await self.collection.find_one({"_id": aggregate_id})

    async def get_to_change(self, aggregate_id: str) -> A | None:
        """The aggregate as this process stored it in the last RECENT_FOR, else as read: only
        for a change that is then saved. If another writer stored it since, the save is a
        VersionConflict and the retry reads the store (what a process stored it knows at once:
        an event's handler changing what the previous handler of its chain stored, say). Not
        for a check without a save: that one must see the other replicas' writes."""
        recent = self.recent.get(aggregate_id)
        if recent is None or utcnow() - recent[0] >= RECENT_FOR:
            return await self.get(aggregate_id)
        return self.model.model_validate(recent[1])

    def _stored(self, aggregate_id: str, doc: Document | None) -> None:
        """Remember ``doc`` as the stored state of the aggregate (None: forget it)."""
        now = utcnow()
        self.recent.pop(aggregate_id, None)
        if doc is not None:
            self.recent[aggregate_id] = (now, doc)
        # Oldest first (insertion order): drop what is too old to be used.
        while self.recent:
            oldest = next(iter(self.recent))
            if now - self.recent[oldest][0] < RECENT_FOR:
                break
            del self.recent[oldest]

    async def add(self, aggregate: A, events: list[CloudEvent]) -> bool:
        """Insert a new aggregate with its events; False if one with this id already exists."""
        doc = aggregate.model_dump(by_alias=True)
        doc["version"] = aggregate.version = 1
        doc["outbox"] = {e.id: e.model_dump(mode="json") for e in events}
        marker = await self._mark(aggregate.id, events)
        try:
            await self.writes.insert(doc)
        except DuplicateKeyError:
            if marker is not None:
                await self.markers.delete(marker)
            return False
        self._stored(aggregate.id, doc)
        aggregate.version = await self._flush(aggregate.id, events, marker, 1) or 1
        return True

    async def save(
        self,
        aggregate: A,
        events: list[CloudEvent],
        changed: Document | None = None,
        held_message: bool = False,
    ) -> None:
        """Store the changed aggregate if nobody changed it meanwhile, then publish its events.
        ``changed``: only these fields (dotted paths, stored values) changed, and only they are
        sent, instead of the whole aggregate (a large one that grows by a part at a time).

        ``held_message``: the caller handles a message it acknowledges only after this returns,
        and calls ``republish`` when a redelivered message finds its change stored. No outbox
        marker is written before the events are stored then (one round trip less): until they
        are published, the unacknowledged message stands for it (a crash sends it again); if
        publishing or the outbox cleanup fails, the marker is written after all, for the
        sweeper."""
        version = aggregate.version + 1
        self._stored(aggregate.id, None)
        # The outbox cleanup's version is claimed with this one, in the same command.
        cleanup_claimed = await self._claim(aggregate.id, version, ahead=bool(events))
        fields = (
            aggregate.model_dump(by_alias=True, exclude=aggregate.stored_apart)
            if changed is None
            else changed
        )
        update: Document = {
            "$set": {
                **fields,
                **{f"outbox.{e.id}": e.model_dump(mode="json") for e in events},
                "version": version,
            }
        }
        try:
            marker = None if held_message else await self._mark(aggregate.id, events)
            await self.writes.update(aggregate.id, update)
        except Exception:
            await self._release(aggregate.id, version, *([version + 1] if cleanup_claimed else []))
            raise
        aggregate.version = version
        if changed is None:
            self._stored(aggregate.id, {**fields, "_id": aggregate.id, "version": version})
        after = await self._flush(aggregate.id, events, marker, version, cleanup_claimed)
        aggregate.version = after or version

    async def republish(self, aggregate_id: str) -> None:
        """Publish what the aggregate's outbox still holds: called by a handler whose
        redelivered message finds its change stored by a ``save(..., held_message=True)`` that
        a crash may have stopped before publishing. What cannot be published or cleared now
        is left to the sweeper (marked)."""
        doc = await self.collection.find_one({"_id": aggregate_id}, {"outbox": 1})
        await self._flush(aggregate_id, _outbox_events(doc), None)

    async def _release(self, aggregate_id: str, *versions: int) -> None:
        """A write that failed after its claims (the store busy, say): free those versions
        not stored now, instead of blocking every writer of the aggregate for the lease."""
        with contextlib.suppress(Exception):  # the original error is the one to report
            current = await self._find(aggregate_id)
            for version in versions:
                if current is not None and current["version"] < version:
                    await self.versions.delete_one({"_id": self._claim_id(aggregate_id, version)})

    def _claim_id(self, aggregate_id: str, version: int) -> str:
        return f"{self.collection.name}:{aggregate_id}:{version}"

    async def _claim(self, aggregate_id: str, version: int, ahead: bool = False) -> bool:
        """Win the right to write ``version`` of the aggregate, or raise VersionConflict.
        ``ahead``: claim the next version too, in the same command (for the outbox cleanup that
        follows the write); returns whether that one was won as well.

        A conditional update ({_id, version}) is not atomic on FerretDB 1.24: it reads, then
        writes, and two writers can both match. A unique _id on insert is atomic on both stores,
        so each version is claimed by inserting ``<collection>:<id>:<version>`` exactly once."""
        claim, following = (
            self._claim_id(aggregate_id, version),
            self._claim_id(aggregate_id, version + 1),
        )
        wanted = [claim, following] if ahead else [claim]
        won = await asyncio.gather(
            *(self.claims.insert({"_id": c, "at": utcnow()}) for c in wanted),
            return_exceptions=True,
        )
        failed = [
            e for e in won if isinstance(e, Exception) and not isinstance(e, DuplicateKeyError)
        ]
        if won[0] is None and not failed:
            return ahead and won[1] is None
        # Without this version, the next is not this writer's to hold either.
        for c, outcome in zip(wanted, won, strict=True):
            if outcome is None:
                await self.versions.delete_one({"_id": c})
        if failed:
            raise failed[0]
        held = await self.versions.find_one({"_id": claim})
        current = await self._find(aggregate_id)
        if (
            held
            and current
            and current["version"] < version
            and held["at"] < utcnow() - CLAIM_LEASE
        ):
            # Its writer died between claiming and storing: free the version for the next try,
            # and the next one it may have claimed for its outbox cleanup.
            await self.versions.delete_one({"_id": claim})
            await self.versions.delete_one({"_id": following})
        raise VersionConflict(f"{self.model.__name__} {aggregate_id} changed concurrently")

    async def _flush(
        self,
        aggregate_id: str,
        events: list[CloudEvent],
        marker: str | None,
        version: int = 0,
        cleanup_claimed: bool = False,
    ) -> int | None:
        """Publish ``events`` (stored with ``version`` of the aggregate; 0: read it), then remove
        them from the outbox (``cleanup_claimed``: as the next version, already claimed) and
        remove ``marker``. Returns the aggregate's version after that, or None if they could not
        be published or cleared: then they stay in the outbox, marked for the sweeper."""
        if not events:
            return version
        try:
            # The confirms are awaited together, not one after another.
            await asyncio.gather(*(self.bus.publish(event) for event in events))
        except Exception:
            # The change is stored; its events wait in the outbox for the sweeper.
            log.warning(
                "publish failed, the outbox sweeper will retry",
                exc_info=True,
                extra={"opinion_id": aggregate_id},
            )
            if cleanup_claimed:  # the next writer may have the next version
                await self._release(aggregate_id, version + 1)
            cleared = None
        else:
            cleared = await self._clear(aggregate_id, events, version, cleanup_claimed)
        if cleared is None:
            if marker is None:
                await self._mark(aggregate_id, events)
            return None
        if marker is not None:
            self.markers.later(DeleteOne({"_id": marker}))
        return cleared

    async def _clear(
        self, aggregate_id: str, events: list[CloudEvent], version: int, claimed: bool
    ) -> int | None:
        """Remove published events from the outbox as the next version of the aggregate, under
        its claim (``claimed``: won already): FerretDB 1.24 runs an update as a read and a write
        of the whole document, so an unclaimed one could undo another writer's save of the same
        document. The version stored, or None when another writer (or a dead writer's claim,
        until its lease ends) has the next one: the sweeper publishes them again and clears
        them."""
        if not version:
            doc = await self.collection.find_one({"_id": aggregate_id}, {"version": 1})
            if doc is None:
                return None
            version = int(doc["version"])
        if not claimed:
            try:
                await self._claim(aggregate_id, version + 1)
            except VersionConflict:
                return None
        sent = {f"outbox.{e.id}": "" for e in events}
        try:
            await self.writes.update(
                aggregate_id, {"$unset": sent, "$set": {"version": version + 1}}
            )
        except Exception:
            await self._release(aggregate_id, version + 1)
            log.warning("outbox cleanup failed; the sweeper will retry", exc_info=True)
            return None
        recent = self.recent.get(aggregate_id)
        if recent is not None and recent[1].get("version") == version:
            self.recent[aggregate_id] = (recent[0], {**recent[1], "version": version + 1})
        return version + 1

    async def settle(self) -> None:
        """Send the outbox cleanups that wait for a ride now (a process stopping)."""
        for group in (self.writes, self.markers):
            with contextlib.suppress(Exception):  # left for the sweeper
                await group.settle()

    async def sweep(self, older_than: timedelta) -> int:
        """Publish events left in outboxes by a crash; returns how many."""
        cutoff = utcnow() - older_than
        count = 0
        async for marker in self.pending.find({"collection": self.collection.name}):
            doc = await self.collection.find_one({"_id": marker["aggregate_id"]}, {"outbox": 1})
            events = _outbox_events(doc)
            # Newer events may still be on their way out with a living writer.
            stale = [e for e in events if e.time < cutoff]
            if stale:
                if await self._flush(marker["aggregate_id"], stale, None) is None:
                    continue
                count += len(stale)
            if len(stale) == len(events) and (stale or marker["at"] < cutoff):
                # Its events are out, or its writer stopped before storing them.
                await self.markers.delete(marker["_id"])
        return count


def _outbox_events(doc: Document | None) -> list[CloudEvent]:
    """The events in a stored aggregate's outbox, oldest first."""
    outbox = doc.get("outbox", {}) if doc else {}
    return sorted((CloudEvent.model_validate(e) for e in outbox.values()), key=lambda e: e.id)


K = TypeVar("K")
V = TypeVar("V")


class Kept(Generic[K, V]):
    """Values read from the store, kept in this process for ``kept_for`` after each read."""

    def __init__(self, kept_for: timedelta) -> None:
        self.kept_for = kept_for
        self.values: dict[K, tuple[datetime, V]] = {}
        # When this process last changed each key: a read begun before then is not kept.
        self.changed: dict[K, datetime] = {}

    async def get(self, key: K, read: Callable[[K], Awaitable[V]]) -> V:
        """The kept value of ``key``, or ``read(key)`` when there is none or it is too old."""
        now = utcnow()
        kept = self.values.get(key)
        if kept is None or now - kept[0] >= self.kept_for:
            kept = (now, await read(key))
            # A write of this process that landed while we read may be missing from it.
            if self.changed.get(key, now) <= now:
                self.values[key] = kept
        return kept[1]

    def forget(self, key: K) -> None:
        """Read ``key`` from the store next time (this process just changed it)."""
        self.values.pop(key, None)
        self.changed[key] = utcnow()


class KeptRepository(Repository[A]):
    """A repository for small aggregates that every event reads and people rarely change (a
    directory, subscriptions): a read is kept for ``kept_for``. This process sees its own writes
    at once; other processes' writes are seen within ``kept_for``."""

    def __init__(
        self,
        collection: AsyncCollection[Document],
        model: type[A],
        bus: EventBus,
        kept_for: timedelta = timedelta(seconds=2),
    ) -> None:
        super().__init__(collection, model, bus)
        self.kept: Kept[str, Document | None] = Kept(kept_for)

    async def get(self, aggregate_id: str) -> A | None:
        # The document is kept and a new aggregate made from it each time: callers change what
        # they read before saving it (and validating is cheaper than a deep copy).
        doc = await self.kept.get(aggregate_id, self._find)
        return None if doc is None else self.model.model_validate(doc)

    async def add(self, aggregate: A, events: list[CloudEvent]) -> bool:
        self.kept.forget(aggregate.id)
        try:
            return await super().add(aggregate, events)
        finally:
            self.kept.forget(aggregate.id)

    async def save(
        self,
        aggregate: A,
        events: list[CloudEvent],
        changed: Document | None = None,
        held_message: bool = False,
    ) -> None:
        # Forgotten before saving, so a retry after a VersionConflict reads the stored version,
        # and after, so that a read another task made meanwhile (of the old document) is not
        # kept: this process sees its own writes at once.
        self.kept.forget(aggregate.id)
        try:
            await super().save(aggregate, events, changed, held_message)
        finally:
            self.kept.forget(aggregate.id)


async def run_sweeper(repositories: list[Repository[Any]], interval: float) -> None:
    """Forever: republish leftover outbox events of the given repositories. Their cleanups
    wait for a ride at most a fifth of ``interval``."""
    for repository in repositories:
        repository.writes.later_within = repository.markers.later_within = interval / 5
    while True:
        await asyncio.sleep(interval)
        for repository in repositories:
            try:
                if n := await repository.sweep(timedelta(seconds=interval)):
                    log.warning("outbox sweeper republished %d events", n)
            except Exception:
                log.exception("outbox sweep failed; will try again")


async def retry_on_conflict(change: Callable[[], Awaitable[T]], attempts: int = 10) -> T:
    """Run a read-change-save function again, after a growing pause, when another writer got
    there first. The pause is random within its bound ("full jitter"): writers that collided
    — two replicas' timers and a department's request, say — would otherwise retry in step
    and collide again (seen as a 500 after the clock jumped past a deadline under load)."""
    for attempt in range(attempts - 1):
        try:
            return await change()
        except VersionConflict:
            await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))
    return await change()
