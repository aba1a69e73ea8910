"""The event contract: CloudEvents 1.0 structured-JSON envelope and versioned pydantic payloads.

Routing key: ``<aggregate>.<event>[.<department>]``. Events addressed to a department end with
its code, so a department's RabbitMQ user can be confined to its own events by topic permission.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr
from ulid import ULID

from shared.clock import utcnow
from shared.privacy import mask_strings

CE_CONTENT_TYPE = "application/cloudevents+json"
TYPE_PREFIX = "minyi."

# 部门编码: lowercase code used in routing keys, queue names and RabbitMQ user names.
DEPARTMENT_CODE = r"^[a-z][a-z0-9-]{1,31}$"


def new_id() -> str:
    """A sortable string id (ULID)."""
    return str(ULID())


class Urgency(StrEnum):
    EMERGENCY = "emergency"  # 紧急: reply within 2 hours
    TIMELINESS = "timeliness"  # 时效 (water, power, gas, heating): 24 hours
    GENERAL = "general"  # 一般: 7 days
    COMPLEX = "complex"  # 复杂: 15 working days


class RequestKind(StrEnum):
    """诉求类型: what the submitter asks for; the 办结 clock depends on it."""

    CONSULT = "咨询"
    HELP = "求助"
    SUGGESTION = "建议"
    COMPLAINT = "投诉"
    REPORT = "举报"


class UnknownEventType(ValueError):
    """The envelope names an event type this code does not know."""


class Rating(StrEnum):
    SATISFIED = "满意"
    BASICALLY_SATISFIED = "基本满意"
    UNSATISFIED = "不满意"


class ReplyResult(StrEnum):
    RESOLVED = "已解决"
    PARTLY_RESOLVED = "部分解决"
    UNRESOLVED = "未解决"
    EXPLAINED = "解释说明"


class EventData(BaseModel):
    """Base of every payload: ``name`` is ``<aggregate>.<event>``, ``version`` goes in the type."""

    model_config = ConfigDict(frozen=True)

    name: ClassVar[str]
    version: ClassVar[int] = 1
    # True when the routing key ends with the department code.
    to_department: ClassVar[bool] = False

    opinion_id: str

    @classmethod
    def event_type(cls) -> str:
        return f"{TYPE_PREFIX}{cls.name}.v{cls.version}"

    def routing_key(self) -> str:
        return self.name

    def subject(self) -> str:
        """The CloudEvents ``subject``: the opinion the event is about."""
        return self.opinion_id


class DepartmentEvent(EventData):
    """An event addressed to one department: its routing key ends with the department code."""

    to_department = True
    department: str = Field(pattern=DEPARTMENT_CODE)

    def routing_key(self) -> str:
        return f"{self.name}.{self.department}"


class Location(BaseModel):
    district: str = Field(min_length=1, max_length=50, description="区")
    street: str | None = Field(default=None, max_length=50, description="街道/镇")
    community: str | None = Field(default=None, max_length=50, description="社区/村")


class Coordinates(BaseModel):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


MEMBER_ID = Field(default=None, description="The 委员/代表 of the office's roster who submitted it")
# 联名: the members who co-signed a member's submission, on the same office's roster.
CO_SIGNERS_MAX = 20


def co_signers_field() -> Any:
    return Field(
        default_factory=list,
        max_length=CO_SIGNERS_MAX,
        description="联名: the other 委员/代表 of the office's roster who co-signed it",
    )


class SubmissionForm(StrEnum):
    """What a submission is: an ordinary 社情民意 opinion, or a member's 提案 (委员) / 建议
    (代表), which the office first decides to file (立案) or not."""

    OPINION = "社情民意"
    PROPOSAL = "提案"
    SUGGESTION = "建议"

    @property
    def needs_filing(self) -> bool:
        return self != SubmissionForm.OPINION


class KeptAs(StrEnum):
    """What a submission that is not filed (不立案) is kept as."""

    OPINION = "社情民意信息"  # handled on as an ordinary opinion
    LETTER = "来信"  # closed in intake as a letter


class ReplyGrade(StrEnum):
    """The grade of a department's reply to a filed (立案) member submission."""

    SOLVED = "A"  # 已解决或采纳
    BEING_SOLVED = "B"  # 正在解决, with a plan and a date: followed up until solved
    EXPLAINED = "C"  # 因条件限制目前不能解决, 已说明
    REFERENCE = "D"  # 留作参考


