"""Follow-up HTTP API: the department inbox and actions, case reading, the submitter's feedback
link, supervision (extensions, escalation, overdue lists, 批示/采用, KPIs and exports), and the
administrator's holiday years."""

from collections.abc import Awaitable
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, Field, field_validator

from shared.auth import Principal, Role, require
from shared.events import (
    DEPARTMENT_CODE,
    AdoptionLevel,
    Location,
    OpinionFile,
    Rating,
    ReplyResult,
    RequestKind,
)
from shared.files import RAW_FILE, FileName
from shared.paging import After, Limit, link_next
from shared.problems import Problem

from . import handlers
from .adapters import (
    CalendarOutlook,
    MovableClock,
    awaiting_review,
    department_inbox,
    report_docx,
    report_list,
    supervised,
    table_csv,
    table_xlsx,
    themes_of,
)
from .domain import (
    Adoption,
    Assignment,
    AssignmentStatus,
    Attachment,
    Callback,
    Case,
    CaseError,
    CaseStatus,
    Draft,
    Feedback,
    Grading,
    Instruction,
    LinkedOpinion,
    Report,
    ReportStatus,
    ReturnClaim,
    Review,
    ReviewRules,
    SupervisionOrder,
    Theme,
    ThemeTask,
    TimelineEntry,
    rates,
)
from .domain.reports import ReportAdoption, ReportInstruction, ReportSource, SignOff, Submission
from .handlers import FollowupPorts
from .workdays import YearCalendar

router = APIRouter(tags=["cases"])
files = APIRouter(prefix="/files", tags=["cases"])
supervision = APIRouter(tags=["supervision"])
reviews = APIRouter(tags=["review"])
reports = APIRouter(tags=["reports"])
admin = APIRouter(tags=["administration"])
test_clock = APIRouter(tags=["testing"])


def ports(request: Request) -> FollowupPorts:
    return request.app.state.ports


Ports = Annotated[FollowupPorts, Depends(ports)]
Worker = Annotated[Principal, Depends(require("cases:work"))]
Reader = Annotated[Principal, Depends(require("cases:read"))]
Supervisor = Annotated[Principal, Depends(require("cases:supervise"))]
Admin = Annotated[Principal, Depends(require("*"))]
# 分类 staff (editors, admins): 更正诉求类型.
Classifier = Annotated[Principal, Depends(require("cases:classify"))]
# 审核: supervisors and the registering offices review replies.
Reviewer = Annotated[Principal, Depends(require("replies:review"))]
# 信息专报: editors compile, revise and submit; supervisors sign off; both record the outcome.
ReportReader = Annotated[Principal, Depends(require("reports:read"))]
ReportEditor = Annotated[Principal, Depends(require("reports:edit"))]
ReportSigner = Annotated[Principal, Depends(require("reports:sign"))]
ReportOutcome = Annotated[Principal, Depends(require("reports:outcome"))]


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
    kind: RequestKind | None = Field(description="诉求类型 (咨询/求助/建议/投诉/举报)")
    callbacks: list[Callback] = Field(description="电话回访 and 抽查回访 by platform staff")
    supervision_orders: list[SupervisionOrder] = Field(description="督办单")
    audit_callback: Literal["due", "done"] | None = Field(description="抽查回访: picked, made")
    return_review: bool = Field(description="A 退单 (or its dispute) waits for a decision")
    awaiting_review: bool = Field(description="A reply waits for review (审核中)")


class InboxItem(BaseModel):
    id: str
    tracking_no: str
    title: str
    content: str | None = Field(description="From intake's copy; null until it arrives")
    location: Location | None
    attachments: int
    role: str
    status: str
    respond_due_at: datetime | None = Field(description="响应期限 (the lead's)")
    responded_at: datetime | None
    sign_due_at: datetime
    due_at: datetime
    overdue: bool
    escalation_level: int
    cards: dict[str, Literal["yellow", "red"]] = Field(
        description="黄牌/红牌 by clock: respond (响应), sign (签收), reply (办结)"
    )
    return_claim: ReturnClaim | None = Field(description="申请退单 and its review")


class SupervisedItem(BaseModel):
    id: str
    tracking_no: str
    title: str
    office_id: str
    departments: dict[str, Assignment]
    escalation_level: int


