"""Follow-up adapters: signed feedback links, the clock, timers with an atomic claim, the
loaded holiday years, KPI projections and case queries, on MongoDB/FerretDB."""

import asyncio
import base64
import contextlib
import csv
import io
import secrets
from datetime import datetime, time, timedelta
from typing import Any, Protocol

from docx import Document as WordDocument
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Pt, RGBColor
from docx.text.paragraph import Paragraph
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from prometheus_client import Gauge
from pydantic import BaseModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.clock import BEIJING, beijing_year, utcnow
from shared.keys import KeyRing
from shared.paging import after_filter
from shared.store import Document, GroupCommit, Kept, upsert_by_id

from .domain import (
    AssignmentStatus,
    Case,
    CaseError,
    PointsRules,
    Report,
    ReviewRules,
    Theme,
    Timer,
)
from .workdays import CalendarSource, WorkCalendar, YearCalendar

CALENDAR_ASSUMED = Gauge(
    "minyi_calendar_year_assumed",
    "1 while a year that deadlines reach has no official holiday calendar (Monday-Friday assumed)",
    ["year"],
)


class CalendarOutlook(BaseModel):
    """The holiday calendar of this year and the next, as deadlines set now will use it."""

    years: dict[int, CalendarSource]
    warning: str | None


class FeedbackTokens:
    """Signed, single-purpose links for the submitter: ``<case>.<round>.<expiry>`` + HMAC.
    Single use comes from the case: a round can be rated once."""

    def __init__(self, keys: KeyRing, public_url: str) -> None:
        self.keys = keys
        self.public_url = public_url.rstrip("/")

    def url(self, case_id: str, feedback_round: int, expires_at: datetime) -> str:
        payload = f"{case_id}.{feedback_round}.{int(expires_at.timestamp())}"
        encoded = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"{self.public_url}/feedback/{encoded}.{self.keys.sign(payload)}"

    def verify(self, token: str, now: datetime) -> tuple[str, int]:
        """The case id and feedback round the token is for; CaseError if forged or expired."""
        if not token.isascii():  # compare_digest refuses non-ASCII text with a TypeError
            raise CaseError(403, "The feedback link is not valid.")
        try:
            encoded, signature = token.rsplit(".", 1)
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            case_id, feedback_round, expires = payload.split(".")
            valid = self.keys.verify(payload, signature, now)
            round_no, expiry = int(feedback_round), int(expires)
        except ValueError:
            raise CaseError(403, "The feedback link is not valid.") from None
        if not valid:
            raise CaseError(403, "The feedback link is not valid.")
        if now.timestamp() > expiry:
            raise CaseError(410, "The feedback link has expired.")
        return case_id, round_no


class Clock(Protocol):
    """Where use cases and timers get the time from."""

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
        await upsert_by_id(
            self.settings.update_one, {"_id": "clock"}, {"$set": {"offset_seconds": offset}}
        )


