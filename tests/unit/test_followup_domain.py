"""The case lifecycle, its branches (extension, return, reopen, co-handling), timers, and the
feedback link — pure domain, no I/O."""

from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import pytest

from services.followup.adapters import FeedbackTokens
from services.followup.domain import (
    AssignmentStatus,
    Case,
    CaseError,
    CaseStatus,
    Policy,
    Rules,
    Timer,
    TimerKind,
    member_points,
)
from services.followup.workdays import WorkCalendar
from shared.events import (
    AdoptionLevel,
    AssignmentInputGiven,
    AssignmentReplied,
    AssignmentResponded,
    CaseClosed,
    CaseEscalated,
    DeadlineBreached,
    DeadlineWarning,
    FeedbackRequested,
    Location,
    OpinionAdopted,
    OpinionAssigned,
    OpinionBriefed,
    OpinionFile,
    OpinionInstructed,
    OpinionMerged,
    OpinionReceived,
    OpinionSplit,
    OpinionWithdrawn,
    Rating,
    ReplyResult,
    SubmitterSummary,
)
from shared.keys import KeyRing

NOW = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # Monday 10:00 Beijing time
RULES = Rules(WorkCalendar(), Policy())


def assigned(
    department: str = "housing", role: Literal["lead", "co"] = "lead", urgency: str = "general"
) -> OpinionAssigned:
    return OpinionAssigned(
        opinion_id="op1",
        tracking_no="SQ-2026-000001",
        office_id="o1",
        title="路灯不亮",
        department=department,
        department_name="区住建局",
        role=role,
        category="城乡建设",
        urgency=urgency,
        explanation="",
        received_at=NOW,
    )


def opened(*co: str) -> Case:
    case, _ = Case.open(assigned(), NOW, RULES)
    for department in co:
        case.assign(assigned(department, "co"), NOW, RULES)
    return case


def replied(case: Case, at: datetime = NOW) -> Case:
    case.sign("housing", at)
    case.reply("housing", ReplyResult.RESOLVED, "已修复", [], at, RULES, "http://x/feedback/t")
    return case


def test_lifecycle_from_assignment_to_closed() -> None:
    case = opened()
    assert len(case.sign("housing", NOW)) == 1
    events, timers = case.reply("housing", ReplyResult.RESOLVED, "已修复", [], NOW, RULES, "u")
    # The reply is the first contact too: it stops the 响应 clock.
    assert [type(e) for e in events] == [AssignmentResponded, AssignmentReplied, FeedbackRequested]
    assert [t.kind for t in timers] == [TimerKind.FEEDBACK]
    assert case.status == CaseStatus.AWAITING_FEEDBACK
    closing, _ = case.rate(1, Rating.SATISFIED, "", None, NOW, RULES)
    assert isinstance(closing[-1], CaseClosed)
    assert [t.step for t in case.timeline] == [
        "登记",
        "交办",
        "签收",
        "响应",
        "答复",
        "回访",
        "评价",
        "办结",
    ]


def test_signing_twice_changes_nothing() -> None:
    case = opened()
    case.sign("housing", NOW)
    assert case.sign("housing", NOW) == []
    assert [t.step for t in case.timeline].count("签收") == 1


def test_illegal_transitions_are_refused() -> None:
    case = opened("ecology")
    with pytest.raises(CaseError) as not_signed:
        case.reply("housing", ReplyResult.RESOLVED, "x", [], NOW, RULES, "u")
    assert not_signed.value.status == 409
    case.sign("ecology", NOW)
    with pytest.raises(CaseError, match="lead"):
        case.reply("ecology", ReplyResult.RESOLVED, "x", [], NOW, RULES, "u")
    with pytest.raises(CaseError) as stranger:
        case.sign("transport", NOW)
    assert stranger.value.status == 403
    with pytest.raises(CaseError):
        case.rate(1, Rating.SATISFIED, "", None, NOW, RULES)
    with pytest.raises(CaseError, match="co-handler"):
        case.give_input("housing", "x", NOW)