Text = Annotated[str, Field(min_length=1, max_length=4000)]
Reason = Annotated[str, Field(min_length=1, max_length=500)]


class ReplyRequest(Grading):
    """答复; a filed (立案) 提案/建议 is graded A/B/C/D, a B with ``plan`` and ``plan_due``."""

    result: ReplyResult
    text: Text
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)


class InputRequest(BaseModel):
    text: Text


class ExtensionRequest(BaseModel):
    reason: Reason
    new_due: date = Field(description="The requested due day (Beijing time); due at its end")


class ResponseRequest(BaseModel):
    how: str = Field(
        min_length=1, max_length=500, description="How the submitter was contacted (电话/上门)"
    )


class ReturnRequest(BaseModel):
    reason_code: str = Field(
        min_length=1, max_length=50, description="退单理由代码 (GET /returns/codes)"
    )
    responsible_unit: str = Field(min_length=2, max_length=100, description="应承办单位")
    evidence: str = Field(min_length=5, max_length=2000, description="依据: why that unit")
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)


class DisputeRequest(BaseModel):
    text: Reason


class ReturnDecision(BaseModel):
    department: str = Field(pattern=DEPARTMENT_CODE)
    accept: bool
    reason: str = Field(default="", max_length=500)


class CallbackRequest(BaseModel):
    reached: bool
    rating: Rating | None = None
    resolved: bool | None = None
    note: str = Field(default="", max_length=500)


class FeedbackReviewRequest(BaseModel):
    decision: Literal["redo", "unreasonable"] = Field(description="重办 or 不合理诉求")
    reason: Reason


class SupervisionResult(BaseModel):
    result: Text


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


def _invalid(field: str, message: str, code: str) -> Problem:
    return Problem(
        422,
        detail=f"Invalid fields 字段有误: {field}",
        errors=[{"field": field, "message": message, "code": code}],
    )


async def _run(action: Awaitable[Case]) -> CaseView:
    try:
        return _view(await action)
    except CaseError as exc:
        if exc.field is None:
            raise Problem(exc.status, detail=str(exc)) from None
        raise Problem.of_field(exc.status, exc.field, str(exc)) from None


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
                respond_due_at=a.respond_due_at,
                responded_at=a.responded_at,
                sign_due_at=a.sign_due_at,
                due_at=a.due_at,
                overdue=a.overdue,
                escalation_level=a.escalation_level,
                cards=a.cards,
                return_claim=a.return_claim,
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
            Grading(grade=body.grade, plan=body.plan, plan_due=body.plan_due),
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


@router.post("/cases/{case_id}/respond", summary="响应 — first contact with the submitter")
async def respond_case(
    case_id: str, body: ResponseRequest, p: Ports, principal: Worker
) -> CaseView:
    return await _run(handlers.respond(p, case_id, principal.subject, body.how, principal.name))


class KindCorrection(BaseModel):
    kind: RequestKind = Field(description="诉求类型: 咨询 / 求助 / 建议 / 投诉 / 举报")


@router.post(
    "/cases/{case_id}/kind",
    summary="更正诉求类型 — staff correct the kind; 办结 counted again from 交办",
)
async def correct_kind(
    case_id: str, body: KindCorrection, p: Ports, principal: Classifier
) -> CaseView:
    return await _run(handlers.correct_kind(p, case_id, body.kind, principal.name))


@router.get("/returns/codes", summary="退单理由代码 — the reason codes a return may give")
async def return_codes(p: Ports, principal: Reader) -> dict[str, str]:
    return p.policy.return_codes


@router.post(
    "/cases/{case_id}/return",
    summary="申请退单 — ask to return a wrong assignment, with a reason code and evidence",
)
async def return_case(case_id: str, body: ReturnRequest, p: Ports, principal: Worker) -> CaseView:
    if body.reason_code not in p.policy.return_codes:
        raise _invalid("reason_code", f"one of {', '.join(p.policy.return_codes)}", "enum")
    evidence = f"应由{body.responsible_unit}承办: {body.evidence}"
    return await _run(
        handlers.request_return(
            p,
            case_id,
            principal.subject,
            body.reason_code,
            evidence,
            body.attachments,
            principal.name,
        )
    )


