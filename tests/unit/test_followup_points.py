"""履职积分 as rules: the defaults (the weights before the rules), points by role × outcome, the
重点/优秀 bonus (once per mark, taken back by an unmark), the annual minimum by kind, and the
rule table's refusals."""

from collections import Counter
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.followup.domain import (
    Mark,
    OutcomePoints,
    PointsRules,
    PointsRuleTable,
    counter_label,
    member_points,
)
from shared.events import AdoptionLevel as Level
from shared.events import MarkKind, OpinionAdopted, OpinionMarked

DECEMBER = datetime(2026, 12, 31, 15, 30, tzinfo=UTC)  # 2026-12-31 23:30 in Beijing
JANUARY = datetime(2027, 1, 5, 2, tzinfo=UTC)


def test_the_defaults_are_the_weights_before_the_rules() -> None:
    rules = PointsRules()
    assert rules.version == 0 and rules.updated_by is None
    lead = rules.lead
    assert (lead.submitted, lead.instructed) == (1, 5)
    assert (lead.adopted_district, lead.adopted_city) == (3, 5)
    assert (lead.adopted_province, lead.adopted_national) == (8, 10)
    assert (lead.filed, lead.key, lead.excellent) == (3, 3, 5)
    assert rules.annual_minimum.of("委员") == 10 and rules.annual_minimum.of("代表") == 10
    # A co-signer earns less than the lead author for every outcome but submitting.
    co, by_lead = rules.co_signer.model_dump(), lead.model_dump()
    assert all(co[o] < by_lead[o] for o in by_lead if o != "submitted")


def test_points_weigh_each_role_by_its_own_row() -> None:
    weights = {o: 0 for o in OutcomePoints.model_fields}
    rules = PointsRules(
        lead=OutcomePoints(**weights | {"filed": 4, "adopted_city": 6, "key": 3}),
        co_signer=OutcomePoints(**weights | {"filed": 1, "adopted_city": 2, "excellent": 7}),
    )
    counters = {
        "filed": 2,  # 2 × 4 as lead
        "co_filed": 3,  # 3 × 1 as co-signer
        "adopted_city": 1,  # 6
        "co_adopted_city": 1,  # 2
        "key": 1,  # 3
        "co_excellent": 1,  # 7
        "co_key": 5,  # the co-signer's key bonus is 0 in these rules
        "not_an_outcome": 100,  # counters the rules do not know weigh nothing
    }
    assert rules.points(counters) == 8 + 3 + 6 + 2 + 3 + 7
    assert rules.points({}) == 0


def test_minimum_by_kind() -> None:
    table = PointsRuleTable.model_validate({"annual_minimum": {"委员": 12, "代表": 30}})
    rules = PointsRules(**table.model_dump(by_alias=True))
    assert rules.annual_minimum.of("委员") == 12
    assert rules.annual_minimum.of("代表") == 30
    assert rules.annual_minimum.of("群众") is None and rules.annual_minimum.of(None) is None
    # A kind left out keeps its default.
    partial = PointsRuleTable.model_validate({"annual_minimum": {"代表": 5}})
    assert partial.annual_minimum.of("委员") == 10


LEAD, CO = PointsRules().lead.model_dump(), PointsRules().co_signer.model_dump()


