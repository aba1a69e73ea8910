"""督办事项 in a real browser: a department's 退单 waits in the supervisor's queue, is rejected
with a reason (the department keeps the case, its deadline unchanged), and leaves the queue."""

import httpx
from playwright.async_api import Browser, expect

from shared.settings import Settings
from tools.demo import seed_people

from .conftest import Keys, System
from .flow import case_of, signed_by_lead, submit
from .test_console_browser import browser, log_in, new_page, pytestmark, shoot

__all__ = ["browser", "pytestmark"]


async def test_supervisor_rejects_a_return_from_the_queue(
    system: System, keys: Keys, settings: Settings, browser: Browser
) -> None:
    followup = system.url("followup")
    people = await seed_people(settings, {})
    title = "光华路窨井盖缺失存在安全隐患"
    async with httpx.AsyncClient(timeout=30) as http:
        opinion_id = await submit(
            http,
            system,
            keys.office,
            title=title,
            content="光华路口窨井盖缺失多日，夜间行人易跌落。",
        )
        code, lead = await signed_by_lead(http, system, keys, opinion_id)
        codes = (await http.get(f"{followup}/returns/codes", headers=lead)).json()
        claim = {
            "reason_code": next(iter(codes)),
            "responsible_unit": "区城市管理局",
            "evidence": "窨井盖属市政设施，由城管局负责维护。",
        }
        asked = await http.post(f"{followup}/cases/{opinion_id}/return", headers=lead, json=claim)
        assert asked.status_code == 200, asked.text
        due_before = asked.json()["assignments"][code]["due_at"]

        page = await new_page(browser)
        await log_in(page, system.url("console"), "supervisor", people["supervisor"])
        await page.click("text=督办事项")
        await page.click(".el-tabs__item:has-text('退单审核')")
        row = page.locator("[data-test=supervision-returns] tr", has_text=title)
        await expect(row).to_contain_text("窨井盖属市政设施")
        await shoot(page, "20-退单审核")
        await row.locator("[data-test=reject-return]").click()
        await page.locator(".el-message-box button:has-text('确定')").click()
        # No reason: refused in the box itself, nothing sent.
        await expect(page.locator(".el-message-box__errormsg")).to_contain_text("请填写理由")
        await page.locator(".el-message-box input").fill("属地管理，由街道先行处置")
        await page.locator(".el-message-box button:has-text('确定')").click()
        await expect(row).to_have_count(0)

        case = await case_of(http, system, keys.office, opinion_id)
        held = case["assignments"][code]
        assert held["status"] == "signed" and held["due_at"] == due_before
        assert held["return_claim"]["status"] == "rejected"
        assert held["return_claim"]["reviewed_by"].startswith("赵明")
        assert [t["step"] for t in case["timeline"]].count("退单驳回") == 1
