"""Departments work from the whole opinion, and the submitter and the member stay in the loop:
through the running services, the real broker and the real store."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aio_pika
import httpx
import pytest
from pymongo import AsyncMongoClient

from shared import auth, broker_admin
from shared.settings import Settings
from shared.store import Document, mongo_client
from tests.integration.notification_servers import free_port
from tools.demo import Received, WebhookSink, wait_for

from .conftest import Keys, System
from .flow import case_of, lead_of, submit

PHONE = "13812345678"
ELEVATOR: dict[str, Any] = {
    "title": "幸福小区电梯长期故障无人维修",
    "content": "幸福小区3号楼电梯停运两个月，物业一直未修，老人上下楼困难，希望尽快督促维修。",
    "channel": "接待日",
    "submitter": {"kind": "群众", "name": "张小明", "phone": PHONE},
    "location": {"district": "示范区", "street": "幸福街道", "community": "幸福社区"},
    "coordinates": {"latitude": 31.2304, "longitude": 121.4737},
}
PHOTO = b"\x89PNG\r\n\x1a\n" + b"elevator-photo" * 50
LETTER = b"%PDF-1.4\n" + b"residents-letter" * 40


@dataclass
class Department:
    """A department of this test run only (RabbitMQ users are broker-wide): in the routing
    directory as the lead for its own category, with a key and a provisioned queue."""

    code: str
    category: str
    key: str
    queue: aio_pika.abc.AbstractQueue


@pytest.fixture
async def lifts(system: System, settings: Settings) -> AsyncIterator[Department]:
    run = uuid.uuid4().hex[:6]
    code, category = f"lifts-{run}", f"电梯安全{run}"
    client = mongo_client(settings)
    db = client[settings.database(auth.AUTH_DB)]
    admin = Keys.header(await auth.create_key(db, auth.Role.ADMIN, "admin", "管理员"))
    key = await auth.create_key(db, auth.Role.DEPARTMENT, code, "特种设备安全科")
    await client.close()
    directory_url = f"{system.url('routing')}/directory"
    async with httpx.AsyncClient(timeout=10) as http:
        directory = (await http.get(directory_url, headers=admin)).raise_for_status().json()
        directory["departments"][code] = {"code": code, "name": "特种设备安全科"}
        directory["categories"].append({"name": category, "group": "城建"})
        directory["rules"].append({"category": category, "area": "*", "lead": code})
        (await http.put(directory_url, headers=admin, json=directory)).raise_for_status()
    provisioned = broker_admin.provision_department(settings, code)
    assert provisioned.password is not None
    vhost = quote(settings.amqp_vhost, safe="")
    connection = await aio_pika.connect(
        f"amqp://{provisioned.user}:{provisioned.password}@{settings.amqp_host}:"
        f"{settings.amqp_port}/{vhost}"
    )
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(provisioned.queue, ensure=False)
        yield Department(code, category, key, queue)
    finally:
        await connection.close()
        broker_admin.revoke_department(settings, code)


async def _queued(queue: aio_pika.abc.AbstractQueue, until: Any) -> list[dict[str, Any]]:
    """Events taken from the department's own queue until ``until(events)`` holds."""
    events: list[dict[str, Any]] = []
    for _ in range(300):
        message = await queue.get(fail=False)
        if message is None:
            if until(events):
                return events
            await asyncio.sleep(0.2)
            continue
        await message.ack()
        events.append(json.loads(message.body))
    raise TimeoutError(f"the department's queue had only {[e['type'] for e in events]}")


