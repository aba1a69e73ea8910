"""Intake through its HTTP API with all four services running: idempotent submit, 附议 of a
near-duplicate (also across two intake replicas), the public status lookup, attachments, and
the editors' merge, split and edit; a closed case leaves the duplicate index."""

import re
import uuid
from typing import Any

import httpx

from tools.demo import WebhookSink, wait_for

from .conftest import Keys, System
from .flow import work_and_rate

COMPLAINT: dict[str, Any] = {
    "title": "光明路菜市场污水外溢",
    "content": (
        "光明路菜市场后门的下水道堵塞已经两个星期，污水外溢到人行道上，气味难闻，"
        "雨天更加严重，附近居民出行很不方便，希望有关部门尽快疏通下水道并清理路面。"
    ),
    "channel": "接待日",
    "submitter": {"kind": "委员", "name": "周委员", "sector": "医药卫生界", "phone": "13700001234"},
    "location": {"district": "示范区", "street": "光明街道", "community": "光明社区"},
    "urgency_hint": "general",
    "occurred_at": "2026-02-20T08:00:00+08:00",
    "collected_by": "周委员",
    "coordinates": {"latitude": 30.52, "longitude": 114.31},
}
REWORDED = (
    "再次反映：光明路菜市场后门的下水道堵塞已经两个星期，污水外溢到人行道上，气味难闻，"
    "雨天更加严重，附近住户出行很不方便，恳请有关部门早日疏通下水道并清理路面。"
)


def complaint(street: str, **changes: Any) -> dict[str, Any]:
    """The complaint in a street of the test's own, so tests never join each other's cases."""
    return {**COMPLAINT, "location": {**COMPLAINT["location"], "street": street}, **changes}


async def post(
    http: httpx.AsyncClient, system: System, key: str, body: dict[str, Any], **headers: str
) -> httpx.Response:
    return await http.post(
        f"{system.url('intake')}/opinions", headers={**Keys.header(key), **headers}, json=body
    )


async def test_the_same_submit_with_the_same_key_twice_is_one_opinion(
    system: System, keys: Keys
) -> None:
    body = complaint(f"幂等街道{uuid.uuid4().hex[:6]}")
    key = {"Idempotency-Key": uuid.uuid4().hex}
    async with httpx.AsyncClient(timeout=30) as http:
        first = await post(http, system, keys.office, body, **key)
        again = await post(http, system, keys.office, body, **key)
        other_body = await post(http, system, keys.office, {**body, "title": "别的事"}, **key)
        # Another office may use the same key for its own opinion.
        other_office = await post(http, system, keys.other_office, body, **key)
    assert first.status_code == again.status_code == 201, first.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert re.fullmatch(r"SQ-\d{4}-\d{6}", first.json()["tracking_no"])
    assert other_body.status_code == 422
    assert other_body.headers["content-type"] == "application/problem+json"
    assert other_office.status_code == 201
    assert other_office.json()["id"] != first.json()["id"]


async def test_a_near_duplicate_joins_the_open_case_as_support(
    system: System, keys: Keys, sink: WebhookSink
) -> None:
    street = f"附议街道{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(timeout=30) as http:
        first = (await post(http, system, keys.office, complaint(street))).json()
        second = await post(
            http, system, keys.office, complaint(street, title="光明路下水道污水", content=REWORDED)
        )
        elsewhere = await post(
            http, system, keys.office, complaint(f"别处{street}", content=REWORDED)
        )
        case = await http.get(
            f"{system.url('intake')}/opinions/{first['id']}", headers=Keys.header(keys.office)
        )
    assert first["status"] == "open" and first["joined"] is None
    joined = second.json()
    assert second.status_code == 201 and joined["status"] == "supporting"
    assert joined["joined"] == {
        "id": first["id"],
        "tracking_no": first["tracking_no"],
        "supporters": 1,
    }
    assert first["tracking_no"] in joined["message"] and "附议" in joined["message"]
    assert joined["tracking_no"] != first["tracking_no"]  # the item keeps its own number
    assert elsewhere.json()["status"] == "open"  # another street: a case of its own
    supporters = case.json()["supporters"]
    assert list(supporters) == [joined["id"]] and supporters[joined["id"]]["how"] == "附议"

    # The office is told by webhook too; routing gets no new work for the supporting item.
    supported = await wait_for(
        lambda: [r for r in sink.of_type("opinion.supported") if r.event["subject"] == first["id"]],
        "the opinion.supported webhook",
    )
    assert supported[0].event["data"]["supporter_tracking_no"] == joined["tracking_no"]
    assert not [r for r in sink.of_type("opinion.received") if r.event["subject"] == joined["id"]]