GRADE_LABELS = {
    ReplyGrade.SOLVED: "A 已解决",
    ReplyGrade.BEING_SOLVED: "B 正在解决",
    ReplyGrade.EXPLAINED: "C 暂不能解决, 已说明",
    ReplyGrade.REFERENCE: "D 留作参考",
}


class OpinionReceived(EventData):
    """登记 — an office registered an opinion."""

    name = "opinion.received"
    tracking_no: str
    office_id: str
    title: str
    content: str
    channel: str
    submitter_kind: str
    location: Location
    category_hint: str | None = None
    urgency_hint: str | None = None
    received_at: datetime
    member_id: str | None = MEMBER_ID
    co_signers: list[str] = co_signers_field()
    form: SubmissionForm = SubmissionForm.OPINION


class OpinionSupported(EventData):
    """附议 — a new item was linked as support to an open opinion (``opinion_id``) instead of
    becoming new work; ``office_id`` is the office that registered the supporting item."""

    name = "opinion.supported"
    tracking_no: str = Field(description="The supported (joined) opinion's tracking number")
    office_id: str
    supporter_id: str
    supporter_tracking_no: str
    similarity: float | None = Field(default=None, description="None when linked by hand")
    supported_at: datetime
    member_id: str | None = Field(default=None, description="The supporting item's 委员/代表")
    co_signers: list[str] = co_signers_field()


class OpinionMerged(EventData):
    """并案 — staff merged the opinion ``opinion_id`` into ``into_id``; it is handled there."""

    name = "opinion.merged"
    tracking_no: str
    office_id: str
    into_id: str
    into_tracking_no: str
    merged_by: str
    merged_at: datetime


class OpinionSplit(EventData):
    """拆分 — staff took the opinion ``opinion_id`` out of ``from_id`` again; a case that was
    merged there becomes work of its own again."""

    name = "opinion.split"
    tracking_no: str
    office_id: str
    from_id: str
    split_by: str
    split_at: datetime


class OpinionFiled(EventData):
    """立案 — the office decided whether a member's 提案/建议 is filed (``filed``: routed and
    assigned as usual) or not (不立案: ``kept_as`` 社情民意信息 or 来信), with the reason the
    member and every co-signer are told."""

    name = "opinion.filed"
    tracking_no: str
    office_id: str
    title: str
    form: SubmissionForm
    filed: bool
    reason: str
    kept_as: KeptAs | None = Field(default=None, description="不立案: what it is kept as")
    decided_by: str
    filed_at: datetime
    member_id: str | None = MEMBER_ID
    co_signers: list[str] = co_signers_field()


class OpinionAssigned(DepartmentEvent):
    """交办 — routing assigned the opinion to one department (lead 主办 or co-handler 协办)."""

    name = "opinion.assigned"
    tracking_no: str
    office_id: str
    title: str
    department_name: str
    role: Literal["lead", "co"]
    category: str
    urgency: str
    explanation: str
    received_at: datetime
    kind: RequestKind | None = Field(
        default=None, description="诉求类型; none: the 办结 clock follows the urgency alone"
    )


class OpinionTriage(EventData):
    """The router could not decide; a person must (人工分拣)."""

    name = "opinion.triage"
    tracking_no: str
    office_id: str
    reason: str


class OpinionWithdrawn(DepartmentEvent):
    """改派 — staff moved the opinion away from this department; its assignment ends."""

    name = "opinion.withdrawn"
    tracking_no: str
    office_id: str
    reason: str


class AssignmentSigned(DepartmentEvent):
    """签收 — a department signed for its assignment."""

    name = "assignment.signed"
    office_id: str
    signed_at: datetime
    # The sign deadline (签收期限) and whether it was met, for the 及时签收率 KPI.
    sign_due_at: datetime | None = None
    on_time: bool | None = None


class AssignmentReplied(DepartmentEvent):
    """答复 — the lead department replied with a result."""

    name = "assignment.replied"
    office_id: str
    tracking_no: str
    result: ReplyResult
    text: str
    replied_at: datetime
    # The due date (办理期限) and whether it was met, for the 按时办结率 KPI.
    due_at: datetime | None = None
    on_time: bool | None = None
    # A filed (立案) member submission: the reply's grade (B: with a plan and its date), and
    # the members who get the answer.
    grade: ReplyGrade | None = None
    plan: str | None = None
    plan_due_at: datetime | None = None
    member_id: str | None = MEMBER_ID
    co_signers: list[str] = co_signers_field()


