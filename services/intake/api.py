"""Intake HTTP API: offices register opinions (one by one or by importing a sheet), attach
files, read and export their own; editors read all and merge, split and edit; anyone with a
receipt looks up its status."""

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from shared.auth import Principal, Role, require
from shared.clock import utcnow
from shared.events import KeptAs
from shared.files import RAW_FILE, FileName, FileRef
from shared.paging import Before
from shared.privacy import mask_phone
from shared.problems import Problem

from . import handlers, sheets
from .adapters import opinion_batches, opinion_page
from .domain import (
    STATUS_LABELS,
    Filing,
    Holder,
    Member,
    MemberEntry,
    Opinion,
    OpinionError,
    OpinionStatus,
    OpinionSubmission,
    Reveal,
    Stage,
    Supporter,
    Version,
    tracking_code_valid,
    tracking_secret,
)
from .handlers import Intake

router = APIRouter(prefix="/opinions", tags=["opinions"])
imports = APIRouter(prefix="/imports", tags=["import"])
attachments = APIRouter(prefix="/attachments", tags=["attachments"])
tracking = APIRouter(prefix="/track", tags=["tracking"])
members = APIRouter(prefix="/members", tags=["members"])


def ports(request: Request) -> Intake:
    return request.app.state.intake


Ports = Annotated[Intake, Depends(ports)]
Submitter = Annotated[Principal, Depends(require("opinions:submit"))]
Reader = Annotated[Principal, Depends(require("opinions:read"))]
Editor = Annotated[Principal, Depends(require("opinions:edit"))]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=100,
        pattern=r"^[\x21-\x7e]+$",
        description="Retrying with the same key returns the first result, never a second opinion.",
    ),
]
T = TypeVar("T")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def _run(action: Awaitable[T]) -> T:
    try:
        return await action
    except OpinionError as exc:
        if exc.field is None:
            raise Problem(exc.status, detail=str(exc)) from None
        raise Problem.of_field(exc.status, exc.field, str(exc), "unknown") from None


class JoinedCase(BaseModel):
    """The open opinion a new item was linked to as support (附议)."""

    id: str
    tracking_no: str
    supporters: int


class OpinionAccepted(BaseModel):
    id: str
    tracking_no: str
    tracking_secret: str = Field(description="With the tracking number, opens /track/{no}")
    received_at: datetime
    status: OpinionStatus
    joined: JoinedCase | None
    message: str


class OpinionView(BaseModel):
    id: str
    tracking_no: str
    office_id: str
    received_at: datetime
    status: OpinionStatus
    joined_to: str | None
    submission: OpinionSubmission
    supporters: dict[str, Supporter]
    attachments: dict[str, FileRef]
    versions: list[Version]
    closed_at: datetime | None
    filing: Filing | None = Field(description="立案 / 不立案 of a member's 提案/建议")
    holders: dict[str, Holder]
    reveals: dict[str, Reveal] = Field(description="Who saw the contact details, and when")


class TrackingView(BaseModel):
    """What the public receipt shows: no personal data, nothing internal."""

    tracking_no: str
    title: str
    status: OpinionStatus
    status_label: str
    received_at: datetime
    joined_tracking_no: str | None
    supporters: int
    stages: list[Stage] = Field(description="已受理, 已交办, 已签收, 已答复, 回访, 已评价, 已办结")


class ContactView(BaseModel):
    """The submitter's contact details, revealed in full (an audited action)."""

    name: str
    phone: str | None
    sector: str | None
    revealed_at: datetime


class MemberView(BaseModel):
    id: str
    office_id: str
    entry: MemberEntry
    enrolled_at: datetime


class FilingDecision(BaseModel):
    """立案 or 不立案 of a member's 提案/建议; 不立案 needs the reason the members are told."""

    decision: Literal["立案", "不立案"]
    reason: str = Field(default="", max_length=1000, description="不立案: required")
    kept_as: KeptAs | None = Field(
        default=None, description="不立案: kept as 社情民意信息 (the default, handled on) or 来信"
    )


class MergeRequest(BaseModel):
    into: str = Field(min_length=1, max_length=40, description="Id of the opinion to merge into")


class EditRequest(BaseModel):
    submission: OpinionSubmission = Field(
        description="The whole new submission; without submitter.phone the phone is kept"
    )
    note: str = Field(min_length=1, max_length=500, description="Why it was edited / 修改说明")


def _mask(submission: OpinionSubmission) -> OpinionSubmission:
    submitter = submission.submitter.model_copy(
        update={"phone": mask_phone(submission.submitter.phone)}
    )
    return submission.model_copy(update={"submitter": submitter})


