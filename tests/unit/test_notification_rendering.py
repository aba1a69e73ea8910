"""Chinese templates per event type and recipient role, with personal data masked."""

from datetime import UTC, datetime

import pytest

from services.notification import rendering
from services.notification.domain import RecipientRole
from shared.events import (
    AdoptionLevel,
    AssignmentExtensionApproved,
    AssignmentExtensionRefused,
    AssignmentReplied,
    AssignmentReturned,
    AssignmentSigned,
    CaseClosed,
    CaseEscalated,
    CaseReopened,
    CloudEvent,
    DeadlineBreached,
    DeadlineWarning,
    EventData,
    FeedbackReceived,
    FeedbackRequested,
    KeptAs,
    Location,
    MemberEnrolled,
    OpinionAdopted,
    OpinionAssigned,
    OpinionBriefed,
    OpinionFile,
    OpinionFiled,
    OpinionInstructed,
    OpinionReceived,
    OpinionTriage,
    PlanDue,
    Rating,
    ReplyGrade,
    ReplyResult,
    ReplyReviewReminded,
    ReplySentBack,
    ReplySubmitted,
    ReportAdopted,
    SubmissionForm,
    SubmitterSummary,
)

NOW = datetime(2026, 10, 1, 1, 30, tzinfo=UTC)  # 09:30 in Beijing
PLAN_DUE = datetime(2026, 12, 22, 16, 0, tzinfo=UTC)  # by 2026-12-22: 24:00 in Beijing
COMMON = {"opinion_id": "op1", "office_id": "office-a"}
SAMPLES: list[EventData] = [
    OpinionReceived(
        **COMMON,
        tracking_no="SQ-2026-000001",
        title="和平路公交站台破损",
        content="站台顶棚漏雨，联系电话 13912345678。",
        channel="走访",
        submitter_kind="代表",
        location=Location(district="示范区", street="和平街道"),
        received_at=NOW,
    ),
    OpinionAssigned(
        **COMMON,
        department="transport",
        tracking_no="SQ-2026-000001",
        title="和平路公交站台破损",
        department_name="区交通运输局",
        role="lead",
        category="交通出行",
        urgency="general",
        explanation="关键词：公交、站台",
        received_at=NOW,
    ),
    OpinionTriage(**COMMON, tracking_no="SQ-2026-000001", reason="置信度低"),
    AssignmentSigned(**COMMON, department="transport", signed_at=NOW),
    AssignmentReplied(
        **COMMON,
        department="transport",
        tracking_no="SQ-2026-000001",
        result=ReplyResult.RESOLVED,
        text="已维修。如有问题请联系 13800001234。",
        replied_at=NOW,
    ),
    AssignmentReturned(
        **COMMON,
        department="transport",
        tracking_no="SQ-2026-000001",
        reason="不属于本单位职责",
        returned_at=NOW,
    ),
    CaseReopened(**COMMON, tracking_no="SQ-2026-000001", reason="不满意", reopened_at=NOW),
    FeedbackRequested(
        **COMMON,
        tracking_no="SQ-2026-000001",
        feedback_url="http://127.0.0.1:8003/feedback/abc.def",
        expires_at=NOW,
    ),
    FeedbackReceived(**COMMON, rating=Rating.SATISFIED, comment="很好", rated_at=NOW),
    CaseClosed(**COMMON, tracking_no="SQ-2026-000001", outcome="已解决", closed_at=NOW),
    DeadlineWarning(
        **COMMON, department="transport", tracking_no="SQ-2026-000001", kind="reply", due_at=NOW
    ),
    DeadlineBreached(
        **COMMON, department="transport", tracking_no="SQ-2026-000001", kind="sign", due_at=NOW
    ),
    CaseEscalated(
        **COMMON,
        department="transport",
        tracking_no="SQ-2026-000001",
        level=1,
        label="督办（一级）",
        reason="超期5个工作日",
        actor="timer",
        due_at=NOW,
        escalated_at=NOW,
    ),
    AssignmentExtensionApproved(
        **COMMON,
        department="transport",
        tracking_no="SQ-2026-000001",
        due_at=NOW,
        decided_by="督查室",
    ),
    AssignmentExtensionRefused(
        **COMMON,
        department="transport",
        tracking_no="SQ-2026-000001",
        reason="理由不充分",
        decided_by="督查室",
    ),
    OpinionAdopted(
        **COMMON,
        tracking_no="SQ-2026-000001",
        level=AdoptionLevel.CITY,
        adopted_by="市政协",
        note="",
        adopted_at=NOW,
    ),
    OpinionInstructed(
        **COMMON,
        tracking_no="SQ-2026-000001",
        leader="区长",
        text="请交通局抓紧落实。",
        instructed_at=NOW,
    ),
    OpinionBriefed(
        opinion_id="op1",
        department="transport",
        reason="交办",
        opinion=OpinionFile(
            revision=1,
            tracking_no="SQ-2026-000001",
            office_id="office-a",
            title="和平路公交站台破损",
            content="站台顶棚破损漏雨，联系电话 13912345678。",
            channel="走访",
            location=Location(district="示范区", street="和平街道"),
            submitter=SubmitterSummary(kind="群众", name="李**", phone="139****5678"),
            received_at=NOW,
        ),
    ),
    MemberEnrolled(member_id="m1", office_id="office-a", member_name="周委员", kind="委员"),
    OpinionFiled(
        **COMMON,
        tracking_no="SQ-2026-000002",
        title="关于加快老旧小区加装电梯的提案",
        form=SubmissionForm.PROPOSAL,
        filed=False,
        reason="属个案诉求，转社情民意信息办理",
        kept_as=KeptAs.OPINION,
        decided_by="提案委 王五",
        filed_at=NOW,
        member_id="m1",
        co_signers=["m2"],
    ),
    AssignmentReplied(
        **COMMON,
        department="housing",
        tracking_no="SQ-2026-000002",
        result=ReplyResult.PARTLY_RESOLVED,
        text="已完成选址，正在招标。",
        replied_at=NOW,
        grade=ReplyGrade.BEING_SOLVED,
        plan="年底前完成招标并开工",
        plan_due_at=PLAN_DUE,
        member_id="m1",
        co_signers=["m2"],
    ),
    PlanDue(
        **COMMON,
        department="housing",
        tracking_no="SQ-2026-000002",
        plan="年底前完成招标并开工",
        plan_due_at=PLAN_DUE,
        reminded_at=NOW,
    ),
    ReplySubmitted(
        **COMMON,
        department="transport",
        tracking_no="SQ-2026-000001",
        result=ReplyResult.RESOLVED,
        submitted_at=NOW,
        review_round=1,
        reviewer="office",
        review_due_at=NOW,
    ),
    ReplySentBack(
        **COMMON,
        department="transport",
        tracking_no="SQ-2026-000001",
        review_round=1,
        reviewed_by="督查室",
        submitted_at=NOW,
        reviewed_at=NOW,
        review_due_at=NOW,
        on_time=True,
        reason="请写明维修时限",
    ),
    ReplyReviewReminded(
        **COMMON,
        department="transport",
        tracking_no="SQ-2026-000001",
        review_round=1,
        reviewer="supervisor",
        review_due_at=NOW,
        overdue=True,
    ),
    ReportAdopted(
        report_id="r1",
        number="2026年第3期",
        title="关于路灯维护的建议",
        opinion_ids=["op1"],
        level=AdoptionLevel.CITY,
        adopted_by="市政协",
        note="",
        adopted_at=NOW,
    ),
]


