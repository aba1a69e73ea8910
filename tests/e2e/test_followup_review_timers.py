"""The review deadline (审核期限) reminds like any deadline, with two followup replicas on the
real broker and store and a moved clock: once on the morning of its last day, once when it
has passed, each exactly once; a late review still counts the department's reply on time and
the review late, apart."""

import asyncio
from datetime import datetime

import httpx

from services.followup.workdays import BEIJING
from shared.events import OpinionAssigned, new_id
from tools.demo import wait_for

from .followup_replicas import Replicas, assignment, replicas

__all__ = ["replicas"]

QUIET = 3.0  # both replicas tick every 0.5 s: time enough to fire anything twice


def bj(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=BEIJING)


async def test_review_deadline_reminds_once_before_and_once_when_passed(
    replicas: Replicas,
) -> None:
    system = replicas
    await system.set_clock(bj(11, 2, 10))  # Monday 10:00
    opinion_id = new_id()
    async with httpx.AsyncClient(timeout=10) as http:
        rules = {"rules": [{"categories": ["城乡建设"], "reviewer": "supervisor"}]}
        put = await http.put(
            f"{system.url(0)}/review/rules", headers=system.header("supervisor"), json=rules
        )
        assert put.status_code == 200, put.text
        await system.publish(OpinionAssigned.model_validate(assignment(opinion_id)))
        await wait_for(lambda: system.case(opinion_id), "the case", within=60)
        case_url = f"{system.url(1)}/cases/{opinion_id}"
        housing = system.header("housing")
        assert (await http.post(f"{case_url}/sign", headers=housing)).status_code == 200
        reply = {"result": "已解决", "text": "已更换路灯。"}
        replied = await http.post(f"{case_url}/reply", headers=housing, json=reply)
        assert replied.status_code == 200, replied.text
        review = replied.json()["assignments"]["housing"]["review"]
        # One working day: due at the end of Tuesday 11-03; reminded that morning at 09:00.
        assert datetime.fromisoformat(review["due_at"]) == bj(11, 4, 0)

        def reminders() -> list[bool]:
            unique = {e.id: e for e in system.of(opinion_id, "reply.review_reminded")}
            return sorted(e.data["overdue"] for e in unique.values())

        await system.set_clock(bj(11, 3, 8, 59))
        await asyncio.sleep(QUIET)
        assert reminders() == []
        await system.set_clock(bj(11, 3, 9, 1))
        await wait_for(reminders, "the reminder", within=60)
        await asyncio.sleep(QUIET)
        assert reminders() == [False]
        await system.set_clock(bj(11, 4, 0, 1))
        await wait_for(lambda: len(reminders()) == 2, "the overdue reminder", within=60)
        await asyncio.sleep(QUIET)
        assert reminders() == [False, True]

        case = await system.case(opinion_id)
        assert case is not None
        steps = [t["step"] for t in case["timeline"]]
        assert steps[-3:] == ["送审", "审核提醒", "审核超期"]
        queue = await http.get(f"{system.url(0)}/reviews", headers=system.header("supervisor"))
        (item,) = [i for i in queue.json() if i["id"] == opinion_id]
        assert item["overdue"] is True
        office = await http.get(f"{system.url(0)}/reviews", headers=system.header("office"))
        assert opinion_id not in {i["id"] for i in office.json()}  # supervisors review these

        # Approved ten hours late: the department replied on time, the review was late.
        await system.set_clock(bj(11, 4, 10))
        approved = await http.post(
            f"{case_url}/review",
            headers=system.header("supervisor"),
            json={"department": "housing", "approve": True},
        )
        assert approved.status_code == 200, approved.text
        await wait_for(lambda: system.of(opinion_id, "assignment.replied"), "the release")
        (released,) = {e.id: e for e in system.of(opinion_id, "assignment.replied")}.values()
        assert released.data["on_time"] is True
        # As of its submission (the clock runs on from where it is set: seconds later).
        submitted = datetime.fromisoformat(released.data["replied_at"])
        assert bj(11, 2, 10) <= submitted < bj(11, 2, 10, 5)
        (decided,) = {e.id: e for e in system.of(opinion_id, "reply.approved")}.values()
        assert decided.data["on_time"] is False

        async def housing_row() -> dict[str, int] | None:
            r = await http.get(
                f"{system.url(0)}/kpis",
                headers=system.header("supervisor"),
                params={"dimension": "department", "month": "2026-11"},
            )
            rows = [row for row in r.json() if row["value"] == "housing"]
            counters: dict[str, int] = rows[0]["counters"] if rows else {}
            return counters if counters.get("reviewed") else None

        counters = await wait_for(housing_row, "the review KPIs", within=60)
        assert counters["reply_due"] == counters["replied_on_time"] == 1
        assert counters["review_due"] == counters["review_overdue"] == 1
        assert "reviewed_on_time" not in counters
        assert abs(counters["review_seconds"] - 48 * 3600) < 300  # Monday 10:00 to Wednesday
