"""审核 of replies and 信息专报 — pure domain (rules, timers, KPIs, crediting sources) and the
DOCX the report is exported as."""

import io
from datetime import UTC, datetime, timedelta

import docx
import pytest

from services.followup.adapters import report_docx
from services.followup.domain import (
    AssignmentStatus,
    Case,
    CaseError,
    CaseStatus,
    Draft,
    Report,
    ReportSource,
    ReportStatus,
    ReviewRule,
    ReviewRules,
    Timer,
    TimerKind,
    kpi_change,
    rates,
)
from services.followup.workdays import Span
from shared.events import (
    AdoptionLevel,
    AssignmentReplied,
    AssignmentResponded,
    DeadlineBreached,
    FeedbackRequested,
    OpinionAdopted,
    OpinionInstructed,
    ReplyApproved,
    ReplyResult,
    ReplyReviewReminded,
    ReplySentBack,
    ReplySubmitted,
    ReportAdopted,
    ReportInstructed,
    ReportSubmitted,
)

from .test_followup_domain import NOW, RULES, opened

URL = "http://x/feedback/t"
# The steps of a reply's review and release (other steps may come between them).
REVIEW_STEPS = {"送审", "审核提醒", "审核超期", "审核退回", "审核通过", "答复", "回访"}


def review_steps(case: Case) -> list[str]:
    return [e.step for e in case.timeline if e.step in REVIEW_STEPS]


RULE = ReviewRule(categories=["城乡建设"], reviewer="office")


def submitted(at: datetime = NOW, rule: ReviewRule = RULE) -> tuple[Case, list[Timer]]:
    case = opened()
    case.sign("housing", at)
    events, timers = case.reply(
        "housing", ReplyResult.RESOLVED, "已修复", [], at, RULES, URL, "张三", review=rule
    )
    # Submitting the reply is the department's first contact too (响应).
    assert [type(e) for e in events] == [AssignmentResponded, ReplySubmitted]
    return case, timers


def test_rules_match_by_category_urgency_and_department() -> None:
    rules = ReviewRules(
        rules=[
            ReviewRule(urgencies=["emergency"], reviewer="supervisor"),
            ReviewRule(categories=["城乡建设"], departments=["housing"]),
        ]
    )
    assert rules.match("城乡建设", "general", "housing") == rules.rules[1]
    assert rules.match("城乡建设", "general", "transport") is None
    assert rules.match("环境保护", "general", "housing") is None
    assert rules.match("环境保护", "emergency", "ecology") == rules.rules[0]
    assert ReviewRules().match("城乡建设", "general", "housing") is None


def test_a_reply_under_review_is_not_released() -> None:
    case, timers = submitted()
    lead = case.assignments["housing"]
    assert lead.status == AssignmentStatus.REVIEWING
    assert case.status == CaseStatus.OPEN and case.awaiting_review
    assert lead.result is None and lead.text is None  # nothing released yet
    assert lead.review is not None and lead.review.text == "已修复"
    assert case.feedback_round == 0
    assert {t.kind for t in timers} == {TimerKind.REVIEW_REMINDER, TimerKind.REVIEW_DUE}
    with pytest.raises(CaseError) as refused:
        case.reply("housing", ReplyResult.RESOLVED, "再答复", [], NOW, RULES, URL)
    assert refused.value.status == 409
    assert case.timeline[-1].step == "送审"


def test_approval_releases_the_reply_as_of_its_submission() -> None:
    case, _ = submitted()
    later = NOW + timedelta(hours=5)
    events, timers = case.approve_reply("housing", "督查员", None, later, RULES, URL)
    approved = events[0]
    assert isinstance(approved, ReplyApproved) and approved.on_time
    (replied,) = [e for e in events if isinstance(e, AssignmentReplied)]
    assert replied.replied_at == NOW
    assert [e for e in events if isinstance(e, FeedbackRequested)]
    assert [t.kind for t in timers] == [TimerKind.FEEDBACK]
    assert case.status == CaseStatus.AWAITING_FEEDBACK and not case.awaiting_review
    assert case.assignments["housing"].text == "已修复"
    assert review_steps(case) == ["送审", "审核通过", "答复", "回访"]
    # KPIs: the department's reply counts at its submission, the review apart with its time.
    change = kpi_change(approved)
    assert change is not None
    assert change.counters == {
        "reviewed": 1,
        "review_seconds": 5 * 3600,
        "review_due": 1,
        "reviewed_on_time": 1,
    }
    assert rates(change.counters)["review_hours"] == 5.0


