"""The rules offices and hotlines run by, as tables with the published figures: three clocks
from 交办 by urgency × kind, 黄牌/红牌 across National Day 2026 (10-01..10-07 off, Saturday
10-10 worked), the 退单 window and its review, 复核 of an 不满意, 抽查回访 and their KPIs, and
每月一题."""

from collections import Counter
from datetime import datetime, timedelta

import pytest

from services.followup.domain import (
    Case,
    CaseError,
    CaseStatus,
    LinkedOpinion,
    Policy,
    Rules,
    Theme,
    ThemeTask,
    Timer,
    TimerKind,
    card_times,
    kpi_change,
    picked_for_audit,
    rates,
)
from services.followup.workdays import Span, WorkCalendar
from shared.clock import BEIJING
from shared.events import (
    AssignmentReturned,
    DeadlineBreached,
    DeadlineCarded,
    EventData,
    Rating,
    ReplyResult,
    RequestKind,
    ReturnRejected,
    ReturnRequested,
)

from .test_followup_domain import assigned

CAL = WorkCalendar()
RULES = Rules(CAL, Policy())
# Tuesday before the holiday, 10:00 Beijing time.
TUESDAY = datetime(2026, 9, 29, 10, 0, tzinfo=BEIJING)


def bj(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=BEIJING)


def opened(
    kind: RequestKind | None = None, urgency: str = "general", at: datetime = TUESDAY
) -> tuple[Case, list[Timer]]:
    payload = assigned(urgency=urgency).model_copy(update={"kind": kind})
    return Case.open(payload, at, RULES)


# 交办 on Tuesday 09-29 10:00: (urgency, kind) → 响应, 签收, 办结 deadlines.
CLOCKS = [
    # 一般: 办结 by kind, in working days (咨询 2, 求助 10, 建议 10, 投诉 15, 举报 15).
    # 2 working days: 09-30, 10-08 → end of 10-08.
    ("general", RequestKind.CONSULT, bj(10, 1), bj(10, 1), bj(10, 9)),
    # 10: 09-30, 10-08, 10-09, 10-10 (调休 Saturday), 10-12 … 10-16, 10-19 → end of 10-19.
    ("general", RequestKind.HELP, bj(10, 1), bj(10, 1), bj(10, 20)),
    ("general", RequestKind.SUGGESTION, bj(10, 1), bj(10, 1), bj(10, 20)),
    # 15: … 10-20 … 10-23, 10-26 → end of 10-26.
    ("general", RequestKind.COMPLAINT, bj(10, 1), bj(10, 1), bj(10, 27)),
    ("general", RequestKind.REPORT, bj(10, 1), bj(10, 1), bj(10, 27)),
    # No kind known: 7 calendar days end on 10-06, a holiday → the next working day 10-08.
    ("general", None, bj(10, 1), bj(10, 1), bj(10, 9)),
    # 紧急: contact and sign within 30 minutes, reply within 2 hours, whatever the kind.
    ("emergency", RequestKind.COMPLAINT, bj(9, 29, 10, 30), bj(9, 29, 10, 30), bj(9, 29, 12)),
    # 时效 (water, power…): contact within 2 hours, reply within 24.
    ("timeliness", RequestKind.HELP, bj(9, 29, 12), bj(10, 1), bj(9, 30, 10)),
    # 复杂: 15 working days whatever the kind.
    ("complex", RequestKind.CONSULT, bj(10, 1), bj(10, 1), bj(10, 27)),
]


@pytest.mark.parametrize(("urgency", "kind", "respond", "sign", "reply"), CLOCKS)
def test_three_clocks_start_at_assignment_by_urgency_and_kind(
    urgency: str,
    kind: RequestKind | None,
    respond: datetime,
    sign: datetime,
    reply: datetime,
) -> None:
    case, _ = opened(kind, urgency)
    lead = case.assignments["housing"]
    assert (lead.respond_due_at, lead.sign_due_at, lead.due_at) == (respond, sign, reply)
    assert lead.assigned_at == TUESDAY  # from 交办, not from 签收


