"""审核 and 信息专报 through the running services: a reply under review reaches the submitter
only when approved (public progress, feedback link, notices); a sent-back reply is revised and
approved; a report compiled from two opinions is exported as DOCX, signed off, submitted,
adopted at 市 level and instructed, and both opinions and their members show it."""

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from typing import Any

import docx
import httpx
import pytest

from shared.clock import utcnow
from tools.demo import WebhookSink, wait_for

from .conftest import Keys, System
from .flow import OPINION, case_of, lead_of, webhook_types


@pytest.fixture
async def review_rules(system: System, keys: Keys) -> AsyncIterator[list[dict[str, Any]]]:
    """The review rules the test sets (a list to fill), put back as they were afterwards:
    other tests in the run reply without review."""
    url = f"{system.url('followup')}/review/rules"
    supervisor = Keys.header(keys.supervisor)
    async with httpx.AsyncClient(timeout=10) as http:
        before = (await http.get(url, headers=supervisor)).json()
        yield []
        assert (await http.put(url, headers=supervisor, json=before)).status_code == 200


async def _register(
    http: httpx.AsyncClient, system: System, keys: Keys, **changes: Any
) -> dict[str, Any]:
    street = f"和平街道{uuid.uuid4().hex[:8]}"
    body = {**OPINION, "location": {**OPINION["location"], "street": street}, **changes}
    r = await http.post(
        f"{system.url('intake')}/opinions", headers=Keys.header(keys.office), json=body
    )
    assert r.status_code == 201, r.text
    receipt: dict[str, Any] = r.json()
    return receipt


