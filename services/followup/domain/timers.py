"""Deadline timers, breaches and escalation (催办, 一级/二级督办)."""

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel

from shared.events import CaseEscalated, DeadlineBreached, DeadlineWarning, EventData

from .policy import CaseError, Rules
from .records import Assignment, CaseRecord, CaseStatus, _local

ESCALATION_LABELS = {0: "催办", 1: "一级督办", 2: "二级督办"}


class TimerKind(StrEnum):
    SIGN_DUE = "sign_due"
    REMINDER = "reminder"
    REPLY_DUE = "reply_due"
    URGE = "urge"  # 催办, escalation level 0
    SUPERVISE_1 = "supervise1"  # 一级督办
    SUPERVISE_2 = "supervise2"  # 二级督办
    FEEDBACK = "feedback"  # no rating within the window: close as 未评价
    REVIEW_REMINDER = "review_reminder"  # 审核 near its deadline
    REVIEW_DUE = "review_due"  # 审核 past its deadline


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


class Deadlines(CaseRecord):
    """Timers on the working-day calendar, and the 超期/催办/督办 they lead to."""

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
