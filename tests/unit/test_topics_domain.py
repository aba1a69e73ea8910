"""专题 grouping and heat, without I/O: the same matter in the same place groups, another
district or another matter does not, the window forgets, heat counts what it says, a topic
tells supervisors once, and bad CSV rows are named."""

from datetime import UTC, datetime, timedelta

import pytest

from services.routing.topics.domain import (
    OpinionFileError,
    Topic,
    TopicIndex,
    detect,
    districts_named,
    entries_from_csv,
    entry_of,
    heat_of,
    tagged_words,
)

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)
LAMP = ("和平路路灯不亮", "和平路多盏路灯夜间不亮，行人摸黑走路很危险。")
BUS = ("公交站台顶棚破损", "人民路公交站台顶棚破损漏雨，候车乘客淋雨。")


def test_same_matter_same_place_groups_and_another_matter_does_not() -> None:
    entries = [
        entry_of("a", *LAMP, T0, district="示范区"),
        entry_of(
            "b", LAMP[0] + "的问题", "反映" + LAMP[1], T0 + timedelta(days=2), district="示范区"
        ),
        entry_of("c", *BUS, T0 + timedelta(days=3), district="示范区"),
    ]
    [topic] = detect(entries)
    assert topic.members == ["a", "b"] and topic.id == "Ta"
    assert "路灯" in topic.summary.keywords
    assert topic.summary.first_seen == T0


def test_another_district_or_beyond_the_window_starts_anew() -> None:
    index = TopicIndex(window=timedelta(days=30))
    assert index.assign(entry_of("a", *LAMP, T0, district="示范区"), "Ta") == "Ta"
    other_district = entry_of("b", *LAMP, T0 + timedelta(days=1), district="和平区")
    assert index.assign(other_district, "Tb") == "Tb"
    same = entry_of("c", *LAMP, T0 + timedelta(days=2), district="示范区")
    assert index.assign(same, "Tc") == "Ta"
    # Forty days on, the first ones have left the window.
    late = entry_of("d", *LAMP, T0 + timedelta(days=40), district="示范区")
    assert index.assign(late, "Td") == "Td"
    assert set(index.entries) == {"d"}


def test_districts_are_read_from_the_words_not_from_xiaoqu() -> None:
    named = districts_named(tagged_words("A5区魅力之城小区油烟扰民，社区不管"))
    assert named == {"a5区"}


def test_heat_counts_members_supporters_likes_streets_and_growth() -> None:
    a = entry_of("a", *LAMP, T0, street="和平街道", likes=0)
    b = entry_of("b", *LAMP, T0 + timedelta(days=10), street="光明街道", likes=20)
    b.supporters = 2
    heat = heat_of([a, b])
    # 2 members + ½·2 附议 + ln(21) + (2 streets − 1) + ½·1 in the last 7 days
    assert heat.value == pytest.approx(2 + 1 + 3.0445 + 1 + 0.5, abs=0.01)
    assert (heat.members, heat.supporters, heat.likes, heat.streets, heat.recent) == (
        2,
        2,
        20,
        2,
        1,
    )


def test_a_topic_tells_once_when_it_crosses_the_threshold() -> None:
    members = {e.opinion_id: e for e in (entry_of(i, *LAMP, T0) for i in "ab")}
    topic = Topic(id="Ta", members=members)
    first = topic.changed("b", "detected", threshold=4.0)
    assert [e.name for e in first] == ["topic.detected"]
    topic.members["c"] = entry_of("c", *LAMP, T0, street="光明街道")
    topic.members["d"] = entry_of("d", *LAMP, T0, street="和平街道")
    second = topic.changed("d", "joined", threshold=4.0)
    assert [e.name for e in second] == ["topic.updated", "topic.heated"]
    assert second[1].heat >= 4.0 and second[1].subject() == "Ta"
    topic.name = "和平路路灯"
    third = topic.changed("", "named", threshold=4.0)
    assert [e.name for e in third] == ["topic.updated"] and third[0].label == "和平路路灯"


def test_csv_rows_are_checked() -> None:
    with pytest.raises(OpinionFileError, match="missing columns: time"):
        entries_from_csv([], ["id", "title", "content"])
    rows = [
        {"id": "1", "title": "t", "content": "c", "time": "2019/2/28 11:25:05", "likes": "3"},
        {"id": "2", "title": "t", "content": "c", "time": "yesterday"},
        {"id": "3", "title": "t", "content": "c", "time": "2019-02-28 11:25:05", "likes": "-1"},
    ]
    with pytest.raises(OpinionFileError, match="rows with a bad id, text, time or likes: 3, 4"):
        entries_from_csv(rows, ["id", "title", "content", "time", "likes"])
    [ok] = entries_from_csv(rows[:1], ["id", "title", "content", "time", "likes"])
    assert ok.likes == 3 and ok.at == datetime(2019, 2, 28, 11, 25, 5)


def test_a_regrouped_entry_moves_with_its_place_and_still_leaves_the_window_once() -> None:
    index = TopicIndex(window=timedelta(days=30))
    index.assign(entry_of("a", *LAMP, T0, district="示范区"), "Ta")
    index.assign(entry_of("b", *LAMP, T0 + timedelta(days=1), district="示范区"), "Tb")
    index.assign(entry_of("c", *BUS, T0 + timedelta(days=2), district="示范区"), "Tc")
    assert sorted(e.opinion_id for e in index.members("Ta")) == ["a", "b"]
    # 合并: staff moved the bus opinion into the lamp topic.
    index.regroup("c", "Ta")
    assert sorted(e.opinion_id for e in index.members("Ta")) == ["a", "b", "c"]
    assert index.members("Tc") == [] and "Tc" not in index.places
    # Thirty days after the first: only it leaves, once, though "c" was indexed twice.
    late = entry_of("d", *BUS, T0 + timedelta(days=30, hours=1), district="示范区")
    assert index.expire(late.at) == ["a"]
    assert index.expire(late.at) == []
    assert sorted(index.entries) == ["b", "c"]
    assert index.expire(T0 + timedelta(days=40)) == ["b", "c"] and not index.groups
