"""Follow-up domain: one case per opinion, one assignment per department (主办 lead, 协办
co-handlers), deadlines on the working-day calendar, timers, escalation, feedback and the
timeline. No I/O: methods change the case and return the events to publish.

Assignment lifecycle: assigned → signed (签收) → replied (答复), or returned (退回) by the
department, or withdrawn (改派) when staff move the opinion elsewhere; a lead's due date
moves by an approved extension (延期) or by a reopening (重办) after 不满意.
Case lifecycle: open → awaiting_feedback (回访) → closed (办结), or back to open once."""

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from shared.clock import BEIJING
from shared.events import (
    AdoptionLevel,
    AssignmentExtensionApproved,
    AssignmentExtensionRefused,
    AssignmentExtensionRequested,
    AssignmentInputGiven,
    AssignmentReplied,
    AssignmentReturned,
    AssignmentSigned,
    CaseClosed,
    CaseEscalated,
    CaseReopened,
    DeadlineBreached,
    DeadlineWarning,
    EventData,
    FeedbackReceived,
    FeedbackRequested,
    OpinionAdopted,
    OpinionAssigned,
    OpinionBriefed,
    OpinionFile,
    OpinionInstructed,
    OpinionMerged,
    OpinionReceived,
    OpinionSplit,
    OpinionSupported,
    OpinionWithdrawn,
    Rating,
    ReplyResult,
)
from shared.store import Aggregate

from .workdays import Span, WorkCalendar


