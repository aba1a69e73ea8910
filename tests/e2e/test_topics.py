"""专题 through the running system: opinions registered at intake on the same matter in the
same district, in different streets, become a topic in routing (topic.detected, then
topic.updated as more arrive); when its heat reaches the threshold the supervisors' webhook gets
topic.heated. Staff name, pin, split and merge it over HTTP; bad requests are problem+json."""

import json
import uuid
from typing import Any

import httpx

from services.routing.main import RoutingSettings
from shared.settings import Settings
from tests.integration.notification_servers import free_port
from tools.demo import WebhookSink, wait_for

from .conftest import Keys, System, capture_events

MATTER = {
    "title": "翠湖{tag}小区地下车库长期积水",
    "content": "翠湖{tag}小区地下车库一下雨就积水，车辆被泡，物业不管，请住建部门督促整改。",
    "channel": "走访",
    "submitter": {"kind": "群众", "name": "王先生", "phone": "13912345678"},
}


async def _register(
    http: httpx.AsyncClient, system: System, key: dict[str, str], tag: str, n: int
) -> str:
    body = {
        **{k: v.format(tag=tag) if isinstance(v, str) else v for k, v in MATTER.items()},
        "location": {"district": f"翠湖区{tag}", "street": f"第{n}街道"},
    }
    response = await http.post(f"{system.url('intake')}/opinions", headers=key, json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_opinions_become_a_topic_that_heats_up_and_staff_curate_it(
    system: System, keys: Keys, editor_key: str, settings: Settings
) -> None:
    tag = uuid.uuid4().hex[:6]
    office, supervisor = Keys.header(keys.office), Keys.header(keys.supervisor)
    editor = Keys.header(editor_key)
    # By event id: delivery is at least once, an event may come twice.
    seen: dict[str, dict[str, Any]] = {}

    def keep(body: bytes) -> None:
        event = json.loads(body)
        if event["type"].startswith("minyi.topic."):
            seen[event["id"]] = event

    connection, _ = await capture_events(settings, keep)
    receiver = WebhookSink(free_port())
    routing = system.url("routing")
    try:
        async with receiver.running(), httpx.AsyncClient(timeout=15) as http:
            subscribed = await http.post(
                f"{system.url('notification')}/subscriptions",
                headers=supervisor,
                json={
                    "channel": "webhook",
                    "address": receiver.url,
                    "event_names": ["topic.heated"],
                },
            )
            assert subscribed.status_code == 201, subscribed.text
            receiver.secrets.append(subscribed.json()["secret"])
            # heat = n + (streets - 1) + ½·n recent: five opinions in five streets reach 11.5.
            alert = RoutingSettings().topic_heat_alert
            ids = [await _register(http, system, office, tag, n) for n in range(5)]

            def of_ours(kind: str) -> list[dict[str, Any]]:
                return [
                    e
                    for e in list(seen.values())
                    if e["type"] == f"minyi.topic.{kind}.v1" and e["data"]["opinion_id"] in ids
                ]

            [detected] = await wait_for(lambda: of_ours("detected"), "topic.detected", 60)
            topic_id = detected["subject"]
            # Consumers run concurrently: the first grouped opinion to get there makes it.
            assert 2 <= detected["data"]["members"] <= 5
            assert set(detected["data"]["keywords"]) & {"翠湖", "车库", "积水"}

            # Opinions arriving together are grouped in one batch: the topic may be detected
            # with all five at once, or grow by topic.updated.
            await wait_for(
                lambda: [
                    e for e in of_ours("detected") + of_ours("updated") if e["data"]["members"] == 5
                ],
                "the topic with all five",
                60,
            )
            updates = of_ours("updated")
            assert {e["data"]["change"] for e in updates} <= {"joined"}
            assert all(e["subject"] == topic_id for e in updates)
            [heated] = await wait_for(lambda: of_ours("heated"), "topic.heated", 60)
            assert heated["data"]["heat"] >= alert == heated["data"]["threshold"]

            told = await wait_for(
                lambda: [r for r in receiver.received if r.event["subject"] == topic_id],
                "the supervisors' topic.heated webhook",
                60,
            )
            assert told[0].valid_signature and told[0].event["type"] == "minyi.topic.heated.v1"

            topic = (await http.get(f"{routing}/topics/{topic_id}", headers=supervisor)).json()
            assert set(topic["members"]) == set(ids)
            assert topic["heat_parts"]["streets"] == 5
            board = (await http.get(f"{routing}/topics?limit=200", headers=supervisor)).json()
            assert topic_id in [row["id"] for row in board]

            # 命名 and 置顶: pinned topics lead the board.
            named = await http.put(
                f"{routing}/topics/{topic_id}",
                headers=editor,
                json={"name": f"翠湖{tag}车库积水", "pinned": True},
            )
            assert named.status_code == 200, named.text
            board = (await http.get(f"{routing}/topics?limit=1", headers=supervisor)).json()
            assert board[0]["pinned"] is True
            pinned = (await http.get(f"{routing}/topics?limit=200", headers=supervisor)).json()
            assert {"id": topic_id, "label": f"翠湖{tag}车库积水"}.items() <= next(
                r for r in pinned if r["id"] == topic_id
            ).items()

            # 拆分 two opinions off, then 合并 them back.
            split = await http.post(
                f"{routing}/topics/{topic_id}/split", headers=editor, json={"opinions": ids[:2]}
            )
            assert split.status_code == 201, split.text
            part = split.json()
            assert set(part["members"]) == set(ids[:2])
            left = (await http.get(f"{routing}/topics/{topic_id}", headers=editor)).json()
            assert set(left["members"]) == set(ids[2:])
            merged = await http.post(
                f"{routing}/topics/{topic_id}/merge", headers=editor, json={"topics": [part["id"]]}
            )
            assert merged.status_code == 200, merged.text
            assert set(merged.json()["members"]) == set(ids)
            gone = (await http.get(f"{routing}/topics/{part['id']}", headers=editor)).json()
            assert gone["merged_into"] == topic_id and gone["members"] == {}
            board = (await http.get(f"{routing}/topics?limit=200", headers=editor)).json()
            assert part["id"] not in [row["id"] for row in board]

            # A sixth opinion still finds the topic (its members moved back in the window).
            sixth = await _register(http, system, office, tag, 6)
            await wait_for(
                lambda: [e for e in seen.values() if e["data"]["opinion_id"] == sixth],
                "the sixth opinion's topic.updated",
                60,
            )
            [joined] = [e for e in seen.values() if e["data"]["opinion_id"] == sixth]
            assert joined["subject"] == topic_id and joined["data"]["members"] == 6

            # Offices may not curate; bad bodies name their fields.
            denied = await http.put(
                f"{routing}/topics/{topic_id}", headers=office, json={"pinned": False}
            )
            assert denied.status_code == 403
            bad = [
                await http.put(f"{routing}/topics/{topic_id}", headers=editor, json={}),
                await http.put(
                    f"{routing}/topics/{topic_id}", headers=editor, json={"name": "x" * 101}
                ),
                await http.post(
                    f"{routing}/topics/{topic_id}/merge", headers=editor, json={"topics": []}
                ),
                await http.post(
                    f"{routing}/topics/{topic_id}/merge",
                    headers=editor,
                    json={"topics": [topic_id]},
                ),
                await http.post(
                    f"{routing}/topics/{topic_id}/split",
                    headers=editor,
                    json={"opinions": ["nope"]},
                ),
                await http.post(
                    f"{routing}/topics/{topic_id}/split",
                    headers=editor,
                    json={"opinions": [*ids, sixth]},
                ),
            ]
            for answer in bad:
                assert answer.status_code == 422, answer.text
                assert answer.headers["content-type"] == "application/problem+json"
            fields = [[e["field"] for e in a.json()["errors"]] for a in bad]
            assert fields[1] == ["name"] and fields[2] == ["topics"] and fields[3] == ["topics"]
            assert fields[4] == ["opinions"] and fields[5] == ["opinions"]
            missing = await http.get(f"{routing}/topics/Tnothere", headers=editor)
            assert missing.status_code == 404
            assert (await http.get(f"{routing}/topics/x%20y", headers=editor)).status_code == 422
            gone_sub = await http.delete(
                f"{system.url('notification')}/subscriptions/{subscribed.json()['id']}",
                headers=supervisor,
            )
            assert gone_sub.status_code in (200, 204)
    finally:
        await connection.close()
