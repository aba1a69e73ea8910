"""Benchmarks of 附议 detection, on real messages (``../shared/data/opinions-dev.csv``):

- ``minyi bench intake-duplicates``: precision and recall of "is a duplicate of" on the
  messages and paraphrased copies of them, and the time to check one new item against
  100,000 open opinions, as a ratio to a brute-force scan in the same run;
- ``minyi bench intake-memory``: an intake process's start-up time (until /ready, which
  waits for the duplicate index) and its memory with 10,000, 50,000 and 100,000 open
  opinions in a store and a vhost of its own (MINYI_BENCH_OPEN: other counts)."""

import asyncio
import csv
import os
import random
import re
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from services.intake.adapters import DuplicateEntries
from services.intake.domain import Opinion, OpinionSubmission, compared_text, tracking_number
from services.intake.duplicates import DuplicateIndex, signature
from services.intake.main import IntakeSettings
from shared import broker_admin
from shared.events import new_id
from shared.settings import Settings, get_settings
from shared.store import drop_databases, mongo_client
from tools.loadtest import _process_usage, _running, progress

# The briefs folder beside the checkout, not part of the project.
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "opinions-dev.csv"
SEED = 7
THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7)
DEFAULT_THRESHOLD = IntakeSettings().duplicate_threshold
OPEN_OPINIONS = 100_000
TIMED_QUERIES = 500

# Rewordings an office clerk or a second citizen would plausibly use for the same complaint.
SYNONYMS = (
    ("希望", "恳请"),
    ("尽快", "早日"),
    ("领导", "有关部门"),
    ("解决", "处理"),
    ("严重", "非常严重"),
    ("居民", "住户"),
    ("小区", "小区里"),
    ("问题", "情况"),
    ("我们", "我们这些"),
    ("政府", "相关政府部门"),
    ("反映", "投诉"),
    ("现在", "目前"),
)
OPENINGS = ("再次反映：", "我也想反映这个问题，", "附议：", "群众来信反映，", "")
CLOSINGS = ("望尽快解决，谢谢！", "请相关部门重视。", "盼复！", "")


def load_messages(path: Path = DATA) -> list[str]:
    """Title and content of each message (some rows have the title inside the content)."""
    with path.open(encoding="utf-8") as f:
        return [f"{r['title']}\n{r['content']}".strip() for r in csv.DictReader(f)]


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[。！？；!?;\n])", text) if s.strip()]


def paraphrase(text: str, rng: random.Random) -> str:
    """A reworded copy: synonyms, a dropped or moved sentence, a new opening and closing,
    sometimes only the first part — two to four of these at random."""
    parts = _sentences(text)

    def reword() -> None:
        for i, part in enumerate(parts):
            for word, other in rng.sample(SYNONYMS, 4):
                part = part.replace(word, other)
            parts[i] = part

    def drop() -> None:
        if len(parts) > 2:
            parts.pop(rng.randrange(1, len(parts)))

    def move() -> None:
        if len(parts) > 2:
            i = rng.randrange(1, len(parts) - 1)
            parts[i], parts[i + 1] = parts[i + 1], parts[i]

    def frame() -> None:
        parts.insert(0, rng.choice(OPENINGS))
        parts.append(rng.choice(CLOSINGS))

    def shorten() -> None:
        keep = max(2, round(len(parts) * 0.7))
        del parts[keep:]

    for change in rng.sample([reword, drop, move, frame, shorten], rng.randint(2, 4)):
        change()
    return "".join(parts)


def _unrelated(messages: list[str], rng: random.Random) -> str:
    """A plausible new complaint made of sentences of three to six different messages."""
    return "".join(rng.choice(_sentences(rng.choice(messages))) for _ in range(rng.randint(3, 6)))


