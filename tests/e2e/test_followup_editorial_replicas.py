"""审核 and 信息专报 with two followup replicas on the real broker and store and a moved
clock. The review deadline (审核期限) reminds like any deadline: once on the morning of its
last day, once when it has passed, each exactly once; a late review still counts the
department's reply on time and the review late, apart. A report's 采用 redelivered credits its
source opinions and their members once."""

import asyncio
from datetime import datetime

import httpx

from services.followup.workdays import BEIJING
from shared.events import (
    Location,
    OpinionAssigned,
    OpinionBriefed,
    OpinionFile,
    SubmitterSummary,
    new_id,
)
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
        # In order (other steps, such as the clocks', may come between them).
        review = [
            s
            for s in steps
            if s in {"送审", "审核提醒", "审核超期", "审核退回", "审核通过", "答复", "回访"}
        ]
        assert review == ["送审", "审核提醒", "审核超期"]
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


def brief(opinion_id: str, member: str) -> OpinionBriefed:
    """Intake's copy of the opinion, naming the member who raised it."""
    fields = assignment(opinion_id)
    return OpinionBriefed(
        opinion_id=opinion_id,
        department="housing",
        reason="交办",
        opinion=OpinionFile(
            revision=1,
            tracking_no=fields["tracking_no"],
            office_id=fields["office_id"],
            title=fields["title"],
            content="和平路多盏路灯夜间不亮。",
            channel="走访",
            location=Location(district="示范区", street="和平街道"),
            submitter=SubmitterSummary(kind="委员", name="周**", member_id=member),
            member_id=member,
            received_at=datetime.fromisoformat(fields["received_at"]),
        ),
    )


async def test_a_redelivered_report_adoption_credits_each_source_once(
    replicas: Replicas,
) -> None:
    system = replicas
    await system.set_clock(bj(11, 9, 10))
    opinions = [new_id(), new_id()]
    members = [f"m-{o[-6:]}" for o in opinions]
    for opinion_id, member in zip(opinions, members, strict=True):
        await system.publish(OpinionAssigned.model_validate(assignment(opinion_id)))
        await system.publish(brief(opinion_id, member))

    async def briefed(opinion_id: str) -> bool:
        case = await system.case(opinion_id)
        return case is not None and case["opinion"] is not None

    for opinion_id in opinions:
        await wait_for(lambda o=opinion_id: briefed(o), "the case with its brief", within=60)
    admin = system.header("admin")
    async with httpx.AsyncClient(timeout=10) as http:
        body = {
            "number": "2026年第9期",
            "unit": "示范区政协办公室",
            "title": "关于路灯维护的建议",
            "text": "建议建立巡查机制。",
            "send_to": ["市政协办公厅"],
            "opinion_ids": opinions,
        }
        made = await http.post(f"{system.url(0)}/reports", headers=admin, json=body)
        assert made.status_code == 201, made.text
        url = f"{system.url(1)}/reports/{made.json()['id']}"
        for path, step in (("sign-off", {"version": 1}), ("submission", {"level": "市"})):
            assert (await http.post(f"{url}/{path}", headers=admin, json=step)).status_code == 200
        adoption = {"level": "市", "adopted_by": "市政协"}
        assert (
            await http.post(f"{url}/adoptions", headers=admin, json=adoption)
        ).status_code == 200

        def adopted() -> list[str]:
            return sorted({e.subject for o in opinions for e in system.of(o, "opinion.adopted")})

        await wait_for(lambda: adopted() == sorted(opinions), "both sources adopted", within=60)
        (outcome,) = [e for e in system.captured if e.type == "minyi.report.adopted.v1"]
        before = await system.handled({outcome.type})
        await system.republish(outcome)  # a redelivery: the same event id
        await wait_for(lambda: system.handled({outcome.type}), "the redelivery handled", within=60)
        await wait_for(
            lambda: _more(system, outcome.type, before), "the redelivery handled", within=60
        )
        await asyncio.sleep(QUIET)
        for opinion_id in opinions:
            case = await system.case(opinion_id)
            assert case is not None
            assert [a["level"] for a in case["adoptions"]] == ["市"]
            assert [t["step"] for t in case["timeline"]].count("采用") == 1
            assert "信息专报《关于路灯维护的建议》(2026年第9期)" in case["adoptions"][0]["note"]
            assert len({e.id for e in system.of(opinion_id, "opinion.adopted")}) == 1

        async def points() -> dict[str, int] | None:
            r = await http.get(
                f"{system.url(0)}/kpis",
                headers=system.header("supervisor"),
                params={"dimension": "member", "month": "2026-11"},
            )
            rows = {row["value"]: row["counters"] for row in r.json() if row["value"] in members}
            found = {m: rows.get(m, {}).get("adopted_city", 0) for m in members}
            return found if all(found.values()) else None

        assert await wait_for(points, "the members' points", within=60) == dict.fromkeys(members, 1)


async def _more(system: Replicas, event_type: str, before: int) -> bool:
    return await system.handled({event_type}) > before
