"""KPI projections (统计) and members' 履职积分."""

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel

from shared.clock import BEIJING
from shared.events import (
    AdoptionLevel,
    AssignmentExtensionRequested,
    AssignmentReplied,
    AssignmentReturned,
    AssignmentSigned,
    CaseClosed,
    CaseEscalated,
    DeadlineBreached,
    EventData,
    FeedbackReceived,
    OpinionAdopted,
    OpinionInstructed,
    OpinionReceived,
    OpinionSupported,
    Rating,
    ReplyReviewed,
    ReplyReviewReminded,
    ReplySentBack,
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
        "review_on_time_rate": _ratio(c("reviewed_on_time", 0), c("review_due", 0)),  # 审核按时率
        # 平均审核时长 (hours), from submission (送审) to decision
        "review_hours": _ratio(c("review_seconds", 0), c("reviewed", 0) * 3600),
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