class Calendars:
    """Holiday years loaded by an administrator for years the library does not know yet."""

    def __init__(
        self,
        collection: AsyncCollection[Document],
        office_opens: time,
        kept_for: timedelta = timedelta(seconds=60),
    ) -> None:
        self.collection = collection
        self.office_opens = office_opens
        # Every new assignment needs three years of calendar; they change about once a year.
        # Another replica sees a newly loaded year after at most ``kept_for``.
        self.kept: Kept[int, YearCalendar | None] = Kept(kept_for)

    async def put(self, year: YearCalendar) -> None:
        await upsert_by_id(
            self.collection.replace_one,
            {"_id": year.year},
            {"_id": year.year, **year.model_dump(mode="json")},
        )
        self.kept.forget(year.year)

    async def get(self, year: int) -> YearCalendar | None:
        return await self.kept.get(year, self._read)

    async def _read(self, year: int) -> YearCalendar | None:
        doc = await self.collection.find_one({"_id": year})
        return None if doc is None else YearCalendar.model_validate(doc)

    async def around(self, now: datetime) -> WorkCalendar:
        """The calendar for deadlines starting at ``now``: this year and the next two,
        read by ``_id``."""
        year = beijing_year(now)
        found = [y for y in [await self.get(n) for n in (year, year + 1, year + 2)] if y]
        return WorkCalendar(found, self.office_opens)

    async def outlook(self, now: datetime) -> CalendarOutlook:
        """Where this year's and next year's working days come from — deadlines set now reach
        into both — and a warning for supervisors and operators when one is only assumed.
        Also kept in the ``minyi_calendar_year_assumed`` gauge."""
        calendar = await self.around(now)
        years = [beijing_year(now) + n for n in (0, 1)]
        sources = {year: calendar.source(year) for year in years}
        for year, source in sources.items():
            CALENDAR_ASSUMED.labels(year=str(year)).set(int(source == "assumed"))
        assumed = [str(year) for year, source in sources.items() if source == "assumed"]
        warning = (
            f"{'、'.join(assumed)}年法定节假日安排尚未加载：落在该年的办理期限暂按周一至周五计算，"
            f"加载后新交办的期限按官方安排计算（PUT /calendar/{assumed[0]}）。"
            if assumed
            else None
        )
        return CalendarOutlook(years=sources, warning=warning)


# Timers due within this window are in the hot set each tick looks at; the agenda holds the
# rest and is moved over every PROMOTE_EVERY of clock time (well inside the window).
HOT_WINDOW = timedelta(hours=1)
PROMOTE_EVERY = timedelta(minutes=10)


class Timers:
    """Pending timers, one small document each (``_id`` = timer id), checked by every replica.

    Claims are inserts of ``<timer id>#<attempt>`` into a claims collection: a unique ``_id``
    is the one compare-and-set FerretDB 1.24 on SQLite does atomically (its conditional
    ``update_one`` is a read-modify-write that two clients can both win). A claim holds for a
    lease of real time; if its holder dies, the next attempt can be claimed after the lease.
    The action itself is idempotent (the case records the timer id), so a retried timer never
    acts twice."""

    def __init__(
        self,
        timers: AsyncCollection[Document],
        claims: AsyncCollection[Document],
        lease: timedelta,
        agenda: AsyncCollection[Document],
        clock: Clock,
    ) -> None:
        self.timers = timers
        self.claims = claims
        self.lease = lease
        self.agenda = agenda
        self.clock = clock
        self.promoted_at: datetime | None = None
        # New cases' timers, stored together with other cases' opened meanwhile.
        self.grouped = {"timers": GroupCommit(timers), "agenda": GroupCommit(agenda)}

    async def schedule(self, timers: list[Timer]) -> None:
        """Store timers (again): an existing timer keeps its state. Those due within
        HOT_WINDOW go to the hot set that every tick looks at; later ones to the agenda."""
        horizon = await self.clock.now() + HOT_WINDOW
        for name, due in (
            ("timers", [t for t in timers if t.fire_at <= horizon]),
            ("agenda", [t for t in timers if t.fire_at > horizon]),
        ):
            docs = [{"_id": t.id, **t.model_dump(mode="python"), "attempt": 0} for t in due]
            outcomes = await asyncio.gather(
                *(self.grouped[name].insert(doc) for doc in docs), return_exceptions=True
            )
            # A timer stored before skips only itself.
            for outcome in outcomes:
                if isinstance(outcome, Exception) and not isinstance(outcome, DuplicateKeyError):
                    raise outcome

    async def due(self, now: datetime, limit: int) -> list[Timer]:
        if self.promoted_at is None or not timedelta(0) <= now - self.promoted_at < PROMOTE_EVERY:
            await self._promote(now)
        cursor = self.timers.find({"fire_at": {"$lte": now}}).limit(limit)
        return [Timer.model_validate(doc) async for doc in cursor]

    async def _promote(self, now: datetime) -> None:
        """Move agenda timers that come due within HOT_WINDOW into the hot set.

        Finding due timers is a scan on FerretDB (only ``_id`` lookups are indexed there), and
        a scan of every pending timer each tick kept FerretDB busy with nothing due; the hot set
        holds only the next hour's timers, and the agenda is scanned every PROMOTE_EVERY."""
        async for doc in self.agenda.find({"fire_at": {"$lte": now + HOT_WINDOW}}):
            with contextlib.suppress(DuplicateKeyError):
                await self.timers.insert_one(doc)
            await self.agenda.delete_one({"_id": doc["_id"]})
        self.promoted_at = now

    async def claim(self, timer: Timer, replica: str) -> int | None:
        """The attempt number this replica now holds, or None if another replica holds it."""
        doc = await self.timers.find_one({"_id": timer.id})
        if doc is None:
            return None  # done meanwhile
        attempt = doc["attempt"]
        while True:
            now = utcnow()  # leases run on real time, whatever a test clock says
            try:
                await self.claims.insert_one(
                    {"_id": f"{timer.id}#{attempt}", "replica": replica, "until": now + self.lease}
                )
            except DuplicateKeyError:
                held = await self.claims.find_one({"_id": f"{timer.id}#{attempt}"})
                if held is None or held["until"] > now:
                    return None
                attempt += 1
                await self.timers.update_one({"_id": timer.id}, {"$set": {"attempt": attempt}})
                continue
            return attempt

    async def cancel(self, case_id: str) -> None:
        """Drop every pending timer of a case (it is handled elsewhere now, 并案)."""
        for collection in (self.timers, self.agenda):
            await collection.delete_many({"case_id": case_id})

    async def done(self, timer: Timer, attempt: int) -> None:
        await self.timers.delete_one({"_id": timer.id})
        await self.agenda.delete_one({"_id": timer.id})  # a copy a crashed promotion left
        claims = [f"{timer.id}#{n}" for n in range(attempt + 1)]
        await self.claims.delete_many({"_id": {"$in": claims}})