def _view(opinion: Opinion, principal: Principal) -> OpinionView:
    view = OpinionView.model_validate(opinion, from_attributes=True)
    # Staff and departments work on the text; only the registering office needs to call the
    # submitter (the lead department may reveal the contact, see /contact).
    if principal.sees_all() or principal.role == Role.DEPARTMENT:
        view.submission = _mask(view.submission)
        view.versions = [
            v.model_copy(update={"submission": _mask(v.submission)}) for v in view.versions
        ]
    if principal.role == Role.DEPARTMENT:
        view.reveals = {}
    return view


async def _readable(p: Intake, opinion_id: str, principal: Principal) -> Opinion:
    """The opinion if the caller may read it: its office, staff, or a department that holds
    it (403 for a department that does not)."""
    opinion = await p.opinions.get(opinion_id)
    if principal.role == Role.DEPARTMENT:
        if opinion is None or not opinion.holds(principal.subject):
            raise Problem(
                403, detail=f"Opinion {opinion_id} is not assigned to you 未交办给本单位."
            )
        return opinion
    if opinion is None or not (principal.sees_all() or opinion.office_id == principal.subject):
        raise Problem(404, detail=f"No opinion {opinion_id} for this office.")
    return opinion


@router.post("", status_code=201, summary="登记 — register an opinion")
async def submit_opinion(
    body: OpinionSubmission,
    p: Ports,
    principal: Submitter,
    response: Response,
    key: IdempotencyKey = None,
) -> OpinionAccepted:
    reg = await _run(handlers.register_opinion(p, body, principal.subject, key))
    if reg.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    opinion, joined = reg.opinion, None
    message = f"已受理，受理编号 {opinion.tracking_no}"
    target_id = opinion.joined_to if opinion.status == OpinionStatus.SUPPORTING else None
    target = reg.joined or (await p.opinions.get(target_id) if target_id else None)
    if target is not None:
        joined = JoinedCase(
            id=target.id, tracking_no=target.tracking_no, supporters=len(target.supporters)
        )
        message = (
            f"与在办意见 {target.tracking_no} 内容相近，已作为附议并入该件"
            f"（现有附议 {joined.supporters} 条），受理编号 {opinion.tracking_no}"
        )
    return OpinionAccepted(
        id=opinion.id,
        tracking_no=opinion.tracking_no,
        tracking_secret=tracking_secret(p.tracking_keys, opinion.tracking_no),
        received_at=opinion.received_at,
        status=opinion.status,
        joined=joined,
        message=message,
    )


class SimilarCase(JoinedCase):
    """The open opinion a submission would join; its title only for the office's own."""

    title: str | None
    similarity: float


class SimilarAnswer(BaseModel):
    similar: SimilarCase | None
    message: str


@router.post("/similar", summary="Would this opinion join an open one as 附议? (stores nothing)")
async def similar_opinion(body: OpinionSubmission, p: Ports, principal: Submitter) -> SimilarAnswer:
    found = await handlers.similar_open(p, body, utcnow())
    if found is None:
        return SimilarAnswer(similar=None, message="未发现相近的在办意见，提交后将作为新件办理")
    target, similarity = found
    own = target.office_id == principal.subject
    similar = SimilarCase(
        id=target.id,
        tracking_no=target.tracking_no,
        supporters=len(target.supporters),
        title=target.submission.title if own else None,
        similarity=round(similarity, 3),
    )
    return SimilarAnswer(
        similar=similar, message=f"与在办意见 {target.tracking_no} 相近，提交后将作为附议并入该件"
    )


class OpinionRow(BaseModel):
    """One line of 我的意见."""

    id: str
    tracking_no: str
    title: str
    channel: str
    street: str | None
    status: OpinionStatus
    status_label: str
    received_at: datetime
    supporters: int
    member_id: str | None
    joined_to: str | None = Field(description="The opinion it joined (附议/并案), whose case it is")