@pytest.mark.parametrize("payload", SAMPLES, ids=lambda p: p.name)
@pytest.mark.parametrize("role", list(RecipientRole))
def test_every_event_renders_in_chinese_for_every_role(
    payload: EventData, role: RecipientRole
) -> None:
    event = CloudEvent.wrap("/test", payload)
    text = rendering.render(rendering.builtin_template(payload.name, role), event, role)
    assert text.subject and text.text
    assert "\n" not in text.subject
    assert any("\u4e00" <= ch <= "\u9fff" for ch in text.subject)
    assert "13912345678" not in text.text and "13800001234" not in text.text


def test_department_gets_its_own_wording_and_times_are_beijing_time() -> None:
    event = CloudEvent.wrap("/test", SAMPLES[1])
    department = rendering.render(
        rendering.builtin_template("opinion.assigned", RecipientRole.DEPARTMENT),
        event,
        RecipientRole.DEPARTMENT,
    )
    office = rendering.render(
        rendering.builtin_template("opinion.assigned", RecipientRole.OFFICE),
        event,
        RecipientRole.OFFICE,
    )
    assert department.subject.startswith("【交办】请签收：和平路公交站台破损")
    assert "交你单位主办" in department.text
    assert office.subject == "【交办】和平路公交站台破损（SQ-2026-000001）已交区交通运输局主办"
    received = rendering.render(
        rendering.builtin_template("opinion.received", RecipientRole.OFFICE),
        CloudEvent.wrap("/test", SAMPLES[0]),
        RecipientRole.OFFICE,
    )
    assert "2026-10-01 09:30" in received.text
    assert "139****5678" in received.text


