"""立案 of members' 提案/建议, 联名, graded replies, 跟踪督办 of a B and the 再次答复 of an 不满意 —
pure domain (intake's opinion, followup's case, the points), no I/O."""

from datetime import date, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.followup.domain import (
    AssignmentStatus,
    Case,
    CaseError,
    CaseStatus,
    Grading,
    PointsRules,
    Timer,
    TimerKind,
    member_points,
)
from services.intake.domain import (
    Opinion,
    OpinionError,
    OpinionStatus,
    OpinionSubmission,
)
from shared.events import (
    AssignmentReplied,
    CaseReopened,
    EventData,
    FeedbackReceived,
    FeedbackRequested,
    KeptAs,
    OpinionFiled,
    OpinionReceived,
    PlanDue,
    Rating,
    ReplyGrade,
    ReplyResult,
    SubmissionForm,
)

from .test_followup_domain import NOW, RULES, _brief, opened

PROPOSAL = {
    "title": "关于加快老旧小区加装电梯的提案",
    "content": "建议简化审批，设立专项补贴。",
    "channel": "调研",
    "submitter": {"kind": "委员", "name": "周委员"},
    "location": {"district": "示范区"},
    "member_id": "m1",
    "co_signers": ["m2"],
    "form": "提案",
}


def proposal(**changes: object) -> Opinion:
    """A member's 提案/建议 as registered: waiting for 立案, nothing published yet."""
    opinion = Opinion(
        id="op1",
        tracking_no="SQ-2026-000001",
        office_id="o1",
        received_at=NOW,
        submission=OpinionSubmission.model_validate({**PROPOSAL, **changes}),
    )
    assert opinion.register() == []
    return opinion


def bad_fields(**changes: object) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        OpinionSubmission.model_validate({**PROPOSAL, **changes})
    return {".".join(str(part) for part in e["loc"]) for e in caught.value.errors()}


def test_co_signers_are_distinct_members_beside_the_lead() -> None:
    assert bad_fields(co_signers=["m2", "m2"]) == {"co_signers"}
    assert bad_fields(co_signers=["m1"]) == {"co_signers"}
    assert bad_fields(member_id=None, form="社情民意") == {"co_signers"}
    assert bad_fields(member_id=None, co_signers=[]) == {"form"}
    assert bad_fields(co_signers=[f"m{n}" for n in range(2, 23)]) == {"co_signers"}
    assert bad_fields(co_signers=[""]) == {"co_signers.0"}
    # An ordinary opinion stays as it was: no member, no co-signers, handled at once.
    plain = OpinionSubmission.model_validate(
        {**PROPOSAL, "member_id": None, "co_signers": [], "form": "社情民意"}
    )
    assert plain.form == SubmissionForm.OPINION and not plain.form.needs_filing


def test_a_proposal_waits_for_filing_then_is_routed_with_its_co_signers() -> None:
    opinion = proposal()
    assert opinion.status == OpinionStatus.FILING and not opinion.routed
    events = opinion.decide_filing(True, "", None, "提案委 王五", NOW)
    filed, received = events
    assert isinstance(filed, OpinionFiled) and isinstance(received, OpinionReceived)
    assert (filed.filed, filed.kept_as, filed.decided_by) == (True, None, "提案委 王五")
    assert (received.member_id, received.co_signers, received.form) == ("m1", ["m2"], "提案")
    assert opinion.status == OpinionStatus.OPEN and opinion.routed
    assert opinion.brief("housing", "交办").opinion.co_signers == ["m2"]
    with pytest.raises(OpinionError) as twice:
        opinion.decide_filing(False, "重复", None, "王五", NOW)
    assert twice.value.status == 409


def test_not_filed_needs_a_reason_and_is_kept_as_an_opinion_or_a_letter() -> None:
    with pytest.raises(OpinionError) as no_reason:
        proposal(form="建议").decide_filing(False, "  ", None, "王五", NOW)
    assert (no_reason.value.status, no_reason.value.field) == (422, "reason")
    with pytest.raises(OpinionError) as kept_when_filed:
        proposal().decide_filing(True, "", KeptAs.LETTER, "王五", NOW)
    assert kept_when_filed.value.field == "kept_as"
    opinion = proposal()
    with pytest.raises(OpinionError):
        opinion.decide_filing(False, "", None, "王五", NOW)
    assert opinion.status == OpinionStatus.FILING  # a refused decision changes nothing
    # Kept as 社情民意信息 (the default): handled on as an ordinary opinion.
    filed, received = opinion.decide_filing(False, "属个案诉求", None, "王五", NOW)
    assert isinstance(filed, OpinionFiled) and filed.kept_as == KeptAs.OPINION
    assert filed.reason == "属个案诉求" and filed.co_signers == ["m2"]
    assert isinstance(received, OpinionReceived) and received.form == SubmissionForm.OPINION
    # Kept as 来信: closed in intake, never routed.
    letter = proposal()
    [decided] = letter.decide_filing(False, "不属于提案范围", KeptAs.LETTER, "王五", NOW)
    assert isinstance(decided, OpinionFiled)
    assert letter.status == OpinionStatus.LETTER and not letter.routed


def filed_case(form: SubmissionForm = SubmissionForm.PROPOSAL) -> Case:
    case = opened()
    case.take_brief(_brief(1, member="m1", co_signers=["m2"], form=form), NOW)
    case.sign("housing", NOW)
    return case