@router.post("/cases/{case_id}/return-dispute", summary="退单申诉 — contest a rejection (终审)")
async def dispute_return(
    case_id: str, body: DisputeRequest, p: Ports, principal: Worker
) -> CaseView:
    return await _run(
        handlers.dispute_return(p, case_id, principal.subject, body.text, principal.name)
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
        raise _invalid("reason", "a refusal needs a reason 驳回须说明理由", "missing")
    return await _run(
        handlers.decide_extension(
            p, case_id, body.department, body.approve, body.reason, principal.name
        )
    )


@supervision.post(
    "/cases/{case_id}/return-review", summary="退单审核 / 终审 — accept or reject a return"
)
async def decide_return(
    case_id: str, body: ReturnDecision, p: Ports, principal: Supervisor
) -> CaseView:
    if not body.accept and not body.reason:
        raise _invalid("reason", "a rejection needs a reason 驳回须说明理由", "missing")
    return await _run(
        handlers.decide_return(
            p, case_id, body.department, body.accept, body.reason, principal.name
        )
    )


@supervision.post("/cases/{case_id}/callback", summary="电话回访 — the platform's phone callback")
async def call_back(
    case_id: str, body: CallbackRequest, p: Ports, principal: Supervisor
) -> CaseView:
    if body.reached and body.rating is None:
        raise _invalid("rating", "the rating is needed when the submitter was reached", "missing")
    return await _run(
        handlers.call_back(
            p, case_id, body.reached, body.rating, body.resolved, body.note, principal.name
        )
    )


@supervision.post(
    "/cases/{case_id}/feedback-review", summary="复核 — an 不满意: 重办 or 不合理诉求"
)
async def review_feedback(
    case_id: str, body: FeedbackReviewRequest, p: Ports, principal: Supervisor
) -> CaseView:
    return await _run(
        handlers.review_feedback(p, case_id, body.decision, body.reason, principal.name)
    )


@supervision.post(
    "/cases/{case_id}/supervision-order/close", summary="督办单办结 — close the open 督办单"
)
async def close_supervision(
    case_id: str, body: SupervisionResult, p: Ports, principal: Supervisor
) -> CaseView:
    return await _run(handlers.close_supervision(p, case_id, body.result, principal.name))


@supervision.post(
    "/cases/{case_id}/audit-callback", summary="抽查回访 — call a closed case picked at random"
)
async def audit_call(
    case_id: str, body: CallbackRequest, p: Ports, principal: Supervisor
) -> CaseView:
    if body.reached and (body.rating is None or body.resolved is None):
        missing = "rating" if body.rating is None else "resolved"
        raise _invalid(missing, "rating and resolved are needed when reached", "missing")
    return await _run(
        handlers.audit_call(
            p, case_id, body.reached, body.rating, body.resolved, body.note, principal.name
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


@supervision.get(
    "/supervision/waiting/{what}",
    summary="What waits for a supervisor: returns (退单审核), reviews (复核), orders (督办单), "
    "audits (抽查回访)",
)
async def waiting_cases(
    what: Literal["returns", "reviews", "orders", "audits"],
    p: Ports,
    principal: Supervisor,
    response: Response,
    after: After = None,
    limit: Limit = 200,
) -> list[CaseView]:
    found = await supervised(p.cases.collection, what, after, limit)
    link_next(response, [c.id for c in found], limit)
    return [_view(c) for c in found]


# -- 履职 (一人一档, annual minimums, 履职报告) ---------------------------------------------------

Year = Annotated[int, Query(ge=2000, le=2100, description="The year (Beijing time)")]
MemberId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="The member id")]


class MonthRecord(BaseModel):
    month: str
    counters: dict[str, int]
    points: int


class MemberRecord(BaseModel):
    """一人一档: a member's 履职 in a year."""

    member_id: str
    name: str | None
    kind: str | None
    office_id: str | None
    year: int
    months: list[MonthRecord]
    totals: dict[str, int]
    points: int = Field(description="履职积分 by the configured weights")
    minimum: int | None = Field(description="The year's minimum for the member's kind")
    below_minimum: bool


def _record(found: handlers.MemberYear) -> MemberRecord:
    m = found.member
    return MemberRecord(
        member_id=found.member_id,
        name=m.name if m else None,
        kind=m.kind if m else None,
        office_id=m.office_id if m else None,
        year=found.year,
        months=[MonthRecord.model_validate(row) for row in found.months],
        totals=found.totals,
        points=found.points,
        minimum=found.minimum,
        below_minimum=found.minimum is not None and found.points < found.minimum,
    )


async def _member_record(
    p: FollowupPorts, principal: Principal, member_id: str, year: int
) -> MemberRecord:
    found = await handlers.member_year(p, member_id, year)
    office = found.member.office_id if found.member else None
    if not principal.sees_all() and not (
        principal.role == Role.OFFICE and office == principal.subject
    ):
        raise Problem(404, detail=f"No member {member_id} for you.")
    return _record(found)


@router.get(
    "/members/{member_id}/record", tags=["supervision"], summary="一人一档 — a member's year"
)
async def member_record(member_id: str, year: Year, p: Ports, principal: Reader) -> MemberRecord:
    return await _member_record(p, principal, member_id, year)


@supervision.get(
    "/members/below-minimum", summary="Members below their kind's annual 履职积分 minimum"
)
async def members_below_minimum(
    year: Year, p: Ports, principal: Supervisor, limit: Limit = 200
) -> list[MemberRecord]:
    return [_record(found) for found in await handlers.below_minimum(p, year, limit)]


@router.get(
    "/members/{member_id}/report",
    tags=["supervision"],
    summary="履职报告 — a member's year as CSV or XLSX",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, "application/vnd.ms-excel": {}}}},
)
async def member_report(
    member_id: MemberId,
    year: Year,
    p: Ports,
    principal: Reader,
    format: Literal["csv", "xlsx"] = "csv",
) -> Response:
    record = await _member_record(p, principal, member_id, year)
    names = sorted(record.totals)
    header = ["委员/代表", "类别", "月份", *names, "履职积分"]
    who = [record.name or record.member_id, record.kind or ""]
    rows: list[list[Any]] = [
        [*who, m.month, *(m.counters.get(n, 0) for n in names), m.points] for m in record.months
    ]
    rows.append([*who, f"{year}年合计", *(record.totals[n] for n in names), record.points])
    minimum = "—" if record.minimum is None else record.minimum
    rows.append([*who, "年度最低积分", *([""] * len(names)), minimum])
    return _table(f"report-{member_id}-{year}", header, rows, format)