class CaseError(Exception):
    """A request the case's state does not allow; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class SlaProfile(BaseModel):
    """How long a department has to sign (签收) and to reply (答复) for one urgency class."""

    sign: Span
    reply: Span


def _span(amount: int, unit: Literal["minutes", "hours", "days", "working_days"]) -> Span:
    return Span(amount=amount, unit=unit)


class Policy(BaseModel):
    """The configurable norms (defaults from the product brief)."""

    profiles: dict[str, SlaProfile] = Field(
        default_factory=lambda: {
            "emergency": SlaProfile(sign=_span(30, "minutes"), reply=_span(2, "hours")),
            "timeliness": SlaProfile(sign=_span(1, "working_days"), reply=_span(24, "hours")),
            "general": SlaProfile(sign=_span(1, "working_days"), reply=_span(7, "days")),
            "complex": SlaProfile(sign=_span(1, "working_days"), reply=_span(15, "working_days")),
        }
    )
    feedback_window: Span = Field(default_factory=lambda: _span(15, "working_days"))
    extensions_allowed: int = 1
    reopens_allowed: int = 1
    # 催办 on the working day after the due date; 督办 level 1 and 2 after these many.
    urge_after_workdays: int = 1
    supervise_after_workdays: tuple[int, int] = (5, 10)

    def profile(self, urgency: str) -> SlaProfile:
        return self.profiles.get(urgency, self.profiles["general"])


class Rules:
    """What the domain needs to compute dates: the working-day calendar and the policy."""

    def __init__(self, calendar: WorkCalendar, policy: Policy) -> None:
        self.calendar = calendar
        self.policy = policy


class AssignmentStatus(StrEnum):
    ASSIGNED = "assigned"
    SIGNED = "signed"
    REPLIED = "replied"
    RETURNED = "returned"
    WITHDRAWN = "withdrawn"  # 改派: staff moved the opinion to another department


class CaseStatus(StrEnum):
    OPEN = "open"
    AWAITING_FEEDBACK = "awaiting_feedback"
    CLOSED = "closed"
    MERGED = "merged"  # 并案: handled as part of another case


ESCALATION_LABELS = {0: "催办", 1: "一级督办", 2: "二级督办"}
# How an assignment ended by 并案 is told apart (a 拆分 restores those).
MERGED_REASON = "已并案至"
NOT_ESCALATED = -1


class TimerKind(StrEnum):
    SIGN_DUE = "sign_due"
    REMINDER = "reminder"
    REPLY_DUE = "reply_due"
    URGE = "urge"  # 催办, escalation level 0
    SUPERVISE_1 = "supervise1"  # 一级督办
    SUPERVISE_2 = "supervise2"  # 二级督办
    FEEDBACK = "feedback"  # no rating within the window: close as 未评价


ESCALATION_TIMERS = {TimerKind.URGE: 0, TimerKind.SUPERVISE_1: 1, TimerKind.SUPERVISE_2: 2}


class Timer(BaseModel):
    """A future check on a case. ``generation`` ties it to one deadline: a timer of an older
    generation (the due date moved since) does nothing when it fires."""

    case_id: str
    department: str
    kind: TimerKind
    generation: int
    fire_at: datetime

    @property
    def id(self) -> str:
        return f"{self.case_id}:{self.department}:{self.kind.value}:{self.generation}"


class Attachment(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    url: str = Field(min_length=1, max_length=1000, pattern=r"^https?://")


class Extension(BaseModel):
    requested_at: datetime
    reason: str
    requested_due_at: datetime
    status: Literal["requested", "approved", "refused"] = "requested"
    decided_by: str | None = None
    decision_reason: str | None = None


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
    feedback_due_at: datetime | None = None
    feedback: list[Feedback] = Field(default_factory=list)
    reopened: int = 0
    rating: Rating | None = None
    outcome: str | None = None
    closed_at: datetime | None = None
    instructions: list[Instruction] = Field(default_factory=list)
    adoptions: list[Adoption] = Field(default_factory=list)
    # Kept at the top level so supervisors can list overdue and escalated work.
    overdue: bool = False
    escalation_level: int = NOT_ESCALATED
    # The whole opinion (交办材料) from intake, its latest revision; None until it arrives.
    opinion: OpinionFile | None = None
    merged_into: str | None = None

    @property
    def member_id(self) -> str | None:
        return None if self.opinion is None else self.opinion.member_id

    @classmethod
    def open(
        cls, assigned: OpinionAssigned, now: datetime, rules: Rules
    ) -> tuple["Case", list[Timer]]:
        """A new case from its first assignment, with the registration as first step, and the
        timers its deadlines need."""
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
        return case, case.assign(assigned, now, rules)

    # -- department work ------------------------------------------------------------------

    def assign(self, assigned: OpinionAssigned, now: datetime, rules: Rules) -> list[Timer]:
        """交办 to one department; a department that returned it or had it withdrawn may be
        assigned again, and one still holding it takes the role it is given (改派 of roles)."""
        if self.status == CaseStatus.MERGED:
            return []  # handled in the case it was merged into
        existing = self.assignments.get(assigned.department)
        if existing is not None and not existing.has_ended():
            if existing.role != assigned.role:
                existing.role = assigned.role
                role = "主办" if assigned.role == "lead" else "协办"
                self._log(now, "改派", "routing", f"{assigned.department_name} 改为{role}")
            return []
        assignment = self._fresh(
            assigned.department,
            assigned.department_name,
            assigned.role,
            existing.generation + 1 if existing else 1,
            now,
            rules,
        )
        role = "主办" if assigned.role == "lead" else "协办"
        self._log(
            now,
            "交办",
            "routing",
            f"{role} {assigned.department_name}, 类别 {assigned.category}, "
            f"签收期限 {_local(assignment.sign_due_at)}, 办理期限 {_local(assignment.due_at)}",
        )
        if self.status == CaseStatus.CLOSED:
            return []
        return self._timers(assignment, rules, sign=True)

    def _fresh(
        self,
        department: str,
        name: str,
        role: Literal["lead", "co"],
        generation: int,
        now: datetime,
        rules: Rules,
    ) -> Assignment:
        """A new assignment from ``now``, with the deadlines of the case's urgency."""
        profile = rules.policy.profile(self.urgency)
        assignment = Assignment(
            department=department,
            department_name=name,
            role=role,
            assigned_at=now,
            sign_due_at=rules.calendar.due(now, profile.sign),
            due_at=rules.calendar.due(now, profile.reply),
            generation=generation,
        )
        self.assignments[department] = assignment
        return assignment

    def split_off(self, split: OpinionSplit, now: datetime, rules: Rules) -> list[Timer]:
        """拆分 of a merged case: the departments its 并案 stopped work on it again, from now
        on, with new deadlines."""
        if self.status != CaseStatus.MERGED:
            return []
        self.status = CaseStatus.OPEN
        self.merged_into = None
        self.outcome = None
        self._log(now, "拆分", split.split_by, "从并案中拆分, 重新办理")
        timers = []
        for a in list(self.assignments.values()):
            if a.status == AssignmentStatus.WITHDRAWN and (a.withdraw_reason or "").startswith(
                MERGED_REASON
            ):
                fresh = self._fresh(
                    a.department, a.department_name, a.role, a.generation + 1, now, rules
                )
                timers += self._timers(fresh, rules, sign=True)
        return timers

    def take_brief(self, briefed: OpinionBriefed, now: datetime) -> bool:
        """The opinion as intake now has it; False when this revision is not newer."""
        brief = briefed.opinion
        if self.opinion is not None and brief.revision <= self.opinion.revision:
            return False
        edited = self.opinion is not None and (
            (self.opinion.title, self.opinion.content) != (brief.title, brief.content)
        )
        self.opinion = brief
        self.title = brief.title
        if edited:
            self._log(now, "编辑", "intake", f"意见内容已修改: {brief.title}")
        return True

    def merge_into(self, merged: OpinionMerged, now: datetime) -> list[EventData]:
        """并案: the opinion is handled in ``into``; every department still working on it
        stops (no department handles the same matter twice) and is told why."""
        if self.status == CaseStatus.MERGED:
            return []
        reason = f"{MERGED_REASON} {merged.into_tracking_no}, 在该件中办理"
        ended = [a for a in self.assignments.values() if not a.has_ended()]
        for assignment in ended:
            assignment.status = AssignmentStatus.WITHDRAWN
            assignment.withdrawn_at = now
            assignment.withdraw_reason = reason
            assignment.overdue = False
        self.status = CaseStatus.MERGED
        self.merged_into = merged.into_id
        self.outcome = "并案"
        self._refresh()
        self._log(now, "并案", merged.merged_by, reason)
        return [
            OpinionWithdrawn(
                opinion_id=self.id,
                department=a.department,
                tracking_no=self.tracking_no,
                office_id=self.office_id,
                reason=reason,
            )
            for a in ended
        ]

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

    def sign(self, department: str, now: datetime) -> list[EventData]:
        """签收; signing again changes nothing."""
        assignment = self.assignment_of(department)
        if assignment.status == AssignmentStatus.RETURNED:
            raise CaseError(409, "This assignment was returned (退回); it cannot be signed.")
        if assignment.status == AssignmentStatus.WITHDRAWN:
            raise CaseError(409, "This assignment was withdrawn (已改派); it cannot be signed.")
        if assignment.status != AssignmentStatus.ASSIGNED:
            return []
        assignment.status = AssignmentStatus.SIGNED
        assignment.signed_at = now
        on_time = now <= assignment.sign_due_at
        self._log(
            now,
            "签收",
            department,
            f"{assignment.department_name} 已签收{'' if on_time else ' (超期签收)'}",
        )
        return [
            AssignmentSigned(
                opinion_id=self.id,
                office_id=self.office_id,
                department=department,
                signed_at=now,
                sign_due_at=assignment.sign_due_at,
                on_time=on_time,
            )
        ]

    def _working(self, department: str, role: Literal["lead", "co"] | None = None) -> Assignment:
        """The department's assignment, which must be signed and still owe work."""
        assignment = self.assignment_of(department)
        if self.status in (CaseStatus.CLOSED, CaseStatus.MERGED):
            raise CaseError(409, f"The case is {self.status} (已办结/已并案).")
        if role == "lead" and assignment.role != "lead":
            raise CaseError(409, "Only the lead department (主办) replies to the submitter.")
        if role == "co" and assignment.role != "co":
            raise CaseError(409, "Only a co-handler (协办) gives input; the lead replies.")
        if assignment.status == AssignmentStatus.RETURNED:
            raise CaseError(409, "This assignment was returned (退回).")
        if assignment.status == AssignmentStatus.WITHDRAWN:
            raise CaseError(409, "This assignment was withdrawn (已改派) to another department.")
        if assignment.status == AssignmentStatus.ASSIGNED:
            raise CaseError(409, "Sign for the assignment (签收) first.")
        if assignment.status == AssignmentStatus.REPLIED:
            raise CaseError(409, "This assignment has already been replied to.")
        return assignment

    def reply(
        self,
        department: str,
        result: ReplyResult,
        text: str,
        attachments: list[Attachment],
        now: datetime,
        rules: Rules,
        feedback_url: str,
    ) -> tuple[list[EventData], list[Timer]]:
        """答复 by the lead department; asks the submitter for feedback (回访)."""
        assignment = self._working(department, "lead")
        assignment.status = AssignmentStatus.REPLIED
        assignment.replied_at = now
        assignment.result = result
        assignment.text = text
        assignment.attachments = attachments
        on_time = now <= assignment.due_at
        self.status = CaseStatus.AWAITING_FEEDBACK
        self.feedback_round += 1
        self.feedback_due_at = rules.calendar.due(now, rules.policy.feedback_window)
        late = "" if on_time else " (超期答复)"
        self._log(now, "答复", department, f"{assignment.department_name}: {result}{late}")
        self._log(
            now,
            "回访",
            "followup",
            f"已向提交人发送评价链接, 有效至 {_local(self.feedback_due_at)}",
        )
        self._refresh()
        events: list[EventData] = [
            AssignmentReplied(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                department=department,
                result=result,
                text=text,
                replied_at=now,
                due_at=assignment.due_at,
                on_time=on_time,
            ),
            FeedbackRequested(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                feedback_url=feedback_url,
                expires_at=self.feedback_due_at,
            ),
        ]
        timer = Timer(
            case_id=self.id,
            department=department,
            kind=TimerKind.FEEDBACK,
            generation=self.feedback_round,
            fire_at=self.feedback_due_at,
        )
        return events, [timer]

    def give_input(self, department: str, text: str, now: datetime) -> list[EventData]:
        """协办意见: a co-handler's input goes to the lead department."""
        assignment = self._working(department, "co")
        lead = self.lead()
        if lead is None:
            raise CaseError(409, "There is no lead department (主办) to give input to yet.")
        assignment.status = AssignmentStatus.REPLIED
        assignment.replied_at = now
        assignment.text = text
        self._log(
            now, "协办意见", department, f"{assignment.department_name} → {lead.department_name}"
        )
        self._refresh()
        return [
            AssignmentInputGiven(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                department=lead.department,
                from_department=department,
                text=text,
                given_at=now,
            )
        ]

    def request_extension(
        self, department: str, reason: str, new_day: date, now: datetime, rules: Rules
    ) -> list[EventData]:
        """申请延期: before the due date, at most ``extensions_allowed`` times, to a later day."""
        assignment = self._working(department)
        if now > assignment.due_at:
            raise CaseError(
                409,
                f"The due date {_local(assignment.due_at)} has passed; an extension must be "
                "requested before it (延期须在办理期限届满前申请).",
            )
        if assignment.extension is not None and assignment.extension.status == "requested":
            raise CaseError(409, "An extension request is already waiting for a decision.")
        if assignment.extensions_used >= rules.policy.extensions_allowed:
            raise CaseError(
                409, f"At most {rules.policy.extensions_allowed} extension(s) per assignment."
            )
        requested_due = rules.calendar.end_of(new_day)
        if requested_due <= assignment.due_at:
            raise CaseError(
                422, f"new_due must be after the current due date {_local(assignment.due_at)}."
            )
        assignment.extension = Extension(
            requested_at=now, reason=reason, requested_due_at=requested_due
        )
        self._log(now, "申请延期", department, f"申请延期至 {new_day:%Y-%m-%d}: {reason}")
        return [
            AssignmentExtensionRequested(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                department=department,
                reason=reason,
                due_at=assignment.due_at,
                requested_due_at=requested_due,
                requested_at=now,
            )
        ]

    def decide_extension(
        self, department: str, approve: bool, reason: str, actor: str, now: datetime, rules: Rules
    ) -> tuple[list[EventData], list[Timer]]:
        """A supervisor approves (the new due date applies, timers start again) or refuses."""
        assignment = self.assignment_of(department)
        if assignment.has_ended():
            raise CaseError(409, f"{department} no longer holds this case (退回/改派).")
        extension = assignment.extension
        if extension is None or extension.status != "requested":
            raise CaseError(409, f"{department} has no extension request waiting for a decision.")
        extension.decided_by = actor
        extension.decision_reason = reason
        if not approve:
            extension.status = "refused"
            self._log(now, "延期驳回", actor, f"{assignment.department_name}: {reason}")
            refused = AssignmentExtensionRefused(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                department=department,
                reason=reason,
                decided_by=actor,
            )
            return [refused], []
        extension.status = "approved"
        assignment.extensions_used += 1
        assignment.due_at = extension.requested_due_at
        assignment.generation += 1
        assignment.overdue = False
        self._refresh()
        self._log(
            now,
            "延期批准",
            actor,
            f"{assignment.department_name} 办理期限延至 {_local(assignment.due_at)}",
        )
        approved = AssignmentExtensionApproved(
            opinion_id=self.id,
            office_id=self.office_id,
            tracking_no=self.tracking_no,
            department=department,
            due_at=assignment.due_at,
            decided_by=actor,
        )
        return [approved], self._timers(assignment, rules, sign=False)

    def return_assignment(self, department: str, reason: str, now: datetime) -> list[EventData]:
        """退回 a wrong assignment with a reason; routing decides again without it."""
        assignment = self.assignment_of(department)
        if assignment.status == AssignmentStatus.RETURNED:
            raise CaseError(409, "This assignment was already returned.")
        if assignment.status == AssignmentStatus.WITHDRAWN:
            raise CaseError(409, "This assignment was withdrawn (已改派); nothing to return.")
        if not assignment.is_active() or self.status == CaseStatus.CLOSED:
            raise CaseError(409, "Only work not yet replied to can be returned.")
        assignment.status = AssignmentStatus.RETURNED
        assignment.return_reason = reason
        assignment.overdue = False
        self._refresh()
        self._log(now, "退回", department, f"{assignment.department_name} 退回: {reason}")
        return [
            AssignmentReturned(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                department=department,
                reason=reason,
                returned_at=now,
            )
        ]

    def withdraw(self, department: str, reason: str, now: datetime) -> bool:
        """改派: staff moved the opinion away from the department; its assignment ends (no
        timer acts on it any more). False when there is nothing to withdraw: the department
        already returned it or had it withdrawn. A withdrawn lead's successor arrives as a new
        assignment (交办)."""
        assignment = self.assignment_of(department)
        if assignment.has_ended():
            return False
        assignment.status = AssignmentStatus.WITHDRAWN
        assignment.withdrawn_at = now
        assignment.withdraw_reason = reason
        assignment.overdue = False
        self._refresh()
        self._log(now, "改派", "routing", f"{assignment.department_name} 不再承办: {reason}")
        return True

    # -- supervision ----------------------------------------------------------------------

    def escalate(
        self, department: str, level: int | None, reason: str, actor: str, now: datetime
    ) -> list[EventData]:
        """催办/督办 by hand: to ``level`` or one above the current one."""
        assignment = self.assignment_of(department)
        if not assignment.is_active() or self.status == CaseStatus.CLOSED:
            raise CaseError(409, f"{department} owes no work on this case; nothing to escalate.")
        target = assignment.escalation_level + 1 if level is None else level
        if target <= assignment.escalation_level or target > 2:
            current = ESCALATION_LABELS.get(assignment.escalation_level, "无")
            raise CaseError(409, f"Already at {current}; escalation goes up to level 2 (二级督办).")
        return [self._escalation(assignment, target, reason, actor, now)]

    def _escalation(
        self, assignment: Assignment, level: int, reason: str, actor: str, now: datetime
    ) -> CaseEscalated:
        assignment.escalation_level = level
        self._refresh()
        label = ESCALATION_LABELS[level]
        self._log(now, label, actor, f"{assignment.department_name}: {reason}")
        return CaseEscalated(
            opinion_id=self.id,
            office_id=self.office_id,
            tracking_no=self.tracking_no,
            department=assignment.department,
            level=level,
            label=label,
            reason=reason,
            actor=actor,
            due_at=assignment.due_at,
            escalated_at=now,
        )

    def instruct(self, leader: str, text: str, now: datetime) -> list[EventData]:
        """批示 recorded on the case and announced to the member and office."""
        self.instructions.append(Instruction(leader=leader, text=text, at=now))
        self._log(now, "批示", leader, text[:100])
        return [
            OpinionInstructed(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                leader=leader,
                text=text,
                instructed_at=now,
                member_id=self.member_id,
            )
        ]

    def adopt(self, level: AdoptionLevel, by: str, note: str, now: datetime) -> list[EventData]:
        """采用 at a level, once per level."""
        if any(a.level == level for a in self.adoptions):
            raise CaseError(409, f"Already recorded as adopted at level {level}.")
        self.adoptions.append(Adoption(level=level, adopted_by=by, note=note, at=now))
        self._log(now, "采用", by, f"{level}级采用{': ' + note if note else ''}")
        return [
            OpinionAdopted(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                level=level,
                adopted_by=by,
                note=note,
                adopted_at=now,
                member_id=self.member_id,
            )
        ]

    # -- feedback -------------------------------------------------------------------------

    def rate(
        self,
        feedback_round: int,
        rating: Rating,
        comment: str,
        resolved: bool | None,
        now: datetime,
        rules: Rules,
    ) -> tuple[list[EventData], list[Timer]]:
        """评价 through the link of this round: 不满意 reopens (重办) once, otherwise 办结."""
        if self.status != CaseStatus.AWAITING_FEEDBACK or feedback_round != self.feedback_round:
            raise CaseError(409, "This feedback link has already been used or is no longer valid.")
        lead = self.lead()
        if resolved is None:
            resolved = lead is not None and lead.result == ReplyResult.RESOLVED
        self.feedback.append(
            Feedback(
                round=feedback_round, rating=rating, comment=comment, resolved=resolved, at=now
            )
        )
        self.rating = rating
        self._log(now, "评价", "submitter", f"{rating}{': ' + comment if comment else ''}")
        received = FeedbackReceived(
            opinion_id=self.id,
            office_id=self.office_id,
            rating=rating,
            comment=comment,
            resolved=resolved,
            rated_at=now,
        )
        reopen = rating == Rating.UNSATISFIED and self.reopened < rules.policy.reopens_allowed
        if reopen and lead is not None:
            return [received, self._reopen(lead, comment, now, rules)], self._timers(
                lead, rules, sign=False
            )
        return [received, self._close(str(rating), now)], []

    def _reopen(self, lead: Assignment, comment: str, now: datetime, rules: Rules) -> CaseReopened:
        self.reopened += 1
        self.status = CaseStatus.OPEN
        lead.status = AssignmentStatus.SIGNED
        lead.replied_at = None
        lead.generation += 1
        lead.due_at = rules.calendar.due(now, rules.policy.profile(self.urgency).reply)
        lead.escalation_level = NOT_ESCALATED
        reason = f"提交人不满意{': ' + comment if comment else ''}"
        self._log(
            now, "重办", "followup", f"{lead.department_name} 重新办理, 期限 {_local(lead.due_at)}"
        )
        return CaseReopened(
            opinion_id=self.id,
            office_id=self.office_id,
            tracking_no=self.tracking_no,
            reason=reason,
            reopened_at=now,
        )

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

    # -- timers ---------------------------------------------------------------------------

    def _timers(self, assignment: Assignment, rules: Rules, sign: bool) -> list[Timer]:
        """The checks to schedule for the assignment's current deadlines."""
        cal, policy = rules.calendar, rules.policy

        def timer(kind: TimerKind, at: datetime) -> Timer:
            return Timer(
                case_id=self.id,
                department=assignment.department,
                kind=kind,
                generation=assignment.generation,
                fire_at=at,
            )

        found = [timer(TimerKind.SIGN_DUE, assignment.sign_due_at)] if sign else []
        # Co-handlers owe their input to the lead; only the lead's reply deadline is chased.
        if assignment.role != "lead":
            return found
        due = assignment.due_at
        reply_span = policy.profile(self.urgency).reply
        reminder = (
            due - reply_span.as_timedelta() / 4
            if reply_span.is_clock_time()
            else cal.workday_before(due)
        )
        first, second = policy.supervise_after_workdays
        found += [
            timer(TimerKind.REMINDER, reminder),
            timer(TimerKind.REPLY_DUE, due),
            timer(TimerKind.URGE, cal.workdays_after(due, policy.urge_after_workdays)),
            timer(TimerKind.SUPERVISE_1, cal.workdays_after(due, first)),
            timer(TimerKind.SUPERVISE_2, cal.workdays_after(due, second)),
        ]
        return [t for t in found if t.fire_at > assignment.assigned_at]

    def fire(self, timer: Timer, now: datetime) -> list[EventData]:
        """What a due timer does; nothing when the work it watched is done or its deadline moved."""
        if self.status in (CaseStatus.CLOSED, CaseStatus.MERGED):
            return []
        if timer.kind == TimerKind.FEEDBACK:
            if (
                self.status == CaseStatus.AWAITING_FEEDBACK
                and timer.generation == self.feedback_round
            ):
                self._log(now, "评价", "followup", "评价期限届满, 提交人未评价")
                return [self._close("未评价", now)]
            return []
        assignment = self.assignments.get(timer.department)
        if (
            assignment is None
            or assignment.generation != timer.generation
            or assignment.has_ended()
        ):
            return []
        if timer.kind == TimerKind.SIGN_DUE:
            late = assignment.signed_at is None or assignment.signed_at > assignment.sign_due_at
            return [self._breach(assignment, "sign", now)] if late else []
        if timer.kind == TimerKind.REPLY_DUE:
            late = assignment.replied_at is None or assignment.replied_at > assignment.due_at
            return [self._breach(assignment, "reply", now)] if late else []
        if not assignment.is_active():
            return []
        if timer.kind == TimerKind.REMINDER:
            self._log(now, "到期提醒", "followup", f"{assignment.department_name} 即将到期")
            return [
                DeadlineWarning(
                    opinion_id=self.id,
                    office_id=self.office_id,
                    tracking_no=self.tracking_no,
                    department=assignment.department,
                    kind="reply",
                    due_at=assignment.due_at,
                )
            ]
        level = ESCALATION_TIMERS[timer.kind]
        if assignment.escalation_level >= level:
            return []
        reason = f"办理期限 {_local(assignment.due_at)} 已过, 尚未答复"
        return [self._escalation(assignment, level, reason, "followup", now)]

    def _breach(
        self, assignment: Assignment, kind: Literal["sign", "reply"], now: datetime
    ) -> DeadlineBreached:
        due = assignment.sign_due_at if kind == "sign" else assignment.due_at
        if kind == "reply":
            assignment.overdue = assignment.is_active()
            self._refresh()
        what = "签收" if kind == "sign" else "办理"
        self._log(
            now, "超期", "followup", f"{assignment.department_name} {what}超期 ({_local(due)})"
        )
        return DeadlineBreached(
            opinion_id=self.id,
            office_id=self.office_id,
            tracking_no=self.tracking_no,
            department=assignment.department,
            kind=kind,
            due_at=due,
        )

    def _refresh(self) -> None:
        active = [a for a in self.assignments.values() if a.is_active()]
        open_case = self.status != CaseStatus.CLOSED
        self.overdue = open_case and any(a.overdue for a in active)
        self.escalation_level = max(
            (a.escalation_level for a in active if open_case), default=NOT_ESCALATED
        )

    def _log(self, at: datetime, step: str, actor: str, summary: str) -> None:
        self.timeline.append(TimelineEntry(at=at, step=step, actor=actor, summary=summary))