async def test_reply_under_review_reaches_the_submitter_only_when_approved(
    system: System, keys: Keys, sink: WebhookSink, review_rules: list[dict[str, Any]]
) -> None:
    followup = system.url("followup")
    office, supervisor = Keys.header(keys.office), Keys.header(keys.supervisor)
    async with httpx.AsyncClient(timeout=30) as http:
        receipt = await _register(http, system, keys)
        opinion_id = receipt["id"]
        track_url = f"{system.url('intake')}/track/{receipt['tracking_no']}"
        code = {"code": receipt["tracking_secret"]}
        case = await case_of(http, system, keys.office, opinion_id)
        department = lead_of(case)
        assert department is not None
        worker = Keys.header(keys.departments[department])
        # This department's replies in this category are reviewed by the registering office.
        rule = {"categories": [case["category"]], "departments": [department], "reviewer": "office"}
        put = await http.put(f"{followup}/review/rules", headers=supervisor, json={"rules": [rule]})
        assert put.status_code == 200, put.text
        bad = await http.put(
            f"{followup}/review/rules",
            headers=supervisor,
            json={"rules": [{"departments": ["住建局"], "reviewer": "nobody"}]},
        )
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
        assert {e["field"] for e in bad.json()["errors"]} == {
            "rules.0.departments.0",
            "rules.0.reviewer",
        }
        assert (
            await http.put(f"{followup}/review/rules", headers=office, json={})
        ).status_code == 403

        case_url = f"{followup}/cases/{opinion_id}"
        assert (await http.post(f"{case_url}/sign", headers=worker)).status_code == 200
        first = {"result": "已解决", "text": "已安排维修。"}
        replied = await http.post(f"{case_url}/reply", headers=worker, json=first)
        assert replied.status_code == 200, replied.text
        held = replied.json()
        assert held["status"] == "open" and held["awaiting_review"] is True
        assert held["assignments"][department]["status"] == "reviewing"
        assert held["timeline"][-1]["step"] == "送审"

        # The office (the reviewer) is told; the submitter's side hears nothing of the reply.
        def told(name: str) -> bool:
            return webhook_types(sink, opinion_id)[f"minyi.{name}.v1"] > 0

        await wait_for(lambda: told("reply.submitted"), "the office told of the review", within=60)
        await asyncio.sleep(2)  # anything published with it would have arrived by now
        assert not told("assignment.replied") and not told("feedback.requested")
        steps = [s["step"] for s in (await http.get(track_url, params=code)).json()["stages"]]
        assert "已答复" not in steps and "回访" not in steps
        queue = (await http.get(f"{followup}/reviews", headers=office)).json()
        mine = [item for item in queue if item["id"] == opinion_id]
        assert len(mine) == 1 and mine[0]["review"]["text"] == "已安排维修。"
        other = (
            await http.get(f"{followup}/reviews", headers=Keys.header(keys.other_office))
        ).json()
        assert opinion_id not in {item["id"] for item in other}

        # Refused cleanly: a sending back without a reason, a department reviewing itself,
        # another office, a reply again while under review.
        url = f"{case_url}/review"
        no_reason = await http.post(
            url, headers=office, json={"department": department, "approve": False}
        )
        assert no_reason.status_code == 422
        assert [e["field"] for e in no_reason.json()["errors"]] == ["reason"]
        itself = await http.post(
            url, headers=worker, json={"department": department, "approve": True}
        )
        assert itself.status_code == 403
        stranger = await http.post(
            url,
            headers=Keys.header(keys.other_office),
            json={"department": department, "approve": True},
        )
        assert stranger.status_code == 404
        again = await http.post(f"{case_url}/reply", headers=worker, json=first)
        assert again.status_code == 409

        # Sent back with a reason; the department revises; a supervisor approves.
        back = {"department": department, "approve": False, "reason": "请写明维修时限"}
        sent_back = await http.post(url, headers=office, json=back)
        assert sent_back.status_code == 200, sent_back.text
        assert sent_back.json()["assignments"][department]["status"] == "signed"
        await wait_for(lambda: told("reply.sent_back"), "the department told to revise", within=60)
        revised = {"result": "已解决", "text": "已安排维修，三日内完成。"}
        assert (
            await http.post(f"{case_url}/reply", headers=worker, json=revised)
        ).status_code == 200
        assert not told("feedback.requested")
        approved = await http.post(
            url, headers=supervisor, json={"department": department, "approve": True}
        )
        assert approved.status_code == 200, approved.text
        body = approved.json()
        assert body["status"] == "awaiting_feedback" and body["awaiting_review"] is False
        assert body["assignments"][department]["text"] == revised["text"]
        steps = [t["step"] for t in body["timeline"]]
        # In order (other steps, such as the clocks', may come between them).
        review = [
            s
            for s in steps
            if s in {"送审", "审核提醒", "审核超期", "审核退回", "审核通过", "答复", "回访"}
        ]
        assert review == ["送审", "审核退回", "送审", "审核通过", "答复", "回访"]

        # Released: the link reaches the office, the public progress shows the revised reply.
        await wait_for(lambda: told("feedback.requested"), "the feedback link", within=60)
        assert webhook_types(sink, opinion_id)["minyi.assignment.replied.v1"] == 1

        async def public_reply() -> str | None:
            stages = (await http.get(track_url, params=code)).json()["stages"]
            found = [s["detail"] for s in stages if s["step"] == "已答复"]
            return found[0] if found else None

        detail = await wait_for(public_reply, "the reply on the public progress", within=60)
        assert revised["text"] in detail and first["text"] not in detail


MEMBER = {"kind": "委员", "sector": "经济界", "phone": "13600002222"}