def test_co_handlers_have_no_response_clock() -> None:
    case, _ = opened(RequestKind.HELP)
    timers = case.assign(assigned("ecology", "co"), TUESDAY, RULES)
    co = case.assignments["ecology"]
    assert co.respond_due_at is None
    assert {t.kind for t in timers} == {TimerKind.SIGN_DUE, TimerKind.SIGN_RED}


# A deadline's day → 黄牌 and 红牌 (office opening, 09:00).
CARDS = [
    # Due day Thursday 10-08, the first day after the holiday: 黄牌 on 09-30 before it.
    (bj(10, 9), bj(9, 30, 9), bj(10, 9, 9)),
    # Due day Saturday 10-10, a 调休 working day: 黄牌 Friday, 红牌 on Monday 10-12.
    (bj(10, 11), bj(10, 9, 9), bj(10, 12, 9)),
    # Due day Monday 10-12: the working day before is the 调休 Saturday 10-10.
    (bj(10, 13), bj(10, 10, 9), bj(10, 13, 9)),
    # Due day Wednesday 09-30: 红牌 only after the holiday, on 10-08.
    (bj(10, 1), bj(9, 29, 9), bj(10, 8, 9)),
]


@pytest.mark.parametrize(("due", "yellow", "red"), CARDS)
def test_cards_fall_on_the_working_day_before_and_after_the_deadline(
    due: datetime, yellow: datetime, red: datetime
) -> None:
    assert card_times(CAL, due, Span(amount=2, unit="working_days")) == (yellow, red)


def test_cards_of_a_clock_in_minutes_come_at_three_quarters_and_at_the_deadline() -> None:
    due = bj(9, 29, 10, 30)
    assert card_times(CAL, due, Span(amount=30, unit="minutes")) == (
        bj(9, 29, 10, 22) + timedelta(seconds=30),
        due,
    )


def test_cards_are_given_while_the_work_is_owed_and_on_the_timeline() -> None:
    case, timers = opened(RequestKind.CONSULT)
    by_kind = {t.kind: t for t in timers}
    # Reply due at the end of 10-08: 黄牌 on 09-30 with the reminder, not replied yet.
    [_, yellow] = case.fire(by_kind[TimerKind.REMINDER], bj(9, 30, 9), RULES)
    assert isinstance(yellow, DeadlineCarded)
    assert (yellow.clock, yellow.card, yellow.due_at) == ("reply", "yellow", bj(10, 9))
    assert case.timeline[-1].step == "黄牌" and "办结期限" in case.timeline[-1].summary
    assert case.assignments["housing"].cards == {"reply": "yellow"}
    # Signed on time: no 红牌 for the sign clock; never responded: 红牌 and a breach.
    case.sign("housing", bj(9, 30, 8))
    assert case.fire(by_kind[TimerKind.SIGN_RED], bj(10, 8, 9), RULES) == []
    [breach] = case.fire(by_kind[TimerKind.RESPOND_DUE], bj(10, 1), RULES)
    assert isinstance(breach, DeadlineBreached) and breach.kind == "respond"
    [red] = case.fire(by_kind[TimerKind.RESPOND_RED], bj(10, 8, 9), RULES)
    assert isinstance(red, DeadlineCarded) and (red.clock, red.card) == ("respond", "red")
    # Replied late (after the 10-08 deadline): the 红牌 still comes, once.
    case.reply("housing", ReplyResult.RESOLVED, "已答复", [], bj(10, 9, 8), RULES, "u")
    [red] = case.fire(by_kind[TimerKind.REPLY_RED], bj(10, 9, 9), RULES)
    assert (red.clock, red.card) == ("reply", "red")  # type: ignore[attr-defined]
    assert case.fire(by_kind[TimerKind.REPLY_RED], bj(10, 9, 9), RULES) == []
    assert case.assignments["housing"].cards == {"reply": "red", "respond": "red"}


def test_a_response_is_the_leads_and_counts_once() -> None:
    case, _ = opened(RequestKind.HELP)
    case.assign(assigned("ecology", "co"), TUESDAY, RULES)
    with pytest.raises(CaseError, match="lead") as refused:
        case.respond("ecology", "电话联系", TUESDAY)
    assert refused.value.status == 409
    [responded] = case.respond("housing", "电话联系提交人", bj(9, 29, 11), "张三(区住建局)")
    assert responded.on_time  # type: ignore[attr-defined]
    assert case.respond("housing", "上门查看", bj(9, 29, 15)) == []
    assert case.assignments["housing"].response == "电话联系提交人"