KPI_DIMENSIONS = ("department", "office", "category", "all")


class Kpis:
    """KPI projection: one fact per counted event (``_id`` = the event's key, so a redelivered
    event is refused as a duplicate) with its month, department, office, category and counter
    deltas; and per month the sums of its facts by every dimension (``month:<m>`` in
    ``totals``), which is what tables are read from.

    Facts rather than ``$inc`` on one document per department and month: FerretDB 1.24 on
    SQLite loses concurrent ``$inc`` updates of one document, while inserts are atomic. So a
    new fact only marks its month changed (``changed:<m>``, a fresh stamp), and a month's sums
    are made again from its facts when read with a stamp newer than theirs, at most once per
    ``refresh`` however often tables are asked for: a table is at most ``refresh`` behind."""

    def __init__(
        self,
        collection: AsyncCollection[Document],
        totals: AsyncCollection[Document],
        dimensions: tuple[str, ...] = KPI_DIMENSIONS,
        refresh: timedelta = timedelta(seconds=2),
    ) -> None:
        self.collection = collection
        self.totals = totals
        # Every event adds a fact and marks its month: concurrent ones go out together.
        self.facts = GroupCommit(collection)
        self.changes = GroupCommit(totals)
        self.dimensions = dimensions
        self.refresh = refresh
        # One summing of a month at a time in this process: the screens that ask for several
        # tables at once wait for one scan of the month's facts instead of each making one.
        self.summing: dict[str, asyncio.Lock] = {}

    async def add(
        self, key: str, month: str, values: dict[str, str], counters: dict[str, int]
    ) -> bool:
        """Count ``counters`` once per ``key``; False if it was counted before."""
        fact = {"_id": key, "month": month, **values, "counters": counters}
        try:
            await self.facts.insert(fact)
            counted = True
        except DuplicateKeyError:
            counted = False
        # Also for a duplicate: the first try may have stopped between the two writes.
        await self.changes.update(
            f"changed:{month}", {"$set": {"stamp": secrets.token_hex(8)}}, upsert=True
        )
        return counted

    async def table(self, dimension: str, month: str | None) -> list[dict[str, Any]]:
        """Rows of one dimension ("all": everything together) and month (None: every month):
        value, month, counters."""
        months = [month] if month else await self._months()
        rows = []
        for m in months:
            sums = await self._sums(m)
            rows += [{**row, "month": m} for row in sums[dimension]]
        return sorted(rows, key=lambda r: (r["month"], r["value"]))

    async def _months(self) -> list[str]:
        # Two small documents per month: the sums and the change mark.
        ids = [doc["_id"] async for doc in self.totals.find({}, {"_id": 1})]
        return sorted({i.partition(":")[2] for i in ids})

    async def _sums(self, month: str) -> dict[str, list[dict[str, Any]]]:
        async with self.summing.setdefault(month, asyncio.Lock()):
            return await self._sums_now(month)

    async def _sums_now(self, month: str) -> dict[str, list[dict[str, Any]]]:
        now = utcnow()
        # The mark is read before the facts: a fact counted meanwhile leaves a newer stamp. The
        # sums keep the stamp they were made at rather than delete the mark: FerretDB 1.24 runs
        # a conditional delete as a read and a delete, which could take a newer stamp with it.
        changed = await self.totals.find_one({"_id": f"changed:{month}"})
        stamp = None if changed is None else changed["stamp"]
        summed = await self.totals.find_one({"_id": f"month:{month}"})
        if changed is None and summed is None:  # nothing counted in this month
            return {d: [] for d in self.dimensions}
        if summed is not None and (
            summed.get("stamp") == stamp or now - summed["summed_at"] < self.refresh
        ):
            rows: dict[str, list[dict[str, Any]]] = summed["rows"]
            return rows
        totals: dict[str, dict[str, dict[str, int]]] = {d: {} for d in self.dimensions}
        async for fact in self.collection.find({"month": month}, {"_id": 0}):
            for dimension in self.dimensions:
                value = "全部" if dimension == "all" else str(fact.get(dimension, ""))
                row = totals[dimension].setdefault(value, {})
                for name, n in fact["counters"].items():
                    row[name] = row.get(name, 0) + n
        rows = {
            d: [{"value": v, "counters": c} for v, c in sorted(by_value.items())]
            for d, by_value in totals.items()
        }
        await upsert_by_id(
            self.totals.replace_one,
            {"_id": f"month:{month}"},
            {"rows": rows, "summed_at": now, "stamp": stamp},
        )
        return rows