def test_review_notices_say_what_to_do() -> None:
    texts = {
        payload.name: rendering.render(
            rendering.builtin_template(payload.name, RecipientRole.OFFICE),
            CloudEvent.wrap("/test", payload),
            RecipientRole.OFFICE,
        )
        for payload in SAMPLES
        if payload.name.startswith("reply.")
    }
    assert texts["reply.submitted"].subject == "【待审核】意见 SQ-2026-000001 的答复待审核"
    assert "请写明维修时限" in texts["reply.sent_back"].text
    assert texts["reply.review_reminded"].subject.startswith("【审核超期】")
    assert "2026-10-01 09:30" in texts["reply.review_reminded"].text


def test_members_are_told_the_filing_decision_and_the_graded_reply() -> None:
    texts = {
        payload.name: rendering.render(
            rendering.builtin_template(payload.name, RecipientRole.MEMBER),
            CloudEvent.wrap("/test", payload),
            RecipientRole.MEMBER,
        )
        for payload in SAMPLES
        if getattr(payload, "co_signers", None)
    }
    filed = texts["opinion.filed"]
    assert filed.subject.startswith("【不立案】提案“关于加快老旧小区加装电梯的提案”")
    assert "您提出的提案" in filed.text and "2 人联名" in filed.text
    assert "作为社情民意信息处理" in filed.text and "属个案诉求" in filed.text
    replied = texts["assignment.replied"]
    assert replied.subject == "【答复】SQ-2026-000002：部分解决（B类）"
    assert "B类（正在解决）" in replied.text and "年底前完成招标并开工" in replied.text
    assert "计划完成日期 2026-12-22，" in replied.text  # the day itself, not 12-23 00:00
    plan_due = rendering.render(
        rendering.builtin_template("assignment.plan_due", RecipientRole.DEPARTMENT),
        CloudEvent.wrap("/test", next(p for p in SAMPLES if isinstance(p, PlanDue))),
        RecipientRole.DEPARTMENT,
    )
    assert plan_due.subject == "【跟踪督办】请续报办理结果：SQ-2026-000002"
    assert "计划完成日期为 2026-12-22，" in plan_due.text


def test_unknown_events_fall_back_to_the_generic_template() -> None:
    template = rendering.builtin_template("assignment.input_given", RecipientRole.SUPERVISOR)
    assert template.name == "default.j2"


def test_a_broken_template_is_a_template_error_naming_the_cause() -> None:
    event = CloudEvent.wrap("/test", SAMPLES[0])
    with pytest.raises(rendering.TemplateError, match="line 1"):
        rendering.compile_template("{% if %}")
    with pytest.raises(rendering.TemplateError, match="nested too deeply"):
        rendering.compile_template("{{" + "(" * 3000 + "1" + ")" * 3000 + "}}")
    missing = rendering.compile_template("{{ data.no_such_field }}")
    with pytest.raises(rendering.TemplateError, match="no_such_field"):
        rendering.render(missing, event, RecipientRole.OFFICE)
    with pytest.raises(rendering.TemplateError, match="ZeroDivisionError"):
        rendering.render(rendering.compile_template("{{ 1 / 0 }}"), event, RecipientRole.OFFICE)


def test_templates_are_sandboxed() -> None:
    event = CloudEvent.wrap("/test", SAMPLES[0])
    sneaky = rendering.compile_template("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(rendering.TemplateError, match=r"SecurityError|unsafe"):
        rendering.render(sneaky, event, RecipientRole.OFFICE)


def test_escalation_wording_names_the_level_and_the_department() -> None:
    escalated = next(p for p in SAMPLES if p.name == "case.escalated")
    text = rendering.render(
        rendering.builtin_template("case.escalated", RecipientRole.SUPERVISOR),
        CloudEvent.wrap("/test", escalated),
        RecipientRole.SUPERVISOR,
    )
    assert text.subject == "【督办（一级）】意见 SQ-2026-000001"
    assert "承办单位：transport" in text.text and "超期5个工作日" in text.text