def quality(messages: list[str], rng: random.Random) -> dict[str, Any]:
    """Index 1,000 real messages; query paraphrases of 300 of them (each should find its
    original) and 230 held-out real messages plus paraphrases of them (should find nothing)."""
    order = list(range(len(messages)))
    rng.shuffle(order)
    indexed, held_out = order[:1000], order[1000:]
    now = datetime.now(UTC)
    index = DuplicateIndex(threshold=0.0, window=timedelta(days=30))
    for i in indexed:
        index.add(str(i), messages[i], "district", None, now)
    queries: list[tuple[str, str | None]] = [
        (paraphrase(messages[i], rng), str(i)) for i in rng.sample(indexed, 300)
    ]
    queries += [(messages[i], None) for i in held_out]
    queries += [(paraphrase(messages[i], rng), None) for i in held_out]
    found = [(index.find(text, "district", None, now), expected) for text, expected in queries]
    by_threshold = {}
    positives = sum(1 for _, expected in queries if expected is not None)
    for threshold in THRESHOLDS:
        hits = [(m, e) for m, e in found if m is not None and m.similarity >= threshold]
        true = sum(1 for m, e in hits if m.opinion_id == e)
        by_threshold[str(threshold)] = {
            "precision": round(true / len(hits), 3) if hits else None,
            "recall": round(true / positives, 3),
            "predicted": len(hits),
            "true_positives": true,
        }
    wrong = [
        (messages[int(m.opinion_id)][:40], text[:40], round(m.similarity, 2))
        for (m, e), (text, _) in zip(found, queries, strict=True)
        if m is not None and m.similarity >= DEFAULT_THRESHOLD and m.opinion_id != e
    ]
    return {
        "indexed_real_messages": len(indexed),
        "positive_queries": positives,
        "negative_queries": len(queries) - positives,
        "by_threshold": by_threshold,
        "false_positives_at_default": wrong[:10],
    }


def speed(messages: list[str], rng: random.Random) -> dict[str, Any]:
    """Time ``find`` against 100,000 open opinions, all in one district (the worst case:
    nothing is ruled out by area), against a brute-force comparison with every signature."""
    now = datetime.now(UTC)
    index = DuplicateIndex(threshold=DEFAULT_THRESHOLD, window=timedelta(days=30))
    started = time.perf_counter()
    for i, message in enumerate(messages):
        index.add(f"real-{i}", message, "district", None, now)
    for i in range(OPEN_OPINIONS - len(messages)):
        index.add(f"synthetic-{i}", _unrelated(messages, rng), "district", None, now)
    build_seconds = time.perf_counter() - started
    queries = [paraphrase(rng.choice(messages), rng) for _ in range(TIMED_QUERIES)]
    timings = []
    for text in queries:
        started = time.perf_counter()
        index.find(text, "district", None, now)
        timings.append((time.perf_counter() - started) * 1000)
    # Baseline: compare the new item's signature with every open opinion's (vectorised).
    partition = index.partitions["district"]
    matrix = partition.signatures[: len(partition)]
    baseline = []
    for text in queries[:50]:
        started = time.perf_counter()
        scores = (matrix == signature(text).astype(np.uint16)).mean(axis=1)
        int(np.argmax(scores))
        baseline.append((time.perf_counter() - started) * 1000)
    p50, p95 = statistics.median(timings), float(np.percentile(timings, 95))
    return {
        "open_opinions": len(index),
        "build_seconds": round(build_seconds, 1),
        "find_ms": {"p50": round(p50, 2), "p95": round(p95, 2), "max": round(max(timings), 2)},
        "brute_force_ms_p50": round(statistics.median(baseline), 2),
        "speedup_vs_brute_force": round(statistics.median(baseline) / p50, 1),
        "under_50ms": p95 < 50,
    }


def run(output: Path) -> dict[str, Any]:
    """The ``intake-duplicates`` suite."""
    if not DATA.exists():
        return {"skipped": f"{DATA} not found"}
    messages = load_messages()
    rng = random.Random(SEED)
    return {
        "data": str(DATA.name),
        "messages": len(messages),
        "default_threshold": DEFAULT_THRESHOLD,
        "quality": quality(messages, rng),
        "speed": speed(messages, rng),
    }


