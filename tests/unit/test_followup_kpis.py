"""KPI counting rules against a hand-computed fixture of one month's events."""

from collections import Counter
from datetime import UTC, datetime
from typing import Literal

from services.followup.domain import PointsRules, kpi_change, rates
from shared.events import (
    AdoptionLevel,
    AssignmentReplied,
    AssignmentSigned,
    CaseEscalated,
    DeadlineBreached,
    EventData,
    FeedbackReceived,
    OpinionAdopted,
    Rating,
    ReplyResult,
)

OCT = datetime(2026, 10, 15, 2, tzinfo=UTC)
NOV = datetime(2026, 11, 2, 2, tzinfo=UTC)
BASE = {"office_id": "o1", "department": "housing"}


def signed(op: str, on_time: bool) -> AssignmentSigned:
    return AssignmentSigned(opinion_id=op, signed_at=OCT, sign_due_at=OCT, on_time=on_time, **BASE)


def replied(op: str, on_time: bool) -> AssignmentReplied:
    return AssignmentReplied(
        opinion_id=op,
        tracking_no="t",
        result=ReplyResult.RESOLVED,
        text="x",
        replied_at=OCT,
        due_at=OCT,
        on_time=on_time,
        **BASE,
    )


def breached(op: str, kind: Literal["sign", "reply"]) -> DeadlineBreached:
    return DeadlineBreached(opinion_id=op, tracking_no="t", kind=kind, due_at=OCT, **BASE)


def rated(op: str, rating: Rating, resolved: bool) -> FeedbackReceived:
    return FeedbackReceived(
        opinion_id=op, office_id="o1", rating=rating, comment="", resolved=resolved, rated_at=OCT
    )


def test_rates_match_the_hand_computed_month() -> None:
    # Four assignments due in October:
    #   a: signed on time, replied on time, 满意, resolved
    #   b: signed on time, reply overdue (breach), then replied late, 基本满意, not resolved
    #   c: sign overdue (breach), signed late, replied on time, 不满意, not resolved
    #   d: signed on time, reply overdue, 催办 and 一级督办, no feedback yet
    events: list[EventData] = [
        signed("a", True), replied("a", True), rated("a", Rating.SATISFIED, True),
        signed("b", True), breached("b", "reply"), replied("b", False),
        rated("b", Rating.BASICALLY_SATISFIED, False),
        breached("c", "sign"), signed("c", False), replied("c", True),
        rated("c", Rating.UNSATISFIED, False),
        signed("d", True), breached("d", "reply"),
        CaseEscalated(opinion_id="d", tracking_no="t", level=0, label="催办", reason="r",
                      actor="followup", due_at=OCT, escalated_at=OCT, **BASE),
        CaseEscalated(opinion_id="d", tracking_no="t", level=1, label="一级督办", reason="r",
                      actor="followup", due_at=OCT, escalated_at=OCT, **BASE),
        OpinionAdopted(opinion_id="a", office_id="o1", tracking_no="t", level=AdoptionLevel.CITY,
                       adopted_by="市政协", note="", adopted_at=OCT),
    ]  # fmt: skip
    totals: Counter[str] = Counter()
    for event in events:
        change = kpi_change(event)
        if change is not None:
            assert change.month == "2026-10"
            totals.update(change.counters)
    assert totals["sign_due"] == 4 and totals["signed_on_time"] == 3
    assert totals["reply_due"] == 4 and totals["replied_on_time"] == 2
    assert totals["overdue"] == 2 and totals["urged"] == 1 and totals["escalated"] == 1
    assert rates(dict(totals)) == {
        "response_rate": None,  # no 响应 clock in this fixture
        "timely_sign_rate": 0.75,  # 3 / 4
        "on_time_rate": 0.5,  # 2 / 4
        "resolution_rate": 0.3333,  # 1 / 3 submitters say solved
        "reported_resolution_rate": 1.0,  # 3 / 3 replies say 已解决
        "resolution_gap": 0.6667,  # 1.0 - 0.3333
        "audit_resolution_rate": None,
        "audit_satisfaction_rate": None,
        "satisfaction_rate": 0.6667,  # (1 + 1) / 3
        "fully_satisfied_rate": 0.3333,  # 1 / 3
        "review_on_time_rate": None,  # nothing reviewed
        "review_hours": None,
    }
    assert PointsRules().points({**totals, "submitted": 4}) == 4 * 1 + 5


def test_month_is_the_month_the_deadline_falls_due_in_beijing() -> None:
    # 2026-10-31 20:00 UTC is already November 1st in Beijing.
    late_october_utc = datetime(2026, 10, 31, 20, tzinfo=UTC)
    event = AssignmentSigned(
        opinion_id="x", signed_at=NOV, sign_due_at=late_october_utc, on_time=True, **BASE
    )
    change = kpi_change(event)
    assert change is not None and change.month == "2026-11"
    assert rates({}) == dict.fromkeys(rates({}), None)


def test_month_is_the_business_time_never_the_delivery_time() -> None:
    # A 评价 given on the last evening of December in Beijing (still the 31st in UTC) is a
    # December fact however late its event is delivered or replayed: the payload says when.
    last_evening = datetime(2026, 12, 31, 15, 59, tzinfo=UTC)  # 23:59 in Beijing
    event = rated("x", Rating.SATISFIED, True).model_copy(update={"rated_at": last_evening})
    change = kpi_change(event)
    assert change is not None and change.month == "2026-12"
    first_minute = datetime(2026, 12, 31, 16, 0, tzinfo=UTC)  # 2027-01-01 00:00 in Beijing
    moved = kpi_change(event.model_copy(update={"rated_at": first_minute}))
    assert moved is not None and moved.month == "2027-01"