# -- 退单 --------------------------------------------------------------------------------------


def test_the_return_window_is_two_working_days_after_assignment() -> None:
    # 交办 Tuesday 09-29: the window ends with 10-08 (09-30 and, after the holiday, 10-08).
    case, _ = opened()
    with pytest.raises(CaseError) as late:
        case.request_return("housing", "not_our_duty", "应由交通局承办", [], bj(10, 9, 0, 1), RULES)
    assert late.value.status == 409 and "window" in str(late.value)
    with pytest.raises(CaseError) as unknown:
        case.request_return("housing", "bored", "应由交通局承办", [], bj(10, 8, 23), RULES)
    assert unknown.value.status == 422 and "reason_code" in str(unknown.value)
    [asked] = case.request_return(
        "housing", "not_our_duty", "应由交通局承办", [], bj(10, 8, 23), RULES
    )
    assert isinstance(asked, ReturnRequested) and asked.reason == "不属于本单位职责"
    assert case.return_review


def test_a_rejected_return_keeps_the_department_and_its_clock() -> None:
    case, _ = opened()
    lead = case.assignments["housing"]
    due, generation = lead.due_at, lead.generation
    case.request_return("housing", "wrong_area", "应由邻区承办", [], bj(9, 30, 9), RULES)
    [rejected] = case.decide_return("housing", False, "属本辖区", "督查室甲", bj(9, 30, 10))
    assert isinstance(rejected, ReturnRejected) and not rejected.final
    assert (lead.status, lead.due_at, lead.generation) == ("assigned", due, generation)
    assert not case.return_review
    with pytest.raises(CaseError, match="dispute"):
        case.request_return("housing", "wrong_area", "再次申请", [], bj(9, 30, 11), RULES)
    # The dispute goes to a final ruling by another supervisor.
    case.dispute_return("housing", "辖区图显示该路段属邻区", bj(9, 30, 11))
    with pytest.raises(CaseError, match="another supervisor"):
        case.decide_return("housing", False, "维持", "督查室甲", bj(9, 30, 12))
    [final] = case.decide_return("housing", False, "维持原审核", "督查室乙", bj(9, 30, 12))
    assert isinstance(final, ReturnRejected) and final.final
    assert (lead.status, lead.due_at, lead.generation) == ("assigned", due, generation)
    with pytest.raises(CaseError, match="终审"):
        case.request_return("housing", "wrong_area", "三次", [], bj(9, 30, 13), RULES)
    steps = [t.step for t in case.timeline]
    assert steps[-4:] == ["申请退单", "退单驳回", "退单申诉", "终审驳回"]


def test_an_accepted_return_ends_the_assignment_for_routing() -> None:
    case, _ = opened()
    case.request_return("housing", "other_level", "应由市级部门办理", [], bj(9, 30, 9), RULES)
    [returned] = case.decide_return("housing", True, "", "督查室甲", bj(9, 30, 10))
    assert isinstance(returned, AssignmentReturned)
    assert returned.reason == "应由其他层级办理: 应由市级部门办理"
    assert case.assignments["housing"].status == "returned" and case.lead() is None


# -- 复核, 督办单, 抽查回访 ------------------------------------------------------------------------


def _awaiting_feedback() -> Case:
    case, _ = opened()
    case.sign("housing", bj(9, 29, 11))
    case.reply("housing", ReplyResult.RESOLVED, "已修复", [], bj(9, 29, 12), RULES, "u")
    return case


def test_an_unsatisfied_rating_waits_for_review_and_counts_only_once_reviewed() -> None:
    case = _awaiting_feedback()
    events, _ = case.rate(1, Rating.UNSATISFIED, "没修好", False, bj(9, 30, 9), RULES)
    assert case.status == CaseStatus.REVIEWING
    totals: Counter[str] = Counter()

    def count(found: list[EventData]) -> None:
        for event in found:
            change = kpi_change(event)
            if change is not None:
                totals.update(change.counters)

    count(events)
    assert totals == {"reviews": 1}  # not in 满意率 yet
    events, _ = case.review_feedback(
        "unreasonable", "诉求超出政策范围", "督查室甲", bj(9, 30, 10), RULES
    )
    count(events)
    assert case.status == CaseStatus.CLOSED and case.outcome == "不合理诉求"
    review = case.feedback[-1].review
    assert review is not None and (review.by, review.decision) == ("督查室甲", "unreasonable")
    assert totals["unreasonable"] == 1 and totals["feedback"] == 0
    assert rates(dict(totals))["satisfaction_rate"] is None


