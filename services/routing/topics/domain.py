"""专题 — hot topics. Pure grouping and heat, no I/O.

An opinion becomes an :class:`Entry` (its words, the districts it names or was registered in,
its street, time, likes and 附议 count). A :class:`TopicIndex` holds the entries of the sliding
window (default 30 days) and assigns each new entry to the group holding its most similar
entry — cosine similarity of TF-IDF word vectors, document frequencies taken from the window
itself — when that similarity reaches ``threshold`` and the two name no different districts;
otherwise the entry starts a group of its own. A group of two or more is a topic.

The service and ``minyi topics detect`` both feed entries through the same index in time order.
"""

import heapq
import itertools
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import rjieba
from pydantic import BaseModel, Field

from shared.events import TopicDetected, TopicEvent, TopicHeated, TopicUpdated
from shared.store import Aggregate

from ..classifier import normalize_text

WINDOW = timedelta(days=30)
# Similarity (cosine) an opinion needs to its closest member to join a group.
THRESHOLD = 0.3
# Words shared by more than this share of the window are not used to find candidates (they are
# still counted in the similarity, with their small IDF weight).
COMMON_SHARE = 0.05
TITLE_WEIGHT = 2
# How many of a group's closest members a new opinion is compared with.
LINKS = 3
CONTENT_CHARS = 600
# "Recent" for the growth part of heat.
GROWTH_SPAN = timedelta(days=7)
KEYWORDS = 6
REPRESENTATIVES = 3

# Words of the genre (how citizens write to the government), not of any matter.
GENRE_WORDS = frozenset(
    {
        "关于",
        "反映",
        "投诉",
        "建议",
        "咨询",
        "请问",
        "问题",
        "希望",
        "要求",
        "请求",
        "恳请",
        "强烈",
        "有关",
        "相关",
        "部门",
        "领导",
        "政府",
        "我们",
        "你们",
        "他们",
        "自己",
        "这个",
        "那个",
        "这些",
        "那些",
        "什么",
        "怎么",
        "如何",
        "为什么",
        "是否",
        "没有",
        "已经",
        "现在",
        "一直",
        "目前",
        "可以",
        "能够",
        "进行",
        "存在",
        "情况",
        "一个",
        "一下",
        "还是",
        "但是",
        "因为",
        "所以",
        "而且",
        "并且",
        "以及",
        "如果",
        "虽然",
        "非常",
        "严重",
        "一些",
        "很多",
        "市民",
        "居民",
        "业主",
        "百姓",
        "老百姓",
        "群众",
        "本人",
        "谢谢",
        "感谢",
        "您好",
        "你好",
        "尊敬",
        "尽快",
        "解决",
        "处理",
        "落实",
        "回复",
        "答复",
        "时候",
        "今年",
        "去年",
        "每天",
        "不能",
        "不是",
        "就是",
    }
)
# Parts of speech (jieba tags) that name the matter: nouns, verbal nouns, abbreviations,
# idioms and fixed phrases, Latin letters and codes.
MATTER_TAGS = ("n", "vn", "j", "eng", "l", "i")
_CODED_DISTRICT = re.compile(r"(?<![a-z0-9])([a-z]\d{1,2}[区县])")


def tagged_words(text: str) -> list[tuple[str, str]]:
    return [(w.strip(), tag) for w, tag in rjieba.tag(normalize_text(text)) if w.strip()]


def words(tagged: list[tuple[str, str]]) -> list[str]:
    """The matter-bearing words: nouns (places, names, things), verbal nouns, abbreviations
    and Latin/digit codes (110kv, a5) of two characters or more, not a word of the genre, and
    usable as a document key (no ``.``, no leading ``$``)."""
    return [
        word
        for word, tag in tagged
        if tag.startswith(MATTER_TAGS)
        and len(word) >= 2
        and word not in GENRE_WORDS
        and not word.isdigit()
        and "." not in word
        and not word.startswith("$")
    ]