Dimension = Literal["department", "office", "category", "member", "all"]
Month = Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")]


# -- 每月一题 (主动治理) ------------------------------------------------------------------------

MonthValue = Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")]


class ThemeRequest(BaseModel):
    model_config = {"str_strip_whitespace": True}  # a blank title or task is no title or task

    month: MonthValue
    title: str = Field(min_length=1, max_length=100)
    source: Literal["hot_topic", "kpi"] = Field(description="热点话题 or 指标")
    source_ref: str = Field(min_length=1, max_length=200, description="Which topic or KPI row")
    department: str = Field(pattern=DEPARTMENT_CODE, description="牵头单位")
    tasks: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=30
    )


class ThemeView(BaseModel):
    id: str
    month: str
    title: str
    source: str
    source_ref: str
    department: str
    created_by: str
    created_at: datetime
    tasks: dict[str, ThemeTask]
    opinions: dict[str, LinkedOpinion]
    progress: float = Field(description="Share of tasks done, 0–1")


class TaskDone(BaseModel):
    note: str = Field(default="", max_length=500)


class ThemeLink(BaseModel):
    opinion_id: str = Field(min_length=1, max_length=64)


def _theme_view(theme: Theme) -> ThemeView:
    return ThemeView(**theme.model_dump(exclude={"version", "handled"}), progress=theme.progress)


async def _theme_run(action: Awaitable[Theme]) -> ThemeView:
    try:
        return _theme_view(await action)
    except CaseError as exc:
        raise Problem(exc.status, detail=str(exc)) from None


@supervision.post("/themes", status_code=201, summary="每月一题 — pick a theme for the month")
async def open_theme(body: ThemeRequest, p: Ports, principal: Supervisor) -> ThemeView:
    return _theme_view(
        await handlers.open_theme(
            p,
            body.month,
            body.title,
            body.source,
            body.source_ref,
            body.department,
            body.tasks,
            principal.name,
        )
    )


