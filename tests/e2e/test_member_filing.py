"""立案 of members' 提案/建议 through the running services (intake, routing, followup with a
movable clock, notification — real processes on their own vhost and databases): a 联名 proposal
of two members is filed, answered B with a plan, followed up on the plan day, answered A and
rated by its lead member; both members are told each time and both earn their points. And the
refusals: no reason, twice, another office, a co-signer off the roster, a B without its plan,
a reply without its grade; a 不立案 reaches both members with its reason."""

import asyncio
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from services.followup.domain import PointsRules
from services.followup.workdays import WorkCalendar
from services.routing.domain import DEPARTMENTS
from shared import auth
from shared.clock import BEIJING, beijing_year, utcnow
from shared.settings import Settings
from tests.integration.notification_servers import free_port
from tools.demo import Received, WebhookSink, wait_for

from .conftest import LOGS, PORT_BASE, own_run, stop
from .flow import lead_of

STARTED = ("intake", "routing", "followup", "notification")
PORTS = {service: PORT_BASE + 170 + n for n, service in enumerate(STARTED)}
PROPOSAL: dict[str, Any] = {
    "title": "关于改善和平路公交站台设施的提案",
    "content": "和平路公交站台顶棚破损漏雨，候车乘客淋雨，建议交通部门尽快维修并增设座椅。",
    "channel": "调研",
    "submitter": {"kind": "委员", "name": "钱委员"},
    "form": "提案",
}
MEMBER = {"kind": "委员", "sector": "经济界"}


