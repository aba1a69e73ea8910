"""Routing decisions on the demo directory: keyword rules override the model, co-handlers,
triage on low confidence or a missing rule, the fallback owner (兜底), urgency, returns (退回)
and staff decisions."""

from datetime import UTC, datetime

import pytest

from services.routing.classifier import Prediction
from services.routing.domain import (
    DEMO_DIRECTORY,
    Decision,
    Directory,
    Rule,
    decide,
    redecide_after_return,
    staff_decision,
)
from shared.events import (
    EventData,
    Location,
    OpinionAssigned,
    OpinionReceived,
    OpinionTriage,
    OpinionWithdrawn,
    RequestKind,
)

NOW = datetime(2026, 10, 1, tzinfo=UTC)
HEPING = Location(district="示范区", street="和平街道")


def opinion(
    title: str = "问题",
    content: str = "内容",
    location: Location = HEPING,
    hint: str | None = None,
    urgency: str | None = None,
) -> OpinionReceived:
    return OpinionReceived(
        opinion_id="op1",
        tracking_no="SQ-2026-000001",
        office_id="o1",
        title=title,
        content=content,
        channel="热线",
        submitter_kind="群众",
        location=location,
        category_hint=hint,
        urgency_hint=urgency,
        received_at=NOW,
    )


def predicted(*ranking: tuple[str, float]) -> Prediction:
    return Prediction(list(ranking), ["维修", "道路"])


def directory() -> Directory:
    return DEMO_DIRECTORY.model_copy(deep=True)


def assigned(events: list[EventData]) -> list[tuple[str, str]]:
    return [(e.department, e.role) for e in events if isinstance(e, OpinionAssigned)]


def routed(prediction: Prediction | None, **changes: object) -> tuple[Decision, list[EventData]]:
    return decide(opinion(**changes), directory(), prediction, "v1", NOW)  # type: ignore[arg-type]


def test_confident_model_assigns_the_lead_and_explains_with_its_terms() -> None:
    decision, events = routed(predicted(("交通运输", 0.91), ("城乡建设", 0.05)))
    assert assigned(events) == [("transport", "lead")]
    assert events[0].routing_key() == "opinion.assigned.transport"
    assert (decision.category, decision.status, decision.lead) == (
        "交通运输",
        "assigned",
        "transport",
    )
    assert "v1" in decision.explanation and "维修" in decision.explanation


def test_keyword_rule_overrides_the_model() -> None:
    decision, events = routed(
        predicted(("城乡建设", 0.97)), title="幸福路口公交站台无遮雨棚", content="候车不便"
    )
    assert decision.category == "交通运输"
    assert assigned(events) == [("transport", "lead")]
    assert "公交站台" in decision.explanation and decision.confidence == 1.0


def test_rule_brings_co_handlers_and_the_most_specific_area_wins() -> None:
    decision, events = routed(
        predicted(("城乡建设", 0.8)), location=Location(district="示范区", street="幸福街道")
    )
    assert assigned(events) == [("xingfu-street", "lead"), ("housing", "co")]
    assert decision.co == ["housing"]
    _, elsewhere = routed(predicted(("城乡建设", 0.8)))
    assert assigned(elsewhere) == [("housing", "lead")]


def test_low_confidence_goes_to_triage() -> None:
    decision, events = routed(predicted(("交通运输", 0.31), ("城乡建设", 0.3)))
    assert decision.status == "triage" and decision.lead is None
    assert [type(e) for e in events] == [OpinionTriage]
    assert "0.31" in events[0].reason  # type: ignore[attr-defined]


def test_without_a_model_the_fallback_owner_takes_what_no_rule_places() -> None:
    decision, events = routed(None)
    assert assigned(events) == [("district-gov", "lead")]
    assert (decision.category, decision.status) == ("未分类", "assigned")


def test_a_category_without_a_rule_waits_for_a_person() -> None:
    decision, events = routed(None, hint="其他")
    assert decision.status == "triage" and isinstance(events[0], OpinionTriage)


def test_office_hint_naming_a_known_category_decides_without_a_model() -> None:
    _, events = routed(None, hint="教育文体")
    assert assigned(events) == [("education", "lead")]


def test_unknown_jurisdiction_falls_back_to_the_district_government() -> None:
    decision, events = routed(
        predicted(("交通运输", 0.9)), location=Location(district="别的区", street="某街道")
    )
    assert assigned(events) == [("district-gov", "lead")]
    assert "兜底" in decision.explanation


def test_known_area_without_a_rule_for_the_category_goes_to_triage() -> None:
    _, events = routed(predicted(("食品安全", 0.95)))
    assert isinstance(events[0], OpinionTriage) and "no rule" in events[0].reason