def test_a_phone_callback_rates_the_round_and_a_missed_call_keeps_it_open() -> None:
    case = _awaiting_feedback()
    events, _ = case.call_back(False, None, None, "无人接听", "话务员王", bj(9, 30, 9), RULES)
    assert events == [] and case.status == CaseStatus.AWAITING_FEEDBACK
    events, _ = case.call_back(
        True, Rating.SATISFIED, True, "已修好", "话务员王", bj(9, 30, 10), RULES
    )
    assert [e.name for e in events] == ["feedback.received", "case.closed"]
    assert case.feedback[-1].channel == "callback" and case.feedback[-1].by == "话务员王"
    assert [c.reached for c in case.callbacks] == [False, True]


def test_audit_callbacks_pick_a_share_of_closed_cases_and_count_apart() -> None:
    ids = [f"case-{n}" for n in range(2000)]
    picked = sum(picked_for_audit(i, 0.1) for i in ids)
    assert 150 < picked < 250  # about a tenth
    assert not any(picked_for_audit(i, 0.0) for i in ids)
    assert all(picked_for_audit(i, 1.0) for i in ids)
    always = Rules(CAL, Policy(audit_callback_share=1.0))
    case, _ = opened()
    case.sign("housing", bj(9, 29, 11))
    case.reply("housing", ReplyResult.RESOLVED, "已修复", [], bj(9, 29, 12), always, "u")
    case.rate(1, Rating.SATISFIED, "", True, bj(9, 30, 9), always)
    assert case.audit_callback == "due"
    [missed] = case.audit_call(False, None, None, "关机", "话务员王", bj(10, 8, 10))
    assert case.audit_callback == "due"
    [called] = case.audit_call(
        True, Rating.UNSATISFIED, False, "其实没修", "话务员王", bj(10, 8, 11)
    )
    assert case.audit_callback == "done"
    with pytest.raises(CaseError):
        case.audit_call(True, Rating.SATISFIED, True, "", "话务员王", bj(10, 8, 12))
    totals: Counter[str] = Counter()
    for event in (missed, called):
        change = kpi_change(event)
        assert change is not None
        totals.update(change.counters)
    assert totals == {"audit_unreached": 1, "audit_callbacks": 1, "audit_resolved": 0,
                      "audit_satisfied": 0}  # fmt: skip
    assert rates(dict(totals))["audit_resolution_rate"] == 0.0


# -- 每月一题 ------------------------------------------------------------------------------------


def test_a_theme_progresses_by_its_tasks_and_links_opinions_once() -> None:
    theme = Theme(
        id="t1",
        month="2026-10",
        title="老旧小区加装电梯",
        source="hot_topic",
        source_ref="加装电梯 (热点)",
        department="housing",
        created_by="督查室",
        created_at=TUESDAY,
        tasks={"1": ThemeTask(text="摸排需求"), "2": ThemeTask(text="出台补贴办法")},
    )
    assert theme.progress == 0.0
    assert theme.complete("1", "已摸排 32 个小区", "区住建局", TUESDAY)
    assert not theme.complete("1", "again", "区住建局", TUESDAY)  # done already
    assert theme.progress == 0.5 and theme.tasks["1"].note == "已摸排 32 个小区"
    with pytest.raises(CaseError) as unknown:
        theme.complete("9", "", "区住建局", TUESDAY)
    assert unknown.value.status == 404
    linked = LinkedOpinion(linked_at=TUESDAY, linked_by="督查室", tracking_no="SQ-1", title="电梯")
    assert theme.link("op1", linked) and not theme.link("op1", linked)
    assert list(theme.opinions) == ["op1"] and theme.opinions["op1"].title == "电梯"


# -- 更正诉求类型 ---------------------------------------------------------------------------------