def table_csv(header: list[str], rows: list[list[Any]]) -> bytes:
    """A table as UTF-8 CSV that Excel opens with its Chinese headers intact."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    # BOM so that Excel opens the Chinese headers correctly.
    return ("\ufeff" + out.getvalue()).encode()


def table_xlsx(title: str, header: list[str], rows: list[list[Any]]) -> bytes:
    """A table as a one-sheet XLSX workbook."""
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
    limit: int,
) -> list[Case]:
    """At most ``limit`` cases assigned to a department, by its assignment's status and due
    date, soonest due first. Withdrawn assignments (改派) are listed only when asked for by
    status."""
    query: Document = {f"assignments.{department}": {"$exists": True}}
    query[f"assignments.{department}.status"] = status or {"$ne": AssignmentStatus.WITHDRAWN.value}
    if due_before:
        query[f"assignments.{department}.due_at"] = {"$lte": due_before}
    soonest = cases.find(query).sort(f"assignments.{department}.due_at", 1).limit(limit)
    return [Case.model_validate(doc) async for doc in soonest]


# What supervisors list: overdue (超期), escalated to 督办 (level ≥ 1), extension requests
# waiting for a decision (延期审批).
SUPERVISED: dict[str, Document] = {
    "overdue": {"overdue": True},
    "escalated": {"escalation_level": {"$gte": 1}},
    "extensions": {"extension_pending": True},
    # 退单审核 (or its 终审), 复核 of an 不满意, open 督办单, 抽查回访.
    "returns": {"return_review": True},
    "reviews": {"status": "reviewing"},
    "orders": {"supervision_open": True},
    "audits": {"audit_callback": "due"},
}


class MemberOnRoster(BaseModel):
    """A 委员/代表 as followup knows them from intake's roster (``member.enrolled``)."""

    member_id: str
    office_id: str
    name: str
    kind: str
    sector: str | None = None