@router.get("", summary="我的意见 — the office's opinions (editors: all), newest first")
async def list_opinions(
    p: Ports,
    principal: Reader,
    status: OpinionStatus | None = None,
    q: Annotated[str | None, Query(max_length=50, description="In the title, or a number")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Before = None,
) -> list[OpinionRow]:
    office = None if principal.sees_all() else principal.subject
    found = await opinion_page(p.opinions.collection.database, office, status, q, limit, before)
    return [
        OpinionRow(
            id=o.id,
            tracking_no=o.tracking_no,
            title=o.submission.title,
            channel=o.submission.channel,
            street=o.submission.location.street,
            status=o.status,
            status_label=STATUS_LABELS[o.status],
            received_at=o.received_at,
            supporters=len(o.supporters),
            member_id=o.submission.member_id,
            joined_to=o.joined_to,
        )
        for o in found
    ]


EXPORT_BATCH = 500


def _export_rows(docs: list[dict[str, Any]], mask: bool) -> list[list[str]]:
    return [sheets.export_row(Opinion.model_validate(doc), mask) for doc in docs]


@router.get(
    "/export",
    summary="Export the office's opinions (editors: all) as XLSX or CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, XLSX: {}}}},
)
async def export_opinions(
    p: Ports, principal: Reader, format: Literal["xlsx", "csv"] = "xlsx"
) -> Response:
    """Streamed: opinions are read in batches and turned into rows in a worker thread, so an
    export of every opinion holds neither the event loop nor all of them in memory. CSV goes
    out batch by batch; XLSX is built in a temporary file and sent from there."""
    office = None if principal.sees_all() else principal.subject
    mask = principal.sees_all()
    batches = opinion_batches(p.opinions.collection.database, office, EXPORT_BATCH)
    headers = {
        "Content-Disposition": f'attachment; filename="opinions-{principal.subject}.{format}"'
    }
    if format == "csv":

        async def parts() -> AsyncIterator[bytes]:
            yield sheets.csv_part([], first=True)
            async for docs in batches:
                yield sheets.csv_part(await asyncio.to_thread(_export_rows, docs, mask))

        return StreamingResponse(parts(), media_type="text/csv; charset=utf-8", headers=headers)
    export = sheets.XlsxExport()

    def add(docs: list[dict[str, Any]]) -> None:
        export.append(_export_rows(docs, mask))

    async for docs in batches:
        await asyncio.to_thread(add, docs)
    fd, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(fd)
    await asyncio.to_thread(export.save, path)
    return FileResponse(
        path, media_type=XLSX, headers=headers, background=BackgroundTask(os.unlink, path)
    )


@router.get("/{opinion_id}", summary="Read one opinion (an office sees only its own)")
async def read_opinion(opinion_id: str, p: Ports, principal: Reader) -> OpinionView:
    return _view(await _readable(p, opinion_id, principal), principal)


@router.post(
    "/{opinion_id}/contact",
    summary="查看联系方式 — the lead department reveals the submitter's contact (audited)",
)
async def reveal_contact(opinion_id: str, p: Ports, principal: Reader) -> ContactView:
    if principal.role != Role.DEPARTMENT:
        raise Problem(403, detail="Only the lead department (主办) reveals contact details here.")
    opinion, submitter = await _run(
        handlers.reveal_contact(
            p, opinion_id, principal.name, principal.role.value, principal.subject
        )
    )
    at = max(r.at for r in opinion.reveals.values())
    return ContactView(
        name=submitter.name, phone=submitter.phone, sector=submitter.sector, revealed_at=at
    )


@router.post(
    "/{opinion_id}/filing",
    summary="立案 — the registering office files a member's 提案/建议, or not (with the reason)",
)
async def decide_filing(
    opinion_id: str, body: FilingDecision, p: Ports, principal: Submitter
) -> OpinionView:
    opinion = await _run(
        handlers.decide_filing(
            p,
            opinion_id,
            principal.subject,
            body.decision == "立案",
            body.reason,
            body.kept_as,
            principal.name,
        )
    )
    return _view(opinion, principal)


@router.put("/{opinion_id}", summary="编辑 — edit an opinion; earlier versions are kept")
async def edit_opinion(
    opinion_id: str, body: EditRequest, p: Ports, principal: Editor
) -> OpinionView:
    opinion = await _run(handlers.edit(p, opinion_id, body.submission, principal.name, body.note))
    return _view(opinion, principal)


@router.post("/{opinion_id}/merge", summary="并案 — merge an opinion into another one")
async def merge_opinion(
    opinion_id: str, body: MergeRequest, p: Ports, principal: Editor
) -> OpinionView:
    target = await _run(handlers.merge(p, opinion_id, body.into, principal.name))
    return _view(target, principal)


@router.post("/{opinion_id}/split", summary="拆分 — detach an opinion from the one it joined")
async def split_opinion(opinion_id: str, p: Ports, principal: Editor) -> OpinionView:
    return _view(await _run(handlers.split(p, opinion_id, principal.name)), principal)


def _job_view(job: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in job.items() if k not in {"_id", "chunks", "next_chunk"}}
    return {"id": job["_id"], **view}


@imports.post(
    "",
    status_code=202,
    summary="批量导入 — import a CSV or XLSX sheet as a job (body: the file)",
    openapi_extra=RAW_FILE,
)
async def import_sheet(
    request: Request,
    p: Ports,
    principal: Submitter,
    filename: FileName,
    district: Annotated[
        str | None, Query(max_length=50, description="区 for rows that name none")
    ] = None,
) -> dict[str, Any]:
    data = await request.body()
    if not data:
        raise Problem(422, detail="The uploaded file is empty 上传文件为空.")
    try:
        job = await handlers.start_import(p, principal.subject, filename, data, district)
    except sheets.SheetError as exc:
        raise Problem(exc.status, detail=str(exc), **exc.extra) from None
    return _job_view(job)


@imports.get("/{job_id}", summary="Progress and per-row report of an import job")
async def read_import(job_id: str, p: Ports, principal: Reader) -> dict[str, Any]:
    job = await p.jobs.get(job_id)
    if job is None or not (principal.sees_all() or job["office_id"] == principal.subject):
        raise Problem(404, detail=f"No import job {job_id} for this office.")
    return _job_view(job)


@attachments.post(
    "/{opinion_id}",
    status_code=201,
    summary="Attach an image, PDF or Office file (body: the file)",
    openapi_extra=RAW_FILE,
)
async def upload_attachment(
    opinion_id: str, request: Request, p: Ports, principal: Submitter, filename: FileName
) -> dict[str, Any]:
    office = None if principal.sees_all() else principal.subject
    data = await request.body()
    attachment_id, ref = await _run(handlers.attach(p, opinion_id, office, filename, data))
    return {"id": attachment_id, **ref.model_dump(mode="json")}


@attachments.get("/{opinion_id}/{attachment_id}", summary="Download an attachment")
async def download_attachment(
    opinion_id: str, attachment_id: str, p: Ports, principal: Reader
) -> Response:
    opinion = await _readable(p, opinion_id, principal)
    ref = opinion.attachments.get(attachment_id)
    if ref is None:
        raise Problem(404, detail=f"No attachment {attachment_id} on opinion {opinion_id}.")
    data = await p.attachments.get(attachment_id, ref)
    return Response(
        data,
        media_type=ref.media_type,
        headers={"Content-Disposition": "attachment", "X-Content-Type-Options": "nosniff"},
    )


@tracking.get("/{tracking_no}", summary="查询 — public status lookup by tracking number + code")
async def track(
    tracking_no: str,
    p: Ports,
    code: Annotated[str, Query(min_length=1, max_length=64, description="The receipt's code")],
) -> TrackingView:
    # Same answer for an unknown number and a wrong code: numbers cannot be probed.
    unknown = Problem(404, detail="No opinion with this tracking number and code 编号或查询码有误.")
    if not tracking_code_valid(p.tracking_keys, tracking_no, code, utcnow()):
        raise unknown
    opinion_id = await p.numbers.opinion_of(tracking_no)
    opinion = None if opinion_id is None else await p.opinions.get(opinion_id)
    if opinion is None:
        raise unknown
    joined = None if opinion.joined_to is None else await p.opinions.get(opinion.joined_to)
    return TrackingView(
        tracking_no=opinion.tracking_no,
        title=opinion.submission.title,
        status=opinion.status,
        status_label=STATUS_LABELS[opinion.status],
        received_at=opinion.received_at,
        joined_tracking_no=joined.tracking_no if joined else None,
        supporters=len(opinion.supporters),
        stages=opinion.stages(),
    )


@members.post("", status_code=201, summary="委员/代表 — put a member on the office's roster")
async def enrol_member(body: MemberEntry, p: Ports, principal: Submitter) -> MemberView:
    member = await handlers.enrol_member(p, principal.subject, body)
    return MemberView.model_validate(member, from_attributes=True)


@members.get("", summary="The office's roster (editors: every office's)")
async def list_members(
    p: Ports,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many")] = 200,
) -> list[MemberView]:
    query = {} if principal.sees_all() else {"office_id": principal.subject}
    cursor = p.members.collection.find(query, {"outbox": 0}).limit(limit)
    found = [Member.model_validate(doc) async for doc in cursor]
    return [MemberView.model_validate(m, from_attributes=True) for m in found]


@members.get("/{member_id}", summary="One member of the office's roster")
async def read_member(member_id: str, p: Ports, principal: Reader) -> MemberView:
    member = await p.members.get(member_id)
    if member is None or not (principal.sees_all() or member.office_id == principal.subject):
        raise Problem(404, detail=f"No member {member_id} on this office's roster.")
    return MemberView.model_validate(member, from_attributes=True)