async def test_a_near_duplicate_sent_to_another_intake_replica_joins_the_case(
    system: System, keys: Keys, sink: WebhookSink
) -> None:
    if "intake-2" not in system.processes:
        system.start("intake-2")
        system.wait_ready(("intake-2",))
    street = f"两副本街道{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(timeout=30) as http:
        first = (await post(http, system, keys.office, complaint(street))).json()
        # Registered by replica 1; once its event is out, replica 2 has indexed it as well.
        await wait_for(
            lambda: [
                r for r in sink.of_type("opinion.received") if r.event["subject"] == first["id"]
            ],
            "the opinion.received event",
        )
        second = await http.post(
            f"{system.url('intake-2')}/opinions",
            headers=Keys.header(keys.office),
            json=complaint(street, content=REWORDED),
        )
    assert second.status_code == 201, second.text
    assert second.json()["status"] == "supporting"
    assert second.json()["joined"]["id"] == first["id"]


async def test_public_lookup_by_number_and_code(system: System, keys: Keys) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        accepted = (
            await post(http, system, keys.office, complaint(f"查询{uuid.uuid4().hex}"))
        ).json()
        url = f"{system.url('intake')}/track/{accepted['tracking_no']}"
        found = await http.get(url, params={"code": accepted["tracking_secret"]})
        wrong = await http.get(url, params={"code": "0" * 12})
        missing = await http.get(url)
    assert found.status_code == 200
    body = found.json()
    assert body["status_label"] == "已受理" and body["title"] == COMPLAINT["title"]
    assert "13700001234" not in found.text and "周委员" not in found.text
    assert wrong.status_code == 404 and missing.status_code == 422


