"""每月一题 and 更正诉求类型 in a real browser: two opinions on one matter become a hot topic;
the supervisor picks it as the month's theme (a blank task is refused at the field), names
the owning department and two tasks and links the topic's opinions; the department marks one
task done and the dashboard shows 50 %; the audit log names each step. An editor corrects a
case's kind (none chosen: refused at the field) and its 办结 deadline is counted again from
交办."""

import uuid
from datetime import datetime
from typing import Any

import httpx
from playwright.async_api import Browser, expect

from services.followup.domain import Policy
from services.followup.workdays import WorkCalendar
from shared.settings import Settings
from tools.demo import seed_people, wait_for

from .conftest import System
from .console_client import Person
from .test_console_browser import browser, choose, log_in, log_out, new_page, pytestmark, shoot
from .test_console_editorial_browser import _case

__all__ = ["browser", "pytestmark"]


async def _opinion(clerk: Person, title: str, district: str, street: str) -> str:
    created = await clerk.call(
        "POST",
        "/api/intake/opinions",
        json={
            "title": title,
            "content": f"{title}，夜间行人容易跌落，希望尽快补装。",
            "channel": "走访",
            "submitter": {"kind": "群众", "name": "孙先生"},
            "location": {"district": district, "street": street},
        },
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def test_a_monthly_theme_from_a_hot_topic_and_a_corrected_kind(
    system: System, settings: Settings, browser: Browser
) -> None:
    base = system.url("console")
    people = await seed_people(settings, {})
    tag = uuid.uuid4().hex[:6]
    title = f"和平路{tag}窨井盖缺失"
    async with httpx.AsyncClient(timeout=20) as http:
        staff = {}
        for login in ("admin", "clerk", "supervisor"):
            staff[login] = Person(http, base)
            assert (await staff[login].login(login, people[login])).status_code == 200
        admin, clerk, supervisor = staff["admin"], staff["clerk"], staff["supervisor"]
        # A district of its own: other tests' opinions on the same matter are not this topic.
        district = f"青石区{tag}"
        ids = [await _opinion(clerk, title, district, f"{side}街道") for side in ("东", "西")]
        cases = [await _case(admin, i) for i in ids]
        lead = next(c for c, a in cases[0]["assignments"].items() if a["role"] == "lead")
        directory = (await supervisor.call("GET", "/api/routing/departments")).json()
        lead_name = next(d["name"] for d in directory if d["code"] == lead)
        made = await admin.call(
            "POST",
            "/console/people",
            json={
                "login": "th.handler",
                "name": "吴立新",
                "unit": lead,
                "roles": ["department"],
                "password": "Minyi-2026t",
            },
        )
        assert made.status_code == 201, made.text

        async def topic() -> dict[str, Any] | None:
            rows = (await supervisor.call("GET", "/api/routing/topics?limit=200")).json()
            return next((r for r in rows if tag in r["label"] and r["members"] == 2), None)

        hot = await wait_for(topic, "the hot topic of both opinions", within=60)

    page = await new_page(browser)
    # -- 督查: pick the hot topic as the month's theme ------------------------------------
    await log_in(page, base, "supervisor", people["supervisor"])
    await page.click("text=每月一题")
    await page.click("[data-test=new-theme]")
    await choose(page, "[data-test=pick]", hot["label"])
    await expect(page.locator("input[name=theme-title]")).to_have_value(hot["label"])
    await choose(page, "[data-test=theme-department]", lead_name)
    await page.fill("input[name=task-0]", "   ")  # blank: refused at the field
    await page.fill("input[name=task-1]", "路段巡查并设置警示")
    await page.click("[data-test=save-theme]")
    field = page.locator(".el-dialog .el-form-item", has=page.locator("input[name=task-0]"))
    await expect(field.locator(".el-form-item__error")).to_contain_text("至少 1 个字")
    await page.fill("input[name=task-0]", "补装缺失井盖")
    await page.click("[data-test=save-theme]")
    row = page.locator("[data-test=themes] tr", has_text=hot["label"]).first
    await expect(row).to_contain_text(lead_name)
    await expect(row.locator(".el-progress")).to_contain_text("0%")
    # Link the topic's two opinions.
    await row.locator(".el-table__expand-icon").click()
    await page.click("[data-test=link]")
    candidates = page.locator("[data-test=candidates] tr", has_text=title)
    await expect(candidates).to_have_count(2)
    for item in await candidates.all():
        await item.locator(".el-checkbox").click()
    await page.click("[data-test=save-link]")
    await expect(page.locator("[data-test=themes]")).to_contain_text("关联意见（2）")
    await log_out(page)

    # -- 牵头单位: one of the two tasks done ----------------------------------------------
    await log_in(page, base, "th.handler", "Minyi-2026t")
    await page.click("text=每月一题")
    row = page.locator("[data-test=themes] tr", has_text=hot["label"]).first
    await row.locator(".el-table__expand-icon").click()
    await page.locator("[data-test=task-1] [data-test=complete]").click()
    await page.fill(".el-message-box input", f"已补装 {tag} 路段井盖 6 处")
    await page.click(".el-message-box button:has-text('完成')")
    await expect(row.locator(".el-progress")).to_contain_text("50%")
    await expect(page.locator("[data-test=task-1]")).to_contain_text("吴立新")
    await expect(page.locator("[data-test=task-2] [data-test=complete]")).to_be_visible()
    await shoot(page, "23-每月一题")
    await log_out(page)

    # -- 督查督办: the dashboard shows the theme at 50 %; the audit log names each step -----
    await log_in(page, base, "supervisor", people["supervisor"])
    theme = page.locator("[data-test=themes] .theme", has_text=hot["label"])
    await expect(theme.locator(".el-progress")).to_contain_text("50%")
    await expect(theme).to_contain_text("任务 1/2")
    await shoot(page, "24-督查督办每月一题")
    await page.click("text=审计日志")
    audit = page.locator("[data-test=audit]")
    for who, action in (
        ("赵明", "每月一题选题"),
        ("赵明", "每月一题关联意见"),
        ("吴立新", "每月一题任务完成"),
    ):
        entry = audit.locator("tr", has_text=who).filter(has_text=action).first
        await expect(entry).to_be_visible()
    await log_out(page)

    # -- 分类编辑: 更正诉求类型; 办结 counted again from 交办 --------------------------------
    case = cases[0]
    kind = "咨询" if case["kind"] != "咨询" else "投诉"
    await log_in(page, base, "editor", people["editor"])
    await page.goto(f"{base}/cases/{case['id']}")
    await page.click("[data-test=correct-kind]")  # no kind chosen: refused at the field
    await expect(page.locator(".kind .el-form-item__error")).to_contain_text("应为以下之一")
    await choose(page, "[data-test=kind-select]", kind)
    await page.click("[data-test=correct-kind]")
    await expect(page.locator("[data-test=kind]")).to_have_text(kind)
    await expect(page.locator(".el-timeline")).to_contain_text("更正诉求类型")
    await expect(page.locator(".el-timeline")).to_contain_text("陈思远")
    await log_out(page)
    async with httpx.AsyncClient(timeout=20) as http:
        reader = Person(http, base)
        await reader.login("supervisor", people["supervisor"])
        now = (await reader.call("GET", f"/api/followup/cases/{case['id']}")).json()
    moved = now["assignments"][lead]
    assigned_at = datetime.fromisoformat(moved["assigned_at"])
    span = Policy().profile(case["urgency"]).reply_for(kind)
    assert datetime.fromisoformat(moved["due_at"]) == WorkCalendar().due(assigned_at, span)
    assert moved["assigned_at"] == case["assignments"][lead]["assigned_at"]
