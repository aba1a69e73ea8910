"""Follow-up HTTP API: the department inbox and actions, case reading, the submitter's feedback
link, supervision (extensions, escalation, overdue lists, 批示/采用, KPIs and exports), and the
administrator's holiday years."""

from collections.abc import Awaitable
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, Field

from shared.auth import Principal, Role, require
from shared.events import (
    DEPARTMENT_CODE,
    AdoptionLevel,
    Location,
    OpinionFile,
    Rating,
    ReplyResult,
)
from shared.files import RAW_FILE, FileName
from shared.paging import After, Limit, link_next
from shared.problems import Problem

from . import handlers
from .adapters import (
    CalendarOutlook,
    MovableClock,
    department_inbox,
    supervised,
    table_csv,
    table_xlsx,
)
from .domain import (
    Adoption,
    Assignment,
    AssignmentStatus,
    Attachment,
    Case,
    CaseError,
    CaseStatus,
    Feedback,
    Instruction,
    TimelineEntry,
    rates,
)
from .handlers import FollowupPorts
from .workdays import YearCalendar

router = APIRouter(tags=["cases"])
files = APIRouter(prefix="/files", tags=["cases"])
supervision = APIRouter(tags=["supervision"])
admin = APIRouter(tags=["administration"])
test_clock = APIRouter(tags=["testing"])


def ports(request: Request) -> FollowupPorts:
    return request.app.state.ports


Ports = Annotated[FollowupPorts, Depends(ports)]
Worker = Annotated[Principal, Depends(require("cases:work"))]
Reader = Annotated[Principal, Depends(require("cases:read"))]
Supervisor = Annotated[Principal, Depends(require("cases:supervise"))]
Admin = Annotated[Principal, Depends(require("*"))]


class CaseView(BaseModel):
    id: str
    tracking_no: str
    office_id: str
    title: str
    category: str
    urgency: str
    status: CaseStatus
    opened_at: datetime
    assignments: dict[str, Assignment]
    timeline: list[TimelineEntry]
    feedback_round: int
    feedback_due_at: datetime | None
    feedback: list[Feedback]
    reopened: int
    rating: Rating | None
    outcome: str | None
    closed_at: datetime | None
    instructions: list[Instruction]
    adoptions: list[Adoption]
    overdue: bool
    escalation_level: int
    opinion: OpinionFile | None = Field(
        description="The whole opinion (交办材料): content, location, submitter (masked), "
        "attachments (download from intake), supporters; null until intake's copy arrives"
    )
    merged_into: str | None


class InboxItem(BaseModel):
    id: str
    tracking_no: str
    title: str
    content: str | None = Field(description="From intake's copy; null until it arrives")
    location: Location | None
    attachments: int
    role: str
    status: str
    sign_due_at: datetime
    due_at: datetime
    overdue: bool
    escalation_level: int


class SupervisedItem(BaseModel):
    id: str
    tracking_no: str
    title: str
    office_id: str
    departments: dict[str, Assignment]
    escalation_level: int


Text = Annotated[str, Field(min_length=1, max_length=4000)]
Reason = Annotated[str, Field(min_length=1, max_length=500)]


class ReplyRequest(BaseModel):
    result: ReplyResult
    text: Text
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)


class InputRequest(BaseModel):
    text: Text


class ExtensionRequest(BaseModel):
    reason: Reason
    new_due: date = Field(description="The requested due day (Beijing time); due at its end")


class ReturnRequest(BaseModel):
    reason: Reason


class ExtensionDecision(BaseModel):
    department: str = Field(pattern=DEPARTMENT_CODE)
    approve: bool
    reason: str = Field(default="", max_length=500)


class EscalationRequest(BaseModel):
    department: str = Field(pattern=DEPARTMENT_CODE)
    level: int | None = Field(default=None, ge=0, le=2, description="0 催办, 1/2 督办")
    reason: Reason


class InstructionRequest(BaseModel):
    leader: str = Field(min_length=1, max_length=50, description="批示领导")
    text: Text


class AdoptionRequest(BaseModel):
    level: AdoptionLevel
    adopted_by: str = Field(min_length=1, max_length=100, description="采用单位")
    note: str = Field(default="", max_length=500)


class FeedbackRequest(BaseModel):
    rating: Rating
    comment: str = Field(default="", max_length=500)
    resolved: bool | None = Field(default=None, description="问题是否解决 (default: from reply)")


class FeedbackForm(BaseModel):
    tracking_no: str
    title: str
    replies: list[Assignment]


class ClockSetting(BaseModel):
    now: AwareDatetime


def _view(case: Case) -> CaseView:
    return CaseView.model_validate(case, from_attributes=True)


