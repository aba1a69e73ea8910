"""专题 use cases: take an arriving opinion or 附议 into its topic, and staff's naming,
pinning, merging and splitting."""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from shared.events import CloudEvent, EventData, OpinionReceived, OpinionSupported, new_id
from shared.store import Repository, VersionConflict, retry_on_conflict

from ..adapters import TopicWindow
from .domain import (
    MIN_MEMBERS,
    THRESHOLD,
    WINDOW,
    DayEntry,
    Entry,
    Topic,
    TopicIndex,
    entry_of,
)

SOURCE = "/minyi/routing"


class TopicError(Exception):
    """A request on topics refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, detail: str, field: str | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field


@dataclass
class TopicPorts:
    topics: Repository[Topic]
    window: TopicWindow
    span: timedelta = WINDOW
    threshold: float = THRESHOLD
    # 热度 at which supervisors are told about a topic (topic.heated).
    heat_alert: float = 10.0


def _wrap(events: Sequence[EventData]) -> list[CloudEvent]:
    return [CloudEvent.wrap(SOURCE, e) for e in events]


def _entry(opinion: OpinionReceived) -> Entry:
    return entry_of(
        opinion.opinion_id,
        opinion.title,
        opinion.content,
        opinion.received_at,
        district=opinion.location.district,
        street=opinion.location.street,
    )


async def take_opinions(opinions: Sequence[OpinionReceived], ports: TopicPorts) -> None:
    """Put each new opinion in the group of its closest like (same matter, same place) within
    the window, in time order; a group of two becomes a topic (topic.detected), a topic that
    grows says so (topic.updated). Opinions of one day are grouped one batch at a time (the day
    is saved with a version); a redelivered opinion keeps its stored place and changes nothing
    twice."""
    by_day: dict[str, list[Entry]] = {}
    for opinion in opinions:
        entry = _entry(opinion)
        by_day.setdefault(ports.window.day_of(entry.at), []).append(entry)
    for _, entries in sorted(by_day.items()):
        await _take_day(sorted(entries, key=lambda e: (e.at, e.opinion_id)), ports)


async def _take_day(entries: list[Entry], ports: TopicPorts) -> None:
    fresh: list[str] = []

    async def place() -> TopicIndex:
        index, part = await ports.window.open(entries[0].at, ports.span, ports.threshold)
        fresh.clear()
        try:
            for entry in entries:
                # In the index means stored already (a redelivery): it keeps its group.
                stored = entry.opinion_id in index.entries
                group = index.assign(entry, new_group=f"T{entry.opinion_id}")
                if not stored:
                    part.entries[entry.opinion_id] = DayEntry(entry=entry, topic=group)
                    fresh.append(entry.opinion_id)
            if fresh:
                await ports.window.save(part, fresh)
        except BaseException:
            ports.window.undo(part, fresh)
            raise
        return index

    index = await retry_on_conflict(place)
    # Each group the batch touched, once, named after its latest opinion of the batch.
    touched = {index.group_of[e.opinion_id]: e.opinion_id for e in entries}
    for group, latest in touched.items():
        members = index.members(group)
        # A group this batch began that is still alone has no topic to read.
        if len(members) < MIN_MEMBERS and index.groups[group] <= set(fresh):
            continue
        await _join(group, members, latest, ports)


class TopicIntake:
    """Group commit: opinions that arrive while a batch is being grouped wait and go together
    in the next one — one window read, one day save and one save per topic for the lot, instead
    of each opinion contending for the same day. Each caller returns (and its message is acked)
    only once its opinion is stored; a failed batch fails each of its callers (redelivered)."""

    def __init__(self, ports: TopicPorts, most: int = 200) -> None:
        self.ports = ports
        self.most = most
        self.waiting: list[tuple[OpinionReceived, asyncio.Future[None]]] = []
        self.drainer: asyncio.Task[None] | None = None

    async def take(self, opinion: OpinionReceived) -> None:
        done = asyncio.get_running_loop().create_future()
        self.waiting.append((opinion, done))
        # A drainer finds the waiting list empty and ends in one step, with no await between.
        if self.drainer is None or self.drainer.done():
            self.drainer = asyncio.create_task(self._drain())
        await done

    async def _drain(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting[: self.most], self.waiting[self.most :]
            try:
                await take_opinions([opinion for opinion, _ in batch], self.ports)
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)


async def _join(topic_id: str, members: list[Entry], opinion_id: str, ports: TopicPorts) -> None:
    """Add ``members`` to the topic (making it when there are enough of them)."""

    async def change() -> Topic | None:
        topic = await ports.topics.get(topic_id)
        if topic is None:
            if len(members) < MIN_MEMBERS:
                return None
            topic = Topic(id=topic_id, members={m.opinion_id: m for m in members})
            events = topic.changed(opinion_id, "detected", ports.heat_alert)
            if not await ports.topics.add(topic, _wrap(events)):
                raise VersionConflict(f"topic {topic_id} was made concurrently")
            return topic
        fresh = [m for m in members if m.opinion_id not in topic.members]
        if not fresh:
            return topic
        topic.members.update({m.opinion_id: m for m in fresh})
        await ports.topics.save(topic, _wrap(topic.changed(opinion_id, "joined", ports.heat_alert)))
        return topic

    topic = await retry_on_conflict(change)
    if topic is not None:
        await ports.window.show(topic)


async def take_support(supported: OpinionSupported, ports: TopicPorts) -> None:
    """附议: the supported opinion's topic grows warmer. Counted once per supporting item."""

    async def back() -> tuple[Entry, str] | None:
        day = await ports.window.day_holding(supported.opinion_id)
        stored = None if day is None else day.entries.get(supported.opinion_id)
        if day is None or stored is None:
            return None
        if supported.supporter_id not in stored.backers:
            stored.backers[supported.supporter_id] = True
            await ports.window.save(day, [])
        return stored.counted(), stored.topic

    found = await retry_on_conflict(back)
    if found is None:
        return
    entry, topic_id = found

    async def change() -> Topic | None:
        topic = await ports.topics.get(topic_id)
        member = None if topic is None else topic.members.get(entry.opinion_id)
        if topic is None or member is None or member.supporters >= entry.supporters:
            return None
        member.supporters = entry.supporters
        await ports.topics.save(
            topic, _wrap(topic.changed(entry.opinion_id, "supported", ports.heat_alert))
        )
        return topic

    if (topic := await retry_on_conflict(change)) is not None:
        await ports.window.show(topic)