async def test_lead_department_works_from_the_whole_opinion(
    system: System, keys: Keys, lifts: Department
) -> None:
    intake, followup = system.url("intake"), system.url("followup")
    office, lead = Keys.header(keys.office), Keys.header(lifts.key)
    stranger = Keys.header(keys.departments["education"])
    async with httpx.AsyncClient(timeout=10) as http:
        registered = await http.post(
            f"{intake}/opinions", headers=office, json={**ELEVATOR, "category_hint": lifts.category}
        )
        assert registered.status_code == 201, registered.text
        opinion_id = registered.json()["id"]
        attached = {}
        for filename, data in (("电梯.png", PHOTO), ("居民来信.pdf", LETTER)):
            r = await http.post(
                f"{intake}/attachments/{opinion_id}",
                headers=office,
                params={"filename": filename},
                content=data,
            )
            assert r.status_code == 201, r.text
            attached[r.json()["id"]] = data

        async def complete_case() -> dict[str, Any] | None:
            r = await http.get(f"{followup}/cases/{opinion_id}", headers=lead)
            case: dict[str, Any] = r.json()
            full = r.status_code == 200 and case["opinion"] is not None
            return case if full and len(case["opinion"]["attachments"]) == 2 else None

        case = await wait_for(complete_case, "the lead's case with both attachments", within=60)
        downloads = {
            a["id"]: await http.get(f"{intake}{a['download_path']}", headers=lead)
            for a in case["opinion"]["attachments"]
        }
        inbox = await http.get(f"{followup}/inbox", headers=lead)
        as_department = await http.get(f"{intake}/opinions/{opinion_id}", headers=lead)
        revealed = await http.post(f"{intake}/opinions/{opinion_id}/contact", headers=lead)
        audited = await http.get(f"{intake}/opinions/{opinion_id}", headers=office)
        refused = [
            await http.get(f"{followup}/cases/{opinion_id}", headers=stranger),
            await http.get(f"{intake}/opinions/{opinion_id}", headers=stranger),
            await http.post(f"{intake}/opinions/{opinion_id}/contact", headers=stranger),
            *[
                await http.get(f"{intake}/attachments/{opinion_id}/{a}", headers=stranger)
                for a in attached
            ],
        ]
    queued = await _queued(
        lifts.queue,
        lambda events: any(
            e["type"] == "minyi.opinion.briefed.v1"
            and len(e["data"]["opinion"]["attachments"]) == 2
            for e in events
        ),
    )

    # Everything the department needs, from its case: content, channel, place, who, when.
    assert case["assignments"][lifts.code]["role"] == "lead"
    brief = case["opinion"]
    assert (brief["title"], brief["content"], brief["channel"]) == (
        ELEVATOR["title"],
        ELEVATOR["content"],
        "接待日",
    )
    assert brief["location"] == ELEVATOR["location"]
    assert brief["coordinates"] == ELEVATOR["coordinates"]
    assert brief["submitter"] == {
        "kind": "群众",
        "name": "张**",
        "sector": None,
        "phone": "138****5678",
        "member_id": None,
    }
    assert brief["received_at"] == registered.json()["received_at"].replace("+00:00", "Z")
    assert PHONE not in json.dumps(case, ensure_ascii=False)
    [listed] = [item for item in inbox.json() if item["id"] == opinion_id]
    assert (listed["content"], listed["location"], listed["attachments"]) == (
        ELEVATOR["content"],
        ELEVATOR["location"],
        2,
    )
    # Both attachments download with the department's key, byte for byte.
    assert {a: r.status_code for a, r in downloads.items()} == dict.fromkeys(attached, 200)
    assert {a: r.content for a, r in downloads.items()} == attached
    assert sorted(a["media_type"] for a in brief["attachments"]) == ["application/pdf", "image/png"]
    # Intake's view for the department: masked too, and it does not see who looked.
    assert as_department.status_code == 200
    assert as_department.json()["submission"]["submitter"]["phone"] == "138****5678"
    assert as_department.json()["reveals"] == {}
    # The lead reveals the contact; the office sees who did it and when.
    assert revealed.status_code == 200, revealed.text
    assert (revealed.json()["name"], revealed.json()["phone"]) == ("张小明", PHONE)
    [reveal] = audited.json()["reveals"].values()
    assert (reveal["subject"], reveal["by"], reveal["role"]) == (
        lifts.code,
        "特种设备安全科",
        "department",
    )
    assert reveal["at"] == revealed.json()["revealed_at"].replace("+00:00", "Z")
    # A department without the assignment is refused the case, the opinion and the files.
    assert [r.status_code for r in refused] == [403] * 5
    assert all(r.headers["content-type"] == "application/problem+json" for r in refused)

    # The same content on the department's own AMQP queue (minyi departments provision).
    types = {e["type"] for e in queued}
    assert {"minyi.opinion.assigned.v1", "minyi.opinion.briefed.v1"} <= types
    assert all(e["subject"] == opinion_id for e in queued)
    [last] = [e for e in queued if len(e["data"].get("opinion", {}).get("attachments", [])) == 2]
    queued_brief = last["data"]["opinion"]
    for field in ("title", "content", "channel", "location", "coordinates", "submitter"):
        assert queued_brief[field] == brief[field], field
    assert {a["id"] for a in queued_brief["attachments"]} == set(attached)
    assert PHONE not in json.dumps(queued, ensure_ascii=False)