def _may_read(principal: Principal, case: Case) -> bool:
    if principal.role == Role.OFFICE:
        return case.office_id == principal.subject
    if principal.role == Role.DEPARTMENT:
        return principal.subject in case.assignments
    return principal.sees_all()


async def _run(action: Awaitable[Case]) -> CaseView:
    try:
        return _view(await action)
    except CaseError as exc:
        raise Problem(exc.status, detail=str(exc)) from None


# -- departments ----------------------------------------------------------------------------


@router.get("/inbox", summary="The department's assignments, soonest due first")
async def inbox(
    p: Ports,
    principal: Worker,
    status: AssignmentStatus | None = None,
    due_before: Annotated[AwareDatetime | None, Query(description="due at or before")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many")] = 200,
) -> list[InboxItem]:
    found = await department_inbox(p.cases.collection, principal.subject, status, due_before, limit)
    items = []
    for case in found:
        a = case.assignments[principal.subject]
        items.append(
            InboxItem(
                id=case.id,
                tracking_no=case.tracking_no,
                title=case.title,
                content=case.opinion.content if case.opinion else None,
                location=case.opinion.location if case.opinion else None,
                attachments=len(case.opinion.attachments) if case.opinion else 0,
                role=a.role,
                status=a.status,
                sign_due_at=a.sign_due_at,
                due_at=a.due_at,
                overdue=a.overdue,
                escalation_level=a.escalation_level,
            )
        )
    return items


@router.get("/cases/{case_id}", summary="A case with its timeline")
async def read_case(case_id: str, p: Ports, principal: Reader) -> CaseView:
    case = await p.cases.get(case_id)
    if principal.role == Role.DEPARTMENT and (case is None or not _may_read(principal, case)):
        # A department is refused the same way whether the case exists or not.
        raise Problem(403, detail=f"Case {case_id} is not assigned to you 未交办给本单位.")
    if case is None or not _may_read(principal, case):
        raise Problem(404, detail=f"No case {case_id} for you.")
    return _view(case)


@router.post("/cases/{case_id}/sign", summary="签收 — sign for an assignment (idempotent)")
async def sign_case(case_id: str, p: Ports, principal: Worker) -> CaseView:
    return await _run(handlers.sign(p, case_id, principal.subject, principal.name))


@router.post("/cases/{case_id}/reply", summary="答复 — the lead replies with a result")
async def reply_case(case_id: str, body: ReplyRequest, p: Ports, principal: Worker) -> CaseView:
    return await _run(
        handlers.reply(
            p,
            case_id,
            principal.subject,
            body.result,
            body.text,
            body.attachments,
            principal.name,
        )
    )


class UploadedFile(BaseModel):
    id: str = Field(description="Attach it to the reply as {name, file_id}")
    filename: str
    media_type: str
    size: int


@files.post(
    "/{case_id}",
    status_code=201,
    summary="上传答复附件 — a file (image, PDF, Office) the lead will attach to its reply",
    openapi_extra=RAW_FILE,
)
async def upload_file(
    case_id: str, request: Request, p: Ports, principal: Worker, filename: FileName
) -> UploadedFile:
    try:
        file_id, ref = await handlers.upload_file(
            p, case_id, principal.subject, filename, await request.body()
        )
    except CaseError as exc:
        raise Problem(exc.status, detail=str(exc)) from None
    return UploadedFile(id=file_id, **ref.model_dump(include={"filename", "media_type", "size"}))


@files.get("/{case_id}/{file_id}", summary="Download a reply's file")
async def download_file(case_id: str, file_id: str, p: Ports, principal: Reader) -> Response:
    case = await p.cases.get(case_id)
    ref = None if case is None or not _may_read(principal, case) else case.files.get(file_id)
    if ref is None:
        raise Problem(404, detail=f"No file {file_id} on case {case_id} for you.")
    return Response(
        await p.files.get(file_id, ref),
        media_type=ref.media_type,
        headers={"Content-Disposition": "attachment", "X-Content-Type-Options": "nosniff"},
    )


@router.post("/cases/{case_id}/input", summary="协办意见 — a co-handler's input to the lead")
async def give_input(case_id: str, body: InputRequest, p: Ports, principal: Worker) -> CaseView:
    return await _run(handlers.give_input(p, case_id, principal.subject, body.text, principal.name))


@router.post("/cases/{case_id}/extension", summary="申请延期 — ask for a later due date")
async def request_extension(
    case_id: str, body: ExtensionRequest, p: Ports, principal: Worker
) -> CaseView:
    return await _run(
        handlers.request_extension(
            p, case_id, principal.subject, body.reason, body.new_due, principal.name
        )
    )


@router.post("/cases/{case_id}/return", summary="退回 — return a wrong assignment")
async def return_case(case_id: str, body: ReturnRequest, p: Ports, principal: Worker) -> CaseView:
    return await _run(
        handlers.return_assignment(p, case_id, principal.subject, body.reason, principal.name)
    )


# -- the submitter --------------------------------------------------------------------------


@router.get("/feedback/{token}", tags=["feedback"], summary="What the submitter is asked to rate")
async def feedback_form(token: str, p: Ports) -> FeedbackForm:
    try:
        case_id, _ = p.tokens.verify(token, await p.clock.now())
    except CaseError as exc:
        raise Problem(exc.status, detail=str(exc)) from None
    case = await p.cases.get(case_id)
    if case is None:
        raise Problem(404, detail="No such case.")
    replies = [a for a in case.assignments.values() if a.result is not None]
    return FeedbackForm(tracking_no=case.tracking_no, title=case.title, replies=replies)


@router.post("/feedback/{token}", tags=["feedback"], summary="评价 — the submitter rates the reply")
async def give_feedback(token: str, body: FeedbackRequest, p: Ports) -> CaseView:
    return await _run(handlers.rate(p, token, body.rating, body.comment, body.resolved))


# -- supervisors ----------------------------------------------------------------------------


@supervision.post("/cases/{case_id}/extension/decision", summary="延期审批 — approve or refuse")
async def decide_extension(
    case_id: str, body: ExtensionDecision, p: Ports, principal: Supervisor
) -> CaseView:
    if not body.approve and not body.reason:
        raise Problem(
            422,
            detail="Invalid fields 字段有误: reason",
            errors=[{"field": "reason", "message": "a refusal needs a reason", "code": "missing"}],
        )
    return await _run(
        handlers.decide_extension(
            p, case_id, body.department, body.approve, body.reason, principal.name
        )
    )


@supervision.post("/cases/{case_id}/escalate", summary="催办/督办 by hand")
async def escalate_case(
    case_id: str, body: EscalationRequest, p: Ports, principal: Supervisor
) -> CaseView:
    return await _run(
        handlers.escalate(p, case_id, body.department, body.level, body.reason, principal.name)
    )


@supervision.post("/cases/{case_id}/instructions", summary="批示 — record a leader's instruction")
async def instruct_case(
    case_id: str, body: InstructionRequest, p: Ports, principal: Supervisor
) -> CaseView:
    return await _run(handlers.instruct(p, case_id, body.leader, body.text))


@supervision.post("/cases/{case_id}/adoptions", summary="采用 — record an adoption by level")
async def adopt_case(
    case_id: str, body: AdoptionRequest, p: Ports, principal: Supervisor
) -> CaseView:
    return await _run(handlers.adopt(p, case_id, body.level, body.adopted_by, body.note))


def _supervised(cases: list[Case]) -> list[SupervisedItem]:
    return [
        SupervisedItem(
            id=c.id,
            tracking_no=c.tracking_no,
            title=c.title,
            office_id=c.office_id,
            departments={d: a for d, a in c.assignments.items() if a.is_active()},
            escalation_level=c.escalation_level,
        )
        for c in cases
    ]


async def _supervised_page(
    p: FollowupPorts, kind: str, response: Response, after: str | None, limit: int
) -> list[SupervisedItem]:
    found = await supervised(p.cases.collection, kind, after, limit)
    link_next(response, [c.id for c in found], limit)
    return _supervised(found)


@supervision.get("/supervision/overdue", summary="Open work past its due date (超期)")
async def overdue(
    p: Ports, principal: Supervisor, response: Response, after: After = None, limit: Limit = 200
) -> list[SupervisedItem]:
    return await _supervised_page(p, "overdue", response, after, limit)


@supervision.get("/supervision/escalated", summary="Work under 督办 (level 1 or 2)")
async def escalated(
    p: Ports, principal: Supervisor, response: Response, after: After = None, limit: Limit = 200
) -> list[SupervisedItem]:
    return await _supervised_page(p, "escalated", response, after, limit)


@supervision.get("/supervision/extensions", summary="延期审批 — extension requests waiting")
async def extensions(
    p: Ports, principal: Supervisor, response: Response, after: After = None, limit: Limit = 200
) -> list[SupervisedItem]:
    return await _supervised_page(p, "extensions", response, after, limit)


Dimension = Literal["department", "office", "category", "member", "all"]
Month = Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")]


class KpiRow(BaseModel):
    dimension: str
    value: str
    month: str
    counters: dict[str, int]
    rates: dict[str, float | None]
    points: int = Field(description="履职积分 by the configured weights")


async def _kpi_rows(p: FollowupPorts, dimension: str, month: str | None) -> list[KpiRow]:
    """Rows of a dimension; ``member`` is 履职积分, one row per 委员/代表 and month."""
    facts = p.member_kpis if dimension == "member" else p.kpis
    return [
        KpiRow(
            dimension=dimension,
            value=row["value"],
            month=row["month"],
            counters=row["counters"],
            rates=rates(row["counters"]),
            points=p.points.points(row["counters"]),
        )
        for row in await facts.table(dimension, month)
    ]


@supervision.get("/kpis", summary="KPIs by department, office, category or overall, per month")
async def kpis(
    p: Ports, principal: Supervisor, dimension: Dimension = "department", month: Month = None
) -> list[KpiRow]:
    return await _kpi_rows(p, dimension, month)


EXPORT_COLUMNS: list[tuple[str, str]] = [
    ("timely_sign_rate", "及时签收率"),
    ("on_time_rate", "按时办结率"),
    ("resolution_rate", "解决率"),
    ("satisfaction_rate", "满意率"),
    ("fully_satisfied_rate", "满意(单项)率"),
]
EXPORT_COUNTERS: list[tuple[str, str]] = [
    ("sign_due", "应签收"),
    ("signed_on_time", "按时签收"),
    ("reply_due", "应办结"),
    ("replied_on_time", "按时办结"),
    ("overdue", "超期"),
    ("urged", "催办"),
    ("escalated", "督办"),
    ("feedback", "评价数"),
    ("submitted", "提交"),
]


@supervision.get(
    "/kpis/export",
    summary="KPI table as CSV or XLSX (月度通报)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, "application/vnd.ms-excel": {}}}},
)
async def export_kpis(
    p: Ports,
    principal: Supervisor,
    dimension: Dimension = "department",
    month: Month = None,
    format: Literal["csv", "xlsx"] = "csv",
) -> Response:
    header = ["维度", "名称", "月份"] + [t for _, t in EXPORT_COLUMNS]
    header += [t for _, t in EXPORT_COUNTERS] + ["履职积分"]
    rows: list[list[Any]] = [
        [r.dimension, r.value, r.month]
        + [r.rates[k] for k, _ in EXPORT_COLUMNS]
        + [r.counters.get(k, 0) for k, _ in EXPORT_COUNTERS]
        + [r.points]
        for r in await _kpi_rows(p, dimension, month)
    ]
    name = f"kpis-{dimension}-{month or 'all'}"
    if format == "xlsx":
        media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        content = table_xlsx(name, header, rows)
    else:
        media, content = "text/csv; charset=utf-8", table_csv(header, rows)
    disposition = f'attachment; filename="{name}.{format}"'
    return Response(content, media_type=media, headers={"Content-Disposition": disposition})


# -- administrators -------------------------------------------------------------------------


# The years a calendar can be loaded for (as YearCalendar.year).
CalendarYear = Annotated[int, Path(ge=2000, le=2100)]


@admin.put("/calendar/{year}", summary="Load a year's holidays and adjusted workdays (调休)")
async def put_calendar(
    year: CalendarYear, body: YearCalendar, p: Ports, principal: Admin
) -> YearCalendar:
    if body.year != year:
        raise Problem(
            422,
            detail="Invalid fields 字段有误: year",
            errors=[{"field": "year", "message": f"must be {year}", "code": "mismatch"}],
        )
    wrong = [d.isoformat() for d in [*body.holidays, *body.workdays] if d.year != year]
    if wrong:
        raise Problem(
            422,
            detail=f"Invalid fields 字段有误: dates outside {year}: {', '.join(wrong[:10])}",
            errors=[{"field": "holidays/workdays", "message": "outside the year", "code": "year"}],
        )
    await p.calendars.put(body)
    return body


@admin.get(
    "/calendar/status",
    summary="This year's and next year's holiday calendar: official, loaded or assumed",
)
async def calendar_status(p: Ports, principal: Reader) -> CalendarOutlook:
    return await p.calendars.outlook(await p.clock.now())


@admin.get("/calendar/{year}", summary="A loaded year, if any")
async def get_calendar(year: CalendarYear, p: Ports, principal: Reader) -> YearCalendar:
    found = await p.calendars.get(year)
    if found is None:
        raise Problem(404, detail=f"No loaded calendar for {year} (the built-in one may know it).")
    return found


@test_clock.put("/test-clock", summary="Move the test clock (only with MINYI_TEST_CLOCK=1)")
async def set_clock(body: ClockSetting, request: Request, principal: Admin) -> dict[str, str]:
    clock: MovableClock = request.app.state.clock
    await clock.set(body.now)
    return {"now": (await clock.now()).isoformat()}