class PlanDue(DepartmentEvent):
    """跟踪督办 — the date of a grade-B reply's plan has come and no later reply came: the lead
    department is reminded (once) to report again."""

    name = "assignment.plan_due"
    office_id: str
    tracking_no: str
    plan: str
    plan_due_at: datetime
    reminded_at: datetime


class AssignmentResponded(DepartmentEvent):
    """响应 — the lead department first contacted the submitter or visited the site."""

    name = "assignment.responded"
    office_id: str
    how: str
    responded_at: datetime
    # The response deadline (响应期限) and whether it was met, for the 响应率 KPI.
    respond_due_at: datetime
    on_time: bool


class ReturnRequested(DepartmentEvent):
    """申请退单 — a department asks to give an assignment back, with a reason code and
    evidence; a reviewer decides (``final``: a dispute of a rejection, for the 终审)."""

    name = "assignment.return_requested"
    office_id: str
    tracking_no: str
    reason_code: str
    reason: str = Field(description="The reason code's label")
    evidence: str
    final: bool
    requested_at: datetime


class ReturnRejected(DepartmentEvent):
    """退单驳回 — the reviewer (or, ``final``, the 终审) refused the return: the department
    keeps the assignment and its deadlines run on."""

    name = "assignment.return_rejected"
    office_id: str
    tracking_no: str
    reason: str
    decided_by: str
    final: bool
    decided_at: datetime


class AssignmentReturned(DepartmentEvent):
    """退回 — a department returned a wrong assignment; routing decides again without it."""

    name = "assignment.returned"
    office_id: str
    tracking_no: str
    reason: str
    returned_at: datetime


class CaseReopened(EventData):
    """重办 — the submitter was not satisfied; the case is handled again."""

    name = "case.reopened"
    office_id: str
    tracking_no: str
    reason: str
    reopened_at: datetime


class FeedbackRequested(EventData):
    """回访 — the submitter is asked to rate the reply through a signed single-use link."""

    name = "feedback.requested"
    office_id: str
    tracking_no: str
    feedback_url: str
    expires_at: datetime
    # A member's submission: the link goes to the member who submitted it (not co-signers).
    member_id: str | None = MEMBER_ID


class FeedbackReceived(EventData):
    """评价 — the submitter rated the reply."""

    name = "feedback.received"
    office_id: str
    rating: Rating
    comment: str
    # The submitter's judgement whether the problem was solved, for the 解决率 KPI.
    resolved: bool | None = None
    rated_at: datetime
    channel: Literal["link", "callback"] = Field(
        default="link", description="评价链接, or the platform's phone callback (电话回访)"
    )
    # An 不满意 waiting for 复核: it counts in the KPIs only once reviewed (feedback.reviewed).
    pending_review: bool = False


class FeedbackReviewed(EventData):
    """复核 of an 不满意: sent back for 重办 (``redo``: the rating counts), or recorded as
    不合理诉求 (``unreasonable``: left out of 满意率), by the person named."""

    name = "feedback.reviewed"
    office_id: str
    tracking_no: str
    decision: Literal["redo", "unreasonable"]
    rating: Rating
    resolved: bool
    reason: str
    reviewed_by: str
    reviewed_at: datetime


class SupervisionOrdered(DepartmentEvent):
    """督办单 — a second 不满意 after 重办: supervisors take the case up with the lead."""

    name = "case.supervision_ordered"
    office_id: str
    tracking_no: str
    reason: str
    ordered_at: datetime


class AuditCallbackRecorded(EventData):
    """抽查回访 — platform staff called the submitter of a closed case picked at random: was it
    solved and are they satisfied, whatever was reported."""

    name = "case.audit_callback"
    office_id: str
    tracking_no: str
    reached: bool
    resolved: bool | None
    rating: Rating | None
    by: str
    called_at: datetime


class CaseClosed(EventData):
    """办结 — the case is closed."""

    name = "case.closed"
    office_id: str
    tracking_no: str
    outcome: str
    closed_at: datetime


class NotificationDelivered(EventData):
    """通知送达 — a notification reached a recipient (the notification service never delivers
    these itself)."""

    name = "notification.delivered"
    office_id: str
    recipient: str = Field(description="<role>:<code> of the recipient")
    channel: str
    source_event_id: str = Field(description="Id of the event the notification was about")
    source_event_type: str
    delivery_id: str