async def test_attachments_are_stored_type_checked_and_size_limited(
    system: System, keys: Keys
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8_000  # about 2 MB: several chunks
    async with httpx.AsyncClient(timeout=60) as http:
        accepted = (
            await post(http, system, keys.office, complaint(f"附件{uuid.uuid4().hex}"))
        ).json()
        url = f"{system.url('intake')}/attachments/{accepted['id']}"
        office = Keys.header(keys.office)
        stored = await http.post(url, params={"filename": "现场.png"}, headers=office, content=png)
        script = await http.post(
            url, params={"filename": "a.png"}, headers=office, content=b"#!/bin/sh\nrm -rf /"
        )
        stranger = await http.post(
            url, params={"filename": "b.png"}, headers=Keys.header(keys.other_office), content=png
        )
        too_big = await http.post(
            url,
            params={"filename": "big.pdf"},
            headers=office,
            content=b"%PDF-" + b"0" * 12_000_000,
        )
        back = await http.get(f"{url}/{stored.json()['id']}", headers=office)
        opinion = await http.get(
            f"{system.url('intake')}/opinions/{accepted['id']}", headers=office
        )
    assert stored.status_code == 201, stored.text
    assert stored.json()["media_type"] == "image/png" and stored.json()["size"] == len(png)
    assert back.status_code == 200 and back.content == png
    assert script.status_code == 415 and stranger.status_code == 404 and too_big.status_code == 413
    assert list(opinion.json()["attachments"]) == [stored.json()["id"]]  # nothing half-stored


async def test_editors_merge_split_and_edit_keeping_versions(
    system: System, keys: Keys, editor_key: str
) -> None:
    base = f"并案街道{uuid.uuid4().hex[:6]}"
    editor = Keys.header(editor_key)
    intake = system.url("intake")
    async with httpx.AsyncClient(timeout=30) as http:
        target = (await post(http, system, keys.office, complaint(base))).json()
        other = (
            await post(http, system, keys.other_office, complaint(f"{base}-2", content=REWORDED))
        ).json()
        office_merge = await http.post(
            f"{intake}/opinions/{other['id']}/merge",
            headers=Keys.header(keys.office),
            json={"into": target["id"]},
        )
        merged = await http.post(
            f"{intake}/opinions/{other['id']}/merge", headers=editor, json={"into": target["id"]}
        )
        again = await http.post(
            f"{intake}/opinions/{other['id']}/merge", headers=editor, json={"into": target["id"]}
        )
        seen_by_editor = await http.get(f"{intake}/opinions/{target['id']}", headers=editor)
        split = await http.post(f"{intake}/opinions/{other['id']}/split", headers=editor)
        after_split = await http.get(f"{intake}/opinions/{target['id']}", headers=editor)
        new_title = "光明路菜市场下水道堵塞污水外溢"
        edit = {"submission": complaint(base, title=new_title), "note": "规范标题"}
        edited = await http.put(f"{intake}/opinions/{target['id']}", headers=editor, json=edit)
        bad_edit = await http.put(
            f"{intake}/opinions/{target['id']}", headers=editor, json={"submission": {}, "note": ""}
        )
    assert office_merge.status_code == 403
    assert merged.status_code == 200, merged.text
    assert merged.json()["supporters"][other["id"]]["how"] == "并案"
    assert again.status_code == 409
    # Staff see every office's opinions, with the contact masked.
    assert seen_by_editor.json()["submission"]["submitter"]["phone"] == "137****1234"
    assert split.status_code == 200 and split.json()["status"] == "open"
    assert after_split.json()["supporters"] == {}
    assert edited.status_code == 200
    body = edited.json()
    assert body["submission"]["title"] == new_title
    assert [v["submission"]["title"] for v in body["versions"]] == [COMPLAINT["title"]]
    assert (
        body["versions"][0]["replaced_by"] == "编辑甲" and body["versions"][0]["note"] == "规范标题"
    )
    assert {e["field"] for e in bad_edit.json()["errors"]} >= {"submission.title", "note"}


async def test_a_closed_case_is_no_longer_joined(
    system: System, keys: Keys, sink: WebhookSink
) -> None:
    street = f"办结街道{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(timeout=30) as http:
        first = (await post(http, system, keys.office, complaint(street))).json()
        await work_and_rate(http, system, keys, sink, first["id"])

        async def closed() -> bool:
            r = await http.get(
                f"{system.url('intake')}/opinions/{first['id']}", headers=Keys.header(keys.office)
            )
            return bool(r.json()["status"] == "closed")

        await wait_for(closed, "intake to see the case closed", within=60)
        again = await post(http, system, keys.office, complaint(street, content=REWORDED))
    assert again.json()["status"] == "open" and again.json()["joined"] is None


async def test_an_office_lists_its_own_opinions_newest_first_with_a_cursor(
    system: System, keys: Keys
) -> None:
    mark = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(timeout=10) as http:
        made = []
        for n in range(3):
            body = complaint(f"列表街道{mark}{n}", title=f"列表测试{mark} 第{n}件")
            r = await post(http, system, keys.office, body)
            assert r.status_code == 201, r.text
            made.append(r.json()["id"])
        other = await post(
            http,
            system,
            keys.other_office,
            complaint(f"列表街道{mark}x", title=f"列表测试{mark} 乙"),
        )
        assert other.status_code == 201

        async def page(key: str, **query: str) -> list[dict[str, Any]]:
            r = await http.get(
                f"{system.url('intake')}/opinions", headers=Keys.header(key), params=query
            )
            assert r.status_code == 200, r.text
            return list(r.json())

        first = await page(keys.office, q=f"列表测试{mark}", limit="2")
        assert [row["id"] for row in first] == [made[2], made[1]]  # newest first, own only
        assert first[0]["status_label"] == "已受理"
        rest = await page(keys.office, q=f"列表测试{mark}", limit="2", before=first[-1]["id"])
        assert [row["id"] for row in rest] == [made[0]]
        assert await page(keys.office, q=f"列表测试{mark}", status="closed") == []
        by_number = await page(keys.office, q=first[0]["tracking_no"])
        assert [row["id"] for row in by_number] == [made[2]]
        bad = await http.get(
            f"{system.url('intake')}/opinions",
            headers=Keys.header(keys.office),
            params={"limit": "0"},
        )
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.limit"
