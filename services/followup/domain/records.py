"""The case's records: statuses, assignments (one per department), the timeline, feedback,
instructions and adoptions, and the stored case itself (``CaseRecord``)."""

import hashlib
from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from shared.clock import BEIJING
from shared.events import (
    AdoptionLevel,
    CaseClosed,
    OpinionFile,
    Rating,
    ReplyGrade,
    ReplyResult,
    RequestKind,
)
from shared.files import FileRef
from shared.store import Aggregate

from .policy import CaseError, Rules


class AssignmentStatus(StrEnum):
    ASSIGNED = "assigned"
    SIGNED = "signed"
    REPLIED = "replied"
    REVIEWING = "reviewing"  # 审核中: the lead's reply waits for a reviewer before release
    RETURNED = "returned"
    WITHDRAWN = "withdrawn"  # 改派: staff moved the opinion to another department


class CaseStatus(StrEnum):
    OPEN = "open"
    AWAITING_FEEDBACK = "awaiting_feedback"
    REVIEWING = "reviewing"  # 复核: an 不满意 waits for platform staff to check it
    CLOSED = "closed"
    MERGED = "merged"  # 并案: handled as part of another case


# The three clocks of an assignment, all started at 交办.
Clock = Literal["respond", "sign", "reply"]
CLOCK_LABELS: dict[str, str] = {"respond": "响应", "sign": "签收", "reply": "办结"}
Card = Literal["yellow", "red"]
CARD_LABELS: dict[str, str] = {"yellow": "黄牌", "red": "红牌"}


# How an assignment ended by 并案 is told apart (a 拆分 restores those).
MERGED_REASON = "已并案至"
NOT_ESCALATED = -1


class Attachment(BaseModel):
    """A reply's attachment: a file uploaded to the case (``file_id``) or a link (``url``)."""

    name: str = Field(min_length=1, max_length=200)
    url: str | None = Field(default=None, min_length=1, max_length=1000, pattern=r"^https?://")
    file_id: str | None = Field(default=None, min_length=1, max_length=40)

    @model_validator(mode="after")
    def one_source(self) -> "Attachment":
        if (self.url is None) == (self.file_id is None):
            raise ValueError("give either url or file_id 附件须为上传的文件或链接（二选一）")
        return self


class Grading(BaseModel):
    """The grade of a reply to a filed (立案) member submission; B (being solved) with the plan
    and the day it should be done, when the department is reminded to report again."""

    grade: ReplyGrade | None = None
    plan: str | None = Field(default=None, min_length=1, max_length=2000)
    plan_due: date | None = Field(default=None, description="B: the plan's day (Beijing time)")


class CaseFile(FileRef):
    """A file a department uploaded to the case, to attach to its reply."""

    department: str


class Extension(BaseModel):
    requested_at: datetime
    reason: str
    requested_due_at: datetime
    status: Literal["requested", "approved", "refused"] = "requested"
    decided_by: str | None = None
    decision_reason: str | None = None


class ReturnClaim(BaseModel):
    """申请退单 and its review: pending → accepted (退回) or rejected; a rejection may be
    disputed once, and the 终审 by another supervisor accepts it or rejects it for good."""

    code: str
    reason: str = Field(description="The reason code's label")
    evidence: str
    attachments: list[Attachment] = Field(default_factory=list)
    requested_at: datetime
    requested_by: str
    status: Literal["pending", "rejected", "disputed", "final_rejected", "accepted"] = "pending"
    reviewed_by: str | None = None
    review_reason: str | None = None
    dispute: str | None = None
    ruled_by: str | None = None
    ruling_reason: str | None = None


class Review(BaseModel):
    """审核 of one reply the lead submitted (送审): released on approval, or sent back."""

    round: int  # counts every submission of the case's replies, for its timers' ids
    result: ReplyResult
    text: str
    attachments: list[Attachment]
    submitted_at: datetime
    submitted_by: str
    reviewer: Literal["office", "supervisor"]
    due_at: datetime
    status: Literal["pending", "approved", "sent_back"] = "pending"
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    reason: str | None = None


