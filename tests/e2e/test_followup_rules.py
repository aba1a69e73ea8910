"""The rules offices and hotlines run by, through two followup replicas as real processes:
退单 review (422 without evidence, review → rejected → the department still holds it and the
办结 clock never restarted, dispute → 终审, a return after the window → 409), the clocks' cards
in the inbox, and 回访/复核 (不满意 → 复核 → 重办 → 不满意 again → a 督办单; a 复核 that records
不合理诉求 leaves 满意率 and names who decided), with the KPI rows that show them."""

from datetime import datetime, timedelta
from typing import Any

import httpx

from services.followup.domain import month_of
from services.followup.workdays import Span, WorkCalendar
from shared.clock import beijing_year, utcnow
from shared.events import Location, MemberEnrolled, OpinionAssigned, OpinionReceived, new_id
from tools.demo import wait_for

from .followup_replicas import Replicas, assignment, replicas

__all__ = ["replicas"]

EVIDENCE = {
    "reason_code": "not_our_duty",
    "responsible_unit": "区交通局",
    "evidence": "该路段路灯由交通局随道路工程移交管养",
}
REPLY = {"result": "已解决", "text": "已更换路灯。", "attachments": []}
CALENDAR = WorkCalendar()


class Api:
    def __init__(self, http: httpx.AsyncClient, system: Replicas) -> None:
        self.http, self.system = http, system

    async def post(self, who: str, path: str, body: Any = None) -> httpx.Response:
        return await self.http.post(
            f"{self.system.url()}{path}", headers=self.system.header(who), json=body
        )

    async def get(self, who: str, path: str, **params: str) -> httpx.Response:
        return await self.http.get(
            f"{self.system.url(1)}{path}", headers=self.system.header(who), params=params
        )

    async def opened(self, opinion_id: str, department: str = "housing") -> dict[str, Any]:
        payload = assignment(opinion_id, department)
        await self.system.publish(OpinionAssigned.model_validate(payload))

        async def ready() -> dict[str, Any] | None:
            return await self.system.case(opinion_id)

        return await wait_for(ready, f"case {opinion_id}")

    async def kpi_totals(self, department: str, months: list[str]) -> dict[str, int]:
        """A department's counters summed over ``months``."""
        totals: dict[str, int] = {}
        for month in months:
            r = await self.get("supervisor", "/kpis", dimension="department", month=month)
            assert r.status_code == 200, r.text
            for row in r.json():
                if row["value"] == department:
                    for name, n in row["counters"].items():
                        totals[name] = totals.get(name, 0) + n
        return totals


def _months(start: datetime, days: int) -> list[str]:
    return sorted({month_of(start + timedelta(days=n)) for n in range(days + 1)})