@dataclass
class Stack:
    """The four services of this module, one process each, on their own ports and data."""

    settings: Settings
    keys: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{PORTS[service]}"

    def header(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def start(self) -> None:
        env = {
            **os.environ,
            "MINYI_DB_PREFIX": self.settings.db_prefix,
            "MINYI_AMQP_VHOST": self.settings.amqp_vhost,
            "MINYI_FOLLOWUP_PUBLIC_URL": self.url("followup"),
            "MINYI_TEST_CLOCK": "1",
            "MINYI_FOLLOWUP_TICK_SECONDS": "0.5",
        }
        for service in STARTED:
            log = (LOGS / f"filing-{service}.log").open("ab")
            command = [sys.executable, "-m", "tools.cli", "serve", service]
            self.processes.append(
                subprocess.Popen(
                    [*command, "--port", str(PORTS[service])],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )

    async def wait_ready(self) -> None:
        async with httpx.AsyncClient(timeout=2) as http:
            for service, process in zip(STARTED, self.processes, strict=True):

                async def ready(service: str = service, process: Any = process) -> bool:
                    if process.poll() is not None:
                        pytest.fail(f"{service} exited; see {LOGS}/filing-{service}.log")
                    try:
                        return (await http.get(f"{self.url(service)}/ready")).status_code == 200
                    except httpx.HTTPError:
                        return False

                await wait_for(ready, f"{service} ready", within=90)

    async def set_clock(self, http: httpx.AsyncClient, now: datetime) -> None:
        r = await http.put(
            f"{self.url('followup')}/test-clock",
            headers=self.header("admin"),
            json={"now": now.isoformat()},
        )
        assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    async with own_run(settings, "fl") as (own, db):
        keys = {
            "admin": await auth.create_key(db, auth.Role.ADMIN, "admin", "系统管理员"),
            "supervisor": await auth.create_key(db, auth.Role.SUPERVISOR, "supervisor", "督查室"),
            "office": await auth.create_key(db, auth.Role.OFFICE, "office-fl", "提案委 王五"),
            "other": await auth.create_key(db, auth.Role.OFFICE, "office-fx", "另一办公室"),
            "editor": await auth.create_key(db, auth.Role.EDITOR, "editor", "信息编辑"),
        }
        for code, department in DEPARTMENTS.items():
            keys[code] = await auth.create_key(db, auth.Role.DEPARTMENT, code, department.name)
        system = Stack(own, keys)
        LOGS.mkdir(parents=True, exist_ok=True)
        try:
            system.start()
            await system.wait_ready()
            yield system
        finally:
            stop(system.processes)


async def enrol(http: httpx.AsyncClient, stack: Stack, name: str, office: str = "office") -> str:
    r = await http.post(
        f"{stack.url('intake')}/members",
        headers=stack.header(office),
        json={**MEMBER, "name": name},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def listen(http: httpx.AsyncClient, stack: Stack, member: str, sink: WebhookSink) -> None:
    """The member's webhook, set up by their office (once notification knows the member)."""
    hook = {"channel": "webhook", "address": sink.url, "recipient": f"member:{member}"}

    async def subscribed() -> httpx.Response | None:
        r = await http.post(
            f"{stack.url('notification')}/subscriptions", headers=stack.header("office"), json=hook
        )
        return r if r.status_code == 201 else None

    subscription = await wait_for(subscribed, f"member {member}'s webhook", within=60)
    sink.secrets.append(subscription.json()["secret"])


def got(sink: WebhookSink, opinion_id: str, name: str) -> list[Received]:
    """What the sink received of an event type for the opinion, once per delivery."""
    found = {
        r.delivery_id: r
        for r in sink.of_type(name)
        if r.event["subject"] == opinion_id and r.valid_signature
    }
    return sorted(found.values(), key=lambda r: r.at)


async def case(http: httpx.AsyncClient, stack: Stack, opinion_id: str) -> dict[str, Any] | None:
    r = await http.get(
        f"{stack.url('followup')}/cases/{opinion_id}", headers=stack.header("office")
    )
    return r.json() if r.status_code == 200 else None


def fields(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return [e["field"] for e in response.json()["errors"]]


async def test_cosigned_proposal_is_filed_answered_b_followed_up_answered_a_and_credited(
    stack: Stack,
) -> None:
    intake, followup = stack.url("intake"), stack.url("followup")
    office = stack.header("office")
    sinks = WebhookSink(free_port()), WebhookSink(free_port())
    async with sinks[0].running(), sinks[1].running(), httpx.AsyncClient(timeout=30) as http:
        members = [await enrol(http, stack, "钱委员"), await enrol(http, stack, "孙委员")]
        for member, sink in zip(members, sinks, strict=True):
            await listen(http, stack, member, sink)
        body = {
            **PROPOSAL,
            "location": {"district": "示范区", "street": f"和平街道{uuid.uuid4().hex[:6]}"},
            "member_id": members[0],
            "co_signers": [members[1]],
        }
        registered = await http.post(f"{intake}/opinions", headers=office, json=body)
        assert registered.status_code == 201, registered.text
        assert registered.json()["status"] == "filing"
        opinion_id = registered.json()["id"]
        waiting = (await http.get(f"{intake}/opinions/{opinion_id}", headers=office)).json()
        assert (waiting["status"], waiting["holders"], waiting["filing"]) == ("filing", {}, None)

        # 立案 by the registering office: routed and assigned as any opinion.
        filed = await http.post(
            f"{intake}/opinions/{opinion_id}/filing", headers=office, json={"decision": "立案"}
        )
        assert filed.status_code == 200, filed.text
        assert filed.json()["status"] == "open"
        assert (filed.json()["filing"]["filed"], filed.json()["filing"]["by"]) == (
            True,
            "提案委 王五",
        )
        twice = await http.post(
            f"{intake}/opinions/{opinion_id}/filing", headers=office, json={"decision": "立案"}
        )
        assert twice.status_code == 409

        async def briefed() -> dict[str, Any] | None:
            found = await case(http, stack, opinion_id)
            ready = found and found["opinion"] and lead_of(found)
            return found if ready else None

        opened = await wait_for(briefed, "the filed case with its brief", within=90)
        assert opened["opinion"]["form"] == "提案"
        assert (opened["opinion"]["member_id"], opened["opinion"]["co_signers"]) == (
            members[0],
            [members[1]],
        )
        department = lead_of(opened)
        assert department is not None
        worker = stack.header(department)
        case_url = f"{followup}/cases/{opinion_id}"
        assert (await http.post(f"{case_url}/sign", headers=worker)).status_code == 200

        # A filed case's reply is graded; a B gives its plan and the plan's day.
        answer = {"result": "部分解决", "text": "已完成站台顶棚维修方案，正在招标。"}
        no_grade = await http.post(f"{case_url}/reply", headers=worker, json=answer)
        assert no_grade.status_code == 422 and fields(no_grade) == ["grade"]
        plan_day = (utcnow().astimezone(BEIJING) + timedelta(days=7)).date()
        b_alone = {**answer, "grade": "B", "plan_due": plan_day.isoformat()}
        no_plan = await http.post(f"{case_url}/reply", headers=worker, json=b_alone)
        assert no_plan.status_code == 422 and fields(no_plan) == ["plan"]
        no_day = {**answer, "grade": "B", "plan": "一个月内完成招标并施工"}
        assert fields(await http.post(f"{case_url}/reply", headers=worker, json=no_day)) == [
            "plan_due"
        ]
        bad_grade = await http.post(
            f"{case_url}/reply", headers=worker, json={**answer, "grade": "E"}
        )
        assert bad_grade.status_code == 422 and fields(bad_grade) == ["grade"]
        graded_b = {**b_alone, "plan": "一个月内完成招标并施工"}
        replied_b = await http.post(f"{case_url}/reply", headers=worker, json=graded_b)
        assert replied_b.status_code == 200, replied_b.text
        after_b = replied_b.json()
        lead = after_b["assignments"][department]
        assert (after_b["status"], lead["status"], lead["grade"]) == ("open", "signed", "B")

        # Both members are told of the 立案 and of the B.
        for sink in sinks:
            await wait_for(lambda s=sink: got(s, opinion_id, "opinion.filed"), "立案 notice")
            b = await wait_for(
                lambda s=sink: got(s, opinion_id, "assignment.replied"), "the B reply", within=60
            )
            assert (b[0].event["data"]["grade"], b[0].event["data"]["plan"]) == (
                "B",
                "一个月内完成招标并施工",
            )
        filed_notice = got(sinks[1], opinion_id, "opinion.filed")[0].event["data"]
        assert filed_notice["filed"] is True and filed_notice["co_signers"] == [members[1]]

        # The plan's day passes with no new reply: the followup timers remind the department
        # once (跟踪督办).
        day_after = WorkCalendar().end_of(plan_day) + timedelta(hours=1)
        await stack.set_clock(http, day_after)

        def reminders(found: dict[str, Any]) -> list[dict[str, Any]]:
            return [t for t in found["timeline"] if "请续报办理结果" in t["summary"]]

        async def reminded() -> dict[str, Any] | None:
            found = await case(http, stack, opinion_id)
            return found if found and reminders(found) else None

        followed = await wait_for(reminded, "the plan day's reminder", within=60)
        await asyncio.sleep(2)  # four more timer ticks: the reminder stays one
        again = await case(http, stack, opinion_id)
        assert again is not None and len(reminders(again)) == 1
        assert reminders(followed)[0]["step"] == "跟踪督办"

        # Answered A: the lead member gets the feedback link and rates it.
        replied_a = await http.post(
            f"{case_url}/reply",
            headers=worker,
            json={"result": "已解决", "text": "站台顶棚已修复，新增座椅 6 个。", "grade": "A"},
        )
        assert replied_a.status_code == 200, replied_a.text
        assert replied_a.json()["status"] == "awaiting_feedback"
        for sink in sinks:
            answers = await wait_for(
                lambda s=sink: (
                    found if len(found := got(s, opinion_id, "assignment.replied")) == 2 else None
                ),
                "the A reply",
                within=60,
            )
            assert [a.event["data"]["grade"] for a in answers] == ["B", "A"]
        link = await wait_for(
            lambda: got(sinks[0], opinion_id, "feedback.requested"), "the member's link", within=60
        )
        rated = await http.post(
            link[0].event["data"]["feedback_url"], json={"rating": "满意", "comment": "解决得好"}
        )
        assert rated.status_code == 200, rated.text
        assert got(sinks[1], opinion_id, "feedback.requested") == []  # the lead's link alone
        closed = await case(http, stack, opinion_id)
        assert closed is not None and closed["status"] == "closed"
        steps = [t["step"] for t in closed["timeline"]]
        assert steps.count("答复") == 2 and "评价" in steps and steps[-1] == "办结"
        graded = [t["summary"] for t in closed["timeline"] if t["step"] == "答复"]
        assert "B 正在解决" in graded[0] and "A 已解决" in graded[1]

        # Each member's delivery log (their office reads it) shows the notices delivered.
        for member in members:
            log = await http.get(
                f"{stack.url('notification')}/deliveries",
                params={"opinion_id": opinion_id, "recipient": f"member:{member}"},
                headers=office,
            )
            assert log.status_code == 200, log.text
            delivered = Counter(
                row["event_type"] for row in log.json() if row["status"] == "delivered"
            )
            assert delivered["minyi.opinion.filed.v1"] == 1
            assert delivered["minyi.assignment.replied.v1"] == 2

        # 履职积分: the lead earns submitted + filed, the co-signer the co-signer's points, by
        # the rules in force.
        year = str(beijing_year(utcnow()))
        rules = await http.get(f"{followup}/members/points-rules", headers=office)
        assert rules.status_code == 200, rules.text
        weights = PointsRules.model_validate(rules.json())
        expected = {
            members[0]: {"submitted": 1, "filed": 1},
            members[1]: {"co_submitted": 1, "co_filed": 1},
        }
        for member, counters in expected.items():

            async def record(member: str = member) -> dict[str, Any] | None:
                r = await http.get(
                    f"{followup}/members/{member}/record",
                    headers=stack.header("supervisor"),
                    params={"year": year},
                )
                assert r.status_code == 200, r.text
                body = r.json()
                return body if len(body["totals"]) == 2 else None

            found = await wait_for(record, f"{member}'s 履职积分", within=60)
            assert found["totals"] == counters
            assert found["points"] == weights.points(counters)
        assert weights.points(expected[members[0]]) > weights.points(expected[members[1]]) > 0


async def test_refusals_and_a_not_filed_proposal_reaching_both_members(stack: Stack) -> None:
    intake = stack.url("intake")
    office = stack.header("office")
    sinks = WebhookSink(free_port()), WebhookSink(free_port())
    async with sinks[0].running(), sinks[1].running(), httpx.AsyncClient(timeout=30) as http:
        members = [await enrol(http, stack, "赵代表"), await enrol(http, stack, "钱代表")]
        stranger = await enrol(http, stack, "李代表", office="other")
        for member, sink in zip(members, sinks, strict=True):
            await listen(http, stack, member, sink)
        body = {
            **PROPOSAL,
            "form": "建议",
            "submitter": {"kind": "代表", "name": "赵代表"},
            "location": {"district": "示范区", "street": f"和平街道{uuid.uuid4().hex[:6]}"},
            "member_id": members[0],
            "co_signers": [members[1]],
        }
        url = f"{intake}/opinions"
        off_roster = await http.post(
            url, headers=office, json={**body, "co_signers": [members[1], stranger]}
        )
        assert off_roster.status_code == 422 and fields(off_roster) == ["co_signers.1"]
        twice_named = await http.post(
            url, headers=office, json={**body, "co_signers": [members[1], members[1]]}
        )
        assert fields(twice_named) == ["co_signers"]
        lead_too = await http.post(url, headers=office, json={**body, "co_signers": [members[0]]})
        assert fields(lead_too) == ["co_signers"]
        no_member = await http.post(
            url, headers=office, json={**body, "member_id": None, "co_signers": []}
        )
        assert fields(no_member) == ["form"]
        # A 提案/建议 joins nothing as 附议, not even an open opinion in the same words.
        plain = {k: v for k, v in body.items() if k not in ("form", "member_id", "co_signers")}
        plain["submitter"] = {"kind": "群众", "name": "周先生"}
        assert (await http.post(url, headers=office, json=plain)).status_code == 201
        asked = await http.post(f"{url}/similar", headers=office, json=plain)
        assert asked.status_code == 200 and asked.json()["similar"] is not None, asked.text
        proposal_asked = await http.post(f"{url}/similar", headers=office, json=body)
        assert proposal_asked.status_code == 200 and proposal_asked.json()["similar"] is None

        registered = await http.post(url, headers=office, json=body)
        assert registered.status_code == 201, registered.text
        assert registered.json()["status"] == "filing"
        opinion_id = registered.json()["id"]
        filing = f"{url}/{opinion_id}/filing"
        not_filed = {"decision": "不立案", "kept_as": "来信"}
        elsewhere = await http.post(filing, headers=stack.header("other"), json=not_filed)
        assert elsewhere.status_code == 404
        assert elsewhere.headers["content-type"] == "application/problem+json"
        no_reason = await http.post(filing, headers=office, json=not_filed)
        assert no_reason.status_code == 422 and fields(no_reason) == ["reason"]
        bad = await http.post(filing, headers=office, json={"decision": "再议", "kept_as": "档案"})
        assert bad.status_code == 422 and set(fields(bad)) == {"decision", "kept_as"}
        reason = "属于具体个案，不符合建议立案条件，按来信转有关部门研处。"
        decided = await http.post(filing, headers=office, json={**not_filed, "reason": reason})
        assert decided.status_code == 200, decided.text
        assert decided.json()["status"] == "letter"
        assert decided.json()["filing"]["kept_as"] == "来信"
        again = await http.post(filing, headers=office, json={"decision": "立案"})
        assert again.status_code == 409
        for sink in sinks:
            [notice] = await wait_for(
                lambda s=sink: got(s, opinion_id, "opinion.filed"), "the 不立案 notice", within=60
            )
            data = notice.event["data"]
            assert (data["filed"], data["kept_as"], data["reason"]) == (False, "来信", reason)
        # An edit (编辑) cannot bring in a co-signer from another office's roster either.
        edited = await http.put(
            f"{url}/{opinion_id}",
            headers=stack.header("editor"),
            json={"submission": {**body, "co_signers": [stranger]}, "note": "补充联名"},
        )
        assert edited.status_code == 422 and fields(edited) == ["co_signers.0"]
