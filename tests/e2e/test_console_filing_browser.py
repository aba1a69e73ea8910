"""立案 and graded replies in a real browser: the office registers a member's 提案 with a
联名 co-signer from its roster; it waits as 待立案; a 不立案 without a reason is refused in the
dialog, then it is filed (立案) and the decision names the clerk; the department's reply
without a grade is refused at the field, a B without its plan too, and a B with a plan and
day shows on the case with the 跟踪督办 step; the audit log names the 立案 and who made it."""

import uuid
from datetime import timedelta

import httpx
from playwright.async_api import Browser, expect

from shared.clock import BEIJING, utcnow
from shared.settings import Settings
from tools.demo import seed_people, wait_for

from .conftest import System
from .console_client import Person
from .test_console_browser import browser, choose, log_in, log_out, new_page, pytestmark, shoot
from .test_console_editorial_browser import _case

__all__ = ["browser", "pytestmark"]

FORM = "[data-test=register-form]"


async def test_a_cosigned_proposal_filed_and_answered_with_grade_b(
    system: System, settings: Settings, browser: Browser
) -> None:
    base = system.url("console")
    people = await seed_people(settings, {})
    tag = uuid.uuid4().hex[:6]
    title = f"关于和平路{tag}公交站台顶棚维修的提案"
    lead_name, co_name = f"钱{tag}", f"孙{tag}"
    async with httpx.AsyncClient(timeout=20) as http:
        clerk = Person(http, base)
        assert (await clerk.login("clerk", people["clerk"])).status_code == 200
        for name in (lead_name, co_name):
            member = {"name": name, "kind": "委员", "sector": "经济界"}
            made = await clerk.call("POST", "/api/intake/members", json=member)
            assert made.status_code == 201, made.text

    page = await new_page(browser)
    # -- 办公室: register the 提案 of one member, co-signed by another ----------------------
    await log_in(page, base, "clerk", people["clerk"])
    await page.click("text=意见登记")
    await page.fill("input[name=title]", title)
    await page.fill(
        "textarea[name=content]", "和平路公交站台顶棚破损漏雨，候车乘客淋雨，建议尽快维修。"
    )
    await choose(page, f"{FORM} .el-form-item:has-text('来源渠道') .el-select", "调研")
    await page.click(f"{FORM} .el-radio:has-text('委员')")
    await choose(page, "[data-test=member]", lead_name)
    await expect(page.locator("input[name=submitter-name]")).to_have_value(lead_name)
    await page.click("[data-test=form-kind] .el-radio:has-text('提案')")
    # The member list (which also offers the co-signer) has closed before 联名 opens.
    await expect(page.locator(".el-select-dropdown__item:visible")).to_have_count(0)
    await choose(page, "[data-test=co-signers]", co_name)
    await page.keyboard.press("Escape")
    await choose(page, f"{FORM} .el-form-item:has-text('所在区') .el-select", "示范区")
    await choose(page, f"{FORM} .el-form-item:has-text('类别') .el-select", "城乡建设")
    await page.click(f"{FORM} button[type=submit]")
    await expect(page.locator("[data-test=accepted]")).to_contain_text("待立案")

    # -- 我的意见: it waits for 立案; 不立案 needs a reason; then 立案 -------------------------
    await page.click("text=我的意见")
    row = page.locator("[data-test=my-opinions] tr", has_text=title)
    await expect(row).to_contain_text("待立案")
    await row.locator("[data-test=to-filing]").click()
    await expect(page.locator("[data-test=co-signers]")).to_have_text(co_name)
    await page.click("[data-test=open-filing]")
    await page.click("[data-test=decision] .el-radio:has-text('不立案')")
    await page.click("[data-test=send-filing]")  # no reason: refused at the field
    reason = page.locator(".el-dialog .el-form-item", has=page.locator("[name=filing-reason]"))
    await expect(reason.locator(".el-form-item__error")).to_contain_text("不立案须说明理由")
    await expect(page.locator("[data-test=opinion-status]")).to_have_text("待立案")
    await page.click("[data-test=decision] .el-radio:has-text('立案') >> nth=0")
    await page.click("[data-test=send-filing]")
    await expect(page.locator("[data-test=filing-decision]")).to_have_text("立案")
    await expect(page.locator("[data-test=filing-by]")).to_contain_text("李文静")
    await expect(page.locator("[data-test=opinion-status]")).to_have_text("已受理")
    await shoot(page, "25-立案")
    opinion_id = page.url.rsplit("/", 1)[1]

    async with httpx.AsyncClient(timeout=20) as http:
        admin = Person(http, base)
        assert (await admin.login("admin", people["admin"])).status_code == 200
        case = await _case(admin, opinion_id)
        lead = next(c for c, a in case["assignments"].items() if a["role"] == "lead")

        async def briefed() -> bool:
            r = await admin.call("GET", f"/api/followup/cases/{opinion_id}")
            return r.json()["opinion"] is not None

        await wait_for(briefed, "intake's copy of the opinion at followup", within=60)
        made = await admin.call(
            "POST",
            "/console/people",
            json={
                "login": "fl.handler",
                "name": "韩立新",
                "unit": lead,
                "roles": ["department"],
                "password": "Minyi-2026f",
            },
        )
        assert made.status_code == 201, made.text

    # Once filed it is a case; the office gets back to the decision from there.
    await page.click("text=查看办理过程")
    await expect(page.locator("[data-test=form]")).to_contain_text("提案（已立案）")
    await page.click("[data-test=to-opinion]")
    await expect(page.locator("[data-test=filing-decision]")).to_have_text("立案")
    await log_out(page)

    # -- 承办单位: a filed case's reply is graded; a B carries its plan and day -------------
    await log_in(page, base, "fl.handler", "Minyi-2026f")
    await page.goto(f"{base}/cases/{opinion_id}")
    await expect(page.locator("[data-test=form]")).to_contain_text("提案（已立案）")
    await page.click("[data-test=sign]")
    await page.click("[data-test=open-reply]")
    await page.fill("textarea[name=reply-text]", "已制定站台改造方案，正在采购顶棚材料。")
    await page.click("[data-test=send-reply]")  # no grade: refused at the field
    dialog = page.locator(".el-dialog", has=page.locator("[data-test=reply-grade]"))
    grade = dialog.locator(".el-form-item", has=page.locator("[data-test=reply-grade]"))
    await expect(grade.locator(".el-form-item__error")).to_contain_text("须评定答复等级")
    await page.click("[data-test=reply-grade] .el-radio:has-text('B 正在解决')")
    await page.click("[data-test=send-reply]")  # a B without its plan: refused at the field
    plan_field = dialog.locator(".el-form-item", has=page.locator("textarea[name=plan]"))
    await expect(plan_field.locator(".el-form-item__error")).to_contain_text("须有解决计划")
    plan = f"顶棚材料到货后两周内完成更换（{tag}）"
    await page.fill("textarea[name=plan]", plan)
    day = utcnow().astimezone(BEIJING).date() + timedelta(days=20)
    await page.fill(".el-dialog input[name=plan-due]", day.isoformat())
    await page.keyboard.press("Enter")
    await page.click("[data-test=send-reply]")
    await expect(page.locator("[data-test=grade]")).to_contain_text("B 正在解决")
    await expect(page.locator("[data-test=plan]")).to_contain_text(plan)
    await expect(page.locator("[data-test=plan]")).to_contain_text(
        f"{day.year}/{day.month}/{day.day}"
    )
    timeline = page.locator(".el-timeline")
    await expect(timeline).to_contain_text("跟踪督办")
    await expect(timeline).to_contain_text("B 正在解决")
    # A B is followed up, not closed: the department still holds it and may reply again.
    await expect(page.locator("[data-test=open-reply]")).to_be_visible()
    await log_out(page)

    # -- 督查: the audit log names the 立案 and who made it ------------------------------
    await log_in(page, base, "supervisor", people["supervisor"])
    await page.click("text=审计日志")
    audit = page.locator("[data-test=audit]")
    for who, action in (("李文静", "立案决定"), ("韩立新", "答复")):
        entry = audit.locator("tr", has_text=who).filter(has_text=action).first
        await expect(entry).to_be_visible()
    await log_out(page)

    async with httpx.AsyncClient(timeout=20) as http:
        admin = Person(http, base)
        assert (await admin.login("admin", people["admin"])).status_code == 200
        filed = (await admin.call("GET", f"/api/intake/opinions/{opinion_id}")).json()
        answered = (await admin.call("GET", f"/api/followup/cases/{opinion_id}")).json()
    assert filed["filing"]["filed"] is True
    assert filed["filing"]["by"].startswith("李文静")
    assert len(filed["submission"]["co_signers"]) == 1
    mine = answered["assignments"][lead]
    assert (mine["grade"], mine["plan"], mine["status"]) == ("B", plan, "signed")