# -- KPI projections (统计) -------------------------------------------------------------------


@dataclass(frozen=True)
class KpiChange:
    """Counters to add for one event, by department (None: the case's lead), filed under the
    reporting month of ``at``, the business time the event reports."""

    at: datetime
    department: str | None
    counters: dict[str, int]

    @property
    def month(self) -> str:
        return month_of(self.at)


ADOPTION_COUNTERS = {
    AdoptionLevel.DISTRICT: "adopted_district",
    AdoptionLevel.CITY: "adopted_city",
    AdoptionLevel.PROVINCE: "adopted_province",
    AdoptionLevel.NATIONAL: "adopted_national",
}


def month_of(at: datetime) -> str:
    """The reporting month (Beijing time) of an instant, e.g. ``2026-10``."""
    return f"{at.astimezone(BEIJING):%Y-%m}"


def kpi_change(payload: EventData) -> KpiChange | None:
    """How an event moves the KPI counters, filed under the month of the business time it
    reports (never the envelope's publishing time, so a late or replayed event lands where its
    first delivery did). A deadline counts once, in the month it falls due: met (on-time
    sign/reply) or missed (its breach); a late act adds nothing more."""
    if isinstance(payload, AssignmentSigned):
        if not payload.on_time or payload.sign_due_at is None:
            return None
        counters = {"sign_due": 1, "signed_on_time": 1}
        return KpiChange(payload.sign_due_at, payload.department, counters)
    if isinstance(payload, AssignmentReplied):
        if not payload.on_time or payload.due_at is None:
            return None
        return KpiChange(payload.due_at, payload.department, {"reply_due": 1, "replied_on_time": 1})
    if isinstance(payload, DeadlineBreached):
        counters = {"sign_due": 1} if payload.kind == "sign" else {"reply_due": 1, "overdue": 1}
        return KpiChange(payload.due_at, payload.department, counters)
    if isinstance(payload, CaseEscalated):
        counter = "urged" if payload.level == 0 else "escalated"
        return KpiChange(payload.escalated_at, payload.department, {counter: 1})
    if isinstance(payload, FeedbackReceived):
        counters = {
            "feedback": 1,
            "resolved": int(bool(payload.resolved)),
            "satisfied": int(payload.rating == Rating.SATISFIED),
            "basically_satisfied": int(payload.rating == Rating.BASICALLY_SATISFIED),
            "unsatisfied": int(payload.rating == Rating.UNSATISFIED),
        }
        return KpiChange(payload.rated_at, None, counters)
    if isinstance(payload, CaseClosed):
        counters = {"closed": 1, "no_feedback": int(payload.outcome == "未评价")}
        return KpiChange(payload.closed_at, None, counters)
    if isinstance(payload, AssignmentExtensionRequested):
        return KpiChange(payload.requested_at, payload.department, {"extensions_requested": 1})
    if isinstance(payload, AssignmentReturned):
        return KpiChange(payload.returned_at, payload.department, {"returned": 1})
    if isinstance(payload, OpinionInstructed):
        return KpiChange(payload.instructed_at, None, {"instructed": 1})
    if isinstance(payload, OpinionAdopted):
        return KpiChange(payload.adopted_at, None, {ADOPTION_COUNTERS[payload.level]: 1})
    return None


