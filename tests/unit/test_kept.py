"""Kept reads: a process sees its own writes at once, even when another task was reading the
same key while the write landed (a subscription listed right after it was made came back
empty in the e2e run)."""

import asyncio
from datetime import timedelta

from shared.store import Kept


async def test_a_read_begun_before_this_process_changed_the_key_is_not_kept() -> None:
    kept: Kept[str, str] = Kept(timedelta(seconds=60))
    stored = {"member:1": "v1"}
    reading = asyncio.Event()
    go_on = asyncio.Event()

    async def slow_read(key: str) -> str:
        value = stored[key]  # what the store had when the read began
        reading.set()
        await go_on.wait()
        return value

    async def read(key: str) -> str:
        return stored[key]

    stale = asyncio.create_task(kept.get("member:1", slow_read))
    await reading.wait()
    stored["member:1"] = "v2"  # this process writes while the other task reads
    kept.forget("member:1")
    go_on.set()
    assert await stale == "v1"  # that task had begun before the write
    assert await kept.get("member:1", read) == "v2"  # but its answer was not kept


async def test_reads_are_kept_until_they_are_too_old_or_forgotten() -> None:
    kept: Kept[str, int] = Kept(timedelta(seconds=60))
    reads = 0

    async def read(key: str) -> int:
        nonlocal reads
        reads += 1
        return reads

    assert [await kept.get("k", read) for _ in range(3)] == [1, 1, 1]
    kept.forget("k")
    assert await kept.get("k", read) == 2
