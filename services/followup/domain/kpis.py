"""KPI projections (统计)."""

from dataclasses import dataclass
from datetime import datetime

from shared.clock import BEIJING
from shared.events import (
    AdoptionLevel,
    AssignmentExtensionRequested,
    AssignmentReplied,
    AssignmentResponded,
    AssignmentReturned,
    AssignmentSigned,
    AuditCallbackRecorded,
    CaseClosed,
    CaseEscalated,
    DeadlineBreached,
    DeadlineCarded,
    EventData,
    FeedbackReceived,
    FeedbackReviewed,
    OpinionAdopted,
    OpinionInstructed,
    Rating,
    ReplyResult,
    ReplyReviewed,
    ReplyReviewReminded,
    ReplySentBack,
    ReturnRejected,
    ReturnRequested,
    SupervisionOrdered,
)


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


BREACH_COUNTERS = {
    "respond": {"respond_due": 1},
    "sign": {"sign_due": 1},
    "reply": {"reply_due": 1, "overdue": 1},
}
SATISFIED = (Rating.SATISFIED, Rating.BASICALLY_SATISFIED)


def _rating_counters(rating: Rating, resolved: bool) -> dict[str, int]:
    """A rating that counts: the submitter's answer whether it was solved, and how satisfied."""
    return {
        "feedback": 1,
        "resolved": int(resolved),
        "satisfied": int(rating == Rating.SATISFIED),
        "basically_satisfied": int(rating == Rating.BASICALLY_SATISFIED),
        "unsatisfied": int(rating == Rating.UNSATISFIED),
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
        # The department's own 已解决 (beside the submitter's answer), with the deadline's month.
        counters = {"replies": 1, "reported_resolved": int(payload.result == ReplyResult.RESOLVED)}
        if payload.on_time:
            counters |= {"reply_due": 1, "replied_on_time": 1}
        return KpiChange(payload.due_at or payload.replied_at, payload.department, counters)
    if isinstance(payload, AssignmentResponded):
        if not payload.on_time:
            return None
        counters = {"respond_due": 1, "responded_on_time": 1}
        return KpiChange(payload.respond_due_at, payload.department, counters)
    if isinstance(payload, DeadlineBreached):
        counters = BREACH_COUNTERS[payload.kind]
        return KpiChange(payload.due_at, payload.department, counters)
    if isinstance(payload, DeadlineCarded):
        counter = "yellow_cards" if payload.card == "yellow" else "red_cards"
        return KpiChange(payload.carded_at, payload.department, {counter: 1})
    if isinstance(payload, ReturnRequested):
        counter = "return_disputes" if payload.final else "return_requests"
        return KpiChange(payload.requested_at, payload.department, {counter: 1})
    if isinstance(payload, ReturnRejected):
        return KpiChange(payload.decided_at, payload.department, {"returns_rejected": 1})
    if isinstance(payload, FeedbackReviewed):
        # Only a reviewed 不满意 counts in 满意率; a 不合理诉求 is counted apart.
        if payload.decision == "unreasonable":
            return KpiChange(payload.reviewed_at, None, {"unreasonable": 1})
        return KpiChange(
            payload.reviewed_at, None, _rating_counters(payload.rating, payload.resolved)
        )
    if isinstance(payload, SupervisionOrdered):
        return KpiChange(payload.ordered_at, payload.department, {"supervision_orders": 1})
    if isinstance(payload, AuditCallbackRecorded):
        if not payload.reached:
            return KpiChange(payload.called_at, None, {"audit_unreached": 1})
        counters = {
            "audit_callbacks": 1,
            "audit_resolved": int(bool(payload.resolved)),
            "audit_satisfied": int(payload.rating in SATISFIED),
        }
        return KpiChange(payload.called_at, None, counters)
    if isinstance(payload, CaseEscalated):
        counter = "urged" if payload.level == 0 else "escalated"
        return KpiChange(payload.escalated_at, payload.department, {counter: 1})
    if isinstance(payload, FeedbackReceived):
        if payload.pending_review:
            return KpiChange(payload.rated_at, None, {"reviews": 1})
        counters = _rating_counters(payload.rating, bool(payload.resolved))
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
    return _review_change(payload)


def _review_change(payload: EventData) -> KpiChange | None:
    """审核, apart from the department's reply (whose time is when it submitted the reply): a
    decision (with how long it took) and the review deadline, met or missed."""
    if isinstance(payload, ReplyReviewed):
        seconds = int((payload.reviewed_at - payload.submitted_at).total_seconds())
        counters = {"reviewed": 1, "review_seconds": seconds}
        if payload.on_time:
            counters |= {"review_due": 1, "reviewed_on_time": 1}
        if isinstance(payload, ReplySentBack):
            counters["sent_back"] = 1
        return KpiChange(payload.review_due_at, payload.department, counters)
    if isinstance(payload, ReplyReviewReminded) and payload.overdue:
        counters = {"review_due": 1, "review_overdue": 1}
        return KpiChange(payload.review_due_at, payload.department, counters)
    return None


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def rates(counters: dict[str, int]) -> dict[str, float | None]:
    """The rates supervisors are judged by, from the counters (None when nothing is due)."""
    c = counters.get
    feedback = c("feedback", 0)
    reported = _ratio(c("reported_resolved", 0), c("replies", 0))
    answered = _ratio(c("resolved", 0), feedback)
    return {
        "response_rate": _ratio(c("responded_on_time", 0), c("respond_due", 0)),  # 响应率
        "timely_sign_rate": _ratio(c("signed_on_time", 0), c("sign_due", 0)),  # 及时签收率
        "on_time_rate": _ratio(c("replied_on_time", 0), c("reply_due", 0)),  # 按时办结率
        # 解决率 twice: as the submitters answered, and as the departments reported (自报).
        "resolution_rate": answered,
        "reported_resolution_rate": reported,
        "resolution_gap": None
        if reported is None or answered is None
        else round(reported - answered, 4),
        "audit_resolution_rate": _ratio(
            c("audit_resolved", 0), c("audit_callbacks", 0)
        ),  # 抽查解决率
        "audit_satisfaction_rate": _ratio(c("audit_satisfied", 0), c("audit_callbacks", 0)),
        "satisfaction_rate": _ratio(  # 满意率 (满意 + 基本满意)
            c("satisfied", 0) + c("basically_satisfied", 0), feedback
        ),
        "fully_satisfied_rate": _ratio(c("satisfied", 0), feedback),  # 满意 alone
        "review_on_time_rate": _ratio(c("reviewed_on_time", 0), c("review_due", 0)),  # 审核按时率
        # 平均审核时长 (hours), from submission (送审) to decision
        "review_hours": _ratio(c("review_seconds", 0), c("reviewed", 0) * 3600),
    }