class MemberPoints(BaseModel):
    """What one event adds to a member's 履职积分, once per ``key``, in the month of the
    business time the event carries."""

    key: str
    month: str
    member: str
    office: str
    counters: dict[str, int]


def member_points(event_id: str, payload: EventData) -> MemberPoints | None:
    """Submitted (登记 or 附议), 采用 by level and 批示 of an opinion that names its member."""
    member = getattr(payload, "member_id", None)
    if member is None:
        return None
    office = str(getattr(payload, "office_id", ""))
    if isinstance(payload, OpinionReceived):
        key, at, counters = f"submitted-{payload.opinion_id}", payload.received_at, "submitted"
    elif isinstance(payload, OpinionSupported):
        key, at, counters = f"submitted-{payload.supporter_id}", payload.supported_at, "submitted"
    elif isinstance(payload, OpinionAdopted):
        key, at, counters = event_id, payload.adopted_at, ADOPTION_COUNTERS[payload.level]
    elif isinstance(payload, OpinionInstructed):
        key, at, counters = event_id, payload.instructed_at, "instructed"
    else:
        return None
    return MemberPoints(
        key=key, month=month_of(at), member=member, office=office, counters={counters: 1}
    )


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def rates(counters: dict[str, int]) -> dict[str, float | None]:
    """The rates supervisors are judged by, from the counters (None when nothing is due)."""
    c = counters.get
    feedback = c("feedback", 0)
    return {
        "timely_sign_rate": _ratio(c("signed_on_time", 0), c("sign_due", 0)),  # 及时签收率
        "on_time_rate": _ratio(c("replied_on_time", 0), c("reply_due", 0)),  # 按时办结率
        "resolution_rate": _ratio(c("resolved", 0), feedback),  # 解决率
        "satisfaction_rate": _ratio(  # 满意率 (满意 + 基本满意)
            c("satisfied", 0) + c("basically_satisfied", 0), feedback
        ),
        "fully_satisfied_rate": _ratio(c("satisfied", 0), feedback),  # 满意 alone
    }


class PointWeights(BaseModel):
    """履职积分 per action (configurable)."""

    submitted: int = 1
    instructed: int = 5
    adopted_district: int = 3
    adopted_city: int = 5
    adopted_province: int = 8
    adopted_national: int = 10

    def points(self, counters: dict[str, int]) -> int:
        return sum(weight * counters.get(name, 0) for name, weight in self.model_dump().items())
