"""The editorial pages in a real browser: the office sends a reply under review back, a
supervisor approves the revision (答复审核); an editor compiles a report from two opinions,
exports it as Word, a supervisor signs it off, the editor submits it and records its 采用 and
批示, which reach both opinions (信息专报)."""

import asyncio
import io
import uuid
from pathlib import Path
from typing import Any

import docx
import httpx
from playwright.async_api import Browser, expect

from shared.settings import Settings
from tools.demo import seed_people, wait_for

from .conftest import System
from .console_client import Person
from .test_console_browser import browser, choose, log_in, log_out, new_page, pytestmark, shoot

__all__ = ["browser", "pytestmark"]


async def _opinion(clerk: Person, title: str, content: str) -> str:
    street = f"和平街道{uuid.uuid4().hex[:8]}"
    created = await clerk.call(
        "POST",
        "/api/intake/opinions",
        json={
            "title": title,
            "content": content,
            "channel": "走访",
            "submitter": {"kind": "群众", "name": "钱先生"},
            "location": {"district": "示范区", "street": street},
        },
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def _case(admin: Person, opinion_id: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        r = await admin.call("GET", f"/api/followup/cases/{opinion_id}")
        return r.json() if r.status_code == 200 and r.json()["assignments"] else None

    case: dict[str, Any] = await wait_for(found, f"case {opinion_id}", within=60)
    return case


async def test_review_queue_and_report_editor(
    system: System, settings: Settings, browser: Browser
) -> None:
    base = system.url("console")
    people = await seed_people(settings, {})
    async with httpx.AsyncClient(timeout=20) as http:
        staff = {}
        for login in ("admin", "clerk", "supervisor", "editor"):
            staff[login] = Person(http, base)
            assert (await staff[login].login(login, people[login])).status_code == 200
        admin, clerk, supervisor = staff["admin"], staff["clerk"], staff["supervisor"]

        title = f"和平路窨井盖缺失{uuid.uuid4().hex[:4]}"
        opinion_id = await _opinion(
            clerk, title, "和平路口窨井盖缺失，夜间行人容易跌落，希望尽快补装。"
        )
        case = await _case(admin, opinion_id)
        lead = next(code for code, a in case["assignments"].items() if a["role"] == "lead")
        made = await admin.call(
            "POST",
            "/console/people",
            json={
                "login": "rv.handler",
                "name": "郑海",
                "unit": lead,
                "roles": ["department"],
                "password": "Minyi-2026x",
            },
        )
        assert made.status_code == 201, made.text
        handler = Person(http, base)
        assert (await handler.login("rv.handler", "Minyi-2026x")).status_code == 200
        rules_before = (await supervisor.call("GET", "/api/followup/review/rules")).json()
        rule = {"categories": [case["category"]], "departments": [lead], "reviewer": "office"}
        put = await supervisor.call("PUT", "/api/followup/review/rules", json={"rules": [rule]})
        assert put.status_code == 200, put.text
        try:
            case_api = f"/api/followup/cases/{opinion_id}"
            assert (await handler.call("POST", f"{case_api}/sign")).status_code == 200
            first = {"result": "已解决", "text": "已补装井盖。"}
            replied = await handler.call("POST", f"{case_api}/reply", json=first)
            assert replied.status_code == 200 and replied.json()["awaiting_review"], replied.text

            page = await new_page(browser)
            # -- 办公室: the reply waits for its review; sent back with a reason ------------
            await log_in(page, base, "clerk", people["clerk"])
            await page.click("text=答复审核")
            row = page.locator("[data-test=reviews] tr", has_text=title)
            await expect(row).to_contain_text("已补装井盖。")
            await shoot(page, "18-答复审核")
            await row.locator("[data-test=open-send-back]").click()
            await page.click("[data-test=send-back]")  # no reason: refused at the field
            await expect(page.locator(".el-dialog .el-form-item__error")).to_contain_text("理由")
            await page.fill("textarea[name=send-back-reason]", "请写明补装时间和责任单位")
            await page.click("[data-test=send-back]")
            await expect(row).to_have_count(0)
            await log_out(page)

            revised = {"result": "已解决", "text": "已于当日补装井盖，由市政养护所负责巡查。"}
            again = await handler.call("POST", f"{case_api}/reply", json=revised)
            assert again.status_code == 200, again.text

            # -- 督查: approves the revision; sees the rules ---------------------------------
            await log_in(page, base, "supervisor", people["supervisor"])
            await page.click("text=答复审核")
            await expect(page.locator("[data-test=review-rules]")).to_contain_text(
                "登记单位或督查室"
            )
            row = page.locator("[data-test=reviews] tr", has_text=title)
            await expect(row).to_contain_text("市政养护所")
            await row.locator("[data-test=approve]").click()
            await expect(row).to_have_count(0)
            # A rule added at the page (emergencies, reviewed by supervisors only) and removed.
            rules = page.locator("[data-test=review-rules] .el-table__body tr")
            await expect(rules).to_have_count(1)
            await choose(page, "[data-test=rule-urgencies]", "紧急")
            await page.click("[data-test=rule-reviewer]")
            options = page.locator(".el-select-dropdown__item:visible")
            await options.get_by_text("督查室", exact=True).click()
            await page.click("[data-test=add-rule]")
            await expect(rules).to_have_count(2)
            stored = (await supervisor.call("GET", "/api/followup/review/rules")).json()["rules"]
            assert stored[1] == {
                "categories": [],
                "urgencies": ["emergency"],
                "departments": [],
                "reviewer": "supervisor",
                "within": {"amount": 1, "unit": "working_days"},
            }
            await rules.nth(1).locator("button:has-text('删除')").click()
            await expect(rules).to_have_count(1)
            await log_out(page)
        finally:
            restored = await supervisor.call("PUT", "/api/followup/review/rules", json=rules_before)
            assert restored.status_code == 200
        released = (await admin.call("GET", case_api)).json()
        assert released["status"] == "awaiting_feedback"
        steps = [t["step"] for t in released["timeline"]]
        # In order (other steps, such as the clocks', may come between them).
        review = [
            s
            for s in steps
            if s in {"送审", "审核提醒", "审核超期", "审核退回", "审核通过", "答复", "回访"}
        ]
        assert review == ["送审", "审核退回", "送审", "审核通过", "答复", "回访"]

        # -- 编辑: compiles a report from two opinions ------------------------------------------
        other = await _opinion(
            clerk,
            f"光明路窨井盖松动{uuid.uuid4().hex[:4]}",
            "光明路多处窨井盖松动，车辆经过响声很大。",
        )
        cases = [released, await _case(admin, other)]
        number = f"第{uuid.uuid4().int % 900 + 100}期"
        await log_in(page, base, "editor", people["editor"])
        await page.click("text=信息专报")
        await page.click("[data-test=new-report]")
        await page.fill("input[name=number]", number)
        await page.fill("input[name=unit]", "示范区政协办公室")
        for c in cases:
            await page.locator("[data-test=sources] input").fill(c["tracking_no"])
            option = page.locator(".el-select-dropdown__item:visible", has_text=c["tracking_no"])
            await option.first.click()
            await page.keyboard.press("Escape")
        await page.fill("input[name=report-title]", "关于加强窨井盖管理的建议")
        await page.fill(
            "textarea[name=report-text]", "近期群众反映多处窨井盖缺失、松动。\n建议开展专项排查。"
        )
        await page.click("[data-test=send-to]")
        await page.keyboard.type("市政协办公厅")
        await page.keyboard.press("Enter")
        await page.click("[data-test=save-report]")
        shown = page.locator("[data-test=report]")
        await expect(shown).to_contain_text("编辑中")
        for c in cases:
            await expect(shown).to_contain_text(c["tracking_no"])
        async with page.expect_download() as download_info:
            await page.click("[data-test=export-docx]")
        saved = Path(await (await download_info.value).path())
        content = await asyncio.to_thread(saved.read_bytes)
        paragraphs = [p.text for p in docx.Document(io.BytesIO(content)).paragraphs]
        assert paragraphs[:2] == ["社情民意信息专报", number]
        assert paragraphs[3:6] == [
            "关于加强窨井盖管理的建议",
            "近期群众反映多处窨井盖缺失、松动。",
            "建议开展专项排查。",
        ]
        assert "报送：市政协办公厅" in paragraphs
        await log_out(page)

        # -- 督查: signs it off --------------------------------------------------------------
        await log_in(page, base, "supervisor", people["supervisor"])
        await page.click("text=信息专报")
        await page.locator("[data-test=reports] tr", has_text=number).click()
        await page.click("[data-test=sign-off]")
        await expect(page.locator("[data-test=report]")).to_contain_text("已签发")
        await log_out(page)

        # -- 编辑: submits it to 市 level and records its 采用 and 批示 -------------------------
        await log_in(page, base, "editor", people["editor"])
        await page.click("text=信息专报")
        await page.locator("[data-test=reports] tr", has_text=number).click()
        await choose(page, "[data-test=submit-level]", "市级")
        await page.click("[data-test=submit]")
        shown = page.locator("[data-test=report]")
        await expect(shown).to_contain_text("已报送")
        await page.click("[data-test=open-adopt]")
        await page.locator(".el-dialog:visible .el-radio", has_text="市").click()
        await page.fill("input[name=adopted-by]", "市政协")
        await page.click("[data-test=send-adopt]")
        await expect(shown.locator("[data-test=report-adoption]")).to_contain_text("市级采用")
        await page.click("[data-test=open-instruct]")
        await page.fill("input[name=leader]", "王副市长")
        await page.fill("textarea[name=instruction]", "请市城管局牵头开展专项整治。")
        await page.click("[data-test=send-instruct]")
        await expect(shown.locator("[data-test=report-instruction]")).to_contain_text("王副市长")
        await expect(page.locator(".el-timeline")).to_contain_text("批示")
        await shoot(page, "19-信息专报")
        await log_out(page)

    # Both opinions show the outcome; the audit log names who did each step.
    async with httpx.AsyncClient(timeout=20) as http:
        admin = Person(http, base)
        await admin.login("admin", people["admin"])

        async def credited(opinion: str) -> bool:
            c = (await admin.call("GET", f"/api/followup/cases/{opinion}")).json()
            return [a["level"] for a in c["adoptions"]] == ["市"] and bool(c["instructions"])

        for c in cases:
            await wait_for(lambda o=c["id"]: credited(o), "the report's outcome on the opinion")
        audit = (await admin.call("GET", "/console/audit", params={"limit": 200})).json()
        done = {(entry["name"], entry["action"]) for entry in audit}
        for who, action in [
            ("李文静", "答复审核"),
            ("赵明", "答复审核"),
            ("陈思远", "编辑专报"),
            ("陈思远", "导出专报"),
            ("赵明", "专报签发"),
            ("陈思远", "专报报送"),
            ("陈思远", "专报采用"),
            ("陈思远", "专报批示"),
        ]:
            assert (who, action) in done, (who, action)
