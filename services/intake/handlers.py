"""Intake use cases: register (with idempotency and 附议 detection), import a sheet as a job,
attach files, and the editors' merge, split and edit. Each saves the opinion and its events
together; changes to a second opinion are idempotent and retried on conflicts."""

import asyncio
import hashlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from shared.clock import beijing_year, utcnow
from shared.events import CaseClosed, CloudEvent, EventData, KeptAs, OpinionReceived, new_id
from shared.files import REFUSED_KIND, ChunkStore, FileRef, media_type_of
from shared.keys import KeyRing
from shared.store import Repository, retry_on_conflict

from . import sheets
from .adapters import (
    Claim,
    DuplicateEntries,
    ImportJobs,
    RequestClaims,
    TrackingNumbers,
    open_opinions,
)
from .domain import (
    MAX_ATTACHMENTS,
    Member,
    MemberEntry,
    Opinion,
    OpinionError,
    OpinionStatus,
    OpinionSubmission,
    Submitter,
    compared_text,
    tracking_number,
)
from .duplicates import DuplicateIndex, Signature, signature

SOURCE = "/minyi/intake"
IMPORT_CHUNK = 100
# Duplicate entries made from the opinions at a first start, written together.
ENTRIES_AT_ONCE = 500

log = logging.getLogger("minyi.intake")


@dataclass
class Intake:
    """What the use cases need: storage, the duplicate index, and background import tasks."""

    opinions: Repository[Opinion]
    members: Repository[Member]
    numbers: TrackingNumbers
    claims: RequestClaims
    jobs: ImportJobs
    attachments: ChunkStore
    index: DuplicateIndex
    entries: DuplicateEntries
    tracking_keys: KeyRing  # sign the receipts' tracking codes
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


@dataclass
class Registration:
    opinion: Opinion
    replayed: bool  # an earlier request with the same Idempotency-Key created it
    joined: Opinion | None = None  # the open opinion it was linked to as support (附议)


async def _index(p: Intake, opinion: Opinion, sig: Signature | None = None) -> None:
    """Index an open opinion in memory and in the store (what the next start reads)."""
    s, where = opinion.submission, opinion.submission.location
    sig = signature(s.text()) if sig is None else sig
    p.index.add(opinion.id, s.text(), where.district, where.street, opinion.received_at, sig)
    await p.entries.put(
        opinion.id, where.district, where.street, opinion.received_at, sig.tobytes()
    )


async def _unindex(p: Intake, opinion_id: str) -> None:
    """No new item joins this opinion any more (closed, merged)."""
    p.index.remove(opinion_id)
    await p.entries.forget(opinion_id)


def index_received(p: Intake, received: OpinionReceived) -> None:
    """Index an opinion another replica registered (this one indexed its own already)."""
    if received.opinion_id not in p.index:
        text = compared_text(received.title, received.content)
        where = received.location
        p.index.add(received.opinion_id, text, where.district, where.street, received.received_at)


def _wrap(events: list[EventData]) -> list[CloudEvent]:
    return [CloudEvent.wrap(SOURCE, e) for e in events]


async def _load(p: Intake, opinion_id: str) -> Opinion:
    opinion = await p.opinions.get(opinion_id)
    if opinion is None:
        raise OpinionError(404, f"No opinion {opinion_id}.")
    return opinion


def _stored_now() -> datetime:
    """Now as the store keeps it (milliseconds), so an answer matches what is read back."""
    now = utcnow()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


async def _new_number(p: Intake, opinion_id: str) -> str:
    year = beijing_year(utcnow())
    return tracking_number(year, await p.numbers.next(year, opinion_id))


async def register_opinion(
    p: Intake, submission: OpinionSubmission, office_id: str, key: str | None = None
) -> Registration:
    """登记: store the opinion with its tracking number. A near-duplicate of an open opinion
    of the same area is linked to it as support (opinion.supported); anything else becomes
    work for routing (opinion.received). With ``key``, a retry returns the first result."""
    await _check_members(p, submission, office_id)
    if key is None:
        opinion_id = new_id()
        tracking_no = await _new_number(p, opinion_id)
    else:
        claim = await p.claims.find(office_id, key)
        if claim is None:
            opinion_id = new_id()
            wanted = Claim(
                opinion_id=opinion_id,
                tracking_no=await _new_number(p, opinion_id),
                fingerprint=submission.fingerprint(),
            )
            claim = await p.claims.claim(office_id, key, wanted)
        if claim.fingerprint != submission.fingerprint():
            raise OpinionError(
                422, "This Idempotency-Key was used for a different opinion 幂等键已用于其他意见."
            )
        if (existing := await p.opinions.get(claim.opinion_id)) is not None:
            return Registration(existing, replayed=True)
        opinion_id, tracking_no = claim.opinion_id, claim.tracking_no
    # Answer a retry and the first request alike.
    now = _stored_now()
    opinion = Opinion(
        id=opinion_id,
        tracking_no=tracking_no,
        office_id=office_id,
        received_at=now,
        submission=submission,
    )
    sig = signature(submission.text())
    found = await similar_open(p, submission, now, sig)
    if found is not None:
        events = opinion.support(*found, now)
    else:
        events = opinion.register()
        # Indexed before storing: if publishing fails after the insert, later items still
        # find it; an entry whose opinion was never stored matches nothing (see above).
        if opinion.routed:
            await _index(p, opinion, sig)
    if not await p.opinions.add(opinion, _wrap(events)):
        # A concurrent request with the same key stored it first.
        return Registration(await _load(p, opinion_id), replayed=True)
    if found is None:
        return Registration(opinion, replayed=False)
    target, similarity = found
    joined = await add_supporter(p, target.id, opinion, "附议", similarity)
    return Registration(opinion, replayed=False, joined=joined)