async def test_merge_ends_the_merged_work_split_restores_it_and_an_edit_reaches_the_case(
    system: System,
    keys: Keys,
    editor_key: str,
    sink: WebhookSink,
    mongo: AsyncMongoClient[Document],
    settings: Settings,
) -> None:
    intake, editor = system.url("intake"), Keys.header(editor_key)
    async with httpx.AsyncClient(timeout=10) as http:
        merged_id = await submit(http, system, keys.office, title="和平路公交站台顶棚漏雨")
        kept_id = await submit(http, system, keys.office)
        merged_case = await case_of(http, system, keys.office, merged_id)
        kept_case = await case_of(http, system, keys.office, kept_id)
        department = lead_of(merged_case)
        assert department is not None
        worker = Keys.header(keys.departments[department])
        timers = mongo[settings.database("followup")]

        async def pending(case_id: str) -> int:
            return sum(
                [
                    await timers[c].count_documents({"case_id": case_id})
                    for c in ("timers", "timer_agenda")
                ]
            )

        assert await pending(merged_id) > 0
        merge = await http.post(
            f"{intake}/opinions/{merged_id}/merge", headers=editor, json={"into": kept_id}
        )
        assert merge.status_code == 200, merge.text
        ended = await case_of(http, system, keys.office, merged_id, status="merged")

        as_edited = (await http.get(f"{intake}/opinions/{kept_id}", headers=editor)).json()
        # The editor sees the phone masked and leaves it out: the one on record stays.
        as_edited["submission"]["submitter"].pop("phone")
        edit: dict[str, Any] = {
            "submission": {
                **as_edited["submission"],
                "title": "和平路公交站台破损漏雨（合并）",
                "content": "和平路公交站台顶棚破损漏雨，两处反映合并办理，请交通部门尽快维修。",
            },
            "note": "合并两件反映，补充说明",
        }
        edited = await http.put(f"{intake}/opinions/{kept_id}", headers=editor, json=edit)
        assert edited.status_code == 200, edited.text

        async def with_edit() -> dict[str, Any] | None:
            r = await http.get(f"{system.url('followup')}/cases/{kept_id}", headers=worker)
            case: dict[str, Any] = r.json()
            opinion = case.get("opinion") or {}
            done = opinion.get("title") == edit["submission"]["title"] and opinion["supporters"]
            return case if done else None

        kept = await wait_for(with_edit, "the edit and the merged supporter in the case", 60)
        after_merge = await http.get(f"{intake}/opinions/{merged_id}", headers=worker)
        phone_kept = await http.get(
            f"{intake}/opinions/{kept_id}", headers=Keys.header(keys.office)
        )

        def told() -> list[Received]:
            return [r for r in sink.of_type("opinion.withdrawn") if r.event["subject"] == merged_id]

        [withdrawn] = await wait_for(told, "the department told why its assignment ended")
        assert await pending(merged_id) == 0
        assert await pending(kept_id) > 0

        # 拆分: split off again, the merged case is work again for its department.
        split = await http.post(f"{intake}/opinions/{merged_id}/split", headers=editor)
        assert split.status_code == 200, split.text
        reopened = await case_of(http, system, keys.office, merged_id, status="open")

        async def readable_again() -> bool:
            r = await http.get(f"{intake}/opinions/{merged_id}", headers=worker)
            return r.status_code == 200

        await wait_for(readable_again, "the department to hold the split opinion again")

        async def supporter_gone() -> bool:
            r = await http.get(f"{system.url('followup')}/cases/{kept_id}", headers=worker)
            return r.json()["opinion"]["supporters"] == []

        await wait_for(supporter_gone, "the kept case without the split opinion")
        assert await pending(merged_id) > 0

    # The merged case: every assignment ended, with the reason; no timer left to fire.
    tracking = kept_case["tracking_no"]
    assert ended["merged_into"] == kept_id and ended["overdue"] is False
    assert {a["status"] for a in ended["assignments"].values()} == {"withdrawn"}
    assert all(tracking in a["withdraw_reason"] for a in ended["assignments"].values())
    assert withdrawn.event["data"]["department"] == department
    assert tracking in withdrawn.event["data"]["reason"]
    assert after_merge.status_code == 403
    again = reopened["assignments"][department]
    assert (again["status"], again["generation"]) == ("assigned", 2)
    assert reopened["merged_into"] is None
    assert [e["step"] for e in reopened["timeline"]][-2:] == ["并案", "拆分"]
    # The case it went into holds it as a supporter (并案), with its text; the edit shows.
    [supporter] = kept["opinion"]["supporters"]
    assert (supporter["opinion_id"], supporter["how"]) == (merged_id, "并案")
    assert supporter["title"] == "和平路公交站台顶棚漏雨"
    assert kept["title"] == edit["submission"]["title"]
    assert kept["opinion"]["content"] == edit["submission"]["content"]
    assert any(step["step"] == "编辑" for step in kept["timeline"])
    assert kept["status"] == "open"
    assert phone_kept.json()["submission"]["submitter"]["phone"] == "13912345678"
    assert [v["note"] for v in phone_kept.json()["versions"]] == ["合并两件反映，补充说明"]