def test_who_may_review() -> None:
    case, _ = submitted()
    with pytest.raises(CaseError) as other_office:
        case.approve_reply("housing", "乙", "o2", NOW, RULES, URL)
    assert other_office.value.status == 403
    events, _ = case.approve_reply("housing", "办公室", "o1", NOW, RULES, URL)
    assert isinstance(events[0], ReplyApproved)
    supervisors_only, _ = submitted(rule=ReviewRule(reviewer="supervisor"))
    with pytest.raises(CaseError) as office:
        supervisors_only.send_back("housing", "不全", "办公室", "o1", NOW)
    assert office.value.status == 403
    with pytest.raises(CaseError) as nothing:
        opened().approve_reply("housing", "督查员", None, NOW, RULES, URL)
    assert nothing.value.status == 409


def test_sent_back_reply_is_revised_and_approved() -> None:
    case, _ = submitted()
    events = case.send_back("housing", "请补充整改时限", "督查员", None, NOW + timedelta(hours=1))
    assert [type(e) for e in events] == [ReplySentBack]
    lead = case.assignments["housing"]
    assert lead.status == AssignmentStatus.SIGNED and lead.replied_at is None
    assert not case.awaiting_review
    change = kpi_change(events[0])
    assert change is not None and change.counters["sent_back"] == 1
    revised, timers = case.reply(
        "housing",
        ReplyResult.RESOLVED,
        "已修复, 12月底前完成",
        [],
        NOW,
        RULES,
        URL,
        None,
        review=RULE,
    )
    assert isinstance(revised[0], ReplySubmitted) and revised[0].review_round == 2
    assert {t.generation for t in timers} == {2}
    events, _ = case.approve_reply("housing", "督查员", None, NOW, RULES, URL)
    assert case.assignments["housing"].text == "已修复, 12月底前完成"


def test_review_timers_remind_only_while_the_round_waits() -> None:
    case, timers = submitted()
    due = next(t for t in timers if t.kind == TimerKind.REVIEW_DUE)
    reminder = next(t for t in timers if t.kind == TimerKind.REVIEW_REMINDER)
    # Submitted Monday 10:00 (Beijing): due at the end of Tuesday, reminded Tuesday 09:00.
    assert due.fire_at == datetime(2026, 11, 3, 16, 0, tzinfo=UTC)
    assert reminder.fire_at == datetime(2026, 11, 3, 1, 0, tzinfo=UTC)
    (near,) = case.fire(reminder, reminder.fire_at, RULES)
    assert isinstance(near, ReplyReviewReminded) and not near.overdue
    assert kpi_change(near) is None
    (late,) = case.fire(due, due.fire_at, RULES)
    assert isinstance(late, ReplyReviewReminded) and late.overdue
    change = kpi_change(late)
    assert change is not None and change.counters == {"review_due": 1, "review_overdue": 1}
    assert review_steps(case) == ["送审", "审核提醒", "审核超期"]
    case.approve_reply("housing", "督查员", None, due.fire_at, RULES, URL)
    assert case.fire(due, due.fire_at, RULES) == []


def test_the_reply_deadline_is_judged_by_the_submission() -> None:
    case, _ = submitted()
    lead = case.assignments["housing"]
    reply_due = Timer(
        case_id=case.id,
        department="housing",
        kind=TimerKind.REPLY_DUE,
        generation=lead.generation,
        fire_at=lead.due_at,
    )
    assert case.fire(reply_due, lead.due_at, RULES) == []  # submitted in time, still under review
    # Sent back after the due date: the department is late now, counted once.
    events = case.send_back("housing", "不全", "督查员", None, lead.due_at + timedelta(hours=1))
    assert [type(e) for e in events] == [ReplySentBack, DeadlineBreached]
    assert case.has_handled(reply_due.id)


def test_a_review_window_in_hours_reminds_a_quarter_before() -> None:
    rule = ReviewRule(within=Span(amount=4, unit="hours"))
    _, timers = submitted(rule=rule)
    at = {t.kind: t.fire_at for t in timers}
    assert at[TimerKind.REVIEW_DUE] == NOW + timedelta(hours=4)
    assert at[TimerKind.REVIEW_REMINDER] == NOW + timedelta(hours=3)


def report(*cases: Case) -> Report:
    draft = Draft(
        version=1,
        title="关于背街小巷路灯维护的建议",
        text="近期多名委员反映路灯不亮。\n建议建立巡查机制。",
        send_to=["市政协办公厅"],
        copy_to=["区住建局"],
        by="编辑甲",
        at=NOW,
    )
    sources = [ReportSource.of(c) for c in cases]
    return Report.compile("r1", "2026年第3期", "区政协办公室", None, sources, draft)