async def similar_open(
    p: Intake, submission: OpinionSubmission, now: datetime, sig: Signature | None = None
) -> tuple[Opinion, float] | None:
    """The open opinion ``submission`` would join as 附议, and how similar it is; None when it
    would be new work. Stores nothing: the console asks before submitting. A member's
    提案/建议 waits for 立案 and joins nothing."""
    if submission.form.needs_filing:
        return None
    location = submission.location
    match = p.index.find(submission.text(), location.district, location.street, now, sig)
    target = None if match is None else await p.opinions.get(match.opinion_id)
    if match is None or target is None or target.status != OpinionStatus.OPEN:
        return None
    return target, match.similarity


async def add_supporter(
    p: Intake, target_id: str, supporter: Opinion, how: str, similarity: float | None
) -> Opinion:
    """Count ``supporter`` on the target opinion once, however often this runs."""

    async def change() -> Opinion:
        target = await _load(p, target_id)
        briefs = target.add_supporter(supporter, how, similarity, utcnow())
        if briefs is not None:
            await p.opinions.save(target, _wrap(briefs))
        return target

    return await retry_on_conflict(change)


async def on_supported(
    p: Intake, target_id: str, supporter_id: str, similarity: float | None
) -> None:
    """Repairs a link a crash left half-made: the supporter was stored (with its
    opinion.supported event) but the target had not counted it yet."""
    supporter = await p.opinions.get(supporter_id)
    if supporter is not None and await p.opinions.get(target_id) is not None:
        await add_supporter(p, target_id, supporter, "附议", similarity)


async def follow_case(p: Intake, event: CloudEvent) -> None:
    """Routing's and followup's events about an opinion: which departments hold it (a new
    one gets the whole opinion) and the progress the submitter sees; 办结 also takes it out
    of the duplicate index, so new items no longer join it."""
    payload = event.payload()

    async def change() -> None:
        # Usually right after this process registered it: no read (a stale copy only makes the
        # save a VersionConflict, and the retry reads the store).
        opinion = await p.opinions.get_to_change(payload.opinion_id)
        if opinion is None:
            return
        if opinion.has_handled(event.id):
            # Redelivered: a crash may have come between storing the briefs and sending them.
            await p.opinions.republish(opinion.id)
            return
        briefs = opinion.follow(event.id, payload, event.time)
        await p.opinions.save(opinion, _wrap(briefs), held_message=True)

    await retry_on_conflict(change)
    if isinstance(payload, CaseClosed):
        await _unindex(p, payload.opinion_id)


async def member_of(
    p: Intake, member_id: str, office_id: str | None, field: str = "member_id"
) -> Member:
    """A member of the office's roster (any roster for ``None``); OpinionError naming
    ``field`` otherwise."""
    member = await p.members.get(member_id)
    if member is None or (office_id is not None and member.office_id != office_id):
        raise OpinionError(
            422, f"No member {member_id} on this office's roster 名册中无此委员/代表.", field
        )
    return member


async def decide_filing(
    p: Intake,
    opinion_id: str,
    office_id: str,
    filed: bool,
    reason: str,
    kept_as: KeptAs | None,
    by: str,
) -> Opinion:
    """立案 / 不立案 of a member's 提案/建议 by the office that registered it."""

    async def change() -> Opinion:
        opinion = await p.opinions.get(opinion_id)
        if opinion is None or opinion.office_id != office_id:
            raise OpinionError(404, f"No opinion {opinion_id} for this office.")
        events = opinion.decide_filing(filed, reason, kept_as, by, _stored_now())
        await p.opinions.save(opinion, _wrap(events))
        return opinion

    opinion = await retry_on_conflict(change)
    if opinion.routed:
        await _index(p, opinion)
    return opinion