def districts_named(tagged: list[tuple[str, str]]) -> set[str]:
    """Districts the text names: a place name ending in 区 or 县, a place name or code
    followed by 区 or 县 as a word of its own (小区, 社区 … are one word and no district), or a
    letter-and-number code before 区 or 县."""
    named = {w for w, tag in tagged if tag == "ns" and len(w) >= 3 and w.endswith(("区", "县"))}
    # A coded district (a5区) that segmentation glued to the next word (a5 + 区梅).
    named.update(_CODED_DISTRICT.findall("".join(w for w, _ in tagged)))
    for (prev, tag), (word, _) in itertools.pairwise(tagged):
        if word in ("区", "县") and tag in ("ns", "eng", "m"):
            named.add(prev + word)
    return named


class Entry(BaseModel):
    """One opinion as grouping sees it."""

    opinion_id: str
    title: str
    at: datetime
    terms: dict[str, int]
    districts: list[str]
    street: str | None = None
    likes: int = 0
    supporters: int = 0


def entry_of(
    opinion_id: str,
    title: str,
    content: str,
    at: datetime,
    district: str | None = None,
    street: str | None = None,
    likes: int = 0,
) -> Entry:
    """An entry from an opinion's text; the title counts ``TITLE_WEIGHT`` times."""
    terms: Counter[str] = Counter()
    head, body = tagged_words(title), tagged_words(content[:CONTENT_CHARS])
    for word in words(head):
        terms[word] += TITLE_WEIGHT
    terms.update(words(body))
    named = districts_named(head) | districts_named(body)
    if district:
        named.add(normalize_text(district))
    return Entry(
        opinion_id=opinion_id,
        title=title,
        at=at,
        terms=dict(terms),
        districts=sorted(named),
        street=street,
        likes=likes,
    )


def same_place(a: Entry, b: Entry) -> bool:
    """No different districts: both name none, or they share one."""
    return not a.districts or not b.districts or not set(a.districts).isdisjoint(b.districts)


