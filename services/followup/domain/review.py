"""审核 — review of the lead's reply before it is released to the submitter, where a rule
(by category, urgency and department) asks for it. The reviewer is the registering office or
a supervisor (``reviewer: office``; a supervisor may always review) or supervisors only.

A reply under review (送审) is not released: no 答复 on the public progress, no feedback link,
no notice to the submitter. Approved (审核通过), it is released as the department's reply of
the time it was submitted, so the department's reply time and the review time count apart;
sent back (审核退回) with a reason, the department revises and replies again. The review has a
deadline with a reminder before it and one when it has passed (the followup timers)."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from shared.events import (
    DEPARTMENT_CODE,
    EventData,
    ReplyApproved,
    ReplyResult,
    ReplyReviewReminded,
    ReplySentBack,
    ReplySubmitted,
    Urgency,
)

from ..workdays import Span
from .assignment import DepartmentWork
from .policy import CaseError, Rules
from .records import Assignment, AssignmentStatus, Attachment, Grading, Review, _local
from .timers import Timer, TimerKind

Reviewer = Literal["office", "supervisor"]
REVIEW_TIMERS = (TimerKind.REVIEW_REMINDER, TimerKind.REVIEW_DUE)


class ReviewRule(BaseModel):
    """Replies of these categories, urgencies and departments (an empty list: any) wait for
    ``reviewer`` for at most ``within``."""

    categories: list[Annotated[str, Field(min_length=1, max_length=50)]] = Field(
        default_factory=list, max_length=100
    )
    urgencies: list[Urgency] = Field(default_factory=list, max_length=4)
    departments: list[Annotated[str, Field(pattern=DEPARTMENT_CODE)]] = Field(
        default_factory=list, max_length=200
    )
    reviewer: Reviewer = "office"
    within: Span = Field(default_factory=lambda: Span(amount=1, unit="working_days"))

    def applies(self, category: str, urgency: str, department: str) -> bool:
        return (
            (not self.categories or category in self.categories)
            and (not self.urgencies or urgency in self.urgencies)
            and (not self.departments or department in self.departments)
        )


class ReviewRules(BaseModel):
    """Which replies are reviewed; the first rule that applies decides."""

    rules: list[ReviewRule] = Field(default_factory=list, max_length=50)

    def match(self, category: str, urgency: str, department: str) -> ReviewRule | None:
        return next((r for r in self.rules if r.applies(category, urgency, department)), None)


class ReplyReviews(DepartmentWork):
    """送审, 审核通过, 审核退回 and the review's reminders."""

    def reply(
        self,
        department: str,
        result: ReplyResult,
        text: str,
        attachments: list[Attachment],
        now: datetime,
        rules: Rules,
        feedback_url: str,
        by: str | None = None,
        grading: Grading | None = None,
        review: ReviewRule | None = None,
    ) -> tuple[list[EventData], list[Timer]]:
        """答复; where a review rule applies the reply waits for review (送审) instead."""
        if review is None:
            return super().reply(
                department, result, text, attachments, now, rules, feedback_url, by, grading
            )
        assignment = self._working(department, "lead")
        self._check_files(department, attachments)
        self._grade(assignment, grading or Grading(), now, rules)
        self.review_rounds += 1
        pending = Review(
            round=self.review_rounds,
            result=result,
            text=text,
            attachments=attachments,
            submitted_at=now,
            submitted_by=by or department,
            reviewer=review.reviewer,
            due_at=rules.calendar.due(now, review.within),
        )
        responded = self._answered(assignment, now, by)
        assignment.review = pending
        assignment.status = AssignmentStatus.REVIEWING
        # The department has answered now: its reply deadline is judged by this moment.
        assignment.replied_at = now
        self._refresh()
        who = "登记单位或督查室" if review.reviewer == "office" else "督查室"
        self._log(
            now,
            "送审",
            pending.submitted_by,
            f"{assignment.department_name}: {result}, 待{who}审核, 期限 {_local(pending.due_at)}",
        )
        submitted = ReplySubmitted(
            opinion_id=self.id,
            office_id=self.office_id,
            tracking_no=self.tracking_no,
            department=department,
            result=result,
            submitted_at=now,
            review_round=pending.round,
            reviewer=pending.reviewer,
            review_due_at=pending.due_at,
        )
        return [*responded, submitted], self._review_timers(
            assignment, pending, review.within, rules
        )

    def _review_timers(
        self, assignment: Assignment, review: Review, within: Span, rules: Rules
    ) -> list[Timer]:
        # A quarter of an hour-based window before its end, else the morning of its last day.
        cal = rules.calendar
        reminder = (
            review.due_at - within.as_timedelta() / 4
            if within.is_clock_time()
            else cal.opening_of(cal.due_day(review.due_at))
        )
        found = [
            Timer(
                case_id=self.id,
                department=assignment.department,
                kind=kind,
                generation=review.round,
                fire_at=at,
            )
            for kind, at in (
                (TimerKind.REVIEW_REMINDER, reminder),
                (TimerKind.REVIEW_DUE, review.due_at),
            )
        ]
        return [t for t in found if t.fire_at > review.submitted_at]

    def _pending_review(self, department: str, office: str | None) -> tuple[Assignment, Review]:
        """The department's reply waiting for review, if ``office`` (None: a supervisor) may
        review it."""
        assignment = self.assignment_of(department)
        review = assignment.review
        if assignment.status != AssignmentStatus.REVIEWING or review is None:
            raise CaseError(
                409, f"{department} 无待审核的答复 / {department} has no reply waiting for review."
            )
        if office is not None and (review.reviewer != "office" or office != self.office_id):
            raise CaseError(
                403, "该答复由督查室审核 / This reply is reviewed by the supervision office."
            )
        return assignment, review

    def _decide(
        self, review: Review, status: Literal["approved", "sent_back"], by: str, now: datetime
    ) -> None:
        review.status = status
        review.reviewed_by = by
        review.reviewed_at = now

    def approve_reply(
        self,
        department: str,
        by: str,
        office: str | None,
        now: datetime,
        rules: Rules,
        feedback_url: str,
    ) -> tuple[list[EventData], list[Timer]]:
        """审核通过: the reply is released as made when it was submitted."""
        assignment, review = self._pending_review(department, office)
        self._decide(review, "approved", by, now)
        assignment.result = review.result
        assignment.text = review.text
        assignment.attachments = review.attachments
        self._log(now, "审核通过", by, f"{assignment.department_name} 的答复审核通过")
        approved = ReplyApproved(**self._reviewed(assignment, review))
        events, timers = self._release(
            assignment, review.submitted_at, now, rules, feedback_url, review.submitted_by
        )
        return [approved, *events], timers

    def send_back(
        self, department: str, reason: str, by: str, office: str | None, now: datetime
    ) -> list[EventData]:
        """审核退回: the department revises its reply (and is late if its due date has passed:
        the breach is counted now, and the reply-deadline timer no more)."""
        assignment, review = self._pending_review(department, office)
        self._decide(review, "sent_back", by, now)
        review.reason = reason
        assignment.status = AssignmentStatus.SIGNED
        assignment.replied_at = None
        self._log(now, "审核退回", by, f"{assignment.department_name} 修改后重新答复: {reason}")
        events: list[EventData] = [
            ReplySentBack(**self._reviewed(assignment, review), reason=reason)
        ]
        if now > assignment.due_at:
            reply_due = Timer(
                case_id=self.id,
                department=department,
                kind=TimerKind.REPLY_DUE,
                generation=assignment.generation,
                fire_at=assignment.due_at,
            )
            if not self.has_handled(reply_due.id):
                self.mark_handled(reply_due.id)
                events.append(self._breach(assignment, "reply", now))
        self._refresh()
        return events

    def _reviewed(self, assignment: Assignment, review: Review) -> dict[str, Any]:
        assert review.reviewed_by is not None and review.reviewed_at is not None
        return {
            "opinion_id": self.id,
            "office_id": self.office_id,
            "tracking_no": self.tracking_no,
            "department": assignment.department,
            "review_round": review.round,
            "reviewed_by": review.reviewed_by,
            "submitted_at": review.submitted_at,
            "reviewed_at": review.reviewed_at,
            "review_due_at": review.due_at,
            "on_time": review.reviewed_at <= review.due_at,
        }

    def fire(self, timer: Timer, now: datetime, rules: Rules) -> list[EventData]:
        """Review timers remind while their round still waits; the rest as any deadline."""
        if timer.kind not in REVIEW_TIMERS:
            return super().fire(timer, now, rules)
        assignment = self.assignments.get(timer.department)
        review = assignment.review if assignment else None
        if (
            assignment is None
            or review is None
            or review.round != timer.generation
            or assignment.status != AssignmentStatus.REVIEWING
        ):
            return []
        overdue = timer.kind == TimerKind.REVIEW_DUE
        step = "审核超期" if overdue else "审核提醒"
        state = "已超过" if overdue else "将到"
        self._log(
            now,
            step,
            "followup",
            f"{assignment.department_name} 的答复待审核, {state}期限 {_local(review.due_at)}",
        )
        return [
            ReplyReviewReminded(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                department=assignment.department,
                review_round=review.round,
                reviewer=review.reviewer,
                review_due_at=review.due_at,
                overdue=overdue,
            )
        ]
