"""Follow-up adapters: signed feedback links, the clock, timers with an atomic claim, the
loaded holiday years, KPI projections and case queries, on MongoDB/FerretDB."""

import base64
import contextlib
import csv
import hashlib
import hmac
import io
from datetime import datetime, time, timedelta
from typing import Any, Protocol

from openpyxl import Workbook
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.events import utcnow
from shared.store import Document

from .domain import Case, CaseError, Timer
from .workdays import BEIJING, WorkCalendar, YearCalendar


class FeedbackTokens:
    """Signed, single-purpose links for the submitter: ``<case>.<round>.<expiry>`` + HMAC.
    Single use comes from the case: a round can be rated once."""

    def __init__(self, secret: str, public_url: str) -> None:
        self.key = hashlib.sha256(f"feedback:{secret}".encode()).digest()
        self.public_url = public_url.rstrip("/")

    def _sign(self, payload: str) -> str:
        return hmac.new(self.key, payload.encode(), hashlib.sha256).hexdigest()

    def url(self, case_id: str, feedback_round: int, expires_at: datetime) -> str:
        payload = f"{case_id}.{feedback_round}.{int(expires_at.timestamp())}"
        encoded = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"{self.public_url}/feedback/{encoded}.{self._sign(payload)}"

    def verify(self, token: str, now: datetime) -> tuple[str, int]:
        """The case id and feedback round the token is for; CaseError if forged or expired."""
        try:
            encoded, signature = token.rsplit(".", 1)
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            case_id, feedback_round, expires = payload.split(".")
            valid = hmac.compare_digest(signature, self._sign(payload))
            round_no, expiry = int(feedback_round), int(expires)
        except ValueError:
            raise CaseError(403, "The feedback link is not valid.") from None
        if not valid:
            raise CaseError(403, "The feedback link is not valid.")
        if now.timestamp() > expiry:
            raise CaseError(410, "The feedback link has expired.")
        return case_id, round_no


class Clock(Protocol):
    async def now(self) -> datetime: ...


class SystemClock:
    """Real time."""

    async def now(self) -> datetime:
        return utcnow()


class MovableClock:
    """Real time plus an offset kept in the followup database (``_id: "clock"``), so tests can
    move the time of every replica at once. Only used when MINYI_TEST_CLOCK is set."""

    def __init__(self, settings: AsyncCollection[Document]) -> None:
        self.settings = settings

    async def now(self) -> datetime:
        doc = await self.settings.find_one({"_id": "clock"})
        offset = timedelta(seconds=doc["offset_seconds"]) if doc else timedelta()
        return utcnow() + offset

    async def set(self, now: datetime) -> None:
        """From now on, the clock reads ``now`` and runs on from there."""
        offset = (now - utcnow()).total_seconds()
        await self.settings.update_one(
            {"_id": "clock"}, {"$set": {"offset_seconds": offset}}, upsert=True
        )


class Calendars:
    """Holiday years loaded by an administrator for years the library does not know yet."""

    def __init__(self, collection: AsyncCollection[Document], office_opens: time) -> None:
        self.collection = collection
        self.office_opens = office_opens

    async def put(self, year: YearCalendar) -> None:
        await self.collection.replace_one(
            {"_id": year.year}, {"_id": year.year, **year.model_dump(mode="json")}, upsert=True
        )

    async def get(self, year: int) -> YearCalendar | None:
        doc = await self.collection.find_one({"_id": year})
        return None if doc is None else YearCalendar.model_validate(doc)

    async def around(self, now: datetime) -> WorkCalendar:
        """The calendar for deadlines starting at ``now``: this year and the next two,
        read by ``_id``."""
        year = now.astimezone(BEIJING).year
        found = [y for y in [await self.get(n) for n in (year, year + 1, year + 2)] if y]
        return WorkCalendar(found, self.office_opens)