def reply(case: Case, grading: Grading, at: datetime = NOW) -> tuple[list[EventData], list[Timer]]:
    return case.reply(
        "housing", ReplyResult.PARTLY_RESOLVED, "已选址", [], at, RULES, "u", "李四", grading
    )


def refused(case: Case, grading: Grading) -> tuple[int, str | None]:
    with pytest.raises(CaseError) as caught:
        reply(case, grading)
    return caught.value.status, caught.value.field


def test_a_filed_reply_is_graded_and_a_b_needs_its_plan() -> None:
    case = filed_case()
    later = date(2026, 12, 15)
    assert refused(case, Grading()) == (422, "grade")
    assert refused(case, Grading(grade=ReplyGrade.BEING_SOLVED, plan_due=later)) == (422, "plan")
    assert refused(case, Grading(grade=ReplyGrade.BEING_SOLVED, plan="招标")) == (422, "plan_due")
    past = Grading(grade=ReplyGrade.BEING_SOLVED, plan="招标", plan_due=date(2026, 11, 1))
    assert refused(case, past) == (422, "plan_due")
    assert refused(case, Grading(grade=ReplyGrade.SOLVED, plan="招标")) == (422, "plan")
    # An ordinary opinion is not graded.
    plain = filed_case(SubmissionForm.OPINION)
    assert refused(plain, Grading(grade=ReplyGrade.SOLVED)) == (422, "grade")
    lead = case.lead()
    assert lead is not None and lead.status == AssignmentStatus.SIGNED and lead.grade is None


def test_a_b_is_followed_up_once_on_its_plan_day_until_answered_a() -> None:
    case = filed_case()
    plan = Grading(
        grade=ReplyGrade.BEING_SOLVED, plan="年底前完成招标", plan_due=date(2026, 12, 15)
    )
    events, timers = reply(case, plan)
    replied = next(e for e in events if isinstance(e, AssignmentReplied))
    assert (replied.grade, replied.plan, replied.member_id, replied.co_signers) == (
        ReplyGrade.BEING_SOLVED,
        "年底前完成招标",
        "m1",
        ["m2"],
    )
    assert not any(isinstance(e, FeedbackRequested) for e in events)
    [timer] = timers
    assert timer.kind == TimerKind.PLAN_DUE and timer.fire_at == RULES.calendar.end_of(
        date(2026, 12, 15)
    )
    lead = case.lead()
    assert lead is not None and lead.status == AssignmentStatus.SIGNED
    assert case.status == CaseStatus.OPEN and lead.due_at == timer.fire_at
    [reminded] = case.fire(timer, timer.fire_at, RULES)
    assert isinstance(reminded, PlanDue) and reminded.plan == "年底前完成招标"
    assert [t.step for t in case.timeline][-3:] == ["答复", "跟踪督办", "跟踪督办"]
    # The plan's own day, not the 24:00 it ends at (which reads as the next day's 00:00).
    assert "计划完成日期 2026-12-15" in case.timeline[-2].summary
    assert "计划完成日期 2026-12-15 已到" in case.timeline[-1].summary
    # Answered A: the member is asked to rate it; the old plan's timer does nothing now.
    events, _ = reply(case, Grading(grade=ReplyGrade.SOLVED), timer.fire_at)
    assert [type(e) for e in events] == [AssignmentReplied, FeedbackRequested]
    asked = events[1]
    assert isinstance(asked, FeedbackRequested) and asked.member_id == "m1"
    assert case.fire(timer, timer.fire_at + timedelta(days=1), RULES) == []
    assert "A 已解决" in case.timeline[-2].summary


def test_an_unsatisfied_member_gets_a_second_answer_within_a_month() -> None:
    case = filed_case()
    reply(case, Grading(grade=ReplyGrade.EXPLAINED))
    events, timers = case.rate(1, Rating.UNSATISFIED, "未说明原因", None, NOW, RULES)
    received, reopened = events
    # No 复核 for a filed submission: the rating counts, the lead answers again.
    assert isinstance(received, FeedbackReceived) and not received.pending_review
    assert isinstance(reopened, CaseReopened) and case.status == CaseStatus.OPEN
    lead = case.lead()
    assert lead is not None and lead.due_at == RULES.calendar.due(
        NOW, RULES.policy.second_answer_window
    )
    assert lead.due_at - NOW >= timedelta(days=30)
    assert {t.kind for t in timers} >= {TimerKind.REMINDER, TimerKind.REPLY_DUE}
    assert "一个月内再次答复" in case.timeline[-1].summary


def test_co_signers_earn_the_co_signers_points() -> None:
    filed = OpinionFiled(
        opinion_id="op1",
        tracking_no="SQ-2026-000001",
        office_id="o1",
        title="t",
        form=SubmissionForm.PROPOSAL,
        filed=True,
        reason="",
        decided_by="王五",
        filed_at=NOW,
        member_id="m1",
        co_signers=["m2"],
    )
    points = member_points("e1", filed)
    assert [(p.member, p.key, p.counters) for p in points] == [
        ("m1", "filed-op1", {"filed": 1}),
        ("m2", "filed-op1-m2", {"co_filed": 1}),
    ]
    not_filed = filed.model_copy(update={"filed": False, "kept_as": KeptAs.LETTER})
    assert member_points("e2", not_filed) == []
    weights = PointsRules()
    assert weights.points({"submitted": 1, "filed": 1}) == 4
    assert weights.points({"co_submitted": 1, "co_filed": 1}) == 2