async def test_return_review_keeps_the_clock_and_closes_the_window(replicas: Replicas) -> None:
    system = replicas
    async with httpx.AsyncClient(timeout=10) as http:
        api = Api(http, system)
        kept, late = new_id(), new_id()
        case = await api.opened(kept)
        await api.opened(late)
        lead = case["assignments"]["housing"]
        assert lead["respond_due_at"] is not None  # the lead's 响应 clock runs from 交办

        # Without evidence: 422 naming each missing field; an unknown code: 422 naming it.
        bare = await api.post("housing", f"/cases/{kept}/return", {"reason_code": "not_our_duty"})
        assert bare.status_code == 422
        assert bare.headers["content-type"] == "application/problem+json"
        assert {e["field"] for e in bare.json()["errors"]} == {"responsible_unit", "evidence"}
        unknown = await api.post(
            "housing", f"/cases/{kept}/return", EVIDENCE | {"reason_code": "x"}
        )
        assert unknown.status_code == 422
        assert [e["field"] for e in unknown.json()["errors"]] == ["reason_code"]
        codes = await api.get("housing", "/returns/codes")
        assert codes.status_code == 200 and "not_our_duty" in codes.json()

        # With evidence inside the window: to review; the clocks run on meanwhile.
        asked = await api.post("housing", f"/cases/{kept}/return", EVIDENCE)
        assert asked.status_code == 200, asked.text
        claim = asked.json()["assignments"]["housing"]["return_claim"]
        assert claim["status"] == "pending" and "区交通局" in claim["evidence"]
        again = await api.post("housing", f"/cases/{kept}/return", EVIDENCE)
        assert again.status_code == 409
        listed = await api.get("supervisor", "/supervision/waiting/returns")
        assert kept in [c["id"] for c in listed.json()]
        forbidden = await api.post(
            "housing", f"/cases/{kept}/return-review", {"department": "housing", "accept": True}
        )
        assert forbidden.status_code == 403
        no_reason = await api.post(
            "supervisor", f"/cases/{kept}/return-review", {"department": "housing", "accept": False}
        )
        assert no_reason.status_code == 422
        assert [e["field"] for e in no_reason.json()["errors"]] == ["reason"]
        rejected = await api.post(
            "supervisor",
            f"/cases/{kept}/return-review",
            {"department": "housing", "accept": False, "reason": "路灯属本局管养目录"},
        )
        assert rejected.status_code == 200, rejected.text
        held = rejected.json()["assignments"]["housing"]
        assert held["status"] == "assigned" and held["return_claim"]["status"] == "rejected"
        assert (held["due_at"], held["generation"]) == (lead["due_at"], lead["generation"])

        # A dispute goes to the 终审, which the first reviewer may not give.
        disputed = await api.post(
            "housing", f"/cases/{kept}/return-dispute", {"text": "附移交清单, 请终审"}
        )
        assert disputed.status_code == 200, disputed.text
        decision = {"department": "housing", "accept": False, "reason": "维持原审核意见"}
        same = await api.post("supervisor", f"/cases/{kept}/return-review", decision)
        assert same.status_code == 409
        final = await api.post("chief", f"/cases/{kept}/return-review", decision)
        assert final.status_code == 200, final.text
        held = final.json()["assignments"]["housing"]
        assert held["status"] == "assigned" and held["return_claim"]["status"] == "final_rejected"
        assert (held["due_at"], held["generation"]) == (lead["due_at"], lead["generation"])
        steps = [t["step"] for t in final.json()["timeline"]]
        assert steps.count("交办") == 1 and "退回" not in steps
        assert [t["actor"] for t in final.json()["timeline"] if t["step"] == "终审驳回"] == [
            "督查室主任"
        ]
        assert len(system.of(kept, "assignment.return_rejected")) >= 2

        # Past the window (2 working days after 交办; a week later is past it whatever the
        # holidays): 409. The clocks have run out meanwhile: 红牌 on the inbox and in events.
        start = datetime.fromisoformat(lead["assigned_at"])
        week_later = start + timedelta(days=9)
        await system.set_clock(week_later)
        refused = await api.post("housing", f"/cases/{late}/return", EVIDENCE)
        assert refused.status_code == 409
        assert "window" in refused.json()["detail"]

        async def carded() -> dict[str, Any] | None:
            inbox = await api.get("housing", "/inbox")
            item = next((i for i in inbox.json() if i["id"] == late), None)
            both = item and item["cards"].get("sign") == item["cards"].get("respond") == "red"
            return item if both else None

        # A timer that lost a write race to the other replica is tried again when its claim's
        # lease (60 s) ends: the clock jump makes a dozen timers of these cases due at once.
        item = await wait_for(carded, "the 签收 and 响应 红牌 in the inbox", within=180)
        assert item["responded_at"] is None
        cards = {(e.data["clock"], e.data["card"]) for e in system.of(late, "deadline.carded")}
        assert {("sign", "red"), ("respond", "red")} <= cards
        late_case = await system.case(late)
        assert late_case is not None
        assert "红牌" in [t["step"] for t in late_case["timeline"]]

        async def counted() -> dict[str, int] | None:
            totals = await api.kpi_totals("housing", _months(start, 12))
            done = totals.get("return_requests") == 1 and totals.get("returns_rejected") == 2
            return totals if done and totals.get("red_cards", 0) >= 2 else None

        totals = await wait_for(counted, "the returns KPI", within=180)
        assert totals["return_disputes"] == 1 and "returned" not in totals
        assert totals["respond_due"] >= 2  # both responses missed: 响应率 0
        rows = await api.get("supervisor", "/kpis", dimension="department")
        housing = [r for r in rows.json() if r["value"] == "housing"]
        assert all("response_rate" in r["rates"] for r in housing)