class Members:
    """The members' roster, by member id (the newest enrolment wins)."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def put(self, member: MemberOnRoster) -> None:
        doc = member.model_dump()
        await upsert_by_id(self.collection.replace_one, {"_id": member.member_id}, doc)

    async def get(self, member_id: str) -> MemberOnRoster | None:
        doc = await self.collection.find_one({"_id": member_id})
        return None if doc is None else MemberOnRoster.model_validate(doc)

    async def all(self, limit: int, office: str | None = None) -> list[MemberOnRoster]:
        """At most ``limit`` members in id order, of one office (None: every office)."""
        query = {} if office is None else {"office_id": office}
        found = self.collection.find(query).sort("_id", 1).limit(limit)
        return [MemberOnRoster.model_validate(doc) async for doc in found]


async def themes_of(
    themes: AsyncCollection[Document], month: str | None, department: str | None, limit: int
) -> list[Theme]:
    """At most ``limit`` themes (每月一题), newest first, of a month and/or a department."""
    query: Document = {}
    if month:
        query["month"] = month
    if department:
        query["department"] = department
    found = themes.find(query).sort("_id", -1).limit(limit)
    return [Theme.model_validate(doc) async for doc in found]


async def supervised(
    cases: AsyncCollection[Document], kind: str, after: str | None, limit: int
) -> list[Case]:
    """At most ``limit`` open cases of a ``SUPERVISED`` kind, in id order after ``after``."""
    query = SUPERVISED[kind]
    found = cases.find(query | after_filter(after)).sort("_id", 1).limit(limit)
    return [Case.model_validate(doc) async for doc in found]


async def awaiting_review(
    cases: AsyncCollection[Document], office: str | None, after: str | None, limit: int
) -> list[Case]:
    """At most ``limit`` cases whose reply waits for review (审核), of one office (None: all),
    in id order after ``after``."""
    query: Document = {"awaiting_review": True}
    if office is not None:
        query["office_id"] = office
    found = cases.find(query | after_filter(after)).sort("_id", 1).limit(limit)
    return [Case.model_validate(doc) async for doc in found]


class ReviewSettings:
    """Which replies are reviewed (审核): one document, ``_id: "review_rules"``, read by
    ``_id`` with every reply, so every replica applies a change at once."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def get(self) -> ReviewRules:
        doc = await self.collection.find_one({"_id": "review_rules"})
        return ReviewRules() if doc is None else ReviewRules.model_validate(doc)

    async def put(self, rules: ReviewRules) -> None:
        await upsert_by_id(
            self.collection.replace_one, {"_id": "review_rules"}, rules.model_dump(mode="json")
        )


