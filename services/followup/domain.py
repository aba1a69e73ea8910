"""Follow-up domain: one case per opinion, one assignment per department, the timeline,
and the lifecycle assigned → signed (签收) → replied (答复) → feedback (评价) → closed (办结).
No I/O: methods change the case and return the events to publish."""

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel

from shared.events import (
    AssignmentReplied,
    AssignmentSigned,
    CaseClosed,
    EventData,
    FeedbackReceived,
    FeedbackRequested,
    OpinionAssigned,
    Rating,
    ReplyResult,
)
from shared.store import Aggregate

# Until the working-day calendar lands, general urgency gets 7 calendar days.
DUE_AFTER = {
    "emergency": timedelta(hours=2),
    "timeliness": timedelta(hours=24),
    "general": timedelta(days=7),
    "complex": timedelta(days=21),
}
FEEDBACK_WINDOW = timedelta(days=21)


class CaseError(Exception):
    """A request the case's state does not allow; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class AssignmentStatus(StrEnum):
    ASSIGNED = "assigned"
    SIGNED = "signed"
    REPLIED = "replied"


class CaseStatus(StrEnum):
    OPEN = "open"
    AWAITING_FEEDBACK = "awaiting_feedback"
    CLOSED = "closed"


class Assignment(BaseModel):
    department: str
    department_name: str
    role: Literal["lead", "co"]
    status: AssignmentStatus = AssignmentStatus.ASSIGNED
    assigned_at: datetime
    due_at: datetime
    signed_at: datetime | None = None
    replied_at: datetime | None = None
    result: ReplyResult | None = None
    text: str | None = None


class TimelineEntry(BaseModel):
    at: datetime
    step: str  # 登记, 交办, 签收, 答复, 回访, 评价, 办结
    actor: str
    summary: str


class Case(Aggregate):
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
    rating: Rating | None = None
    closed_at: datetime | None = None

    @classmethod
    def open(cls, assigned: OpinionAssigned, now: datetime) -> "Case":
        """A new case from its first assignment, with the registration as first step."""
        case = cls(
            id=assigned.opinion_id,
            tracking_no=assigned.tracking_no,
            office_id=assigned.office_id,
            title=assigned.title,
            category=assigned.category,
            urgency=assigned.urgency,
            opened_at=now,
            assignments={},
            timeline=[
                TimelineEntry(
                    at=assigned.received_at,
                    step="登记",
                    actor=assigned.office_id,
                    summary=f"受理编号 {assigned.tracking_no}",
                )
            ],
        )
        case.assign(assigned, now)
        return case

    def assign(self, assigned: OpinionAssigned, now: datetime) -> None:
        if assigned.department in self.assignments:
            return
        due = now + DUE_AFTER.get(assigned.urgency, DUE_AFTER["general"])
        self.assignments[assigned.department] = Assignment(
            department=assigned.department,
            department_name=assigned.department_name,
            role=assigned.role,
            assigned_at=now,
            due_at=due,
        )
        role = "主办" if assigned.role == "lead" else "协办"
        self._log(
            now,
            "交办",
            "routing",
            f"{role} {assigned.department_name}, 类别 {assigned.category}, "
            f"办理期限 {due:%Y-%m-%d %H:%M}",
        )

    def assignment_of(self, department: str) -> Assignment:
        if department not in self.assignments:
            raise CaseError(403, f"Case {self.id} is not assigned to {department}.")
        return self.assignments[department]

    def sign(self, department: str, now: datetime) -> list[EventData]:
        """签收; signing again changes nothing."""
        assignment = self.assignment_of(department)
        if assignment.status != AssignmentStatus.ASSIGNED:
            return []
        assignment.status = AssignmentStatus.SIGNED
        assignment.signed_at = now
        self._log(now, "签收", department, f"{assignment.department_name} 已签收")
        return [
            AssignmentSigned(
                opinion_id=self.id, office_id=self.office_id, department=department, signed_at=now
            )
        ]

    def reply(
        self, department: str, result: ReplyResult, text: str, now: datetime, feedback_url: str
    ) -> list[EventData]:
        """答复 by the lead department; asks the submitter for feedback (回访)."""
        assignment = self.assignment_of(department)
        if assignment.role != "lead":
            raise CaseError(409, "Only the lead department (主办) replies to the submitter.")
        if assignment.status == AssignmentStatus.ASSIGNED:
            raise CaseError(409, "Sign for the assignment (签收) before replying.")
        if assignment.status == AssignmentStatus.REPLIED:
            raise CaseError(409, "This assignment has already been replied to.")
        assignment.status = AssignmentStatus.REPLIED
        assignment.replied_at = now
        assignment.result = result
        assignment.text = text
        self.status = CaseStatus.AWAITING_FEEDBACK
        self.feedback_round += 1
        self._log(now, "答复", department, f"{assignment.department_name}: {result}")
        self._log(now, "回访", "followup", "已向提交人发送评价链接")
        return [
            AssignmentReplied(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                department=department,
                result=result,
                text=text,
                replied_at=now,
            ),
            FeedbackRequested(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                feedback_url=feedback_url,
                expires_at=now + FEEDBACK_WINDOW,
            ),
        ]

    def rate(
        self, feedback_round: int, rating: Rating, comment: str, now: datetime
    ) -> list[EventData]:
        """评价 by the submitter through the link of this round, then 办结."""
        if self.status != CaseStatus.AWAITING_FEEDBACK or feedback_round != self.feedback_round:
            raise CaseError(409, "This feedback link has already been used or is no longer valid.")
        self.rating = rating
        self.status = CaseStatus.CLOSED
        self.closed_at = now
        self._log(now, "评价", "submitter", f"{rating}{': ' + comment if comment else ''}")
        self._log(now, "办结", "followup", f"办结, 评价 {rating}")
        return [
            FeedbackReceived(
                opinion_id=self.id, office_id=self.office_id, rating=rating, comment=comment
            ),
            CaseClosed(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                outcome=rating,
                closed_at=now,
            ),
        ]

    def _log(self, at: datetime, step: str, actor: str, summary: str) -> None:
        self.timeline.append(TimelineEntry(at=at, step=step, actor=actor, summary=summary))