def test_co_handler_input_goes_to_the_lead() -> None:
    case = opened("ecology")
    case.sign("ecology", NOW)
    [event] = case.give_input("ecology", "噪声监测数据已提供", NOW)
    assert isinstance(event, AssignmentInputGiven)
    assert (event.department, event.from_department) == ("housing", "ecology")
    assert event.routing_key() == "assignment.input_given.housing"
    assert case.assignments["ecology"].status == AssignmentStatus.REPLIED


def test_unsatisfied_reopens_once_with_a_new_deadline_then_closes() -> None:
    case = replied(opened())
    first_due = case.assignments["housing"].due_at
    later = NOW + timedelta(days=3)
    events, timers = case.rate(1, Rating.UNSATISFIED, "路灯还是不亮", None, later, RULES)
    assert [e.name for e in events] == ["feedback.received"] and timers == []
    assert case.status == CaseStatus.REVIEWING
    events, timers = case.review_feedback("redo", "答复未解决问题", "督查室", later, RULES)
    assert [e.name for e in events] == ["feedback.reviewed", "case.reopened"]
    lead = case.assignments["housing"]
    assert case.status == CaseStatus.OPEN and lead.status == AssignmentStatus.SIGNED
    assert lead.due_at > first_due and lead.generation == 2
    assert {t.kind for t in timers} >= {TimerKind.REMINDER, TimerKind.REPLY_DUE}
    case.reply("housing", ReplyResult.RESOLVED, "已更换灯具", [], later, RULES, "u")
    with pytest.raises(CaseError):  # the first round's link is spent
        case.rate(1, Rating.UNSATISFIED, "", None, later, RULES)
    events, timers = case.rate(2, Rating.UNSATISFIED, "还是不行", None, later, RULES)
    # A second 不满意 after 重办 closes the case and opens a 督办单.
    assert [e.name for e in events] == [
        "feedback.received",
        "case.closed",
        "case.supervision_ordered",
    ]
    assert case.status == CaseStatus.CLOSED and timers == []
    assert case.supervision_open and case.supervision_orders[0].department == "housing"


def test_extension_before_due_is_decided_by_a_supervisor() -> None:
    case = opened()
    case.sign("housing", NOW)
    old = case.assignments["housing"]
    old_due = old.due_at
    case.request_extension("housing", "需协调供电公司", date(2026, 11, 20), NOW, RULES)
    with pytest.raises(CaseError, match="waiting"):
        case.request_extension("housing", "again", date(2026, 11, 21), NOW, RULES)
    [refused], timers = case.decide_extension("housing", False, "理由不足", "督查室", NOW, RULES)
    assert refused.name == "assignment.extension_refused"
    assert case.assignments["housing"].due_at == old_due and timers == []
    case.request_extension("housing", "需协调供电公司", date(2026, 11, 20), NOW, RULES)
    _, timers = case.decide_extension("housing", True, "", "督查室", NOW, RULES)
    assert case.assignments["housing"].due_at == datetime(2026, 11, 20, 16, tzinfo=UTC)
    assert {t.generation for t in timers} == {2}
    with pytest.raises(CaseError, match="At most 1"):
        case.request_extension("housing", "再延", date(2026, 11, 30), NOW, RULES)


def test_extension_after_the_due_date_is_refused_with_the_reason() -> None:
    case = opened()
    case.sign("housing", NOW)
    late = case.assignments["housing"].due_at + timedelta(minutes=1)
    with pytest.raises(CaseError, match="has passed") as refused:
        case.request_extension("housing", "忘了", date(2026, 12, 30), late, RULES)
    assert refused.value.status == 409
    with pytest.raises(CaseError, match="after the current due date"):
        case.request_extension("housing", "x", date(2026, 11, 3), NOW, RULES)


