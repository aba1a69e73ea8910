"""Deadline timers, breaches and escalation (催办, 一级/二级督办)."""

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from shared.events import (
    CaseEscalated,
    DeadlineBreached,
    DeadlineCarded,
    DeadlineWarning,
    EventData,
    RequestKind,
)

from ..workdays import Span, WorkCalendar
from .policy import CaseError, Rules
from .records import (
    CARD_LABELS,
    CLOCK_LABELS,
    Assignment,
    Card,
    CaseRecord,
    CaseStatus,
    Clock,
    _local,
)

ESCALATION_LABELS = {0: "催办", 1: "一级督办", 2: "二级督办"}


class TimerKind(StrEnum):
    SIGN_DUE = "sign_due"
    REMINDER = "reminder"
    REPLY_DUE = "reply_due"
    URGE = "urge"  # 催办, escalation level 0
    SUPERVISE_1 = "supervise1"  # 一级督办
    SUPERVISE_2 = "supervise2"  # 二级督办
    FEEDBACK = "feedback"  # no rating within the window: close as 未评价
    RESPOND_DUE = "respond_due"
    # 黄牌/红牌 of the three clocks.
    RESPOND_YELLOW = "respond_yellow"
    RESPOND_RED = "respond_red"
    SIGN_YELLOW = "sign_yellow"
    SIGN_RED = "sign_red"
    REPLY_RED = "reply_red"
    REVIEW_REMINDER = "review_reminder"  # 审核 near its deadline
    REVIEW_DUE = "review_due"  # 审核 past its deadline
    PLAN_DUE = "plan_due"  # a grade-B reply's plan day has passed: 跟踪督办


ESCALATION_TIMERS = {TimerKind.URGE: 0, TimerKind.SUPERVISE_1: 1, TimerKind.SUPERVISE_2: 2}
# The timers that follow the 办结 deadline (they move with it).
REPLY_TIMERS = frozenset(
    {TimerKind.REMINDER, TimerKind.REPLY_DUE, TimerKind.REPLY_RED, *ESCALATION_TIMERS}
)


CARD_TIMERS: dict[TimerKind, tuple[Clock, Card]] = {
    TimerKind.RESPOND_YELLOW: ("respond", "yellow"),
    TimerKind.RESPOND_RED: ("respond", "red"),
    TimerKind.SIGN_YELLOW: ("sign", "yellow"),
    TimerKind.SIGN_RED: ("sign", "red"),
    TimerKind.REPLY_RED: ("reply", "red"),
}
# The 办结 clock's 黄牌 comes with the reminder (到期提醒), which falls at the same time.
CARD_KINDS = {value: kind for kind, value in CARD_TIMERS.items()}