class NotificationFailed(EventData):
    """通知失败 — a notification could not be delivered for good; the event is parked."""

    name = "notification.failed"
    office_id: str
    recipient: str = Field(description="<role>:<code> of the recipient")
    channel: str
    source_event_id: str = Field(description="Id of the event the notification was about")
    source_event_type: str
    delivery_id: str
    reason: str


class AssignmentInputGiven(DepartmentEvent):
    """协办意见 — a co-handler gave its input; addressed to the lead department (主办)."""

    name = "assignment.input_given"
    office_id: str
    tracking_no: str
    from_department: str
    text: str
    given_at: datetime


class AssignmentExtensionRequested(DepartmentEvent):
    """申请延期 — a department asks for a later due date, with a reason."""

    name = "assignment.extension_requested"
    office_id: str
    tracking_no: str
    reason: str
    due_at: datetime
    requested_due_at: datetime
    requested_at: datetime


class AssignmentExtensionApproved(DepartmentEvent):
    """延期批准 — a supervisor approved the extension; the new due date applies."""

    name = "assignment.extension_approved"
    office_id: str
    tracking_no: str
    due_at: datetime
    decided_by: str


class AssignmentExtensionRefused(DepartmentEvent):
    """延期驳回 — a supervisor refused the extension; the old due date stays."""

    name = "assignment.extension_refused"
    office_id: str
    tracking_no: str
    reason: str
    decided_by: str


class DeadlineWarning(DepartmentEvent):
    """到期提醒 — the due date is near and the assignment is not done."""

    name = "deadline.warning"
    office_id: str
    tracking_no: str
    kind: Literal["sign", "reply"]
    due_at: datetime


class DeadlineBreached(DepartmentEvent):
    """超期 — a response, sign or reply deadline passed before the department acted."""

    name = "deadline.breached"
    office_id: str
    tracking_no: str
    kind: Literal["respond", "sign", "reply"]
    due_at: datetime


class DeadlineCarded(DepartmentEvent):
    """黄牌 (the working day before a deadline, the work not done) or 红牌 (the working day
    after it, the deadline missed) on one of the three clocks: 响应, 签收, 办结."""

    name = "deadline.carded"
    office_id: str
    tracking_no: str
    clock: Literal["respond", "sign", "reply"]
    card: Literal["yellow", "red"]
    due_at: datetime
    carded_at: datetime


class CaseEscalated(DepartmentEvent):
    """催办 (level 0) or 督办 level 1 / 2 — overdue work is pressed, by timer or by a supervisor."""

    name = "case.escalated"
    office_id: str
    tracking_no: str
    level: int = Field(ge=0, le=2)
    label: str
    reason: str
    actor: str
    due_at: datetime
    escalated_at: datetime


class AdoptionLevel(StrEnum):
    """采用 level."""

    DISTRICT = "区"
    CITY = "市"
    PROVINCE = "省"
    NATIONAL = "全国"


class OpinionInstructed(EventData):
    """批示 — a leader gave an instruction on the opinion."""

    name = "opinion.instructed"
    office_id: str
    tracking_no: str
    leader: str
    text: str
    instructed_at: datetime
    member_id: str | None = MEMBER_ID
    co_signers: list[str] = co_signers_field()


class OpinionAdopted(EventData):
    """采用 — the opinion was adopted at a level (区/市/省/全国)."""

    name = "opinion.adopted"
    office_id: str
    tracking_no: str
    level: AdoptionLevel
    adopted_by: str
    note: str
    adopted_at: datetime
    member_id: str | None = MEMBER_ID
    co_signers: list[str] = co_signers_field()


class MarkKind(StrEnum):
    """A bonus mark on an opinion (履职积分)."""

    KEY = "key"  # 重点: a key opinion (重点提案/重点信息)
    EXCELLENT = "excellent"  # 优秀: an excellent submission


class OpinionMarked(EventData):
    """重点/优秀 — a supervisor marked the opinion (``marked``) or took the mark back; its lead
    author and co-signers earn (or lose) their role's bonus once per ``generation``."""

    name = "opinion.marked"
    office_id: str
    tracking_no: str
    mark: MarkKind
    marked: bool
    generation: int = Field(ge=1, description="Counts the mark's changes, 1 the first mark")
    by: str
    reason: str
    marked_at: datetime = Field(description="When the mark (given or taken back) was given")
    changed_at: datetime
    member_id: str | None = MEMBER_ID
    co_signers: list[str] = Field(default_factory=list, description="联名 members")