async def test_review_of_unsatisfied_ratings(replicas: Replicas) -> None:
    system = replicas
    async with httpx.AsyncClient(timeout=10) as http:
        api = Api(http, system)
        redo, unreasonable = new_id(), new_id()
        for opinion_id in (redo, unreasonable):
            await api.opened(opinion_id, "transport")
            assert (await api.post("transport", f"/cases/{opinion_id}/sign")).status_code == 200
            responded = await api.post(
                "transport", f"/cases/{opinion_id}/respond", {"how": "电话联系提交人"}
            )
            assert responded.status_code == 200, responded.text
            replied = await api.post("transport", f"/cases/{opinion_id}/reply", REPLY)
            assert replied.status_code == 200, replied.text
        start = datetime.fromisoformat(replied.json()["opened_at"])

        # 不满意 → 复核 → 重办 → 不满意 again → a 督办单.
        link = await system.feedback_link(redo, 1)
        rated = await http.post(
            link, json={"rating": "不满意", "comment": "灯还是不亮", "resolved": False}
        )
        assert rated.status_code == 200 and rated.json()["status"] == "reviewing"
        waiting = await api.get("supervisor", "/supervision/waiting/reviews")
        assert redo in [c["id"] for c in waiting.json()]
        bad = await api.post("supervisor", f"/cases/{redo}/feedback-review", {"decision": "x"})
        assert bad.status_code == 422
        assert {e["field"] for e in bad.json()["errors"]} == {"decision", "reason"}
        review = {"decision": "redo", "reason": "现场核实确未修复"}
        reopened = await api.post("supervisor", f"/cases/{redo}/feedback-review", review)
        assert reopened.status_code == 200, reopened.text
        assert reopened.json()["status"] == "open" and reopened.json()["reopened"] == 1
        assert (await api.post("transport", f"/cases/{redo}/reply", REPLY)).status_code == 200
        # The second round by the platform's phone callback (电话回访).
        missed = await api.post("supervisor", f"/cases/{redo}/callback", {"reached": False})
        assert missed.status_code == 200 and missed.json()["status"] == "awaiting_feedback"
        no_rating = await api.post("supervisor", f"/cases/{redo}/callback", {"reached": True})
        assert no_rating.status_code == 422
        called = await api.post(
            "supervisor",
            f"/cases/{redo}/callback",
            {"reached": True, "rating": "不满意", "resolved": False, "note": "仍不亮"},
        )
        assert called.status_code == 200, called.text
        closed = called.json()
        assert closed["status"] == "closed" and closed["feedback"][-1]["channel"] == "callback"
        [order] = closed["supervision_orders"]
        assert order["department"] == "transport" and order["closed_at"] is None
        await wait_for(lambda: system.of(redo, "case.supervision_ordered"), "the 督办单 event")
        orders = await api.get("supervisor", "/supervision/waiting/orders")
        assert redo in [c["id"] for c in orders.json()]
        done = await api.post(
            "supervisor", f"/cases/{redo}/supervision-order/close", {"result": "已约谈并修复"}
        )
        assert done.status_code == 200
        assert done.json()["supervision_orders"][0]["closed_at"] is not None

        # 不合理诉求: the rating leaves 满意率 and the record names who decided.
        link = await system.feedback_link(unreasonable, 1)
        rated = await http.post(link, json={"rating": "不满意", "resolved": False})
        assert rated.status_code == 200
        review = {"decision": "unreasonable", "reason": "要求超出政策规定"}
        decided = await api.post("supervisor", f"/cases/{unreasonable}/feedback-review", review)
        assert decided.status_code == 200, decided.text
        body = decided.json()
        assert body["status"] == "closed" and body["outcome"] == "不合理诉求"
        assert body["feedback"][-1]["review"]["by"] == "督查室"
        assert [t["actor"] for t in body["timeline"] if t["step"] == "复核"][-1] == "督查室"

        # KPIs: 满意率 counts the reviewed 不满意 (twice for the reopened case) and not the
        # 不合理诉求; both 响应 on time; departments reported 已解决 three times, the
        # submitters never.
        async def counted() -> dict[str, int] | None:
            totals = await api.kpi_totals("transport", _months(start, 40))
            return (
                totals if totals.get("unreasonable") == 1 and totals.get("feedback") == 2 else None
            )

        totals = await wait_for(counted, "the reviewed ratings in the KPIs", within=60)
        assert totals["unsatisfied"] == 2 and totals["reviews"] == 2
        assert totals["supervision_orders"] == 1
        assert totals["responded_on_time"] == totals["respond_due"] == 2
        assert totals["replies"] == totals["reported_resolved"] == 3
        assert totals.get("resolved", 0) == 0