def test_a_corrected_kind_counts_the_reply_deadline_again_from_assignment() -> None:
    case, first = opened(RequestKind.COMPLAINT)  # 投诉: 15 working days → end of 10-26
    lead = case.assignments["housing"]
    sign_red = next(t for t in first if t.kind == TimerKind.SIGN_RED)
    case.mark_handled(sign_red.id)  # that check already acted: it is not repeated
    now = bj(9, 30, 15)
    timers = case.correct_kind(RequestKind.CONSULT, "编辑 王五", now, RULES)
    # 咨询 is 2 working days from 交办 on 09-29 (not from now): end of 10-08, as if it had
    # been a 咨询 from the start; 响应 and 签收 do not depend on the kind.
    consult = opened(RequestKind.CONSULT)[0].assignments["housing"]
    assert lead.due_at == bj(10, 9) == consult.due_at
    assert (lead.assigned_at, lead.sign_due_at, lead.respond_due_at) == (
        TUESDAY,
        bj(10, 1),
        bj(10, 1),
    )
    assert case.kind == RequestKind.CONSULT and case.kind_set_by == "编辑 王五"
    step = case.timeline[-1]
    assert (step.step, step.actor) == ("更正诉求类型", "编辑 王五")
    assert "投诉 → 咨询" in step.summary and "→ 2026-10-09 00:00" in step.summary
    # A new generation: the old deadline's timers do nothing, the new ones follow the new due.
    assert lead.generation == 2 and {t.generation for t in timers} == {2}
    old_due = next(t for t in first if t.kind == TimerKind.REPLY_DUE)
    assert case.fire(old_due, bj(10, 27), RULES) == []
    due = {t.kind: t.fire_at for t in timers}
    assert due[TimerKind.REPLY_DUE] == bj(10, 9) and due[TimerKind.REMINDER] == bj(9, 30, 9)
    assert TimerKind.SIGN_DUE in due and TimerKind.SIGN_RED not in due
    # The same kind again changes nothing.
    assert case.correct_kind(RequestKind.CONSULT, "编辑 王五", now, RULES) == []
    assert lead.generation == 2
    # Routing's word match on a later 交办 does not undo the person's correction (a co-handler
    # assigned on 09-30: 2 working days, 10-08 and 10-09).
    co = assigned("ecology", "co").model_copy(update={"kind": RequestKind.COMPLAINT})
    case.assign(co, now, RULES)
    assert case.kind == RequestKind.CONSULT and case.assignments["ecology"].due_at == bj(10, 10)


def test_a_corrected_kind_whose_deadline_already_passed_is_breached_at_once() -> None:
    case, _ = opened(RequestKind.COMPLAINT)
    timers = case.correct_kind(RequestKind.CONSULT, "编辑", bj(10, 9, 10), RULES)
    due = {t.kind: t for t in timers}
    assert TimerKind.REMINDER not in due  # the deadline is gone: no reminder before it
    breached = case.fire(due[TimerKind.REPLY_DUE], bj(10, 9, 10), RULES)
    assert isinstance(breached[0], DeadlineBreached) and breached[0].due_at == bj(10, 9)


def test_a_kind_is_not_corrected_once_the_reply_deadline_is_settled() -> None:
    def refused(case: Case, now: datetime = TUESDAY + timedelta(days=1)) -> int:
        with pytest.raises(CaseError) as error:
            case.correct_kind(RequestKind.HELP, "编辑", now, RULES)
        return error.value.status

    assert refused(opened(RequestKind.CONSULT)[0], bj(10, 9, 1)) == 409  # past its due date
    signed, _ = opened(RequestKind.CONSULT)
    signed.sign("housing", bj(9, 30))
    signed.reply("housing", ReplyResult.RESOLVED, "已答复", [], bj(9, 30), RULES, "http://x/f")
    assert refused(signed) == 409  # replied
    extended, _ = opened(RequestKind.CONSULT)
    extended.sign("housing", bj(9, 30))
    extended.request_extension("housing", "需要现场核实", bj(10, 20).date(), bj(9, 30), RULES)
    extended.decide_extension("housing", True, "同意", "督查室", bj(9, 30), RULES)
    assert refused(extended) == 409  # the deadline is the approved extension's
