"""Feedback (回访/评价) on the lead's reply."""

from datetime import datetime

from shared.events import CaseReopened, EventData, FeedbackReceived, Rating, ReplyResult

from .policy import CaseError, Rules
from .records import NOT_ESCALATED, Assignment, AssignmentStatus, CaseStatus, Feedback, _local
from .timers import Deadlines, Timer


class FeedbackRounds(Deadlines):
    """评价 by the submitter: 不满意 reopens (重办) once, otherwise 办结."""

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