async def test_monthly_theme_with_tasks_progress_and_linked_opinions(replicas: Replicas) -> None:
    system = replicas
    async with httpx.AsyncClient(timeout=10) as http:
        api = Api(http, system)
        opinion_id = new_id()
        await api.opened(opinion_id, "ecology")
        month = month_of(datetime.fromisoformat((await system.case(opinion_id) or {})["opened_at"]))
        theme = {
            "month": month,
            "title": "餐饮油烟扰民集中整治",
            "source": "hot_topic",
            "source_ref": "油烟 (本月热点第一)",
            "department": "ecology",
            "tasks": ["排查沿街餐饮", "安装净化设备", "回访投诉人"],
        }
        bad = await api.post("supervisor", "/themes", theme | {"month": "2026-13", "tasks": []})
        assert bad.status_code == 422
        assert {e["field"] for e in bad.json()["errors"]} == {"month", "tasks"}
        blank = await api.post(
            "supervisor", "/themes", theme | {"title": "  ", "tasks": ["a", " "]}
        )
        assert blank.status_code == 422
        assert {e["field"] for e in blank.json()["errors"]} == {"title", "tasks.1"}
        assert (await api.post("ecology", "/themes", theme)).status_code == 403
        made = await api.post("supervisor", "/themes", theme)
        assert made.status_code == 201, made.text
        theme_id = made.json()["id"]
        assert made.json()["progress"] == 0.0 and list(made.json()["tasks"]) == ["1", "2", "3"]

        other = await api.post("housing", f"/themes/{theme_id}/tasks/1/done", {})
        assert other.status_code == 403
        # Editors read cases but do not work on themes.
        editor = await api.post("editor", f"/themes/{theme_id}/tasks/1/done", {})
        assert editor.status_code == 403
        long = await api.post("ecology", f"/themes/{theme_id}/tasks/1/done", {"note": "x" * 501})
        assert long.status_code == 422 and long.json()["errors"][0]["field"] == "note"
        done = await api.post("ecology", f"/themes/{theme_id}/tasks/1/done", {"note": "排查 58 家"})
        assert done.status_code == 200, done.text
        assert done.json()["progress"] == 0.3333
        missing = await api.post("ecology", f"/themes/{theme_id}/tasks/7/done", {})
        assert missing.status_code == 404

        linked = await api.post(
            "supervisor", f"/themes/{theme_id}/opinions", {"opinion_id": opinion_id}
        )
        assert linked.status_code == 200 and opinion_id in linked.json()["opinions"]
        assert linked.json()["opinions"][opinion_id]["title"] == "和平路路灯不亮"
        unknown = await api.post("supervisor", f"/themes/{theme_id}/opinions", {"opinion_id": "x"})
        assert unknown.status_code == 404

        mine = await api.get("ecology", "/themes", month=month)
        assert [t["id"] for t in mine.json()] == [theme_id]
        assert mine.json()[0]["progress"] == 0.3333
        assert (await api.get("housing", "/themes", month=month)).json() == []
        listed = await api.get("supervisor", "/themes", month=month)
        assert theme_id in [t["id"] for t in listed.json()]