class ReplySubmitted(DepartmentEvent):
    """送审 — the lead's reply waits for review (审核) before it is released to the submitter."""

    name = "reply.submitted"
    office_id: str
    tracking_no: str
    result: ReplyResult
    submitted_at: datetime
    review_round: int
    reviewer: Literal["office", "supervisor"]
    review_due_at: datetime


class ReplyReviewed(DepartmentEvent):
    """审核 — a reviewer approved the reply (it is released) or sent it back with a reason."""

    office_id: str
    tracking_no: str
    review_round: int
    reviewed_by: str
    submitted_at: datetime
    reviewed_at: datetime
    # The review deadline and whether it was met, for the review KPIs.
    review_due_at: datetime
    on_time: bool


class ReplyApproved(ReplyReviewed):
    """审核通过 — the reply is released: the submitter sees it and is asked for feedback."""

    name = "reply.approved"


class ReplySentBack(ReplyReviewed):
    """审核退回 — the reply goes back to the department to revise, with the reviewer's reason."""

    name = "reply.sent_back"
    reason: str


class ReplyReviewReminded(DepartmentEvent):
    """审核提醒 — a reply is still waiting for review near (or past, ``overdue``) its deadline."""

    name = "reply.review_reminded"
    office_id: str
    tracking_no: str
    review_round: int
    reviewer: Literal["office", "supervisor"]
    review_due_at: datetime
    overdue: bool


class ReportEvent(EventData):
    """An event of an information report (信息专报): not about one opinion, so ``opinion_id`` is
    empty and the subject is the report id; ``opinion_ids`` are its source opinions."""

    opinion_id: str = ""
    report_id: str
    number: str
    title: str
    opinion_ids: list[str]

    def subject(self) -> str:
        return self.report_id


class ReportSubmitted(ReportEvent):
    """专报报送 — the signed-off report went up to a level (区/市/省/全国)."""

    name = "report.submitted"
    level: AdoptionLevel
    sent_to: list[str]
    submitted_by: str
    submitted_at: datetime


class ReportAdopted(ReportEvent):
    """专报采用 — the report was adopted at a level; each source opinion is adopted with it."""

    name = "report.adopted"
    level: AdoptionLevel
    adopted_by: str
    note: str
    adopted_at: datetime


class ReportInstructed(ReportEvent):
    """专报批示 — a leader instructed on the report; each source opinion gets the instruction."""

    name = "report.instructed"
    leader: str
    text: str
    instructed_at: datetime


class SubmitterSummary(BaseModel):
    """Who submitted an opinion, as departments and events see it: name and phone masked."""

    kind: str
    name: str = Field(description="Masked: the family name only (王**)")
    sector: str | None = Field(default=None, description="界别 or 选区")
    phone: str | None = Field(default=None, description="Masked (138****5678); revealed on request")
    member_id: str | None = None


class AttachmentSummary(BaseModel):
    id: str
    filename: str
    media_type: str
    size: int
    download_path: str = Field(description="GET on intake with the department's key")


class SupporterSummary(BaseModel):
    """One item joined to the opinion: 附议 (similar item) or 并案 (merged by staff)."""

    opinion_id: str
    tracking_no: str
    office_id: str
    how: str
    at: datetime
    title: str
    content: str


class OpinionFile(BaseModel):
    """The whole opinion as the departments holding it work from it (交办材料); personal data
    masked."""

    revision: int = Field(description="Grows with each change; a receiver keeps the highest")
    tracking_no: str
    office_id: str
    title: str
    content: str
    channel: str
    location: Location
    coordinates: Coordinates | None = None
    submitter: SubmitterSummary
    member_id: str | None = MEMBER_ID
    co_signers: list[str] = co_signers_field()
    form: SubmissionForm = SubmissionForm.OPINION
    received_at: datetime
    occurred_at: datetime | None = None
    attachments: list[AttachmentSummary] = Field(default_factory=list)
    supporters: list[SupporterSummary] = Field(default_factory=list)


class OpinionBriefed(DepartmentEvent):
    """交办材料 — the whole opinion for a department that holds it: sent when it is assigned
    and again after each change (编辑, 附件, 附议, 并案). Contact details are masked; the lead
    department reveals them from intake (an audited action)."""

    name = "opinion.briefed"
    reason: str = Field(description="交办, 编辑, 附件, 附议 or 并案")
    opinion: OpinionFile


