"""Feedback on the lead's reply: 回访 (link or phone), 复核, 重办, 督办单 and 抽查回访."""

from datetime import datetime
from typing import Literal

from shared.events import (
    AuditCallbackRecorded,
    CaseReopened,
    EventData,
    FeedbackReceived,
    FeedbackReviewed,
    Rating,
    ReplyResult,
    SupervisionOrdered,
)

from ..workdays import Span
from .policy import CaseError, Rules
from .records import (
    NOT_ESCALATED,
    Assignment,
    AssignmentStatus,
    Callback,
    CaseStatus,
    Feedback,
    FeedbackReview,
    SupervisionOrder,
    _local,
)
from .timers import Deadlines, Timer


class FeedbackRounds(Deadlines):
    """回访 (the submitter's link or the platform's phone callback), 复核 of an 不满意, 重办,
    the 督办单 of a second 不满意, and 抽查回访 of closed cases."""

    def rate(
        self,
        feedback_round: int,
        rating: Rating,
        comment: str,
        resolved: bool | None,
        now: datetime,
        rules: Rules,
        by: str | None = None,
    ) -> tuple[list[EventData], list[Timer]]:
        """评价 through the link of this round (``by``: staff, on a phone callback). 满意 and
        基本满意 close the case; an 不满意 waits for 复核 while a 重办 is left, otherwise it
        closes the case and opens a 督办单."""
        if self.status != CaseStatus.AWAITING_FEEDBACK or feedback_round != self.feedback_round:
            raise CaseError(409, "This feedback link has already been used or is no longer valid.")
        lead = self.lead()
        if resolved is None:
            resolved = lead is not None and lead.result == ReplyResult.RESOLVED
        channel: Literal["link", "callback"] = "link" if by is None else "callback"
        self.feedback.append(
            Feedback(
                round=feedback_round,
                rating=rating,
                comment=comment,
                resolved=resolved,
                at=now,
                channel=channel,
                by=by,
            )
        )
        self.rating = rating
        step = "评价" if by is None else "电话回访"
        self._log(now, step, by or "submitter", f"{rating}{': ' + comment if comment else ''}")
        unsatisfied = rating == Rating.UNSATISFIED
        again = unsatisfied and lead is not None and self.reopened < rules.policy.reopens_allowed
        # A filed (立案) submission's 不满意 gets a second answer at once, without 复核.
        review = again and not self.filed
        received = FeedbackReceived(
            opinion_id=self.id,
            office_id=self.office_id,
            rating=rating,
            comment=comment,
            resolved=resolved,
            rated_at=now,
            channel=channel,
            pending_review=review,
        )
        if review:
            self.status = CaseStatus.REVIEWING
            self._log(now, "复核", "followup", "不满意, 待平台复核: 发回重办或认定不合理诉求")
            return [received], []
        if again and lead is not None:
            window = rules.policy.second_answer_window
            reopened = self._reopen(lead, comment, now, rules, window)
            return [received, reopened], self._timers(lead, rules, sign=False)
        events: list[EventData] = [received, self._close(str(rating), now, rules)]
        if unsatisfied and lead is not None:
            events.append(self._order_supervision(lead, comment, now))
        return events, []

    def call_back(
        self,
        reached: bool,
        rating: Rating | None,
        resolved: bool | None,
        note: str,
        by: str,
        now: datetime,
        rules: Rules,
    ) -> tuple[list[EventData], list[Timer]]:
        """电话回访 of this round by platform staff: reached, the submitter's rating counts as
        if given through the link; not reached, the attempt is recorded and the link stays."""
        if self.status != CaseStatus.AWAITING_FEEDBACK:
            raise CaseError(409, "No feedback round is open (回访在答复之后、评价之前).")
        if reached and rating is None:
            raise CaseError(422, "rating: the submitter's rating is needed when reached (评价)")
        self._record_call("feedback", reached, rating, resolved, note, by, now)
        if not reached or rating is None:
            self._log(now, "电话回访", by, f"未接通{': ' + note if note else ''}")
            return [], []
        return self.rate(self.feedback_round, rating, note, resolved, now, rules, by=by)

    def _record_call(
        self,
        purpose: Literal["feedback", "audit"],
        reached: bool,
        rating: Rating | None,
        resolved: bool | None,
        note: str,
        by: str,
        now: datetime,
    ) -> None:
        call = Callback(
            purpose=purpose,
            reached=reached,
            rating=rating,
            resolved=resolved,
            note=note,
            by=by,
            at=now,
        )
        self.callbacks.append(call)

    def review_feedback(
        self,
        decision: Literal["redo", "unreasonable"],
        reason: str,
        actor: str,
        now: datetime,
        rules: Rules,
    ) -> tuple[list[EventData], list[Timer]]:
        """复核 of the 不满意 by platform staff: ``redo`` sends the case back to the lead (重办;
        the rating counts), ``unreasonable`` records a 不合理诉求 with its reason and closes
        the case (the rating is left out of 满意率)."""
        lead = self.lead()
        if self.status != CaseStatus.REVIEWING or lead is None:
            raise CaseError(409, "No 不满意 is waiting for 复核 on this case.")
        feedback = self.feedback[-1]
        feedback.review = FeedbackReview(decision=decision, reason=reason, by=actor, at=now)
        reviewed = FeedbackReviewed(
            opinion_id=self.id,
            office_id=self.office_id,
            tracking_no=self.tracking_no,
            decision=decision,
            rating=feedback.rating,
            resolved=feedback.resolved,
            reason=reason,
            reviewed_by=actor,
            reviewed_at=now,
        )
        if decision == "unreasonable":
            self._log(now, "复核", actor, f"认定为不合理诉求: {reason}")
            return [reviewed, self._close("不合理诉求", now, rules)], []
        self._log(now, "复核", actor, f"发回重办: {reason}")
        reopened = self._reopen(lead, feedback.comment, now, rules)
        return [reviewed, reopened], self._timers(lead, rules, sign=False)

    def _order_supervision(
        self, lead: Assignment, comment: str, now: datetime
    ) -> SupervisionOrdered:
        reason = f"重办后提交人仍不满意{': ' + comment if comment else ''}"
        self.supervision_orders.append(
            SupervisionOrder(department=lead.department, reason=reason, opened_at=now)
        )
        self._refresh()
        self._log(now, "督办单", "followup", f"{lead.department_name}: {reason}")
        return SupervisionOrdered(
            opinion_id=self.id,
            office_id=self.office_id,
            tracking_no=self.tracking_no,
            department=lead.department,
            reason=reason,
            ordered_at=now,
        )

    def close_supervision(self, result: str, actor: str, now: datetime) -> None:
        """督办单 办结: a supervisor records what the supervision achieved."""
        order = next((o for o in self.supervision_orders if o.closed_at is None), None)
        if order is None:
            raise CaseError(409, "This case has no open 督办单.")
        order.closed_at, order.closed_by, order.result = now, actor, result
        self._refresh()
        self._log(now, "督办办结", actor, result)

    def audit_call(
        self,
        reached: bool,
        rating: Rating | None,
        resolved: bool | None,
        note: str,
        by: str,
        now: datetime,
    ) -> list[EventData]:
        """抽查回访 of a closed case picked at random: its outcome is a KPI of its own; not
        reached, the case stays on the list for another try."""
        if self.audit_callback != "due":
            raise CaseError(
                409, "This case is not waiting for an audit callback (未抽中或已抽查回访)."
            )
        if reached and (rating is None or resolved is None):
            raise CaseError(422, "rating, resolved: both are needed when reached (抽查回访)")
        self._record_call("audit", reached, rating, resolved, note, by, now)
        if reached:
            self.audit_callback = "done"
            solved = "已解决" if resolved else "未解决"
            self._log(now, "抽查回访", by, f"{rating}, {solved}{': ' + note if note else ''}")
        else:
            self._log(now, "抽查回访", by, f"未接通{': ' + note if note else ''}")
        return [
            AuditCallbackRecorded(
                opinion_id=self.id,
                office_id=self.office_id,
                tracking_no=self.tracking_no,
                reached=reached,
                resolved=resolved if reached else None,
                rating=rating if reached else None,
                by=by,
                called_at=now,
            )
        ]

    def _reopen(
        self,
        lead: Assignment,
        comment: str,
        now: datetime,
        rules: Rules,
        window: Span | None = None,
    ) -> CaseReopened:
        """重办 within the case's 办结 clock, or ``window`` (a filed submission's 再次答复)."""
        self.reopened += 1
        self.status = CaseStatus.OPEN
        lead.status = AssignmentStatus.SIGNED
        lead.replied_at = None
        lead.generation += 1
        lead.due_at = rules.calendar.due(now, window or self.reply_span(rules))
        lead.escalation_level = NOT_ESCALATED
        lead.cards.pop("reply", None)
        reason = f"提交人不满意{': ' + comment if comment else ''}"
        again = "一个月内再次答复" if window else "重新办理"
        self._log(
            now, "重办", "followup", f"{lead.department_name} {again}, 期限 {_local(lead.due_at)}"
        )
        return CaseReopened(
            opinion_id=self.id,
            office_id=self.office_id,
            tracking_no=self.tracking_no,
            reason=reason,
            reopened_at=now,
        )