async def test_a_corrected_kind_moves_the_reply_deadline_counted_from_assignment(
    replicas: Replicas,
) -> None:
    system = replicas
    async with httpx.AsyncClient(timeout=10) as http:
        api = Api(http, system)
        opinion_id = new_id()
        payload = assignment(opinion_id) | {"kind": "投诉"}  # routing's word match: 15 days
        await system.publish(OpinionAssigned.model_validate(payload))
        case = await wait_for(lambda: system.case(opinion_id), f"case {opinion_id}")
        lead = case["assignments"]["housing"]
        assigned_at = datetime.fromisoformat(lead["assigned_at"])
        complaint = CALENDAR.due(assigned_at, Span(amount=15, unit="working_days"))
        assert datetime.fromisoformat(lead["due_at"]) == complaint

        path = f"/cases/{opinion_id}/kind"
        unknown = await api.post("editor", path, {"kind": "表扬"})
        assert unknown.status_code == 422
        assert [e["field"] for e in unknown.json()["errors"]] == ["kind"]
        assert (await api.post("housing", path, {"kind": "咨询"})).status_code == 403
        assert (await api.post("supervisor", path, {"kind": "咨询"})).status_code == 403
        missing = await api.post("editor", f"/cases/{new_id()}/kind", {"kind": "咨询"})
        assert missing.status_code == 404

        corrected = await api.post("editor", path, {"kind": "咨询"})
        assert corrected.status_code == 200, corrected.text
        # 咨询: 2 working days from 交办 — not from the correction.
        consult = CALENDAR.due(assigned_at, Span(amount=2, unit="working_days"))
        moved = corrected.json()["assignments"]["housing"]
        assert corrected.json()["kind"] == "咨询"
        assert datetime.fromisoformat(moved["due_at"]) == consult
        assert moved["assigned_at"] == lead["assigned_at"]
        assert moved["sign_due_at"] == lead["sign_due_at"]
        step = corrected.json()["timeline"][-1]
        assert (step["step"], step["actor"]) == ("更正诉求类型", "分类编辑")
        # Every replica serves the moved deadline, in the department's inbox too.
        inbox = await api.get("housing", "/inbox")
        mine = next(i for i in inbox.json() if i["id"] == opinion_id)
        assert datetime.fromisoformat(mine["due_at"]) == consult
        # The kind of a replied case is settled.
        await api.post("housing", f"/cases/{opinion_id}/sign")
        replied = await api.post("housing", f"/cases/{opinion_id}/reply", REPLY)
        assert replied.status_code == 200, replied.text
        assert (await api.post("editor", path, {"kind": "投诉"})).status_code == 409


async def test_member_record_minimums_and_yearly_report(replicas: Replicas) -> None:
    system = replicas
    active, idle = f"m-{new_id()}", f"m-{new_id()}"
    for member, name in ((active, "王委员"), (idle, "李委员")):
        await system.publish(
            MemberEnrolled(member_id=member, office_id="office-fu", member_name=name, kind="委员")
        )
    # 12 submissions by one member (1 point each by default); the minimum for 委员 is 10.
    received = utcnow()
    for n in range(12):
        await system.publish(
            OpinionReceived(
                opinion_id=new_id(),
                tracking_no=f"SQ-{n}",
                office_id="office-fu",
                title="建议",
                content="关于社区养老的建议",
                channel="委员提交",
                submitter_kind="委员",
                location=Location(district="示范区"),
                received_at=received,
                member_id=active,
            )
        )
    year = beijing_year(received)
    async with httpx.AsyncClient(timeout=10) as http:
        api = Api(http, system)

        async def record(member: str) -> dict[str, Any] | None:
            r = await api.get("supervisor", f"/members/{member}/record", year=str(year))
            assert r.status_code == 200, r.text
            body = r.json()
            return (
                body
                if body["kind"] == "委员" and body["points"] >= (12 if member == active else 0)
                else None
            )

        mine = await wait_for(lambda: record(active), "the active member's record", within=60)
        assert (mine["points"], mine["minimum"], mine["below_minimum"]) == (12, 10, False)
        assert sum(m["counters"]["submitted"] for m in mine["months"]) == 12
        other = await wait_for(lambda: record(idle), "the idle member on the roster", within=60)
        assert (other["points"], other["below_minimum"]) == (0, True)

        below = await api.get("supervisor", "/members/below-minimum", year=str(year))
        ids = [m["member_id"] for m in below.json()]
        assert idle in ids and active not in ids
        by_office = await api.get("office", f"/members/{active}/record", year=str(year))
        assert by_office.status_code == 200
        assert (
            await api.get("housing", f"/members/{active}/record", year=str(year))
        ).status_code == 404
        bad_year = await api.get("supervisor", f"/members/{active}/record", year="20000")
        assert bad_year.status_code == 422

        report = await api.get("office", f"/members/{active}/report", year=str(year))
        assert report.status_code == 200
        lines = report.content.decode("utf-8-sig").splitlines()
        assert lines[0].split(",")[:3] == ["委员/代表", "类别", "月份"]
        total = next(line.split(",") for line in lines if f"{year}年合计" in line)
        assert total[0] == "王委员" and total[-1] == "12"