@router.get(
    "/themes", tags=["supervision"], summary="每月一题 with progress (a department: its own)"
)
async def list_themes(
    p: Ports, principal: Reader, month: Month = None, limit: Limit = 200
) -> list[ThemeView]:
    department = principal.subject if principal.role == Role.DEPARTMENT else None
    found = await themes_of(p.themes.collection, month, department, limit)
    return [_theme_view(t) for t in found]


@router.post(
    "/themes/{theme_id}/tasks/{task}/done",
    tags=["supervision"],
    summary="A task of the theme done (its owning department or a supervisor)",
)
async def complete_task(
    theme_id: str, task: str, body: TaskDone, p: Ports, principal: Reader
) -> ThemeView:
    if principal.role != Role.DEPARTMENT and not principal.can("cases:supervise"):
        raise Problem(403, detail="Only the owning department or a supervisor 仅牵头单位或督查室.")
    department = principal.subject if principal.role == Role.DEPARTMENT else None
    return await _theme_run(
        handlers.complete_task(p, theme_id, task, body.note, principal.name, department)
    )


@supervision.post("/themes/{theme_id}/opinions", summary="Link an opinion to the theme")
async def link_opinion(
    theme_id: str, body: ThemeLink, p: Ports, principal: Supervisor
) -> ThemeView:
    return await _theme_run(handlers.link_to_theme(p, theme_id, body.opinion_id, principal.name))


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
    ("response_rate", "响应率"),
    ("timely_sign_rate", "及时签收率"),
    ("on_time_rate", "按时办结率"),
    ("resolution_rate", "解决率(群众评价)"),
    ("reported_resolution_rate", "解决率(部门自报)"),
    ("resolution_gap", "解决率差"),
    ("audit_resolution_rate", "抽查解决率"),
    ("audit_satisfaction_rate", "抽查满意率"),
    ("satisfaction_rate", "满意率"),
    ("fully_satisfied_rate", "满意(单项)率"),
    ("review_on_time_rate", "审核按时率"),
    ("review_hours", "平均审核时长(小时)"),
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
    ("unreasonable", "不合理诉求"),
    ("return_requests", "申请退单"),
    ("returned", "退单通过"),
    ("returns_rejected", "退单驳回"),
    ("yellow_cards", "黄牌"),
    ("red_cards", "红牌"),
    ("supervision_orders", "督办单"),
    ("audit_callbacks", "抽查回访"),
    ("submitted", "提交"),
    ("reviewed", "审核"),
    ("sent_back", "审核退回"),
    ("review_overdue", "审核超期"),
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
    return _table(f"kpis-{dimension}-{month or 'all'}", header, rows, format)


def _table(name: str, header: list[str], rows: list[list[Any]], format: str) -> Response:
    """A table as a CSV or XLSX download."""
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


# -- 审核: review of replies ----------------------------------------------------------------


class ReviewItem(BaseModel):
    """A reply waiting for review, with what the reviewer needs to decide."""

    id: str
    tracking_no: str
    title: str
    office_id: str
    category: str
    urgency: str
    department: str
    department_name: str
    due_at: datetime = Field(description="The department's due date (办理期限)")
    review: Review
    overdue: bool = Field(description="The review deadline has passed (审核超期)")


class ReviewDecision(BaseModel):
    department: str = Field(pattern=DEPARTMENT_CODE)
    approve: bool
    reason: str = Field(default="", max_length=500, description="退回理由 (needed to send back)")


def _reviewing_office(principal: Principal) -> str | None:
    """The office that reviews as itself; None for a supervisor (or administrator)."""
    return principal.subject if principal.role == Role.OFFICE else None