async def test_submitter_lookup_walks_every_stage(
    system: System, keys: Keys, sink: WebhookSink
) -> None:
    followup = system.url("followup")
    async with httpx.AsyncClient(timeout=10) as http:
        registered = await http.post(
            f"{system.url('intake')}/opinions",
            headers=Keys.header(keys.office),
            json={
                **ELEVATOR,
                "location": {"district": "示范区", "street": f"查询街道{uuid.uuid4().hex[:6]}"},
            },
        )
        assert registered.status_code == 201, registered.text
        opinion_id = registered.json()["id"]
        receipt = registered.json()
        track_url = f"{system.url('intake')}/track/{receipt['tracking_no']}"

        walk = ["已受理", "已交办", "已签收", "已答复", "回访", "已评价", "已办结"]

        async def stages(last: str) -> list[dict[str, Any]]:
            # Every step up to ``last``: intake learns of 评价 and 办结 from two events it may
            # take in either order, so 已办结 can show a moment before 已评价 does.
            wanted = walk[: walk.index(last) + 1]

            async def check() -> list[dict[str, Any]] | None:
                r = await http.get(track_url, params={"code": receipt["tracking_secret"]})
                found: list[dict[str, Any]] = r.json()["stages"]
                return found if [s["step"] for s in found] == wanted else None

            return list(await wait_for(check, f"the lookup to show {last}", within=60))

        assigned = await stages("已交办")
        case = await case_of(http, system, keys.office, opinion_id)
        department = lead_of(case)
        assert department is not None
        worker = Keys.header(keys.departments[department])
        assert (await http.post(f"{followup}/cases/{opinion_id}/sign", headers=worker)).is_success
        signed = await stages("已签收")
        reply = {"result": "已解决", "text": "已联系电梯维保单位更换主板，电梯已恢复运行。"}
        replied = await http.post(
            f"{followup}/cases/{opinion_id}/reply", headers=worker, json=reply
        )
        assert replied.status_code == 200, replied.text
        await stages("回访")

        def link() -> str | None:
            found = [
                r for r in sink.of_type("feedback.requested") if r.event["subject"] == opinion_id
            ]
            return found[0].event["data"]["feedback_url"] if found else None

        rated = await http.post(await wait_for(link, "the feedback link"), json={"rating": "满意"})
        assert rated.status_code == 200, rated.text
        closed = await stages("已办结")
        public = await http.get(track_url, params={"code": receipt["tracking_secret"]})

    name = case["assignments"][department]["department_name"]
    assert [s["step"] for s in assigned] == ["已受理", "已交办"]
    assert name in assigned[1]["detail"] and "主办" in assigned[1]["detail"]
    assert [s["step"] for s in signed] == ["已受理", "已交办", "已签收"]
    steps = [s["step"] for s in closed]
    assert steps == ["已受理", "已交办", "已签收", "已答复", "回访", "已评价", "已办结"]
    answered = closed[3]["detail"]
    assert "已解决" in answered and reply["text"] in answered
    assert closed[5]["detail"] == "满意"
    times = [datetime.fromisoformat(s["at"]) for s in closed]  # as instants, not texts
    assert times == sorted(times)
    assert public.json()["status"] == "closed" and public.json()["status_label"] == "已办结"
    # Nothing internal, nobody's personal data: no contact, office, department code or key.
    text = public.text
    for private in (PHONE, "张小明", keys.office, "office-a", department):
        assert private not in text, private


