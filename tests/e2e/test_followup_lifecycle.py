"""Department work through the followup HTTP API on two replicas: co-handling, extension
approved and refused, return and re-assignment, reopening after 不满意, bad input, and the KPI
projections checked against hand-computed numbers."""

from datetime import date, datetime, timedelta
from typing import Any

import httpx

from services.followup.domain import Policy, month_of, rates
from services.followup.workdays import WorkCalendar
from shared.clock import BEIJING, beijing_year, utcnow
from shared.events import OpinionAssigned, new_id
from tools.demo import wait_for

from .conftest import Keys, System
from .followup_replicas import Replicas, assignment, replicas

__all__ = ["replicas"]

# The services compute deadlines on this calendar too: the library's years, Monday-Friday
# beyond them (no year is loaded in this module's database).
CALENDAR = WorkCalendar()
REPLY = Policy().profile("general").reply


def due_day(at: str) -> date:
    """The Beijing day a stored deadline (24:00 of that day) belongs to."""
    return CALENDAR.due_day(datetime.fromisoformat(at))


def months_from(start: datetime, days: int) -> list[str]:
    """Every reporting month from ``start`` to ``days`` later."""
    return sorted({month_of(start + timedelta(days=n)) for n in range(days + 1)})


async def test_lifecycle_branches_bad_input_and_kpis(replicas: Replicas) -> None:
    # Runs on whatever the test clock says (MINYI_TEST_NOW): every date below derives from it.
    system = replicas
    start = utcnow()
    today = start.astimezone(BEIJING).date()
    a, b, c = new_id(), new_id(), new_id()
    await system.publish(OpinionAssigned.model_validate(assignment(a)))
    await system.publish(OpinionAssigned.model_validate(assignment(a, "ecology", "co")))
    await system.publish(OpinionAssigned.model_validate(assignment(b)))
    await system.publish(OpinionAssigned.model_validate(assignment(c, "transport")))

    async with httpx.AsyncClient(timeout=10) as http:

        async def post(who: str, path: str, body: Any = None, replica: int = 0) -> httpx.Response:
            return await http.post(
                f"{system.url(replica)}{path}", headers=system.header(who), json=body
            )

        async def has(opinion_id: str, *departments: str) -> bool:
            case = await system.case(opinion_id)
            return case is not None and set(departments) <= set(case["assignments"])

        for opinion_id, departments in ((a, ("housing", "ecology")), (b, ("housing",))):
            await wait_for(lambda o=opinion_id, d=departments: has(o, *d), f"case {opinion_id}")
        await wait_for(lambda: has(c, "transport"), "case c")

        # -- A: co-handler input, extension approved, 满意; bad input along the way ---------
        stranger = await post("transport", f"/cases/{a}/reply", {"result": "已解决", "text": "x"})
        assert stranger.status_code == 403
        assert stranger.headers["content-type"] == "application/problem+json"
        first = await post("housing", f"/cases/{a}/sign")
        again = await post("housing", f"/cases/{a}/sign", replica=1)
        assert first.status_code == again.status_code == 200
        assert [t["step"] for t in again.json()["timeline"]].count("签收") == 1
        bad = await post("housing", f"/cases/{a}/extension", {"new_due": "tomorrow"})
        assert bad.status_code == 422
        assert {e["field"] for e in bad.json()["errors"]} == {"reason", "new_due"}
        assert (await post("ecology", f"/cases/{a}/sign")).status_code == 200
        given = await post("ecology", f"/cases/{a}/input", {"text": "已提供噪声监测数据"})
        assert given.status_code == 200, given.text
        later = today + timedelta(days=18)
        asked = {"reason": "需协调供电公司更换线路", "new_due": later.isoformat()}
        assert (await post("housing", f"/cases/{a}/extension", asked)).status_code == 200
        forbidden = await post(
            "housing", f"/cases/{a}/extension/decision", {"department": "housing", "approve": True}
        )
        assert forbidden.status_code == 403
        decided = await post(
            "supervisor",
            f"/cases/{a}/extension/decision",
            {"department": "housing", "approve": True},
        )
        assert decided.status_code == 200, decided.text
        assert due_day(decided.json()["assignments"]["housing"]["due_at"]) == later
        reply = {"result": "已解决", "text": "已更换路灯。", "attachments": []}
        assert (await post("housing", f"/cases/{a}/reply", reply)).status_code == 200
        adopted = {"level": "市", "adopted_by": "市政协", "note": "编入社情民意专报"}
        assert (await post("supervisor", f"/cases/{a}/adoptions", adopted)).status_code == 200
        instructed = {"leader": "区长", "text": "请住建局举一反三, 全面排查。"}
        assert (await post("supervisor", f"/cases/{a}/instructions", instructed)).status_code == 200
        link_a = await _link(system, a, 1)
        forged = link_a[:-4] + ("0000" if not link_a.endswith("0000") else "1111")
        assert (await http.post(forged, json={"rating": "满意"})).status_code == 403
        assert (await http.post(link_a, json={"rating": "满意"})).status_code == 200
        reused = await http.post(link_a, json={"rating": "不满意"})
        assert reused.status_code == 409

        # -- B: extension refused, overdue, extension too late, reopened after 不满意 -------
        signed_b = await post("housing", f"/cases/{b}/sign")
        assert signed_b.status_code == 200
        due_b = signed_b.json()["assignments"]["housing"]["due_at"]
        asked = {"reason": "人手不足", "new_due": (today + timedelta(days=28)).isoformat()}
        assert (await post("housing", f"/cases/{b}/extension", asked)).status_code == 200
        refused = await post(
            "supervisor",
            f"/cases/{b}/extension/decision",
            {"department": "housing", "approve": False, "reason": "理由不充分"},
        )
        assert refused.status_code == 200
        assert refused.json()["assignments"]["housing"]["due_at"] == due_b

        # -- C: returned, routing assigns housing instead -----------------------------------
        returned = await post("transport", f"/cases/{c}/return", {"reason": "路灯不归交通局管理"})
        assert returned.status_code == 200
        await system.publish(OpinionAssigned.model_validate(assignment(c, "housing")))
        await wait_for(lambda: has(c, "housing"), "housing assigned to c")
        case_c = await system.case(c)
        assert case_c is not None
        assert case_c["assignments"]["transport"]["status"] == "returned"
        assert (await post("housing", f"/cases/{c}/sign")).status_code == 200
        assert (await post("housing", f"/cases/{c}/reply", reply)).status_code == 200
        link_c = await _link(system, c, 1)
        rated = await http.post(link_c, json={"rating": "基本满意", "resolved": False})
        assert rated.status_code == 200

        # B's due date passes: an hour into the next day.
        overdue_at = datetime.fromisoformat(due_b) + timedelta(hours=1)
        await system.set_clock(overdue_at)
        await wait_for(lambda: system.of(b, "deadline.breached"), "b's breach", within=60)
        too_late = (overdue_at.astimezone(BEIJING).date() + timedelta(days=10)).isoformat()
        late = await post(
            "housing", f"/cases/{b}/extension", {"reason": "再议", "new_due": too_late}
        )
        assert late.status_code == 409
        assert "has passed" in late.json()["detail"]
        assert (await post("housing", f"/cases/{b}/reply", reply)).status_code == 200
        link_b1 = await _link(system, b, 1)
        reopened = await http.post(
            link_b1, json={"rating": "不满意", "comment": "灯又坏了", "resolved": False}
        )
        assert reopened.status_code == 200
        body = reopened.json()
        assert body["status"] == "open" and body["reopened"] == 1
        new_due = body["assignments"]["housing"]["due_at"]
        assert datetime.fromisoformat(new_due) == CALENDAR.due(overdue_at, REPLY)
        assert (await post("housing", f"/cases/{b}/reply", reply)).status_code == 200
        link_b2 = await _link(system, b, 2)
        closed = await http.post(link_b2, json={"rating": "不满意", "resolved": False})
        assert closed.status_code == 200 and closed.json()["status"] == "closed"

        # -- KPIs, by hand for housing, summed over the months the facts fall in -----------
        # Facts are filed by business time (received, due, rated…), so near a month's end they
        # spread over two or three months; the sums do not depend on where the run started.
        # sign: A, B, C on time → 3/3. reply due: A on time, B breached then late, B reopened
        # on time, C on time → 3/4. feedback: A 满意 (resolved), B 不满意 ×2, C 基本满意 →
        # resolved 1/4, satisfied (满意+基本满意) 2/4, 满意 alone 1/4.
        expected_housing = {
            "timely_sign_rate": 1.0,
            "on_time_rate": 0.75,
            "resolution_rate": 0.25,
            "satisfaction_rate": 0.5,
            "fully_satisfied_rate": 0.25,
            "review_on_time_rate": None,  # no reply is reviewed here (审核)
            "review_hours": None,
        }
        months = months_from(start, (overdue_at - start).days + 40)

        async def kpis(dimension: str) -> dict[str, dict[str, int]]:
            """Counters per value, summed over ``months``."""
            totals: dict[str, dict[str, int]] = {}
            for month in months:
                r = await http.get(
                    f"{system.url(1)}/kpis",
                    params={"dimension": dimension, "month": month},
                    headers=system.header("supervisor"),
                )
                assert r.status_code == 200, r.text
                for row in r.json():
                    total = totals.setdefault(row["value"], {})
                    for name, n in [*row["counters"].items(), ("points", row["points"])]:
                        total[name] = total.get(name, 0) + n
            return totals

        async def housing_settled() -> dict[str, dict[str, int]] | None:
            # Settled once the last facts are in: all three cases closed (A, B, C).
            rows = await kpis("department")
            housing = rows.get("housing")
            done = housing and rates(housing) == expected_housing and housing.get("closed") == 3
            return rows if done else None

        rows = await wait_for(housing_settled, "housing KPIs", within=60)
        assert rows["housing"]["overdue"] == 1
        assert rows["ecology"] == {"sign_due": 1, "signed_on_time": 1, "points": 0}
        assert rows["transport"]["returned"] == 1
        office = (await kpis("office"))["office-fu"]
        # 履职积分: 3 opinions × 1 + 市级采用 5 + 批示 5.
        assert office["submitted"] == 3
        assert office["adopted_city"] == office["instructed"] == 1
        assert office["points"] == 13

        # A redelivered or replayed event seen a month later moves no count.
        await system.set_clock(overdue_at + timedelta(days=35))
        replayed = [
            *system.of(a, "feedback.received"),
            *system.of(b, "deadline.breached"),
            *system.of(a, "opinion.adopted"),
        ]
        assert len(replayed) == 3
        types = {event.type for event in replayed}
        handled = await system.handled(types)
        for event in replayed:
            await system.republish(event)

        async def all_handled_again() -> bool:
            return await system.handled(types) >= handled + len(replayed)

        await wait_for(all_handled_again, "the replayed events handled", within=30)
        assert await kpis("department") == rows
        assert (await kpis("office"))["office-fu"] == office

        sign_month = month_of(
            datetime.fromisoformat(signed_b.json()["assignments"]["housing"]["sign_due_at"])
        )
        export = await http.get(
            f"{system.url(0)}/kpis/export",
            params={"dimension": "department", "month": sign_month, "format": "csv"},
            headers=system.header("supervisor"),
        )
        assert export.status_code == 200
        lines = export.content.decode("utf-8-sig").splitlines()
        assert lines[0].startswith("维度,名称,月份,及时签收率,按时办结率")
        assert any(line.startswith(f"department,housing,{sign_month},1.0,") for line in lines)
        xlsx = await http.get(
            f"{system.url(0)}/kpis/export",
            params={"dimension": "office", "format": "xlsx"},
            headers=system.header("supervisor"),
        )
        assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"

        # A year the library does not know yet is loaded by an administrator (a year beyond
        # every deadline of this run, so the other tests' deadlines keep their calendar).
        far = beijing_year(start) + 5
        year = {"year": far, "holidays": [f"{far}-01-01"], "workdays": [f"{far}-01-02"]}
        put = await http.put(
            f"{system.url(0)}/calendar/{far}", headers=system.header("admin"), json=year
        )
        assert put.status_code == 200
        wrong = await http.put(
            f"{system.url(0)}/calendar/{far + 1}", headers=system.header("admin"), json=year
        )
        assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "year"
        by_department = await http.put(
            f"{system.url(0)}/calendar/{far}", headers=system.header("housing"), json=year
        )
        assert by_department.status_code == 403

    # Every step is on the timeline, with time, actor and summary.
    case_b = await system.case(b)
    assert case_b is not None
    steps = [t["step"] for t in case_b["timeline"]]
    assert steps[:5] == ["登记", "交办", "签收", "申请延期", "延期驳回"]
    assert {"超期", "答复", "评价", "重办", "办结"} <= set(steps)
    assert len(system.of(b, "case.reopened")) == 1
    assert len(system.of(a, "assignment.input_given")) == 1
    assert system.of(a, "assignment.input_given")[0].data["department"] == "housing"