@reviews.get("/reviews", summary="审核 — replies waiting for review, oldest case first")
async def review_queue(
    p: Ports, principal: Reviewer, response: Response, after: After = None, limit: Limit = 200
) -> list[ReviewItem]:
    office = _reviewing_office(principal)
    found = await awaiting_review(p.cases.collection, office, after, limit)
    link_next(response, [c.id for c in found], limit)
    now = await p.clock.now()
    items = []
    for case in found:
        for a in case.assignments.values():
            review = a.review
            if a.status != AssignmentStatus.REVIEWING or review is None:
                continue
            if office is not None and review.reviewer != "office":
                continue  # for the supervision office only
            items.append(
                ReviewItem(
                    id=case.id,
                    tracking_no=case.tracking_no,
                    title=case.title,
                    office_id=case.office_id,
                    category=case.category,
                    urgency=case.urgency,
                    department=a.department,
                    department_name=a.department_name,
                    due_at=a.due_at,
                    review=review,
                    overdue=now > review.due_at,
                )
            )
    return items


@reviews.post("/cases/{case_id}/review", summary="审核 — approve the reply or send it back")
async def review_case(
    case_id: str, body: ReviewDecision, p: Ports, principal: Reviewer
) -> CaseView:
    if not body.approve and not body.reason.strip():
        raise Problem(
            422,
            detail="Invalid fields 字段有误: reason",
            errors=[
                {
                    "field": "reason",
                    "message": "退回须写明理由",
                    "message_en": "sending a reply back needs a reason",
                    "code": "missing",
                }
            ],
        )
    case = await p.cases.get(case_id)
    if case is None or not _may_read(principal, case):
        raise Problem(404, detail=f"No case {case_id} for you 未找到该案件.")
    office = _reviewing_office(principal)
    return await _run(
        handlers.review_reply(
            p, case_id, body.department, body.approve, body.reason, principal.name, office
        )
    )


@reviews.get("/review/rules", summary="Which replies are reviewed (审核规则)")
async def review_rules(p: Ports, principal: Reviewer) -> ReviewRules:
    return await p.reviews.get()


@reviews.put("/review/rules", summary="Set which replies are reviewed (审核规则)")
async def put_review_rules(body: ReviewRules, p: Ports, principal: Supervisor) -> ReviewRules:
    await p.reviews.put(body)
    return body


# -- 信息专报: information reports --------------------------------------------------------

Unit = Annotated[str, Field(min_length=1, max_length=100)]
ReportTitle = Annotated[str, Field(min_length=1, max_length=100)]
ReportText = Annotated[str, Field(min_length=1, max_length=20000)]


class DraftRequest(BaseModel):
    title: ReportTitle
    text: ReportText = Field(description="正文; paragraphs separated by line breaks")
    send_to: list[Unit] = Field(min_length=1, max_length=20, description="报送单位")
    copy_to: list[Unit] = Field(default_factory=list, max_length=20, description="抄送单位")


class ReportRequest(DraftRequest):
    number: str = Field(min_length=1, max_length=30, description="编号, e.g. 2026年第3期")
    unit: Unit = Field(description="编发单位")
    opinion_ids: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        min_length=1, max_length=50, description="来源意见 (each must have a case)"
    )
    topic_id: str | None = Field(
        default=None, min_length=1, max_length=100, description="专题 it comes from (reference)"
    )

    @field_validator("opinion_ids")
    @classmethod
    def distinct(cls, ids: list[str]) -> list[str]:
        if len(set(ids)) != len(ids):
            raise ValueError("来源意见重复 / an opinion is named twice")
        return ids


class SignOffRequest(BaseModel):
    version: int = Field(ge=1, description="The draft signed off: it must be the newest")


class SubmitRequest(BaseModel):
    level: AdoptionLevel = Field(description="报送 level: 区/市/省/全国")


class ReportView(BaseModel):
    id: str
    number: str
    unit: str
    topic_id: str | None
    sources: list[ReportSource]
    status: ReportStatus
    drafts: list[Draft]
    signed_off: SignOff | None
    submissions: list[Submission]
    adoptions: list[ReportAdoption]
    instructions: list[ReportInstruction]
    timeline: list[TimelineEntry]
    created_by: str
    created_at: datetime


def _report_view(report: Report) -> ReportView:
    return ReportView.model_validate(report, from_attributes=True)


async def _on_report(action: Awaitable[Report]) -> ReportView:
    try:
        return _report_view(await action)
    except CaseError as exc:
        raise Problem(exc.status, detail=str(exc)) from None