@dataclass
class TopicIndex:
    """The window's entries, their word statistics and which group each belongs to."""

    window: timedelta = WINDOW
    threshold: float = THRESHOLD
    entries: dict[str, Entry] = field(default_factory=dict)
    group_of: dict[str, str] = field(default_factory=dict)
    # Each entry's unit TF-IDF vector, weighted by the window as it was when it was added.
    vectors: dict[str, dict[str, float]] = field(default_factory=dict)
    postings: dict[str, set[str]] = field(default_factory=dict)
    df: Counter[str] = field(default_factory=Counter)
    # The districts each group's members name, with how many members name each.
    places: dict[str, Counter[str]] = field(default_factory=dict)
    # Each group's members.
    groups: dict[str, set[str]] = field(default_factory=dict)
    # (time, id) of the entries, oldest first: expiring looks only at the oldest, not at all.
    by_time: list[tuple[datetime, str]] = field(default_factory=list)

    def idf(self, term: str) -> float:
        return math.log((len(self.entries) + 1) / (self.df[term] + 1)) + 1

    def vector(self, entry: Entry) -> dict[str, float]:
        weights = {t: (1 + math.log(n)) * self.idf(t) for t, n in entry.terms.items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        return {t: w / norm for t, w in weights.items()}

    def similar(self, entry: Entry) -> dict[str, float]:
        """Cosine similarity of ``entry`` to the window's entries sharing an uncommon word."""
        common = max(5.0, COMMON_SHARE * len(self.entries))
        candidates: set[str] = set()
        for term in entry.terms:
            if self.df[term] <= common:
                candidates.update(self.postings.get(term, ()))
        mine = self.vector(entry)
        scores = {}
        for other_id in candidates:
            theirs = self.vectors[other_id]
            scores[other_id] = sum(w * theirs.get(t, 0.0) for t, w in mine.items())
        return scores

    def expire(self, now: datetime) -> list[str]:
        """Drop the entries older than the window before ``now``; returns their ids."""
        since = now - self.window
        gone = []
        while self.by_time and self.by_time[0][0] < since:
            at, eid = heapq.heappop(self.by_time)
            # An entry removed, or added again, since it was pushed is not this item's to drop.
            entry = self.entries.get(eid)
            if entry is not None and entry.at == at:
                self.remove(eid)
                gone.append(eid)
        return gone

    def remove(self, opinion_id: str) -> None:
        entry = self.entries.pop(opinion_id, None)
        if entry is None:
            return
        group = self.group_of.pop(opinion_id)
        self.places[group].subtract(entry.districts)
        self.groups[group].discard(opinion_id)
        if not self.groups[group]:
            del self.groups[group], self.places[group]
        del self.vectors[opinion_id]
        for term in entry.terms:
            self.df[term] -= 1
            posting = self.postings[term]
            posting.discard(opinion_id)
            if not posting:
                del self.postings[term]
                del self.df[term]

    def add(self, entry: Entry, group: str) -> None:
        """Index ``entry`` as a member of ``group`` (known entries keep their place)."""
        self.entries[entry.opinion_id] = entry
        self.group_of[entry.opinion_id] = group
        for term in entry.terms:
            self.df[term] += 1
            self.postings.setdefault(term, set()).add(entry.opinion_id)
        self.vectors[entry.opinion_id] = self.vector(entry)
        self.places.setdefault(group, Counter()).update(entry.districts)
        self.groups.setdefault(group, set()).add(entry.opinion_id)
        heapq.heappush(self.by_time, (entry.at, entry.opinion_id))

    def regroup(self, opinion_id: str, group: str) -> None:
        """Staff moved the entry to ``group`` (merge, split); an unknown one is left alone."""
        entry = self.entries.get(opinion_id)
        if entry is not None and self.group_of[opinion_id] != group:
            self.remove(opinion_id)
            self.add(entry, group)

    def members(self, group: str) -> list[Entry]:
        return [self.entries[o] for o in self.groups.get(group, ())]

    def fits_place(self, entry: Entry, group: str) -> bool:
        """The group names no district, the entry names none, or they share one."""
        named = {d for d, n in self.places.get(group, Counter()).items() if n > 0}
        return not named or not entry.districts or not named.isdisjoint(entry.districts)

    def match(self, entry: Entry) -> tuple[str, float] | None:
        """The group ``entry`` belongs to and how close it is there, or None if no group of
        the same place is close enough. Closeness to a group is the mean similarity to its
        ``LINKS`` closest members (all of them in a smaller group): one look-alike member is
        not enough to join a larger group, which keeps groups from chaining into others."""
        by_group: dict[str, list[float]] = {}
        for other_id, score in self.similar(entry).items():
            if other_id != entry.opinion_id and same_place(entry, self.entries[other_id]):
                by_group.setdefault(self.group_of[other_id], []).append(score)
        best: tuple[str, float] | None = None
        for group, scores in by_group.items():
            links = min(LINKS, len(self.groups[group]))
            closeness = sum(sorted(scores, reverse=True)[:links]) / links
            closer = best is None or closeness > best[1]
            if closeness >= self.threshold and closer and self.fits_place(entry, group):
                best = (group, closeness)
        return best

    def assign(self, entry: Entry, new_group: str) -> str:
        """Expire the window up to ``entry``, put it in its group (``new_group`` when none
        fits) and return the group."""
        self.expire(entry.at)
        if entry.opinion_id in self.entries:
            return self.group_of[entry.opinion_id]
        found = self.match(entry)
        group = new_group if found is None else found[0]
        self.add(entry, group)
        return group


@dataclass(frozen=True)
class Heat:
    """热度 and what it is made of."""

    value: float
    members: int
    supporters: int
    likes: int
    streets: int
    recent: int


def heat_of(members: Iterable[Entry]) -> Heat:
    """热度 = members + ½·附议 + ln(1 + likes) + (streets − 1) + ½·members of the last 7 days
    before the latest one (growth). Each opinion counts once; 附议 and likes are support that
    costs the public less than writing, so they weigh less and likes only logarithmically."""
    items = list(members)
    if not items:
        return Heat(0.0, 0, 0, 0, 0, 0)
    latest = max(e.at for e in items)
    supporters = sum(e.supporters for e in items)
    likes = sum(e.likes for e in items)
    streets = len({e.street for e in items if e.street})
    recent = sum(1 for e in items if e.at > latest - GROWTH_SPAN)
    value = len(items) + 0.5 * supporters + math.log1p(likes) + max(streets - 1, 0) + 0.5 * recent
    return Heat(round(value, 2), len(items), supporters, likes, streets, recent)


@dataclass(frozen=True)
class Summary:
    """What a topic shows: label, keywords and representative opinions (closest to its centre
    first), heat and when it was first and last seen."""

    label: str
    keywords: list[str]
    representatives: list[str]
    heat: Heat
    first_seen: datetime
    last_seen: datetime


def summarise(members: list[Entry]) -> Summary:
    """Label = the title of the member closest to the topic's centre (by word weight)."""
    centre: defaultdict[str, float] = defaultdict(float)
    df: Counter[str] = Counter()
    for e in members:
        df.update(e.terms.keys())
        for term, n in e.terms.items():
            centre[term] += 1 + math.log(n)
    # Words the members share rank above one member's repeated ones.
    keywords = [t for t, _ in sorted(centre.items(), key=lambda kv: (-df[kv[0]], -kv[1]))]

    def closeness(e: Entry) -> float:
        return sum(centre[t] for t in e.terms) / math.sqrt(len(e.terms) or 1)

    ranked = sorted(members, key=lambda e: (-closeness(e), e.at, e.opinion_id))
    return Summary(
        label=ranked[0].title,
        keywords=keywords[:KEYWORDS],
        representatives=[e.opinion_id for e in ranked[:REPRESENTATIVES]],
        heat=heat_of(members),
        first_seen=min(e.at for e in members),
        last_seen=max(e.at for e in members),
    )


MIN_MEMBERS = 2
# Opinions per stored part of a day. The store rewrites a whole document for each change, and a
# batch changes only the last part of its day: its cost no longer grows with the day.
DAY_PART = 100
TIME_FORMATS = ("%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class DetectedTopic:
    id: str
    summary: Summary
    members: list[str]


def detect(
    entries: Iterable[Entry], window: timedelta = WINDOW, threshold: float = THRESHOLD
) -> list[DetectedTopic]:
    """Feed ``entries`` through one index in time order, as the service does as they arrive;
    the topics (groups of ``MIN_MEMBERS`` or more), hottest first. A topic's id is ``T`` and
    its first member's id."""
    index = TopicIndex(window=window, threshold=threshold)
    groups: dict[str, list[Entry]] = {}
    for entry in sorted(entries, key=lambda e: (e.at, e.opinion_id)):
        group = index.assign(entry, new_group=f"T{entry.opinion_id}")
        groups.setdefault(group, []).append(entry)
    found = [
        DetectedTopic(group, summarise(members), [e.opinion_id for e in members])
        for group, members in groups.items()
        if len(members) >= MIN_MEMBERS
    ]
    return sorted(found, key=lambda t: (-t.summary.heat.value, t.id))


class OpinionFileError(ValueError):
    """A CSV of opinions that cannot be read; ``problems`` name each bad row or column."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_time(text: str) -> datetime:
    for fmt in TIME_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
    return datetime.fromisoformat(text.strip())


def entries_from_csv(rows: Iterable[dict[str, str]], columns: list[str]) -> list[Entry]:
    """Entries from CSV rows with ``id, title, content, time`` and optionally ``likes``."""
    missing = [c for c in ("id", "title", "content", "time") if c not in columns]
    if missing:
        raise OpinionFileError([f"缺少列 / missing columns: {', '.join(missing)}"])
    entries, bad = [], []
    for line, row in enumerate(rows, start=2):
        try:
            at = parse_time(row["time"] or "")
            likes = int(row.get("likes") or 0)
            if not row["id"] or not (row["title"] or row["content"]) or likes < 0:
                raise ValueError
        except (ValueError, TypeError):
            bad.append(line)
            continue
        entries.append(
            entry_of(row["id"], row["title"] or "", row["content"] or "", at, likes=likes)
        )
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" …" if len(bad) > 10 else "")
        raise OpinionFileError(
            [
                f"{len(bad)} 行的 id、内容、时间或点赞数有误 / "
                f"rows with a bad id, text, time or likes: {shown}"
            ]
        )
    return entries


# -- the stored topic (专题) ------------------------------------------------------------------


class Topic(Aggregate):
    """A topic as staff see and curate it. ``name`` (staff's) overrides the detected label;
    pinned topics come first on the board. A merged topic keeps its id, pointing to where its
    members went."""

    members: dict[str, Entry] = Field(default_factory=dict)
    name: str | None = None
    pinned: bool = False
    label: str = ""
    keywords: list[str] = Field(default_factory=list)
    representatives: list[str] = Field(default_factory=list)
    heat: float = 0.0
    heat_parts: dict[str, int] = Field(default_factory=dict)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    # Supervisors were told it crossed the heat threshold (told once).
    heated: bool = False
    merged_into: str | None = None

    def shown_label(self) -> str:
        return self.name or self.label

    def refresh(self) -> None:
        """Label, keywords, representatives, heat and first/last seen from the members."""
        if not self.members:
            self.keywords, self.representatives, self.heat, self.heat_parts = [], [], 0.0, {}
            return
        summary = summarise(list(self.members.values()))
        heat = summary.heat
        self.label, self.keywords = summary.label, summary.keywords
        self.representatives = summary.representatives
        self.heat = heat.value
        self.heat_parts = {
            "members": heat.members,
            "supporters": heat.supporters,
            "likes": heat.likes,
            "streets": heat.streets,
            "recent": heat.recent,
        }
        self.first_seen, self.last_seen = summary.first_seen, summary.last_seen

    def _event(self, kind: type[TopicEvent], opinion_id: str, **extra: object) -> TopicEvent:
        assert self.first_seen is not None and self.last_seen is not None
        return kind(
            opinion_id=opinion_id,
            topic_id=self.id,
            label=self.shown_label(),
            keywords=self.keywords,
            heat=self.heat,
            members=len(self.members),
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            **extra,
        )

    def changed(self, opinion_id: str, change: str, threshold: float) -> list[TopicEvent]:
        """Refresh, and the events saying so: detected (a new topic) or updated, and heated
        the first time the heat reaches ``threshold``."""
        self.refresh()
        events = [
            self._event(TopicDetected, opinion_id)
            if change == "detected"
            else self._event(TopicUpdated, opinion_id, change=change)
        ]
        if not self.heated and self.heat >= threshold and self.merged_into is None:
            self.heated = True
            events.append(self._event(TopicHeated, opinion_id, threshold=threshold))
        return events


class DayEntry(BaseModel):
    """An opinion of the day, its topic (or loose group) and who supported it (附议)."""

    entry: Entry
    topic: str
    backers: dict[str, bool] = Field(default_factory=dict)

    def counted(self) -> Entry:
        return self.entry.model_copy(update={"supporters": len(self.backers)})


class TopicDay(Aggregate):
    """A part of one UTC day of the window: up to ``DAY_PART`` of its opinions as grouping sees
    them (``_id`` = the date for a day's first part, ``<date>:<n>`` for the next). New opinions
    go to a day's last part, saved with a version, so two batches of one day are grouped one
    after the other."""

    entries: dict[str, DayEntry] = Field(default_factory=dict)


def board_row(topic: Topic) -> dict[str, object]:
    """What the board (专题看板) lists of a topic."""
    return {
        "label": topic.shown_label(),
        "heat": topic.heat,
        "members": len(topic.members),
        "pinned": topic.pinned,
        "keywords": topic.keywords,
        "first_seen": topic.first_seen,
        "last_seen": topic.last_seen,
    }