async def _link(system: Replicas, opinion_id: str, feedback_round: int) -> str:
    def found() -> str | None:
        links = system.of(opinion_id, "feedback.requested")
        unique = {e.id: e for e in links}
        return (
            sorted(unique.values(), key=lambda e: e.time)[feedback_round - 1].data["feedback_url"]
            if len(unique) >= feedback_round
            else None
        )

    return str(await wait_for(found, f"feedback link {feedback_round} of {opinion_id}"))


async def test_calendar_year_out_of_range_is_422(system: System, keys: Keys) -> None:
    # Found by the API fuzz test: a 20-digit year reached the database and overflowed there.
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{system.url('followup')}/calendar/{10**20}", headers=Keys.header(keys.supervisor)
        )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_years_without_a_holiday_calendar_are_visible_before_they_bite(
    replicas: Replicas,
) -> None:
    system = replicas
    async with httpx.AsyncClient(timeout=10) as http:

        async def outlook(replica: int = 1) -> dict[str, Any]:
            r = await http.get(
                f"{system.url(replica)}/calendar/status", headers=system.header("supervisor")
            )
            assert r.status_code == 200, r.text
            return dict(r.json())

        # Years the library knows: nothing to warn about.
        await system.set_clock(datetime(2025, 6, 2, 10, tzinfo=BEIJING))
        assert await outlook() == {
            "years": {"2025": "official", "2026": "official"},
            "warning": None,
        }

        # Years nobody has published yet: deadlines count Monday-Friday, and everyone is told.
        await system.set_clock(datetime(2090, 6, 1, 10, tzinfo=BEIJING))
        unknown = await outlook()
        assert unknown["years"] == {"2090": "assumed", "2091": "assumed"}
        assert unknown["warning"].startswith("2090、2091年法定节假日安排尚未加载")
        ready = (await http.get(f"{system.url(0)}/ready")).json()
        assert ready["calendar"] == unknown
        metrics = (await http.get(f"{system.url(1)}/metrics")).text
        assert 'minyi_calendar_year_assumed{year="2090"} 1.0' in metrics

        # An administrator loads 2090; the warning names only the year still missing (read from
        # the replica that stored it: the other sees it once its kept copy runs out).
        year = {"year": 2090, "holidays": ["2090-01-01"], "workdays": []}
        put = await http.put(
            f"{system.url(0)}/calendar/2090", headers=system.header("admin"), json=year
        )
        assert put.status_code == 200
        after = await outlook(0)
        assert after["years"] == {"2090": "loaded", "2091": "assumed"}
        assert after["warning"].startswith("2091年法定节假日安排尚未加载")
        metrics = (await http.get(f"{system.url(0)}/metrics")).text
        assert 'minyi_calendar_year_assumed{year="2090"} 0.0' in metrics