@reports.post("/reports", status_code=201, summary="编辑 — compile a report from opinions")
async def compile_report(body: ReportRequest, p: Ports, principal: ReportEditor) -> ReportView:
    def first_draft(now: datetime) -> Draft:
        return Draft(
            version=1,
            title=body.title,
            text=body.text,
            send_to=body.send_to,
            copy_to=body.copy_to,
            by=principal.name,
            at=now,
        )

    try:
        report = await handlers.compile_report(
            p, body.number, body.unit, body.topic_id, body.opinion_ids, first_draft
        )
    except handlers.UnknownOpinions as exc:
        fields = [f"opinion_ids.{i}" for i in exc.positions]
        raise Problem(
            422,
            detail=f"Invalid fields 字段有误: {', '.join(fields)}",
            errors=[
                {
                    "field": field,
                    "message": "未找到该意见的案件（尚未交办或不存在）",
                    "message_en": "no case for this opinion (not assigned yet, or unknown)",
                    "code": "unknown",
                }
                for field in fields
            ],
        ) from None
    return _report_view(report)


@reports.get("/reports", summary="信息专报, oldest first")
async def list_reports(
    p: Ports, principal: ReportReader, response: Response, after: After = None, limit: Limit = 200
) -> list[ReportView]:
    found = await report_list(p.reports.collection, after, limit)
    link_next(response, [r.id for r in found], limit)
    return [_report_view(r) for r in found]


@reports.get("/reports/{report_id}", summary="A report with its drafts and timeline")
async def read_report(report_id: str, p: Ports, principal: ReportReader) -> ReportView:
    return await _on_report(handlers.load_report(p, report_id))


@reports.put("/reports/{report_id}/draft", summary="修改 — a new draft (voids a 签发)")
async def revise_report(
    report_id: str, body: DraftRequest, p: Ports, principal: ReportEditor
) -> ReportView:
    return await _on_report(
        handlers.change_report(
            p,
            report_id,
            lambda r, now: r.revise(
                body.title, body.text, body.send_to, body.copy_to, principal.name, now
            ),
        )
    )


@reports.post("/reports/{report_id}/sign-off", summary="签发 — sign off the newest draft")
async def sign_off_report(
    report_id: str, body: SignOffRequest, p: Ports, principal: ReportSigner
) -> ReportView:
    return await _on_report(
        handlers.change_report(
            p, report_id, lambda r, now: r.sign_off(body.version, principal.name, now)
        )
    )


@reports.post("/reports/{report_id}/submission", summary="报送 — send the report up a level")
async def submit_report(
    report_id: str, body: SubmitRequest, p: Ports, principal: ReportEditor
) -> ReportView:
    return await _on_report(
        handlers.change_report(
            p, report_id, lambda r, now: r.submit(body.level, principal.name, now)
        )
    )


@reports.post("/reports/{report_id}/adoptions", summary="采用 — credited to every source opinion")
async def adopt_report(
    report_id: str, body: AdoptionRequest, p: Ports, principal: ReportOutcome
) -> ReportView:
    return await _on_report(
        handlers.change_report(
            p, report_id, lambda r, now: r.adopt(body.level, body.adopted_by, body.note, now)
        )
    )


@reports.post(
    "/reports/{report_id}/instructions", summary="批示 — credited to every source opinion"
)
async def instruct_report(
    report_id: str, body: InstructionRequest, p: Ports, principal: ReportOutcome
) -> ReportView:
    return await _on_report(
        handlers.change_report(p, report_id, lambda r, now: r.instruct(body.leader, body.text, now))
    )


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@reports.get(
    "/reports/{report_id}/export",
    summary="The report as DOCX (报头, 编号, 标题, 正文, 报送/抄送)",
    response_class=Response,
    responses={200: {"content": {DOCX: {}}}},
)
async def export_report(
    report_id: str,
    p: Ports,
    principal: ReportReader,
    version: Annotated[int | None, Query(ge=1, description="a draft (default: the newest)")] = None,
) -> Response:
    try:
        report = await handlers.load_report(p, report_id)
        content = report_docx(report, version)
    except CaseError as exc:
        raise Problem(exc.status, detail=str(exc)) from None
    disposition = f'attachment; filename="report-{report.id}.docx"'
    return Response(content, media_type=DOCX, headers={"Content-Disposition": disposition})