MEMORY_PORT = 8015  # the measured intake process
SEED_BATCH = 1000


def _open_opinion(text: str, i: int, now: datetime, rng: random.Random) -> dict[str, Any]:
    """A stored open opinion as intake writes it, received within the last 29 days."""
    text = text.strip() or "公交站台破损"
    submission = OpinionSubmission.model_validate(
        {
            "title": text.split("\n", 1)[0][:100],
            "content": text[:4000],
            "channel": "网络",
            "submitter": {"kind": "群众", "name": "测试", "phone": "13900000000"},
            "location": {"district": f"区{i % 16}", "street": f"街道{i % 400}"},
        }
    )
    opinion = Opinion(
        id=new_id(),
        tracking_no=tracking_number(2026, i + 1),
        office_id="bench",
        received_at=now - timedelta(seconds=rng.uniform(0, 29 * 86400)),
        submission=submission,
    )
    return {**opinion.model_dump(by_alias=True), "version": 1, "outbox": {}}


async def _seed(settings: Settings, messages: list[str], start: int, stop: int) -> None:
    """Store open opinions number ``start`` to ``stop`` (real messages, reworded) with their
    duplicate entries, as intake stores them."""
    rng = random.Random(start)
    now = datetime.now(UTC)
    mongo = mongo_client(settings)
    try:
        db = mongo[settings.database("intake")]
        entries = DuplicateEntries(db)
        for first in range(start, stop, SEED_BATCH):
            docs = [
                _open_opinion(paraphrase(rng.choice(messages), rng), i, now, rng)
                for i in range(first, min(first + SEED_BATCH, stop))
            ]
            await db.opinions.insert_many(docs)
            await asyncio.gather(*(_entry(entries, doc) for doc in docs))
            progress("seeded", first + len(docs) - start, stop - start)
        await entries.mark_built()
    finally:
        await mongo.close()


async def _entry(entries: DuplicateEntries, doc: dict[str, Any]) -> None:
    s, where = doc["submission"], doc["submission"]["location"]
    sig = signature(compared_text(s["title"], s["content"])).tobytes()
    await entries.put(doc["_id"], where["district"], where["street"], doc["received_at"], sig)


async def _start_intake(settings: Settings) -> dict[str, float]:
    """Start an intake process on the seeded store; seconds until ready, and its memory."""
    env = {"MINYI_AMQP_VHOST": settings.amqp_vhost, "MINYI_DB_PREFIX": settings.db_prefix}
    command = {
        "intake-memory": (
            ["tools.cli", "serve", "intake", "--port", str(MEMORY_PORT)],
            f"http://127.0.0.1:{MEMORY_PORT}/ready",
        )
    }
    started = time.perf_counter()
    async with _running(command, {"intake-memory": env}, ready_within=900) as pids:
        seconds = time.perf_counter() - started
        _, rss = _process_usage(pids)["intake-memory"]
    return {"start_up_seconds": round(seconds, 1), "rss_mb": round(rss / 2**20, 1)}


def memory(output: Path) -> dict[str, Any]:
    """The ``intake-memory`` suite."""
    if not DATA.exists():
        return {"skipped": f"{DATA} not found"}
    counts = [int(n) for n in os.environ.get("MINYI_BENCH_OPEN", "10000,50000,100000").split(",")]
    messages = load_messages()
    base = get_settings()
    run = uuid.uuid4().hex[:6]
    settings = base.model_copy(
        update={"amqp_vhost": f"{base.amqp_vhost}-bench-{run}", "db_prefix": f"benchmem{run}"}
    )
    broker_admin.setup(settings)
    results = []
    try:
        seeded = 0
        for count in sorted(counts):
            asyncio.run(_seed(settings, messages, seeded, count))
            seeded = count
            results.append({"open_opinions": count, **asyncio.run(_start_intake(settings))})
    finally:
        asyncio.run(drop_databases(settings))
        broker_admin.delete_vhost(settings)
    return {"runs": results}