async def test_member_is_notified_of_adoption_and_instruction_and_earns_points(
    system: System, keys: Keys
) -> None:
    office, supervisor = Keys.header(keys.office), Keys.header(keys.supervisor)
    member_sink = WebhookSink(free_port())
    async with member_sink.running(), httpx.AsyncClient(timeout=10) as http:
        enrolled = await http.post(
            f"{system.url('intake')}/members",
            headers=office,
            json={"name": "陈委员", "kind": "委员", "sector": "教育界", "phone": "13700002222"},
        )
        assert enrolled.status_code == 201, enrolled.text
        member_id = enrolled.json()["id"]
        roster = await http.get(f"{system.url('intake')}/members", headers=office)
        hook = {
            "channel": "webhook",
            "address": member_sink.url,
            "recipient": f"member:{member_id}",
        }

        async def subscribed() -> httpx.Response | None:
            r = await http.post(
                f"{system.url('notification')}/subscriptions", headers=office, json=hook
            )
            return r if r.status_code == 201 else None

        subscription = await wait_for(subscribed, "the member's webhook")
        member_sink.secrets.append(subscription.json()["secret"])
        opinion_id = await submit(
            http,
            system,
            keys.office,
            member_id=member_id,
            submitter={"kind": "委员", "name": "陈委员", "sector": "教育界"},
        )
        followup = system.url("followup")

        async def briefed() -> bool:
            # The case knows its member once intake's copy of the opinion has arrived.
            r = await http.get(f"{followup}/cases/{opinion_id}", headers=office)
            return (
                r.status_code == 200 and (r.json()["opinion"] or {}).get("member_id") == member_id
            )

        await wait_for(briefed, "the case to know its member", within=60)
        adopted = await http.post(
            f"{followup}/cases/{opinion_id}/adoptions",
            headers=supervisor,
            json={"level": "市", "adopted_by": "市政协办公厅", "note": "编入专报"},
        )
        instructed = await http.post(
            f"{followup}/cases/{opinion_id}/instructions",
            headers=supervisor,
            json={"leader": "王副市长", "text": "请交通局抓紧落实。"},
        )
        assert (adopted.status_code, instructed.status_code) == (200, 200), instructed.text

        def notified() -> dict[str, Received] | None:
            mine = {
                r.event["type"]: r for r in member_sink.received if r.event["subject"] == opinion_id
            }
            wanted = {"minyi.opinion.adopted.v1", "minyi.opinion.instructed.v1"}
            return mine if wanted <= set(mine) else None

        got = await wait_for(notified, "the member's 采用 and 批示 notifications", within=60)

        async def points() -> list[dict[str, Any]] | None:
            r = await http.get(
                f"{followup}/kpis", headers=supervisor, params={"dimension": "member"}
            )
            rows = [row for row in r.json() if row["value"] == member_id]
            total = sum(row["points"] for row in rows)
            return rows if total >= 11 else None

        rows = await wait_for(points, "the member's 履职积分 row", within=60)
        await http.delete(
            f"{system.url('notification')}/subscriptions/{subscription.json()['id']}",
            headers=office,
            params={"recipient": f"member:{member_id}"},
        )

    listed = {m["id"]: m for m in roster.json()}
    assert listed[member_id]["entry"]["sector"] == "教育界"
    assert {m["office_id"] for m in listed.values()} == {"office-a"}
    adoption = got["minyi.opinion.adopted.v1"]
    assert adoption.valid_signature
    assert (adoption.event["data"]["member_id"], adoption.event["data"]["level"]) == (
        member_id,
        "市",
    )
    assert got["minyi.opinion.instructed.v1"].event["data"]["leader"] == "王副市长"
    assert "minyi.opinion.received.v1" in {
        r.event["type"] for r in member_sink.received if r.event["subject"] == opinion_id
    }
    counters: dict[str, int] = {}
    for row in rows:
        for name, n in row["counters"].items():
            counters[name] = counters.get(name, 0) + n
    assert counters == {"submitted": 1, "adopted_city": 1, "instructed": 1}
    # Weights: submitted 1, 采用 (市) 5, 批示 5.
    assert sum(row["points"] for row in rows) == 11