async def _check_members(p: Intake, submission: OpinionSubmission, office_id: str) -> None:
    """The member a submission names and its co-signers (联名) are on the office's roster."""
    if submission.member_id is not None:
        await member_of(p, submission.member_id, office_id)
    for n, co_signer in enumerate(submission.co_signers):
        await member_of(p, co_signer, office_id, f"co_signers.{n}")


async def enrol_member(p: Intake, office_id: str, entry: MemberEntry) -> Member:
    """An office puts a 委员/代表 on its roster; other services learn the member's office."""
    member = Member(id=new_id(), office_id=office_id, entry=entry, enrolled_at=utcnow())
    await p.members.add(member, _wrap(member.enrolled()))
    return member


async def reveal_contact(
    p: Intake, opinion_id: str, by: str, role: str, department: str
) -> tuple[Opinion, Submitter]:
    """查看联系方式 by the lead department (主办), recorded on the opinion."""

    async def change() -> tuple[Opinion, Submitter]:
        opinion = await _load(p, opinion_id)
        if not opinion.is_lead(department):
            raise OpinionError(403, "Only the lead department (主办) may see the contact details.")
        submitter = opinion.reveal_contact(by, role, department, _stored_now())
        await p.opinions.save(opinion, [])
        return opinion, submitter

    opinion, submitter = await retry_on_conflict(change)
    # Who and which case, never what: the contact itself stays out of the log.
    log.info("contact revealed", extra={"opinion_id": opinion_id, "revealed_by": department})
    return opinion, submitter


async def merge(p: Intake, opinion_id: str, into_id: str, by: str) -> Opinion:
    """并案 by an editor: the opinion becomes a supporter of ``into_id``, which carries on."""

    async def change() -> Opinion:
        opinion, target = await _load(p, opinion_id), await _load(p, into_id)
        events = opinion.merge_into(target, by, utcnow())
        await p.opinions.save(opinion, _wrap(events))
        return opinion

    opinion = await retry_on_conflict(change)
    await _unindex(p, opinion_id)
    return await add_supporter(p, into_id, opinion, "并案", None)


async def split(p: Intake, opinion_id: str, by: str) -> Opinion:
    """拆分 by an editor: the opinion leaves the one it joined and becomes a case of its own."""

    async def change() -> tuple[Opinion, str]:
        opinion = await _load(p, opinion_id)
        joined_to = opinion.joined_to
        events = opinion.split(by, utcnow())
        assert joined_to is not None  # split() refuses opinions that joined nothing
        await p.opinions.save(opinion, _wrap(events))
        return opinion, joined_to

    opinion, joined_to = await retry_on_conflict(change)

    async def uncount() -> None:
        target = await _load(p, joined_to)
        if (briefs := target.remove_supporter(opinion.id)) is not None:
            await p.opinions.save(target, _wrap(briefs))

    await retry_on_conflict(uncount)
    await _index(p, opinion)
    return opinion


async def edit(
    p: Intake, opinion_id: str, submission: OpinionSubmission, by: str, note: str
) -> Opinion:
    """编辑 by an editor; the previous text is kept as a version."""

    await _check_members(p, submission, (await _load(p, opinion_id)).office_id)

    async def change() -> Opinion:
        opinion = await _load(p, opinion_id)
        briefs = opinion.edit(submission, by, note, utcnow())
        await p.opinions.save(opinion, _wrap(briefs))
        return opinion

    opinion = await retry_on_conflict(change)
    if opinion.id in p.index:
        await _index(p, opinion)
    return opinion


async def attach(
    p: Intake, opinion_id: str, office_id: str | None, filename: str, data: bytes
) -> tuple[str, FileRef]:
    """Store a file and then reference it from the opinion (bytes first: no dangling ref)."""
    if not data:
        raise OpinionError(422, "The attachment is empty 附件为空.")
    media_type = media_type_of(filename, data)
    if media_type is None:
        raise OpinionError(415, REFUSED_KIND)
    opinion = await _load(p, opinion_id)
    if office_id is not None and opinion.office_id != office_id:
        raise OpinionError(404, f"No opinion {opinion_id} for this office.")
    if len(opinion.attachments) >= MAX_ATTACHMENTS:
        raise OpinionError(409, f"At most {MAX_ATTACHMENTS} attachments per opinion.")
    attachment_id = new_id()
    await p.attachments.put(attachment_id, data)
    ref = FileRef(filename=filename, media_type=media_type, size=len(data), uploaded_at=utcnow())

    async def change() -> None:
        current = await _load(p, opinion_id)
        await p.opinions.save(current, _wrap(current.attach(attachment_id, ref)))

    await retry_on_conflict(change)
    return attachment_id, ref