class PointsRuleStore:
    """履职积分 rules, one document per version (``_id`` the version number), so every change
    is kept. A new version is an insert of the next number: a unique ``_id`` is the one atomic
    compare-and-set on FerretDB, so of two supervisors saving over the same version one wins
    and the other gets a conflict. Read by the newest ``_id`` (a handful of documents)."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def current(self) -> PointsRules:
        """The rules in force (version 0, the defaults, until a supervisor sets them)."""
        async for doc in self.collection.find({}).sort("_id", -1).limit(1):
            version = doc.pop("_id")
            return PointsRules.model_validate({**doc, "version": version})
        return PointsRules()

    async def add(self, rules: PointsRules) -> bool:
        """Store ``rules`` as its version; False when that version exists already."""
        doc = rules.model_dump(by_alias=True, exclude={"version"})
        try:
            await self.collection.insert_one({"_id": rules.version, **doc})
        except DuplicateKeyError:
            return False
        return True


async def report_list(
    reports: AsyncCollection[Document], after: str | None, limit: int
) -> list[Report]:
    """At most ``limit`` reports in id order (oldest first) after ``after``."""
    found = reports.find(after_filter(after)).sort("_id", 1).limit(limit)
    return [Report.model_validate(doc) async for doc in found]


RED = RGBColor(0xC0, 0x00, 0x00)


def _line(
    paragraph: Paragraph,
    text: str,
    size: float,
    *,
    bold: bool = False,
    red: bool = False,
    font: str = "仿宋",
) -> None:
    """A run of ``text`` in a Chinese font (East Asian glyphs need their own font name); control
    characters XML cannot carry are left out (Word could not open the file)."""
    run = paragraph.add_run(ILLEGAL_CHARACTERS_RE.sub("", text))
    run.font.size = Pt(size)
    run.font.bold = bold
    run.font.name = font
    run._element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), font)
    if red:
        run.font.color.rgb = RED


def _rule(paragraph: Paragraph, color: str) -> None:
    """A full-width line under the paragraph (the red line under the 报头, the black ones
    around 报送/抄送)."""
    borders = OxmlElement("w:pBdr")
    bottom = OxmlElement("w:bottom")
    for name, value in (("val", "single"), ("sz", "12"), ("space", "1"), ("color", color)):
        bottom.set(qn(f"w:{name}"), value)
    borders.append(bottom)
    paragraph._p.get_or_add_pPr().append(borders)


def report_docx(report: Report, version: int | None = None) -> bytes:
    """The report (its newest draft, or ``version``) as a Word document in the customary
    layout: 报头 in red, 编号, the unit and date over a red rule, 标题, 正文, the source
    opinions, then 报送/抄送 between rules and who signed it off (签发)."""
    draft = report.draft_of(version)
    document = WordDocument()
    head = document.add_paragraph()
    head.alignment = WD_ALIGN_PARAGRAPH.CENTER
    _line(head, "社情民意信息专报", 36, bold=True, red=True, font="方正小标宋简体")
    number = document.add_paragraph()
    number.alignment = WD_ALIGN_PARAGRAPH.CENTER
    _line(number, report.number, 16)
    issued = report.signed_off.at if report.signed_off else draft.at
    unit = document.add_paragraph()
    day = issued.astimezone(BEIJING)
    _line(unit, f"{report.unit}\t{day.year}年{day.month}月{day.day}日", 16)
    unit.paragraph_format.tab_stops.add_tab_stop(Pt(440))
    _rule(unit, "C00000")
    title = document.add_paragraph()
    title.alignment = WD_ALIGN_PARAGRAPH.CENTER
    _line(title, draft.title, 22, bold=True, font="方正小标宋简体")
    for text in [t.strip() for t in draft.text.splitlines() if t.strip()]:
        body = document.add_paragraph()
        body.paragraph_format.first_line_indent = Pt(32)  # two characters
        _line(body, text, 16)
    sources = document.add_paragraph()
    listed = "；".join(f"{s.tracking_no}《{s.title}》" for s in report.sources)
    _line(sources, f"（来源意见：{listed}）", 14, font="楷体")
    _rule(sources, "000000")
    for label, units in (("报送", draft.send_to), ("抄送", draft.copy_to)):
        if units:
            _line(document.add_paragraph(), f"{label}：{'，'.join(units)}", 14)
    signed = document.add_paragraph()
    signed_off = report.signed_off
    signer = signed_off.by if signed_off and signed_off.version == draft.version else "（未签发）"
    _line(signed, f"签发：{signer}", 14)
    _rule(signed, "000000")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
