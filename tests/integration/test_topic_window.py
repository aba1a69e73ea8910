"""专题 storage on the real store with two routing replicas: a day's opinions are kept in parts
of ``DAY_PART``, each batch writes only its day's last part, and two replicas taking turns —
each with its own live index — group exactly as the offline ``detect`` does in time order. A
redelivered batch changes nothing; a staff merge in one replica reaches the other's index."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from services.routing import adapters
from services.routing.main import RoutingSettings, topic_ports
from services.routing.topics import handlers
from services.routing.topics.domain import MIN_MEMBERS, detect, entry_of
from services.routing.topics.handlers import TopicPorts
from shared.events import Location, OpinionReceived
from shared.messaging import EventBus
from shared.settings import Settings
from shared.store import Document
from tests.routing_samples import samples

# Noon UTC: all of them on one UTC day, whatever the machine's zone.
DAY = datetime(2026, 10, 1, 12, tzinfo=UTC)
PART = 7


def opinions(count: int) -> list[OpinionReceived]:
    """``count`` opinions of the samples' three matters, a minute apart, in one district."""
    rows = samples(count // 3 + 1)
    return [
        OpinionReceived(
            opinion_id=f"op-{n:03d}",
            tracking_no=f"SQ-2026-{n:06d}",
            office_id="office-a",
            title=row.title,
            content=row.content,
            channel="热线",
            submitter_kind="群众",
            location=Location(district="示范区", street=f"第{n % 4}街道"),
            received_at=DAY + timedelta(minutes=n),
        )
        for n, row in enumerate(rows[:count])
    ]


async def replicas(
    isolated: Settings, mongo: AsyncMongoClient[Document], make_bus: Callable[[str], EventBus]
) -> tuple[TopicPorts, TopicPorts]:
    """Two routing processes' 专题 ports on one database, as two replicas have them."""
    db = mongo[isolated.database("routing")]
    made = []
    for _ in range(2):
        bus = make_bus("routing")
        await bus.start()
        made.append(topic_ports(db, bus, RoutingSettings()))
    return made[0], made[1]


async def stored_groups(ports: TopicPorts, ids: list[str]) -> dict[str, set[str]]:
    """Topic id → members, of the topics these opinions are in."""
    found: dict[str, set[str]] = {}
    for opinion_id in ids:
        part = await ports.window.day_holding(opinion_id)
        assert part is not None, opinion_id
        group = part.entries[opinion_id].topic
        topic = await ports.topics.get(group)
        if topic is not None and topic.members:
            found[group] = set(topic.members)
    return found


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adapters, "DAY_PART", PART)


async def test_two_replicas_taking_turns_group_as_detect_does_in_parts_of_a_day(
    isolated: Settings,
    mongo: AsyncMongoClient[Document],
    make_bus: Callable[[str], EventBus],
    small_parts: None,
) -> None:
    a, b = await replicas(isolated, mongo, make_bus)
    arriving = opinions(45)
    # Batches of 1 to 5, to the replicas in turn: each finds the other's opinions on the part.
    start, turn = 0, 0
    while start < len(arriving):
        size = turn % 5 + 1
        await handlers.take_opinions(arriving[start : start + size], (a, b)[turn % 2])
        start, turn = start + size, turn + 1

    expected = detect(
        entry_of(
            o.opinion_id,
            o.title,
            o.content,
            o.received_at,
            district=o.location.district,
            street=o.location.street,
        )
        for o in arriving
    )
    assert len(expected) >= 3
    ids = [o.opinion_id for o in arriving]
    groups = await stored_groups(a, ids)
    assert groups == {t.id: set(t.members) for t in expected}

    # The day is stored in parts, none much beyond PART (a batch may finish the last one).
    day = adapters.TopicWindow.day_of(DAY)
    parts = await a.window._parts_from(day)
    assert [p.id for p in parts][:3] == [day, f"{day}:1", f"{day}:2"]
    assert sorted(o for p in parts for o in p.entries) == ids
    assert all(len(p.entries) < PART + 5 for p in parts)

    # A batch redelivered to the other replica changes nothing.
    await handlers.take_opinions(arriving[10:20], b)
    assert [len(p.entries) for p in await a.window._parts_from(day)] == [
        len(p.entries) for p in parts
    ]
    assert await stored_groups(b, ids) == groups


async def test_a_merge_in_one_replica_regroups_the_other_replicas_index(
    isolated: Settings,
    mongo: AsyncMongoClient[Document],
    make_bus: Callable[[str], EventBus],
    small_parts: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(adapters, "MOVES_CHECKED_EVERY", timedelta(0))
    a, b = await replicas(isolated, mongo, make_bus)
    arriving = opinions(24)
    await handlers.take_opinions(arriving, b)
    groups = await stored_groups(a, [o.opinion_id for o in arriving])
    big = sorted(groups, key=lambda t: -len(groups[t]))
    assert len(big) >= 2 and all(len(groups[t]) >= MIN_MEMBERS for t in big[:2])
    into, away = big[0], big[1]

    await handlers.merge(into, [away], a)

    # B's next opinion, worded as a member of the merged-away topic, joins the topic it went
    # into: nothing is added to the merged-away one (B's index held its members there).
    model = next(o for o in arriving if o.opinion_id in groups[away])
    again = model.model_copy(
        update={"opinion_id": "op-again", "received_at": model.received_at + timedelta(hours=2)}
    )
    await handlers.take_opinions([again], b)
    after = await stored_groups(b, [o.opinion_id for o in arriving] + ["op-again"])
    assert away not in after
    assert groups[away] | groups[into] | {"op-again"} == after[into]