def _row_keys(rows: list[sheets.ParsedRow]) -> list[str]:
    """An Idempotency-Key per row from its content and how often that content came before,
    so the same rows uploaded again — in this file or another — create nothing twice."""
    seen: dict[str, int] = {}
    keys = []
    for row in rows:
        fingerprint = row.submission.fingerprint()
        seen[fingerprint] = seen.get(fingerprint, 0) + 1
        keys.append(f"import:{fingerprint}:{seen[fingerprint]}")
    return keys


async def start_import(
    p: Intake, office_id: str, filename: str, data: bytes, default_district: str | None
) -> dict[str, Any]:
    """Check the sheet now (a file that is no table is refused at once), store its valid rows
    and run them as a job; returns the job document to poll."""
    header, rows = await asyncio.to_thread(sheets.read_table, filename, data)
    parsed, problems = sheets.parse_rows(header, rows, default_district)
    keys = _row_keys(parsed)
    chunks = [
        [
            {"row": r.row, "key": k, "submission": r.submission.model_dump(mode="json")}
            for r, k in zip(parsed[i : i + IMPORT_CHUNK], keys[i : i + IMPORT_CHUNK], strict=True)
        ]
        for i in range(0, len(parsed), IMPORT_CHUNK)
    ]
    job: dict[str, Any] = {
        "_id": new_id(),
        "office_id": office_id,
        "filename": filename,
        "sha256": hashlib.sha256(data).hexdigest(),
        "status": "running",
        "created_at": utcnow(),
        "finished_at": None,
        "rows": len(rows),
        "valid": len(parsed),
        "failed": len({problem.row for problem in problems}),
        "chunks": len(chunks),
        "next_chunk": 0,
        "processed": 0,
        "created": 0,
        "supported": 0,
        "already_imported": 0,
        "problems": [vars(problem) for problem in problems],
        "accepted": {},
    }
    await p.jobs.create(job, chunks)
    run_in_background(p, str(job["_id"]))
    return job


def run_in_background(p: Intake, job_id: str) -> None:
    task = asyncio.create_task(run_import(p, job_id))
    # Keep a reference: the event loop holds tasks only weakly.
    p.tasks.add(task)
    task.add_done_callback(p.tasks.discard)


async def run_import(p: Intake, job_id: str) -> None:
    """Register the job's rows chunk by chunk, saving progress after each; rerunning it
    (after a restart) is safe because every row carries its own Idempotency-Key."""
    job = await p.jobs.get(job_id)
    if job is None:
        return
    try:
        for chunk in range(job["next_chunk"], job["chunks"]):
            progress: dict[str, Any] = {"next_chunk": chunk + 1}
            for row in await p.jobs.rows(job_id, chunk):
                submission = OpinionSubmission.model_validate(row["submission"])
                reg = await register_opinion(p, submission, job["office_id"], row["key"])
                outcome = (
                    "already_imported"
                    if reg.replayed
                    else "supported"
                    if reg.joined is not None
                    else "created"
                )
                job[outcome] += 1
                job["processed"] += 1
                progress[f"accepted.{row['row']}"] = reg.opinion.tracking_no
            for counter in ("processed", "created", "supported", "already_imported"):
                progress[counter] = job[counter]
            await p.jobs.progress(job_id, progress)
        await p.jobs.progress(job_id, {"status": "done", "finished_at": utcnow()})
    except Exception:
        # Left "running": the next start of the service resumes it where it stopped.
        log.exception("import job failed", extra={"job_id": job_id})


async def resume_imports(p: Intake) -> None:
    """Finish import jobs a stopped process left running."""
    for job_id in await p.jobs.unfinished():
        run_in_background(p, job_id)


async def load_index(p: Intake, window: timedelta) -> int:
    """Fill the duplicate index with the open opinions of the window, from their entries (made
    once from the opinions in a store from before entries existed); returns how many."""
    since = utcnow() - window
    if await p.entries.built():
        async for entry in p.entries.since(since):
            sig = np.frombuffer(entry["signature"], np.uint32)
            where = entry["district"], entry["street"], entry["received_at"]
            p.index.add(entry["_id"], "", *where, sig)
        return len(p.index)
    writes: list[Awaitable[None]] = []
    async for doc in open_opinions(p.opinions.collection.database, since):
        s, location = doc["submission"], doc["submission"]["location"]
        sig = signature(compared_text(s["title"], s["content"]))
        where = location["district"], location.get("street"), doc["received_at"]
        p.index.add(doc["_id"], "", *where, sig)
        writes.append(p.entries.put(doc["_id"], *where, sig.tobytes()))
        if len(writes) == ENTRIES_AT_ONCE:  # one round trip each (group commit)
            await asyncio.gather(*writes)
            writes = []
    await asyncio.gather(*writes)
    await p.entries.mark_built()
    return len(p.index)