class Timers:
    """Pending timers, one small document each (``_id`` = timer id), checked by every replica.

    A replica claims a due timer with a compare-and-set on its ``attempt`` counter, which also
    pushes ``next_try`` one lease ahead: exactly one replica wins each claim, and if the winner
    dies before finishing, the timer is due again when the lease ends. The action itself is
    idempotent (the case records the timer id), so a retried claim never acts twice."""

    def __init__(self, collection: AsyncCollection[Document], lease: timedelta) -> None:
        self.collection = collection
        self.lease = lease

    async def schedule(self, timers: list[Timer]) -> None:
        """Store timers (again): an existing timer keeps its state."""
        for t in timers:
            doc = {**t.model_dump(mode="python"), "next_try": t.fire_at, "attempt": 0}
            await self.collection.update_one({"_id": t.id}, {"$setOnInsert": doc}, upsert=True)

    async def due(self, now: datetime, limit: int) -> list[Timer]:
        cursor = self.collection.find({"next_try": {"$lte": now}}).limit(limit)
        return [Timer.model_validate(doc) async for doc in cursor]

    async def claim(self, timer: Timer, now: datetime) -> bool:
        """True for exactly one caller while the timer is due."""
        doc = await self.collection.find_one({"_id": timer.id})
        if doc is None or doc["next_try"] > now:
            return False
        result = await self.collection.update_one(
            {"_id": timer.id, "attempt": doc["attempt"]},
            {"$set": {"next_try": now + self.lease}, "$inc": {"attempt": 1}},
        )
        return result.modified_count == 1

    async def done(self, timer: Timer) -> None:
        await self.collection.delete_one({"_id": timer.id})


class Kpis:
    """KPI projections: one document per dimension value and month, ``_id``
    ``<dimension>:<value>:<month>``, counters moved with ``$inc``. The keys of the events
    already counted sit in the same document, so a redelivered event counts once."""

    DIMENSIONS = ("department", "office", "category", "all")

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def add(
        self, key: str, month: str, values: dict[str, str], counters: dict[str, int]
    ) -> None:
        """Add ``counters`` once per ``key`` to each dimension's document of ``month``."""
        for dimension in self.DIMENSIONS:
            value = values.get(dimension, "all")
            doc_id = f"{dimension}:{value}:{month}"
            increments = {f"counters.{name}": n for name, n in counters.items()}
            # A duplicate key means the filter missed only because ``key`` was already counted.
            with contextlib.suppress(DuplicateKeyError):
                await self.collection.update_one(
                    {"_id": doc_id, f"applied.{key}": {"$exists": False}},
                    {
                        "$inc": increments,
                        "$set": {f"applied.{key}": True},
                        "$setOnInsert": {"dimension": dimension, "value": value, "month": month},
                    },
                    upsert=True,
                )

    async def table(self, dimension: str, month: str | None) -> list[dict[str, Any]]:
        """Rows of one dimension (optionally one month): value, month, counters."""
        query: Document = {"dimension": dimension}
        if month:
            query["month"] = month
        cursor = self.collection.find(query, {"applied": 0})
        rows = [
            {"value": d["value"], "month": d["month"], "counters": d.get("counters", {})}
            async for d in cursor
        ]
        return sorted(rows, key=lambda r: (r["month"], r["value"]))


def table_csv(header: list[str], rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    # BOM so that Excel opens the Chinese headers correctly.
    return ("\ufeff" + out.getvalue()).encode()


def table_xlsx(title: str, header: list[str], rows: list[list[Any]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title[:31]
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def department_inbox(
    cases: AsyncCollection[Document],
    department: str,
    status: str | None,
    due_before: datetime | None,
) -> list[Case]:
    """Cases assigned to a department, by its assignment's status and due date, soonest due
    first."""
    query: Document = {f"assignments.{department}": {"$exists": True}}
    if status:
        query[f"assignments.{department}.status"] = status
    if due_before:
        query[f"assignments.{department}.due_at"] = {"$lte": due_before}
    found = [Case.model_validate(doc) async for doc in cases.find(query)]
    return sorted(found, key=lambda c: c.assignments[department].due_at)


async def supervised(cases: AsyncCollection[Document], escalated: bool) -> list[Case]:
    """Open cases that are overdue (超期), or escalated to 督办 (level ≥ 1)."""
    query: Document = {"escalation_level": {"$gte": 1}} if escalated else {"overdue": True}
    found = [Case.model_validate(doc) async for doc in cases.find(query)]
    return sorted(found, key=lambda c: c.opened_at)