def test_returned_assignment_stays_returned_and_a_new_lead_is_added() -> None:
    case = opened()
    case.request_return("housing", "not_our_duty", "应由区交通局承办", [], NOW, RULES)
    case.decide_return("housing", True, "", "督查室", NOW)
    with pytest.raises(CaseError, match="returned"):
        case.sign("housing", NOW)
    assert case.lead() is None
    timers = case.assign(assigned("transport"), NOW, RULES)
    assert case.assignments["housing"].status == AssignmentStatus.RETURNED
    assert case.lead() is not None and case.lead().department == "transport"  # type: ignore[union-attr]
    assert timers


def _timer(case: Case, kind: TimerKind, generation: int = 1) -> Timer:
    return Timer(
        case_id=case.id, department="housing", kind=kind, generation=generation, fire_at=NOW
    )


def test_timers_act_only_while_the_work_is_owed() -> None:
    case = opened()
    assert isinstance(case.fire(_timer(case, TimerKind.SIGN_DUE), NOW, RULES)[0], DeadlineBreached)
    assert isinstance(case.fire(_timer(case, TimerKind.REMINDER), NOW, RULES)[0], DeadlineWarning)
    assert len(case.fire(_timer(case, TimerKind.REPLY_DUE), NOW, RULES)) == 1
    assert case.overdue
    [urge] = case.fire(_timer(case, TimerKind.URGE), NOW, RULES)
    assert isinstance(urge, CaseEscalated) and urge.level == 0 and urge.label == "催办"
    case.escalate("housing", 2, "领导关注", "督查室", NOW)
    assert case.fire(_timer(case, TimerKind.SUPERVISE_1), NOW, RULES) == []  # already higher
    assert case.escalation_level == 2
    assert case.fire(_timer(case, TimerKind.REMINDER, generation=0), NOW, RULES) == []  # stale
    replied(case)
    assert not case.overdue and case.escalation_level == -1
    assert case.fire(_timer(case, TimerKind.REMINDER), NOW, RULES) == []


def test_no_feedback_within_the_window_closes_the_case() -> None:
    case = replied(opened())
    feedback = Timer(
        case_id=case.id, department="housing", kind=TimerKind.FEEDBACK, generation=1, fire_at=NOW
    )
    [closed] = case.fire(feedback, NOW, RULES)
    assert isinstance(closed, CaseClosed) and closed.outcome == "未评价"
    assert case.fire(feedback, NOW, RULES) == []


def test_same_assignment_twice_is_one_assignment() -> None:
    case = opened()
    case.assign(assigned(), NOW, RULES)
    assert list(case.assignments) == ["housing"]
    assert [t.step for t in case.timeline].count("交办") == 1


def test_feedback_tokens_are_signed_and_expire() -> None:
    tokens = FeedbackTokens(KeyRing("feedback", "secret"), "http://followup")
    url = tokens.url("op1", 2, NOW + timedelta(days=1))
    token = url.rsplit("/", 1)[1]
    assert tokens.verify(token, NOW) == ("op1", 2)
    with pytest.raises(CaseError) as expired:
        tokens.verify(token, NOW + timedelta(days=2))
    assert expired.value.status == 410
    with pytest.raises(CaseError) as forged:
        FeedbackTokens(KeyRing("feedback", "other"), "http://followup").verify(token, NOW)
    assert forged.value.status == 403
    for garbage in ("", "abc", "a.b", token[:-1] + "0"):
        with pytest.raises(CaseError):
            tokens.verify(garbage, NOW)