@pytest.mark.parametrize(
    ("text", "hint", "expected"),
    [
        ("小区楼道起火冒烟", None, "emergency"),
        ("小区楼道起火冒烟", "general", "emergency"),
        ("小区连续三天停水", None, "timeliness"),
        ("小区连续三天停水", "complex", "complex"),
        ("历史遗留的产权问题", None, "complex"),
        ("路面有坑", None, "general"),
    ],
)
def test_urgency_from_text_and_hint(text: str, hint: str | None, expected: str) -> None:
    decision, events = routed(predicted(("城乡建设", 0.9)), content=text, urgency=hint)
    assert decision.urgency == expected
    assert events[0].urgency == expected  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("请问小区加装电梯的补贴标准", RequestKind.CONSULT),
        ("老人独居行动不便, 求助社区帮忙", RequestKind.HELP),
        ("建议在路口增设红绿灯", RequestKind.SUGGESTION),
        ("投诉餐馆油烟扰民", RequestKind.COMPLAINT),
        ("举报工地夜间违规施工, 请问如何处理", RequestKind.REPORT),  # 举报 before 咨询
        ("路面有坑", None),
    ],
)
def test_kind_of_request_from_its_words(text: str, expected: RequestKind | None) -> None:
    _, events = routed(predicted(("城乡建设", 0.9)), content=text)
    assert [e.kind for e in events] == [expected] * len(events)  # type: ignore[attr-defined]


def test_lead_return_re_decides_with_the_next_category_without_it() -> None:
    decision, _ = routed(predicted(("城乡建设", 0.6), ("交通运输", 0.3)))
    events = redecide_after_return(decision, "housing", "不属于本单位职责", directory(), None, NOW)
    assert assigned(events) == [("transport", "lead")]
    assert decision.lead == "transport" and decision.returns == {"housing": "不属于本单位职责"}
    assert "housing 退回" in decision.explanation


def test_co_handler_return_only_drops_it() -> None:
    decision, _ = routed(
        predicted(("城乡建设", 0.8)), location=Location(district="示范区", street="幸福街道")
    )
    events = redecide_after_return(decision, "housing", "非本单位", directory(), None, NOW)
    assert events == [] and decision.lead == "xingfu-street" and decision.co == []


def test_lead_return_with_no_other_candidate_goes_to_the_fallback_owner() -> None:
    decision, _ = routed(None, hint="教育文体")
    model = predicted(("教育文体", 0.7), ("卫生计生", 0.2))
    events = redecide_after_return(decision, "education", "非本单位", directory(), model, NOW)
    assert assigned(events) == [("health", "lead"), ("market", "co")]
    decision, _ = routed(None, hint="教育文体")
    events = redecide_after_return(decision, "education", "非本单位", directory(), None, NOW)
    assert assigned(events) == [("district-gov", "lead")] and "兜底" in decision.explanation


def test_second_return_sends_the_opinion_to_triage() -> None:
    decision, _ = routed(predicted(("城乡建设", 0.6), ("交通运输", 0.3)))
    redecide_after_return(decision, "housing", "非本单位", directory(), None, NOW)
    events = redecide_after_return(decision, "transport", "也不是我们", directory(), None, NOW)
    assert [type(e) for e in events] == [OpinionTriage]
    assert decision.status == "triage" and set(decision.returns) == {"housing", "transport"}


def test_staff_decision_assigns_and_reassigning_withdraws_the_old_departments() -> None:
    decision, _ = routed(predicted(("交通运输", 0.2)))
    events = staff_decision(decision, directory(), "环境保护", "ecology", [], None, "编辑甲", NOW)
    assert assigned(events) == [("ecology", "lead")] and decision.decided_by == "编辑甲"
    events = staff_decision(
        decision, directory(), "卫生计生", "health", ["market"], "emergency", "编辑乙", NOW
    )
    withdrawn = [e.department for e in events if isinstance(e, OpinionWithdrawn)]
    assert withdrawn == ["ecology"]
    assert assigned(events) == [("health", "lead"), ("market", "co")]
    assert decision.urgency == "emergency"


def test_reassigning_roles_tells_each_department_that_stays_its_new_role() -> None:
    decision, _ = routed(predicted(("交通运输", 0.2)))
    staff_decision(decision, directory(), "卫生计生", "health", ["market"], None, "编辑甲", NOW)
    swapped = staff_decision(
        decision, directory(), "卫生计生", "market", ["health"], None, "编辑乙", NOW
    )
    assert assigned(swapped) == [("market", "lead"), ("health", "co")]
    assert not [e for e in swapped if isinstance(e, OpinionWithdrawn)]
    # The co-handler becomes the only department: the old lead is withdrawn, it leads now.
    alone = staff_decision(decision, directory(), "卫生计生", "health", [], None, "编辑丙", NOW)
    assert [e.department for e in alone if isinstance(e, OpinionWithdrawn)] == ["market"]
    assert assigned(alone) == [("health", "lead")]
    assert staff_decision(decision, directory(), "卫生计生", "health", [], None, "丁", NOW) == []


def test_staff_decision_naming_unknown_things_is_refused() -> None:
    decision, _ = routed(None, hint="其他")
    with pytest.raises(ValueError, match=r"unknown category .* unknown department .nowhere"):
        staff_decision(decision, directory(), "不存在", "nowhere", [], None, "编辑", NOW)


def test_directory_problems_name_unknown_departments_areas_and_categories() -> None:
    bad = directory()
    bad.rules.append(Rule(category="交通运输", area="moon", lead="nasa", co=["transport"]))
    bad.rules.append(Rule(category="无此类", lead="transport"))
    bad.rules.append(Rule(category="教育文体", area="heping-east", lead="xingfu-street"))
    fields = {p["field"] for p in bad.problems()}
    assert {"rules.10.area", "rules.10.lead", "rules.11.category", "rules.12.lead"} <= fields
    assert DEMO_DIRECTORY.problems() == []
