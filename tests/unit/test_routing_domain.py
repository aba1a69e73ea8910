"""Routing decisions of the skeleton: hint, keywords, fallback owner (兜底)."""

from datetime import UTC, datetime

from services.routing.domain import decide
from shared.events import Location, OpinionReceived

NOW = datetime(2026, 10, 1, tzinfo=UTC)


def opinion(title: str, content: str, hint: str | None = None) -> OpinionReceived:
    return OpinionReceived(
        opinion_id="op1",
        tracking_no="SQ-2026-000001",
        office_id="o1",
        title=title,
        content=content,
        channel="热线",
        submitter_kind="群众",
        location=Location(district="示范区"),
        category_hint=hint,
        received_at=NOW,
    )


def test_office_hint_decides_the_category() -> None:
    decision, assigned = decide(opinion("问题", "内容", hint="教育文体"), NOW)
    assert (decision.category, assigned.department, assigned.role) == (
        "教育文体",
        "education",
        "lead",
    )
    assert assigned.routing_key() == "opinion.assigned.education"


def test_keywords_pick_the_category_and_explain_it() -> None:
    decision, assigned = decide(opinion("工厂排放污染", "夜里排放废气，污染严重"), NOW)
    assert decision.category == "环境保护"
    assert assigned.department == "ecology"
    assert "污染" in decision.explanation


def test_unplaceable_opinion_goes_to_the_district_government() -> None:
    decision, assigned = decide(opinion("建议", "希望多举办活动"), NOW)
    assert assigned.department == "district-gov"
    assert decision.confidence == 0.0
