"""The case's records: statuses, assignments (one per department), the timeline, feedback,
instructions and adoptions, and the stored case itself (``CaseRecord``)."""

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from shared.clock import BEIJING
from shared.events import AdoptionLevel, CaseClosed, OpinionFile, Rating, ReplyResult
from shared.files import FileRef
from shared.store import Aggregate

from .policy import CaseError


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
    CLOSED = "closed"
    MERGED = "merged"  # 并案: handled as part of another case


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


class Feedback(BaseModel):
    round: int
    rating: Rating
    comment: str
    resolved: bool
    at: datetime


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
    # Files departments uploaded for their replies, by id (the bytes are in the chunk store).
    files: dict[str, CaseFile] = Field(default_factory=dict)
    # 审核: replies submitted for review so far (numbers each round), and whether one waits.
    review_rounds: int = 0
    awaiting_review: bool = False

    @property
    def member_id(self) -> str | None:
        return None if self.opinion is None else self.opinion.member_id

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

    def _close(self, outcome: str, now: datetime) -> CaseClosed:
        self.status = CaseStatus.CLOSED
        self.outcome = outcome
        self.closed_at = now
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
