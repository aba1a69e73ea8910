"""Department work through the followup HTTP API on two replicas: co-handling, extension
approved and refused, return and re-assignment, reopening after 不满意, bad input, and the KPI
projections checked against hand-computed numbers."""

from datetime import datetime
from typing import Any

import httpx

from services.demo import wait_for
from services.followup.workdays import BEIJING
from shared.events import OpinionAssigned, new_id

from .conftest import Keys, System
from .followup_replicas import Replicas, assignment, replicas

__all__ = ["replicas"]

MONDAY = datetime(2026, 11, 2, 10, 0, tzinfo=BEIJING)


async def test_lifecycle_branches_bad_input_and_kpis(replicas: Replicas) -> None:
    system = replicas
    await system.set_clock(MONDAY)
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
        asked = {"reason": "需协调供电公司更换线路", "new_due": "2026-11-20"}
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
        assert decided.json()["assignments"]["housing"]["due_at"] == "2026-11-20T16:00:00Z"
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
        assert (await post("housing", f"/cases/{b}/sign")).status_code == 200
        asked = {"reason": "人手不足", "new_due": "2026-11-30"}
        assert (await post("housing", f"/cases/{b}/extension", asked)).status_code == 200
        refused = await post(
            "supervisor",
            f"/cases/{b}/extension/decision",
            {"department": "housing", "approve": False, "reason": "理由不充分"},
        )
        assert refused.status_code == 200
        assert refused.json()["assignments"]["housing"]["due_at"] == "2026-11-09T16:00:00Z"

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

        # B's due date (end of 11-09) passes.
        await system.set_clock(datetime(2026, 11, 10, 1, 0, tzinfo=BEIJING))
        await wait_for(lambda: system.of(b, "deadline.breached"), "b's breach", within=60)
        late = await post(
            "housing", f"/cases/{b}/extension", {"reason": "再议", "new_due": "2026-12-01"}
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
        assert body["assignments"]["housing"]["due_at"] == "2026-11-17T16:00:00Z"
        assert (await post("housing", f"/cases/{b}/reply", reply)).status_code == 200
        link_b2 = await _link(system, b, 2)
        closed = await http.post(link_b2, json={"rating": "不满意", "resolved": False})
        assert closed.status_code == 200 and closed.json()["status"] == "closed"

        # -- KPIs, by hand for housing in 2026-11 --------------------------------------------
        # sign: A, B, C on time → 3/3. reply due: A on time, B breached then late, B reopened
        # on time, C on time → 3/4. feedback: A 满意 (resolved), B 不满意 ×2, C 基本满意 →
        # resolved 1/4, satisfied (满意+基本满意) 2/4, 满意 alone 1/4.
        expected_housing = {
            "timely_sign_rate": 1.0,
            "on_time_rate": 0.75,
            "resolution_rate": 0.25,
            "satisfaction_rate": 0.5,
            "fully_satisfied_rate": 0.25,
        }

        async def kpis(dimension: str) -> dict[str, Any]:
            r = await http.get(
                f"{system.url(1)}/kpis",
                params={"dimension": dimension, "month": "2026-11"},
                headers=system.header("supervisor"),
            )
            assert r.status_code == 200, r.text
            return {row["value"]: row for row in r.json()}

        async def housing_settled() -> dict[str, Any] | None:
            rows = await kpis("department")
            row = rows.get("housing")
            return rows if row and row["rates"] == expected_housing else None

        rows = await wait_for(housing_settled, "housing KPIs", within=60)
        assert rows["housing"]["counters"]["overdue"] == 1
        assert rows["ecology"]["counters"] == {"sign_due": 1, "signed_on_time": 1}
        assert rows["transport"]["counters"]["returned"] == 1
        office = (await kpis("office"))["office-fu"]
        # 履职积分: 3 opinions × 1 + 市级采用 5 + 批示 5.
        assert office["counters"]["submitted"] == 3
        assert office["points"] == 13

        export = await http.get(
            f"{system.url(0)}/kpis/export",
            params={"dimension": "department", "month": "2026-11", "format": "csv"},
            headers=system.header("supervisor"),
        )
        assert export.status_code == 200
        lines = export.content.decode("utf-8-sig").splitlines()
        assert lines[0].startswith("维度,名称,月份,及时签收率,按时办结率")
        assert any(line.startswith("department,housing,2026-11,1.0,0.75") for line in lines)
        xlsx = await http.get(
            f"{system.url(0)}/kpis/export",
            params={"dimension": "office", "format": "xlsx"},
            headers=system.header("supervisor"),
        )
        assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"

        # A year the library does not know yet is loaded by an administrator.
        year = {"year": 2027, "holidays": ["2027-01-01"], "workdays": ["2027-01-02"]}
        put = await http.put(
            f"{system.url(0)}/calendar/2027", headers=system.header("admin"), json=year
        )
        assert put.status_code == 200
        wrong = await http.put(
            f"{system.url(0)}/calendar/2028", headers=system.header("admin"), json=year
        )
        assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "year"
        by_department = await http.put(
            f"{system.url(0)}/calendar/2027", headers=system.header("housing"), json=year
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