def test_withdrawn_assignment_ends_and_refuses_work() -> None:
    case = opened("ecology")
    case.sign("housing", NOW)
    case.request_extension("housing", "需协调", date(2026, 11, 20), NOW, RULES)
    assert case.withdraw("housing", "改派 / reassigned by 分拣员", NOW)
    withdrawn = case.assignments["housing"]
    assert (withdrawn.status, withdrawn.withdraw_reason) == (
        AssignmentStatus.WITHDRAWN,
        "改派 / reassigned by 分拣员",
    )
    assert case.timeline[-1].step == "改派" and "分拣员" in case.timeline[-1].summary
    for act in (
        lambda: case.sign("housing", NOW),
        lambda: case.reply("housing", ReplyResult.RESOLVED, "x", [], NOW, RULES, "u"),
        lambda: case.request_return("housing", "not_our_duty", "x", [], NOW, RULES),
        lambda: case.escalate("housing", None, "x", "督查室", NOW),
        lambda: case.request_extension("housing", "x", date(2026, 11, 30), NOW, RULES),
        lambda: case.decide_extension("housing", True, "", "督查室", NOW, RULES),
    ):
        with pytest.raises(CaseError, match=r"withdrawn|no work|no longer holds") as refused:
            act()
        assert refused.value.status == 409
    assert case.lead() is None
    # A redelivered withdrawal changes nothing.
    steps = len(case.timeline)
    assert not case.withdraw("housing", "改派", NOW)
    assert len(case.timeline) == steps


def test_withdrawn_assignment_fires_no_timers() -> None:
    case = opened()
    case.fire(_timer(case, TimerKind.REPLY_DUE), NOW, RULES)
    assert case.overdue
    case.withdraw("housing", "改派", NOW)
    assert not case.overdue
    for kind in TimerKind:
        if kind != TimerKind.FEEDBACK:
            assert case.fire(_timer(case, kind), NOW, RULES) == [], kind


def test_new_lead_after_a_withdrawn_lead_works_the_case() -> None:
    case = opened()
    case.withdraw("housing", "改派", NOW)
    timers = case.assign(assigned("transport"), NOW, RULES)
    assert {t.kind for t in timers} >= {TimerKind.SIGN_DUE, TimerKind.REPLY_DUE}
    assert case.lead() is not None and case.lead().department == "transport"  # type: ignore[union-attr]
    case.sign("transport", NOW)
    case.reply("transport", ReplyResult.RESOLVED, "已修复", [], NOW, RULES, "u")
    closing, _ = case.rate(1, Rating.SATISFIED, "", None, NOW, RULES)
    assert isinstance(closing[-1], CaseClosed)
    assert case.assignments["housing"].status == AssignmentStatus.WITHDRAWN
    # Reassigned back later, the department gets a fresh assignment of a new generation.
    case2 = opened()
    case2.withdraw("housing", "改派", NOW)
    assert case2.assign(assigned(), NOW, RULES)
    assert case2.assignments["housing"].status == AssignmentStatus.ASSIGNED
    assert case2.assignments["housing"].generation == 2


def test_a_co_handler_made_lead_keeps_its_work_and_leads_the_case() -> None:
    case = opened("ecology")
    case.sign("ecology", NOW)
    # 改派: the lead is withdrawn and the co-handler leads; the two events may come in any order.
    assert case.assign(assigned("ecology", "lead"), NOW, RULES) == []
    case.withdraw("housing", "改派", NOW)
    lead = case.lead()
    assert lead is not None and lead.department == "ecology"
    assert lead.status == AssignmentStatus.SIGNED
    assert "改为主办" in case.timeline[-2].summary
    case.reply("ecology", ReplyResult.RESOLVED, "已整改", [], NOW, RULES, "u")
    assert case.status == CaseStatus.AWAITING_FEEDBACK


def _brief(
    revision: int, title: str = "路灯不亮", member: str | None = None, **changes: Any
) -> OpinionBriefed:
    """Intake's copy of the opinion (``changes``: more of its fields)."""
    return OpinionBriefed(
        opinion_id="op1",
        department="housing",
        reason="交办",
        opinion=OpinionFile(
            revision=revision,
            tracking_no="SQ-2026-000001",
            office_id="o1",
            title=title,
            content="和平路路灯不亮。",
            channel="走访",
            location=Location(district="示范区"),
            submitter=SubmitterSummary(kind="委员", name="周**"),
            member_id=member,
            received_at=NOW,
            **changes,
        ),
    )