async def _curated(ports: TopicPorts, topic_id: str) -> Topic:
    topic = await ports.topics.get(topic_id)
    if topic is None:
        raise TopicError(404, f"没有专题 {topic_id} / no topic {topic_id}")
    if topic.merged_into is not None:
        raise TopicError(
            409, f"专题 {topic_id} 已并入 {topic.merged_into} / merged into {topic.merged_into}"
        )
    return topic


async def curate(
    topic_id: str, name: str | None, pinned: bool | None, clear_name: bool, ports: TopicPorts
) -> Topic:
    """Staff name (命名) or pin (置顶) a topic."""

    async def change() -> Topic:
        topic = await _curated(ports, topic_id)
        events: list[EventData] = []
        if clear_name or name is not None:
            topic.name = None if clear_name else name
            events += topic.changed("", "named", ports.heat_alert)
        if pinned is not None and pinned != topic.pinned:
            topic.pinned = pinned
            events += topic.changed("", "pinned", ports.heat_alert)
        await ports.topics.save(topic, _wrap(events))
        return topic

    topic = await retry_on_conflict(change)
    await ports.window.show(topic)
    return topic


async def merge(topic_id: str, others: list[str], ports: TopicPorts) -> Topic:
    """合并: the other topics' opinions join ``topic_id``; the others point to it."""
    if topic_id in others:
        raise TopicError(422, "不能并入自身 / a topic cannot be merged into itself", "topics")
    for other_id in others:
        await _curated(ports, other_id)
    for other_id in others:

        async def take(other_id: str = other_id) -> Topic:
            other = await _curated(ports, other_id)
            members = dict(other.members)
            target = await _curated(ports, topic_id)
            target.members.update(members)
            await ports.topics.save(target, _wrap(target.changed("", "merged", ports.heat_alert)))
            await ports.window.move(list(members), topic_id)
            other.members, other.merged_into = {}, topic_id
            await ports.topics.save(other, _wrap(other.changed("", "merged", ports.heat_alert)))
            await ports.window.show(other)
            return target

        await retry_on_conflict(take)
    target = await _curated(ports, topic_id)
    await ports.window.show(target)
    return target


async def split(topic_id: str, opinion_ids: list[str], ports: TopicPorts) -> Topic:
    """拆分: the named opinions leave the topic for a new one of their own; the new topic."""

    async def change() -> Topic:
        topic = await _curated(ports, topic_id)
        unknown = [o for o in opinion_ids if o not in topic.members]
        if unknown:
            raise TopicError(
                422, f"不属于该专题 / not in the topic: {', '.join(unknown)}", "opinions"
            )
        if len(topic.members) - len(set(opinion_ids)) < 1:
            raise TopicError(422, "至少留下一条意见 / keep at least one opinion", "opinions")
        part = Topic(id=f"T{new_id()}", members={o: topic.members.pop(o) for o in set(opinion_ids)})
        await ports.topics.save(topic, _wrap(topic.changed("", "split", ports.heat_alert)))
        await ports.topics.add(part, _wrap(part.changed("", "detected", ports.heat_alert)))
        await ports.window.move(list(part.members), part.id)
        await ports.window.show(topic)
        await ports.window.show(part)
        return part

    return await retry_on_conflict(change)