async def test_report_from_two_opinions_is_exported_submitted_adopted_and_credited(
    system: System, keys: Keys, editor_key: str
) -> None:
    followup = system.url("followup")
    office, supervisor = Keys.header(keys.office), Keys.header(keys.supervisor)
    editor = Keys.header(editor_key)
    async with httpx.AsyncClient(timeout=30) as http:
        members, opinions = [], []
        for name, title in (("钱委员", "背街小巷路灯不亮"), ("孙委员", "老旧小区路灯损坏")):
            enrolled = await http.post(
                f"{system.url('intake')}/members", headers=office, json={**MEMBER, "name": name}
            )
            assert enrolled.status_code == 201, enrolled.text
            members.append(enrolled.json()["id"])
            receipt = await _register(
                http,
                system,
                keys,
                title=title,
                content=f"{title}，夜间出行不便，希望尽快维修。",
                submitter={"kind": "委员", "name": name},
                member_id=members[-1],
            )
            opinions.append(receipt["id"])

        async def briefed(opinion_id: str) -> dict[str, Any] | None:
            case = await case_of(http, system, keys.office, opinion_id)
            return case if case["opinion"] is not None else None

        cases = [
            await wait_for(lambda o=o: briefed(o), f"{o}'s brief", within=60) for o in opinions
        ]
        assert [c["opinion"]["member_id"] for c in cases] == members

        text = "近期委员反映多处路灯不亮。\n建议建立路灯巡查和快速维修机制。"
        draft: dict[str, Any] = {
            "number": f"{utcnow().year}年第{uuid.uuid4().int % 90 + 10}期",
            "unit": "示范区政协办公室",
            "title": "关于加强背街小巷路灯维护的建议",
            "text": text,
            "send_to": ["市政协办公厅"],
            "copy_to": ["区住建局"],
            "opinion_ids": opinions,
        }
        # Bad input names every bad field; an unknown opinion is named by its position.
        bad = await http.post(
            f"{followup}/reports",
            headers=editor,
            json={**draft, "title": "", "send_to": [], "opinion_ids": [opinions[0], opinions[0]]},
        )
        assert bad.status_code == 422
        assert {e["field"] for e in bad.json()["errors"]} == {"title", "send_to", "opinion_ids"}
        unknown = await http.post(
            f"{followup}/reports",
            headers=editor,
            json={**draft, "opinion_ids": [opinions[0], "nope"]},
        )
        assert unknown.status_code == 422
        assert [e["field"] for e in unknown.json()["errors"]] == ["opinion_ids.1"]
        assert "未找到" in unknown.json()["errors"][0]["message"]
        assert (
            await http.post(f"{followup}/reports", headers=office, json=draft)
        ).status_code == 403
        many = await http.post(
            f"{followup}/reports",
            headers=editor,
            json={**draft, "opinion_ids": [f"o{n}" for n in range(51)], "number": "x" * 31},
        )
        assert many.status_code == 422
        assert {e["field"] for e in many.json()["errors"]} == {"opinion_ids", "number"}
        department = Keys.header(next(iter(keys.departments.values())))
        assert (await http.get(f"{followup}/reports", headers=department)).status_code == 403
        missing = await http.get(f"{followup}/reports/nope", headers=editor)
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"

        compiled = await http.post(f"{followup}/reports", headers=editor, json=draft)
        assert compiled.status_code == 201, compiled.text
        report = compiled.json()
        report_url = f"{followup}/reports/{report['id']}"
        assert [s["member_id"] for s in report["sources"]] == members
        revised = {
            **{k: draft[k] for k in ("title", "send_to", "copy_to")},
            "text": text + "\n建议纳入年度民生实事。",
        }
        second = await http.put(f"{report_url}/draft", headers=editor, json=revised)
        assert second.status_code == 200 and second.json()["drafts"][-1]["version"] == 2

        # Editors compile, supervisors sign off — the newest draft only.
        refused = await http.post(f"{report_url}/sign-off", headers=editor, json={"version": 2})
        assert refused.status_code == 403
        stale = await http.post(f"{report_url}/sign-off", headers=supervisor, json={"version": 1})
        assert stale.status_code == 409
        early = await http.post(f"{report_url}/submission", headers=editor, json={"level": "市"})
        assert early.status_code == 409
        signed = await http.post(f"{report_url}/sign-off", headers=supervisor, json={"version": 2})
        assert signed.status_code == 200, signed.text

        exported = await http.get(f"{report_url}/export", headers=editor)
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("application/vnd.openxmlformats")
        paragraphs = [p.text for p in docx.Document(io.BytesIO(exported.content)).paragraphs]
        assert paragraphs[0] == "社情民意信息专报"
        assert paragraphs[1] == draft["number"]
        assert paragraphs[2].startswith("示范区政协办公室\t")
        assert paragraphs[3] == draft["title"]
        assert paragraphs[4:7] == [
            "近期委员反映多处路灯不亮。",
            "建议建立路灯巡查和快速维修机制。",
            "建议纳入年度民生实事。",
        ]
        assert all(c["tracking_no"] in paragraphs[7] for c in cases)
        assert paragraphs[8:] == ["报送：市政协办公厅", "抄送：区住建局", "签发：督查室"]
        first_draft = await http.get(f"{report_url}/export", headers=editor, params={"version": 1})
        first_text = [p.text for p in docx.Document(io.BytesIO(first_draft.content)).paragraphs]
        assert "建议纳入年度民生实事。" not in first_text and first_text[-1] == "签发：（未签发）"
        assert (
            await http.get(f"{report_url}/export", headers=editor, params={"version": 7})
        ).status_code == 404
        zero = await http.get(f"{report_url}/export", headers=editor, params={"version": 0})
        assert zero.status_code == 422 and zero.json()["errors"][0]["field"] == "query.version"

        submitted = await http.post(
            f"{report_url}/submission", headers=editor, json={"level": "市"}
        )
        assert submitted.status_code == 200, submitted.text
        adoption = {"level": "市", "adopted_by": "市政协", "note": "全文采用"}
        adopted = await http.post(f"{report_url}/adoptions", headers=editor, json=adoption)
        assert adopted.status_code == 200, adopted.text
        twice = await http.post(f"{report_url}/adoptions", headers=editor, json=adoption)
        assert twice.status_code == 409
        instruction = {"leader": "李市长", "text": "请市住建局牵头研究落实。"}
        instructed = await http.post(
            f"{report_url}/instructions", headers=supervisor, json=instruction
        )
        assert instructed.status_code == 200, instructed.text
        steps = [t["step"] for t in instructed.json()["timeline"]]
        assert steps == ["编辑", "修改", "签发", "报送", "采用", "批示"]

        # Both source opinions show the adoption and the instruction, naming the report.
        async def credited(opinion_id: str) -> dict[str, Any] | None:
            case = await case_of(http, system, keys.office, opinion_id)
            return case if case["adoptions"] and case["instructions"] else None

        for opinion_id in opinions:
            case = await wait_for(
                lambda o=opinion_id: credited(o), "the report's outcome", within=60
            )
            assert [a["level"] for a in case["adoptions"]] == ["市"]
            assert draft["title"] in case["adoptions"][0]["note"]
            assert case["instructions"][0]["leader"] == "李市长"
            assert {"采用", "批示"} <= {t["step"] for t in case["timeline"]}

        # Their members' 履职积分 (all months: the steps may straddle one's end): submitted 1,
        # 市级采用 5, 批示 5.
        async def points() -> dict[str, tuple[dict[str, int], int]] | None:
            r = await http.get(
                f"{followup}/kpis", headers=supervisor, params={"dimension": "member"}
            )
            found: dict[str, tuple[dict[str, int], int]] = {}
            for row in r.json():
                if row["value"] in members:
                    counters, total = found.get(row["value"], ({}, 0))
                    for name, n in row["counters"].items():
                        counters[name] = counters.get(name, 0) + n
                    found[row["value"]] = (counters, total + row["points"])
            done = all(found.get(m, ({}, 0))[0].get("instructed") for m in members)
            return found if done else None

        totals = await wait_for(points, "the members' points", within=60)
        for member in members:
            counters, total = totals[member]
            assert counters == {"submitted": 1, "adopted_city": 1, "instructed": 1}
            assert total == 11
        listed = (await http.get(f"{followup}/reports", headers=supervisor)).json()
        assert report["id"] in {r["id"] for r in listed}