@pytest.mark.parametrize(
    ("table", "field", "code"),
    [
        ({"lead": {**LEAD, "filed": -1}}, "lead.filed", "greater_than_equal"),
        ({"co_signer": {**CO, "key": 10**9}}, "co_signer.key", "less_than_equal"),
        ({"lead": {**LEAD, "bribe": 3}}, "lead.bribe", "extra_forbidden"),
        ({"lead": {**LEAD, "instructed": True}}, "lead.instructed", "int_type"),
        ({"lead": {**LEAD, "instructed": 2.5}}, "lead.instructed", "int_type"),
        ({"annual_minimum": {"党员": 3}}, "annual_minimum.党员", "extra_forbidden"),
        ({"annual_minimum": {"委员": -5}}, "annual_minimum.委员", "greater_than_equal"),
        ({"bonus": {}}, "bonus", "extra_forbidden"),
    ],
)  # fmt: skip
def test_the_table_refuses_negative_huge_and_unknown_entries(
    table: dict[str, object], field: str, code: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        PointsRuleTable.model_validate(table)
    [error] = refused.value.errors()
    assert (".".join(map(str, error["loc"])), error["type"]) == (field, code)


def test_a_lead_row_must_name_every_outcome() -> None:
    with pytest.raises(ValidationError) as refused:
        PointsRuleTable.model_validate({"lead": {"submitted": 1}})
    missing = {e["loc"][-1] for e in refused.value.errors() if e["type"] == "missing"}
    assert missing == set(OutcomePoints.model_fields) - {"submitted"}


def _mark() -> Mark:
    return Mark(
        id=Mark.key("op1", MarkKind.KEY),
        opinion_id="op1",
        mark=MarkKind.KEY,
        office_id="o1",
        tracking_no="SQ-1",
        member_id="lead-m",
        co_signers=["co-a", "co-b"],
    )


def test_a_mark_is_a_bonus_for_each_member_by_role_once() -> None:
    mark = _mark()
    given = mark.set(True, "赵明", "主席会议确定", DECEMBER)
    assert given is not None and given.generation == 1 and given.marked
    assert mark.set(True, "赵明", "again", JANUARY) is None  # marking twice changes nothing
    facts = member_points("e1", given)
    assert [(f.member, f.key, f.month, f.counters) for f in facts] == [
        ("lead-m", "key-op1-1", "2026-12", {"key": 1}),
        ("co-a", "key-op1-1-co-a", "2026-12", {"co_key": 1}),
        ("co-b", "key-op1-1-co-b", "2026-12", {"co_key": 1}),
    ]
    # A redelivery (another envelope, the same mark) makes the same keys: counted once.
    assert [f.key for f in member_points("e1-again", given)] == [f.key for f in facts]


def test_an_unmark_takes_the_bonus_back_in_the_month_it_was_given() -> None:
    mark = _mark()
    mark.set(True, "赵明", "", DECEMBER)
    taken = mark.set(False, "钱督查", "复核不符合重点标准", JANUARY)
    assert taken is not None and (taken.generation, taken.marked) == (2, False)
    assert taken.marked_at == DECEMBER and taken.changed_at == JANUARY
    [lead, *_] = member_points("e2", taken)
    assert (lead.key, lead.month, lead.counters) == ("key-op1-2", "2026-12", {"key": -1})
    again = mark.set(True, "赵明", "", JANUARY)
    assert again is not None and again.generation == 3
    assert member_points("e3", again)[0].month == "2027-01"


def test_given_taken_back_and_given_again_is_one_bonus_per_member() -> None:
    mark, events = _mark(), []
    for marked in (True, False, True):
        event = mark.set(marked, "赵明", "", DECEMBER)
        assert event is not None
        events.append(event)
    totals: dict[str, Counter[str]] = {}
    for n, event in enumerate(events):
        for fact in member_points(f"e{n}", event):
            totals.setdefault(fact.member, Counter()).update(fact.counters)
    rules = PointsRules()
    assert rules.points(totals["lead-m"]) == rules.lead.key == 3
    assert rules.points(totals["co-b"]) == rules.co_signer.key == 1


def test_an_adoption_names_its_lead_only_unless_co_signers_come_with_it() -> None:
    adopted = OpinionAdopted(
        opinion_id="op1",
        office_id="o1",
        tracking_no="SQ-1",
        level=Level.PROVINCE,
        adopted_by="省政协",
        note="",
        adopted_at=JANUARY,
        member_id="lead-m",
    )
    [fact] = member_points("e9", adopted)
    assert (fact.key, fact.member, fact.counters) == ("e9", "lead-m", {"adopted_province": 1})


def test_counter_labels_name_outcome_and_role() -> None:
    assert counter_label("filed") == "立案(领衔)"
    assert counter_label("co_adopted_city") == "市级采用(联名)"


def test_marked_event_rejects_a_generation_below_one() -> None:
    with pytest.raises(ValidationError):
        OpinionMarked(
            opinion_id="op1",
            office_id="o1",
            tracking_no="SQ-1",
            mark=MarkKind.KEY,
            marked=True,
            generation=0,
            by="x",
            reason="",
            marked_at=DECEMBER,
            changed_at=DECEMBER,
        )