def test_the_case_keeps_the_newest_brief_and_logs_an_edit() -> None:
    case = opened()
    assert case.take_brief(_brief(2, member="m1"), NOW)
    assert not case.take_brief(_brief(1, title="旧标题"), NOW)  # an older copy, arriving late
    assert not case.take_brief(_brief(2), NOW)  # the same revision for another department
    assert case.take_brief(_brief(3, title="路灯不亮（已核实）", member="m1"), NOW)
    assert case.title == "路灯不亮（已核实）" and case.member_id == "m1"
    assert [e.step for e in case.timeline].count("编辑") == 1
    [adopted] = case.adopt(AdoptionLevel.CITY, "市政协", "", NOW)
    assert isinstance(adopted, OpinionAdopted) and adopted.member_id == "m1"


def test_a_merged_case_ends_its_assignments_and_fires_nothing() -> None:
    case = opened("ecology")
    case.sign("housing", NOW)
    merged = OpinionMerged(
        opinion_id="op1",
        tracking_no="SQ-2026-000001",
        office_id="o1",
        into_id="op2",
        into_tracking_no="SQ-2026-000002",
        merged_by="编辑甲",
        merged_at=NOW,
    )
    told = case.merge_into(merged, NOW)
    assert {e.department for e in told if isinstance(e, OpinionWithdrawn)} == {
        "housing",
        "ecology",
    }
    assert all("SQ-2026-000002" in e.reason for e in told if isinstance(e, OpinionWithdrawn))
    assert case.status == CaseStatus.MERGED and case.merged_into == "op2"
    assert {a.status for a in case.assignments.values()} == {AssignmentStatus.WITHDRAWN}
    assert case.merge_into(merged, NOW) == []
    later = NOW + timedelta(days=30)
    assert case.fire(_timer(case, TimerKind.REPLY_DUE), later, RULES) == []
    assert case.assign(assigned("transport"), later, RULES) == []
    with pytest.raises(CaseError):
        case.sign("housing", later)

    # 拆分: the work the merge ended starts again, from then on, with new deadlines.
    split = OpinionSplit(
        opinion_id="op1",
        tracking_no="SQ-2026-000001",
        office_id="o1",
        from_id="op2",
        split_by="编辑甲",
        split_at=later,
    )
    timers = case.split_off(split, later, RULES)
    assert case.status == CaseStatus.OPEN and case.merged_into is None
    lead = case.assignments["housing"]
    assert (lead.status, lead.generation, lead.assigned_at) == ("assigned", 2, later)
    assert {t.kind for t in timers if t.department == "housing"} >= {
        TimerKind.SIGN_DUE,
        TimerKind.REPLY_DUE,
    }
    assert case.split_off(split, later, RULES) == []


def test_member_points_follow_the_business_time_of_each_event() -> None:
    received = OpinionReceived(
        opinion_id="op1",
        tracking_no="SQ-2026-000001",
        office_id="o1",
        title="t",
        content="c",
        channel="走访",
        submitter_kind="委员",
        location=Location(district="示范区"),
        received_at=datetime(2026, 10, 31, 17, tzinfo=UTC),  # 11-01 01:00 in Beijing
        member_id="m1",
    )
    [points] = member_points("e1", received)
    assert (points.key, points.month, points.counters) == (
        "submitted-op1",
        "2026-11",
        {"submitted": 1},
    )
    instructed = OpinionInstructed(
        opinion_id="op1",
        office_id="o1",
        tracking_no="t",
        leader="区长",
        text="请落实",
        instructed_at=NOW,
        member_id="m1",
    )
    [found] = member_points("e2", instructed)
    assert found.counters == {"instructed": 1} and found.key == "e2"
    assert member_points("e3", received.model_copy(update={"member_id": None})) == []
    # 联名: each co-signer earns the co-signer's counter, under a key of their own.
    signed = instructed.model_copy(update={"co_signers": ["m2", "m3"]})
    assert [(p.member, p.key, p.counters) for p in member_points("e4", signed)] == [
        ("m1", "e4", {"instructed": 1}),
        ("m2", "e4-m2", {"co_instructed": 1}),
        ("m3", "e4-m3", {"co_instructed": 1}),
    ]