class Assignment(BaseModel):
    department: str
    department_name: str
    role: Literal["lead", "co"]
    status: AssignmentStatus = AssignmentStatus.ASSIGNED
    assigned_at: datetime
    sign_due_at: datetime
    due_at: datetime
    generation: int = 1
    signed_at: datetime | None = None
    replied_at: datetime | None = None
    result: ReplyResult | None = None
    text: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    extension: Extension | None = None
    extensions_used: int = 0
    overdue: bool = False
    escalation_level: int = NOT_ESCALATED
    return_reason: str | None = None
    withdrawn_at: datetime | None = None
    withdraw_reason: str | None = None
    # 响应 clock (the lead's; None for co-handlers and for assignments made before it).
    respond_due_at: datetime | None = None
    responded_at: datetime | None = None
    response: str | None = None
    # The card each clock has earned (黄牌/红牌), by clock.
    cards: dict[str, Card] = Field(default_factory=dict)
    return_claim: ReturnClaim | None = None
    # A filed (立案) member submission: the grade of the latest reply; B with its plan.
    grade: ReplyGrade | None = None
    plan: str | None = None
    plan_due_at: datetime | None = None

    def clock_due(self, clock: str) -> datetime | None:
        return {"respond": self.respond_due_at, "sign": self.sign_due_at, "reply": self.due_at}[
            clock
        ]

    def clock_met(self, clock: str) -> datetime | None:
        """When the clock's work was done, None while it is not."""
        return {"respond": self.responded_at, "sign": self.signed_at, "reply": self.replied_at}[
            clock
        ]

    # The newest reply submitted for review (审核), while pending and after.
    review: Review | None = None

    def is_active(self) -> bool:
        """Still owes work: assigned or signed, not replied, returned or withdrawn."""
        return self.status in (AssignmentStatus.ASSIGNED, AssignmentStatus.SIGNED)

    def has_ended(self) -> bool:
        """Returned (退回) or withdrawn (改派): the department no longer holds the case."""
        return self.status in (AssignmentStatus.RETURNED, AssignmentStatus.WITHDRAWN)


class TimelineEntry(BaseModel):
    at: datetime
    step: (
        str  # 登记, 交办, 签收, 答复, 回访, 评价, 办结, 延期, 退回, 催办, 督办, 重办, 批示, 采用 …
    )
    actor: str
    summary: str


class FeedbackReview(BaseModel):
    """复核 of an 不满意: back for 重办, or 不合理诉求 (left out of 满意率), by a named person."""

    decision: Literal["redo", "unreasonable"]
    reason: str
    by: str
    at: datetime


class Feedback(BaseModel):
    round: int
    rating: Rating
    comment: str
    resolved: bool
    at: datetime
    channel: Literal["link", "callback"] = "link"
    by: str | None = Field(default=None, description="Who made the callback (电话回访)")
    review: FeedbackReview | None = None


class Callback(BaseModel):
    """A phone callback by platform staff: 回访 of the round, or an 抽查回访 of a closed case."""

    purpose: Literal["feedback", "audit"]
    reached: bool
    rating: Rating | None = None
    resolved: bool | None = None
    note: str
    by: str
    at: datetime


class SupervisionOrder(BaseModel):
    """督办单: opened by a second 不满意 after 重办, closed by a supervisor with the result."""

    department: str
    reason: str
    opened_at: datetime
    closed_at: datetime | None = None
    closed_by: str | None = None
    result: str | None = None


