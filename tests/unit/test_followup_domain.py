"""The case lifecycle and the feedback link."""

from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest

from services.followup.adapters import FeedbackTokens
from services.followup.domain import Case, CaseError, CaseStatus
from shared.events import (
    AssignmentReplied,
    CaseClosed,
    FeedbackRequested,
    OpinionAssigned,
    Rating,
    ReplyResult,
)

NOW = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


def assigned(department: str = "housing", role: Literal["lead", "co"] = "lead") -> OpinionAssigned:
    return OpinionAssigned(
        opinion_id="op1",
        tracking_no="SQ-2026-000001",
        office_id="o1",
        title="路灯不亮",
        department=department,
        department_name="区住建局",
        role=role,
        category="城乡建设",
        urgency="general",
        explanation="",
        received_at=NOW,
    )


def test_lifecycle_from_assignment_to_closed() -> None:
    case = Case.open(assigned(), NOW)
    assert case.assignments["housing"].due_at == NOW + timedelta(days=7)
    assert len(case.sign("housing", NOW)) == 1
    events = case.reply("housing", ReplyResult.RESOLVED, "已修复", NOW, "http://x/feedback/t")
    assert [type(e) for e in events] == [AssignmentReplied, FeedbackRequested]
    assert case.status == CaseStatus.AWAITING_FEEDBACK
    closing = case.rate(1, Rating.SATISFIED, "", NOW)
    assert isinstance(closing[-1], CaseClosed)
    assert [t.step for t in case.timeline] == [
        "登记",
        "交办",
        "签收",
        "答复",
        "回访",
        "评价",
        "办结",
    ]


def test_signing_twice_changes_nothing() -> None:
    case = Case.open(assigned(), NOW)
    case.sign("housing", NOW)
    assert case.sign("housing", NOW) == []
    assert [t.step for t in case.timeline].count("签收") == 1


def test_illegal_transitions_are_refused() -> None:
    case = Case.open(assigned(), NOW)
    case.assign(assigned("ecology", "co"), NOW)
    with pytest.raises(CaseError) as not_signed:
        case.reply("housing", ReplyResult.RESOLVED, "x", NOW, "u")
    assert not_signed.value.status == 409
    case.sign("ecology", NOW)
    with pytest.raises(CaseError, match="lead"):
        case.reply("ecology", ReplyResult.RESOLVED, "x", NOW, "u")
    with pytest.raises(CaseError) as stranger:
        case.sign("transport", NOW)
    assert stranger.value.status == 403
    with pytest.raises(CaseError):
        case.rate(1, Rating.SATISFIED, "", NOW)


def test_same_assignment_twice_is_one_assignment() -> None:
    case = Case.open(assigned(), NOW)
    case.assign(assigned(), NOW)
    assert list(case.assignments) == ["housing"]
    assert [t.step for t in case.timeline].count("交办") == 1


def test_feedback_tokens_are_signed_and_expire() -> None:
    tokens = FeedbackTokens("secret", "http://followup")
    url = tokens.url("op1", 2, NOW + timedelta(days=1))
    token = url.rsplit("/", 1)[1]
    assert tokens.verify(token, NOW) == ("op1", 2)
    with pytest.raises(CaseError) as expired:
        tokens.verify(token, NOW + timedelta(days=2))
    assert expired.value.status == 410
    with pytest.raises(CaseError) as forged:
        FeedbackTokens("other", "http://followup").verify(token, NOW)
    assert forged.value.status == 403
    for garbage in ("", "abc", "a.b", token[:-1] + "0"):
        with pytest.raises(CaseError):
            tokens.verify(garbage, NOW)
