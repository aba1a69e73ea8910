"""Timers across National Day 2026 with two followup replicas on the real broker and store:
the reminder, the deadline breaches of the three clocks (响应, 签收, 办结), their 黄牌/红牌,
催办 and both 督办 levels each happen exactly once, at the working-day times, even with a
replica killed and restarted on the way."""

import asyncio
from collections import Counter
from datetime import datetime

import httpx

from services.followup.workdays import BEIJING
from shared.events import OpinionAssigned, new_id
from tools.demo import wait_for

from .followup_replicas import Replicas, assignment, replicas

__all__ = ["replicas"]

CASES = 6
# Timers run every 0.5 s; this is how long we let both replicas look before saying "nothing".
QUIET = 3.0


def bj(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=BEIJING)


def counts(system: Replicas, opinions: list[str]) -> Counter[str]:
    """Distinct events by name, kind and level. Delivery is at-least-once (the outbox sweeper
    may publish an event again, with the same id), so events are counted by id."""
    found: Counter[str] = Counter()
    unique = {e.id: e for e in system.captured}
    for e in unique.values():
        if e.subject in opinions:
            suffix = f":{e.data['level']}" if "level" in e.data else ""
            kind = f":{e.data['kind']}" if "kind" in e.data else ""
            if "card" in e.data:
                kind = f":{e.data['clock']}:{e.data['card']}"
            found[f"{e.type.split('.v')[0][6:]}{kind}{suffix}"] += 1
    return found


async def test_timers_fire_once_at_working_day_times_with_two_replicas(
    replicas: Replicas,
) -> None:
    system = replicas
    await system.set_clock(bj(9, 29, 10))
    opinions = [new_id() for _ in range(CASES)]
    for opinion_id in opinions:
        await system.publish(OpinionAssigned.model_validate(assignment(opinion_id)))

    async def all_opened() -> bool:
        for opinion_id in opinions:
            case = await system.case(opinion_id)
            if case is None:
                return False
        return True

    await wait_for(all_opened, "the cases to open", within=60)

    async def expect(at: datetime, wanted: Counter[str]) -> None:
        await system.set_clock(at)
        per_case = {k: v * CASES for k, v in wanted.items()}
        await wait_for(
            lambda: all(counts(system, opinions)[k] >= n for k, n in per_case.items()),
            f"{wanted} at {at}",
            within=60,
        )
        await asyncio.sleep(QUIET)
        assert counts(system, opinions) == Counter(per_case), at

    # Due: 7 days from 09-29 is 10-06, a holiday → end of Thursday 10-08.
    so_far: Counter[str] = Counter()
    await expect(bj(9, 30, 8, 59), so_far)
    # The working day before the due day, 09:00: the reminder and the 办结 clock's 黄牌. The
    # 响应 and 签收 clocks' 黄牌 would fall before 交办 (09-29 09:00): none.
    so_far["deadline.warning:reply"] += 1
    so_far["deadline.carded:reply:yellow"] += 1
    await expect(bj(9, 30, 9, 1), so_far)
    # 响应 and 签收 deadlines: end of the next working day (09-30).
    so_far["deadline.breached:sign"] += 1
    so_far["deadline.breached:respond"] += 1
    await expect(bj(10, 1, 0, 1), so_far)
    await expect(bj(10, 8, 8, 59), so_far)  # holiday week: nothing else
    # 红牌 on the working day after the deadline's day: after the holiday.
    so_far["deadline.carded:sign:red"] += 1
    so_far["deadline.carded:respond:red"] += 1
    await expect(bj(10, 8, 9, 1), so_far)
    so_far["deadline.breached:reply"] += 1
    await expect(bj(10, 9, 0, 1), so_far)
    so_far["case.escalated:0"] += 1  # 催办: the working day after the due date
    so_far["deadline.carded:reply:red"] += 1
    await expect(bj(10, 9, 9, 1), so_far)

    # A replica dies and comes back: pending timers survive in the store.
    system.kill(1)
    system.start(1)
    await system.wait_ready(1)

    # +5 working days counts the 调休 Saturday 10-10: 10-09, 10-10, 10-12, 10-13, 10-14.
    await expect(bj(10, 13, 9, 1), so_far)
    so_far["case.escalated:1"] += 1
    await expect(bj(10, 14, 9, 1), so_far)
    so_far["case.escalated:2"] += 1
    await expect(bj(10, 21, 9, 1), so_far)

    case = await system.case(opinions[0])
    assert case is not None
    assert case["overdue"] is True and case["escalation_level"] == 2
    steps = [t["step"] for t in case["timeline"]]
    assert steps[:2] == ["登记", "交办"] and steps[-2:] == ["一级督办", "二级督办"]
    assert Counter(steps) == Counter(
        {"登记": 1, "交办": 1, "到期提醒": 1, "超期": 3, "黄牌": 1, "红牌": 3, "催办": 1}
        | {"一级督办": 1, "二级督办": 1}
    )

    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(
            f"{system.url(1)}/supervision/escalated", headers=system.header("supervisor")
        )
    assert r.status_code == 200
    assert set(opinions) <= {item["id"] for item in r.json()}