def picked_for_audit(case_id: str, share: float) -> bool:
    """Whether a closed case is among the ``share`` called back at random (抽查回访): a hash
    of its id, so every replica and every replay picks the same cases."""
    digest = hashlib.sha256(case_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") < share * 2**32


class Instruction(BaseModel):
    leader: str
    text: str
    at: datetime


class Adoption(BaseModel):
    level: AdoptionLevel
    adopted_by: str
    note: str
    at: datetime


def _local(at: datetime) -> str:
    return f"{at.astimezone(BEIJING):%Y-%m-%d %H:%M}"


class CaseRecord(Aggregate):
    """What a case holds, and the helpers every part of its lifecycle uses."""

    tracking_no: str
    office_id: str
    title: str
    category: str
    urgency: str
    status: CaseStatus = CaseStatus.OPEN
    opened_at: datetime
    assignments: dict[str, Assignment]
    timeline: list[TimelineEntry]
    feedback_round: int = 0
    feedback_due_at: datetime | None = None
    feedback: list[Feedback] = Field(default_factory=list)
    reopened: int = 0
    rating: Rating | None = None
    outcome: str | None = None
    closed_at: datetime | None = None
    instructions: list[Instruction] = Field(default_factory=list)
    adoptions: list[Adoption] = Field(default_factory=list)
    # Kept at the top level so supervisors can list overdue and escalated work and the
    # extension requests waiting for them (延期审批).
    overdue: bool = False
    escalation_level: int = NOT_ESCALATED
    extension_pending: bool = False
    # The whole opinion (交办材料) from intake, its latest revision; None until it arrives.
    opinion: OpinionFile | None = None
    merged_into: str | None = None
    kind: RequestKind | None = None  # 诉求类型 (办结 clock)
    # Who corrected the kind (更正诉求类型); routing's word match on a later 交办 no longer
    # overrides a person's correction.
    kind_set_by: str | None = None
    callbacks: list[Callback] = Field(default_factory=list)
    supervision_orders: list[SupervisionOrder] = Field(default_factory=list)
    # 抽查回访 of the closed case: "due" when picked, "done" once called.
    audit_callback: Literal["due", "done"] | None = None
    # Kept at the top level so reviewers can list what waits for them: a 退单 or its dispute,
    # an open 督办单.
    return_review: bool = False
    supervision_open: bool = False
    # Files departments uploaded for their replies, by id (the bytes are in the chunk store).
    files: dict[str, CaseFile] = Field(default_factory=dict)
    # 审核: replies submitted for review so far (numbers each round), and whether one waits.
    review_rounds: int = 0
    awaiting_review: bool = False

    @property
    def member_id(self) -> str | None:
        return None if self.opinion is None else self.opinion.member_id

    @property
    def co_signers(self) -> list[str]:
        """联名: the members who co-signed the submission."""
        return [] if self.opinion is None else self.opinion.co_signers

    @property
    def filed(self) -> bool:
        """A member's 提案/建议 the office filed (立案): graded replies, a month for 再次答复."""
        return self.opinion is not None and self.opinion.form.needs_filing

    def assignment_of(self, department: str) -> Assignment:
        if department not in self.assignments:
            raise CaseError(403, f"Case {self.id} is not assigned to {department}.")
        return self.assignments[department]

    def lead(self) -> Assignment | None:
        """The active (or replied) lead assignment; None while routing re-decides a return or
        a withdrawn lead's successor is on its way."""
        for a in self.assignments.values():
            if a.role == "lead" and not a.has_ended():
                return a
        return None

    def _close(self, outcome: str, now: datetime, rules: Rules) -> CaseClosed:
        self.status = CaseStatus.CLOSED
        self.outcome = outcome
        self.closed_at = now
        if picked_for_audit(self.id, rules.policy.audit_callback_share):
            self.audit_callback = "due"
        self._refresh()
        self._log(now, "办结", "followup", f"办结, {outcome}")
        return CaseClosed(
            opinion_id=self.id,
            office_id=self.office_id,
            tracking_no=self.tracking_no,
            outcome=outcome,
            closed_at=now,
        )

    def _refresh(self) -> None:
        active = [a for a in self.assignments.values() if a.is_active()]
        self.return_review = any(
            a.return_claim is not None and a.return_claim.status in ("pending", "disputed")
            for a in active
        )
        self.supervision_open = any(o.closed_at is None for o in self.supervision_orders)
        open_case = self.status != CaseStatus.CLOSED
        self.overdue = open_case and any(a.overdue for a in active)
        self.escalation_level = max(
            (a.escalation_level for a in active if open_case), default=NOT_ESCALATED
        )
        self.extension_pending = open_case and any(
            a.extension is not None and a.extension.status == "requested" for a in active
        )
        self.awaiting_review = any(
            a.status == AssignmentStatus.REVIEWING for a in self.assignments.values()
        )

    def _log(self, at: datetime, step: str, actor: str, summary: str) -> None:
        self.timeline.append(TimelineEntry(at=at, step=step, actor=actor, summary=summary))