class MemberEnrolled(EventData):
    """委员/代表 — an office put a member on its roster (contact details stay in intake).
    Not about an opinion: ``opinion_id`` is empty and the subject is the member id."""

    name = "member.enrolled"
    opinion_id: str = ""
    member_id: str
    office_id: str
    member_name: str
    kind: str
    sector: str | None = None

    def subject(self) -> str:
        return self.member_id


class TopicEvent(EventData):
    """专题 — a hot topic: opinions on the same matter in the same place. ``opinion_id`` is the
    opinion that changed it (empty for a staff action); the subject is the topic id."""

    opinion_id: str = ""
    topic_id: str
    label: str = Field(description="Staff's name for it, else the title closest to its centre")
    keywords: list[str]
    heat: float = Field(description="热度")
    members: int
    first_seen: datetime
    last_seen: datetime

    def subject(self) -> str:
        return self.topic_id


class TopicDetected(TopicEvent):
    """发现专题 — a second opinion on the same matter in the same place made a topic."""

    name = "topic.detected"


class TopicUpdated(TopicEvent):
    """专题更新 — an opinion or 附议 joined it, or staff named, pinned, merged or split it."""

    name = "topic.updated"
    change: str = Field(description="joined, supported, named, pinned, merged or split")


class TopicHeated(TopicEvent):
    """专题升温 — the topic's heat reached the threshold supervisors are told about (once)."""

    name = "topic.heated"
    threshold: float


EVENT_TYPES: dict[str, type[EventData]] = {
    cls.event_type(): cls
    for cls in (
        OpinionReceived,
        OpinionSupported,
        OpinionMerged,
        OpinionSplit,
        OpinionFiled,
        OpinionAssigned,
        OpinionTriage,
        OpinionWithdrawn,
        AssignmentSigned,
        AssignmentReplied,
        AssignmentReturned,
        AssignmentResponded,
        PlanDue,
        ReturnRequested,
        ReturnRejected,
        CaseReopened,
        FeedbackRequested,
        FeedbackReceived,
        FeedbackReviewed,
        SupervisionOrdered,
        AuditCallbackRecorded,
        CaseClosed,
        NotificationDelivered,
        NotificationFailed,
        AssignmentInputGiven,
        AssignmentExtensionRequested,
        AssignmentExtensionApproved,
        AssignmentExtensionRefused,
        DeadlineWarning,
        DeadlineBreached,
        DeadlineCarded,
        CaseEscalated,
        OpinionInstructed,
        OpinionAdopted,
        OpinionMarked,
        OpinionBriefed,
        MemberEnrolled,
        ReplySubmitted,
        ReplyApproved,
        ReplySentBack,
        ReplyReviewReminded,
        ReportSubmitted,
        ReportAdopted,
        ReportInstructed,
        TopicDetected,
        TopicUpdated,
        TopicHeated,
    )
}


class CloudEvent(BaseModel):
    """CloudEvents 1.0 envelope, structured JSON mode."""

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str
    type: str
    time: datetime
    subject: str = Field(description="The opinion id")
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]

    @classmethod
    def wrap(cls, source: str, data: EventData) -> "CloudEvent":
        """The event to publish; phone and ID numbers in any text are masked (个人信息)."""
        return cls(
            id=new_id(),
            source=source,
            type=data.event_type(),
            time=utcnow(),
            subject=data.subject(),
            data=mask_strings(data.model_dump(mode="json")),
        )

    # The payload validated from ``data``, and that dict: the bus, the consumer and the
    # handler of one event each ask for it (and publishing asks for its routing key).
    _payload: tuple[dict[str, Any], EventData] | None = PrivateAttr(default=None)

    def payload(self) -> EventData:
        """The typed payload; raises UnknownEventType or pydantic.ValidationError. Validated
        once per ``data`` (another dict given to ``data`` is validated again)."""
        if self._payload is not None and self._payload[0] is self.data:
            return self._payload[1]
        try:
            cls = EVENT_TYPES[self.type]
        except KeyError:
            raise UnknownEventType(f"unknown event type {self.type!r}") from None
        payload = cls.model_validate(self.data)
        self._payload = (self.data, payload)
        return payload

    def routing_key(self) -> str:
        return self.payload().routing_key()