def card_times(calendar: WorkCalendar, due: datetime, span: Span) -> tuple[datetime, datetime]:
    """When a clock's 黄牌 and 红牌 fall: at office opening on the working day before the
    deadline's day and on the working day after it; for a clock counted in minutes or hours,
    when three quarters of the time are gone and at the deadline itself."""
    if span.is_clock_time():
        return due - span.as_timedelta() / 4, due
    return calendar.workday_before(due), calendar.workdays_after(due, 1)


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

        def cards(clock: Clock, due: datetime, span: Span) -> list[Timer]:
            yellow, red = card_times(cal, due, span)
            found = [timer(CARD_KINDS[(clock, "red")], red)]
            if (clock, "yellow") in CARD_KINDS:
                found.append(timer(CARD_KINDS[(clock, "yellow")], yellow))
            return found

        profile = policy.profile(self.urgency)
        found = []
        if sign:
            found += [timer(TimerKind.SIGN_DUE, assignment.sign_due_at)]
            found += cards("sign", assignment.sign_due_at, profile.sign)
            if assignment.respond_due_at is not None:
                found += [timer(TimerKind.RESPOND_DUE, assignment.respond_due_at)]
                found += cards("respond", assignment.respond_due_at, profile.respond)
        # Co-handlers owe their input to the lead; only the lead's reply deadline is chased.
        if assignment.role != "lead":
            return [t for t in found if t.fire_at > assignment.assigned_at]
        due = assignment.due_at
        reply_span = self.reply_span(rules)
        reminder, _ = card_times(cal, due, reply_span)
        first, second = policy.supervise_after_workdays
        found += [
            *cards("reply", due, reply_span),
            timer(TimerKind.REMINDER, reminder),
            timer(TimerKind.REPLY_DUE, due),
            timer(TimerKind.URGE, cal.workdays_after(due, policy.urge_after_workdays)),
            timer(TimerKind.SUPERVISE_1, cal.workdays_after(due, first)),
            timer(TimerKind.SUPERVISE_2, cal.workdays_after(due, second)),
        ]
        return [t for t in found if t.fire_at > assignment.assigned_at]

    def timers_of(self, department: str, rules: Rules) -> list[Timer]:
        """The timers the department's assignment needs, but those that acted already: what a
        redelivered 交办 stores again, in case a crash came between the case and its timers."""
        a = self.assignments.get(department)
        if self.status in (CaseStatus.CLOSED, CaseStatus.MERGED) or a is None or a.has_ended():
            return []
        return [t for t in self._timers(a, rules, sign=True) if not self.has_handled(t.id)]

    def reply_span(self, rules: Rules) -> Span:
        """The 办结 clock of this case: by urgency class and kind of request."""
        return rules.policy.profile(self.urgency).reply_for(self.kind)

    def correct_kind(self, kind: RequestKind, by: str, now: datetime, rules: Rules) -> list[Timer]:
        """更正诉求类型 by staff: the 办结 deadline of every department still working on the
        case is counted again from its 交办 with the new kind's span (not restarted from now);
        响应 and 签收 do not depend on the kind and keep their deadlines. Only while the lead's
        办结 clock runs as 交办 set it: not once replied, past due, extended or reopened.
        Returns the lead's timers for the new deadline (a new generation); the 签收/响应 checks
        still to come are carried over, those already acted on are not repeated."""
        if self.status in (CaseStatus.CLOSED, CaseStatus.MERGED):
            raise CaseError(409, f"Case {self.id} is {self.status.value}; its kind is final.")
        if kind == self.kind:
            return []
        lead = self.lead()
        if lead is None or not lead.is_active():
            raise CaseError(409, "No department is working on the case (未在办理中).")
        if lead.overdue or lead.due_at <= now:
            raise CaseError(409, f"The 办结 deadline {_local(lead.due_at)} has passed (已超期).")
        if lead.extensions_used or self.reopened:
            raise CaseError(409, "The 办结 deadline was set by 延期 or 重办, not by the kind.")
        previous, before = self.kind, lead.due_at
        self.kind, self.kind_set_by = kind, by
        span = self.reply_span(rules)
        for a in self.assignments.values():
            if a.is_active():
                a.due_at = rules.calendar.due(a.assigned_at, span)
        lead.cards.pop("reply", None)
        lead.generation += 1
        self._log(
            now,
            "更正诉求类型",
            by,
            f"诉求类型 {previous or '未定'} → {kind}; 办理期限 {_local(before)} → "
            f"{_local(lead.due_at)} (自交办 {_local(lead.assigned_at)} 起算)",
        )

        def still_due(timer: Timer) -> bool:
            if timer.kind == TimerKind.REMINDER:
                return lead.due_at > now  # a reminder after the deadline says nothing
            if timer.kind in REPLY_TIMERS:
                return True
            earlier = timer.model_copy(update={"generation": lead.generation - 1})
            return not self.has_handled(earlier.id)

        return [t for t in self._timers(lead, rules, sign=True) if still_due(t)]

    def fire(self, timer: Timer, now: datetime, rules: Rules) -> list[EventData]:
        """What a due timer does; nothing when the work it watched is done or its deadline moved."""
        if self.status in (CaseStatus.CLOSED, CaseStatus.MERGED):
            return []
        if timer.kind == TimerKind.FEEDBACK:
            if (
                self.status == CaseStatus.AWAITING_FEEDBACK
                and timer.generation == self.feedback_round
            ):
                self._log(now, "评价", "followup", "评价期限届满, 提交人未评价")
                return [self._close("未评价", now, rules)]
            return []
        assignment = self.assignments.get(timer.department)
        if (
            assignment is None
            or assignment.generation != timer.generation
            or assignment.has_ended()
        ):
            return []
        if timer.kind in CARD_TIMERS:
            return self._card(assignment, *CARD_TIMERS[timer.kind], now)
        due_clocks: dict[TimerKind, Clock] = {
            TimerKind.RESPOND_DUE: "respond",
            TimerKind.SIGN_DUE: "sign",
            TimerKind.REPLY_DUE: "reply",
        }
        if (clock := due_clocks.get(timer.kind)) is not None:
            return [self._breach(assignment, clock, now)] if _missed(assignment, clock) else []
        if not assignment.is_active():
            return []
        if timer.kind == TimerKind.REMINDER:
            self._log(now, "到期提醒", "followup", f"{assignment.department_name} 即将到期")
            warning = DeadlineWarning(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                department=assignment.department,
                kind="reply",
                due_at=assignment.due_at,
            )
            return [warning, *self._card(assignment, "reply", "yellow", now)]
        level = ESCALATION_TIMERS[timer.kind]
        if assignment.escalation_level >= level:
            return []
        reason = f"办理期限 {_local(assignment.due_at)} 已过, 尚未答复"
        return [self._escalation(assignment, level, reason, "followup", now)]

    def _card(
        self, assignment: Assignment, clock: Clock, card: Card, now: datetime
    ) -> list[EventData]:
        """黄牌 while the clock's work is not done; 红牌 when its deadline was missed."""
        due = assignment.clock_due(clock)
        done = assignment.clock_met(clock) is not None
        if due is None or (done if card == "yellow" else not _missed(assignment, clock)):
            return []
        if assignment.cards.get(clock) in (card, "red"):
            return []
        assignment.cards[clock] = card
        state = "将至, 尚未完成" if card == "yellow" else "已过"
        self._log(
            now,
            CARD_LABELS[card],
            "followup",
            f"{assignment.department_name} {CLOCK_LABELS[clock]}期限 {_local(due)} {state}",
        )
        return [
            DeadlineCarded(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                department=assignment.department,
                clock=clock,
                card=card,
                due_at=due,
                carded_at=now,
            )
        ]

    def _breach(self, assignment: Assignment, kind: Clock, now: datetime) -> DeadlineBreached:
        due = assignment.clock_due(kind)
        assert due is not None  # a breach timer exists only for a clock with a deadline
        if kind == "reply":
            assignment.overdue = assignment.is_active()
            self._refresh()
        what = {"respond": "响应", "sign": "签收", "reply": "办理"}[kind]
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


def _missed(assignment: Assignment, clock: Clock) -> bool:
    """Whether the clock's deadline passed (or will) before its work was done."""
    due, met = assignment.clock_due(clock), assignment.clock_met(clock)
    return due is not None and (met is None or met > due)