def test_report_lifecycle_drafts_sign_off_submit_and_outcome() -> None:
    r = report(opened())
    with pytest.raises(CaseError):
        r.submit(AdoptionLevel.CITY, "编辑甲", NOW)  # not signed off
    r.revise("关于路灯维护的建议", "正文第二稿。", ["市政协办公厅"], [], "编辑甲", NOW)
    with pytest.raises(CaseError) as stale:
        r.sign_off(1, "主任", NOW)
    assert stale.value.status == 409
    r.sign_off(2, "主任", NOW)
    r.revise("关于路灯维护的建议", "正文第三稿。", ["市政协办公厅"], [], "编辑甲", NOW)
    assert r.status == ReportStatus.DRAFT and r.signed_off is None  # the sign-off is void
    with pytest.raises(CaseError):
        r.adopt(AdoptionLevel.CITY, "市政协", "", NOW)  # not submitted
    r.sign_off(3, "主任", NOW)
    (sent,) = r.submit(AdoptionLevel.CITY, "编辑甲", NOW)
    assert isinstance(sent, ReportSubmitted) and sent.sent_to == ["市政协办公厅"]
    assert sent.subject() == "r1" and sent.opinion_ids == ["op1"]
    with pytest.raises(CaseError):
        r.revise("x", "y", ["z"], [], "编辑甲", NOW)
    (adopted,) = r.adopt(AdoptionLevel.CITY, "市政协", "全文采用", NOW)
    assert isinstance(adopted, ReportAdopted)
    with pytest.raises(CaseError):
        r.adopt(AdoptionLevel.CITY, "市政协", "", NOW)
    (instructed,) = r.instruct("李市长", "请市住建局研究落实。", NOW)
    assert isinstance(instructed, ReportInstructed)
    steps = [e.step for e in r.timeline]
    assert steps == ["编辑", "修改", "签发", "修改", "签发", "报送", "采用", "批示"]
    with pytest.raises(CaseError) as unknown:
        r.draft_of(9)
    assert unknown.value.status == 404


def test_report_outcome_is_credited_to_each_source_once_per_level() -> None:
    case = opened()
    r = report(case)
    r.sign_off(1, "主任", NOW)
    r.submit(AdoptionLevel.CITY, "编辑甲", NOW)
    (adopted,) = r.adopt(AdoptionLevel.CITY, "市政协", "", NOW)
    (instructed,) = r.instruct("李市长", "请研究落实。", NOW)
    assert isinstance(adopted, ReportAdopted) and isinstance(instructed, ReportInstructed)
    (opinion_adopted,) = case.credit_report(adopted, NOW)
    assert isinstance(opinion_adopted, OpinionAdopted) and opinion_adopted.level == "市"
    assert "信息专报《关于背街小巷路灯维护的建议》(2026年第3期)" in opinion_adopted.note
    assert case.credit_report(adopted, NOW) == []  # already adopted at 市: one adoption
    (opinion_instructed,) = case.credit_report(instructed, NOW)
    assert isinstance(opinion_instructed, OpinionInstructed)
    assert opinion_instructed.leader == "李市长"
    assert [e.step for e in case.timeline[-3:]] == ["采用", "采用", "批示"]


def test_docx_has_the_customary_layout() -> None:
    r = report(opened())
    r.sign_off(1, "王主任", NOW)
    document = docx.Document(io.BytesIO(report_docx(r)))
    texts = [p.text for p in document.paragraphs]
    assert texts[0] == "社情民意信息专报"
    assert texts[1] == "2026年第3期"
    assert texts[2] == "区政协办公室\t2026年11月2日"
    assert texts[3] == "关于背街小巷路灯维护的建议"
    assert texts[4:6] == ["近期多名委员反映路灯不亮。", "建议建立巡查机制。"]
    assert texts[6] == "（来源意见：SQ-2026-000001《路灯不亮》）"
    assert texts[7:] == ["报送：市政协办公厅", "抄送：区住建局", "签发：王主任"]
    head = document.paragraphs[0].runs[0]
    assert head.font.color.rgb is not None and str(head.font.color.rgb) == "C00000"
    assert head.font.bold
    # The red rule under the unit line.
    assert "w:pBdr" in document.paragraphs[2]._p.xml
    unsigned = docx.Document(io.BytesIO(report_docx(report(opened()))))
    assert unsigned.paragraphs[-1].text == "签发：（未签发）"


def test_docx_leaves_out_what_xml_cannot_carry() -> None:
    r = report(opened())
    r.revise("标题\x01", "正文\x00第一段\x1b。", ["市政协\x02"], [], "编辑甲", NOW)
    texts = [p.text for p in docx.Document(io.BytesIO(report_docx(r))).paragraphs]
    assert texts[3:5] == ["标题", "正文第一段。"]
    assert "报送：市政协" in texts
